"""Write the package's chapter modules from the notebooks' exported cells.

The chapters are the source of the code: a code cell whose first line is

    #| export book.tokenize

is copied, in notebook order, into ``book/tokenize.py``. Each generated module opens
with a line naming its notebook, so nobody edits it by mistake.

    python -m book.tooling.sync           # rewrite the generated modules
    python -m book.tooling.sync --check   # exit 1 if any module differs from its notebook
"""
from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys

from book.errors import BookError
from book.paths import ROOT

CHAPTERS = ROOT / "chapters"
EXPORT_MARKER = re.compile(r"^#\|\s*export\s+(book(?:\.[a-z_][a-z0-9_]*)+)\s*$")
HEADER = "# Generated from {notebook} by `python -m book.tooling.sync`: edit the notebook, not this file.\n"


class SyncError(BookError):
    pass


def exported_cells(notebook_path: pathlib.Path):
    """Yield (module, source) for each exported code cell of one notebook."""
    notebook = json.loads(notebook_path.read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        first_line, _, body = source.partition("\n")
        match = EXPORT_MARKER.match(first_line)
        if match:
            yield match.group(1), body.strip("\n")


def generated_modules(chapters: pathlib.Path = CHAPTERS) -> dict[pathlib.Path, str]:
    """Path of each generated module to the text it should hold."""
    cells: dict[str, list[str]] = {}
    owner: dict[str, pathlib.Path] = {}
    for notebook_path in sorted(chapters.glob("*.ipynb")):
        for module, source in exported_cells(notebook_path):
            if owner.setdefault(module, notebook_path) != notebook_path:
                raise SyncError(f"{module} is exported by both {owner[module].name} and {notebook_path.name}; "
                                "a module must come from one chapter")
            cells.setdefault(module, []).append(source)
    modules = {}
    for module, sources in cells.items():
        path = ROOT.joinpath(*module.split(".")).with_suffix(".py")
        notebook = owner[module]
        notebook = notebook.relative_to(ROOT).as_posix() if notebook.is_relative_to(ROOT) else notebook.name
        modules[path] = HEADER.format(notebook=notebook) + "\n\n\n".join(sources) + "\n"
    return modules


def stale_modules(expected: dict[pathlib.Path, str]) -> list[pathlib.Path]:
    """Generated modules on disk that no notebook exports any more."""
    stale = []
    for path in sorted((ROOT / "book").rglob("*.py")):
        with path.open(encoding="utf-8") as handle:
            first_line = handle.readline()
        if first_line.startswith("# Generated from ") and path not in expected:
            stale.append(path)
    return stale


def check() -> list[str]:
    """Every difference between the notebooks and the generated modules, as messages."""
    expected = generated_modules()
    problems = []
    for path, text in expected.items():
        if not path.exists():
            problems.append(f"{path.relative_to(ROOT)} is missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path.relative_to(ROOT)} differs from its notebook's exported cells")
    problems += [f"{path.relative_to(ROOT)} is exported by no notebook" for path in stale_modules(expected)]
    return problems


def write() -> list[pathlib.Path]:
    written = []
    for path, text in generated_modules().items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write book/ modules from the chapters' exported cells.")
    parser.add_argument("--check", action="store_true", help="report drift instead of writing")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = check()
            for problem in problems:
                print(f"out of sync: {problem}", file=sys.stderr)
            if problems:
                print("run `python -m book.tooling.sync` after editing a notebook", file=sys.stderr)
                return 1
            print("book/ matches the notebooks")
            return 0
        for path in write():
            print(f"wrote {path.relative_to(ROOT)}")
        for path in stale_modules(generated_modules()):
            print(f"warning: {path.relative_to(ROOT)} is exported by no notebook; delete it", file=sys.stderr)
        return 0
    except SyncError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
