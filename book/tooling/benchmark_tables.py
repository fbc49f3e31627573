"""The Performance appendix's tables, written as Markdown from ``benchmarks/results.json``.

``benchmarks/run.py`` stores every measurement as a row ``{"name", "a", "b", "unit", "ratio",
"note"}``. The appendix shows three groups of rows: speed-ups (how many times as fast the first
thing named is as the second), costs (a multiple: smaller is cheaper) and thread settings (each
setting's time against the fastest measured in the same condition).
"""
from __future__ import annotations

import re

COMMAND_OR_OPTION = re.compile(r"python -m [\w.]+(?: --?[\w-]+(?: [\w.-]+)?)*|\b[A-Z][A-Z_]+=\w+|\btorch\.\w+")
THREADS_ROW = re.compile(r"threads, (.+), ms per (.+): (.+) vs the best setting")
SETTING_TIME = re.compile(r"(.+): ([0-9.]+)")


def as_code(text: str) -> str:
    """Commands and settings in backticks, where Markdown keeps -- as typed."""
    return COMMAND_OR_OPTION.sub(lambda match: f"`{match.group(0)}`", text)


def number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def is_cost(row: dict) -> bool:
    return "cost multiple" in row["note"] or "smaller is better" in row["note"]


def speed_first(row: dict) -> tuple[float, float]:
    """The first-named thing's value, then the second's: for a time the faster one is ``b``."""
    timed = not row["unit"].endswith("/s")
    return (row["b"], row["a"]) if timed else (row["a"], row["b"])


def comparison_table(rows: list[dict], ratio_header: str, first_of) -> str:
    """One line per row, the two things compared in the order the name gives, then each row's settings."""
    lines = [f"| comparison | first | second | unit | {ratio_header} |", "|---|---:|---:|---|---:|"]
    for r in rows:
        first, second = first_of(r)
        lines.append(f"| {as_code(r['name'])} | {number(first)} | {number(second)} | {r['unit']} | {r['ratio']:.2f}x |")
    # The notes call the second value b; in the table it is the column "second".
    settings = [f"- *{as_code(r['name'])}*: {as_code(r['note'].replace('b = ', 'second: '))}" for r in rows]
    return "\n".join(lines + ["", "Settings:", "", *settings])


def threads_table(rows: list[dict]) -> str:
    lines = ["| machine | ms per | setting | ms | best ms | cost |", "|---|---|---|---:|---:|---:|"]
    every_setting = {}
    for r in rows:
        match = THREADS_ROW.fullmatch(r["name"])
        if match is None:
            raise ValueError(f"unexpected name of a threads measurement: {r['name']!r}")
        machine, per, setting = match.groups()
        lines.append(f"| {machine} | {per} | {setting} | {number(r['a'])} | {number(r['b'])} | {r['ratio']:.2f}x |")
        timings = [SETTING_TIME.fullmatch(part) for part in r["note"].split("; ")]
        every_setting[f"{machine}, ms per {per}"] = "; ".join(
            f"{name} {number(float(ms))}" for name, ms in (t.groups() for t in timings if t))
    listed = [f"- *{where}*: {as_code(text)}" for where, text in every_setting.items()]
    return "\n".join(lines + ["", "Every setting measured (ms):", "", *listed])


def tables(report: dict) -> dict[str, str]:
    """The speed-ups, costs and thread settings of a benchmark report, each as a Markdown table."""
    measured = [r for r in report["results"] if not r["name"].startswith("notebook")]
    threads = [r for r in measured if r["name"].startswith("threads")]
    costs = [r for r in measured if is_cost(r) and r not in threads]
    speeds = [r for r in measured if not is_cost(r) and r not in threads]
    return {"Speed-ups": comparison_table(speeds, "speed-up", speed_first),
            "Costs": comparison_table(costs, "cost", lambda r: (r["a"], r["b"])),
            "Thread settings": threads_table(threads)}
