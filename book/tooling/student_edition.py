"""Write the student edition of the book: every chapter with its exercise solutions removed.

    python -m book.tooling.student_edition --out student/

Each code cell tagged ``solution`` becomes a stub: functions and classes keep their
signature and docstring, and their body raises ``NotImplementedError`` with the hint
written in the solution as ``# Hint: ...`` comments. Markdown cells tagged ``answer``
(the written model answers to open questions) are replaced by a place for the student's
own. Outputs are cleared, so the automatic check below each exercise reports "not
attempted yet" until the student writes an answer.
"""
from __future__ import annotations

import ast
import pathlib
import shutil
import sys

import nbformat

from book.errors import BookError, CommandParser
from book.paths import ROOT, unwritable_reason

SOLUTION_TAG = "solution"
ANSWER_TAG = "answer"
ANSWER_PLACEHOLDER = "*Your answer:* write it here, in a few sentences."
HIDDEN_TAGS = {"hide-cell", "hide-input", "hide-output", "remove-cell", "remove-input"}


class StudentEditionError(BookError):
    pass


def hint_of(source: str) -> str:
    hints = [line.strip()[len("# Hint:"):].strip() for line in source.splitlines()
             if line.strip().startswith("# Hint:")]
    return " ".join(hints) or "write your answer here"


def _docstring_node(node):
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[0]
    return None


def stub_for(source: str, exercise: str) -> str:
    """The stub that replaces one solution cell."""
    tree = ast.parse(source)
    lines = source.splitlines()
    message = f"{exercise}: {hint_of(source)}"
    pieces = [f"# {exercise}: your answer goes here."] + \
             [line for line in lines if line.strip().startswith("# Hint:")]
    leftover = False
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            pieces.append(ast.get_source_segment(source, node))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = node.body[0]
            header = "\n".join(lines[(node.decorator_list[0].lineno if node.decorator_list else node.lineno) - 1:
                                     first.lineno - 1])
            docstring = _docstring_node(node)
            indent = " " * first.col_offset
            body = "\n".join(lines[docstring.lineno - 1:docstring.end_lineno]) + "\n" if docstring else ""
            pieces.append(f"\n{header}\n{body}{indent}raise NotImplementedError({message!r})")
        else:
            leftover = True
    if leftover:
        pieces.append(f"\nraise NotImplementedError({message!r})")
    return "\n".join(pieces).strip() + "\n"


def student_notebook(notebook: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, int]:
    """A copy of ``notebook`` with solutions stubbed and outputs cleared; also the stub count."""
    notebook = nbformat.from_dict(notebook)
    stubs = 0
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if cell.cell_type == "markdown" and ANSWER_TAG in tags:
            cell.source = ANSWER_PLACEHOLDER
            cell.metadata["tags"] = [t for t in tags if t != ANSWER_TAG] + ["exercise"]
            continue
        if cell.cell_type != "code":
            continue
        cell.outputs = []
        cell.execution_count = None
        if SOLUTION_TAG in tags:
            if cell.source.lstrip().startswith("#| export"):
                raise StudentEditionError("a solution cell must not be exported to the package")
            stubs += 1
            exercise = _exercise_name(notebook, cell, stubs)
            cell.source = stub_for(cell.source, exercise)
            cell.metadata["tags"] = [t for t in tags if t not in HIDDEN_TAGS and t != SOLUTION_TAG] + ["exercise"]
    return notebook, stubs


def _exercise_name(notebook, solution_cell, ordinal):
    """The name used by the check cell that follows the solution, e.g. "Exercise 1.2"."""
    cells = notebook.cells
    for cell in cells[cells.index(solution_cell) + 1:]:
        if "exercise-check" in cell.metadata.get("tags", []):
            try:
                call = next(node for node in ast.walk(ast.parse(cell.source)) if isinstance(node, ast.Call)
                            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "check")
                return ast.literal_eval(call.args[0])
            except (StopIteration, ValueError, IndexError, SyntaxError):
                break
    return f"Exercise {ordinal}"


def write_edition(out: pathlib.Path, chapters: pathlib.Path = ROOT / "chapters", *, force: bool = False
                  ) -> dict[str, int]:
    if out.resolve() == chapters.resolve():
        raise StudentEditionError("the output folder must not be the chapters folder: that would erase the solutions")
    if out.exists() and not out.is_dir():
        raise StudentEditionError(f"{out} is a file, not a folder")
    existing = sorted(p.name for p in chapters.glob("*.ipynb") if (out / p.name).exists())
    if existing and not force:
        raise StudentEditionError(f"{out} already holds {len(existing)} student notebooks (e.g. {existing[0]}), "
                                  f"perhaps with a student's answers; pass --force to overwrite them")
    reason = unwritable_reason(out)
    if reason:
        raise StudentEditionError(f"{out} cannot be written ({reason})")
    counts = {}
    for path in sorted(chapters.glob("*.ipynb")):
        notebook, stubs = student_notebook(nbformat.read(path, as_version=4))
        nbformat.write(notebook, out / path.name)
        counts[path.name] = stubs
    for page in sorted(chapters.glob("*.md")):
        shutil.copy(page, out / page.name)
    return counts


def main(argv=None):
    parser = CommandParser(prog="python -m book.tooling.student_edition",
                           description="Write the chapters with exercise solutions replaced by stubs.")
    parser.add_argument("--out", type=pathlib.Path, required=True, help="folder to write the student notebooks to")
    parser.add_argument("--force", action="store_true", help="overwrite student notebooks already in --out")
    args = parser.parse_args(argv)
    try:
        counts = write_edition(args.out, force=args.force)
    except StudentEditionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name, stubs in counts.items():
        print(f"{args.out / name}: {stubs} exercise{'s' if stubs != 1 else ''} to solve")
    return 0


if __name__ == "__main__":
    sys.exit(main())
