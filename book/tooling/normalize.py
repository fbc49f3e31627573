"""Keep the committed notebooks in the form every front end reads the same way.

    python -m book.tooling.normalize           # rewrite the chapters in place
    python -m book.tooling.normalize --check   # fail if one needs it (CI)

Three things: a cell's printed output is stored as one stream per channel, not as several
pieces (JupyterLab merges the pieces when it saves, and a "Trust, then Save" would then rewrite
the file with what look like duplicated lines); every notebook names its kernel, so that it
opens with Python 3 without asking; and the book's toggle on an exercise's hidden solution
says "Show the solution" rather than Jupyter Book's generic "Show code cell content".
"""
from __future__ import annotations

import argparse
import sys

import nbformat

from book.paths import ROOT

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
SOLUTION_PROMPTS = {"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}


def merged_streams(outputs: list) -> list:
    """``outputs`` with each run of adjacent stream outputs of one channel joined into one."""
    merged = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (output.get("output_type") == "stream" and previous is not None
                and previous.get("output_type") == "stream" and previous.get("name") == output.get("name")):
            previous["text"] = "".join(previous["text"]) + "".join(output["text"])
        else:
            merged.append(output)
    return merged


def normalize(notebook) -> bool:
    """Normalize ``notebook`` in place; True if anything changed."""
    changed = notebook.metadata.get("kernelspec") != KERNELSPEC
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    # Stored widget state makes the book's page load the widget manager from a CDN.
    changed |= notebook.metadata.pop("widgets", None) is not None
    for cell in notebook.cells:
        if cell.cell_type == "code" and "solution" in cell.metadata.get("tags", []):
            changed |= cell.metadata.get("mystnb") != SOLUTION_PROMPTS
            cell.metadata["mystnb"] = dict(SOLUTION_PROMPTS)
        if cell.cell_type == "code":
            merged = merged_streams(cell.outputs)
            changed |= len(merged) != len(cell.outputs)
            cell.outputs = merged
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m book.tooling.normalize", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report notebooks that need it")
    args = parser.parse_args(argv)
    stale = []
    for path in sorted((ROOT / "chapters").glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        if normalize(notebook):
            stale.append(path.name)
            if not args.check:
                nbformat.write(notebook, path)
    if args.check and stale:
        print(f"error: not normalized: {', '.join(stale)}; run python -m book.tooling.normalize", file=sys.stderr)
        return 1
    print(f"{len(stale)} notebook(s) {'need normalizing' if args.check else 'normalized'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
