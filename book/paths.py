"""Where things are: the repository's folders, and a check that an output folder can be written.

Used by every command that writes results, so that an unusable ``--out`` is refused before any
work starts instead of after it.
"""
from __future__ import annotations

import contextlib
import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHECKPOINTS = ROOT / "checkpoints"


def unwritable_reason(folder: pathlib.Path) -> str | None:
    """Why ``folder`` cannot be created and written to, or None when it can (it is created)."""
    folder = pathlib.Path(folder)
    if folder.exists() and not folder.is_dir():
        return "it is a file, not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"  # processes side by side (torchrun) each probe their own
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        return error.strerror or str(error)
    return None


@contextlib.contextmanager
def removed_on_failure(folder: pathlib.Path):
    """If the block fails, remove ``folder`` and the parents it created again, as long as they are empty.

    A command that checks its output folder first (creating it) and then fails on a bad input
    leaves no empty folder behind.
    """
    folder = pathlib.Path(folder).absolute()
    missing = [path for path in (folder, *folder.parents) if not path.exists()]  # the deepest first
    try:
        yield
    except BaseException:
        for path in missing:
            try:
                path.rmdir()
            except OSError:
                break
        raise
