"""The launch buttons and the Colab setup cell every notebook opens with."""
import contextlib
import json
import os
import pathlib
import subprocess
import sys
import types

import pytest
import yaml

from book.tooling import colab

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = colab.notebooks()


def config():
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


def test_config_has_launch_buttons_for_this_repository():
    settings = config()
    assert settings["repository"]["url"] == colab.REPOSITORY_URL
    assert settings["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert settings["launch_buttons"]["binderhub_url"] == "https://mybinder.org"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_opens_with_the_current_setup_cell(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    setup = [cell for cell in cells if colab.is_setup_cell(cell)]
    assert len(setup) == 1, "exactly one Colab setup cell (run `python -m book.tooling.colab`)"
    assert "".join(setup[0]["source"]) == colab.SETUP_SOURCE, "outdated setup cell (run `python -m book.tooling.colab`)"
    first_code = next(cell for cell in cells if cell["cell_type"] == "code")
    assert first_code is setup[0], "the setup cell must run before any other code"
    assert "remove-cell" in setup[0]["metadata"]["tags"]


@contextlib.contextmanager
def recorded_side_effects(monkeypatch, on_colab: bool):
    """Run the cell with subprocess, chdir and sys.path recorded instead of acted on."""
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda args, **kwargs: calls.append(("run", args, kwargs)))
    monkeypatch.setattr(os, "chdir", lambda path: calls.append(("chdir", path)))
    monkeypatch.setattr(sys, "path", list(sys.path))
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    yield calls


def test_setup_cell_does_nothing_outside_colab(monkeypatch):
    path_before = list(sys.path)
    with recorded_side_effects(monkeypatch, on_colab=False) as calls:
        exec(colab.SETUP_SOURCE, {})
        assert calls == [] and sys.path == path_before


def test_setup_cell_on_colab_clones_installs_and_enters_the_chapters(monkeypatch):
    with recorded_side_effects(monkeypatch, on_colab=True) as calls:
        monkeypatch.setattr(os.path, "isdir", lambda path: False)
        exec(colab.SETUP_SOURCE, {})
        clone, install, chdir = calls
        assert clone[1] == ["git", "clone", "--depth=1", colab.REPOSITORY_URL, colab.CLONE_DIR]
        assert install[1][:3] == [sys.executable, "-m", "pip"] and install[1][-2:] == ["-e", colab.CLONE_DIR]
        assert clone[2] == install[2] == {"check": True}, "a failed clone or install must stop the notebook"
        assert chdir == ("chdir", colab.CLONE_DIR + "/chapters")
        assert sys.path[0] == colab.CLONE_DIR


def test_setup_cell_run_twice_on_colab_does_not_clone_again(monkeypatch):
    with recorded_side_effects(monkeypatch, on_colab=True) as calls:
        monkeypatch.setattr(os.path, "isdir", lambda path: path == colab.CLONE_DIR)
        exec(colab.SETUP_SOURCE, {})
        assert [call[0] for call in calls] == ["chdir"]


def test_inserting_the_cell_keeps_the_notebook_executed_in_order():
    notebook = {"cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["# Title"]},
        {"cell_type": "code", "execution_count": 1, "metadata": {}, "source": ["1"],
         "outputs": [{"output_type": "execute_result", "execution_count": 1, "data": {}, "metadata": {}}]},
        {"cell_type": "code", "execution_count": 2, "metadata": {}, "source": ["2"], "outputs": []},
    ]}
    cells = colab.with_setup_cell(notebook)["cells"]
    assert colab.is_setup_cell(cells[1])
    assert [cell["execution_count"] for cell in cells[1:]] == [1, 2, 3]
    assert cells[2]["outputs"][0]["execution_count"] == 2
    again = colab.with_setup_cell(json.loads(json.dumps(notebook)))
    assert again == notebook, "inserting twice must change nothing"


def test_check_reports_an_outdated_notebook(tmp_path, monkeypatch, capsys):
    stale = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# T"]}],
             "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "x.ipynb").write_text(json.dumps(stale), encoding="utf-8")
    monkeypatch.setattr(colab, "ROOT", tmp_path)
    monkeypatch.setattr(colab, "notebooks", lambda: sorted(tmp_path.glob("*.ipynb")))
    assert colab.main(["--check"]) == 1
    assert "x.ipynb: lacks the current Colab setup cell" in capsys.readouterr().out
    assert colab.main([]) == 0 and colab.main(["--check"]) == 0
