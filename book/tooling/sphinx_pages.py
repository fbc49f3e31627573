"""Sphinx extension: the book's page chrome, fixed once for every page.

- one search field per page (the theme draws a second one in a header bar);
- each inline script once (``THEBE_JS_URL`` is otherwise declared twice, a script error);
- a light/dark mode the theme accepts from the first paint (an empty one is logged as an error);
- the toggle over an exercise's hidden solution (a code cell tagged ``solution``) says "Solution";
- punctuation right after inline maths or a short literal stays on its line (a line may
  otherwise break between the maths and a comma, leaving the comma alone at the start of the
  next line);
- a figure's image takes its caption as its alternative text (Sphinx would give a screen reader
  the image's file name);
- a short inline literal is never split over two lines (``--json`` broken at its hyphen, or
  ``x @ W.T`` at a space, reads as two things), a longer one only on a narrow screen;
- the book's stylesheet (``static/book.css``): maths set at the size of the text and on its
  baseline, display equations that scroll inside their own box, code and output blocks that fit
  88 characters in the column, figures and tables that never widen the page on a phone;
- the book's script (``static/book.js``): a box that scrolls sideways fades at the edge beyond
  which more of it lies; a figure's image links to itself at full size.
"""
import pathlib

from docutils import nodes

STATIC = pathlib.Path(__file__).parent / "static"


def theme_options(app, config):
    options = dict(config.html_theme_options or {})
    # The sidebar keeps its search field; the header bar's copy goes.
    options["navbar_persistent"] = []
    config.html_theme_options = options
    config.html_context = {"default_mode": "auto", **(config.html_context or {})}
    config.html_static_path = [*config.html_static_path, str(STATIC)]


def one_of_each_script(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        attributes = getattr(script, "attributes", {}) or {}
        filename = str(getattr(script, "filename", script) or "")
        key = (filename, tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


SOLUTION_PROMPTS = {"prompt_show": "Solution", "prompt_hide": "Hide the solution"}


def solution_prompts(app, doctree):
    for cell in doctree.findall(nodes.container):
        if cell.get("nb_element") == "cell_code" and "tag_solution" in cell.get("classes", []):
            cell.attributes.update(SOLUTION_PROMPTS)


TRAILING_PUNCTUATION = ".,;:!?)]"
# A phone's column holds about 40 characters of inline code in the text, a tablet's or laptop's about 70.
WHOLE_ON_EVERY_SCREEN = 30
WHOLE_ON_WIDE_SCREENS = 58


def punctuation_kept_on_the_line(app, doctree):
    """Wrap inline maths or a short literal with the punctuation right after it, on one line."""
    def kept_whole(node):
        return isinstance(node, nodes.math) or (
            isinstance(node, nodes.literal) and len(node.astext()) <= WHOLE_ON_EVERY_SCREEN)

    for node in list(doctree.findall(kept_whole)):
        parent = node.parent
        index = parent.index(node)
        after = parent[index + 1] if index + 1 < len(parent) else None
        if not isinstance(after, nodes.Text) or not after or after[0] not in TRAILING_PUNCTUATION:
            continue
        text = str(after)
        length = len(text) - len(text.lstrip(TRAILING_PUNCTUATION))
        kept = nodes.inline(classes=["punctuation-kept"])
        parent.replace(node, kept)
        kept += node
        kept += nodes.Text(text[:length])
        if length < len(text):
            parent.replace(after, nodes.Text(text[length:]))
        else:
            parent.remove(after)


def in_title(node) -> bool:
    while node is not None:
        if isinstance(node, nodes.title):
            return True
        node = node.parent
    return False


def literals_kept_whole(app, doctree):
    # A heading's letters are two or three times the size: its literals wrap as they need to.
    for literal in doctree.findall(nodes.literal):
        if in_title(literal):
            continue
        length = len(literal.astext())
        if length <= WHOLE_ON_EVERY_SCREEN:
            literal["classes"].append("literal-whole")
        elif length <= WHOLE_ON_WIDE_SCREENS:
            literal["classes"].append("literal-whole-wide")


def figure_alt_texts(app, doctree):
    for figure in doctree.findall(nodes.figure):
        captions = list(figure.findall(nodes.caption))
        if not captions:
            continue
        for image in figure.findall(nodes.image):
            if not image.get("alt"):
                image["alt"] = " ".join(captions[0].astext().split())


def setup(app):
    app.connect("config-inited", theme_options, priority=900)
    app.connect("html-page-context", one_of_each_script, priority=999)
    app.connect("doctree-read", solution_prompts)
    app.connect("doctree-read", punctuation_kept_on_the_line)
    app.connect("doctree-read", literals_kept_whole)
    app.connect("doctree-read", figure_alt_texts)
    app.add_css_file("book.css")
    app.add_js_file(None, body=f"window.bookWholeWordChars = {WHOLE_ON_EVERY_SCREEN};")
    app.add_js_file("book.js")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
