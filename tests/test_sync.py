import json

import pytest

from book.tooling import sync


def test_generated_modules_match_the_notebooks():
    problems = sync.check()
    assert not problems, "run `python -m book.tooling.sync`:\n" + "\n".join(problems)


def _notebook(path, cells):
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


def _code(source):
    return {"cell_type": "code", "source": source, "metadata": {}, "outputs": [], "execution_count": None}


def test_exported_cells_are_collected_in_order_without_the_marker(tmp_path):
    _notebook(tmp_path / "01_a.ipynb", [
        _code("#| export book.demo\nimport math"),
        _code("x = 1  # not exported"),
        _code("#| export book.demo\ndef area(r):\n    return math.pi * r * r\n"),
    ])
    modules = sync.generated_modules(tmp_path)
    (text,) = modules.values()
    assert text.startswith("# Generated from ")
    assert "import math\n\n\ndef area(r):" in text
    assert "x = 1" not in text and "#| export" not in text


def test_a_module_exported_by_two_notebooks_is_refused(tmp_path):
    _notebook(tmp_path / "01_a.ipynb", [_code("#| export book.demo\nA = 1")])
    _notebook(tmp_path / "02_b.ipynb", [_code("#| export book.demo\nB = 2")])
    with pytest.raises(sync.SyncError, match="exported by both"):
        sync.generated_modules(tmp_path)
