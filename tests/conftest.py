import os

# Set before nbval starts any kernel, which inherits the environment.
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("PYTHONHASHSEED", "0")
os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")


import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD_HTML = ROOT / "_build" / "html"
BOOK_SOURCES = ["chapters", "book", "_toc.yml", "_config.yml"]


def _newest_source_mtime():
    newest = 0.0
    for name in BOOK_SOURCES:
        path = ROOT / name
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        newest = max([newest] + [p.stat().st_mtime for p in files])
    return newest


@pytest.fixture(scope="session")
def built_book():
    """The static book in _build/html, built with warnings as errors unless already up to date."""
    index = BUILD_HTML / "index.html"
    if not index.exists() or index.stat().st_mtime < _newest_source_mtime():
        command = ["jupyter-book", "build", str(ROOT), "--warningiserror", "--nitpick", "--keep-going"]
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, "the book does not build:\n" + result.stdout[-4000:] + result.stderr[-2000:]
    return BUILD_HTML
