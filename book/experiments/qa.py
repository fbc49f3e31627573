"""Train the question-answering GPT on bAbI-style stories and measure it: ``python -m book.experiments.qa``.

One small GPT is trained from scratch on the training stories of both tasks (one and two
supporting facts, mixed; a share told with made-up words), with the loss on every character
(see :mod:`book.applications.qa`). Every
``--eval-every`` steps it answers the validation stories (their own held-out names, places and
objects), and the model of the best validation step is kept; that one answers the test stories,
once. The baselines and the oracle rule answer the same test stories. The command writes
``checkpoints/applications/results/qa.json`` and the model (bfloat16 weights, no optimiser state)
to ``checkpoints/applications/qa-model``.

    python -m book.experiments.qa              # the shipped results (entities lettered; about 45 min)
    python -m book.experiments.qa --entities words --steps 4000 --batch-size 16 --eval-every 250
                                               # the model that reads the words (shipped beside it)
"""
from __future__ import annotations

import copy
import json
import pathlib
import sys
import time

import torch

from book.applications import qa
from book.applications.results import proportion, results_path, write_results
from book.checkpoint import read_metadata, save_checkpoint
from book.errors import BookError, CommandParser
from book.model import GPT
from book.paths import ROOT


def evaluate(model: GPT, tok, examples: list[qa.Example], entities: str) -> list[bool]:
    predictions = qa.model_answers(model, tok, [e.prompt for e in examples], entities)
    return qa.exact_match(predictions, [e.answer for e in examples])


def train_and_save(*, n_layer: int, d_model: int, n_head: int, steps: int, batch_size: int, lr: float, loss_on: str,
                   n_train: int, invented: float, n_validation: int, eval_every: int, seed: int, model_dir,
                   entities: str = "coded", log=print) -> dict:
    """Train on both tasks; at every evaluation on validation, save the model if it is the best so far."""
    torch.manual_seed(seed)
    tok = qa.tokenizer()
    train = [e for task in qa.TASKS
             for e in qa.make_examples(task, "train", n_train, seed, invented=invented)]
    validation = {task: qa.make_examples(task, "validation", n_validation, seed) for task in qa.TASKS}
    if entities == "coded":
        train = [qa.coded_example(e) for e in train]
        read = {task: [qa.coded_example(e) for e in items] for task, items in validation.items()}
    else:
        read = validation
    context = max(len(e.text) for split in (train, *read.values()) for e in split) + 32
    model = GPT.from_config(vocab_size=tok.vocab_size, context_length=context, n_layer=n_layer, n_head=n_head,
                            d_model=d_model)
    settings = {"n_layer": n_layer, "d_model": d_model, "n_head": n_head, "context_length": context,
                "parameters": model.num_parameters(), "steps": steps, "batch_size": batch_size, "max_lr": lr,
                "loss_on": loss_on, "entities": entities, "compute": "bfloat16 autocast", "seed": seed,
                "train_stories_per_task": n_train, "invented": invented,
                "validation_stories_per_task": n_validation}
    curve, best = [], {"score": -1.0, "step": 0}
    started = time.perf_counter()

    def on_step(step, loss):
        done = step + 1
        if done % eval_every and done != steps:
            return
        began = time.perf_counter()
        shipped = copy.deepcopy(model)
        with torch.no_grad():  # the weights as shipped (bfloat16): every figure is the shipped model's
            for parameter in shipped.parameters():
                parameter.copy_(parameter.to(torch.bfloat16).float())
        scores = {task: sum(evaluate(shipped, tok, items, entities)) / len(items) for task, items in validation.items()}
        score = sum(scores.values()) / len(scores)
        curve.append({"step": done, "train_loss": round(loss, 4), **{t: round(s, 4) for t, s in scores.items()}})
        if score >= best["score"]:  # on a tie, the later step
            best.update(score=score, step=done)
        info = {"application": "qa", "settings": settings, "best_step": best["step"], "validation_curve": curve,
                "train_seconds_so_far": round(time.perf_counter() - started, 1), "finished": done == steps}
        if best["step"] == done:
            save_checkpoint(model_dir, shipped, tok, step=done, dtype=torch.bfloat16, metadata=info)
        else:  # only the description: the best weights stay
            write_metadata(model_dir, info)
        log(f"step {done}: loss {loss:.3f}, validation exact match "
            + ", ".join(f"{t} {s:.3f}" for t, s in scores.items())
            + f" ({time.perf_counter() - began:.0f} s to evaluate)")

    history = qa.train_model(model, train, tok, steps=steps, batch_size=batch_size, max_lr=lr, loss_on=loss_on,
                             seed=seed, on_step=on_step)
    info = {"train_seconds": round(history["seconds"], 1),
            "loss_first_last": [round(history["loss"][0], 4), round(history["loss"][-1], 4)]}
    write_metadata(model_dir, info)
    return info


def write_metadata(model_dir, extra: dict) -> None:
    """Add ``extra`` to the metadata of the checkpoint in ``model_dir`` (its weights untouched)."""
    path = pathlib.Path(model_dir) / "checkpoint.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta["metadata"].update(extra)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    temporary.replace(path)


METHODS = {"coded": "GPT trained from scratch, entities lettered",
           "words": "GPT trained from scratch, reading the words"}


def measure(model_dir, *, n_test: int, other_model_dir=None) -> tuple[list, dict]:
    """The saved model, the baselines and the oracle rule on ``n_test`` test stories of each task.

    ``other_model_dir``, when given, is a second model (read the other way) scored on the same stories.
    """
    meta = read_metadata(model_dir)["metadata"]
    seed = meta["settings"]["seed"]
    models = [qa.load_model(model_dir)] + ([qa.load_model(other_model_dir)] if other_model_dir else [])
    rows, outcomes, examples, oracle = [], {}, {}, {}
    for task in qa.TASKS:
        test = qa.make_examples(task, "test", n_test, seed)
        answers = [e.answer for e in test]
        for number, (model, tok, entities) in enumerate(models):
            predictions = qa.model_answers(model, tok, [e.prompt for e in test], entities)
            correct = qa.exact_match(predictions, answers)
            rows.append(proportion("qa", task, "exact match", METHODS[entities], sum(correct), len(test)))
            outcomes[f"{task}: {METHODS[entities]}"] = [int(c) for c in correct]
            if number == 0:
                examples[task] = [{"prompt": e.prompt, "answer": e.answer, "model": p}
                                  for e, p in zip(test[:6], predictions[:6])]
        heuristics = [("last place mentioned", qa.last_place)]
        if task == qa.TASKS[1]:
            heuristics.append(("last place before the object's last mention", qa.last_place_before_object))
        for name, rule in heuristics:
            hits = qa.exact_match([rule(e.prompt) for e in test], answers)
            rows.append(proportion("qa", task, "exact match", name, sum(hits), len(test), is_baseline=True))
        oracle[task] = sum(qa.exact_match([qa.rule_answer(e.prompt) for e in test], answers)) / len(test)
    info = {
        "settings": meta["settings"],
        "other_model": ({"model_dir": str(other_model_dir),
                         "settings": read_metadata(other_model_dir)["metadata"]["settings"],
                         "best_step": read_metadata(other_model_dir)["metadata"]["best_step"]}
                        if other_model_dir else None),
        "trained_on": "one model for both tasks: the training stories of the two tasks, mixed",
        "chosen_on": "validation stories (their own names, places and objects): the evaluation step with the best "
                     "mean exact match over the two tasks; the test stories are scored once, with that model",
        "best_step": meta["best_step"],
        "validation_curve": meta["validation_curve"],
        "train_seconds": meta.get("train_seconds", meta.get("train_seconds_so_far")),
        "training_finished": meta.get("finished", False),
        "loss_first_last": meta.get("loss_first_last"),
        "oracle_rule": oracle,
        "test_outcomes": outcomes,
        "examples": examples,
        "pools": {kind: {split: len(words) for split, words in pools.items()} for kind, pools in qa.POOLS.items()},
    }
    return rows, info


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="python -m book.experiments.qa", description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--loss-on", choices=qa.LOSSES, default="all")
    parser.add_argument("--train-stories", type=int, default=20000, help="training stories per task")
    parser.add_argument("--entities", choices=qa.ENTITIES, default="coded",
                        help="the model reads the stories' words, or their entities lettered A, B, C, ...")
    parser.add_argument("--invented", type=float, default=None,
                        help="the share of training stories told with made-up names, places and objects "
                             "(default 1 when reading words, 0 when lettered, where it makes no difference)")
    parser.add_argument("--validation-stories", type=int, default=200, help="validation stories per task")
    parser.add_argument("--test-stories", type=int, default=1000, help="test stories per task")
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="the results file (default: the shipped one)")
    parser.add_argument("--model-dir", default=None,
                        help="where the model goes (default: the shipped folder for --entities)")
    parser.add_argument("--other-model-dir", default=None,
                        help="a second model scored on the same test stories (default: when lettered, the shipped "
                             "model that reads words, if present)")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="measure the model saved in --model-dir on the test stories, without training")
    args = parser.parse_args(argv)
    for name in ("layers", "d_model", "heads", "steps", "batch_size", "train_stories", "validation_stories",
                 "test_stories", "eval_every", "threads"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if not 0 < args.lr < 1:
        parser.error(f"--lr must be in (0, 1), got {args.lr}")
    if args.invented is None:
        args.invented = 1.0 if args.entities == "words" else 0.0
    if args.model_dir is None:
        args.model_dir = str((qa.CODED_MODEL_DIR if args.entities == "coded" else qa.MODEL_DIR).relative_to(ROOT))
    if args.other_model_dir is None and args.entities == "coded" and (qa.MODEL_DIR / "checkpoint.json").exists():
        args.other_model_dir = str(qa.MODEL_DIR.relative_to(ROOT))
    if not 0 <= args.invented <= 1:
        parser.error(f"--invented must be in [0, 1], got {args.invented}")
    if args.d_model % args.heads:
        parser.error(f"--d-model ({args.d_model}) must be divisible by --heads ({args.heads})")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    if not args.evaluate_only:
        train_and_save(n_layer=args.layers, d_model=args.d_model, n_head=args.heads, steps=args.steps,
                       batch_size=args.batch_size, lr=args.lr, loss_on=args.loss_on, n_train=args.train_stories,
                       invented=args.invented,
                       n_validation=args.validation_stories, eval_every=args.eval_every, seed=args.seed,
                       model_dir=args.model_dir, entities=args.entities, log=lambda line: print(line, flush=True))
    try:
        rows, info = measure(args.model_dir, n_test=args.test_stories, other_model_dir=args.other_model_dir)
    except BookError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    path = write_results("qa", rows, wall_seconds=time.perf_counter() - started, argv=argv,
                         program="python -m book.experiments.qa",
                         path=args.out or results_path("qa"), model_dir=str(args.model_dir), **info)
    for row in rows:
        print(f"{row.task:<22} {row.method:<46.46} {row.value:.3f} [{row.ci95[0]:.3f}, {row.ci95[1]:.3f}] n={row.n}")
    print(f"wrote {path} and {pathlib.Path(args.model_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
