"""Train a character-level GPT on a text file and save it as a checkpoint.

    python -m book.train --data input.txt --preset nanogpt-cpu --out runs/baby
    python -m book.train --data corpus --preset shakespeare-char --out checkpoints/shakespeare-char
    python -m book.train --data input.txt --out runs/baby --resume --iters 3000

On several processes (one machine or many), launch the same command with ``torchrun``:

    torchrun --standalone --nproc_per_node=2 -m book.train --data input.txt --out runs/ddp

``--data corpus`` means the book's Shakespeare corpus (its own train/validation split) and
``--data stdlib`` the book's Python standard-library code (whole modules held out); any other
value is a UTF-8 text file, of which the last 10% is held out for validation.
The last line printed holds the results, e.g. ``step=2000 val_loss=1.8123 ms_per_iter=38.1``.

Threads (see book/cpu.py; --threads or OMP_NUM_THREADS changes them): on an idle machine this
command uses a thread for every free CPU core and lets an idle thread spin only briefly before it
sleeps (GOMP_SPINCOUNT=3000); on a machine busy with other work, a thread on every core that sleeps
as soon as it waits (OMP_WAIT_POLICY=PASSIVE). PyTorch's default, a spinning thread on every core,
makes a step many times slower on a busy machine.
`python benchmarks/run.py --only threads` measures the settings on your machine.
"""
from __future__ import annotations

import book.cpu  # noqa: F401  (before PyTorch: OpenMP reads its settings once, when it loads)

# isort: split
import argparse
import dataclasses
import datetime
import os
import pathlib
import platform
import shlex
import sys
import time

import torch

from book import distributed
from book.checkpoint import META_FILE, CheckpointError, load_checkpoint, load_training_state, save_checkpoint
from book.data import (
    DataError,
    encode_text,
    encode_text_file,
    load_code_corpus,
    load_corpus,
    load_text_file,
    split_ids,
    split_text,
)
from book.errors import BookError, CommandParser
from book.model import GPT, GPTConfig, ModelError
from book.paths import removed_on_failure, unwritable_reason
from book.presets import PRESETS, get_preset
from book.tokenize import CharTokenizer, UnknownCharacterError
from book.training import TrainingError, estimate_loss, optimizer_for, train


class UsageError(BookError):
    pass


def parse_args(argv=None) -> argparse.Namespace:
    parser = CommandParser(prog="python -m book.train", description=__doc__.split("\n\n")[0],
                           epilog=__doc__.split("\n\n")[-1])
    parser.add_argument("--data", required=True,
                        help="a UTF-8 text file, 'corpus' for the book's Shakespeare or 'stdlib' for its Python code")
    parser.add_argument("--preset", default="nanogpt-cpu", choices=sorted(PRESETS),
                        help="model size and budget: " + "; ".join(f"{name}: {preset.description}"
                                                                     for name, preset in sorted(PRESETS.items())))
    parser.add_argument("--out", required=True, help="folder for the checkpoint")
    parser.add_argument("--iters", type=int, help="number of optimisation steps (default: the preset's)")
    parser.add_argument("--seed", type=int, help="random seed for initialisation and batches")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or mps, where available")
    parser.add_argument("--threads", type=int,
                        help="CPU threads for torch (default: OMP_NUM_THREADS, or the cores free at the start, "
                             "every core on a busy machine; see book/cpu.py)")
    parser.add_argument("--eval-interval", type=int, help="steps between evaluations (and checkpoints)")
    parser.add_argument("--final-eval-iters", type=int, default=200,
                        help="batches for the final validation loss (default 200; 0: the last periodic estimate)")
    parser.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    parser.add_argument("--force", action="store_true",
                        help="replace a checkpoint already in --out (without it, train refuses to overwrite)")
    parser.add_argument("--bf16", action="store_true", help="store the weights as bfloat16 (half the size)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def load_data(source: str, val_fraction: float, tokenizer=None):
    """(train ids, validation ids, a description of the source, the tokenizer).

    The ids are compact NumPy arrays (a byte per character for up to 256 characters); a text
    file is read in pieces, so its size is limited by the memory of its ids, not of its text.
    Without ``tokenizer`` (a new run), a character tokenizer of the whole text is made.
    """
    if source in ("corpus", "stdlib"):
        if source == "corpus":
            corpus = load_corpus()
            train_text, val_text = corpus.split(val_fraction)
            description = f"the book's Shakespeare corpus ({len(corpus)} works)"
        else:
            code = load_code_corpus()
            train_text, val_text = code.split()
            description = (f"the Python {code.python} standard library ({len(code.modules)} modules, "
                           f"{len(code.heldout_names)} held out)")
        tokenizer = tokenizer or CharTokenizer.from_text(train_text + val_text)
        return encode_text(tokenizer, train_text), encode_text(tokenizer, val_text), description, tokenizer
    name = pathlib.Path(source).name
    if tokenizer is not None and not isinstance(tokenizer, CharTokenizer):
        train_text, val_text = split_text(load_text_file(source), val_fraction)
        return encode_text(tokenizer, train_text), encode_text(tokenizer, val_text), name, tokenizer
    ids, tokenizer = encode_text_file(source, tokenizer)
    train_ids, val_ids = split_ids(ids, val_fraction, tokenizer.char_to_id.get("\n"))
    return train_ids, val_ids, name, tokenizer


def check_output(out: pathlib.Path, *, resume: bool, force: bool) -> None:
    """Refuse, before any work, an --out that cannot be written or that holds a run to keep."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    if resume and force:
        raise UsageError("--resume continues the run in --out and --force replaces it: choose one")
    holds_checkpoint = (out / META_FILE).exists()
    if resume and not holds_checkpoint:
        raise UsageError(f"--resume: {out} holds no checkpoint to continue")
    if holds_checkpoint and not resume and not force:
        raise UsageError(f"{out} already holds a checkpoint; pass --resume to continue it or --force to "
                         f"replace it")
    reason = unwritable_reason(out)
    if reason:
        raise UsageError(f"--out {out} cannot be written ({reason})")


MAX_SEED = 2**63 - 1


def check_settings(args: argparse.Namespace, preset) -> dict:
    """The preset's training settings this run replaces, refused when out of range (before any work)."""
    for name in ("iters", "threads", "eval_interval"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if args.final_eval_iters < 0:
        raise UsageError(f"--final-eval-iters must be 0 or more, got {args.final_eval_iters}")
    if args.seed is not None and not 0 <= args.seed <= MAX_SEED:
        raise UsageError(f"--seed must be between 0 and {MAX_SEED}, got {args.seed}")
    names = {"iters": "max_steps", "seed": "seed", "eval_interval": "eval_interval"}
    overrides = {key: getattr(args, name) for name, key in names.items() if getattr(args, name) is not None}
    dataclasses.replace(preset.training, **overrides)  # a TrainingError if they do not fit together
    return overrides


def run(args: argparse.Namespace) -> int:
    preset = get_preset(args.preset)
    overrides = check_settings(args, preset)
    threads = args.threads if args.threads is not None else book.cpu.training_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    out = pathlib.Path(args.out)
    process, device = distributed.start(args.device)
    try:
        with removed_on_failure(out):  # an --out created by the check below goes again if the run fails
            check_output(out, resume=args.resume, force=args.force)
            status = _run(args, preset, overrides, process, device)
    except BaseException:
        distributed.stop(process, wait_for_others=False)
        raise
    distributed.stop(process)
    return status


def _run(args: argparse.Namespace, preset, overrides: dict, process: distributed.Process,
         device: torch.device) -> int:
    out = pathlib.Path(args.out)
    generator = torch.Generator()
    if args.resume:
        saved = load_checkpoint(out, device=device)
        tokenizer, model = saved.tokenizer, saved.model
        train_config = dataclasses.replace(saved.train_config or preset.training, **overrides)
        if saved.step >= train_config.max_steps:
            raise UsageError(f"{out} has already trained {saved.step} steps; ask for more with --iters")
        try:
            train_ids, val_ids, source, _ = load_data(args.data, preset.val_fraction, tokenizer)
        except UnknownCharacterError as error:
            raise CheckpointError(f"{out} was trained on another text: {error}") from None
        start_step, history, metadata = saved.step, saved.history, saved.metadata
    else:
        train_config = dataclasses.replace(preset.training, **overrides)
        train_ids, val_ids, source, tokenizer = load_data(args.data, preset.val_fraction)
        torch.manual_seed(train_config.seed)
        model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, **preset.model)).to(device)
        generator.manual_seed(train_config.seed)
        start_step, history, metadata = 0, None, {}
    optimizer = optimizer_for(model, train_config)
    if args.resume:
        load_training_state(out, optimizer, generator)
    context = train_config.context_length
    unit = "characters" if isinstance(tokenizer, CharTokenizer) else "tokens"

    command = "python -m book.train " + shlex.join(args.argv)
    metadata = dict(metadata)
    metadata["resumed_with" if args.resume else "command"] = command.strip()
    metadata.update({
        "preset": args.preset,
        "data": source,
        f"train_{unit}": len(train_ids),
        f"val_{unit}": len(val_ids),
        "parameters": model.num_parameters(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "processes": process.world_size,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
    })
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    earlier = history
    if process.is_main:
        tokens_per_step = train_config.batch_size * context
        print(f"training on {source}: {len(train_ids):,} {unit} ({len(val_ids):,} held out), vocabulary "
              f"{tokenizer.vocab_size}; {model.num_parameters():,} parameters; {tokens_per_step:,} tokens per "
              f"step, {start_step} -> {train_config.max_steps} steps; device {device}, "
              f"{torch.get_num_threads()} threads ({book.cpu.describe()}), {process.world_size} process(es)",
              flush=True)
    started = time.perf_counter()

    if process.distributed:
        # Every process keeps a full copy; DDP averages the gradients so the copies stay equal.
        ids = [process.local_rank] if device.type == "cuda" else None
        trained = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    else:
        trained = model

    def save(step: int, current) -> None:
        """Write the checkpoint (after every evaluation, so an interrupted run can be resumed).

        The last step is saved once, below, with the final validation loss and timings.
        """
        if step == train_config.max_steps:
            return
        full = _full_history(earlier, current)
        metadata.update(step=step, train_loss=round(full.eval_train_loss[-1], 4),
                        val_loss=round(full.val_loss[-1], 4),
                        wall_seconds=round(previous_wall + time.perf_counter() - started, 1))
        save_checkpoint(out, model, tokenizer, train_config=train_config, step=step, history=full,
                        metadata=metadata, optimizer=optimizer, generator=generator, dtype=dtype)

    previous_wall = metadata.get("wall_seconds", 0.0) if args.resume else 0.0
    result = train(trained, train_ids, val_ids, train_config, optimizer=optimizer, start_step=start_step,
                   generator=generator, progress=not args.quiet, on_eval=save, process=process)
    if not process.is_main:
        return 0
    val_loss = result.val_loss[-1]
    if args.final_eval_iters > 0:
        # A steadier figure than the periodic estimate: many more batches, always the same ones.
        val_loss = estimate_loss(model, val_ids, batch_size=train_config.batch_size, context_length=context,
                                 iters=args.final_eval_iters, generator=torch.Generator().manual_seed(0))
    wall = time.perf_counter() - started
    metadata.update({
        "step": train_config.max_steps,
        "train_loss": round(result.eval_train_loss[-1], 4),
        "val_loss": round(val_loss, 4),
        "val_loss_batches": args.final_eval_iters or train_config.eval_iters,
        "ms_per_iter": round(result.ms_per_step, 1),
        "wall_seconds": round(previous_wall + wall, 1),
        "finished": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    })
    save_checkpoint(out, model, tokenizer, train_config=train_config, step=train_config.max_steps,
                    history=_full_history(earlier, result), metadata=metadata, optimizer=optimizer,
                    generator=generator, dtype=dtype)
    print(f"saved {out}: step={train_config.max_steps} train_loss={result.eval_train_loss[-1]:.4f} "
          f"val_loss={val_loss:.4f} ms_per_iter={result.ms_per_step:.1f} "
          f"wall_seconds={wall:.1f}", flush=True)
    return 0


def _full_history(earlier, current):
    """The history of the whole run: the saved part of a resumed run, then this part."""
    if earlier is None:
        return current
    full = type(current).from_dict(earlier.to_dict())
    full.extend(current)
    return full


def main(argv=None) -> int:
    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return run(args)
    except (DataError, CheckpointError, ModelError, TrainingError, UsageError, UnknownCharacterError,
            distributed.DistributedError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
