import ast
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

from book.exercise import FAILED, PASSED, check
from book.tooling.student_edition import StudentEditionError, stub_for, student_notebook, write_edition

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))

SOLUTION = '''import math

# Hint: the area of a circle is pi r squared.
def circle_area(radius):
    """Area of a circle of the given radius."""
    return math.pi * radius ** 2


@staticmethod
def helper(x):
    return x
'''


def test_stub_keeps_signatures_and_docstrings_and_hides_the_answer():
    stub = stub_for(SOLUTION, "Exercise 1.1")
    ast.parse(stub)
    assert "def circle_area(radius):" in stub and "Area of a circle" in stub
    assert "math.pi * radius" not in stub and "return x" not in stub
    assert "the area of a circle is pi r squared" in stub
    namespace = {}
    exec(stub, namespace)
    with pytest.raises(NotImplementedError, match="Exercise 1.1: the area"):
        namespace["circle_area"](2.0)


def test_stub_of_a_cell_without_functions_raises():
    stub = stub_for("answer = 42\n", "Exercise 2.3")
    assert "42" not in stub
    with pytest.raises(NotImplementedError, match="Exercise 2.3"):
        exec(stub, {})


def test_check_verdicts(capsys):
    check("Exercise 9.1", lambda: None)
    def wrong():
        raise AssertionError("expected 2 tokens, got 1")
    check("Exercise 9.2", wrong)
    def stub():
        raise NotImplementedError("Exercise 9.3")
    check("Exercise 9.3", stub)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{PASSED} Exercise 9.1: passed"
    assert lines[1] == f"{FAILED} Exercise 9.2: expected 2 tokens, got 1"
    assert lines[2].startswith(f"{FAILED} Exercise 9.3: not attempted yet")


def test_a_name_error_says_which_name(capsys):
    def typo():
        return undefined_helper_name  # noqa: F821
    check("Exercise 9.4", typo)
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{FAILED} Exercise 9.4: name 'undefined_helper_name' is not defined")
    assert "spelling" in line


def test_refuses_to_overwrite_the_chapters():
    with pytest.raises(StudentEditionError, match="erase the solutions"):
        write_edition(ROOT / "chapters")


def _outputs(cell):
    return "".join("".join(o.get("text", "")) for o in cell.outputs)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_student_copy_runs_and_every_check_fails_with_a_message(path, tmp_path):
    notebook, stubs = student_notebook(nbformat.read(path, as_version=4))
    assert stubs > 0
    assert not any("solution" in c.metadata.get("tags", []) for c in notebook.cells)
    NotebookClient(notebook, timeout=600, allow_errors=True, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "chapters")}}).execute()
    checks = [c for c in notebook.cells if "exercise-check" in c.metadata.get("tags", [])]
    assert checks
    for cell in checks:
        verdict = _outputs(cell)
        assert verdict.startswith(FAILED), f"a check passes or crashed on the student copy: {verdict!r}"
        assert len(verdict.split(":", 1)[-1].strip()) > 10, "the verdict gives no message"


def test_written_answers_are_replaced_by_a_place_for_the_students_own():
    notebook = nbformat.v4.new_notebook()
    answer = nbformat.v4.new_markdown_cell("The paired interval is narrower because ...")
    answer.metadata["tags"] = ["answer"]
    question = nbformat.v4.new_markdown_cell("**Exercise 9.9.** Why?")
    notebook.cells = [question, answer]
    student, stubs = student_notebook(notebook)
    assert stubs == 0
    assert student.cells[0].source == question.source
    assert "narrower" not in student.cells[1].source and "Your answer" in student.cells[1].source
    assert "answer" not in student.cells[1].metadata["tags"]
