"""Sinusoid regression, the MAML paper's first benchmark (Finn, Abbeel and Levine, ICML 2017, section 5.1).

Chapter 5 (MAML) runs it and reads its shipped results.

A task is a sine wave $y = A \\sin(x - \\varphi)$ with amplitude $A \\sim U[0.1, 5]$ and phase
$\\varphi \\sim U[0, \\pi]$; inputs $x \\sim U[-5, 5]$. The learner sees K points of a new wave and
must predict the rest of it. The network is the paper's: 1-40-40-1 with ReLU; training uses K=10
support and 10 query points per task, one inner step with $\\alpha = 0.01$, Adam with meta learning
rate $10^{-3}$ and 25 tasks per meta-batch.

    python -m book.experiments.sinusoid                  # evaluate the shipped weights (table)
    python -m book.experiments.sinusoid --json           # the same, as JSON
    python -m book.experiments.sinusoid --train          # meta-train all methods, then evaluate

Methods: ``maml`` (second order), ``fomaml`` (first order), ``reptile``, ``pretrained`` (one
network trained on all tasks jointly, then fine-tuned with a step size tuned on validation tasks)
and ``oracle`` (see :func:`oracle_mse`).
"""
from __future__ import annotations

import json
import math
import pathlib
import platform
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from book.checkpoint import CheckpointError, load_tensors, save_tensors, tensor_metadata
from book.errors import CommandParser
from book.maml import TaskBatch, apply_gradients, finetune_curve, maml_gradient, parameters_of, reptile_gradient
from book.paths import CHECKPOINTS as CHECKPOINTS_ROOT
from book.stats import confidence_95  # noqa: F401  (re-exported: Chapter 5 checks intervals with it)

CHECKPOINTS = CHECKPOINTS_ROOT / "sinusoid"

AMPLITUDE = (0.1, 5.0)
PHASE = (0.0, math.pi)
X_RANGE = (-5.0, 5.0)
HIDDEN = (40, 40)

TRAIN_SHOTS = 10          # K support points per task during meta-training
TRAIN_QUERIES = 10        # query points per task during meta-training
META_BATCH = 25           # tasks per meta-update
INNER_LR = 0.01           # alpha, also the test-time step size of maml, fomaml and reptile
INNER_STEPS = 1           # inner steps of MAML and FOMAML during training
META_LR = 1e-3            # Adam
REPTILE_STEPS = 5         # Reptile's inner SGD steps on all 20 points of a task
ITERATIONS = 20_000       # the paper ran 70,000; 20,000 reach its numbers (chapter 5)

METHODS = ("maml", "fomaml", "reptile", "pretrained")
ALL_METHODS = METHODS + ("oracle",)
EVAL_SHOTS = (5, 10, 20)
EVAL_STEPS = 10
EVAL_QUERIES = 50
TEST_TASKS = 1000
TEST_SEED = 2017
VALIDATION_TASKS = 100
VALIDATION_SEED = 1000
DIVERGED = 100.0          # a task's MSE above this (or not finite) means fine-tuning blew up
FINETUNE_LR_GRID = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)



def make_network() -> nn.Module:
    """The paper's regressor: 1 input, two hidden layers of 40 ReLU units, 1 output."""
    return nn.Sequential(nn.Linear(1, HIDDEN[0]), nn.ReLU(), nn.Linear(HIDDEN[0], HIDDEN[1]), nn.ReLU(),
                         nn.Linear(HIDDEN[1], 1))


def sine(x: torch.Tensor, amplitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """$A \\sin(x - \\varphi)$ for a batch of tasks: ``x`` is (tasks, points, 1), the others (tasks,)."""
    return amplitude[:, None, None] * torch.sin(x - phase[:, None, None])


def sample_waves(num_tasks: int, generator: torch.Generator):
    """Amplitudes and phases of ``num_tasks`` random sine waves."""
    amplitude = torch.empty(num_tasks).uniform_(*AMPLITUDE, generator=generator)
    phase = torch.empty(num_tasks).uniform_(*PHASE, generator=generator)
    return amplitude, phase


def sample_inputs(num_tasks: int, points: int, generator: torch.Generator) -> torch.Tensor:
    return torch.empty(num_tasks, points, 1).uniform_(*X_RANGE, generator=generator)


def sample_tasks(num_tasks: int, shots: int, queries: int, generator: torch.Generator):
    """A batch of sine-wave tasks with ``shots`` support and ``queries`` query points each.

    Returns ``(tasks, amplitude, phase)``. Support and query points are independent draws.
    """
    if num_tasks < 1 or shots < 1 or queries < 1:
        raise ValueError(f"need at least one task, shot and query point; got {num_tasks}, {shots}, {queries}")
    amplitude, phase = sample_waves(num_tasks, generator)
    x_support = sample_inputs(num_tasks, shots, generator)
    x_query = sample_inputs(num_tasks, queries, generator)
    tasks = TaskBatch(x_support, sine(x_support, amplitude, phase), x_query, sine(x_query, amplitude, phase))
    return tasks, amplitude, phase


# ----------------------------------------------------------------------------------------------
# Training

def train(method: str, iterations: int = ITERATIONS, seed: int = 0, log_every: int = 1000, progress: bool = True):
    """Train one method from scratch; returns ``(network, record)`` with the loss log and time taken."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tensors are tiny: one thread avoids contention and is fastest
    try:
        return _train(method, iterations, seed, log_every, progress)
    finally:
        torch.set_num_threads(threads)


def _train(method, iterations, seed, log_every, progress):
    torch.manual_seed(seed)
    network = make_network()
    optimizer = torch.optim.Adam(network.parameters(), lr=META_LR)
    generator = torch.Generator().manual_seed(seed)
    log, window = [], []
    from tqdm.auto import trange
    start = time.perf_counter()
    for iteration in trange(iterations, desc=method, disable=not progress, mininterval=2):
        tasks, _, _ = sample_tasks(META_BATCH, TRAIN_SHOTS, TRAIN_QUERIES, generator)
        params = parameters_of(network)
        if method in ("maml", "fomaml"):
            gradients, loss = maml_gradient(network, params, tasks, loss_fn=F.mse_loss, inner_lr=INNER_LR,
                                            steps=INNER_STEPS, first_order=method == "fomaml")
        elif method == "reptile":
            gradients, loss = reptile_gradient(network, params, tasks, loss_fn=F.mse_loss, inner_lr=INNER_LR,
                                               steps=REPTILE_STEPS)
        else:  # pretrained: one regressor fit to all the tasks' points at once
            x = torch.cat([tasks.x_support, tasks.x_query], dim=1)
            y = torch.cat([tasks.y_support, tasks.y_query], dim=1)
            loss = F.mse_loss(network(x), y)
            gradients = dict(zip(params, torch.autograd.grad(loss, list(network.parameters()))))
        apply_gradients(network, optimizer, gradients)
        window.append(float(loss.detach()))
        if (iteration + 1) % log_every == 0 or iteration + 1 == iterations:
            log.append({"iteration": iteration + 1, "loss": sum(window) / len(window)})
            window = []
    seconds = time.perf_counter() - start
    record = {"method": method, "iterations": iterations, "seed": seed, "seconds": round(seconds, 1),
              "loss_log": log, "torch": torch.__version__, "threads": 1,
              "machine": platform.machine()}
    return network, record


def save_checkpoint(network: nn.Module, record: dict, directory: pathlib.Path = CHECKPOINTS) -> None:
    """The network's weights (through :func:`book.checkpoint.save_tensors`) and its training record."""
    directory.mkdir(parents=True, exist_ok=True)
    method = record["method"]
    metadata = {"method": method, "hidden": json.dumps(HIDDEN)}
    save_tensors({k: v.contiguous() for k, v in network.state_dict().items()},
                 directory / f"{method}.safetensors", metadata)
    temporary = directory / f"{method}.json.tmp"
    temporary.write_text(json.dumps(record, indent=1) + "\n")
    temporary.replace(directory / f"{method}.json")


def load_network(method: str, directory: pathlib.Path = CHECKPOINTS) -> nn.Module:
    """The shipped (or freshly trained) network of ``method``."""
    path = pathlib.Path(directory) / f"{method}.safetensors"
    if not path.exists():
        raise CheckpointError(f"no checkpoint {path}; train it with `python -m book.experiments.sinusoid --train`")
    metadata = tensor_metadata(path)
    if metadata.get("method") != method or metadata.get("hidden") != json.dumps(HIDDEN):
        raise CheckpointError(f"{path} was saved for method {metadata.get('method')!r} with hidden sizes "
                              f"{metadata.get('hidden')}, expected {method!r} with {list(HIDDEN)}")
    network = make_network()
    network.load_state_dict(load_tensors(path))
    return network


def load_record(method: str, directory: pathlib.Path = CHECKPOINTS) -> dict:
    return json.loads((pathlib.Path(directory) / f"{method}.json").read_text())


# ----------------------------------------------------------------------------------------------
# Evaluation

def test_tasks(num_tasks: int = TEST_TASKS, shots=EVAL_SHOTS, seed: int = TEST_SEED, queries: int = EVAL_QUERIES):
    """Fixed test tasks: the same waves and query points for every K; a support set per K.

    Returns ``{K: TaskBatch}`` and the waves' ``(amplitude, phase)``.
    """
    generator = torch.Generator().manual_seed(seed)
    amplitude, phase = sample_waves(num_tasks, generator)
    x_query = sample_inputs(num_tasks, queries, generator)
    y_query = sine(x_query, amplitude, phase)
    batches = {}
    for k in shots:
        x_support = sample_inputs(num_tasks, k, generator)
        batches[k] = TaskBatch(x_support, sine(x_support, amplitude, phase), x_query, y_query)
    return batches, (amplitude, phase)


def mse_curves(network: nn.Module, tasks: TaskBatch, lr: float, steps: int = EVAL_STEPS) -> torch.Tensor:
    """Per-task query MSE after 0..steps SGD steps of size ``lr`` on the support set: (tasks, steps + 1)."""
    return finetune_curve(network, parameters_of(network), tasks, loss_fn=F.mse_loss, inner_lr=lr, steps=steps)


def oracle_mse(tasks: TaskBatch) -> torch.Tensor:
    """The oracle: least squares on the true basis $\\{\\sin x, \\cos x\\}$, fit to the support set.

    Every task is $A\\sin(x-\\varphi) = a \\sin x + b \\cos x$, so an oracle that knows the family
    needs only $a, b$; with noise-free labels, two support points already determine them and
    its query error is zero up to rounding. (The paper's oracle was instead a network given the
    true amplitude and phase as inputs.) Returns the per-task query MSE, shape (tasks,).
    """
    def basis(x):
        x = x.double()
        return torch.cat([torch.sin(x), torch.cos(x)], dim=-1)

    solution = torch.linalg.lstsq(basis(tasks.x_support), tasks.y_support.double()).solution
    prediction = basis(tasks.x_query) @ solution
    return ((prediction - tasks.y_query.double()) ** 2).mean(dim=(1, 2))


def tune_finetune_lr(network: nn.Module, shots: int, grid=FINETUNE_LR_GRID, num_tasks: int = VALIDATION_TASKS,
                     steps: int = EVAL_STEPS) -> float:
    """The pretrained baseline's fine-tuning step size: the grid value with the lowest mean
    validation MSE over steps 1..``steps``, on validation tasks disjoint from the test tasks."""
    batches, _ = test_tasks(num_tasks, (shots,), seed=VALIDATION_SEED)
    scores = {}
    for lr in grid:
        score = float(mse_curves(network, batches[shots], lr, steps)[:, 1:].mean())
        scores[lr] = score if math.isfinite(score) else math.inf  # a step size that diverges loses
    return min(scores, key=scores.get)


def summarise(mse: torch.Tensor, **keys) -> dict:
    """One result row: mean MSE and its 95% CI over tasks, and how many tasks diverged.

    Gradient descent with a fixed step size can blow up on a rare task (with K=5, a few of the
    1000 test tasks); their error would swamp the mean, so they are counted in ``diverged`` and
    left out of ``mse`` and ``ci95``. An error above ``DIVERGED`` is far beyond that of always
    predicting 0, which is $A^2/2 \\le 12.5$.
    """
    kept = mse[torch.isfinite(mse) & (mse <= DIVERGED)]
    diverged = mse.numel() - kept.numel()
    if kept.numel() < 2:
        return dict(keys, mse=math.inf, ci95=math.inf, diverged=diverged)
    return dict(keys, mse=round(float(kept.mean()), 6), ci95=round(confidence_95(kept), 6), diverged=diverged)


def evaluate(directory: pathlib.Path = CHECKPOINTS, num_tasks: int = TEST_TASKS, shots=EVAL_SHOTS,
             steps: int = EVAL_STEPS, validation_tasks: int = VALIDATION_TASKS):
    """MSE (mean and 95% CI over test tasks) after 0..steps gradient steps, for every method and K.

    Returns ``(rows, finetune_lr)``: rows like
    ``{"K": 10, "method": "maml", "steps": 1, "mse": .., "ci95": .., "diverged": 0}`` (see :func:`summarise`)
    and the pretrained baseline's tuned step size per K.
    """
    batches, _ = test_tasks(num_tasks, shots)
    networks = {method: load_network(method, directory) for method in METHODS}
    finetune_lr = {k: tune_finetune_lr(networks["pretrained"], k, num_tasks=validation_tasks, steps=steps)
                   for k in shots}
    rows = []
    for k in shots:
        for method in ALL_METHODS:
            if method == "oracle":
                curves = oracle_mse(batches[k])[:, None].expand(-1, steps + 1)
            else:
                lr = finetune_lr[k] if method == "pretrained" else INNER_LR
                curves = mse_curves(networks[method], batches[k], lr, steps)
            for step in range(steps + 1):
                rows.append(summarise(curves[:, step], K=k, method=method, steps=step))
    return rows, finetune_lr


SEED_METHODS = ("maml", "pretrained")  # the headline pair, trained with every seed


def seed_directory(seed: int, directory: pathlib.Path = CHECKPOINTS) -> pathlib.Path:
    """Where seed ``seed``'s networks live: the top level for seed 0, ``seedN/`` for the others."""
    return pathlib.Path(directory) if seed == 0 else pathlib.Path(directory) / f"seed{seed}"


def seed_summary(seeds=(0, 1, 2), k: int = 10, shown_steps=(0, 1, 10), directory: pathlib.Path = CHECKPOINTS,
                 num_tasks: int = TEST_TASKS) -> dict:
    """The headline (MAML against the pretrained network at K = ``k``) for every seed, and its mean.

    Each seed's networks are evaluated on the same test tasks, the pretrained network with its
    step size tuned on the validation tasks; the mean over seeds is the headline, and the
    seed-to-seed standard deviation says how much one training run can move it.
    """
    batches, _ = test_tasks(num_tasks)  # all shots drawn, so the tasks are results.json's own
    per_seed = []
    for seed in seeds:
        folder = seed_directory(seed, directory)
        networks = {m: load_network(m, folder) for m in SEED_METHODS}
        lr = tune_finetune_lr(networks["pretrained"], k)
        entry = {"seed": seed, "pretrained_lr": lr,
                 "iterations": {m: load_record(m, folder)["iterations"] for m in SEED_METHODS}}
        for method, network in networks.items():
            curves = mse_curves(network, batches[k], lr if method == "pretrained" else INNER_LR, max(shown_steps))
            entry[method] = {str(s): round(float(curves[:, s].mean()), 4) for s in shown_steps}
        per_seed.append(entry)
    mean = {m: {str(s): round(sum(e[m][str(s)] for e in per_seed) / len(per_seed), 4) for s in shown_steps}
            for m in SEED_METHODS}
    spread = {m: {str(s): round(float(torch.tensor([e[m][str(s)] for e in per_seed]).std()), 4)
                  for s in shown_steps} for m in SEED_METHODS}
    return {"K": k, "test_tasks": num_tasks, "seeds": per_seed, "mean": mean, "seed_sd": spread}


def lookup(rows, k: int, method: str, steps: int) -> dict:
    """The result row for (K, method, steps)."""
    for row in rows:
        if row["K"] == k and row["method"] == method and row["steps"] == steps:
            return row
    raise KeyError(f"no result for K={k}, method={method}, steps={steps}")


def format_table(rows, finetune_lr, shown_steps=(0, 1, 5, 10)) -> str:
    lines, any_diverged = [], False
    for k in sorted({row["K"] for row in rows}):
        lines.append(f"K = {k}   (MSE on {EVAL_QUERIES} query points, mean ± 95% CI; "
                     f"pretrained fine-tunes with lr {finetune_lr[k]})")
        lines.append("method       " + "".join(f"{f'{s} steps':>18}" for s in shown_steps))
        for method in ALL_METHODS:
            cells = [lookup(rows, k, method, s) for s in shown_steps]
            lines.append(f"{method:<13}" + "".join(
                f"{c['mse']:>10.3f} ± {c['ci95']:.3f}" + (f"*{c['diverged']}" if c["diverged"] else "") for c in cells))
            any_diverged = any_diverged or any(c["diverged"] for c in cells)
        lines.append("")
    if any_diverged:
        lines.append(f"*n: fine-tuning diverged on n test tasks (MSE > {DIVERGED:g} or not finite); "
                     "they are left out of that mean")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = CommandParser(prog="python -m book.experiments.sinusoid", description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true", help="meta-train the methods before evaluating")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS, help="methods to train")
    parser.add_argument("--iterations", type=int, default=ITERATIONS, help="meta-iterations per method")
    parser.add_argument("--seed", type=int, default=0,
                        help="with --train: the training seed; seeds other than 0 are saved under seedN/")
    parser.add_argument("--seed-summary", action="store_true",
                        help="write seeds.json: the K = 10 headline for seeds 0, 1 and 2 and its mean")
    parser.add_argument("--tasks", type=int, default=TEST_TASKS, help="number of test tasks")
    parser.add_argument("--checkpoints", type=pathlib.Path, default=CHECKPOINTS, help="weights directory")
    parser.add_argument("--save-results", action="store_true",
                        help="write results.json next to the weights (implied by --train)")
    args = parser.parse_args(argv)
    if args.tasks < 2:
        parser.error("--tasks must be at least 2 (a confidence interval needs two tasks)")
    if args.iterations < 1:
        parser.error(f"--iterations must be at least 1, got {args.iterations}")
    if args.seed < 0:
        parser.error(f"--seed must be a non-negative integer, got {args.seed}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: extra threads only add contention on a shared CPU
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args) -> int:
    try:
        if args.train and args.seed != 0:
            for method in args.methods:
                network, record = train(method, args.iterations, seed=args.seed, progress=not args.json)
                save_checkpoint(network, record, seed_directory(args.seed, args.checkpoints))
            return 0
        if args.seed_summary:
            summary = seed_summary(directory=args.checkpoints)
            (args.checkpoints / "seeds.json").write_text(json.dumps(summary, indent=1) + "\n")
            print(json.dumps(summary["mean"]))
            return 0
        if args.train:
            for method in args.methods:
                network, record = train(method, args.iterations, progress=not args.json)
                save_checkpoint(network, record, args.checkpoints)
                print(f"trained {method}: {args.iterations} iterations in {record['seconds']:.0f} s, "
                      f"final loss {record['loss_log'][-1]['loss']:.3f}", file=sys.stderr)
        start = time.perf_counter()
        rows, finetune_lr = evaluate(args.checkpoints, args.tasks, validation_tasks=min(VALIDATION_TASKS, args.tasks))
        seconds = time.perf_counter() - start
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report = {"results": rows, "test_tasks": args.tasks,
              "pretrained_finetune_lr": {str(k): v for k, v in finetune_lr.items()},
              "evaluation_seconds": round(seconds, 1)}
    if args.train or args.save_results:
        training = {m: {k: v for k, v in load_record(m, args.checkpoints).items() if k != "loss_log"} for m in METHODS}
        saved = dict(report, training=training)
        (args.checkpoints / "results.json").write_text(json.dumps(saved, indent=1) + "\n")
    if args.json:
        print(json.dumps(report))
    else:
        print(format_table(rows, finetune_lr))
        print(f"{args.tasks} test tasks, evaluated in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
