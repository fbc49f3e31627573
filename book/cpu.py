"""How the commands use the CPU: half the cores as threads, and idle threads that sleep.

PyTorch splits each operation over OpenMP threads, by default one per core. Between two
operations the threads waiting for work spin (they stay on their core, polling). On a machine
busy with other work, a spinning thread takes the core that the thread it waits for needs, and a
training step of the book's small models becomes many times slower; with
``OMP_WAIT_POLICY=PASSIVE`` the waiting threads sleep. Using half the cores leaves room for the
other work, and costs little on an idle machine because the book's matrices are small.
``python benchmarks/run.py --only threads`` compares these settings with PyTorch's default and
with one thread, on an idle machine and on a busy one, as ratios to the best setting.

The commands (``python -m book.train``, ``book.generate``) import this module before PyTorch,
because OpenMP reads its settings once, when PyTorch loads it. A setting already in the
environment is kept (``OMP_WAIT_POLICY=ACTIVE`` restores spinning, ``OMP_NUM_THREADS=N`` or
``--threads N`` sets the threads); ``BOOK_CPU_DEFAULTS=0`` leaves the environment alone. In a
notebook, set the variables before ``import torch`` (or in the shell that starts Jupyter).
"""
from __future__ import annotations

import os
import sys

SETTINGS = {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // 2))}


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
