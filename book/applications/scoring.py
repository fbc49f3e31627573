"""Scoring text with the model, and the metrics every application of Chapter 7 shares.

Derived in Chapter 7 (Applications): the log-probability of a continuation, greedy
continuations run as one batch, exact match and character similarity, and the held-out
part of a work that the shipped model never trained on.
"""
from __future__ import annotations

import dataclasses
import difflib

import torch
from torch.nn import functional as F

from book.data import Work, split_text
from book.generate import generate
from book.model import GPT
from book.paths import ROOT
from book.tasks import TaskError

SHIPPED_CHECKPOINT = ROOT / "checkpoints" / "shakespeare-char"


@torch.no_grad()
def continuation_logprobs(model: GPT, tokenizer, prompts: list[str], continuations: list[str], *,
                          stride: int | None = None) -> torch.Tensor:
    """Total log-probability (nats) of each continuation given its prompt, shape (len(prompts),).

    Without ``stride``, the prompt is cut from the left so that prompt plus continuation fits the
    context: a long continuation then leaves little of the prompt in view. With ``stride``, the
    continuation is scored in pieces of ``stride`` characters, each read in a window of the whole
    context that ends where the piece ends, so every character is predicted from at least
    ``context - stride - 1`` characters before it (the sliding-window evaluation of long texts).
    """
    if len(prompts) != len(continuations):
        raise TaskError(f"{len(prompts)} prompts but {len(continuations)} continuations")
    context = model.config.context_length
    if stride is not None and not (isinstance(stride, int) and 0 < stride <= context):
        raise TaskError(f"stride must be a whole number of characters from 1 to the context ({context}), "
                        f"got {stride!r}")
    rows, targets = [], []  # one row per window; targets: (first, last) predicted positions in it
    owner = []
    for number, (prompt, continuation) in enumerate(zip(prompts, continuations)):
        if not continuation:
            raise TaskError("an empty continuation has no probability to score")
        if stride is None and len(continuation) >= context:
            raise TaskError(f"continuation of {len(continuation)} characters does not fit the context ({context})")
        ids = tokenizer.encode(prompt + continuation)
        span = len(tokenizer.encode(continuation))
        first = len(ids) - span  # the position of the continuation's first token
        if first == 0:
            raise TaskError("an empty prompt leaves the continuation's first character nothing to follow")
        piece = span if stride is None else stride
        for start in range(first, len(ids), piece):
            stop = min(start + piece, len(ids))  # predict tokens start..stop-1
            begin = max(0, stop - context)
            rows.append(ids[begin:stop - 1])
            targets.append((ids[start:stop], start - begin - 1))
            owner.append(number)
    width = max(map(len, rows))
    idx = torch.zeros(len(rows), width, dtype=torch.long)
    for i, ids in enumerate(rows):
        idx[i, :len(ids)] = torch.tensor(ids)
    model.eval()
    logp = F.log_softmax(model(idx)[0], dim=-1)
    totals = torch.zeros(len(prompts), dtype=logp.dtype)
    for i, ((wanted, offset), number) in enumerate(zip(targets, owner)):
        positions = torch.arange(offset, offset + len(wanted))
        totals[number] += logp[i, positions, torch.tensor(wanted)].sum()
    return totals


def greedy_continuations(model: GPT, tokenizer, prompts: list[str], n_chars: int) -> list[str]:
    """The greedy continuation (``n_chars`` characters) of each prompt; prompts of one length batch."""
    lengths = {len(tokenizer.encode(p)) for p in prompts}
    if len(lengths) != 1:
        raise TaskError(f"prompts must all have the same number of tokens to run as a batch, got {sorted(lengths)}")
    idx = torch.tensor([tokenizer.encode(p) for p in prompts], dtype=torch.long)
    out = generate(model, idx, max_new_tokens=n_chars, do_sample=False)
    start = idx.shape[1]
    return [tokenizer.decode(row[start:].tolist()) for row in out]


def common_prefix_length(a: str, b: str) -> int:
    """How many leading characters ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def exact_match(predictions: list[str], references: list[str]) -> float:
    if len(predictions) != len(references) or not references:
        raise TaskError(f"{len(predictions)} predictions for {len(references)} references")
    return sum(p.strip() == r.strip() for p, r in zip(predictions, references)) / len(references)


def similarity(predictions: list[str], references: list[str]) -> float:
    """Mean character-level similarity (difflib's ratio, 0 to 1): partial credit beside exact match."""
    return sum(difflib.SequenceMatcher(None, p, r).ratio() for p, r in zip(predictions, references)) / len(references)


def heldout_part(work: Work, val_fraction: float = 0.1) -> Work:
    """The validation tail of a work (the part the shipped model never trained on)."""
    _, tail = split_text(work.text, val_fraction)
    return dataclasses.replace(work, text=tail)
