"""The few-shot code-completion experiment of Chapter 7: each held-out module of the code corpus is a task.

The code model completes lines in the second half of each held-out standard-library module,
before and after fine-tuning on its first half, against the same architecture trained from
scratch on that half; the results are shipped in ``checkpoints/applications/code.json``.

    python -m book.experiments.code_adaptation --out checkpoints/applications/code.json
"""
from __future__ import annotations

import argparse
import copy
import itertools
import math
import pathlib
import sys
import time

import torch

from book.applications.codegen import CODE_CHECKPOINT, complete_lines, line_tasks, prefix_share
from book.applications.finetuning import finetune
from book.applications.scoring import exact_match
from book.checkpoint import load_checkpoint
from book.data import load_code_corpus, split_text
from book.errors import CommandParser
from book.experiments.results import check_out, run_and_save
from book.model import GPT
from book.paths import ROOT

ADAPTATION_RESULTS = ROOT / "checkpoints" / "applications" / "code.json"
# There is no separate split to tune on (the query lines are the only lines scored), so every
# (steps, learning rate) pair is run and reported.
ADAPTATION_SETTINGS = ((30, 3e-4), (30, 1e-3), (100, 3e-4), (100, 1e-3))


def adaptation_experiment(checkpoint_dir: str | pathlib.Path = CODE_CHECKPOINT, *,
                          settings: tuple[tuple[int, float], ...] = ADAPTATION_SETTINGS, batch_size: int = 8,
                          block: int = 128, lines_per_module: int = 10, given: float = 0.5, seed: int = 0) -> dict:
    """Line completion in the second half of each held-out module, before and after learning its first half.

    Rows: the code model as it is; for each (steps, learning rate) of ``settings``, the code model
    fine-tuned on the module's first half, and the same architecture trained from scratch on that
    half alone (the Chapter 5 baselines), both with the same text, steps and optimizer. Each line
    is written from its middle (``given``): whole lines are nearly never right for a model this small.
    """
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
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be positive and finite, got {text}")
        return value
    return parse


def main(argv=None) -> int:
    parser = CommandParser(prog="python -m book.experiments.code_adaptation",
                                     description="Run the few-shot code-completion experiment and save its results.")
    parser.add_argument("--checkpoint", default=str(CODE_CHECKPOINT.relative_to(ROOT)))
    parser.add_argument("--out", required=True, help="the JSON file to write")
    parser.add_argument("--steps", type=_positive(int), nargs="+", default=sorted({s for s, _ in ADAPTATION_SETTINGS}),
                        help="fine-tuning steps to try (every pair with --lr)")
    parser.add_argument("--lr", type=_positive(float), nargs="+", default=sorted({r for _, r in ADAPTATION_SETTINGS}),
                        help="learning rates to try")
    args = parser.parse_args(argv)
    check_out(parser, args.out)
    settings = tuple(itertools.product(args.steps, args.lr))
    return run_and_save(lambda: adaptation_experiment(args.checkpoint, settings=settings), args.out,
                        "python -m book.experiments.code_adaptation", argv,
                        lambda row: f"exact match {row['exact_match']:.3f}, prefix share {row['prefix_share']:.3f}, "
                                    f"{row['train_seconds']} s")

if __name__ == "__main__":
    sys.exit(main())
