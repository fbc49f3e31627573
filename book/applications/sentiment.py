"""Sentiment: held-out lines labelled by two keyword lists, classified by the model (Chapter 7)."""
from __future__ import annotations

import dataclasses
import random
import re

import torch

from book.applications.finetuning import shuffled_text_ids
from book.applications.scoring import continuation_logprobs, heldout_part
from book.model import GPT
from book.tasks import TaskError

POSITIVE_WORDS = ("love", "joy", "sweet", "happy", "blessed", "gentle", "merry")
NEGATIVE_WORDS = ("curse", "grief", "woe", "hate", "death", "villain", "murder", "plague", "sorrow")
SENTIMENT_LABELS = ("happy", "sad")


@dataclasses.dataclass(frozen=True)
class LabelledLine:
    text: str
    label: str  # one of SENTIMENT_LABELS
    work: str


def keyword_label(line: str) -> str | None:
    """"happy" if the line has a positive keyword and no negative one, "sad" the other way, else None."""
    words = set(re.findall(r"[a-z]+", line.lower()))
    positive, negative = bool(words & set(POSITIVE_WORDS)), bool(words & set(NEGATIVE_WORDS))
    if positive == negative:
        return None
    return SENTIMENT_LABELS[0] if positive else SENTIMENT_LABELS[1]


def sentiment_set(corpus, n_per_label: int = 28, *, min_chars: int = 25, max_chars: int = 70,
                  seed: int = 0) -> list[LabelledLine]:
    """``n_per_label`` held-out lines of each label, chosen at random among those the keyword rule labels.

    Every line of every work's held-out tail (the shipped model never trained on it) with
    ``min_chars`` to ``max_chars`` characters is labelled by :func:`keyword_label`; the keywords
    stay in the lines. The result alternates labels, so any prefix of it is balanced.
    """
    pools = {label: [] for label in SENTIMENT_LABELS}
    for work in corpus:
        for line in heldout_part(work).text.split("\n"):
            line = line.strip()
            label = keyword_label(line) if min_chars <= len(line) <= max_chars else None
            if label:
                pools[label].append(LabelledLine(line, label, work.name))
    rng = random.Random(seed)
    for label, pool in pools.items():
        if len(pool) < n_per_label:
            raise TaskError(f"only {len(pool)} {label} lines, {n_per_label} asked")
    chosen = {label: rng.sample(pool, n_per_label) for label, pool in pools.items()}
    return [item for pair in zip(*chosen.values()) for item in pair]


def sentiment_prompt(line: str) -> str:
    return f"{line}\nThat was a "


def classify_sentiment(model: GPT, tokenizer, lines: list[str], labels=SENTIMENT_LABELS) -> list[str]:
    """For each line, the label word the model finds most likely after :func:`sentiment_prompt`."""
    prompts = [sentiment_prompt(line) for line in lines for _ in labels]
    scores = continuation_logprobs(model, tokenizer, prompts, [f"{label} line." for _ in lines for label in labels])
    scores = scores.view(len(lines), len(labels))
    return [labels[int(i)] for i in scores.argmax(dim=1)]


def sentiment_ids(tokenizer, examples: list[LabelledLine], repeats: int = 20, seed: int = 0) -> torch.Tensor:
    """The labelled examples in ``repeats`` shuffled orders, as prompt plus label: the fine-tuning text."""
    pieces = [sentiment_prompt(e.text) + f"{e.label} line.\n\n" for e in examples]
    return shuffled_text_ids(tokenizer, pieces, repeats, seed)
