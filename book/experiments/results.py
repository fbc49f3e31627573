"""Where the experiments' commands write their results: JSON, with the command that reproduces them."""
from __future__ import annotations

import json
import pathlib
import sys


def save_results(results: dict, out: str | pathlib.Path, program: str, argv: list[str] | None) -> None:
    """Write an experiment's ``results`` as JSON, with the command that reproduces them."""
    results["command"] = program + " " + " ".join(argv if argv is not None else sys.argv[1:])
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
