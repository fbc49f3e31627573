"""The number-word translation experiment of Chapter 7, as a command (fine-tuning takes longer than a cell may).

The shipped Shakespeare model translates English number words to French from a few-shot
prompt, fine-tuned on the support numbers, and against the same model trained from scratch and
Chapter 6's meta-learned models; the results are shipped in
``checkpoints/applications/translation.json``.

    python -m book.experiments.translation_adaptation --out checkpoints/applications/translation.json --steps 80
"""
from __future__ import annotations

import copy
import time

import torch

from book.applications.finetuning import finetune
from book.applications.scoring import exact_match, similarity
from book.applications.translation import number_words, support_ids, translate, translation_split
from book.checkpoint import load_checkpoint
from book.errors import CommandParser
from book.experiments import metagpt
from book.experiments.results import check_out, run_and_save
from book.model import GPT
from book.tasks import TaskError

META_SGD_STEPS = 10  # the longest adaptation Chapter 6 evaluates


def translation_experiment(checkpoint_dir: str, *, steps: int = 60, lr: float = 2e-3, batch_size: int = 8,
                           block: int = 32, seed: int = 0) -> dict:
    """Few-shot prompt only, fine-tuned shipped model, and the same model trained from scratch."""
    checkpoint = load_checkpoint(checkpoint_dir)
    model, tokenizer = checkpoint.model, checkpoint.tokenizer
    if tokenizer.vocabulary != metagpt.shared_tokenizer().vocabulary:
        raise TaskError(f"{checkpoint_dir} has another vocabulary than the MetaGPT models")
    support, query = translation_split(seed=seed)
    shots = support[:2] + support[-2:]  # two irregular words and two compounds in every prompt
    references = [number_words(n)[1] for n in query]
    data = support_ids(tokenizer, support, seed=seed)
    results = {"support": support, "query": query, "shots": shots, "steps": steps, "lr": lr,
               "batch_size": batch_size, "block": block, "seed": seed, "rows": {}}

    def score(name, net, seconds):
        predictions = translate(net, tokenizer, query, shots)
        results["rows"][name] = {"exact_match": exact_match(predictions, references),
                                 "similarity": similarity(predictions, references),
                                 "train_seconds": round(seconds, 1), "predictions": predictions}

    score("prompt only (shipped model)", model, 0.0)
    start = time.perf_counter()
    tuned = copy.deepcopy(model)
    finetune(tuned, data, steps=steps, lr=lr, batch_size=batch_size, block=block, seed=seed)
    score("fine-tuned shipped model", tuned, time.perf_counter() - start)
    torch.manual_seed(seed)
    start = time.perf_counter()
    scratch = GPT(model.config)
    finetune(scratch, data, steps=steps, lr=lr, batch_size=batch_size, block=block, seed=seed)
    score("same model from scratch", scratch, time.perf_counter() - start)
    # Chapter 6's models start from weights meta-learned (MAML) or pre-trained on the speaker
    # tasks; their 32-character context holds a query's line, and the prompt's start is cut off.
    # Each adapts twice: as the models above do, and by the rule it was meta-trained and tuned
    # for (plain gradient steps on the support windows, at its Chapter 6 step size).
    step_sizes = metagpt.load_results()["learning_rates"]
    width = metagpt.WINDOW + 1
    windows = data[: len(data) // width * width].view(-1, width)
    for label, method in (("MetaGPT (MAML)", "maml"), ("MetaGPT's pre-trained baseline", "finetune")):
        start = time.perf_counter()
        meta = metagpt.load("speakers", method, seed)
        finetune(meta, data, steps=steps, lr=lr, batch_size=batch_size, block=min(block, metagpt.WINDOW), seed=seed)
        score(f"{label}, fine-tuned", meta, time.perf_counter() - start)
        start = time.perf_counter()
        meta = metagpt.load("speakers", method, seed)
        step_size = step_sizes[f"speakers/{method}/seed{seed}"]
        adapted = metagpt.sgd_steps(meta, metagpt.parameters(meta), windows, step_size, META_SGD_STEPS)
        with torch.no_grad():
            for name, weight in meta.named_parameters():
                weight.copy_(adapted[name])
        score(f"{label}, {META_SGD_STEPS} SGD steps of {step_size}", meta, time.perf_counter() - start)
    return results


def main(argv=None) -> int:
    parser = CommandParser(prog="python -m book.experiments.translation_adaptation",
                                     description="Run the number-word translation experiment and save its results.")
    parser.add_argument("--checkpoint", default="checkpoints/shakespeare-char")
    parser.add_argument("--out", required=True, help="the JSON file to write")
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args(argv)
    if args.steps <= 0:
        parser.error(f"--steps must be positive, got {args.steps}")
    check_out(parser, args.out)
    return run_and_save(lambda: translation_experiment(args.checkpoint, steps=args.steps), args.out,
                        "python -m book.experiments.translation_adaptation", argv,
                        lambda row: f"exact match {row['exact_match']:.3f}, similarity {row['similarity']:.3f}, "
                                    f"{row['train_seconds']} s")

if __name__ == "__main__":
    raise SystemExit(main())
