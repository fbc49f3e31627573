"""The code-generation application, measured: pass@1 on a family of small functions, and few-shot line completion.

    python -m book.experiments.code                     # both parts (about half an hour)
    python -m book.experiments.code --part functions    # pass@1 only; line completion is kept

writes ``checkpoints/applications/results/code.json`` (application "code") and the fine-tuned
function writer ``checkpoints/applications/code-functions``. With ``--part functions`` only the
pass@1 part runs: the line-completion rows and summary are read from the existing results file
and written back unchanged (``lines_from`` records the run that measured them). It uses one
thread and runs the training steps under bfloat16 autocast. Both parts start from the shipped
code model (``checkpoints/stdlib-code``, trained on the standard library with whole modules
held out).

pass@1: the code model is fine-tuned on the training functions of
:func:`book.applications.code_tasks.function_splits`; its learning rate and step count are
those with the most validation functions passing (held-out templates and held-out constants
of the validation split), and it is then scored once on the test split. One run per learning
rate is evaluated at each of FUNCTION_STEPS; beyond the last of them, it goes on doubling its
step count until the validation passes flatten (up to FUNCTION_MAX_STEPS), so the chosen
setting is not left at the edge of a grid that stopped too early (see :func:`extension_stop`).
Every program runs in :mod:`book.applications.sandbox`. Baselines: the most common training
body, the body of the training function with the nearest docstring (numbers replaced), and the
code model as shipped.

Line completion: in each held-out module, lines of its second half are completed from their
middle by the code model as shipped (0 steps) and after fine-tuning on the module's first
half. Steps and learning rate are chosen on the validation modules (every third held-out
module); the test modules are scored once with that setting. The gain is tested with McNemar's
exact test on the same lines. Baseline: copying what followed the longest matching context in
the module's first half.
"""
from __future__ import annotations

import ast
import concurrent.futures
import copy
import multiprocessing
import sys
import time

import torch

from book.applications import code_tasks, sandbox
from book.applications.codegen import CODE_CHECKPOINT, prefix_share
from book.applications.results import (
    Result,
    ResultsError,
    proportion,
    read_results,
    results_path,
    wilson_interval,
    write_results,
)
from book.checkpoint import load_checkpoint, save_checkpoint
from book.data import load_code_corpus, split_text
from book.errors import CommandParser
from book.paths import ROOT

FUNCTION_LRS = (3e-4, 1e-3, 3e-3)
FUNCTION_STEPS = (25, 50, 100, 200)  # evaluated at every learning rate
FUNCTION_MAX_STEPS = 6400  # beyond FUNCTION_STEPS, doubling until validation passes flatten, up to this
LINE_LRS = (3e-4, 1e-3, 3e-3)
LINE_STEPS = (8, 16, 32)
VALIDATION_LINES = 40  # per validation module
TEST_LINES = 100  # at most, per test module
BATCH_SIZE, BLOCK = 8, 128


def fine_tune_checkpoints(model, data: torch.Tensor, *, lr: float, steps: tuple[int, ...], seed: int,
                          evaluate, stop=None) -> dict:
    """AdamW on random windows of ``data`` from a copy of ``model``; ``evaluate(net)`` at each of ``steps``.

    One run: the evaluation at 400 steps continues the run evaluated at 200. With ``stop``, the
    run ends early once ``stop(results)`` is true after an evaluation (``results`` so far, by step).
    """
    net = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    results = {}
    for step in range(1, max(steps) + 1):
        net.train()
        starts = torch.randint(0, len(data) - BLOCK - 1, (BATCH_SIZE,), generator=generator)
        x = torch.stack([data[s:s + BLOCK] for s in starts])
        y = torch.stack([data[s + 1:s + BLOCK + 1] for s in starts])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _, loss = net(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step in steps:
            net.eval()
            results[step] = evaluate(net)
            if stop is not None and stop(results):
                break
    return results


def extended_steps(base: tuple[int, ...], most: int) -> tuple[int, ...]:
    """``base`` and then its last step count doubled, again and again, while it stays within ``most``."""
    steps = list(base)
    while steps[-1] * 2 <= most:
        steps.append(steps[-1] * 2)
    return tuple(steps)


def extension_stop(passed: dict[int, int], base: tuple[int, ...]) -> bool:
    """Whether a run evaluated at ``passed`` (step count: validation passes) stops extending.

    Every step count of ``base`` is evaluated. From its last one on, a run stops once two
    successive doublings of its step count (from a quarter of its latest step count, to its
    latest) have brought no more validation passes than the best before them: one flat or
    falling doubling may be noise, two say that the passes have flattened.
    """
    latest = max(passed)
    if latest < base[-1]:
        return False
    before = [p for steps, p in passed.items() if steps <= latest // 4]
    recent = [p for steps, p in passed.items() if steps > latest // 4]
    return not before or max(recent) <= max(before)


def _best(scores: dict) -> tuple:
    """The setting with the highest score; ties go to fewer steps, then the smaller learning rate."""
    return max(scores, key=lambda setting: (scores[setting], -setting[0], -setting[1]))


# ---------------------------------------------------------------------------------------------

class Scorer:
    """Runs each distinct program once in the sandbox; unparsable programs fail without running."""

    def __init__(self):
        self.cache, self.runs = {}, 0

    def __call__(self, function: code_tasks.Function, body: str) -> str:
        program = function.program(body)
        key = (program, function.tests)
        if key not in self.cache:
            try:
                ast.parse(program)
            except SyntaxError:
                self.cache[key] = "error"
                return "error"
            self.runs += 1
            self.cache[key] = sandbox.run_tests(program, list(function.tests)).status
        return self.cache[key]


def functions_part(model, tokenizer, *, seed: int, log) -> dict:
    splits = code_tasks.function_splits(seed)
    if QUICK:
        splits = {name: functions if name == "train" else functions[::15] for name, functions in splits.items()}
    train, validation, test = splits["train"], splits["validation"], splits["test"]
    data = torch.tensor(tokenizer.encode(code_tasks.training_text(train, repeats=16, seed=seed)), dtype=torch.long)
    score = Scorer()
    context = code_tasks.context_text(train)

    def passes(net, functions):
        bodies = code_tasks.write_functions(net, tokenizer, functions, context)
        return bodies, [score(f, b) for f, b in zip(functions, bodies)]

    grid, states, runs = {}, {}, {}
    all_steps = extended_steps(FUNCTION_STEPS, FUNCTION_MAX_STEPS)
    for lr in FUNCTION_LRS:
        def evaluate(net):
            statuses = passes(net, validation)[1]
            return sum(s == "passed" for s in statuses), copy.deepcopy(net.state_dict())

        def stop(found, lr=lr):
            passed = {steps: p for steps, (p, _) in found.items()}
            latest = max(passed)
            log(f"functions: {latest} steps at lr {lr:g}: "
                f"{passed[latest]}/{len(validation)} validation functions pass")
            return extension_stop(passed, FUNCTION_STEPS)

        found = fine_tune_checkpoints(model, data, lr=lr, steps=all_steps, seed=seed, evaluate=evaluate,
                                      stop=stop)
        for steps, (passed, state) in found.items():
            grid[steps, lr] = passed
            states[steps, lr] = state
        last = max(found)
        rising = not extension_stop({steps: p for steps, (p, _) in found.items()}, FUNCTION_STEPS)
        if last < all_steps[-1]:
            ended = "two doublings brought no more validation passes"
        else:
            ended = "still rising at the largest step count" if rising else "at the largest step count"
        runs[lr] = {"lr": lr, "last_steps": last, "still_rising": last == all_steps[-1] and rising,
                    "ended": ended}
    chosen = _best(grid)
    chosen_still_rising = runs[chosen[1]]["still_rising"]  # its run reached max_steps without flattening
    writer = copy.deepcopy(model)
    writer.load_state_dict(states[chosen])
    writer.eval()
    with torch.no_grad():  # measured as shipped: bfloat16 weights
        for parameter in writer.parameters():
            parameter.copy_(parameter.to(torch.bfloat16).float())
    methods = {
        "fine-tuned code model": passes(writer, test),
        "code model as shipped, 6 training functions in the prompt": passes(model, test),
        "nearest training docstring": ([code_tasks.nearest_body(train, f) for f in test],),
        "most common training body": ([code_tasks.most_common_body(train, f) for f in test],),
    }
    outcomes = {}
    for method, result in methods.items():
        bodies = result[0]
        statuses = result[1] if len(result) > 1 else [score(f, b) for f, b in zip(test, bodies)]
        outcomes[method] = {"bodies": bodies, "statuses": statuses}
    kinds = [code_tasks.split_kind(f) for f in test]
    rows = []
    for method, outcome in outcomes.items():
        for kind in ("held-out constant", "held-out template", "all"):
            chosen_items = [i for i, k in enumerate(kinds) if kind in ("all", k)]
            passed = sum(outcome["statuses"][i] == "passed" for i in chosen_items)
            rows.append(proportion("code", f"functions, {kind}", "pass@1", method, passed, len(chosen_items),
                                   is_baseline=method != "fine-tuned code model"))
    return {
        "rows": rows, "writer": writer,
        "summary": {
            "model": "the shipped code model (checkpoints/stdlib-code) fine-tuned on the family's training functions",
            "sizes": {name: len(functions) for name, functions in splits.items()},
            "validation_templates": [list(t) for t in code_tasks.VALIDATION_TEMPLATES],
            "test_templates": [list(t) for t in code_tasks.TEST_TEMPLATES],
            "grid": [{"steps": s, "lr": lr, "validation_passed": p, "validation_n": len(validation)}
                     for (s, lr), p in sorted(grid.items())],
            "chosen": {"steps": chosen[0], "lr": chosen[1], "chosen_on": "validation functions"},
            "extension": {
                "rule": "one run per learning rate, evaluated at each base step count; from the last of them "
                        "it doubles its steps until two successive doublings bring no more validation passes "
                        "than the best before them, or max_steps is reached",
                "base_steps": list(FUNCTION_STEPS), "max_steps": FUNCTION_MAX_STEPS,
                "lrs": list(FUNCTION_LRS),
                "runs": list(runs.values()),
                "chosen_still_rising": chosen_still_rising,
                "note": (f"the chosen run (lr {chosen[1]:g}) ended at {runs[chosen[1]]['last_steps']} steps, "
                         f"{runs[chosen[1]]['ended']}"
                         + ("; validation passes were still rising there, so the chosen setting sits at the "
                            "grid's edge" if chosen_still_rising else "")),
            },
            "batch_size": BATCH_SIZE, "block": BLOCK, "sandbox_runs": score.runs,
            "test_items": [{"name": f.name, "kind": k, **{m: o["statuses"][i] for m, o in outcomes.items()}}
                           for i, (f, k) in enumerate(zip(test, kinds))],
            "examples": [{"prompt": f.prompt, "written": outcomes["fine-tuned code model"]["bodies"][i],
                          "status": outcomes["fine-tuned code model"]["statuses"][i], "kind": kinds[i]}
                         for i, f in enumerate(test) if i % 15 == 0],
        },
    }


# ---------------------------------------------------------------------------------------------

def copy_from_support(support: str, prompt: str) -> str:
    """The baseline: what followed the longest end of ``prompt`` (4 to 64 characters) found in ``support``."""
    for k in range(64, 3, -1):
        at = support.rfind(prompt[-k:])
        if at >= 0:
            rest = support[at + k:]
            return rest.split("\n")[0]
    return ""


def lines_part(model, tokenizer, *, seed: int, log) -> dict:
    corpus = load_code_corpus()
    validation_modules, test_modules = code_tasks.module_split(corpus)

    def module_data(module, most):
        support, _ = split_text(corpus.modules[module], 0.5)
        tasks = code_tasks.module_line_tasks(corpus, module, most=most, seed=seed)
        return support, tasks, torch.tensor(tokenizer.encode(support), dtype=torch.long)

    def correct(net, tasks):
        return code_tasks.line_correct(code_tasks.complete_rests(net, tokenizer, tasks), tasks)

    grid = {}
    for module in validation_modules:
        _, tasks, data = module_data(module, VALIDATION_LINES)
        zero = sum(correct(model, tasks))
        for lr in LINE_LRS:
            grid[0, lr] = grid.get((0, lr), 0) + zero
            found = fine_tune_checkpoints(model, data, lr=lr, steps=LINE_STEPS, seed=seed,
                                          evaluate=lambda net, tasks=tasks: sum(correct(net, tasks)))
            for steps, right in found.items():
                grid[steps, lr] = grid.get((steps, lr), 0) + right
        log(f"lines: validation module {module} done")
    n_validation = sum(len(module_data(m, VALIDATION_LINES)[1]) for m in validation_modules)
    chosen_steps, chosen_lr = _best(grid)
    log(f"lines: chosen on validation: {chosen_steps} steps at lr {chosen_lr:g}")

    before, after, copied, references, modules, predictions = [], [], [], [], [], {"0": [], "adapted": []}
    for module in test_modules:
        support, tasks, data = module_data(module, TEST_LINES)
        zero = code_tasks.complete_rests(model, tokenizer, tasks)
        if chosen_steps:
            adapted = fine_tune_checkpoints(model, data, lr=chosen_lr, steps=(chosen_steps,), seed=seed,
                                            evaluate=lambda net, tasks=tasks: code_tasks.complete_rests(
                                                net, tokenizer, tasks))[chosen_steps]
        else:
            adapted = zero
        copy_guess = [copy_from_support(support, t.prompt) for t in tasks]
        before += code_tasks.line_correct(zero, tasks)
        after += code_tasks.line_correct(adapted, tasks)
        copied += code_tasks.line_correct(copy_guess, tasks)
        references += [t.line for t in tasks]
        predictions["0"] += zero
        predictions["adapted"] += adapted
        modules += [module] * len(tasks)
        log(f"lines: test module {module}: {sum(before)} -> {sum(after)} of {len(before)} so far")
    n = len(before)
    test = code_tasks.mcnemar_exact(before, after)
    task = "line completion, held-out modules"
    rows = [
        proportion("code", task, "exact match", "code model, 0 steps", sum(before), n, is_baseline=True),
        proportion("code", task, "exact match", f"code model fine-tuned on the module's first half "
                   f"({chosen_steps} steps at lr {chosen_lr:g})", sum(after), n),
        proportion("code", task, "exact match", "copy after the longest matching context in the first half",
                   sum(copied), n, is_baseline=True),
        Result("code", task, "correct prefix share", "code model, 0 steps",
               prefix_share(predictions["0"], references), None, n, True),
        Result("code", task, "correct prefix share", "code model fine-tuned on the module's first half",
               prefix_share(predictions["adapted"], references), None, n, False),
    ]
    return {"rows": rows, "summary": {
        "validation_modules": validation_modules, "test_modules": test_modules,
        "validation_lines": n_validation, "test_lines": n, "given": 0.5,
        "grid": [{"steps": s, "lr": lr, "validation_correct": c} for (s, lr), c in sorted(grid.items())],
        "chosen": {"steps": chosen_steps, "lr": chosen_lr, "chosen_on": "validation modules"},
        "batch_size": BATCH_SIZE, "block": BLOCK,
        "mcnemar": {**test, "before": sum(before), "after": sum(after), "n": n,
                    "before_ci95": list(wilson_interval(sum(before), n)),
                    "after_ci95": list(wilson_interval(sum(after), n))},
        "per_line": {"module": modules, "before": before, "after": after},
    }}


def _shrink() -> None:
    """Settings for checking that the command runs (``--quick``): a tiny grid and few items; not results."""
    global FUNCTION_LRS, FUNCTION_STEPS, FUNCTION_MAX_STEPS, LINE_LRS, LINE_STEPS
    global VALIDATION_LINES, TEST_LINES, QUICK
    FUNCTION_LRS, FUNCTION_STEPS, FUNCTION_MAX_STEPS, LINE_LRS, LINE_STEPS = (1e-3,), (3,), 6, (1e-3,), (2,)
    VALIDATION_LINES, TEST_LINES, QUICK = 3, 3, True


QUICK = False


def _run_part(part: str, seed: int, started: float, quick: bool = False) -> dict:
    torch.set_num_threads(1)
    if quick:
        _shrink()
    shipped = load_checkpoint(CODE_CHECKPOINT)
    model, tokenizer = shipped.model, shipped.tokenizer
    model.eval()
    torch.manual_seed(seed)

    def log(message):
        print(f"[{time.time() - started:7.1f} s] {message}", flush=True)

    if part == "functions":
        result = functions_part(model, tokenizer, seed=seed, log=log)
        result["writer"] = result["writer"].state_dict()
        return result
    return lines_part(model, tokenizer, seed=seed, log=log)


def carried_lines(path) -> dict:
    """The line-completion part of an existing results file: its rows, its summary, where they came from."""
    payload = read_results("code", path)
    if "lines" not in payload:
        raise ResultsError(f"{path} holds no line-completion part to keep; run both parts")
    rows = [Result(**dict(row, ci95=None if row["ci95"] is None else tuple(row["ci95"])))
            for row in payload["results"] if not row["task"].startswith("functions")]
    origin = payload.get("lines_from") or {key: payload[key] for key in ("command", "machine", "wall_seconds",
                                                                         "finished") if key in payload}
    return {"rows": rows, "summary": payload["lines"], "from": origin,
            "extra": {key: payload[key] for key in ("sandbox", "threads", "training_dtype")
                      if key in payload}}


def main(argv=None) -> int:
    parser = CommandParser(prog="python -m book.experiments.code", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(results_path("code").relative_to(ROOT)), help="the results file")
    parser.add_argument("--checkpoint-out", default=str(code_tasks.FUNCTIONS_CHECKPOINT.relative_to(ROOT)),
                        help="where the fine-tuned function writer is saved")
    parser.add_argument("--part", choices=("all", "functions"), default="all",
                        help="'functions' runs pass@1 only; the line-completion part of --out is kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a tiny grid and few items, to check the command runs")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.time()
    shipped = load_checkpoint(CODE_CHECKPOINT)
    tokenizer = shipped.tokenizer
    if args.part == "functions":
        kept = carried_lines(args.out)  # read first: a missing or damaged file stops it before training
        functions = _run_part("functions", args.seed, started, args.quick)
        lines = {"rows": kept["rows"], "summary": kept["summary"]}
        extra = {**kept["extra"], "lines_from": kept["from"]}
    else:
        # The two parts are independent: each runs in its own process, with one thread.
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
            functions_job = pool.submit(_run_part, "functions", args.seed, started, args.quick)
            lines_job = pool.submit(_run_part, "lines", args.seed, started, args.quick)
            functions, lines = functions_job.result(), lines_job.result()
        extra = {}
    writer = load_checkpoint(CODE_CHECKPOINT).model
    writer.load_state_dict(functions.pop("writer"))
    save_checkpoint(args.checkpoint_out, writer, tokenizer, dtype=torch.bfloat16,
                    metadata={"made_by": "python -m book.experiments.code",
                              "fine_tuned_from": "checkpoints/stdlib-code", **functions["summary"]["chosen"]})
    extra = {"sandbox": sandbox.description(), "threads": 1, "training_dtype": "bfloat16 autocast", **extra}
    path = write_results("code", functions["rows"] + lines["rows"], wall_seconds=time.time() - started,
                         argv=sys.argv[1:] if argv is None else argv, program="python -m book.experiments.code",
                         path=args.out, functions=functions["summary"], lines=lines["summary"], **extra)
    for row in functions["rows"] + lines["rows"]:
        print(f"{row.task} | {row.method} | {row.metric} {row.value:.3f} (n={row.n})")
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

