"""Code generation on Python's standard library: the tasks, their metrics and the few-shot experiment.

The code is :func:`book.data.load_code_corpus`: the top-level modules of one Python's standard
library, with whole modules held out, so every completion scored here is of code the model
has never read.

    python -m book.codegen --out checkpoints/applications/code.json
"""
from __future__ import annotations

import argparse
import ast
import copy
import dataclasses
import itertools
import pathlib
import random
import re
import sys
import time

import torch

from book.applications import (TaskError, common_prefix_length, exact_match, finetune, greedy_continuations,
                               save_results)
from book.data import CodeCorpus, load_code_corpus, split_text
from book.model import GPT
from book.paths import ROOT, unwritable_reason

CODE_CHECKPOINT = ROOT / "checkpoints" / "stdlib-code"
ADAPTATION_RESULTS = ROOT / "checkpoints" / "applications" / "code.json"
# There is no separate split to tune on (the query lines are the only lines scored), so every
# (steps, learning rate) pair is run and reported.
ADAPTATION_SETTINGS = ((30, 3e-4), (30, 1e-3), (100, 3e-4), (100, 1e-3))


# ---------------------------------------------------------------------------------------------
# The tasks: complete a line, write a small function

PROMPT_CHARS = 128  # every prompt has this many characters, so prompts run as one batch
LINE_CHARS = 80  # the longest line we ask for, plus its line break
BODY_CHARS = 128  # PROMPT_CHARS + BODY_CHARS fits the code model's context of 256
_DEF_LINE = re.compile(r"^( *)def \w+\(.*\)( -> .+)?:$")


@dataclasses.dataclass(frozen=True)
class LineTask:
    module: str
    prompt: str  # the PROMPT_CHARS characters before the point the model writes from
    line: str  # the reference: the rest of the line from that point, without its line break


@dataclasses.dataclass(frozen=True)
class FunctionTask:
    module: str
    prompt: str  # the PROMPT_CHARS characters that end with the ``def`` line
    header: str  # the ``def`` line
    body: str  # the reference body


def _lines_with_offsets(text: str):
    offset = 0
    for line in text.split("\n"):
        yield offset, line
        offset += len(line) + 1


def line_tasks(corpus: CodeCorpus, names: list[str], *, n: int, given: float = 0.0, seed: int = 0,
               region: tuple[float, float] = (0.0, 1.0)) -> list[LineTask]:
    """``n`` lines to complete, drawn from the modules ``names`` (from the ``region`` of each, as fractions).

    The prompt shows the ``given`` fraction of the line (after its indentation), so the model
    writes the rest: 0 asks for the whole line, indentation included. A line qualifies when it
    holds at least 8 non-blank characters, fits in LINE_CHARS, and follows at least
    PROMPT_CHARS characters of its module.
    """
    if not 0 <= given < 1:
        raise TaskError(f"given must be a fraction in [0, 1), got {given}")
    candidates = []
    for name in names:
        text = corpus.modules[name]
        low, high = int(len(text) * region[0]), int(len(text) * region[1])
        for start, line in _lines_with_offsets(text):
            if (start >= max(low, PROMPT_CHARS) and start + len(line) <= high
                    and len(line.strip()) >= 8 and len(line) < LINE_CHARS):
                indent = len(line) - len(line.lstrip(" "))
                cut = start + (indent + int((len(line) - indent) * given) if given else 0)
                candidates.append(LineTask(name, text[cut - PROMPT_CHARS:cut], text[cut:start + len(line)]))
    if len(candidates) < n:
        raise TaskError(f"asked for {n} lines, but the modules hold only {len(candidates)} that qualify")
    return random.Random(seed).sample(candidates, n)


def function_tasks(corpus: CodeCorpus, names: list[str], *, n: int, seed: int = 0,
                   max_body_chars: int = 100) -> list[FunctionTask]:
    """``n`` small functions or methods (one-line signature, body under ``max_body_chars``) to write.

    Python's own parser finds where each body ends, so docstrings and nested blocks count right.
    """
    candidates = []
    for name in names:
        text = corpus.modules[name]
        lines = text.split("\n")
        offsets = [start for start, _ in _lines_with_offsets(text)]
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef) or node.body[0].lineno != node.lineno + 1:
                continue
            header, end = lines[node.lineno - 1], offsets[node.lineno]
            body = "\n".join(lines[node.lineno:node.end_lineno])
            if _DEF_LINE.match(header) and end >= PROMPT_CHARS and len(body) <= max_body_chars:
                candidates.append(FunctionTask(name, text[end - PROMPT_CHARS:end], header, body))
    if len(candidates) < n:
        raise TaskError(f"asked for {n} functions, but the modules hold only {len(candidates)} that qualify")
    return random.Random(seed).sample(candidates, n)


def complete_lines(model: GPT, tokenizer, tasks: list[LineTask], batch_size: int = 64) -> list[str]:
    """The model's greedy completion of each task's line (up to its first line break)."""
    completions = []
    for first in range(0, len(tasks), batch_size):
        prompts = [task.prompt for task in tasks[first:first + batch_size]]
        completions += [text.split("\n")[0] for text in greedy_continuations(model, tokenizer, prompts, LINE_CHARS)]
    return completions


def write_bodies(model: GPT, tokenizer, tasks: list[FunctionTask], batch_size: int = 64) -> list[str | None]:
    """The greedy body the model writes after each ``def`` line; None where it has not ended in BODY_CHARS."""
    bodies = []
    for first in range(0, len(tasks), batch_size):
        batch = tasks[first:first + batch_size]
        texts = greedy_continuations(model, tokenizer, [task.prompt for task in batch], BODY_CHARS)
        bodies += [_written_body(task.header, text) for task, text in zip(batch, texts)]
    return bodies


def _written_body(header: str, text: str) -> str | None:
    """The body in generated ``text``: up to a line indented no deeper than ``header``.

    A docstring may hold such lines, so the body ends at the first of them before which the
    function parses, or else at the first of them; None if there is none (the body never ended).
    """
    indent = len(header) - len(header.lstrip(" "))
    lines = text.split("\n")
    ends = [i for i, line in enumerate(lines) if line.strip() and len(line) - len(line.lstrip(" ")) <= indent]
    bodies = ["\n".join(lines[:i]).rstrip() for i in ends]
    return next((body for body in bodies if parses(header, body)), bodies[0] if bodies else None)


def parses(header: str, body: str | None) -> bool:
    """Whether the function made of ``header`` and ``body`` is valid Python syntax."""
    if body is None or not body.strip():
        return False
    try:
        # The body may sit deeper than the header, as long as it is consistent; strings may
        # hold lines at any depth, so the header moves to column 0 rather than everything dedenting.
        ast.parse(header.lstrip(" ") + "\n" + body)
    except SyntaxError:
        return False
    return True


def prefix_share(predictions: list[str], references: list[str]) -> float:
    """The mean share of each reference written correctly before the first wrong character."""
    shares = [common_prefix_length(p, r) / len(r) for p, r in zip(predictions, references, strict=True)]
    return sum(shares) / len(shares)


def copy_previous_line(tasks: list[LineTask]) -> list[str]:
    """The baseline that repeats the last non-blank line of the prompt (for whole-line tasks)."""
    if any(not task.prompt.endswith("\n") for task in tasks):
        raise TaskError("copying the previous line is a baseline for whole lines (given=0) only")
    return [next((line for line in reversed(t.prompt.split("\n")[:-1]) if line.strip()), "") for t in tasks]


# ---------------------------------------------------------------------------------------------
# Few-shot adaptation: each held-out module is a task, its first half the support set

def adaptation_experiment(checkpoint_dir: str | pathlib.Path = CODE_CHECKPOINT, *,
                          settings: tuple[tuple[int, float], ...] = ADAPTATION_SETTINGS, batch_size: int = 8,
                          block: int = 128, lines_per_module: int = 10, given: float = 0.5, seed: int = 0) -> dict:
    """Line completion in the second half of each held-out module, before and after learning its first half.

    Rows: the code model as it is; for each (steps, learning rate) of ``settings``, the code model
    fine-tuned on the module's first half, and the same architecture trained from scratch on that
    half alone (the Chapter 5 baselines), both with the same text, steps and optimizer. Each line
    is written from its middle (``given``): whole lines are nearly never right for a model this small.
    """
    from book.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(checkpoint_dir)
    model, tokenizer = checkpoint.model, checkpoint.tokenizer
    corpus = load_code_corpus()
    starts = {"code model": None}
    for steps, lr in settings:
        starts[f"fine-tuned, {steps} steps at {lr:g}"] = ("fine-tune", steps, lr)
        starts[f"from scratch, {steps} steps at {lr:g}"] = ("scratch", steps, lr)
    rows = {name: {"predictions": [], "train_seconds": 0.0} for name in starts}
    references = []
    for module in corpus.heldout_names:
        support_text, _ = split_text(corpus.modules[module], 0.5)
        tasks = line_tasks(corpus, [module], n=lines_per_module, given=given, seed=seed, region=(0.5, 1.0))
        references += [task.line for task in tasks]
        data = torch.tensor(tokenizer.encode(support_text), dtype=torch.long)
        for name, how in starts.items():
            started = time.perf_counter()
            net = model
            if how is not None:
                kind, steps, lr = how
                torch.manual_seed(seed)
                net = copy.deepcopy(model) if kind == "fine-tune" else GPT(model.config)
                finetune(net, data, steps=steps, lr=lr, batch_size=batch_size, block=block, seed=seed)
            rows[name]["train_seconds"] += time.perf_counter() - started
            rows[name]["predictions"] += complete_lines(net, tokenizer, tasks)
    for row in rows.values():
        row["exact_match"] = exact_match(row["predictions"], references)
        row["prefix_share"] = round(prefix_share(row["predictions"], references), 4)
        row["train_seconds"] = round(row["train_seconds"], 1)
    return {"modules": corpus.heldout_names, "lines_per_module": lines_per_module, "given": given,
            "settings": [list(setting) for setting in settings], "batch_size": batch_size, "block": block,
            "seed": seed, "references": references, "rows": rows}


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m book.codegen",
                                     description="Run the few-shot code-completion experiment and save its results.")
    parser.add_argument("--checkpoint", default=str(CODE_CHECKPOINT.relative_to(ROOT)))
    parser.add_argument("--out", required=True, help="the JSON file to write")
    parser.add_argument("--steps", type=_positive(int), nargs="+", default=sorted({s for s, _ in ADAPTATION_SETTINGS}),
                        help="fine-tuning steps to try (every pair with --lr)")
    parser.add_argument("--lr", type=_positive(float), nargs="+", default=sorted({r for _, r in ADAPTATION_SETTINGS}),
                        help="learning rates to try")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    if out.is_dir():
        parser.error(f"--out {out} is a folder; give the JSON file to write, e.g. {out / 'code.json'}")
    reason = unwritable_reason(out.parent)
    if reason:
        parser.error(f"--out {out} cannot be written ({reason})")
    try:
        results = adaptation_experiment(args.checkpoint, settings=tuple(itertools.product(args.steps, args.lr)))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    save_results(results, args.out, "python -m book.codegen", argv)
    for name, row in results["rows"].items():
        print(f"{name}: exact match {row['exact_match']:.3f}, prefix share {row['prefix_share']:.3f}, "
              f"{row['train_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
