"""Where the experiments' commands write their results: JSON, with the command that reproduces them."""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Callable

from book.paths import unwritable_reason


def save_results(results: dict, out: str | pathlib.Path, program: str, argv: list[str] | None) -> None:
    """Write an experiment's ``results`` as JSON, with the command that reproduces them."""
    results["command"] = program + " " + " ".join(argv if argv is not None else sys.argv[1:])
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


def check_out(parser: argparse.ArgumentParser, out: str | pathlib.Path) -> None:
    """Stop the command (a usage error) before any work when ``--out`` is a folder or cannot be written."""
    out = pathlib.Path(out)
    if out.is_dir():
        parser.error(f"--out {out} is a folder; give the JSON file to write, e.g. {out / 'results.json'}")
    reason = unwritable_reason(out.parent)
    if reason:
        parser.error(f"--out {out} cannot be written ({reason})")


def run_and_save(experiment: Callable[[], dict], out: str | pathlib.Path, program: str, argv: list[str] | None,
                 describe_row: Callable[[dict], str]) -> int:
    """Run ``experiment()``, save its results, print one line per row; exit status 2 with the message on a bad value."""
    try:
        results = experiment()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    save_results(results, out, program, argv)
    for name, row in results["rows"].items():
        print(f"{name}: {describe_row(row)}")
    return 0
