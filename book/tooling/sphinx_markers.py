"""Sphinx extension: hide the lines of code cells that speak to tools, not to readers.

``# NBVAL_IGNORE_OUTPUT`` tells nbval not to compare a cell's output, and ``#| export book.x``
tells ``book.tooling.sync`` which module a cell belongs to. Both stay in the notebooks, where
the tools read them; in the rendered book they are noise, so they are dropped from the
displayed source.
"""
from docutils import nodes

TOOL_MARKERS = ("# NBVAL_IGNORE_OUTPUT", "#| export")


def reader_source(text: str) -> str:
    """``text`` without the lines that are tool markers (and without the blank lines they leave first)."""
    lines = [line for line in text.splitlines() if not line.strip().startswith(TOOL_MARKERS)]
    while lines and not lines[0].strip():
        lines.pop(0)
    return "\n".join(lines)


def strip_markers(app, doctree):
    for block in list(doctree.findall(nodes.literal_block)):
        text = block.astext()
        if not any(marker in text for marker in TOOL_MARKERS):
            continue
        cleaned = reader_source(text)
        block.children = [nodes.Text(cleaned)]
        if "rawsource" in block.__dict__:
            block.rawsource = cleaned


def setup(app):
    app.connect("doctree-read", strip_markers)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
