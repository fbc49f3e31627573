"""How the commands use the CPU's threads: OpenMP's idle threads sleep instead of spinning.

PyTorch splits each operation over one OpenMP thread per core. Between two operations, by
default, the threads that wait for work spin for a while (they stay on their core, polling). On
an idle machine that saves waking them up; on a machine busy with other work, a spinning thread
takes the core that the thread it waits for needs, and a training step of the book's models
becomes many times slower. With ``OMP_WAIT_POLICY=PASSIVE`` the waiting threads sleep.
``python benchmarks/run.py --only threads`` measures both, and one thread, on an idle machine
and on a busy one; the setting chosen here stays within 1.5x of the best in both conditions.

The commands (``python -m book.train``, ``book.generate``) import this module before PyTorch,
because OpenMP reads its settings once, when PyTorch loads it. A setting already in the
environment is kept, so ``OMP_WAIT_POLICY=ACTIVE python -m book.train ...`` restores spinning;
``BOOK_CPU_DEFAULTS=0`` leaves the environment alone. In a notebook, set the variable before
``import torch`` (or in the shell that starts Jupyter).
"""
from __future__ import annotations

import os
import sys

SETTINGS = {"OMP_WAIT_POLICY": "PASSIVE"}


def apply(environ=os.environ) -> dict[str, str]:
    """Put the book's settings into ``environ`` where they are not set yet; return what was set."""
    if environ.get("BOOK_CPU_DEFAULTS", "1") == "0":
        return {}
    applied = {name: value for name, value in SETTINGS.items() if name not in environ}
    environ.update(applied)
    return applied


def describe() -> str:
    """How this process's OpenMP threads wait, for the start-of-training summary."""
    policy = os.environ.get("OMP_WAIT_POLICY", "").upper()
    return {"PASSIVE": "idle threads sleep", "ACTIVE": "idle threads spin"}.get(policy, "idle threads spin a while")


# Too late once PyTorch is loaded: OpenMP has read the environment already.
APPLIED = apply() if "torch" not in sys.modules else {}
