"""Where things are: the repository's folders, and a check that an output folder can be written.

Used by every command that writes results, so that an unusable ``--out`` is refused before any
work starts instead of after it.
"""
from __future__ import annotations

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
