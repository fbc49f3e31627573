"""Every application's results in one file: ``python -m book.applications --json``.

Each application's own command trains and measures, and writes
``checkpoints/applications/results/<application>.json`` (see :mod:`book.applications.results`). This
command gathers them, prints ``{"results": [...]}`` with ``--json`` (a table without it) and,
with ``--out FILE``, writes the same JSON there.
"""
from __future__ import annotations

import json
import pathlib
import sys

from book.applications.results import APPLICATIONS, ResultsError, all_results, format_rows, results_path
from book.errors import CommandParser


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="python -m book.applications", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--out", help="also write the JSON to this file")
    args = parser.parse_args(argv)
    try:
        rows = all_results()
    except ResultsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    missing = [name for name in APPLICATIONS if not results_path(name).exists()]
    payload = {"results": rows, "missing": missing}
    text = json.dumps(payload, indent=1, ensure_ascii=False)
    if args.out:
        out = pathlib.Path(args.out)
        try:
            out.write_text(text + "\n", encoding="utf-8")
        except OSError as error:
            print(f"error: --out {out} cannot be written ({error.strerror or error})", file=sys.stderr)
            return 2
    if args.json:
        print(text)
        return 0
    for application in APPLICATIONS:
        mine = [row for row in rows if row["application"] == application]
        if mine:
            print(f"== {application}\n{format_rows(mine)}")
    for name in missing:
        print(f"{name:<11} (no results yet: {results_path(name)} is missing)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
