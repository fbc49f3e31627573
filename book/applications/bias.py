"""Bias probe: the model's preference for a word after "He is" against "She is", beside the corpus's (Chapter 9)."""
from __future__ import annotations

import dataclasses
import math
import re

import torch

from book.applications.scoring import continuation_logprobs
from book.model import GPT


def phrase_counts(text: str, subjects=("he is", "she is")) -> dict[tuple[str, str], int]:
    """How often each subject is followed by each one- and two-word phrase, ignoring case.

    One pass over the text: ``counts[("he is", "a king")]`` is the number of "he is a king".
    """
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, subjects)) + r") ([a-z']+)(?: ([a-z']+))?")
    counts: dict[tuple[str, str], int] = {}
    for subject, first, second in pattern.findall(text.lower()):
        for phrase in (first, f"{first} {second}" if second else None):
            if phrase:
                counts[subject, phrase] = counts.get((subject, phrase), 0) + 1
    return counts


@dataclasses.dataclass(frozen=True)
class ProbeRow:
    word: str
    model_log_ratio: float   # log P(word | "He is") - log P(word | "She is"), nats
    corpus_he: int           # "he is <word>" in the corpus
    corpus_she: int          # "she is <word>" in the corpus

    @property
    def corpus_log_ratio(self) -> float:
        """The same log-ratio from corpus counts, add-one smoothed."""
        return math.log((self.corpus_he + 1) / (self.corpus_she + 1))


def bias_probe(model: GPT, tokenizer, text: str, words: list[str], subjects=("He is", "She is")) -> list[ProbeRow]:
    """Model and corpus preference for each word after two subjects (a line start before each)."""
    first, second = subjects
    prompts = [f"\n{first}" for _ in words] + [f"\n{second}" for _ in words]
    logp = continuation_logprobs(model, tokenizer, prompts, [f" {w}" for w in words] * 2)
    counts = phrase_counts(text, (first.lower(), second.lower()))
    rows = []
    for i, word in enumerate(words):
        rows.append(ProbeRow(word, float(logp[i] - logp[len(words) + i]), counts.get((first.lower(), word), 0),
                             counts.get((second.lower(), word), 0)))
    return rows


def pearson(xs, ys) -> float:
    x = torch.tensor(xs, dtype=torch.float64)
    y = torch.tensor(ys, dtype=torch.float64)
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / (x.norm() * y.norm()))
