"""The book's Sphinx extension: punctuation kept with the inline maths or code before it, figure alt texts."""
from docutils import nodes

from book.tooling.sphinx_pages import figure_alt_texts, punctuation_kept_on_the_line


def paragraph(*children):
    document = nodes.document(None, None)
    document += nodes.paragraph("", "", *children)
    return document


def test_punctuation_after_inline_maths_is_wrapped_with_it():
    document = paragraph(nodes.Text("with "), nodes.math("", "z_i"), nodes.Text("; then "),
                         nodes.math("", "P"), nodes.Text(".)"), nodes.math("", "Q"), nodes.Text(" and"))
    punctuation_kept_on_the_line(None, document)
    para = document[0]
    kept = [node for node in para.children if isinstance(node, nodes.inline)]
    assert [node.astext() for node in kept] == ["z_i;", "P.)"]
    assert all(node["classes"] == ["punctuation-kept"] for node in kept)
    assert para.astext() == "with z_i; then P.)Q and"  # no character lost or moved
    assert isinstance(para[-2], nodes.math) and para[-2].astext() == "Q"  # a space after: left alone


def test_punctuation_after_a_short_literal_is_wrapped_with_it_but_not_after_a_long_one():
    long_literal = "python -m book.train --preset tiny --steps 100"
    document = paragraph(nodes.literal("", "--json"), nodes.Text("? or "),
                         nodes.literal("", long_literal), nodes.Text("."))
    punctuation_kept_on_the_line(None, document)
    para = document[0]
    kept = [node for node in para.children if isinstance(node, nodes.inline)]
    assert [node.astext() for node in kept] == ["--json?"]
    assert para.astext() == f"--json? or {long_literal}."


def test_a_figure_image_takes_its_caption_as_alternative_text():
    document = nodes.document(None, None)
    captioned = nodes.figure("", nodes.image(uri="a.png"), nodes.caption("", "Loss  against\nsteps."))
    described = nodes.figure("", nodes.image(uri="b.png", alt="a chart"), nodes.caption("", "Caption."))
    bare = nodes.figure("", nodes.image(uri="c.png"))
    document += [captioned, described, bare]
    figure_alt_texts(None, document)
    assert [image.get("alt") for image in document.findall(nodes.image)] == [
        "Loss against steps.", "a chart", None]
