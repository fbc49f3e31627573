"""The built static book: every page of the table of contents is there, with its figures,
and nothing on it needs the network."""
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def toc_files():
    return re.findall(r"(?:root|file):\s*(\S+)", (ROOT / "_toc.yml").read_text())


@pytest.mark.parametrize("name", toc_files())
def test_every_page_is_built(built_book, name):
    page = built_book / f"{name}.html"
    assert page.exists(), f"{name} is in _toc.yml but was not rendered"
    html = page.read_text(encoding="utf-8")
    # Scripts and styles load from the book itself: a reader may have no network.
    external = re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"', html)
    assert not external, f"{name} loads {external}"


@pytest.mark.parametrize("name", [n for n in toc_files() if (ROOT / f"{n}.ipynb").exists()])
def test_chapter_pages_show_their_figures(built_book, name):
    html = (built_book / f"{name}.html").read_text(encoding="utf-8")
    notebook = (ROOT / f"{name}.ipynb").read_text(encoding="utf-8")
    figures_in_notebook = notebook.count('"image/png"')
    assert html.count("<img") >= figures_in_notebook
    if pathlib.Path(name).name[:2].isdigit():
        assert figures_in_notebook > 0, "every chapter has figures"


def test_math_is_served_locally(built_book):
    assert (built_book / "_static" / "mathjax" / "MathJax.js").exists()
    html = (built_book / "chapters" / "preface.html").read_text(encoding="utf-8")
    assert "_static/mathjax/MathJax.js" in html


def test_preface_names_the_other_metagpt(built_book):
    text = (built_book / "chapters" / "preface.html").read_text(encoding="utf-8")
    assert "arXiv:2308.00352" in text and "February 2019" in text


@pytest.mark.parametrize("name", [n for n in toc_files() if (ROOT / f"{n}.ipynb").exists()])
def test_notebook_pages_launch_on_colab_and_binder_without_showing_the_setup_cell(built_book, name):
    from book.tooling.colab import REPOSITORY_URL

    html = (built_book / f"{name}.html").read_text(encoding="utf-8")
    repository = REPOSITORY_URL.removeprefix("https://github.com/")
    assert f"https://colab.research.google.com/github/{repository}/blob/main/{name}.ipynb" in html
    assert f"https://mybinder.org/v2/gh/{repository}/main?urlpath=lab/tree/{name}.ipynb" in html
    assert "google.colab" not in html, "the Colab setup cell is for notebooks, not for the book's pages"


@pytest.mark.parametrize("name", [n for n in toc_files() if (ROOT / f"{n}.ipynb").exists()])
def test_tool_markers_stay_in_the_notebooks_but_not_on_the_pages(built_book, name):
    html = (built_book / f"{name}.html").read_text(encoding="utf-8")
    for marker in ("NBVAL_IGNORE_OUTPUT", "#| export"):
        assert marker not in html, f"{name} shows the tool marker {marker!r} to readers"


def test_reader_source_drops_only_marker_lines():
    from book.tooling.sphinx_markers import reader_source

    assert reader_source("# NBVAL_IGNORE_OUTPUT\nx = 1\n# a comment") == "x = 1\n# a comment"
    assert reader_source("#| export book.loss\n\ndef f():\n    pass") == "def f():\n    pass"


@pytest.mark.parametrize("name", [n for n in toc_files() if pathlib.Path(n).name[:2].isdigit()])
def test_hidden_solutions_are_labelled_as_solutions(built_book, name):
    import json

    html = (built_book / f"{name}.html").read_text(encoding="utf-8")
    cells = json.loads((ROOT / f"{name}.ipynb").read_text(encoding="utf-8"))["cells"]
    solutions = sum("solution" in cell["metadata"].get("tags", []) for cell in cells)
    prompts = re.findall(r'<p class="collapsed admonition-title">([^<]*)</p>', html)
    assert prompts.count("Solution") == solutions, f"{name}: toggles {prompts}, {solutions} solutions"


@pytest.mark.parametrize("name", [n for n in toc_files() if pathlib.Path(n).name[:2].isdigit()])
def test_chapters_link_their_first_glossary_terms(built_book, name):
    html = (built_book / f"{name}.html").read_text(encoding="utf-8")
    links = re.findall(r'<a class="glossary-link[^"]*" href="appendix_glossary.html#(term-[^"]+)"', html)
    assert links, f"{name} links no term to the glossary"
    assert len(links) == len(set(links)), f"{name} links a term more than once: {links}"
    glossary = (built_book / "chapters" / "appendix_glossary.html").read_text(encoding="utf-8")
    missing = [anchor for anchor in links if f'id="{anchor}"' not in glossary]
    assert not missing, f"{name} links to glossary entries that do not exist: {missing}"
