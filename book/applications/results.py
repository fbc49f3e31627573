"""One results file per application, in one shape, and the intervals they report (Chapter 8).

Every application's command writes ``checkpoints/applications/results/<application>.json``::

    {"application": "qa", "command": "python -m ...", "machine": "...", "wall_seconds": 123.4,
     "results": [{"application": "qa", "task": "one supporting fact", "metric": "exact match",
                  "method": "fine-tuned GPT", "value": 0.97, "ci95": [0.95, 0.98], "n": 1000,
                  "is_baseline": false}, ...], ...anything else the chapter needs}

and ``python -m book.applications --json`` gathers all of them into one (see ``__main__``).
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import pathlib
import platform
import shlex
import sys
import textwrap

import torch

from book.errors import BookError
from book.paths import CHECKPOINTS

APPLICATIONS = ("generation", "translation", "qa", "sentiment", "dialogue", "code")
RESULTS_DIR = CHECKPOINTS / "applications" / "results"


class ResultsError(BookError):
    """An application's results file is missing, damaged or not in the shape above."""


@dataclasses.dataclass(frozen=True)
class Result:
    """One measured figure: ``value`` of ``metric`` for ``method`` on ``task``, over ``n`` items."""

    application: str
    task: str
    metric: str
    method: str
    value: float
    ci95: tuple[float, float] | None  # a 95% interval, or None where none applies
    n: int
    is_baseline: bool

    def __post_init__(self):
        if self.application not in APPLICATIONS:
            raise ResultsError(f"unknown application {self.application!r}; one of {', '.join(APPLICATIONS)}")
        if not math.isfinite(self.value):
            raise ResultsError(f"{self.application}/{self.task}/{self.method}: value is {self.value}")
        if self.ci95 is not None and not self.ci95[0] <= self.value <= self.ci95[1]:
            raise ResultsError(f"{self.application}/{self.task}/{self.method}: {self.value} is outside its "
                               f"interval {list(self.ci95)}")

    def to_dict(self) -> dict:
        row = dataclasses.asdict(self)
        row["ci95"] = None if self.ci95 is None else [round(float(x), 6) for x in self.ci95]
        row["value"] = round(float(self.value), 6)
        return row


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion ``successes / n`` (sound near 0 and 1)."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes} of {n}")
    z = 1.959964
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # at 0 or n successes the bound is exactly 0 or 1 (the formula's rounding can miss it by 1e-19)
    return (0.0 if successes == 0 else max(0.0, centre - half)), (1.0 if successes == n else min(1.0, centre + half))


def proportion(application: str, task: str, metric: str, method: str, successes: int, n: int, *,
               is_baseline: bool = False) -> Result:
    """A :class:`Result` for a rate, ``successes`` out of ``n``, with its Wilson interval."""
    return Result(application, task, metric, method, successes / n, wilson_interval(successes, n), n,
                  is_baseline)


def results_path(application: str) -> pathlib.Path:
    if application not in APPLICATIONS:
        raise ResultsError(f"unknown application {application!r}; one of {', '.join(APPLICATIONS)}")
    return RESULTS_DIR / f"{application}.json"


def write_results(application: str, rows: list[Result], *, wall_seconds: float, argv: list[str] | None = None,
                  program: str | None = None, path: str | pathlib.Path | None = None, **extra) -> pathlib.Path:
    """Write ``rows`` (and ``extra`` keys) as the results file of ``application``, atomically."""
    for row in rows:
        if row.application != application:
            raise ResultsError(f"a {row.application} row in the {application} results")
    argv = sys.argv[1:] if argv is None else argv
    if program is None:
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        program = f"python -m {spec.name}" if spec is not None else "python " + sys.argv[0]
    payload = {
        "application": application,
        "command": (program + " " + shlex.join(argv)).strip(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}",
        "wall_seconds": round(wall_seconds, 1),
        "finished": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        **extra,
        "results": [row.to_dict() for row in rows],
    }
    path = pathlib.Path(path) if path is not None else results_path(application)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path


def read_results(application: str, path: str | pathlib.Path | None = None) -> dict:
    """The results file of ``application``, checked to have the shape above."""
    path = pathlib.Path(path) if path is not None else results_path(application)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path} is missing: run the command that writes the {application} results") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResultsError(f"{path} cannot be read: {error}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
        raise ResultsError(f"{path} holds no list of results")
    fields = {field.name for field in dataclasses.fields(Result)}
    for row in payload["results"]:
        if not isinstance(row, dict) or set(row) != fields:
            raise ResultsError(f"{path}: a result row needs exactly the keys {', '.join(sorted(fields))}")
        ci95 = row["ci95"]
        Result(**dict(row, ci95=None if ci95 is None else tuple(ci95)))  # checks the values
    return payload


def all_results() -> list[dict]:
    """Every application's rows, in the order of :data:`APPLICATIONS` (files not yet written are skipped)."""
    rows = []
    for application in APPLICATIONS:
        if results_path(application).exists():
            rows.extend(read_results(application)["results"])
    return rows


def format_rows(rows: list[dict], *, digits: int = 3, width: int | None = None) -> str:
    """A plain-text table of result rows (as :func:`read_results` gives them): one line each.

    With ``width``, headings and method names wrap so that no line is longer (the book's pages show
    88 characters); a wrapped method's figures stand on its last line.
    """
    if not rows:
        return "(no results)"

    def interval(row):
        return "" if row["ci95"] is None else f"[{row['ci95'][0]:.{digits}f}, {row['ci95'][1]:.{digits}f}]"

    def figures(row):
        return f"{row['value']:.{digits}f}  {interval(row):<{2 * digits + 8}} n={row['n']:,}"

    names = {id(r): r["method"] + (" (baseline)" if r["is_baseline"] else "") for r in rows}
    method_width = max(map(len, names.values()))
    if width is not None:
        room = width - 4 - max(len(figures(r)) for r in rows)
        if room < 12:
            raise ResultsError(f"a width of {width} leaves no room for the method names")
        method_width = min(method_width, room)
    lines = []
    for task in dict.fromkeys(r["task"] for r in rows):
        for metric in dict.fromkeys(r["metric"] for r in rows if r["task"] == task):
            heading = f"{task}: {metric}"
            lines.extend(textwrap.wrap(heading, width, subsequent_indent="    ") if width else [heading])
            for row in (r for r in rows if r["task"] == task and r["metric"] == metric):
                parts = textwrap.wrap(names[id(row)], method_width, subsequent_indent="  ") or [""]
                lines.extend(f"  {part}" for part in parts[:-1])
                lines.append(f"  {parts[-1]:<{method_width}}  {figures(row)}".rstrip())
    return "\n".join(lines)


def results_table(application: str, *, digits: int = 3, width: int | None = None) -> str:
    """The rows of ``application``'s results file as a plain-text table, grouped by task and metric."""
    return format_rows(read_results(application)["results"], digits=digits, width=width)
