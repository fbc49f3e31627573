# Generated from chapters/01_text_to_vectors.ipynb by `python -m book.tooling.sync`: edit the notebook, not this file.
"""Token ids to vectors: token embeddings, positional encodings, and their sum z_i =
e_i + p_i."""
from __future__ import annotations

import torch
from torch import nn


# Chapter 1 (From text to vectors), section: 1.4 Positions: $p_i = P(i)$ and $z_i = e_i + p_i$
def _check_positive(**sizes: int) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


# Chapter 1 (From text to vectors), section: 1.4 Positions: $p_i = P(i)$ and $z_i = e_i + p_i$
def sinusoidal_positional_encoding(
    context_length: int, d_model: int, base: float = 10000.0
) -> torch.Tensor:
    """The (context_length, d_model) table of Vaswani et al. (2017), row i being p_i.

    Columns come in (sin, cos) pairs: P[i, 2k] = sin(i w_k) and P[i, 2k+1] = cos(i w_k),
    with angular frequencies w_k = base^(-2k / d_model) from 1 down to almost 1/base.
    """
    _check_positive(context_length=context_length, d_model=d_model)
    if d_model % 2:
        raise ValueError(
            "d_model must be even for sinusoidal positions (they come in sin/cos "
            f"pairs), got {d_model}"
        )
    # float64 keeps sin(i * w) accurate for large i; the table is stored in float32.
    positions = torch.arange(context_length, dtype=torch.float64)[:, None]
    frequencies = base ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    angles = positions * frequencies
    table = torch.empty(context_length, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles)
    return table.float()


# Chapter 1 (From text to vectors), section: 1.4 Positions: $p_i = P(i)$ and $z_i = e_i + p_i$
POSITIONAL_KINDS = ("sinusoidal", "learned")


# Chapter 1 (From text to vectors), section: 1.4 Positions: $p_i = P(i)$ and $z_i = e_i + p_i$
class PositionalEncoding(nn.Module):
    """p_i = P(i) for positions 0 to context_length - 1: a fixed sinusoidal table or a
    learned one."""

    def __init__(self, context_length: int, d_model: int, kind: str = "sinusoidal"):
        super().__init__()
        _check_positive(context_length=context_length, d_model=d_model)
        if kind not in POSITIONAL_KINDS:
            raise ValueError(
                "positional encoding must be one of "
                f"{', '.join(map(repr, POSITIONAL_KINDS))}, got {kind!r}"
            )
        self.context_length, self.d_model, self.kind = context_length, d_model, kind
        if kind == "sinusoidal":
            # A buffer, not a parameter: it follows .to(device) but is never trained,
            # and is recomputed rather than saved (persistent=False) since it depends
            # only on the sizes.
            self.register_buffer(
                "table",
                sinusoidal_positional_encoding(context_length, d_model),
                persistent=False,
            )
        else:
            # One trained vector per position, initialised like nn.Embedding (standard
            # normal).
            self.table = nn.Parameter(torch.randn(context_length, d_model))

    def forward(self, seq_len: int) -> torch.Tensor:
        """The (seq_len, d_model) vectors of positions 0 to seq_len - 1."""
        if seq_len > self.context_length:
            raise ValueError(
                f"sequence of {seq_len} tokens is longer than the context "
                f"({self.context_length})"
            )
        return self.table[:seq_len]


# Chapter 1 (From text to vectors), section: 1.4 Positions: $p_i = P(i)$ and $z_i = e_i + p_i$
class InputEmbedding(nn.Module):
    """z_i = E(x_i) + P(i): the vector a Transformer receives for the token x_i at
    position i."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        context_length: int,
        positional: str = "sinusoidal",
    ):
        super().__init__()
        _check_positive(
            vocab_size=vocab_size, d_model=d_model, context_length=context_length
        )
        self.vocab_size, self.d_model, self.context_length = (
            vocab_size,
            d_model,
            context_length,
        )
        self.token = nn.Embedding(vocab_size, d_model)  # E, one row per token id
        self.position = PositionalEncoding(context_length, d_model, positional)  # P

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids of shape (seq_len,) or (batch, seq_len) to vectors (..., seq_len,
        d_model)."""
        if not isinstance(ids, torch.Tensor):
            raise TypeError(
                f"token ids must be a torch.Tensor, got {type(ids).__name__}"
            )
        if ids.dtype not in (
            torch.int64,
            torch.int32,
            torch.int16,
            torch.int8,
            torch.uint8,
        ):
            raise ValueError(
                f"token ids must be an integer tensor, got dtype {ids.dtype}"
            )
        if ids.dim() not in (1, 2):
            raise ValueError(
                "token ids must have shape (seq_len,) or (batch, seq_len), got "
                f"{tuple(ids.shape)}"
            )
        seq_len = ids.shape[-1]
        if seq_len == 0:
            raise ValueError("empty sequence: there are no tokens to embed")
        if seq_len > self.context_length:
            raise ValueError(
                f"sequence of {seq_len} tokens is longer than the context "
                f"({self.context_length})"
            )
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= self.vocab_size:
            bad = low if low < 0 else high
            raise ValueError(
                f"token id {bad} is out of range for a vocabulary of {self.vocab_size} "
                "tokens "
                f"(valid ids are 0 to {self.vocab_size - 1})"
            )
        return self.token(ids.long()) + self.position(seq_len)
