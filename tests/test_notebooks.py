"""Conventions every chapter notebook keeps (the guide's chapter conventions).

nbval re-executes the notebooks and compares their outputs; these tests check what
nbval cannot: that the committed notebooks were run top to bottom, seed everything,
are compared strictly for most cells, and have a summary and checked exercises.
"""
import json
import pathlib
import re

import pytest

from book.exercise import PASSED
from book.tooling.colab import is_setup_cell

CHAPTERS = sorted((pathlib.Path(__file__).parent.parent / "chapters").glob("[0-9][0-9]_*.ipynb"))
STRICT_SHARE = 0.75


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def code_cells(notebook):
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code" and "".join(cell["source"]).strip()]


def text_of(cell):
    return "".join(cell["source"])


def output_text(cell):
    parts = []
    for output in cell["outputs"]:
        parts.append("".join(output.get("text", "")))
        parts.append("".join(output.get("data", {}).get("text/plain", "")))
    return "".join(parts)


def is_ignored(cell):
    # nbval honours the marker only as a comment alone on its line.
    marker = any(line.strip() == "# NBVAL_IGNORE_OUTPUT" for line in text_of(cell).splitlines())
    return marker or "nbval-ignore-output" in cell["metadata"].get("tags", [])


def test_there_are_chapters():
    assert CHAPTERS, "no chapter notebooks found"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_executed_top_to_bottom_without_errors(path):
    cells = code_cells(load(path))
    counts = [cell["execution_count"] for cell in cells]
    assert None not in counts, "a code cell was never executed"
    assert counts == list(range(1, len(counts) + 1)), "cells were not executed once each, top to bottom"
    for cell in cells:
        tags = cell["metadata"].get("tags", [])
        errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
        if "raises-exception" not in tags:
            assert not errors, f"stored error output in cell: {text_of(cell)[:80]!r}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_first_code_cell_seeds_everything(path):
    # The Colab setup cell comes first; it does nothing outside Colab (tests/test_colab.py).
    first = text_of([cell for cell in code_cells(load(path)) if not is_setup_cell(cell)][0])
    assert "torch.manual_seed(0)" in first


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_most_outputs_are_compared_strictly(path):
    with_output = [cell for cell in code_cells(load(path)) if cell["outputs"]]
    strict = [cell for cell in with_output if not is_ignored(cell)]
    share = len(strict) / len(with_output)
    assert share >= STRICT_SHARE, f"only {share:.0%} of cells with output are compared strictly"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_ignored_output_is_followed_by_a_check(path):
    cells = code_cells(load(path))
    for index, cell in enumerate(cells):
        if is_ignored(cell):
            following = text_of(cell) + "".join(text_of(c) for c in cells[index + 1:index + 2])
            assert "assert" in following, f"ignored output without a tolerance check: {text_of(cell)[:80]!r}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_has_summary_and_checked_exercises(path):
    notebook = load(path)
    headings = [line for cell in notebook["cells"] if cell["cell_type"] == "markdown"
                for line in text_of(cell).splitlines() if line.startswith("#")]
    assert any(re.search(r"\bSummary\b", h) for h in headings), "no Summary section"
    assert any(re.search(r"\bExercises\b", h) for h in headings), "no Exercises section"
    def tagged(tag):
        return [c for c in notebook["cells"] if tag in c["metadata"].get("tags", [])]

    solutions, checks = tagged("solution"), tagged("exercise-check")
    assert solutions, "no solution cells (tag: solution)"
    assert len(checks) >= len(solutions), "every solution needs a check cell (tag: exercise-check)"
    for cell in solutions:
        assert "hide-cell" in cell["metadata"]["tags"], "solutions are hidden in the book (tag: hide-cell)"
    for cell in checks:
        assert output_text(cell).startswith(PASSED), f"exercise check does not pass: {output_text(cell)!r}"


@pytest.mark.parametrize("path", sorted(CHAPTERS[0].parent.glob("*.ipynb")), ids=lambda p: p.stem)
def test_opens_with_a_box_saying_what_the_reader_will_get(path):
    cells = load(path)["cells"]
    openers = [i for i, cell in enumerate(cells) if "opener" in cell["metadata"].get("tags", [])]
    assert len(openers) == 1, f"{len(openers)} cells tagged opener; one is expected, under the title"
    opener = cells[openers[0]]
    assert opener["cell_type"] == "markdown" and re.match(r"> \*\*What you will \w+", text_of(opener)), \
        "the opener is a blockquote that starts with '> **What you will ...**'"
    before = [cell for cell in cells[:openers[0]] if not is_setup_cell(cell)]
    assert len(before) == 1 and text_of(before[0]).startswith("# "), "the opener comes right after the title cell"


@pytest.mark.parametrize("path", sorted(CHAPTERS[0].parent.glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebooks_name_their_kernel_and_store_one_stream_per_channel(path):
    import nbformat

    from book.tooling.normalize import normalize

    notebook = nbformat.read(path, as_version=4)
    assert not normalize(notebook), f"{path.name}: run python -m book.tooling.normalize"


def test_normalize_merges_adjacent_streams_of_one_channel():
    from book.tooling.normalize import merged_streams

    outputs = [{"output_type": "stream", "name": "stdout", "text": "a\n"},
               {"output_type": "stream", "name": "stdout", "text": ["b\n"]},
               {"output_type": "stream", "name": "stderr", "text": "c\n"},
               {"output_type": "stream", "name": "stdout", "text": "d\n"}]
    merged = merged_streams(outputs)
    assert [(o["name"], "".join(o["text"])) for o in merged] == [("stdout", "a\nb\n"), ("stderr", "c\n"),
                                                                  ("stdout", "d\n")]


def test_normalize_names_the_kernel_and_merges_a_cells_printed_pieces():
    import nbformat

    from book.tooling.normalize import KERNELSPEC, normalize

    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(1); print(2)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n"),
                    nbformat.v4.new_output("stream", name="stdout", text="2\n")]
    notebook.cells.append(cell)
    assert "kernelspec" not in notebook.metadata
    assert normalize(notebook) is True
    assert notebook.metadata["kernelspec"] == KERNELSPEC
    assert [(o["name"], o["text"]) for o in notebook.cells[0].outputs] == [("stdout", "1\n2\n")]
    assert normalize(notebook) is False, "a normalized notebook stays as it is"

MAX_LINE = 88
NOTEBOOKS = sorted(CHAPTERS[0].parent.glob("*.ipynb")) if CHAPTERS else []


def fenced_code_lines(markdown: str) -> list[str]:
    """The lines inside the Markdown's fenced code blocks (not directives such as {admonition})."""
    lines, fence = [], None
    for line in markdown.splitlines():
        stripped = line.strip()
        if fence is None and stripped.startswith(("```", "~~~")):
            fence = stripped[:3] if not stripped[3:].lstrip("`~").startswith("{") else "directive"
            continue
        if fence is not None and stripped.startswith(("```", "~~~")) and stripped.strip("`~") == "":
            fence = None
            continue
        if fence not in (None, "directive"):
            lines.append(line)
    return lines


def long_lines(notebook) -> list[str]:
    """Each code or printed line over MAX_LINE characters, as 'cell N: source|output: line'."""
    found = []
    for number, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "markdown":
            found += [f"cell {number}: code block in text ({len(line)}): {line[:60]}..."
                      for line in fenced_code_lines(text_of(cell)) if len(line) > MAX_LINE]
        # The Colab setup cell is written from book/tooling/colab.py and never shown in the book.
        if cell["cell_type"] != "code" or is_setup_cell(cell):
            continue
        pieces = [("source", text_of(cell))]
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream":
                pieces.append(("output", "".join(output["text"])))
            elif "text/plain" in output.get("data", {}) and not any(
                    kind in output["data"] for kind in ("text/html", "image/png", "image/svg+xml")):
                pieces.append(("output", "".join(output["data"]["text/plain"])))
            elif output["output_type"] == "error":
                pieces.append(("output", f"{output['ename']}: {output['evalue']}"))
        for kind, text in pieces:
            found += [f"cell {number}: {kind} ({len(line)}): {line[:60]}..." for line in text.splitlines()
                      if len(line) > MAX_LINE]
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_and_printed_lines_fit_the_page(path):
    """The book's column shows 88 characters; longer lines scroll sideways on every screen."""
    found = long_lines(load(path))
    assert not found, f"{len(found)} line(s) over {MAX_LINE} characters:\n" + "\n".join(found[:20])


def figures(notebook):
    """(cell number, cell, PNG bytes) for every PNG a code cell shows."""
    import base64

    for number, cell in enumerate(notebook["cells"]):
        for output in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            if "image/png" in output.get("data", {}):
                yield number, cell, base64.b64decode("".join(output["data"]["image/png"]))


# chapters/matplotlibrc draws text at 10-11 points for a 6.4-inch column at 150 dpi; a figure
# at most 8 inches wide is shrunk into the book's column by at most 8/6.4 * 72 / 96 or so, so its
# smallest text stays at 9 points or more as rendered.
MIN_DPI, MAX_WIDTH_INCHES = 149, 8.0


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_figures_are_sharp_fit_the_column_and_have_captions(path):
    import io

    from PIL import Image

    for number, cell, png in figures(load(path)):
        image = Image.open(io.BytesIO(png))
        dpi = image.info.get("dpi", (72, 72))[0]
        assert dpi >= MIN_DPI, f"cell {number}: figure at {dpi:.0f} dpi (run from chapters/, see matplotlibrc)"
        width = image.size[0] / dpi
        assert width <= MAX_WIDTH_INCHES, f"cell {number}: figure {width:.1f} inches wide; stack its panels"
        caption = cell["metadata"].get("mystnb", {}).get("figure", {}).get("caption", "")
        assert len(caption) > 20, f"cell {number}: figure without a caption (metadata mystnb.figure.caption)"
