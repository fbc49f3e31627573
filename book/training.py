"""The training engine: batches, learning-rate schedule, optimizer, evaluation, and the loop.

It works with any ``torch.nn.Module`` whose forward is ``model(idx, targets) -> (logits, loss)``:
the GPT of ``book.model``, a bigram table, or a student's own model.

    >>> config = TrainConfig(max_steps=200, batch_size=12, context_length=64)
    >>> history = train(model, train_ids, val_ids, config)
    >>> history.val_loss[-1]
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import time
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from book.distributed import SINGLE, Process, check_batch_size, mean_over_processes, shard
from book.errors import BookError
from book.settings import Settings


class TrainingError(BookError):
    """Training cannot start: the data or the settings do not fit together."""


SAMPLINGS = ("random", "epochs")
COMPUTE_DTYPES = {"float32": None, "bfloat16": torch.bfloat16}


@dataclasses.dataclass
class TrainConfig(Settings):
    """Everything that decides how a model is trained (not what the model is)."""

    unknown_error = TrainingError
    kind = "training settings"

    max_steps: int = 2000
    batch_size: int = 12
    context_length: int = 64
    max_lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # 0 turns clipping off
    eval_interval: int = 250
    eval_iters: int = 200
    seed: int = 1337
    # "random": every batch is windows at random places (nanoGPT's way; over a run some passages
    # are read several times and others never). "epochs": the text is cut into windows that are
    # all read once, in a new order and from a new offset, in every pass over it.
    sampling: str = "random"
    # "bfloat16": matrix products run in bfloat16 under autocast while the weights, the optimiser
    # and the loss stay float32 (about 2x faster on CPUs with bfloat16 instructions).
    compute_dtype: str = "float32"

    def __post_init__(self):
        for name in ("max_steps", "batch_size", "context_length", "eval_interval", "eval_iters"):
            if getattr(self, name) <= 0:
                raise TrainingError(f"{name} must be positive, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise TrainingError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0 <= self.min_lr <= self.max_lr:
            raise TrainingError(f"need 0 <= min_lr <= max_lr, got min_lr={self.min_lr}, max_lr={self.max_lr}")
        if self.sampling not in SAMPLINGS:
            raise TrainingError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise TrainingError(f"compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}, "
                                f"got {self.compute_dtype!r}")



@dataclasses.dataclass
class History:
    """What happened during training: the loss at every step and at every evaluation."""

    steps: list[int] = dataclasses.field(default_factory=list)
    train_loss: list[float] = dataclasses.field(default_factory=list)  # one per step (the batch loss)
    learning_rate: list[float] = dataclasses.field(default_factory=list)
    eval_steps: list[int] = dataclasses.field(default_factory=list)
    eval_train_loss: list[float] = dataclasses.field(default_factory=list)  # averaged over eval_iters batches
    val_loss: list[float] = dataclasses.field(default_factory=list)
    seconds: float = 0.0  # wall time of this run: the optimisation steps and the evaluations
    step_seconds: float = 0.0  # the optimisation steps alone

    @property
    def ms_per_step(self) -> float:
        """Milliseconds per optimisation step, evaluations left out."""
        return 1000 * self.step_seconds / max(len(self.steps), 1)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "History":
        return cls(**values)

    def extend(self, other: "History") -> None:
        """Append a later run (a resumed training) to this history."""
        for field in dataclasses.fields(self):
            if field.name in ("seconds", "step_seconds"):
                setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))
            else:
                getattr(self, field.name).extend(getattr(other, field.name))


def lr_schedule(step: int, *, max_lr: float, min_lr: float, warmup_steps: int, max_steps: int) -> float:
    """Learning rate at ``step`` (counted from 0): linear warm-up, then a cosine down to ``min_lr``.

    During warm-up the rate climbs in equal steps from ``max_lr / warmup_steps`` to ``max_lr``,
    so Adam's first updates, made while its moment estimates are still noisy, stay small.
    Then it follows half a cosine from ``max_lr`` (at ``warmup_steps``) to ``min_lr``
    (at ``max_steps``), and stays at ``min_lr`` after that.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= max_steps:
        return min_lr
    progress = (step - warmup_steps) / max(max_steps - warmup_steps, 1)
    return min_lr + 0.5 * (max_lr - min_lr) * (1 + math.cos(math.pi * progress))


def make_optimizer(model: nn.Module, *, lr: float, weight_decay: float,
                   betas: tuple[float, float]) -> torch.optim.AdamW:
    """AdamW with weight decay on the matrices only.

    Weight decay pulls parameters towards zero. That is a useful brake on the weight
    matrices (including the token embedding, which the GPT shares with its output layer),
    but biases and LayerNorm gains are few, and pulling a gain towards zero would only
    fight the normalisation, so every parameter with fewer than two dimensions is exempt.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise TrainingError("the model has no trainable parameters")
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # The fused/foreach kernels are faster on a CPU too, when this torch build has them.
    return torch.optim.AdamW(groups, lr=lr, betas=betas, foreach=True)


def optimizer_for(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """The optimizer :func:`train` uses for ``config``: :func:`make_optimizer` with its settings."""
    return make_optimizer(model, lr=config.max_lr, weight_decay=config.weight_decay,
                          betas=(config.beta1, config.beta2))


def check_long_enough(config: TrainConfig, **texts) -> None:
    """Refuse token ids too short for a window of the context (``name=ids`` for each text)."""
    for name, ids in texts.items():
        if len(ids) <= config.context_length:
            raise TrainingError(
                f"the {name} text has {len(ids)} tokens, too short for a context of "
                f"{config.context_length} (it needs at least {config.context_length + 1})")


def random_batch(ids: torch.Tensor | np.ndarray, batch_size: int, context_length: int,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows of ``ids``: inputs ``x`` and the next-token targets ``y``.

    Both have shape (batch_size, context_length); ``y`` is ``x`` shifted left by one token,
    so position ``t`` of ``y`` is what the model should predict after reading ``x[:, :t+1]``.
    ``ids`` is a tensor, or a compact NumPy array (``book.data.encode_text_file``: one byte per
    token, possibly memory-mapped) of which only the windows are read; the windows are int64.
    """
    if ids.ndim != 1:
        raise TrainingError(f"token ids must be a 1-D tensor, got shape {tuple(ids.shape)}")
    if len(ids) <= context_length:
        raise TrainingError(
            f"text of {len(ids)} tokens is too short for a context of {context_length} "
            f"(it needs at least {context_length + 1})")
    starts = random_window_starts(len(ids), batch_size, context_length, generator)
    if isinstance(ids, np.ndarray):
        windows = torch.from_numpy(ids[starts.numpy()[:, None] + np.arange(context_length + 1)].astype(np.int64))
    else:
        windows = ids[starts[:, None] + torch.arange(context_length + 1)].long()
    return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()


def epoch_batch(ids: torch.Tensor | np.ndarray, step: int, batch_size: int, context_length: int,
                seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch number ``step`` of passes that read every window of ``ids`` once per pass (epoch).

    Pass ``e`` cuts the text into windows of ``context_length`` from an offset drawn for that pass
    and reads them in a shuffled order, both drawn from ``seed`` and ``e``; the batches run on from
    one pass into the next. The batch depends only on ``step``, so a resumed run carries on exactly.
    """
    if len(ids) <= 2 * context_length:
        raise TrainingError(f"text of {len(ids)} tokens is too short for passes over windows of "
                            f"{context_length} (it needs more than {2 * context_length})")
    starts = epoch_window_starts(len(ids), step, batch_size, context_length, seed)
    rows = starts[:, None] + np.arange(context_length + 1)
    windows = ids[rows] if isinstance(ids, np.ndarray) else ids[torch.from_numpy(rows)].numpy()
    windows = torch.from_numpy(np.asarray(windows, dtype=np.int64))
    return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()


def random_window_starts(length: int, batch_size: int, context_length: int,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """Where the windows of :func:`random_batch` start: uniform over the text, with replacement."""
    return torch.randint(length - context_length, (batch_size,), generator=generator)


def epoch_window_starts(length: int, step: int, batch_size: int, context_length: int, seed: int) -> np.ndarray:
    """Where the windows of :func:`epoch_batch` number ``step`` start, in a text of ``length`` tokens."""
    per_pass = (length - context_length) // context_length  # the same for every offset
    positions = np.arange(step * batch_size, (step + 1) * batch_size)
    starts = np.empty(batch_size, dtype=np.int64)
    for epoch in np.unique(positions // per_pass):
        offset, order = _pass_order(length, context_length, seed, int(epoch))
        chosen = positions // per_pass == epoch
        starts[chosen] = offset + context_length * order[positions[chosen] % per_pass]
    return starts


def reading_counts(length: int, config: TrainConfig, steps: int | None = None) -> np.ndarray:
    """How many times a run of ``config`` (its first ``steps`` steps) reads each token of its training text.

    A token counts as read when it is in a window, as input or as target. The batches are
    replayed exactly as :func:`train` draws them with its default generator, so the answer is
    that of the actual run, not an estimate.
    """
    steps = config.max_steps if steps is None else steps
    window = config.context_length + 1
    change = np.zeros(length + 1, dtype=np.int64)
    generator = torch.Generator().manual_seed(config.seed)
    for step in range(steps):
        if config.sampling == "epochs":
            starts = epoch_window_starts(length, step, config.batch_size, config.context_length, config.seed)
        else:
            starts = random_window_starts(length, config.batch_size, config.context_length, generator).numpy()
        np.add.at(change, starts, 1)
        np.add.at(change, starts + window, -1)
    return np.cumsum(change[:-1])


@functools.lru_cache(maxsize=2)
def _pass_order(length: int, context_length: int, seed: int, epoch: int) -> tuple[int, np.ndarray]:
    """(offset, shuffled window numbers) of one pass: see :func:`epoch_batch`."""
    rng = np.random.default_rng([seed, epoch])
    per_pass = (length - context_length) // context_length
    return int(rng.integers(context_length)), rng.permutation(per_pass)


@torch.no_grad()
def estimate_loss(model: nn.Module, ids: torch.Tensor, *, batch_size: int, context_length: int,
                  iters: int, generator: torch.Generator | None = None) -> float:
    """Mean loss of ``model`` over ``iters`` random batches of ``ids``, in evaluation mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total = 0.0
    for _ in range(iters):
        x, y = random_batch(ids, batch_size, context_length, generator)
        _, loss = model(x.to(device), y.to(device))
        total += loss.item()
    model.train(was_training)
    return total / iters


def train(model: nn.Module, train_ids: torch.Tensor, val_ids: torch.Tensor, config: TrainConfig, *,
          optimizer: torch.optim.Optimizer | None = None, start_step: int = 0,
          generator: torch.Generator | None = None, progress: bool = True,
          on_eval: Callable[[int, "History"], None] | None = None,
          on_step: Callable[[int], None] | None = None, process: Process = SINGLE) -> History:
    """Train ``model`` from ``start_step`` to ``config.max_steps`` and return its :class:`History`.

    Each step draws a random batch, computes the loss, clips the gradient norm to
    ``config.grad_clip`` and takes an AdamW step at the scheduled learning rate. Every
    ``config.eval_interval`` steps, and after the last one, the loss is estimated on both
    splits; ``on_eval(step, history)`` is called then, e.g. to save a checkpoint.

    Pass the ``optimizer`` and ``start_step`` of a saved run to resume it; pass a
    ``generator`` to control the batches (by default one seeded with ``config.seed``).
    ``on_step(step)`` is called after every optimiser step.

    Under ``torchrun``, pass the DistributedDataParallel-wrapped model and this ``process``
    (see :mod:`book.distributed`): every process draws the same global batch and trains on
    its share of the rows; only the main process evaluates, reports and calls ``on_eval``.
    """
    if not 0 <= start_step <= config.max_steps:
        raise TrainingError(f"start_step {start_step} is outside 0..{config.max_steps}")
    check_long_enough(config, training=train_ids, validation=val_ids)
    if generator is None:
        generator = torch.Generator().manual_seed(config.seed)
    if optimizer is None:
        optimizer = optimizer_for(model, config)
    check_batch_size(config.batch_size, process)
    device = next(model.parameters()).device
    # Evaluation runs on the main process alone, so it must not go through the DDP wrapper,
    # whose forward pass may talk to the other processes.
    plain_model = getattr(model, "module", model)
    eval_generator = torch.Generator().manual_seed(config.seed + 1)
    schedule = dict(max_lr=config.max_lr, min_lr=config.min_lr,
                    warmup_steps=config.warmup_steps, max_steps=config.max_steps)

    def evaluate(step: int) -> None:
        sizes = dict(batch_size=config.batch_size, context_length=config.context_length,
                     iters=config.eval_iters, generator=eval_generator)
        if not process.is_main:
            return
        train_loss = estimate_loss(plain_model, train_ids, **sizes)
        val_loss = estimate_loss(plain_model, val_ids, **sizes)
        history.eval_steps.append(step)
        history.eval_train_loss.append(train_loss)
        history.val_loss.append(val_loss)
        bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}")
        if on_eval is not None:
            on_eval(step, history)

    compute_dtype = COMPUTE_DTYPES[config.compute_dtype]
    autocast = (torch.autocast(device.type, dtype=compute_dtype) if compute_dtype is not None
                else contextlib.nullcontext())
    history = History()
    model.train()
    started = time.perf_counter()
    # TQDM_DISABLE=1 silences the bar (as under test); tqdm's notebook bar would ignore it.
    quiet = not progress or not process.is_main or os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")
    bar = tqdm(range(start_step, config.max_steps), desc="training", initial=start_step,
               total=config.max_steps, unit="step", disable=quiet)
    evaluating = 0.0
    for step in bar:
        lr = lr_schedule(step, **schedule)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if config.sampling == "epochs":
            x, y = epoch_batch(train_ids, step, config.batch_size, config.context_length, config.seed)
        else:
            x, y = random_batch(train_ids, config.batch_size, config.context_length, generator)
        x, y = shard(x, process), shard(y, process)
        with autocast:
            _, loss = model(x.to(device), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        if on_step is not None:
            on_step(step)
        history.steps.append(step)
        history.train_loss.append(mean_over_processes(loss, process).item())
        history.learning_rate.append(lr)
        done = step + 1
        if done % config.eval_interval == 0 or done == config.max_steps:
            eval_started = time.perf_counter()
            evaluate(done)
            evaluating += time.perf_counter() - eval_started
    bar.close()
    if not history.eval_steps and process.is_main:  # resumed at the very end: still report the losses
        evaluate(config.max_steps)
    history.seconds = time.perf_counter() - started
    history.step_seconds = history.seconds - evaluating
    model.eval()
    return history
