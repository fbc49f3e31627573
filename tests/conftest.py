import os

# Set before nbval starts any kernel, which inherits the environment.
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("PYTHONHASHSEED", "0")
os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")


import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD_HTML = ROOT / "_build" / "html"
BOOK_SOURCES = ["chapters", "book", "_toc.yml", "_config.yml"]


def _newest_source_time():
    times = []
    for name in BOOK_SOURCES:
        path = ROOT / name
        files = [path] if path.is_file() else path.rglob("*")
        times += [f.stat().st_mtime for f in files
                  if f.is_file() and "__pycache__" not in f.parts and ".ipynb_checkpoints" not in f.parts]
    return max(times)


def _build_time():
    # Sphinx rewrites these two files on every build, even when no page changed.
    stamps = [BUILD_HTML / ".buildinfo", BUILD_HTML / "searchindex.js"]
    if not all(stamp.exists() for stamp in stamps):
        return None
    return max(stamp.stat().st_mtime for stamp in stamps)


@pytest.fixture(scope="session")
def built_book():
    """The static book in _build/html, built with warnings as errors unless already up to date."""
    built = _build_time()
    if built is None or built < _newest_source_time():
        jupyter_book = str(pathlib.Path(sys.executable).parent / "jupyter-book")
        command = ["flock", "/tmp/book-build.lock", jupyter_book, "build", str(ROOT),
                   "--warningiserror", "--nitpick", "--keep-going"]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200)
        assert result.returncode == 0, "the book does not build:\n" + (result.stdout + result.stderr)[-4000:]
    return BUILD_HTML
