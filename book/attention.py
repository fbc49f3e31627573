# Generated from chapters/02_attention.ipynb by `python -m book.tooling.sync`: edit the notebook, not this file.
"""Attention, built in Chapter 2: the linear layer, scaled dot-product attention and
multi-head attention.

    >>> from book.attention import MultiHeadAttention
    >>> attention = MultiHeadAttention(d_model=64, n_heads=4)
    >>> output, weights = attention(torch.randn(2, 10, 64))  # (2,10,64), (2,4,10,10)
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from book.embeddings import InputEmbedding


# Chapter 2 (Attention), section: 2.1 The linear layer
class AttentionShapeError(ValueError):
    """Tensors whose shapes do not fit together, or a layer whose sizes cannot work."""


# Chapter 2 (Attention), section: 2.1 The linear layer
class Linear(nn.Module):
    """The seed's linear layer ``y = W x + b``, applied to the last dimension of its
    input.

    The parameters have the names, shapes and initialisation of ``torch.nn.Linear``
    (``weight`` is (out_features, in_features)), so the two load each other's state
    dicts.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise AttentionShapeError(
                f"a linear layer needs positive sizes, got {in_features} -> "
                f"{out_features}"
            )
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Uniform in +-1/sqrt(fan_in): a sum of fan_in such terms keeps the output's
        # scale roughly independent of the width (the same draws as nn.Linear makes).
        bound = 1 / math.sqrt(self.in_features)
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise AttentionShapeError(
                f"input has {x.shape[-1]} features in its last dimension, the layer "
                f"expects {self.in_features}"
            )
        # Rows of x are vectors: (W x)^T = x^T W^T, so a whole batch is one matrix
        # product.
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


# Chapter 2 (Attention), section: 2.2 Scaled dot-product attention, one step at a time > The causal mask
def causal_mask(
    length: int, key_length: int | None = None, device=None
) -> torch.Tensor:
    """Boolean mask of shape (length, key_length), True where query i may attend to key
    j, i.e. j <= i.

    True means "allowed", as in ``F.scaled_dot_product_attention``; note that a boolean
    ``attn_mask`` of ``nn.MultiheadAttention`` means the opposite (True = blocked).
    """
    key_length = length if key_length is None else key_length
    if length < 1 or key_length < 1:
        raise AttentionShapeError(
            f"a causal mask needs positive lengths, got {length} x {key_length}"
        )
    return torch.ones(length, key_length, dtype=torch.bool, device=device).tril()


# Chapter 2 (Attention), section: 2.2 Scaled dot-product attention, one step at a time > The function
def _check_attention_inputs(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor
) -> None:
    for name, tensor in (("query", query), ("key", key), ("value", value)):
        if tensor.dim() < 2:
            raise AttentionShapeError(
                f"{name} must have shape (..., length, features), got "
                f"{tuple(tensor.shape)}"
            )
    if query.shape[-1] != key.shape[-1]:
        raise AttentionShapeError(
            "query and key must have the same size d_k to be compared, got "
            f"{query.shape[-1]} and {key.shape[-1]}"
        )
    if key.shape[-2] != value.shape[-2]:
        raise AttentionShapeError(
            f"key and value must have one vector per position, got {key.shape[-2]} "
            f"keys and {value.shape[-2]} values"
        )
    try:
        torch.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except RuntimeError:
        raise AttentionShapeError(
            f"batch dimensions do not match: query {tuple(query.shape)}, key "
            f"{tuple(key.shape)}, "
            f"value {tuple(value.shape)}"
        ) from None


# Chapter 2 (Attention), section: 2.2 Scaled dot-product attention, one step at a time > The function
def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    causal: bool = False,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(Q K^T / sqrt(d_k)) V, returned with the attention weights.

    Shapes: query (..., T_q, d_k), key (..., T_k, d_k), value (..., T_k, d_v); the
    leading dimensions broadcast. With causal=True query i sees keys j <= i only. The
    optional mask is boolean, broadcastable to (..., T_q, T_k), True where attending is
    allowed; a query that may see no key at all gets NaN weights, so every row must
    allow at least one key. Returns (output, weights) of shapes (..., T_q, d_v) and
    (..., T_q, T_k).
    """
    _check_attention_inputs(query, key, value)
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
    if causal:
        scores = scores.masked_fill(
            ~causal_mask(query.shape[-2], key.shape[-2], device=scores.device),
            float("-inf"),
        )
    if mask is not None:
        if mask.dtype != torch.bool:
            raise AttentionShapeError(
                "mask must be a boolean tensor (True = may attend), got dtype "
                f"{mask.dtype}"
            )
        try:
            torch.broadcast_shapes(mask.shape, scores.shape)
        except RuntimeError:
            raise AttentionShapeError(
                f"mask of shape {tuple(mask.shape)} does not broadcast to the scores' "
                f"shape {tuple(scores.shape)}"
            ) from None
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ value, weights


# Chapter 2 (Attention), section: 2.3 Multi-head attention
class _MultiHeadParameters(nn.Module):
    """The parameters of multi-head attention: Q, K, V projections of every head in one
    layer, and the output layer."""

    def __init__(
        self, d_model: int, n_heads: int, causal: bool = True, bias: bool = True
    ):
        super().__init__()
        if d_model < 1 or n_heads < 1:
            raise AttentionShapeError(
                f"d_model and n_heads must be positive, got {d_model} and {n_heads}"
            )
        if d_model % n_heads != 0:
            raise AttentionShapeError(
                f"d_model={d_model} is not divisible by n_heads={n_heads}: each head "
                "gets d_model / n_heads dimensions"
            )
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.causal = causal
        # Rows [W_q; W_k; W_v], each head-by-head: the layout of
        # nn.MultiheadAttention.in_proj_weight.
        self.in_proj = Linear(d_model, 3 * d_model, bias=bias)
        self.out_proj = Linear(d_model, d_model, bias=bias)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise AttentionShapeError(
                f"expected input of shape (batch, length, d_model={self.d_model}), got "
                f"{tuple(x.shape)}"
            )

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, n_heads={self.n_heads}, causal={self.causal}"


# Chapter 2 (Attention), section: 2.3 Multi-head attention > The readable version: a loop over heads
class LoopedMultiHeadAttention(_MultiHeadParameters):
    """Multi-head attention computed one head at a time: slow, but it reads like the
    formula.

    It has the same parameters as :class:`MultiHeadAttention`, so they share state
    dicts. ``forward(x)`` takes (batch, length, d_model) and returns ``(output,
    weights)`` with weights of shape (batch, heads, length, length).
    """

    def _head_projection(self, x: torch.Tensor, block: int, head: int) -> torch.Tensor:
        # block 0, 1, 2 = query, key, value; inside a block, head i owns rows i*d_head
        # ... (i+1)*d_head.
        start = block * self.d_model + head * self.d_head
        rows = slice(start, start + self.d_head)
        y = x @ self.in_proj.weight[rows].T
        return y if self.in_proj.bias is None else y + self.in_proj.bias[rows]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_input(x)
        outputs, weights = [], []
        for head in range(self.n_heads):
            q, k, v = (self._head_projection(x, block, head) for block in range(3))
            head_output, head_weights = scaled_dot_product_attention(
                q, k, v, causal=self.causal
            )
            outputs.append(head_output)
            weights.append(head_weights)
        return self.out_proj(torch.cat(outputs, dim=-1)), torch.stack(weights, dim=1)


# Chapter 2 (Attention), section: 2.3 Multi-head attention > The batched version: heads as a tensor dimension
class MultiHeadAttention(_MultiHeadParameters):
    """Multi-head (self-)attention with the heads as a batch dimension.

    ``forward(x)`` takes (batch, length, d_model) and returns ``(output, weights)``: the
    output has the input's shape, the weights are (batch, heads, length, length). With
    ``causal=True`` (the default, as in a GPT) position t attends to positions 0..t
    only.
    """

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_input(x)
        batch, length, _ = x.shape
        q, k, v = self.in_proj(x).split(self.d_model, dim=-1)
        # (batch, length, d_model) -> (batch, heads, length, d_head): each head becomes
        # a batch entry.
        q, k, v = (
            t.view(batch, length, self.n_heads, self.d_head).transpose(1, 2)
            for t in (q, k, v)
        )
        output, weights = scaled_dot_product_attention(q, k, v, causal=self.causal)
        # Back to (batch, length, d_model), the heads' outputs side by side: the
        # concatenation.
        output = output.transpose(1, 2).reshape(batch, length, self.d_model)
        return self.out_proj(output), weights


# Chapter 2 (Attention), section: Heads that learned something: a tiny model trained on Shakespeare
class AttentionOnlyLanguageModel(nn.Module):
    """The smallest language model with attention: embeddings, one causal multi-head
    attention layer, read-out.

    ``forward(ids, targets=None)`` maps token ids (batch, length) to next-token logits
    (batch, length, vocab_size) and, given targets, also returns the mean cross-entropy
    loss.
    """

    def __init__(
        self, vocab_size: int, context_length: int, d_model: int = 64, n_heads: int = 4
    ):
        super().__init__()
        if vocab_size < 1 or context_length < 1:
            raise AttentionShapeError(
                f"vocab_size and context_length must be positive, got {vocab_size} and "
                f"{context_length}"
            )
        self.vocab_size, self.context_length = vocab_size, context_length
        self.embedding = InputEmbedding(
            vocab_size, d_model, context_length, positional="learned"
        )  # z = E(x) + P(i)
        self.attention = MultiHeadAttention(d_model, n_heads, causal=True)
        self.readout = Linear(d_model, vocab_size)

    def _check_ids(self, ids: torch.Tensor) -> None:
        if ids.dim() != 2:
            raise AttentionShapeError(
                f"token ids must have shape (batch, length), got {tuple(ids.shape)}"
            )
        if ids.shape[1] > self.context_length:
            raise AttentionShapeError(
                f"sequence of {ids.shape[1]} tokens is longer than the context "
                f"({self.context_length})"
            )

    def forward_with_attention(
        self, ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (batch, length, vocab_size) and attention weights (batch, heads,
        length, length)."""
        self._check_ids(ids)
        z = self.embedding(ids)
        attended, weights = self.attention(z)
        return self.readout(z + attended), weights

    def forward(self, ids: torch.Tensor, targets: torch.Tensor | None = None):
        logits, _ = self.forward_with_attention(ids)
        if targets is None:
            return logits, None
        if targets.shape != ids.shape:
            raise AttentionShapeError(
                f"targets {tuple(targets.shape)} must have the shape of ids "
                f"{tuple(ids.shape)}"
            )
        return logits, F.cross_entropy(
            logits.reshape(-1, self.vocab_size), targets.reshape(-1)
        )
