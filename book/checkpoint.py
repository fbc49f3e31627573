"""Saving and loading trained models: safetensors for the tensors, JSON for everything else.

A checkpoint is a folder:

    model.safetensors      the model's weights (the tied output layer stored once)
    checkpoint.json        model config, vocabulary, training config, step, history, metadata
    optimizer.safetensors  AdamW's moment estimates and the batch sampler's random state (to resume)

Nothing is unpickled, so loading a checkpoint from elsewhere cannot run code.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import signal
import threading

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from book.errors import BookError
from book.model import GPT, GPTConfig
from book.tokenize import BPETokenizer, CharTokenizer
from book.training import History, TrainConfig

FORMAT = "metagpt-from-scratch checkpoint"
VERSION = 1
MODEL_FILE = "model.safetensors"
META_FILE = "checkpoint.json"
OPTIMIZER_FILE = "optimizer.safetensors"
TIED = "lm_head.weight"  # the same tensor as token_embedding.weight


class CheckpointError(BookError):
    """A checkpoint that is missing, damaged, or does not fit the model it should hold."""


Tokenizer = CharTokenizer | BPETokenizer
TOKENIZERS = {"char": CharTokenizer, "bpe": BPETokenizer}


def tokenizer_from_dict(data: dict) -> Tokenizer:
    """Either of the book's tokenizers, from the description its ``to_dict`` wrote (its ``"type"``)."""
    kind = data.get("type") if isinstance(data, dict) else None
    if kind not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer type {kind!r}; this code reads {', '.join(map(repr, TOKENIZERS))}")
    return TOKENIZERS[kind].from_dict(data)


@dataclasses.dataclass
class Checkpoint:
    model: GPT
    tokenizer: Tokenizer
    train_config: TrainConfig | None
    step: int
    history: History | None
    metadata: dict
    path: pathlib.Path

    @property
    def config(self) -> GPTConfig:
        return self.model.config


def save_checkpoint(directory, model: GPT, tokenizer: Tokenizer, *, train_config: TrainConfig | None = None,
                    step: int = 0, history: History | None = None, metadata: dict | None = None,
                    optimizer: torch.optim.Optimizer | None = None,
                    generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> pathlib.Path:
    """Write ``model`` (and, to resume training, ``optimizer`` and ``generator``) to ``directory``."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if model.config.vocab_size != tokenizer.vocab_size:
        raise CheckpointError(f"the model has {model.config.vocab_size} tokens but the tokenizer "
                              f"{tokenizer.vocab_size}")
    weights = {name: tensor.detach().to("cpu", dtype).contiguous()
               for name, tensor in model.state_dict().items() if name != TIED}
    # Every file is written under a temporary name and renamed into place, weights first and the
    # description last; each weights file records its step, so a save interrupted between two
    # renames is caught on loading instead of resuming from mismatched files.
    stamp = {"format": FORMAT, "step": str(step)}
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.config.to_dict(),
        "tokenizer": tokenizer.to_dict(),
        "training": train_config.to_dict() if train_config else None,
        "step": step,
        "history": history.to_dict() if history else None,
        "metadata": metadata or {},
    }
    tensors = None
    if optimizer is not None:
        tensors, meta["optimizer"] = _flatten_optimizer(optimizer)
        if generator is not None:
            tensors["rng.batches"] = generator.get_state()
    with _ctrl_c_held():  # Ctrl-C waits for the last rename: the files on disk always belong together
        save_tensors(weights, directory / MODEL_FILE, stamp)
        if tensors is not None:
            save_tensors(tensors, directory / OPTIMIZER_FILE, stamp)
        elif (directory / OPTIMIZER_FILE).exists():
            (directory / OPTIMIZER_FILE).unlink()  # a stale state from another run must not be resumed
        temporary = directory / (META_FILE + ".tmp")
        temporary.write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        temporary.replace(directory / META_FILE)
    return directory


@contextlib.contextmanager
def _ctrl_c_held():
    """Run the block to its end even if Ctrl-C comes; raise the KeyboardInterrupt after it."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield  # only the main thread can take over Ctrl-C
        return
    received = []
    signal.signal(signal.SIGINT, lambda number, frame: received.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def save_tensors(tensors: dict, path: pathlib.Path, metadata: dict) -> None:
    """Write a safetensors file atomically: a temporary file, then a rename (the book's one writer)."""
    temporary = path.with_name(path.name + ".tmp")
    save_file(tensors, temporary, metadata=metadata)
    os.replace(temporary, path)


def tensor_metadata(path: pathlib.Path) -> dict:
    """The string metadata stored in a safetensors file."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None


def _saved_step(path: pathlib.Path) -> int | None:
    """The step recorded inside a weights file (None for files written before steps were recorded)."""
    step = tensor_metadata(path).get("step")
    return int(step) if step is not None and step.isdigit() else None


def _check_step(directory: pathlib.Path, meta: dict, path: pathlib.Path) -> None:
    saved = _saved_step(path)
    if saved is not None and saved != meta["step"]:
        raise CheckpointError(f"{directory}: {path.name} is from step {saved} but {META_FILE} says step "
                              f"{meta['step']}; the last save was interrupted, so the files do not belong "
                              f"together")


def load_checkpoint(directory, *, device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model and tokenizer saved in ``directory``, checking that everything fits."""
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: no such checkpoint folder")
    meta = read_metadata(directory)
    try:
        config = GPTConfig.from_dict(meta["model"])
        tokenizer = tokenizer_from_dict(meta["tokenizer"])
        train_config = TrainConfig.from_dict(meta["training"]) if meta.get("training") else None
        history = History.from_dict(meta["history"]) if meta.get("history") else None
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{directory / META_FILE}: invalid checkpoint description ({error})") from None
    if tokenizer.vocab_size != config.vocab_size:
        raise CheckpointError(f"{directory}: the vocabulary has {tokenizer.vocab_size} tokens but the "
                              f"model config says {config.vocab_size}")
    weights = load_tensors(directory / MODEL_FILE)
    _check_step(directory, meta, directory / MODEL_FILE)
    with torch.device("meta"):  # shapes only: a hostile config must not allocate before it is checked
        skeleton = GPT(config)
    expected = {name: tensor for name, tensor in skeleton.state_dict().items() if name != TIED}
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        problem = f"missing {', '.join(missing[:3])}" if missing else f"unexpected {', '.join(unexpected[:3])}"
        raise CheckpointError(f"{directory}: the weights do not match the config ({problem}); "
                              f"the file is from another model")
    for name, tensor in expected.items():
        if weights[name].shape != tensor.shape:
            raise CheckpointError(f"{directory}: {name} has shape {tuple(weights[name].shape)} but the config "
                                  f"needs {tuple(tensor.shape)}; the weights are from another config")
    damaged = [name for name in expected if not torch.isfinite(weights[name].float()).all()]
    if damaged:
        raise CheckpointError(f"{directory}: {damaged[0]} holds NaN or infinite values; the weights are damaged "
                              f"(a diverged or corrupted run)")
    model = GPT(config)
    model.load_state_dict({name: weights[name].float() for name in expected}, strict=False)
    model.to(device).eval()
    return Checkpoint(model, tokenizer, train_config, meta["step"], history, meta.get("metadata", {}), directory)


def load_training_state(directory, optimizer: torch.optim.Optimizer, generator: torch.Generator | None = None) -> None:
    """Restore the optimizer (and the batch sampler's random state) saved beside a checkpoint."""
    directory = pathlib.Path(directory)
    meta = read_metadata(directory)
    if "optimizer" not in meta or not (directory / OPTIMIZER_FILE).is_file():
        raise CheckpointError(f"{directory}: no optimizer state saved, so training cannot be resumed")
    tensors = load_tensors(directory / OPTIMIZER_FILE)
    _check_step(directory, meta, directory / OPTIMIZER_FILE)
    groups = meta["optimizer"]
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in optimizer.param_groups]:
        raise CheckpointError(f"{directory}: the optimizer state belongs to a different model")
    state = {}
    for key, tensor in tensors.items():
        if key.startswith("state."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = tensor
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, RuntimeError) as error:
        raise CheckpointError(f"{directory}: the optimizer state does not fit the model ({error})") from None
    if generator is not None and "rng.batches" in tensors:
        generator.set_state(tensors["rng.batches"])


def read_metadata(directory) -> dict:
    path = pathlib.Path(directory) / META_FILE
    if not path.is_file():
        raise CheckpointError(f"{directory}: not a checkpoint (no {META_FILE})")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: damaged ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a checkpoint of this book")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {meta.get('version')}, this code reads {VERSION}")
    step = meta.setdefault("step", 0)
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(f"{path}: \"step\" must be a non-negative integer, got {step!r}")
    return meta


def load_tensors(path: pathlib.Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, or a CheckpointError naming what is wrong with it."""
    if not path.is_file():
        raise CheckpointError(f"{path.parent}: the weights file {path.name} is missing")
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """The optimizer's tensors by name ("state.<param index>.<name>"), and its groups as JSON."""
    state = optimizer.state_dict()
    tensors = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"state.{index}.{name}"] = tensor.detach().cpu().contiguous()
    groups = []
    for group in state["param_groups"]:
        groups.append({key: (list(value) if isinstance(value, tuple) else value) for key, value in group.items()})
    return tensors, groups
