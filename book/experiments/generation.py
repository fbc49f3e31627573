"""The text-generation results of Chapter 8: held-out loss against a counted n-gram, and the form of sampled verse.

    python -m book.experiments.generation
    python -m book.experiments.generation --checkpoint checkpoints/shakespeare-large \\
        --baseline checkpoints/shakespeare-char --temperatures 0.6 0.8 1.0

It writes ``checkpoints/applications/results/generation.json`` (see
:mod:`book.applications.results`). Every choice is made on data the test figures do not use:
the n-gram's order on the last 5% of each work's *training* part (the n-gram is then counted on
the whole training part), the sampling temperature on the held-out stanzas of *The Rape of
Lucrece*; the test figures are the held-out split's loss and the held-out *Sonnets*.
"""
from __future__ import annotations

import book.cpu  # noqa: F401  (before PyTorch: OpenMP reads its settings once, when it loads)

# isort: split
import copy
import os
import pathlib
import platform
import sys
import time

import numpy as np
import torch

from book.applications import generation
from book.applications.finetuning import finetune
from book.applications.generation import POET_CHECKPOINT
from book.applications.results import Result, ResultsError, proportion, write_results
from book.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from book.data import DataError, load_corpus, split_text
from book.errors import CommandParser
from book.ngram import CharNgram, choose_order
from book.paths import ROOT

APPLICATION = "generation"
LOSS_TASK = "Shakespeare, held-out split"
LOSS_METRIC = "loss, nats per character"
VERSE_TASK = "8 lines after a held-out sonnet's first quatrain"
METRE_METRIC = "share of lines with 9-11 syllables"
RHYME_METRIC = "share of abab pairs that rhyme"


def _located(path: str):
    """A checkpoint path as given, or under the repository when it is relative and absent here."""
    given = pathlib.Path(path)
    return given if given.is_absolute() or given.exists() else ROOT / given


def parse_args(argv):
    parser = CommandParser(prog="python -m book.experiments.generation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="checkpoints/shakespeare-large")
    parser.add_argument("--baseline", default="checkpoints/shakespeare-char",
                        help="a smaller model measured the same way")
    parser.add_argument("--orders", type=int, nargs="+", default=[4, 5, 6, 7, 8], help="n-gram orders to choose from")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.6, 0.8, 1.0])
    parser.add_argument("--finetune-steps", type=int, default=300,
                        help="most steps of fine-tuning on the poems' training parts (the best on validation is kept)")
    parser.add_argument("--finetune-lr", type=float, default=3e-4)
    parser.add_argument("--poet-out", default=str(POET_CHECKPOINT.relative_to(ROOT)),
                        help="where the fine-tuned model of verse is saved")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="the JSON file to write (default: the shipped results file)")
    args = parser.parse_args(argv)
    if (min(args.orders) < 1 or any(not 0 < t <= 2 for t in args.temperatures) or args.threads < 1
            or args.finetune_steps < 0 or not 0 < args.finetune_lr < 1):
        parser.error("orders must be at least 1, temperatures in (0, 2], threads at least 1, "
                     "fine-tuning steps at least 0 and its learning rate in (0, 1)")
    return args


def _scored(model, ids):
    losses = generation.per_character_losses(model, ids)
    return generation.scored_positions(len(ids), model.config.context_length), losses


def run(args) -> int:
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    large, small = load_checkpoint(_located(args.checkpoint)), load_checkpoint(_located(args.baseline))
    tokenizer = large.tokenizer
    if small.tokenizer.vocabulary != tokenizer.vocabulary:
        raise CheckpointError(f"{args.checkpoint} and {args.baseline} read different characters")
    corpus = load_corpus()
    train_text, val_text = corpus.split(0.1)
    train_ids = np.array(tokenizer.encode(train_text))
    val_ids = np.array(tokenizer.encode(val_text))

    # The n-gram's order, chosen on the end of each work's training part.
    parts = [split_text(split_text(work.text, 0.1)[0], 0.05) for work in corpus]
    fit, dev = ("".join(p[i] for p in parts) for i in (0, 1))
    order_losses = choose_order(np.array(tokenizer.encode(fit)), np.array(tokenizer.encode(dev)),
                                tokenizer.vocab_size, args.orders)
    order = min(order_losses, key=order_losses.get)
    ngram_losses_all = -CharNgram(train_ids, order, tokenizer.vocab_size).log_probs(val_ids)

    # Every model scored on the same target positions (those each of them scores with enough context).
    scored = {name: _scored(saved.model, val_ids) for name, saved in (("large", large), ("small", small))}
    common = np.intersect1d(scored["large"][0], scored["small"][0])
    losses = {}
    for name, (positions, values) in scored.items():
        losses[name] = values[np.searchsorted(positions, common)]
    losses["ngram"] = ngram_losses_all[common - (order - 1)]
    names = {"large": f"GPT, {large.model.num_parameters() / 1e6:.1f}M parameters ({large.path.name})",
             "small": f"GPT, {small.model.num_parameters() / 1e6:.1f}M parameters ({small.path.name})",
             "ngram": f"counted {order}-gram (Witten-Bell)"}
    rows, loss_figures = [], {}
    for key in ("large", "small", "ngram"):
        mean, half, blocks = generation.block_interval(losses[key])
        loss_figures[key] = {"mean": mean, "half_width": half}
        rows.append(Result(APPLICATION, LOSS_TASK, LOSS_METRIC, names[key], mean, (mean - half, mean + half),
                           len(common), is_baseline=key != "large"))
    paired = {}
    for key in ("ngram", "small"):
        mean, half, blocks = generation.block_interval(losses["large"] - losses[key])
        paired[key] = {"difference": mean, "ci95": [mean - half, mean + half], "blocks": blocks}

    # Verse: the temperature chosen on Lucrece's held-out stanzas, then the held-out sonnets.
    lucrece = generation.stanzas(split_text(corpus["rape_of_lucrece"].text)[1], 7)
    sonnets_text = split_text(corpus["sonnets"].text)[1]
    test_poems = generation.held_out_sonnets(sonnets_text)

    def choose_temperature(model):
        validation = {t: generation.verse_summary(generation.sample_verse(model, tokenizer, lucrece,
                                                                          temperature=t, seed=1000))
                      for t in args.temperatures}
        return max(args.temperatures, key=lambda t: (validation[t]["metre_share"], -t)), validation

    # The recipe for a form: a copy of the large model fine-tuned on the poems' training parts, the
    # step kept (early stopping) by the loss on Lucrece's held-out part, evaluated every 25 steps.
    poet = copy.deepcopy(large.model)
    poems_ids = torch.tensor(tokenizer.encode("".join(split_text(corpus[name].text)[0]
                                                      for name in generation.POEMS)))
    lucrece_ids = np.array(tokenizer.encode(split_text(corpus["rape_of_lucrece"].text)[1]))
    curve = {"step": [0], "validation_loss": [float(generation.per_character_losses(poet, lucrece_ids).mean())]}
    best = {"step": 0, "state": copy.deepcopy(poet.state_dict())}

    def keep_best(step):
        if step % 25:
            return
        with torch.no_grad():
            loss = float(generation.per_character_losses(poet, lucrece_ids).mean())
        if loss < min(curve["validation_loss"]):
            best.update(step=step, state=copy.deepcopy(poet.state_dict()))
        curve["step"].append(step)
        curve["validation_loss"].append(loss)

    finetune(poet, poems_ids, steps=args.finetune_steps, lr=args.finetune_lr, block=poet.config.context_length,
             seed=0, bfloat16=True, after_step=keep_best)
    poet.load_state_dict(best["state"])
    with torch.no_grad():  # measured as shipped: bfloat16 weights
        for parameter in poet.parameters():
            parameter.copy_(parameter.to(torch.bfloat16).float())
    sonnet_ids = np.array(tokenizer.encode(sonnets_text))
    sonnet_loss = {name: float(generation.per_character_losses(net, sonnet_ids).mean())
                   for name, net in (("large", large.model), ("poet", poet))}

    temperatures, verse = {}, {}
    for key, net in (("large", large.model), ("poet", poet), ("small", small.model)):
        chosen, validation = choose_temperature(net) if key != "small" else (temperatures["large"]["chosen"], {})
        temperatures[key] = {"chosen": chosen, "validation": {str(t): v for t, v in validation.items()}}
        samples = generation.sample_verse(net, tokenizer, test_poems, temperature=chosen)
        verse[key] = (generation.verse_summary(samples), samples)
    truth = [generation.VerseSample(poem[:4], poem[4:12]) for poem in test_poems]
    verse["sonnets"] = (generation.verse_summary(truth), truth)
    poet_name = f"{names['large']} fine-tuned on the poems ({best['step']} steps)"
    verse_names = {"large": f"{names['large']}, T = {temperatures['large']['chosen']}",
                   "poet": f"{poet_name}, T = {temperatures['poet']['chosen']}",
                   "small": f"{names['small']}, T = {temperatures['large']['chosen']}",
                   "sonnets": "the sonnets' own lines 5-12"}
    for key in ("poet", "large", "small", "sonnets"):
        summary, ours = verse[key][0], key in ("poet", "large")
        rows.append(proportion(APPLICATION, VERSE_TASK, METRE_METRIC, verse_names[key], summary["in_metre"],
                               summary["lines"], is_baseline=not ours))
        rows.append(proportion(APPLICATION, VERSE_TASK, RHYME_METRIC, verse_names[key], summary["rhyming_pairs"],
                               summary["pairs"], is_baseline=not ours))

    save_checkpoint(_located(args.poet_out), poet, tokenizer, dtype=torch.bfloat16, metadata={
        "command": "python -m " + " ".join(["book.experiments.generation", *args.argv]),
        "base": str(args.checkpoint), "finetuned_on": list(generation.POEMS), "steps": best["step"],
        "lr": args.finetune_lr, "parameters": poet.num_parameters(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}"})
    path = write_results(
        APPLICATION, rows, wall_seconds=time.perf_counter() - started, argv=args.argv, path=args.out,
        checkpoint=str(args.checkpoint), baseline=str(args.baseline),
        training={key: {k: saved.metadata.get(k) for k in ("command", "wall_seconds", "ms_per_iter", "val_loss",
                                                          "parameters", "machine", "threads", "finished")}
                  for key, saved in (("large", large), ("small", small))},
        ngram={"order": order, "dev_loss_by_order": {str(k): v for k, v in order_losses.items()}},
        scored_characters=int(len(common)), loss=loss_figures, paired_loss_difference=paired,
        temperature=temperatures,
        finetuning={"works": list(generation.POEMS), "characters": len(poems_ids), "max_steps": args.finetune_steps,
                    "chosen_step": best["step"], "chosen_on": "loss on the held-out part of The Rape of Lucrece",
                    "validation_curve": curve,
                    "lr": args.finetune_lr, "batch_size": 16, "window": large.model.config.context_length,
                    "compute": "bfloat16 autocast", "held_out_sonnets_loss": sonnet_loss},
        verse={key: value[0] for key, value in verse.items()},
        samples={key: ["\n".join(s.lines) for s in verse[key][1][:3]] for key in ("poet", "large", "small")},
    )
    print(f"wrote {path}")
    for row in rows:
        print(f"{row.metric:<36} {row.method:<52} {row.value:.4f} [{row.ci95[0]:.4f}, {row.ci95[1]:.4f}]")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    args.argv = list(argv)
    try:
        return run(args)
    except (CheckpointError, DataError, ResultsError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
