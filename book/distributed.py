"""Data-parallel training on several processes or machines, as launched by ``torchrun`` (appendix "Scaling out").

    torchrun --standalone --nproc_per_node=2 -m book.train --data input.txt --out runs/ddp

``torchrun`` starts one process per worker and tells each its place through environment
variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``...). Every process holds a
full copy of the model; each step, every process computes the gradient on its own share of the
batch, and DistributedDataParallel averages the gradients across processes before the
optimiser step, so all copies stay identical (Li et al., 2020).

The global batch is the same as in a single process: each of the ``world_size`` processes
takes every ``world_size``-th row of it, like ``torch.utils.data.DistributedSampler``. The
average of their gradients is then the full batch's gradient, and a run on N processes follows
the same trajectory as a run on one, up to floating-point rounding.
"""
from __future__ import annotations

import dataclasses
import datetime
import os

import torch
import torch.distributed as dist

from book.errors import BookError


class DistributedError(BookError, RuntimeError):
    """The processes cannot work together as asked."""


@dataclasses.dataclass(frozen=True)
class Process:
    """Where this process stands among the workers of a run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, evaluates and saves; the others only train."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


SINGLE = Process()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


DEVICE_TYPES = ("cpu", "cuda", "mps")


def resolve_device(name) -> torch.device:
    """The torch device called ``name``, checked: it must exist on this machine and hold real tensors."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise DistributedError(f"--device {name!r} is not a device; use one of {', '.join(DEVICE_TYPES)}") from None
    if device.type not in DEVICE_TYPES:
        raise DistributedError(f"--device {name!r} cannot train or generate; use one of {', '.join(DEVICE_TYPES)}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DistributedError(f"--device {name} was asked for, but this PyTorch build or machine has no CUDA "
                                   f"device; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DistributedError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DistributedError(f"--device {name} was asked for, but MPS is not available here; use --device cpu")
    return device


def start(device: str = "cpu") -> tuple[Process, torch.device]:
    """Join the process group torchrun set up (gloo on CPU, NCCL on CUDA); a no-op for one process."""
    if not launched_by_torchrun():
        return SINGLE, resolve_device(device)
    process = Process(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if str(device).startswith("cuda"):
        if not torch.cuda.is_available():
            raise DistributedError("--device cuda was asked for, but no CUDA device is available")
        torch.cuda.set_device(process.local_rank)
        device, backend = torch.device("cuda", process.local_rank), "nccl"
    else:
        device, backend = torch.device(device), "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(minutes=10))
    return process, device


def stop(process: Process, *, wait_for_others: bool = True) -> None:
    """Leave the process group; by default first wait until every process has finished."""
    if process.distributed and dist.is_initialized():
        if wait_for_others:
            dist.barrier()
        dist.destroy_process_group()


def shard(rows: torch.Tensor, process: Process) -> torch.Tensor:
    """This process's share of a batch: every ``world_size``-th row, from row ``rank``."""
    return rows[process.rank::process.world_size]


def check_batch_size(batch_size: int, process: Process) -> None:
    if batch_size % process.world_size:
        raise DistributedError(f"the batch of {batch_size} does not split evenly over {process.world_size} "
                               f"processes; choose a batch size divisible by {process.world_size}")


def mean_over_processes(value: torch.Tensor, process: Process) -> torch.Tensor:
    """The average of a tensor over all processes (itself for a single process)."""
    if not process.distributed:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / process.world_size
