"""MetaGPT: a small GPT meta-trained with MAML, against the baselines that know what is possible (Chapter 6).

The seed's "Meta-Transformer" is a Transformer plus a meta-learner. Here the Transformer is the
book's :class:`~book.model.GPT` (2 layers, 4 heads, 64 dimensions, a context of 64 characters,
the corpus's 84 characters) and the meta-learner is :mod:`book.maml`. Three task families
(:mod:`book.tasks`): ``dialects`` (random Markov chains: tasks conflict, and the entropy rate is
an exact oracle), ``cipher`` (Shakespeare under a letter substitution of each task's own: real
text whose tasks conflict) and ``speakers`` (Shakespeare's speakers from held-out plays: tasks
that share almost everything).

    python -m book.experiments.metagpt                   # evaluate the shipped checkpoints (table)
    python -m book.experiments.metagpt --json            # the same, as JSON
    python -m book.experiments.metagpt --train --families dialects --seeds 0 --methods finetune

Ways to start adapting (each trained for the same wall-clock budget, ``--budget`` seconds):

* ``finetune``: one model pretrained on the union of the meta-training tasks (their support and
  query windows), adapted with SGD; ``finetune-adam`` is the same start adapted with Adam.
* ``maml``: second-order MAML from a random initialisation, one inner SGD step of ``INNER_LR``.
* ``pretrain-maml``: the pretraining run up to ``SWITCH`` of the budget, then MAML for the rest
  (the same optimiser and schedule continue), which is how meta-learning is used on language
  models.
* ``scratch``: a random initialisation.

Baselines without a network: ``count`` (a bigram counted from the support set, smoothed towards
the bigram of the meta-training tasks, its concentration tuned on validation tasks) and, on
dialects, ``oracle`` (the entropy rate of the true chain). ``in-context`` puts the end of the
support text into the pretrained model's context and takes no gradient step.

Every step size and step count is tuned on meta-validation tasks, separately for each reported
budget of steps (0 steps allowed), never on the test tasks. Intervals treat the task as the
unit: seeds are averaged per task first; the seed-to-seed spread is reported separately.
"""
from __future__ import annotations

import argparse
import copy
import fcntl
import functools
import json
import math
import pathlib
import platform
import sys
import time

import torch
from tqdm.auto import tqdm

from book import maml, paths
from book.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from book.errors import BookError, CommandParser
from book.model import GPT, GPTConfig
from book.stats import LN2, confidence_95
from book.tasks import FAMILIES, Task, shared_tokenizer
from book.tasks import family as make_family
from book.training import make_optimizer

CHECKPOINTS = paths.CHECKPOINTS / "metagpt"
ROOT = paths.ROOT

MODEL = dict(context_length=64, n_layer=2, n_head=4, d_model=64)
WINDOW = 64               # characters a window feeds the model (its whole context)
SUPPORT = 4               # support windows per task: 4 x 65 = 260 characters
QUERY = 4                 # query windows per task
META_BATCH = 4            # tasks per meta-iteration (and per pretraining step: 32 windows)
INNER_LR = 0.3            # alpha: MAML's inner SGD step size during meta-training from scratch
# alpha of pretrain-maml, per family. On speakers it was chosen on validation speakers, with the switch
# point and the objective (`--inner-lrs`, `--select-inner-lr`; the sweep-speakers-*.json files, and the
# earlier sweeps: of a 300-second budget in budget-300/, of 900 wall-clock seconds in wall-clock-900/): the
# best SGD step from the pretrained model is tiny there, and MAML at 0.3 wrecks the start.
PRETRAIN_INNER_LR = {"dialects": 0.3, "cipher": 0.3, "speakers": 0.0003}
# The meta-objective of pretrain-maml, per family: second order (False) or first order (True), and the
# weight of the support loss before adaptation kept in the objective (0: plain MAML). See book.maml.maml_loss.
PRETRAIN_FIRST_ORDER = {"dialects": False, "cipher": False, "speakers": True}
PRETRAIN_SUPPORT_WEIGHT = {"dialects": 0.0, "cipher": 0.0, "speakers": 1.0}
INNER_STEPS = 1           # inner steps during meta-training
META_LR = 3e-3            # AdamW; warm-up for WARMUP of the budget, then cosine to a tenth
WARMUP = 0.02
# Wall-clock training budget of every method and seed, per family (seconds, one thread each). Speakers got
# 900 s after 300 s left every speaker run still falling (see budget-300/ for the sweeps made then).
BUDGET_SECONDS = {"dialects": 600.0, "cipher": 300.0, "speakers": 900.0}
# The clock that budget is read on. "wall": seconds on the wall clock. "cpu": the CPU seconds of the run's own
# (one-thread) process, the same as wall-clock seconds on an idle core, but not charged for what other
# processes do meanwhile. Speakers use it: there the methods differ by thousandths of a bit, less than what
# a neighbour slowing one phase of a run down would cost it.
BUDGET_CLOCK = {"dialects": "wall", "cipher": "wall", "speakers": "cpu"}
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
# pretrain-maml: the share of the budget spent pretraining before MAML takes over. On speakers,
# where the pretrained model is already most of what can be had, MAML only refines the end.
SWITCH = {"dialects": 0.4, "cipher": 0.5, "speakers": 0.9}
SEEDS = (0, 1, 2)
LOG_EVERY = 25            # iterations averaged into one point of the training log

TRAINED = ("finetune", "maml", "pretrain-maml")
ADAPTED = ("scratch", "finetune", "finetune-adam", "maml", "pretrain-maml")
STARTS = {"scratch": "scratch", "finetune": "finetune", "finetune-adam": "finetune", "maml": "maml",
          "pretrain-maml": "pretrain-maml"}
REPORT_STEPS = (0, 1, 5, 10)
MAX_STEPS = max(REPORT_STEPS)
SGD_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
ADAM_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
COUNT_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
PRIOR_TASKS = 1000        # meta-training tasks whose bigram is the count learner's prior
TEST_TASKS = 128
VAL_TASKS = 16
DIVERGED_BITS = 20.0      # a query loss above this (or not finite) counts as a blow-up, capped here


class ExperimentError(BookError):
    """Settings or checkpoints that this experiment cannot use."""


def make_model(seed: int = 0) -> GPT:
    """The GPT every method starts from, initialised with ``seed``."""
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=shared_tokenizer().vocab_size, **MODEL))


def parameters(model: GPT) -> dict[str, torch.Tensor]:
    """The model's weights as leaf tensors that gradients can be taken with respect to."""
    return maml.leaf_parameters(dict(model.named_parameters()))


def lm_loss(output, targets: torch.Tensor) -> torch.Tensor:
    """Next-character cross-entropy (nats) of the GPT's ``(logits, _)`` output."""
    return torch.nn.functional.cross_entropy(output[0].flatten(0, 1), targets.flatten())


def window_loss(model: GPT, params: dict, windows: torch.Tensor) -> torch.Tensor:
    """Mean next-character cross-entropy (nats) of the model with weights ``params`` on ``windows``."""
    return maml.task_loss(model, params, windows[:, :-1], windows[:, 1:], lm_loss)


def sgd_steps(model: GPT, params: dict, windows: torch.Tensor, lr: float, steps: int) -> dict:
    """``steps`` of plain gradient descent on ``windows`` (the inner loop of :mod:`book.maml`)."""
    adapted = maml.adapt(model, params, windows[:, :-1], windows[:, 1:], loss_fn=lm_loss, inner_lr=lr,
                         steps=steps, first_order=True, engine="autograd")
    return {name: p.detach() for name, p in adapted.items()}


def task_batch(tasks: list[Task]) -> maml.TaskBatch:
    """Tasks as :class:`book.maml.TaskBatch`: inputs and next-character targets of every window."""
    support = torch.stack([t.support for t in tasks])
    query = torch.stack([t.query for t in tasks])
    return maml.TaskBatch(support[..., :-1], support[..., 1:], query[..., :-1], query[..., 1:])


def meta_batch(family_name: str, seed: int, iteration: int) -> list[Task]:
    """The meta-training tasks of one iteration: fresh dialects, or random training speakers."""
    family = make_family(family_name)
    stream = seed * 1_000_003 + iteration
    first = stream * META_BATCH if family_name == "dialects" else None
    return family.sample("train", META_BATCH, seed=stream, first=first, support=SUPPORT, query=QUERY,
                         length=WINDOW)


# --------------------------------------------------------------------------------------------
# Training: every run gets the same wall-clock budget; the learning rate follows the clock.


def schedule(fraction: float) -> float:
    """Learning rate at ``fraction`` of the budget: linear warm-up, then cosine to a tenth."""
    if fraction < WARMUP:
        return META_LR * (fraction + 1e-3) / WARMUP
    progress = min(1.0, (fraction - WARMUP) / (1 - WARMUP))
    return META_LR / 10 + 0.5 * (META_LR - META_LR / 10) * (1 + math.cos(math.pi * progress))


class Log:
    """The training loss averaged over blocks of ``LOG_EVERY`` iterations, with the clock."""

    def __init__(self):
        self.iteration, self.seconds, self.loss_bits, self._block = [], [], [], []

    def add(self, iteration: int, seconds: float, loss_nats: float) -> None:
        self._block.append(loss_nats / LN2)
        if len(self._block) == LOG_EVERY:
            self.iteration.append(iteration + 1)
            self.seconds.append(round(seconds, 2))
            self.loss_bits.append(round(sum(self._block) / len(self._block), 4))
            self._block = []

    def to_dict(self) -> dict:
        return {"iteration": self.iteration, "seconds": self.seconds, "loss_bits": self.loss_bits}


def pretraining_step(model: GPT, optimizer, tasks: list[Task]) -> float:
    windows = torch.cat([torch.cat([t.support, t.query]) for t in tasks])
    loss = model(windows[:, :-1], windows[:, 1:])[1]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return float(loss.detach())


def maml_step(model: GPT, optimizer, tasks: list[Task], inner_lr: float = INNER_LR, first_order: bool = False,
              support_weight: float = 0.0) -> float:
    """One meta-iteration; returns the meta-loss, L_Q(theta') + support_weight * L_S(theta) (the training log's)."""
    gradients, loss = maml.maml_gradient(model, dict(model.named_parameters()), task_batch(tasks),
                                         loss_fn=lm_loss, inner_lr=inner_lr, steps=INNER_STEPS,
                                         first_order=first_order, support_weight=support_weight, engine="autograd")
    for name, p in model.named_parameters():
        p.grad = gradients[name]
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def _run(step, model, optimizer, family_name, seed, *, start_fraction, end_fraction, budget, first_iteration,
         log, progress, label):
    """Take ``step`` until the family's clock reaches ``end_fraction`` of the budget; returns the last iteration."""
    clock = CLOCKS[BUDGET_CLOCK[family_name]]
    started = clock() - start_fraction * budget
    iteration = first_iteration
    bar = tqdm(desc=label, disable=not progress, unit="it")
    while True:
        elapsed = clock() - started
        if elapsed >= end_fraction * budget:
            break
        for group in optimizer.param_groups:
            group["lr"] = schedule(elapsed / budget)
        loss = step(model, optimizer, meta_batch(family_name, seed, iteration))
        log.add(iteration, clock() - started, loss)
        iteration += 1
        bar.update()
    bar.close()
    return iteration


def _record(family_name, method, seed, budget, log, iterations, inner_lr=INNER_LR, **extra) -> dict:
    return dict(family=family_name, method=method, seed=seed, budget_seconds=budget,
                clock=BUDGET_CLOCK[family_name], iterations=iterations, log=log.to_dict(), inner_lr=inner_lr,
                inner_steps=INNER_STEPS, meta_batch=META_BATCH,
                torch=torch.__version__, machine=platform.machine(), threads=torch.get_num_threads(), **extra)


def train_pretrained(family_name: str, seed: int = 0, budget: float | None = None, switch: float | None = None,
                     progress: bool = True, inner_lrs=None, first_order: bool | None = None,
                     support_weight: float | None = None) -> list[tuple[GPT, dict]]:
    """Pretrain for the whole budget (``finetune``) and, from the same run at ``switch``, MAML (``pretrain-maml``).

    ``inner_lrs`` lists the alphas of the MAML continuations (one ``pretrain-maml`` run each, all
    from the same snapshot); the default is the family's ``PRETRAIN_INNER_LR``.
    """
    budget = BUDGET_SECONDS[family_name] if budget is None else budget
    switch = SWITCH[family_name] if switch is None else switch
    inner_lrs = [PRETRAIN_INNER_LR[family_name]] if inner_lrs is None else list(inner_lrs)
    first_order = PRETRAIN_FIRST_ORDER[family_name] if first_order is None else first_order
    support_weight = PRETRAIN_SUPPORT_WEIGHT[family_name] if support_weight is None else support_weight
    model = make_model(seed)
    optimizer = make_optimizer(model, lr=META_LR, weight_decay=0.01, betas=(0.9, 0.99))
    log = Log()
    middle = _run(pretraining_step, model, optimizer, family_name, seed, start_fraction=0.0,
                  end_fraction=switch, budget=budget, first_iteration=0, log=log, progress=progress,
                  label=f"{family_name} pretraining seed {seed}")
    snapshot = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()), copy.deepcopy(log)
    end = _run(pretraining_step, model, optimizer, family_name, seed, start_fraction=switch, end_fraction=1.0,
               budget=budget, first_iteration=middle, log=log, progress=progress,
               label=f"{family_name} pretraining seed {seed}")
    runs = [(model, _record(family_name, "finetune", seed, budget, log, end))]
    for inner_lr in inner_lrs:
        meta = make_model(seed)
        meta_optimizer = make_optimizer(meta, lr=META_LR, weight_decay=0.01, betas=(0.9, 0.99))
        meta.load_state_dict(snapshot[0])
        meta_optimizer.load_state_dict(snapshot[1])
        meta_log = copy.deepcopy(snapshot[2])
        step = functools.partial(maml_step, inner_lr=inner_lr, first_order=first_order,
                                 support_weight=support_weight)
        end = _run(step, meta, meta_optimizer, family_name, seed, start_fraction=switch, end_fraction=1.0,
                   budget=budget, first_iteration=middle, log=meta_log, progress=progress,
                   label=f"{family_name} pretrain-maml seed {seed}")
        runs.append((meta, _record(family_name, "pretrain-maml", seed, budget, meta_log, end, inner_lr=inner_lr,
                                   switch=switch, switch_iteration=middle, first_order=first_order,
                                   support_weight=support_weight)))
    return runs


def train_maml(family_name: str, seed: int = 0, budget: float | None = None, progress: bool = True
               ) -> list[tuple[GPT, dict]]:
    """Second-order MAML from a random initialisation for the whole budget."""
    budget = BUDGET_SECONDS[family_name] if budget is None else budget
    model = make_model(seed)
    optimizer = make_optimizer(model, lr=META_LR, weight_decay=0.01, betas=(0.9, 0.99))
    log = Log()
    end = _run(maml_step, model, optimizer, family_name, seed, start_fraction=0.0, end_fraction=1.0,
               budget=budget, first_iteration=0, log=log, progress=progress, label=f"{family_name} maml seed {seed}")
    return [(model, _record(family_name, "maml", seed, budget, log, end))]


# --------------------------------------------------------------------------------------------
# Checkpoints: one book.checkpoint folder per family, method and seed (float16 weights).


def checkpoint_path(directory: pathlib.Path, family_name: str, method: str, seed: int) -> pathlib.Path:
    return pathlib.Path(directory) / f"{family_name}-{method}-seed{seed}"


def save(model: GPT, record: dict, directory: pathlib.Path = CHECKPOINTS) -> pathlib.Path:
    path = checkpoint_path(directory, record["family"], record["method"], record["seed"])
    return save_checkpoint(path, model, shared_tokenizer(), step=record["iterations"], metadata=record,
                           dtype=torch.float16)


def load(family_name: str, method: str, seed: int, directory: pathlib.Path = CHECKPOINTS) -> GPT:
    """The model a method starts adapting from: a shipped checkpoint, or a random one for ``scratch``."""
    start = STARTS.get(method)
    if start is None:
        raise ExperimentError(f"unknown method {method!r}; choose from {', '.join(ADAPTED)}")
    if start == "scratch":
        return make_model(10_000 + seed).eval()
    path = checkpoint_path(directory, family_name, start, seed)
    if not path.is_dir():
        raise ExperimentError(f"{path} is missing; train it with `python -m book.experiments.metagpt --train "
                              f"--families {family_name} --methods {start} --seeds {seed}`")
    try:
        model = load_checkpoint(path).model
    except CheckpointError as error:
        raise ExperimentError(str(error)) from None
    if model.config.to_dict() != make_model(0).config.to_dict():
        raise ExperimentError(f"{path} holds another model than {MODEL}")
    return model.eval()


def trained_inner_lr(family_name: str, method: str, seed: int, directory: pathlib.Path = CHECKPOINTS) -> float:
    """The alpha a meta-trained checkpoint was trained with (as its training record states)."""
    path = checkpoint_path(directory, family_name, STARTS.get(method, method), seed) / "checkpoint.json"
    if not path.is_file():
        return INNER_LR
    return float(json.loads(path.read_text())["metadata"].get("inner_lr", INNER_LR))


def load_records(directory: pathlib.Path = CHECKPOINTS) -> list[dict]:
    """The training record of every shipped run (its log, budget and iterations)."""
    records = []
    for family_name in FAMILIES:
        for method in TRAINED:
            for seed in SEEDS:
                path = checkpoint_path(directory, family_name, method, seed)
                if path.is_dir():
                    records.append(json.loads((path / "checkpoint.json").read_text())["metadata"])
    if not records:
        raise ExperimentError(f"{directory} holds no training records")
    return records


def finished(record: dict, window: int = 3000, tolerance: float = 0.02) -> dict:
    """Did the training loss stop moving? The change over the last ``window`` iterations.

    Compares the mean loss of the last 200 iterations with the mean of the 200 iterations
    ``window`` earlier. Runs shorter than ``window`` iterations after their last switch of
    objective cannot pass this test, whatever their curve looks like.
    """
    log = record["log"]
    iterations, losses = log["iteration"], log["loss_bits"]
    span = max(1, 200 // LOG_EVERY)
    start = record.get("switch_iteration", 0)
    points = [i for i, it in enumerate(iterations) if it > start]
    if iterations[-1] - start < window + 200 or len(points) < 2 * span:
        return {"change_bits": None, "flat": False, "iterations_since_start": iterations[-1] - start}
    end_mean = sum(losses[-span:]) / span
    earlier = max(i for i in points if iterations[i] <= iterations[-1] - window)
    before = sum(losses[max(0, earlier - span + 1):earlier + 1]) / len(losses[max(0, earlier - span + 1):earlier + 1])
    change = end_mean - before
    return {"change_bits": round(change, 4), "flat": abs(change) < tolerance,
            "iterations_since_start": iterations[-1] - start}


# --------------------------------------------------------------------------------------------
# Evaluation: adaptation curves, count-based learner, in-context scoring.


def _capped(bits: float) -> float:
    return bits if math.isfinite(bits) and bits < DIVERGED_BITS else DIVERGED_BITS


def adaptation(model: GPT, task: Task, lr: float, steps: int, optimizer: str = "sgd"):
    """A copy of ``model`` after 0, 1, ..., ``steps`` steps on the support set (one copy, yielded after each step).

    ``optimizer`` is ``"sgd"`` (plain gradient descent, the inner loop of MAML) or ``"adam"``.
    The model itself is not changed.
    """
    if optimizer not in ("sgd", "adam"):
        raise ExperimentError(f"unknown optimizer {optimizer!r}; choose sgd or adam")
    net = copy.deepcopy(model)
    make = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
    opt = make(net.parameters(), lr=lr)
    xs, ys = task.support_xy
    yield net
    for _ in range(steps):
        loss = net(xs, ys)[1]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        yield net


def adapted(model: GPT, task: Task, lr: float, steps: int, optimizer: str = "sgd") -> GPT:
    """A copy of ``model`` after ``steps`` steps of ``optimizer`` on the support set of ``task``."""
    for net in adaptation(model, task, lr, steps, optimizer):
        pass
    return net


def adaptation_curve(model: GPT, task: Task, lr: float, steps: int = MAX_STEPS, optimizer: str = "sgd") -> list[float]:
    """Query loss in bits per character after 0, 1, ..., ``steps`` steps on the support set (see :func:`adaptation`)."""
    xq, yq = task.query_xy
    curve = []
    for net in adaptation(model, task, lr, steps, optimizer):
        with torch.no_grad():
            curve.append(_capped(float(net(xq, yq)[1]) / LN2))
        if curve[-1] >= DIVERGED_BITS:  # blown up: it stays blown up
            curve.extend([DIVERGED_BITS] * (steps + 1 - len(curve)))
            break
    return curve


def curves(model: GPT, tasks: list[Task], lrs, optimizer: str = "sgd") -> torch.Tensor:
    """Adaptation curves of every task at every step size: shape (len(lrs), tasks, MAX_STEPS + 1)."""
    return torch.tensor([[adaptation_curve(model, t, lr, MAX_STEPS, optimizer) for t in tasks] for lr in lrs])


def choose(val_curves: torch.Tensor, lrs, budget: int) -> tuple[float, int]:
    """The step size and step count (at most ``budget``) with the lowest mean validation loss."""
    means = val_curves[:, :, :budget + 1].mean(1)  # (lrs, steps)
    index = int(means.argmin())
    lr_index, steps = divmod(index, budget + 1)
    return float(lrs[lr_index]), steps


def evaluation_tasks(family_name: str, split: str, num_tasks: int) -> list[Task]:
    """Fixed evaluation tasks: the first ``num_tasks`` dialects, ciphers or speakers of ``split``."""
    return make_family(family_name).sample(split, num_tasks, seed=12345, first=0, support=SUPPORT, query=QUERY,
                                           length=WINDOW)


def bigram_counts(windows: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """(V, V) counts of each character ``j`` following ``i`` inside the windows."""
    pairs = windows[:, :-1].reshape(-1) * vocab_size + windows[:, 1:].reshape(-1)
    return torch.bincount(pairs, minlength=vocab_size * vocab_size).view(vocab_size, vocab_size).double()


def bigram_prior(family_name: str, num_tasks: int = PRIOR_TASKS) -> torch.Tensor:
    """The bigram of the meta-training tasks (support and query), lightly smoothed: rows sum to one."""
    vocab_size = shared_tokenizer().vocab_size
    first = 0 if family_name == "dialects" else None
    tasks = make_family(family_name).sample("train", num_tasks, seed=777, first=first,
                                            support=SUPPORT, query=QUERY, length=WINDOW)
    counts = sum(bigram_counts(torch.cat([t.support, t.query]), vocab_size) for t in tasks)
    counts = counts + 1e-3
    return counts / counts.sum(1, keepdim=True)


def count_bits(task: Task, prior: torch.Tensor, concentration: float) -> float:
    """Query bits per character of the bigram counted from the support set, shrunk towards ``prior``.

    $p(j \\mid i) = (c_{ij} + a\\,\\bar p(j \\mid i)) / (c_i + a)$: the posterior mean of a Dirichlet
    with concentration $a$ centred on the meta-training bigram, given the support counts $c$.
    """
    counts = bigram_counts(task.support, prior.shape[0])
    probabilities = (counts + concentration * prior) / (counts.sum(1, keepdim=True) + concentration)
    query = task.query
    return float(-torch.log2(probabilities[query[:, :-1], query[:, 1:]]).mean())


def context_count_bits(window_ids: torch.Tensor, prior: torch.Tensor, concentration: float) -> torch.Tensor:
    """Per-position bits of a bigram counted from the window's own earlier characters (the in-context ideal).

    ``window_ids`` is (windows, length + 1); returns (length,) mean bits at each position.
    """
    vocab_size = prior.shape[0]
    results = torch.zeros(window_ids.shape[1] - 1, dtype=torch.double)
    for window in window_ids:
        counts = torch.zeros(vocab_size, vocab_size, dtype=torch.double)
        for t in range(window.shape[0] - 1):
            i, j = int(window[t]), int(window[t + 1])
            p = (counts[i, j] + concentration * prior[i, j]) / (counts[i].sum() + concentration)
            results[t] += -math.log2(float(p))
            counts[i, j] += 1
    return results / window_ids.shape[0]


@torch.no_grad()
def position_bits(model: GPT, windows: torch.Tensor) -> torch.Tensor:
    """Per-position bits of the model on windows read with no other context: shape (length,)."""
    logits, _ = model(windows[:, :-1])
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), windows[:, 1:], reduction="none")
    return nll.mean(0).double() / LN2


@torch.no_grad()
def in_context_bits(model: GPT, task: Task) -> float:
    """Query bits per character with the support text in the context, no gradient step.

    The context holds 64 characters, so each query window is read in two halves: first after
    the last 32 characters of the support set, then as itself; every query character is then
    predicted from at least 32 characters of the task's text (a sliding-window evaluation).
    """
    half = WINDOW // 2
    tail = task.support[-1, -half:]
    total = 0.0
    for window in task.query:
        joined = torch.cat([tail, window])  # half + WINDOW + 1 characters
        first = joined[:WINDOW + 1]
        logits, _ = model(first[None, :-1])
        first_nll = torch.nn.functional.cross_entropy(logits[0, half:], first[half + 1:], reduction="sum")
        logits, _ = model(window[None, :-1])
        second_nll = torch.nn.functional.cross_entropy(logits[0, half:], window[half + 1:], reduction="sum")
        total += float(first_nll + second_nll)
    return total / (task.query.shape[0] * WINDOW) / LN2


def summary_row(family_name: str, method: str, steps, per_seed: torch.Tensor, **extra) -> dict:
    """A results row from per-seed, per-task values of shape (seeds, tasks): the task is the unit."""
    per_task = per_seed.mean(0)
    seed_means = per_seed.mean(1)
    return dict(family=family_name, method=method, steps=steps, bits_per_char=round(float(per_task.mean()), 4),
                ci95=round(confidence_95(per_task), 4),
                seed_sd=round(float(seed_means.std()), 4) if per_seed.shape[0] > 1 else None,
                seeds=per_seed.shape[0], tasks=per_seed.shape[1], **extra)


def evaluate_family(family_name: str, seeds=SEEDS, num_tasks: int = TEST_TASKS, val_tasks: int = VAL_TASKS,
                    directory: pathlib.Path = CHECKPOINTS, progress: bool = True, methods=ADAPTED) -> dict:
    """Rows, paired differences and per-task values of one family (see the module's docstring)."""
    test = evaluation_tasks(family_name, "test", num_tasks)
    val = evaluation_tasks(family_name, "val", val_tasks)
    per_task: dict[str, dict] = {}  # method -> steps -> (seeds, tasks)
    settings: dict[str, dict] = {}
    learning_rates = {}

    # The count-based learner: the concentration is tuned on the validation tasks.
    prior = bigram_prior(family_name)
    val_scores = {a: sum(count_bits(t, prior, a) for t in val) / len(val) for a in COUNT_GRID}
    concentration = min(val_scores, key=val_scores.get)
    count = torch.tensor([[count_bits(t, prior, concentration) for t in test]] * len(seeds))
    per_task["count"] = {0: count}
    settings["count"] = {"concentration": concentration}

    jobs = [(m, s) for m in methods for s in seeds]
    values: dict = {}
    for method, seed in tqdm(jobs, desc=f"evaluating {family_name}", disable=not progress):
        model = load(family_name, method, seed, directory)
        optimizer = "adam" if method == "finetune-adam" else "sgd"
        grid = ADAM_GRID if optimizer == "adam" else SGD_GRID
        val_curves = curves(model, val, grid, optimizer)
        chosen = {k: choose(val_curves, grid, k) for k in REPORT_STEPS}
        learning_rates[f"{family_name}/{method}/seed{seed}"] = chosen[MAX_STEPS][0]
        needed = sorted({lr for lr, steps in chosen.values() if steps > 0})
        trained_alpha = trained_inner_lr(family_name, method, seed, directory)
        if method in ("maml", "pretrain-maml") and trained_alpha not in needed:
            needed.append(trained_alpha)
        test_curves = dict(zip(needed, curves(model, test, needed, optimizer))) if needed else {}
        zero = torch.tensor([adaptation_curve(model, t, 0.0, 0)[0] for t in test])
        for k, (lr, steps) in chosen.items():
            values[method, seed, k] = zero if steps == 0 else test_curves[lr][:, steps]
            settings.setdefault(method, {}).setdefault(str(k), []).append({"seed": seed, "lr": lr, "steps": steps})
        if method in ("maml", "pretrain-maml"):
            for k in REPORT_STEPS[1:]:
                values[f"{method}@alpha", seed, k] = test_curves[trained_alpha][:, k]
        if method == "finetune":
            values["in-context", seed, 0] = torch.tensor([in_context_bits(model, t) for t in test])
        if method == "pretrain-maml":
            values["pretrain-maml in-context", seed, 0] = torch.tensor([in_context_bits(model, t) for t in test])
    for (method, seed, k), v in values.items():
        per_task.setdefault(method, {}).setdefault(k, {})[seed] = v
    for method, by_steps in per_task.items():
        for k, by_seed in by_steps.items():
            if isinstance(by_seed, dict):
                by_steps[k] = torch.stack([by_seed[s] for s in seeds])

    # References: the oracle (dialects) and the plain text read by the speakers' pretrained model (cipher).
    if family_name == "dialects":
        per_task["oracle"] = {None: torch.tensor([[t.oracle_bits for t in test]] * len(seeds))}
    if family_name == "cipher":
        plain = []
        for seed in seeds:
            reader = load("speakers", "finetune", seed, directory)
            plain.append(torch.tensor([float(window_loss(reader, dict(reader.named_parameters()), t.plain_query))
                                       / LN2 for t in test]))
        per_task["plain-text"] = {None: torch.stack(plain)}

    # The pretrained model at 0 steps, position by position, against counting its own context.
    windows = torch.cat([t.query for t in test])
    model_positions = torch.stack([position_bits(load(family_name, "finetune", s, directory), windows)
                                   for s in seeds]).mean(0)
    count_positions = context_count_bits(windows, prior, concentration)

    rows, paired = [], []
    for method, by_steps in per_task.items():
        for k, per_seed in by_steps.items():
            extra = {}
            if method in settings and str(k) in settings[method]:
                extra["chosen"] = settings[method][str(k)]
            rows.append(summary_row(family_name, method, k, per_seed, **extra))
    for method, by_steps in per_task.items():
        if method in ("finetune", "oracle", "plain-text"):
            continue
        for k in REPORT_STEPS:
            per_seed = by_steps.get(k, by_steps.get(0))
            if per_seed is None or k not in per_task["finetune"]:
                continue
            diff = per_seed.mean(0) - per_task["finetune"][k].mean(0)
            paired.append(dict(family=family_name, method=method, steps=k,
                               diff_vs_finetune=round(float(diff.mean()), 4), ci95=round(confidence_95(diff), 4)))
    per_task_lists = {m: {str(k): [[round(float(x), 4) for x in row] for row in v] for k, v in by.items()}
                      for m, by in per_task.items()}
    return {"results": rows, "paired": paired, "learning_rates": learning_rates, "count_concentration": concentration,
            "positions": {"model": [round(float(x), 4) for x in model_positions],
                          "count": [round(float(x), 4) for x in count_positions]},
            "per_task": per_task_lists}


def sweep_directory(directory: pathlib.Path, inner_lr: float) -> pathlib.Path:
    return pathlib.Path(directory) / "sweep" / f"alpha-{inner_lr:g}"


def sweep_recipe(directory: pathlib.Path, family_name: str) -> dict:
    """The switch point and meta-objective shared by the pretrain-maml runs swept in ``directory/sweep``."""
    pattern = f"alpha-*/{family_name}-pretrain-maml-seed*/checkpoint.json"
    records = sorted(pathlib.Path(directory, "sweep").glob(pattern))
    recipes = {tuple(sorted(recipe_of(json.loads(path.read_text())["metadata"]).items())) for path in records}
    if not recipes:
        raise ExperimentError(f"{directory}/sweep holds no {family_name} runs; train them with --train --inner-lrs")
    if len(recipes) != 1:
        raise ExperimentError(f"{directory}/sweep holds {family_name} runs of several recipes {sorted(recipes)}; "
                              "sweep one switch point and objective per folder")
    return dict(recipes.pop())


def recipe_of(record: dict) -> dict:
    """A pretrain-maml run's switch point, meta-objective and budget clock, from its training record."""
    return {"switch": record["switch"], "first_order": record.get("first_order", False),
            "support_weight": record.get("support_weight", 0.0), "clock": record.get("clock", "wall")}


def sweep_results_path(directory: pathlib.Path, family_name: str) -> pathlib.Path:
    """Where the validation scores of the alphas swept in ``directory/sweep`` are kept."""
    recipe = sweep_recipe(directory, family_name)
    name = f"sweep-{family_name}-switch{recipe['switch']:g}"
    name += "-first-order" if recipe["first_order"] else ""
    name += f"-support{recipe['support_weight']:g}" if recipe["support_weight"] else ""
    name += "-cpu-clock" if recipe["clock"] == "cpu" else ""
    return pathlib.Path(directory) / f"{name}.json"


def select_inner_lr(family_name: str, seeds=SEEDS, directory: pathlib.Path = CHECKPOINTS, val_tasks: int = 32,
                    progress: bool = True, previous: dict | None = None) -> dict:
    """Score every swept alpha of ``pretrain-maml`` on validation tasks only.

    For each alpha in ``directory/sweep``, seed and reported budget k, the step size and step count
    of both starts are tuned on the same validation tasks, and the score is the mean validation
    loss of ``pretrain-maml`` minus that of ``finetune`` (bits/char). Seeds already scored in
    ``previous`` (an earlier result of this function) are kept, so seeds can be scored in
    separate processes. The alpha chosen is the one whose worst budget, averaged over seeds, is
    best: the target asks for every budget.
    """
    val = evaluation_tasks(family_name, "val", val_tasks)
    folders = sorted((pathlib.Path(directory) / "sweep").glob("alpha-*"), key=lambda f: float(f.name[6:]))
    if not folders:
        raise ExperimentError(f"{directory}/sweep holds no runs; train them with --train --inner-lrs")

    def best(model) -> dict:
        c = curves(model, val, SGD_GRID)
        return {k: float(c[SGD_GRID.index(lr), :, steps].mean()) for k, (lr, steps) in
                ((k, choose(c, SGD_GRID, k)) for k in REPORT_STEPS)}

    recipe = sweep_recipe(directory, family_name)
    per_seed = dict(previous["per_seed"]) if previous and previous.get("val_tasks") == val_tasks else {}
    for seed in tqdm(seeds, desc=f"sweep {family_name}", disable=not progress):
        reference = best(load(family_name, "finetune", seed, folders[0]))
        per_seed[str(seed)] = {folder.name[6:]: {str(k): round(v - reference[k], 4) for k, v in
                                                 best(load(family_name, "pretrain-maml", seed, folder)).items()}
                               for folder in folders}
    alphas = sorted({a for scores in per_seed.values() for a in scores}, key=float)
    mean = {a: {str(k): round(sum(p[a][str(k)] for p in per_seed.values()) / len(per_seed), 4)
                for k in REPORT_STEPS} for a in alphas}
    chosen = min(mean, key=lambda a: max(mean[a].values()))
    return {"family": family_name, **recipe, "val_tasks": val_tasks,
            "seeds": sorted(int(s) for s in per_seed),
            "diff_vs_finetune": mean, "per_seed": per_seed, "chosen": float(chosen)}


def load_sweeps(family_name: str, directory: pathlib.Path = CHECKPOINTS) -> list[dict]:
    """The shipped validation scores of every swept switch point and alpha (``--select-inner-lr``)."""
    paths = sorted(pathlib.Path(directory).glob(f"sweep-{family_name}-switch*.json"))
    if not paths:
        raise ExperimentError(f"{directory} holds no sweep-{family_name}-switch*.json; make one with --select-inner-lr")
    return [json.loads(path.read_text()) for path in paths]


def best_of_sweeps(sweeps: list[dict]) -> tuple[int, float]:
    """The (sweep index, alpha) whose worst budget, in validation bits/char against ``finetune``, is lowest."""
    candidates = {(index, float(alpha)): max(diffs.values())
                  for index, sweep in enumerate(sweeps) for alpha, diffs in sweep["diff_vs_finetune"].items()}
    return min(candidates, key=candidates.get)


def evaluate(families=tuple(FAMILIES), seeds=SEEDS, num_tasks: int = TEST_TASKS, val_tasks: int = VAL_TASKS,
             directory: pathlib.Path = CHECKPOINTS, progress: bool = True) -> dict:
    """Every family's evaluation, merged into one results dict."""
    merged = {"results": [], "paired": [], "learning_rates": {}, "count_concentration": {}, "positions": {},
              "per_task": {}}
    for family_name in families:
        part = evaluate_family(family_name, seeds, num_tasks, val_tasks, directory, progress)
        merged["results"] += part["results"]
        merged["paired"] += part["paired"]
        merged["learning_rates"].update(part["learning_rates"])
        merged["count_concentration"][family_name] = part["count_concentration"]
        merged["positions"][family_name] = part["positions"]
        merged["per_task"][family_name] = part["per_task"]
    return merged


def merge_results(old: dict, new: dict) -> dict:
    """``new`` with the families it does not hold taken from ``old``."""
    families = {row["family"] for row in new["results"]}
    merged = copy.deepcopy(new)
    merged["results"] = [r for r in old.get("results", []) if r["family"] not in families] + new["results"]
    merged["paired"] = [r for r in old.get("paired", []) if r["family"] not in families] + new["paired"]
    for key in ("learning_rates", "count_concentration", "positions", "per_task", "evaluation_seconds"):
        kept = {k: v for k, v in old.get(key, {}).items() if not families & set(k.replace("+", "/").split("/"))}
        merged[key] = {**kept, **new.get(key, {})}
    return merged


def save_results(results: dict, path: pathlib.Path) -> None:
    """Merge ``results`` into the results file; families evaluated by processes side by side do not clash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # held until the merged file is written
        handle.seek(0)
        text = handle.read()
        old = json.loads(text) if text.strip() else {}
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(merge_results(old, results)) + "\n")
        temporary.replace(path)


def lookup(results: dict, family_name: str, method: str, steps: int | None) -> dict:
    for row in results["results"]:
        if (row["family"], row["method"], row["steps"]) == (family_name, method, steps):
            return row
    raise ExperimentError(f"no result for {family_name}/{method} at {steps} steps")


def paired(results: dict, family_name: str, method: str, steps: int) -> dict:
    for row in results["paired"]:
        if (row["family"], row["method"], row["steps"]) == (family_name, method, steps):
            return row
    raise ExperimentError(f"no paired difference for {family_name}/{method} at {steps} steps")


def format_table(results: dict) -> str:
    """One block per family: bits/char +- 95% CI (tasks as the unit) at each step budget."""
    lines = []
    families = list(dict.fromkeys(row["family"] for row in results["results"]))
    for family_name in families:
        rows = [r for r in results["results"] if r["family"] == family_name]
        lines.append(f"{family_name}: query bits per character, mean +- 95% CI over {rows[0]['tasks']} test tasks")
        lines.append(f"  {'method':<25}" + "".join(f"{f'<= {s} steps':>15}" for s in REPORT_STEPS))
        for method in dict.fromkeys(r["method"] for r in rows):
            cells = {r["steps"]: r for r in rows if r["method"] == method}
            if set(cells) <= {0, None}:
                cell = next(iter(cells.values()))
                lines.append(f"  {method:<25}{cell['bits_per_char']:>8.3f} ±{cell['ci95']:.3f}  (no gradient step)")
                continue
            text = "".join(f"{cells[s]['bits_per_char']:>8.3f} ±{cells[s]['ci95']:.3f}" if s in cells
                           else f"{'':>15}" for s in REPORT_STEPS)
            lines.append(f"  {method:<25}" + text)
    return "\n".join(lines)


def load_results(directory: pathlib.Path = CHECKPOINTS) -> dict:
    """The shipped results of the full evaluation (``--save-results``)."""
    path = pathlib.Path(directory) / "results.json"
    if not path.is_file():
        raise ExperimentError(f"{path} is missing; create it with `python -m book.experiments.metagpt --save-results`")
    return json.loads(path.read_text())


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"seeds are non-negative integers, got {value}")
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a share of the budget strictly between 0 and 1, got {text}")
    return value


def _weight(text: str) -> float:
    value = float(text)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a non-negative number, got {text}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    parser = CommandParser(prog="python -m book.experiments.metagpt", description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true",
                        help="train before evaluating: 'finetune' also makes 'pretrain-maml' from the same run")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--methods", nargs="+", default=["finetune", "maml"], choices=["finetune", "maml"],
                        help="runs to train with --train")
    parser.add_argument("--seeds", nargs="+", type=_seed, default=list(SEEDS))
    parser.add_argument("--inner-lrs", nargs="+", type=_seconds, default=None, metavar="ALPHA",
                        help="with --train --methods finetune: one pretrain-maml run per alpha, saved under sweep/")
    parser.add_argument("--first-order", action="store_true", default=None,
                        help="pretrain-maml with first-order MAML (default: the family's PRETRAIN_FIRST_ORDER)")
    parser.add_argument("--support-weight", type=_weight, default=None, metavar="W",
                        help="keep W times the support loss before adaptation in pretrain-maml's objective "
                             "(default: the family's PRETRAIN_SUPPORT_WEIGHT)")
    parser.add_argument("--switch", type=_share, default=None,
                        help="share of the budget pretrain-maml pretrains before MAML (default: SWITCH)")
    parser.add_argument("--select-inner-lr", action="store_true",
                        help="score the swept alphas of --seeds on validation tasks; the sweep's "
                             "sweep-<family>-switch<S>.json keeps other seeds")
    parser.add_argument("--budget", type=_seconds, default=None,
                        help="seconds per run on the family's clock (default: see BUDGET_SECONDS, BUDGET_CLOCK)")
    parser.add_argument("--tasks", type=_positive, default=TEST_TASKS, help="test tasks per family")
    parser.add_argument("--val-tasks", type=_positive, default=VAL_TASKS, help="validation tasks for tuning")
    parser.add_argument("--checkpoints", type=pathlib.Path, default=CHECKPOINTS, help="weights directory")
    parser.add_argument("--save-results", action="store_true", help="write results.json beside the checkpoints")
    parser.add_argument("--no-eval", action="store_true", help="with --train: train only")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)  # small matrices: one thread per process, and processes side by side
    progress = not args.quiet
    try:
        if args.train:
            for family_name in args.families:
                for seed in args.seeds:
                    for method in args.methods:
                        if method == "finetune":
                            runs = train_pretrained(family_name, seed, args.budget, args.switch, progress=progress,
                                                    inner_lrs=args.inner_lrs, first_order=args.first_order,
                                                    support_weight=args.support_weight)
                        else:
                            runs = train_maml(family_name, seed, args.budget, progress=progress)
                        for model, record in runs:
                            if args.inner_lrs is None:
                                save(model, record, args.checkpoints)
                                continue
                            for inner_lr in args.inner_lrs:  # the shared finetune run goes beside every alpha
                                if record["method"] == "finetune" or record["inner_lr"] == inner_lr:
                                    save(model, record, sweep_directory(args.checkpoints, inner_lr))
                            print(f"trained {family_name} {record['method']} seed {seed}: {record['iterations']} "
                                  f"iterations in {record['budget_seconds']:.0f} s", file=sys.stderr)
            if args.no_eval:
                return 0
        if args.select_inner_lr:
            for family_name in args.families:
                path = sweep_results_path(args.checkpoints, family_name)
                previous = json.loads(path.read_text()) if path.is_file() else None
                selection = select_inner_lr(family_name, args.seeds, args.checkpoints, progress=progress,
                                            previous=previous)
                path.write_text(json.dumps(selection, indent=1) + "\n")
                print(json.dumps(selection))
            return 0
        started = time.perf_counter()
        results = evaluate(args.families, args.seeds, args.tasks, args.val_tasks, args.checkpoints, progress)
        results["evaluation_seconds"] = {"+".join(args.families): round(time.perf_counter() - started, 1)}
    except ExperimentError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.save_results:
        save_results(results, pathlib.Path(args.checkpoints) / "results.json")
    shown = {k: v for k, v in results.items() if k != "per_task"}
    if args.json:
        print(json.dumps(shown))
    else:
        print(format_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
