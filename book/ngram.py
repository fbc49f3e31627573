"""A count-based character language model: an n-gram with Witten-Bell interpolation (Chapter 8).

It is the baseline that says what counting alone achieves on a text: the probability of the
next character after the last ``order - 1`` characters, mixed with the estimate from one
character less of context, down to the uniform distribution. Witten and Bell's rule gives the
longer context a weight that grows with how often it was seen and shrinks with how many
different characters followed it (Chen and Goodman 1999 compare it with the other smoothings):

    p(c | h) = (C(h c) + T(h) p(c | h')) / (C(h) + T(h))

with ``C`` the counts, ``T(h)`` the number of distinct characters seen after ``h``, and ``h'`` the
context ``h`` without its oldest character. A context never seen leaves the shorter estimate as
it is. Counting is done with NumPy on integer codes of the contexts, a few seconds for the
book's corpus.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from book.errors import BookError


class NgramError(BookError):
    """The n-gram cannot be built or used with these settings."""


@dataclasses.dataclass
class _Level:
    """The counts for one context length: sorted codes of (context, next) and of contexts."""

    pair_codes: np.ndarray
    pair_counts: np.ndarray
    context_codes: np.ndarray
    context_counts: np.ndarray
    context_types: np.ndarray  # distinct next characters seen after each context


def _codes(ids: np.ndarray, length: int, vocab_size: int) -> np.ndarray:
    """Integer codes of the ``length`` characters ending at each position from ``length - 1`` on."""
    codes = np.zeros(len(ids) - length + 1, dtype=np.int64)
    for offset in range(length):
        codes = codes * vocab_size + ids[offset:len(ids) - length + 1 + offset]
    return codes


def _lookup(sorted_codes: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``values`` at the positions of ``queries`` in ``sorted_codes``, 0 where a query is absent."""
    at = np.searchsorted(sorted_codes, queries)
    at = np.minimum(at, len(sorted_codes) - 1)
    found = sorted_codes[at] == queries
    return np.where(found, values[at], 0)


class CharNgram:
    """An interpolated n-gram over token ids (``order`` 1 is a unigram, 2 a bigram, ...)."""

    def __init__(self, ids, order: int, vocab_size: int):
        ids = np.asarray(ids, dtype=np.int64)
        if order < 1:
            raise NgramError(f"order must be at least 1, got {order}")
        if vocab_size ** order >= 2 ** 62:
            raise NgramError(f"order {order} with {vocab_size} symbols overflows the integer codes")
        if len(ids) < order:
            raise NgramError(f"a text of {len(ids)} tokens is too short for order {order}")
        if ids.min() < 0 or ids.max() >= vocab_size:
            raise NgramError(f"token ids must lie in 0..{vocab_size - 1}")
        self.order, self.vocab_size = order, vocab_size
        self.levels = []
        for context in range(order):  # context length 0 .. order - 1
            pairs = _codes(ids, context + 1, vocab_size)
            pair_codes, pair_counts = np.unique(pairs, return_counts=True)
            contexts = pair_codes // vocab_size
            context_codes, first, types = np.unique(contexts, return_index=True, return_counts=True)
            context_counts = np.add.reduceat(pair_counts, first)
            self.levels.append(_Level(pair_codes, pair_counts, context_codes, context_counts, types))

    def log_probs(self, ids) -> np.ndarray:
        """Natural-log probability of each token of ``ids`` from position ``order - 1`` on."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) < self.order:
            raise NgramError(f"a text of {len(ids)} tokens is too short for order {self.order}")
        if ids.min() < 0 or ids.max() >= self.vocab_size:
            raise NgramError(f"token ids must lie in 0..{self.vocab_size - 1}")
        skip = self.order - 1
        probability = np.full(len(ids) - skip, 1.0 / self.vocab_size)
        for context, level in enumerate(self.levels):
            pairs = _codes(ids, context + 1, self.vocab_size)[skip - context:]
            contexts = pairs // self.vocab_size
            seen = _lookup(level.context_codes, level.context_counts, contexts).astype(np.float64)
            types = _lookup(level.context_codes, level.context_types, contexts).astype(np.float64)
            count = _lookup(level.pair_codes, level.pair_counts, pairs).astype(np.float64)
            mixed = (count + types * probability) / np.maximum(seen + types, 1.0)
            probability = np.where(seen > 0, mixed, probability)
        return np.log(probability)


def choose_order(train_ids, dev_ids, vocab_size: int, orders=range(1, 9)) -> dict[int, float]:
    """Mean held-out loss (nats per token) of the n-gram of each order, counted on ``train_ids``.

    Every order is scored on the same positions of ``dev_ids`` (from the largest order on).
    """
    orders = list(orders)
    last = max(orders) - 1
    losses = {}
    for order in orders:
        model = CharNgram(train_ids, order, vocab_size)
        losses[order] = float(-model.log_probs(dev_ids)[last - (order - 1):].mean())
    return losses
