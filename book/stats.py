"""The small statistics every experiment of the book reports with, in one place (Chapters 5 and 6)."""
from __future__ import annotations

import math

import torch

LN2 = math.log(2)


def bits(nats):
    """A loss in nats (natural log) as bits: divide by ln 2."""
    return nats / LN2


def confidence_95(values: torch.Tensor) -> float:
    """Half-width of the normal-approximation 95% interval of the mean of ``values``.

    $1.96\\,s/\\sqrt{n}$ with $s$ the sample standard deviation; ``nan`` for fewer than two
    values, which have no spread to estimate.
    """
    values = torch.as_tensor(values, dtype=torch.float64).flatten()
    if values.numel() < 2:
        return float("nan")
    return 1.96 * float(values.std()) / math.sqrt(values.numel())
