"""Write the package's chapter modules from the notebooks' exported cells.

The chapters are the source of the code: a code cell whose first line is

    #| export book.tokenize

goes, in notebook order, into ``book/tokenize.py``, written to read like a hand-written module:

* it opens with a line naming its notebook, so nobody edits it by mistake, then the first
  exported cell's docstring (the module's);
* the cells' imports are gathered at the top, each once, sorted and grouped as ruff's isort
  rule wants (``from __future__``, the standard library, other packages, ``book``);
* each definition is stamped with a comment naming the chapter and section that derive it.

    python -m book.tooling.sync           # rewrite the generated modules
    python -m book.tooling.sync --check   # exit 1 if any module differs from its notebook
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import pathlib
import re
import sys

from book.errors import BookError
from book.paths import ROOT

CHAPTERS = ROOT / "chapters"
EXPORT_MARKER = re.compile(r"^#\|\s*export\s+(book(?:\.[a-z_][a-z0-9_]*)+)\s*$")
HEADER = "# Generated from {notebook} by `python -m book.tooling.sync`: edit the notebook, not this file.\n"
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*$")
FIRST_PARTY = "book"


class SyncError(BookError):
    pass


@dataclasses.dataclass(frozen=True)
class ExportedCell:
    module: str  # e.g. "book.tokenize"
    source: str  # the cell without its export marker
    chapter: str  # e.g. "Chapter 1, From text to vectors"
    section: str  # the headings above the cell, e.g. "1.2 Byte-pair encoding > Training"


def _chapter_name(notebook_path: pathlib.Path, title: str | None) -> str:
    number = re.match(r"(\d+)_", notebook_path.name)
    name = f"Chapter {int(number.group(1))}" if number else notebook_path.stem
    return f"{name} ({title})" if title else name


def exported_cells(notebook_path: pathlib.Path):
    """Yield an :class:`ExportedCell` for each exported code cell of one notebook, in order."""
    notebook = json.loads(notebook_path.read_text(encoding="utf-8"))
    title, headings = None, {}
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            for line in source.splitlines():
                heading = HEADING.match(line)
                if heading:
                    level, text = len(heading.group(1)), heading.group(2)
                    if level == 1:
                        title = title or text
                    else:
                        headings = {k: v for k, v in headings.items() if k < level} | {level: text}
            continue
        if cell["cell_type"] != "code":
            continue
        first_line, _, body = source.partition("\n")
        match = EXPORT_MARKER.match(first_line)
        if match:
            section = " > ".join(headings[level] for level in sorted(headings))
            yield ExportedCell(match.group(1), body.strip("\n"), _chapter_name(notebook_path, title), section)


# ---------------------------------------------------------------------------------------------
# Imports: gathered, each once, in the order ruff's isort rule (I001) expects

def _section(module: str) -> int:
    top = module.split(".")[0]
    if module == "__future__":
        return 0
    if top in sys.stdlib_module_names:
        return 1
    return 3 if top == FIRST_PARTY else 2


def _member_key(name: str):
    # isort's order-by-type: CONSTANTS, then Classes, then everything else; each alphabetical.
    kind = 0 if name.isupper() and len(name) > 1 else 1 if name[:1].isupper() else 2
    return kind, name


def _alias(alias: ast.alias) -> str:
    return f"{alias.name} as {alias.asname}" if alias.asname else alias.name


def import_block(nodes: list[ast.stmt], line_length: int = 120) -> str:
    """The import statements ``nodes`` (ast.Import / ast.ImportFrom), deduplicated and sorted."""
    plain: set[str] = set()
    members: dict[str, set[str]] = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            plain.update(_alias(alias) for alias in node.names)
        else:
            if node.level:
                raise SyncError(f"relative import of {node.module!r}: exported cells import with absolute names")
            members.setdefault(node.module, set()).update(_alias(alias) for alias in node.names)
    groups: dict[int, list[str]] = {}
    for name in sorted(plain, key=lambda n: n.lower()):
        groups.setdefault(_section(name), []).append(f"import {name}")
    for module in sorted(members, key=lambda n: n.lower()):
        names = ", ".join(sorted(members[module], key=_member_key))
        line = f"from {module} import {names}"
        if len(line) > line_length:
            inner = "".join(f"    {name},\n" for name in sorted(members[module], key=_member_key))
            line = f"from {module} import (\n{inner})"
        groups.setdefault(_section(module), []).append(line)
    # within a section, `import x` lines come before `from x import y` lines (isort's default)
    return "\n\n".join("\n".join(groups[section]) for section in sorted(groups))


def _split_cell(source: str) -> tuple[str | None, list[ast.stmt], str, ast.Module]:
    """A cell as (its leading docstring, its top-level imports, the rest of its code, its tree)."""
    tree = ast.parse(source)
    lines = source.split("\n")
    docstring = None
    drop: set[int] = set()  # 0-based line numbers taken out of the cell
    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        docstring = "\n".join(lines[body[0].lineno - 1:body[0].end_lineno])
        drop.update(range(body[0].lineno - 1, body[0].end_lineno))
    imports = [node for node in body if isinstance(node, (ast.Import, ast.ImportFrom))]
    for node in imports:
        drop.update(range(node.lineno - 1, node.end_lineno))
    rest = [line if i not in drop else None for i, line in enumerate(lines)]
    return docstring, imports, rest, tree


def _stamped(rest: list[str | None], tree: ast.Module, stamp: str) -> str:
    """The cell's remaining lines with ``stamp`` above each top-level definition and its comments.

    A run of assignments on consecutive lines (a few constants) shares one stamp.
    """
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)
    assignments = (ast.Assign, ast.AnnAssign)
    at: set[int] = set()
    previous = None
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        continues_a_run = (isinstance(node, assignments) and isinstance(previous, assignments)
                           and node.lineno == previous.end_lineno + 1)
        previous = node
        if not isinstance(node, definitions) or continues_a_run:
            continue
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
        while first > 0 and rest[first - 1] is not None and rest[first - 1].startswith("#"):
            first -= 1  # a comment right above a definition belongs to it
        at.add(first)
    out = []
    for i, line in enumerate(rest):
        if line is None:
            continue
        if i in at:
            out.append(stamp)
        out.append(line)
    return re.sub(r"\n{3,}", "\n\n\n", "\n".join(out).strip("\n"))


def _stamp(cell: ExportedCell, width: int = 120) -> str:
    """The comment naming the cell's chapter and section, shortened to the innermost heading if too wide."""
    if not cell.section:
        return f"# {cell.chapter}"
    innermost = cell.section.split(" > ")[-1]
    for stamp in (f"# {cell.chapter}, section: {cell.section}", f"# {cell.chapter}, section: {innermost}",
                  f"# {cell.chapter.split(' (')[0]}, section: {innermost}"):
        if len(stamp) <= width:
            return stamp
    return stamp[:width - 3] + "..."


def module_text(cells: list[ExportedCell], notebook: str) -> str:
    """The text of one generated module from its exported cells (all from one notebook)."""
    docstring, imports, parts = None, [], []
    for cell in cells:
        cell_doc, cell_imports, rest, tree = _split_cell(cell.source)
        if cell_doc is not None:
            if docstring is not None:
                raise SyncError(f"{cell.module}: only the first exported cell may open with a docstring")
            if parts:
                raise SyncError(f"{cell.module}: the module docstring must open the first exported cell")
            docstring = cell_doc
        imports += cell_imports
        stamp = _stamp(cell)
        code = _stamped(rest, tree, stamp)
        if code:
            parts.append(code)
    head = HEADER.format(notebook=notebook)
    if docstring is not None:
        head += docstring + "\n"
    block = import_block(imports)
    if block:
        head += block + "\n"
    code = "\n\n\n".join(parts)
    if block or docstring:
        # isort's spacing: two blank lines before a first definition, one before other code
        first = next((line for line in code.splitlines() if not line.startswith("#")), "")
        head += "\n\n" if first.startswith(("def ", "async def ", "class ", "@")) else "\n"
    return head + code + "\n"


def generated_modules(chapters: pathlib.Path = CHAPTERS, root: pathlib.Path = ROOT) -> dict[pathlib.Path, str]:
    """Path of each generated module (under ``root``) to the text it should hold."""
    cells: dict[str, list[ExportedCell]] = {}
    owner: dict[str, pathlib.Path] = {}
    for notebook_path in sorted(chapters.glob("*.ipynb")):
        for cell in exported_cells(notebook_path):
            if owner.setdefault(cell.module, notebook_path) != notebook_path:
                raise SyncError(f"{cell.module} is exported by both {owner[cell.module].name} and "
                                f"{notebook_path.name}; a module must come from one chapter")
            cells.setdefault(cell.module, []).append(cell)
    modules = {}
    for module, module_cells in cells.items():
        path = root.joinpath(*module.split(".")).with_suffix(".py")
        notebook = owner[module]
        notebook = notebook.relative_to(root).as_posix() if notebook.is_relative_to(root) else notebook.name
        modules[path] = module_text(module_cells, notebook)
    return modules


def stale_modules(expected: dict[pathlib.Path, str], root: pathlib.Path = ROOT) -> list[pathlib.Path]:
    """Generated modules on disk that no notebook exports any more."""
    stale = []
    for path in sorted((root / "book").rglob("*.py")):
        with path.open(encoding="utf-8") as handle:
            first_line = handle.readline()
        if first_line.startswith("# Generated from ") and path not in expected:
            stale.append(path)
    return stale


def check(chapters: pathlib.Path = CHAPTERS, root: pathlib.Path = ROOT) -> list[str]:
    """Every difference between the notebooks and the generated modules, as messages."""
    expected = generated_modules(chapters, root)
    problems = []
    for path, text in expected.items():
        if not path.exists():
            problems.append(f"{path.relative_to(root)} is missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path.relative_to(root)} differs from its notebook's exported cells")
    problems += [f"{path.relative_to(root)} is exported by no notebook" for path in stale_modules(expected, root)]
    return problems


def write(chapters: pathlib.Path = CHAPTERS, root: pathlib.Path = ROOT) -> list[pathlib.Path]:
    """Write every generated module that is missing or differs; the paths written."""
    written = []
    for path, text in generated_modules(chapters, root).items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def main(argv=None, chapters: pathlib.Path = CHAPTERS, root: pathlib.Path = ROOT) -> int:
    parser = argparse.ArgumentParser(prog="python -m book.tooling.sync",
                                     description="Write book/ modules from the chapters' exported cells.")
    parser.add_argument("--check", action="store_true", help="report drift instead of writing")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = check(chapters, root)
            for problem in problems:
                print(f"out of sync: {problem}", file=sys.stderr)
            if problems:
                print("run `python -m book.tooling.sync` after editing a notebook", file=sys.stderr)
                return 1
            print("book/ matches the notebooks")
            return 0
        for path in write(chapters, root):
            print(f"wrote {path.relative_to(root)}")
        for path in stale_modules(generated_modules(chapters, root), root):
            print(f"warning: {path.relative_to(root)} is exported by no notebook; delete it", file=sys.stderr)
        return 0
    except SyncError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
