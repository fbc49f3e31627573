# Generated from chapters/03_loss.ipynb by `python -m book.tooling.sync`: edit the notebook, not this file.
"""The loss, built in Chapter 3: a stable log-softmax, cross-entropy, its units, and a
count-based bigram model.

    >>> from book.loss import cross_entropy, nats_to_bits
    >>> loss = cross_entropy(logits, targets)  # mean -log p(target | context), nats
    >>> nats_to_bits(loss.item())                 # the same, in bits per token
"""
from __future__ import annotations

import math

import torch


# Chapter 3 (The loss), section: 3.1 From scores to probabilities to a loss
def log_softmax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log(softmax(logits)) along ``dim``, computed without overflow (the max trick)."""
    # log(e^s_c / sum e^s) = (s_c - m) - log sum e^(s - m) for any m; with m = max s
    # every exponent is <= 0 and the sum is >= 1. The shift cancels, so it is a
    # constant for autograd.
    shifted = logits - logits.amax(dim=dim, keepdim=True).detach()
    return shifted - shifted.exp().sum(dim=dim, keepdim=True).log()


# Chapter 3 (The loss), section: 3.1 From scores to probabilities to a loss
class LossInputError(ValueError):
    """Scores and targets that cannot be compared: wrong shapes, types or ids."""


# Chapter 3 (The loss), section: 3.1 From scores to probabilities to a loss
def cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """The negative log-likelihood -log p(target | context) of each target, from
    unnormalised scores.

    ``logits`` has shape (..., vocab_size) and ``targets`` the shape (...) with integer
    ids. ``reduction`` is "mean" (the average over all targets, the usual training
    loss), "sum" (the seed's sum over positions) or "none" (one loss per target).
    Units: nats.
    """
    if logits.dim() < 1 or targets.shape != logits.shape[:-1]:
        raise LossInputError(
            f"logits {tuple(logits.shape)} need targets of shape "
            f"{tuple(logits.shape[:-1])}, "
            f"got {tuple(targets.shape)}"
        )
    if (
        targets.dtype.is_floating_point
        or targets.dtype == torch.bool
        or targets.is_complex()
    ):
        raise LossInputError(
            f"targets must be integer token ids, got dtype {targets.dtype}"
        )
    vocab_size = logits.shape[-1]
    if targets.numel() and (targets.min() < 0 or targets.max() >= vocab_size):
        bad = targets[(targets < 0) | (targets >= vocab_size)][0].item()
        raise LossInputError(
            f"target id {bad} is out of range for {vocab_size} classes (valid ids are "
            f"0 to {vocab_size - 1})"
        )
    losses = -log_softmax(logits).gather(-1, targets.unsqueeze(-1).long()).squeeze(-1)
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise LossInputError(
        f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}"
    )


# Chapter 3 (The loss), section: 3.2 Reading the number: nats, bits and perplexity
def nats_to_bits(loss: float) -> float:
    """A loss in nats (natural log) in bits (log base 2): divide by ln 2."""
    return loss / math.log(2)


# Chapter 3 (The loss), section: 3.2 Reading the number: nats, bits and perplexity
def perplexity(loss: float) -> float:
    """exp(loss): the number of equally likely choices that would be as uncertain as
    the model."""
    return math.exp(loss)


# Chapter 3 (The loss), section: 3.2 Reading the number: nats, bits and perplexity > A count-based bigram model
class BigramModel:
    """p(next | previous) from counted pairs, with additive smoothing: (n_ab + alpha) /
    (n_a + alpha V).

    ``BigramModel.fit(ids, vocab_size)`` counts the pairs of a 1-D tensor of token ids;
    ``model.loss(ids)`` is the mean negative log-likelihood of each token given the one
    before, in nats.
    """

    def __init__(self, counts: torch.Tensor, smoothing: float = 1.0):
        if counts.dim() != 2 or counts.shape[0] != counts.shape[1]:
            raise LossInputError(
                "bigram counts must be a square (vocab, vocab) table, got "
                f"{tuple(counts.shape)}"
            )
        if smoothing < 0:
            raise LossInputError(f"smoothing must be >= 0, got {smoothing}")
        self.counts, self.smoothing = counts, smoothing

    @classmethod
    def fit(
        cls, ids: torch.Tensor, vocab_size: int, smoothing: float = 1.0
    ) -> "BigramModel":
        _check_ids(ids, vocab_size)
        # Pair (a, b) becomes the single number a * V + b, so one bincount counts every
        # pair.
        pairs = ids[:-1].long() * vocab_size + ids[1:].long()
        counts = torch.bincount(pairs, minlength=vocab_size * vocab_size).reshape(
            vocab_size, vocab_size
        )
        return cls(counts, smoothing)

    @property
    def vocab_size(self) -> int:
        return self.counts.shape[0]

    def log_probs(self) -> torch.Tensor:
        """(vocab, vocab) table of log p(b | a), row a = previous token, in float64."""
        smoothed = self.counts.double() + self.smoothing
        return (smoothed / smoothed.sum(dim=1, keepdim=True)).log()

    def loss(self, ids: torch.Tensor) -> float:
        """Mean -log p(ids[t] | ids[t-1]) over the text, in nats (inf if an unseen pair
        has no smoothing)."""
        _check_ids(ids, self.vocab_size)
        return -self.log_probs()[ids[:-1].long(), ids[1:].long()].mean().item()


# Chapter 3 (The loss), section: 3.2 Reading the number: nats, bits and perplexity > A count-based bigram model
def _check_ids(ids: torch.Tensor, vocab_size: int) -> None:
    if ids.dim() != 1 or len(ids) < 2:
        raise LossInputError(
            "token ids must be a 1-D tensor of at least 2 tokens, got shape "
            f"{tuple(ids.shape)}"
        )
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise LossInputError(
            f"token ids must lie in 0..{vocab_size - 1}, got "
            f"{ids.min().item()}..{ids.max().item()}"
        )
