"""book.tooling.sync: the generated modules match the notebooks, and read like hand-written ones."""
import json
import subprocess
import sys

import pytest

from book.tooling import sync


def test_generated_modules_match_the_notebooks():
    problems = sync.check()
    assert not problems, "run `python -m book.tooling.sync`:\n" + "\n".join(problems)


def _notebook(path, cells):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


def _code(source):
    return {"cell_type": "code", "source": source, "metadata": {}, "outputs": [], "execution_count": None}


def _markdown(source):
    return {"cell_type": "markdown", "source": source, "metadata": {}}


DEMO = [
    _markdown("# Circles\n\nSome prose."),
    _code('#| export book.demo\n"""Circles, derived in Chapter 1."""\nfrom __future__ import annotations\n\n'
          "import math\nfrom typing import Sequence"),
    _markdown("## 1.1 Area"),
    _code("x = 1  # not exported"),
    _code("#| export book.demo\nimport math\n\nTURN = 2 * math.pi\nHALF = math.pi\n\n\n"
          "def area(r):\n    return math.pi * r * r"),
    _markdown("## 1.2 Many circles\n\n### Sums"),
    _code("#| export book.demo\nimport torch\nfrom typing import Iterable\nfrom book.errors import BookError\n\n\n"
          "# the sum of many areas\n@torch.no_grad()\ndef total(radii: Sequence[float]) -> float:\n"
          "    return sum(area(r) for r in radii)"),
]


def test_exported_cells_are_collected_in_order_with_their_sections(tmp_path):
    _notebook(tmp_path / "chapters" / "01_a.ipynb", DEMO)
    cells = list(sync.exported_cells(tmp_path / "chapters" / "01_a.ipynb"))
    assert [cell.module for cell in cells] == ["book.demo"] * 3
    assert [cell.section for cell in cells] == ["", "1.1 Area", "1.2 Many circles > Sums"]
    assert {cell.chapter for cell in cells} == {"Chapter 1 (Circles)"}
    assert not any("#| export" in cell.source or "x = 1" in cell.source for cell in cells)


def test_imports_are_hoisted_sorted_and_deduplicated(tmp_path):
    _notebook(tmp_path / "chapters" / "01_a.ipynb", DEMO)
    (text,) = sync.generated_modules(tmp_path / "chapters", tmp_path).values()
    header, docstring, rest = text.split("\n", 2)
    assert header == sync.HEADER.format(notebook="chapters/01_a.ipynb").rstrip("\n")
    assert docstring == '"""Circles, derived in Chapter 1."""'
    imports = rest[:rest.index("\n\n#")]
    assert imports == ("from __future__ import annotations\n\n"
                       "import math\nfrom typing import Iterable, Sequence\n\n"
                       "import torch\n\n"
                       "from book.errors import BookError")
    assert text.count("import math") == 1
    body = rest[len(imports):]
    assert "import" not in body.replace("# ", "")  # no import below the top
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "I,E402", "--stdin-filename",
                           "book/demo.py", "-"], input=text, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout


def test_each_definition_is_stamped_with_its_chapter_and_section(tmp_path):
    _notebook(tmp_path / "chapters" / "01_a.ipynb", DEMO)
    (text,) = sync.generated_modules(tmp_path / "chapters", tmp_path).values()
    assert '# Chapter 1 (Circles), section: 1.1 Area\nTURN = 2 * math.pi\nHALF = math.pi\n' in text
    assert "# Chapter 1 (Circles), section: 1.1 Area\ndef area(r):" in text
    # the stamp goes above the definition's own comment and decorator
    assert ("# Chapter 1 (Circles), section: 1.2 Many circles > Sums\n# the sum of many areas\n"
            "@torch.no_grad()\ndef total(") in text
    assert text.count("# Chapter 1 (Circles)") == 3  # two constants on consecutive lines share one


def test_a_module_exported_by_two_notebooks_is_refused(tmp_path):
    _notebook(tmp_path / "01_a.ipynb", [_code("#| export book.demo\nA = 1")])
    _notebook(tmp_path / "02_b.ipynb", [_code("#| export book.demo\nB = 2")])
    with pytest.raises(sync.SyncError, match="exported by both"):
        sync.generated_modules(tmp_path)


def test_a_docstring_after_the_first_cell_is_refused(tmp_path):
    _notebook(tmp_path / "01_a.ipynb", [_code("#| export book.demo\nA = 1"),
                                        _code('#| export book.demo\n"""Late."""\nB = 2')])
    with pytest.raises(sync.SyncError, match="docstring"):
        sync.generated_modules(tmp_path)


def test_write_then_check_then_drift_then_stale(tmp_path, capsys):
    chapters, root = tmp_path / "chapters", tmp_path
    _notebook(chapters / "01_a.ipynb", DEMO)
    module = root / "book" / "demo.py"
    assert sync.check(chapters, root) == ["book/demo.py is missing"]
    assert sync.main(["--check"], chapters, root) == 1
    assert "out of sync: book/demo.py is missing" in capsys.readouterr().err

    assert sync.main([], chapters, root) == 0
    assert "wrote book/demo.py" in capsys.readouterr().out
    assert module.read_text() == sync.generated_modules(chapters, root)[module]
    assert sync.write(chapters, root) == []  # nothing left to write
    assert sync.main(["--check"], chapters, root) == 0

    module.write_text(module.read_text() + "# edited by hand\n")
    assert sync.check(chapters, root) == ["book/demo.py differs from its notebook's exported cells"]
    assert sync.write(chapters, root) == [module] and sync.check(chapters, root) == []

    # A notebook stops exporting the module: --check names it, writing warns and leaves it.
    _notebook(chapters / "01_a.ipynb", [_markdown("# Circles")])
    assert sync.stale_modules({}, root) == [module]
    assert sync.check(chapters, root) == ["book/demo.py is exported by no notebook"]
    assert sync.main([], chapters, root) == 0
    assert "book/demo.py is exported by no notebook; delete it" in capsys.readouterr().err
    assert module.exists()
    hand_written = root / "book" / "other.py"
    hand_written.write_text('"""Written by hand."""\n')
    assert sync.stale_modules({}, root) == [module]


def test_errors_exit_with_a_message(tmp_path, capsys):
    _notebook(tmp_path / "01_a.ipynb", [_code("#| export book.demo\nA = 1")])
    _notebook(tmp_path / "02_b.ipynb", [_code("#| export book.demo\nB = 2")])
    assert sync.main([], tmp_path, tmp_path) == 2
    assert capsys.readouterr().err.startswith("error: book.demo is exported by both")


def test_a_stamp_stays_within_the_line_width():
    long = "Heads that learned something: a tiny model trained on Shakespeare's text"
    cell = sync.ExportedCell("book.demo", "A = 1", "Chapter 2 (Attention)", f"What attention looks like > {long}")
    assert sync._stamp(cell) == f"# Chapter 2 (Attention), section: {long}"
    deeper = sync.ExportedCell("book.demo", "A = 1", "Chapter 2 (Attention)", f"{long} > {long}")
    assert sync._stamp(deeper) == f"# Chapter 2 (Attention), section: {long}"
    widest = sync.ExportedCell("book.demo", "A = 1", "Chapter 2 (Attention)", long * 2)
    assert len(sync._stamp(widest)) == 120 and sync._stamp(widest).endswith("...")
