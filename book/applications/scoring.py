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
def continuation_logprobs(model: GPT, tokenizer, prompts: list[str], continuations: list[str]) -> torch.Tensor:
    """Total log-probability (nats) of each continuation given its prompt, shape (len(prompts),).

    The prompt is cut from the left so that prompt plus continuation fits the context.
    """
    if len(prompts) != len(continuations):
        raise TaskError(f"{len(prompts)} prompts but {len(continuations)} continuations")
    context = model.config.context_length
    rows, spans = [], []
    for prompt, continuation in zip(prompts, continuations):
        if not continuation:
            raise TaskError("an empty continuation has no probability to score")
        if len(continuation) >= context:
            raise TaskError(f"continuation of {len(continuation)} characters does not fit the context ({context})")
        ids = tokenizer.encode(prompt + continuation)[-context:]
        rows.append(ids)
        spans.append(len(tokenizer.encode(continuation)))
    width = max(map(len, rows))
    idx = torch.zeros(len(rows), width, dtype=torch.long)
    for i, ids in enumerate(rows):
        idx[i, :len(ids)] = torch.tensor(ids)
    model.eval()
    logits, _ = model(idx)
    logp = F.log_softmax(logits[:, :-1], dim=-1).gather(-1, idx[:, 1:, None])[..., 0]
    totals = []
    for i, (ids, span) in enumerate(zip(rows, spans)):
        totals.append(logp[i, len(ids) - 1 - span:len(ids) - 1].sum())
    return torch.stack(totals)


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
