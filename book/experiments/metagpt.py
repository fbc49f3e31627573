"""MetaGPT: MAML, first-order MAML and Reptile applied to a tiny character-level GPT (Chapter 6).

The seed's "Meta-Transformer" is a Transformer plus a meta-learner. Here the Transformer is the
book's :class:`~book.model.GPT` (2 layers, 4 heads, 64 dimensions, context 32, the corpus's 84
characters) and the meta-learner learns its initial weights so that a few gradient steps on a
new task's support set lower the loss on that task's query set. Two task families
(:mod:`book.tasks`): ``dialects`` (random Markov chains, whose entropy rate is a known oracle)
and ``speakers`` (Shakespeare's speakers, held-out plays for testing).

    python -m book.experiments.metagpt                   # evaluate the shipped checkpoints (table)
    python -m book.experiments.metagpt --json            # the same, as JSON
    python -m book.experiments.metagpt --train           # meta-train every method and seed, then evaluate

Methods: ``maml`` (second order, one inner step), ``fomaml`` (first order), ``reptile``,
``finetune`` (one model trained on the union of the meta-training tasks with the same number of
gradient evaluations as MAML, then fine-tuned) and ``scratch`` (random initialisation, trained on
the support set alone). Every method adapts with plain gradient descent on the support set; its
step size is tuned on meta-*validation* tasks (held-out plays, or fresh dialects), never on the
test tasks.
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import platform
import sys
import time

import torch
from safetensors.torch import load_file, save_file
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm.auto import tqdm

from book.model import GPT, GPTConfig
from book.tasks import FAMILIES, Task, family as make_family, shared_tokenizer
from book.training import lr_schedule, make_optimizer

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
CHECKPOINTS = ROOT / "checkpoints" / "metagpt"

MODEL = dict(context_length=32, n_layer=2, n_head=4, d_model=64)
WINDOW = 32               # characters per window (the context)
SUPPORT = 8               # support windows per task: 8 x 33 = 264 characters
QUERY = 8                 # query windows per task
META_BATCH = 4            # tasks per meta-update
ITERATIONS = 200          # meta-iterations per method and seed
INNER_LR = 0.4            # alpha: MAML's and FOMAML's inner step size, Reptile's SGD step size
INNER_STEPS = 1           # inner steps of MAML and FOMAML during meta-training
REPTILE_STEPS = 3         # Reptile's SGD steps on each task's support and query windows
META_LR = 3e-3            # Adam, warm-up then cosine to a tenth
WARMUP = 10
SEEDS = (0, 1, 2)

METHODS = ("maml", "fomaml", "reptile", "finetune", "scratch")
TRAINED = ("maml", "fomaml", "reptile", "finetune")
EVAL_STEPS = (0, 1, 5, 10)
TEST_TASKS = 32
VAL_TASKS = 8
LR_GRID = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
DIVERGED_BITS = 20.0      # a query loss above this (or not finite) counts as a blow-up, capped here


class ExperimentError(ValueError):
    """Settings or checkpoints that this experiment cannot use."""


def make_model(seed: int = 0) -> GPT:
    """The tiny GPT every method starts from, initialised with ``seed``."""
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=shared_tokenizer().vocab_size, **MODEL))


def parameters(model: GPT) -> dict[str, torch.Tensor]:
    """The model's weights as leaf tensors that gradients can be taken with respect to."""
    return {name: p.detach().clone().requires_grad_() for name, p in model.named_parameters()}


def window_loss(model: GPT, params: dict, windows: torch.Tensor) -> torch.Tensor:
    """Mean next-character cross-entropy (nats) of the model with weights ``params`` on ``windows``."""
    return functional_call(model, params, (windows[:, :-1], windows[:, 1:]))[1]


def sgd_steps(model: GPT, params: dict, windows: torch.Tensor, lr: float, steps: int, *,
              create_graph: bool = False) -> dict:
    """``steps`` of plain gradient descent on ``windows``; differentiable when ``create_graph``."""
    for _ in range(steps):
        loss = window_loss(model, params, windows)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
        params = {name: p - lr * g for (name, p), g in zip(params.items(), grads)}
    return params


def meta_gradient(model: GPT, params: dict, tasks: list[Task], *, inner_lr: float = INNER_LR,
                  steps: int = INNER_STEPS, first_order: bool = False):
    """MAML's meta-gradient $\\nabla_\\theta \\frac1T \\sum_i L_{Q_i}(\\theta_i')$ and the meta-loss.

    The same quantity as :func:`book.maml.maml_gradient`, computed with plain autograd
    (``create_graph=True`` keeps the inner step differentiable), which is several times faster
    on a CPU for this model. First order (FOMAML) treats the inner gradient as a constant: then
    the meta-gradient is the query gradient at the adapted weights.
    """
    total = 0.0
    with sdpa_kernel(SDPBackend.MATH):  # the fused CPU attention kernel has no double backward
        for task in tasks:
            adapted = sgd_steps(model, params, task.support, inner_lr, steps, create_graph=not first_order)
            if first_order:  # the query gradient at theta', applied to theta
                adapted = {name: p.detach().requires_grad_() for name, p in adapted.items()}
                loss = window_loss(model, adapted, task.query)
                grads = torch.autograd.grad(loss, list(adapted.values()))
            else:
                loss = window_loss(model, adapted, task.query)
                grads = torch.autograd.grad(loss, list(params.values()))
            total = total + loss.detach()
            if task is tasks[0]:
                summed = list(grads)
            else:
                summed = [s + g for s, g in zip(summed, grads)]
    return {name: g / len(tasks) for name, g in zip(params, summed)}, float(total) / len(tasks)


def reptile_direction(model: GPT, params: dict, tasks: list[Task], *, inner_lr: float = INNER_LR,
                      steps: int = REPTILE_STEPS):
    """Reptile's direction $\\theta - \\frac1T\\sum_i \\theta_i'$ (SGD on support and query) and the mean loss."""
    direction = {name: torch.zeros_like(p) for name, p in params.items()}
    total = 0.0
    for task in tasks:
        windows = torch.cat([task.support, task.query])
        with torch.no_grad():
            total += float(window_loss(model, params, windows))
        adapted = sgd_steps(model, params, windows, inner_lr, steps)
        for name in params:
            direction[name] += (params[name] - adapted[name]).detach() / len(tasks)
    return direction, total / len(tasks)


def meta_batch(family_name: str, seed: int, iteration: int) -> list[Task]:
    """The meta-training tasks of one iteration: fresh dialects, or random training speakers."""
    family = make_family(family_name)
    stream = seed * 1_000_003 + iteration
    if family_name == "dialects":
        return family.sample("train", META_BATCH, seed=stream, first=stream * META_BATCH,
                             support=SUPPORT, query=QUERY, length=WINDOW)
    return family.sample("train", META_BATCH, seed=stream, support=SUPPORT, query=QUERY, length=WINDOW)


def train(family_name: str, method: str, seed: int = 0, iterations: int = ITERATIONS,
          progress: bool = True) -> tuple[GPT, dict]:
    """Meta-train (or, for ``finetune``, pretrain) one method on one family; returns the model and a record.

    ``finetune`` sees exactly the tasks MAML sees and takes as many gradient evaluations: per
    iteration one step on the meta-batch's support windows and one on its query windows.
    """
    if method not in TRAINED:
        raise ExperimentError(f"cannot train {method!r}; trainable methods: {', '.join(TRAINED)}")
    if family_name not in FAMILIES:
        raise ExperimentError(f"unknown family {family_name!r}; choose one of {', '.join(FAMILIES)}")
    if iterations < 1:
        raise ExperimentError(f"iterations must be at least 1, got {iterations}")
    model = make_model(seed)
    optimizer = make_optimizer(model, lr=META_LR, weight_decay=0.01, betas=(0.9, 0.99))
    schedule = dict(max_lr=META_LR, min_lr=META_LR / 10, warmup_steps=WARMUP, max_steps=iterations)
    losses, started = [], time.perf_counter()
    bar = tqdm(range(iterations), desc=f"{family_name} {method} seed {seed}", disable=not progress)
    for iteration in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr_schedule(iteration, **schedule)
        tasks = meta_batch(family_name, seed, iteration)
        if method == "finetune":
            loss = 0.0
            for part in ("support", "query"):
                windows = torch.cat([getattr(task, part) for task in tasks])
                step_loss = model(windows[:, :-1], windows[:, 1:])[1]
                optimizer.zero_grad(set_to_none=True)
                step_loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                loss += step_loss.item() / 2
        else:
            params = parameters(model)
            if method == "reptile":
                grads, loss = reptile_direction(model, params, tasks)
            else:
                grads, loss = meta_gradient(model, params, tasks, first_order=method == "fomaml")
            for name, p in model.named_parameters():
                p.grad = grads[name].detach().clone()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        losses.append(round(loss / math.log(2), 4))
        bar.set_postfix(bits=f"{losses[-1]:.3f}")
    record = dict(family=family_name, method=method, seed=seed, iterations=iterations,
                  seconds=round(time.perf_counter() - started, 1), loss_bits=losses,
                  torch=torch.__version__, machine=platform.machine())
    return model.eval(), record


# --------------------------------------------------------------------------------------------
# Checkpoints: one small safetensors file per family, method and seed (float16), one JSON of records.


def checkpoint_path(directory: pathlib.Path, family_name: str, method: str, seed: int) -> pathlib.Path:
    return pathlib.Path(directory) / f"{family_name}-{method}-seed{seed}.safetensors"


def save(model: GPT, record: dict, directory: pathlib.Path = CHECKPOINTS) -> None:
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = {name: p.detach().to(torch.float16).contiguous() for name, p in model.named_parameters()}
    save_file(weights, checkpoint_path(directory, record["family"], record["method"], record["seed"]),
              metadata={"config": json.dumps(MODEL)})
    records_file = directory / "training.json"
    records = json.loads(records_file.read_text()) if records_file.exists() else []
    records = [r for r in records if (r["family"], r["method"], r["seed"]) !=
               (record["family"], record["method"], record["seed"])] + [record]
    records.sort(key=lambda r: (r["family"], TRAINED.index(r["method"]), r["seed"]))
    records_file.write_text(json.dumps(records) + "\n")


def load(family_name: str, method: str, seed: int, directory: pathlib.Path = CHECKPOINTS) -> GPT:
    """The model a method starts adapting from: a shipped checkpoint, or a random one for ``scratch``."""
    if method not in METHODS:
        raise ExperimentError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if method == "scratch":
        return make_model(10_000 + seed).eval()
    path = checkpoint_path(directory, family_name, method, seed)
    if not path.is_file():
        raise ExperimentError(f"{path} is missing; train it with `python -m book.experiments.metagpt --train "
                              f"--families {family_name} --methods {method} --seeds {seed}`")
    model = make_model(seed)
    weights = load_file(path)
    expected = dict(model.named_parameters())
    if set(weights) != set(expected) or any(weights[n].shape != p.shape for n, p in expected.items()):
        raise ExperimentError(f"{path} holds weights of another model than {MODEL}")
    with torch.no_grad():
        for name, p in expected.items():
            p.copy_(weights[name].float())
    return model.eval()


def load_records(directory: pathlib.Path = CHECKPOINTS) -> list[dict]:
    path = pathlib.Path(directory) / "training.json"
    if not path.is_file():
        raise ExperimentError(f"{path} is missing: no training records")
    return json.loads(path.read_text())


# --------------------------------------------------------------------------------------------
# Evaluation.


def adaptation_curve(model: GPT, task: Task, lr: float, steps: int = max(EVAL_STEPS)) -> list[float]:
    """Query loss in bits per character after 0, 1, ..., ``steps`` gradient steps on the support set."""
    params = parameters(model)
    curve = []
    for step in range(steps + 1):
        with torch.no_grad():
            bits = float(window_loss(model, params, task.query)) / math.log(2)
        curve.append(bits if math.isfinite(bits) and bits < DIVERGED_BITS else DIVERGED_BITS)
        if step < steps:
            if curve[-1] >= DIVERGED_BITS:  # blown up: it stays blown up
                curve.extend([DIVERGED_BITS] * (steps - step))
                break
            params = {n: p.detach().requires_grad_() for n, p in sgd_steps(model, params, task.support, lr, 1).items()}
    return curve


def evaluation_tasks(family_name: str, split: str, num_tasks: int) -> list[Task]:
    """Fixed evaluation tasks: the first ``num_tasks`` dialects or speakers of ``split``."""
    return make_family(family_name).sample(split, num_tasks, seed=12345, first=0, support=SUPPORT, query=QUERY,
                                           length=WINDOW)


def tune_lr(model: GPT, family_name: str, grid=LR_GRID, num_tasks: int = VAL_TASKS) -> float:
    """The step size from ``grid`` with the lowest mean validation query loss over 1 to 10 steps."""
    tasks = evaluation_tasks(family_name, "val", num_tasks)
    scores = {}
    for lr in grid:
        curves = torch.tensor([adaptation_curve(model, task, lr) for task in tasks])
        scores[lr] = float(curves[:, 1:].mean())
    return min(scores, key=scores.get)


def confidence_95(values: torch.Tensor) -> float:
    """Half-width of the normal-approximation 95% interval of the mean of ``values``."""
    if values.numel() < 2:
        return float("nan")
    return 1.96 * float(values.std()) / math.sqrt(values.numel())


def evaluate(families=tuple(FAMILIES), methods=METHODS, seeds=SEEDS, num_tasks: int = TEST_TASKS,
             val_tasks: int = VAL_TASKS, grid=LR_GRID, directory: pathlib.Path = CHECKPOINTS,
             progress: bool = True) -> dict:
    """Query bits per character at each of ``EVAL_STEPS`` for every family and method.

    For each seed, the method's step size is tuned on validation tasks, then every test task is
    adapted from the same starting weights. A row's mean and interval pool all tasks and seeds.
    """
    rows, lrs = [], {}
    jobs = [(f, m, s) for f in families for m in methods for s in seeds]
    curves: dict = {}
    for family_name, method, seed in tqdm(jobs, desc="evaluating", disable=not progress):
        model = load(family_name, method, seed, directory)
        lr = tune_lr(model, family_name, grid, val_tasks) if len(grid) > 1 else grid[0]
        lrs[f"{family_name}/{method}/seed{seed}"] = lr
        tasks = evaluation_tasks(family_name, "test", num_tasks)
        curves[family_name, method, seed] = torch.tensor([adaptation_curve(model, t, lr) for t in tasks])
    for family_name in families:
        tasks = evaluation_tasks(family_name, "test", num_tasks)
        oracle = [t.oracle_bits for t in tasks]
        for method in methods:
            stacked = torch.stack([curves[family_name, method, s] for s in seeds])  # (seeds, tasks, steps + 1)
            for steps in EVAL_STEPS:
                values = stacked[:, :, steps].flatten()
                rows.append(dict(family=family_name, method=method, steps=steps,
                                 bits_per_char=round(float(values.mean()), 4), ci95=round(confidence_95(values), 4),
                                 seeds=len(seeds), tasks=len(tasks)))
        if all(o is not None for o in oracle):
            values = torch.tensor(oracle)
            rows.append(dict(family=family_name, method="oracle", steps=None,
                             bits_per_char=round(float(values.mean()), 4), ci95=round(confidence_95(values), 4),
                             seeds=len(seeds), tasks=len(tasks)))
    return {"results": rows, "learning_rates": lrs}


def lookup(results: dict, family_name: str, method: str, steps: int | None) -> dict:
    for row in results["results"]:
        if (row["family"], row["method"], row["steps"]) == (family_name, method, steps):
            return row
    raise ExperimentError(f"no result for {family_name}/{method} at {steps} steps")


def format_table(results: dict) -> str:
    """A plain-text table: one line per family and method, bits/char +- 95% CI at each step count."""
    lines = []
    families = list(dict.fromkeys(row["family"] for row in results["results"]))
    for family_name in families:
        lines.append(f"{family_name}: query bits per character (mean +- 95% CI)")
        lines.append(f"  {'method':<9}" + "".join(f"{f'{s} steps':>16}" for s in EVAL_STEPS))
        methods = list(dict.fromkeys(r["method"] for r in results["results"] if r["family"] == family_name))
        for method in methods:
            if method == "oracle":
                row = lookup(results, family_name, "oracle", None)
                lines.append(f"  {'oracle':<9}{row['bits_per_char']:>16.3f}  (entropy rate of the test dialects)")
                continue
            cells = [lookup(results, family_name, method, s) for s in EVAL_STEPS]
            lines.append(f"  {method:<9}" + "".join(f"{c['bits_per_char']:>9.3f} +-{c['ci95']:.3f}" for c in cells))
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


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m book.experiments.metagpt", description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true", help="meta-train the methods before evaluating")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=_seed, default=list(SEEDS))
    parser.add_argument("--iterations", type=_positive, default=ITERATIONS, help="meta-iterations per run")
    parser.add_argument("--tasks", type=_positive, default=TEST_TASKS, help="test tasks per family")
    parser.add_argument("--val-tasks", type=_positive, default=VAL_TASKS, help="validation tasks to tune step sizes")
    parser.add_argument("--lr", type=float, default=None,
                        help="use this adaptation step size for every method instead of tuning one (fast)")
    parser.add_argument("--checkpoints", type=pathlib.Path, default=CHECKPOINTS, help="weights directory")
    parser.add_argument("--save-results", action="store_true", help="write results.json beside the checkpoints")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.lr is not None and not (args.lr > 0 and math.isfinite(args.lr)):
        parser.error(f"--lr must be a positive number, got {args.lr}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)  # tiny matrices: threads cost more than they give
    progress = not args.quiet
    try:
        if args.train:
            for family_name in args.families:
                for method in [m for m in args.methods if m in TRAINED]:
                    for seed in args.seeds:
                        model, record = train(family_name, method, seed, args.iterations, progress)
                        save(model, record, args.checkpoints)
                        print(f"trained {family_name} {method} seed {seed}: {record['seconds']:.0f} s",
                              file=sys.stderr)
        grid = (args.lr,) if args.lr is not None else LR_GRID
        started = time.perf_counter()
        results = evaluate(args.families, args.methods, args.seeds, args.tasks, args.val_tasks, grid,
                           args.checkpoints, progress)
        results["evaluation_seconds"] = round(time.perf_counter() - started, 1)
    except ExperimentError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.save_results:
        (pathlib.Path(args.checkpoints) / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    if args.json:
        print(json.dumps(results))
    else:
        print(format_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
