"""Memorisation: how much of a training text greedy decoding reproduces verbatim (Chapter 9)."""
from __future__ import annotations

import random
import re

import torch

from book.model import GPT
from book.tasks import TaskError


def sample_passages(text: str, n: int, prefix_chars: int, continuation_chars: int, seed: int = 0):
    """``n`` (prefix, true continuation) pairs cut from ``text`` at random line starts."""
    starts = [m.end() for m in re.finditer("\n", text[:len(text) - prefix_chars - continuation_chars])]
    if len(starts) < n:
        raise TaskError(f"text of {len(text)} characters has only {len(starts)} line starts, {n} asked")
    chosen = random.Random(seed).sample(starts, n)
    return [(text[s:s + prefix_chars], text[s + prefix_chars:s + prefix_chars + continuation_chars])
            for s in sorted(chosen)]


@torch.no_grad()
def memorisation(model: GPT, tokenizer, text: str, *, n: int = 100, prefix_chars: int = 64,
                 continuation_chars: int = 64, seed: int = 0) -> list[int]:
    """For ``n`` passages of ``text``: how many characters of the true continuation greedy decoding reproduces.

    Greedy decoding follows the true text for exactly as long as the most likely next
    character, read on the true text, is the true next character; so one forward pass over
    prefix plus continuation gives the answer, no generation loop needed (the notebook checks
    this against :func:`greedy_continuations`).
    """
    passages = sample_passages(text, n, prefix_chars, continuation_chars, seed)
    idx = torch.tensor([tokenizer.encode(p + c) for p, c in passages], dtype=torch.long)
    model.eval()
    logits, _ = model(idx[:, :-1])
    hits = logits[:, prefix_chars - 1:].argmax(-1) == idx[:, prefix_chars:]
    misses = torch.cat([~hits, torch.ones(len(passages), 1, dtype=torch.bool)], dim=1)
    return misses.int().argmax(dim=1).tolist()  # the first miss = the length reproduced


def exact_match_rates(lengths: list[int], thresholds=(1, 4, 8, 16, 32)) -> dict[int, float]:
    """The fraction of passages reproduced for at least ``k`` characters, for each ``k``."""
    return {k: sum(length >= k for length in lengths) / len(lengths) for k in thresholds}
