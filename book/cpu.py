"""How the commands use the CPU: threads that wait briefly or sleep, as the machine allows; one for generation.

PyTorch splits each operation over OpenMP threads, by default one per core. Between two
operations the threads waiting for work spin (they stay on their core, polling) for a while
before they sleep: about 300,000 polls with the GNU OpenMP that PyTorch ships. On an idle
machine that keeps a training step fast; on a machine busy with other work, a spinning thread
takes the core that the thread it waits for needs, and a step of the book's small models
becomes several times slower. So the commands look at the machine when they start (:func:`busy`
watches it for a tenth of a second). On an idle machine they shorten the spin to
``GOMP_SPINCOUNT`` polls, enough to bridge the gaps inside a training step and short enough to
yield a core that other work wants, and ``python -m book.train`` trains on the cores that are
free (:func:`training_threads`). On a busy machine an idle thread sleeps at once
(``OMP_WAIT_POLICY=PASSIVE``) and training keeps a thread on every core, each taking its share
of a core without keeping the others off theirs. Generating one token is a chain of operations
too small to split, so ``python -m book.generate`` uses one thread (:data:`GENERATION_THREADS`).
``python benchmarks/run.py --only threads`` compares these settings with PyTorch's default,
``OMP_WAIT_POLICY=PASSIVE`` and one thread, on an idle machine and on a busy one, as ratios to
the best setting.

The commands (``python -m book.train``, ``book.generate``) import this module before PyTorch,
because OpenMP reads its settings once, when PyTorch loads it. A setting already in the
environment is kept (``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` set the waiting, ``OMP_NUM_THREADS=N``
or ``--threads N`` the threads); ``BOOK_CPU_DEFAULTS=0`` leaves the environment alone. In a
notebook, set the variables before ``import torch`` (or in the shell that starts Jupyter).
"""
from __future__ import annotations

import os
import sys
import time

SETTINGS = {"GOMP_SPINCOUNT": "3000", "OMP_NUM_THREADS": str(os.cpu_count() or 1)}
GENERATION_THREADS = 1


def apply(environ=os.environ, measure=None) -> dict[str, str]:
    """Put the book's settings into ``environ`` where they are not set yet; return what was set.

    On a machine busy with other work (fewer free cores than cores, by ``measure``, default
    :func:`free_cores`), idle threads sleep at once (``OMP_WAIT_POLICY=PASSIVE``) instead of
    spinning briefly: then a thread on every core takes its share of each core without keeping
    the threads it waits for off them.
    """
    if environ.get("BOOK_CPU_DEFAULTS", "1") == "0":
        return {}
    if "OMP_WAIT_POLICY" in environ:  # the reader chose how threads wait; a spin count would override it
        settings = {k: v for k, v in SETTINGS.items() if k != "GOMP_SPINCOUNT"}
    elif "GOMP_SPINCOUNT" not in environ and busy(measure):
        settings = {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": SETTINGS["OMP_NUM_THREADS"]}
    else:
        settings = SETTINGS
    applied = {name: value for name, value in settings.items() if name not in environ}
    environ.update(applied)
    return applied


def describe() -> str:
    """How this process's OpenMP threads wait, for the start-of-training summary."""
    policy = os.environ.get("OMP_WAIT_POLICY", "").upper()
    if policy in ("PASSIVE", "ACTIVE"):
        return {"PASSIVE": "idle threads sleep", "ACTIVE": "idle threads spin"}[policy]
    if "GOMP_SPINCOUNT" in os.environ:
        return f"idle threads spin {os.environ['GOMP_SPINCOUNT']} polls, then sleep"
    return "idle threads spin a while"


def _cpu_times(stat_path: str) -> tuple[int, int]:
    """(idle, total) jiffies of all cores together, from the first line of /proc/stat."""
    with open(stat_path) as stat:
        fields = [int(value) for value in stat.readline().split()[1:9]]
    return fields[3] + fields[4], sum(fields)  # idle + iowait; user ... steal


def free_cores(cores: int | None = None, seconds: float = 0.1, stat_path: str = "/proc/stat") -> float | None:
    """How many of ``cores`` were idle over the next ``seconds``, or None where /proc/stat is not readable."""
    cores = cores or os.cpu_count() or 1
    try:
        idle_before, total_before = _cpu_times(stat_path)
        time.sleep(seconds)
        idle_after, total_after = _cpu_times(stat_path)
    except (OSError, ValueError, IndexError):
        return None
    elapsed = total_after - total_before
    return cores if elapsed <= 0 else cores * (idle_after - idle_before) / elapsed


def busy(measure=None) -> bool:
    """Whether other work holds a core now: less than all but half a core free (None: cannot tell)."""
    cores = os.cpu_count() or 1
    free = (measure or free_cores)(cores)
    return free is not None and free < cores - 0.5


def training_threads(applied: dict | None = None, measure=free_cores) -> int | None:
    """The threads ``book.train`` should use: the cores free now (at least one), unless the reader set
    ``OMP_NUM_THREADS`` (``applied``: what :func:`apply` set). On a busy machine, a thread more than
    the free cores waits for a core at every operation, and each operation waits for its slowest
    thread."""
    applied = APPLIED if applied is None else applied
    if "OMP_NUM_THREADS" not in applied:
        return None
    cores = int(applied["OMP_NUM_THREADS"])
    if applied.get("OMP_WAIT_POLICY") == "PASSIVE":  # set on a busy machine: sleeping threads take their share
        return cores
    free = measure(cores)
    return cores if free is None else max(1, min(cores, round(free)))


def generation_threads() -> int | None:
    """The threads ``book.generate`` should use: one, unless the reader set ``OMP_NUM_THREADS``."""
    return GENERATION_THREADS if "OMP_NUM_THREADS" in APPLIED else None


# Too late once PyTorch is loaded: OpenMP has read the environment already.
APPLIED = apply() if "torch" not in sys.modules else {}
