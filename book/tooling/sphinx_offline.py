"""Sphinx extension: serve MathJax from the built book itself, so equations render offline.

Jupyter Book loads MathJax from a CDN by default; readers of this book may have no network.
The ``jupyter-server-mathjax`` package ships MathJax 2.7; this extension copies it into the
site's ``_static/mathjax`` and points Sphinx at that copy.
"""
import pathlib
import shutil

import jupyter_server_mathjax

MATHJAX_SOURCE = pathlib.Path(jupyter_server_mathjax.__file__).parent / "static"
MATHJAX_PATH = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
MATHJAX2_CONFIG = {
    # Sphinx wraps math in \( \) or \[ \] inside elements of class "math"; pages mark
    # everything else "tex2jax_ignore", so only those elements are typeset.
    "tex2jax": {
        "inlineMath": [["\\(", "\\)"]],
        "displayMath": [["\\[", "\\]"]],
        "processEscapes": True,
        "processClass": "tex2jax_process|mathjax_process|math|output_area",
        "ignoreClass": "tex2jax_ignore|mathjax_ignore",
    },
    # The package ships the STIX web fonts only (no TeX fonts, no image fonts). MathJax probes
    # web-font loading with a font whose source is "about:blank", which browsers refuse (a CORS
    # error on every page); a local() source probes the same way without a request.
    "HTML-CSS": {
        "availableFonts": [], "preferredFont": None, "webFont": "STIX-Web", "imageFont": None,
        # Matching STIX's small x-height to the text font's enlarges all maths by about 30%;
        # the text's own size reads better and keeps the line spacing even.
        "matchFontHeight": False,
        "styles": {"@font-face": {"font-family": "MathJax_Blank", "src": "local('MathJax_Blank')"}},
    },
    "showMathMenu": False,
    "messageStyle": "none",
}


def use_local_mathjax(app, config):
    config.mathjax_path = MATHJAX_PATH
    config.mathjax3_config = None
    config.mathjax2_config = MATHJAX2_CONFIG
    config.myst_update_mathjax = False  # it would add a MathJax 3 configuration


def copy_mathjax(app, exception):
    if exception is None and app.builder.format == "html":
        target = pathlib.Path(app.outdir) / "_static" / "mathjax"
        if not target.exists():
            shutil.copytree(MATHJAX_SOURCE, target, ignore=shutil.ignore_patterns("*.py", "__pycache__"))


def setup(app):
    app.connect("config-inited", use_local_mathjax, priority=900)
    app.connect("build-finished", copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
