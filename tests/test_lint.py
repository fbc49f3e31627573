"""Ruff finds nothing: lint and import order (settings in pyproject.toml; chapters/.ruff.toml
holds the notebooks' code to the book's width of 88 characters). One test per folder and per
notebook, so a failure names what to fix; `ruff check --fix` sorts imports."""
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
FOLDERS = ["book", "tests", "benchmarks", "data"]
NOTEBOOKS = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "chapters").glob("*.ipynb"))


def ruff(*args):
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("target", FOLDERS + NOTEBOOKS)
def test_ruff_finds_nothing(target):
    result = ruff("check", "--output-format", "concise", target)
    assert result.returncode == 0, f"ruff check {target}:\n{result.stdout}{result.stderr}"


def test_notebooks_are_held_to_the_book_width():
    """The same 89-character line is an error in a notebook and fine in the package."""
    line = "x = " + "1 + " * 21 + "1\n"
    assert len(line.rstrip("\n")) == 89
    for where, expected in (("chapters/probe.py", 1), ("book/probe.py", 0)):
        result = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise",
                                 "--select", "E501", "--stdin-filename", where, "-"], cwd=ROOT, input=line,
                                capture_output=True, text=True)
        assert result.returncode == expected, f"{where}: {result.stdout}{result.stderr}"
