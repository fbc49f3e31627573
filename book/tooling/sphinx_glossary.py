"""Sphinx extension: link the first use of each glossary term on a page to the glossary.

The glossary (chapters/appendix_glossary.md, a ``glossary`` directive) defines the terms; the
chapters keep plain prose, readable as is in Jupyter. On each rendered page other than the
glossary, the first time a term (or its plural) appears in running text, it becomes a link to
its entry. Headings, code, maths, links and captions are left alone.
"""
import re

from docutils import nodes
from sphinx import addnodes

SKIP = (nodes.literal, nodes.literal_block, nodes.reference, nodes.title, nodes.math,
        nodes.math_block, nodes.raw, nodes.caption, nodes.term, addnodes.pending_xref,
        nodes.FixedTextElement, nodes.citation)  # a cited paper's title is quoted, not taught


def glossary_terms(env):
    """{lower-case term: (docname, anchor)} from the standard domain's glossary entries."""
    std = env.get_domain("std")
    return {name.lower(): (docname, anchor) for (kind, name), (docname, anchor) in std.objects.items()
            if kind == "term"}


def term_pattern(terms):
    # Longest first, so that "causal mask" wins over "mask"; an optional plural "s".
    names = sorted(terms, key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(re.escape(n) for n in names) + r")(s?)\b", re.IGNORECASE)


def skipped(node) -> bool:
    parent = node.parent
    while parent is not None:
        if isinstance(parent, SKIP):
            return True
        classes = parent.get("classes", []) if isinstance(parent, nodes.Element) else []
        if "cell_output" in classes or "cell_input" in classes:
            return True
        parent = parent.parent
    return False


def link_terms(app, doctree, docname):
    if app.builder.format != "html":
        return
    terms = glossary_terms(app.env)
    if not terms or any(doc == docname for doc, _ in terms.values()):
        return
    pattern, seen = term_pattern(terms), set()
    for text in list(doctree.findall(nodes.Text)):
        if not isinstance(text.parent, nodes.paragraph) and not isinstance(text.parent, (nodes.emphasis, nodes.strong)):
            continue
        if skipped(text):
            continue
        value, pieces, position = text.astext(), [], 0
        for match in pattern.finditer(value):
            key = match.group(1).lower()
            if key in seen or key not in terms:
                continue
            seen.add(key)
            target, anchor = terms[key]
            uri = app.builder.get_relative_uri(docname, target) + "#" + anchor
            pieces.append(nodes.Text(value[position:match.start()]))
            link = nodes.reference("", "", nodes.Text(match.group(0)), refuri=uri, internal=True,
                                   classes=["glossary-link"], reftitle=f"{match.group(1)} (glossary)")
            pieces.append(link)
            position = match.end()
        if pieces:
            pieces.append(nodes.Text(value[position:]))
            parent = text.parent
            index = parent.index(text)
            parent[index:index + 1] = pieces


def setup(app):
    app.connect("doctree-resolved", link_terms)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
