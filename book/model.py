"""The GPT language model, whole, in one file, derived step by step in Chapter 4 (The full Transformer).

A decoder-only Transformer: token and position embeddings, a stack of pre-LayerNorm
blocks (causal self-attention, then an MLP, each added back to a residual stream),
a final LayerNorm and an output projection that shares its weights with the token
embedding. Chapter 4 builds it step by step and checks it against this file.

    >>> config = GPTConfig(vocab_size=65, context_length=64, n_layer=4, n_head=4, d_model=128)
    >>> model = GPT(config)
    >>> logits, loss = model(idx, targets)          # idx, targets: (batch, time) token ids

For fast generation, ``model(idx, cache=cache)`` reuses the keys and values of earlier
positions (see :class:`KVCache`); ``model.attention_maps(idx)`` returns every layer's and
head's attention weights for one sequence, to look at.
"""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn
from torch.nn import functional as F

from book.attention import causal_mask
from book.errors import BookError
from book.settings import Settings


class ModelError(BookError):
    """The model cannot be built or run as asked (a bad config, an input that does not fit)."""


ACTIVATIONS = {"gelu": "none", "gelu_new": "tanh"}  # name -> nn.GELU's ``approximate``


@dataclasses.dataclass(frozen=True)
class GPTConfig(Settings):
    """What the model is: its vocabulary, context, depth, heads and width."""

    unknown_error = ModelError
    kind = "model settings"

    vocab_size: int
    context_length: int = 256  # the longest sequence the model reads (its position table's size)
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128  # width of the residual stream; each head gets d_model // n_head
    dropout: float = 0.0
    bias: bool = True  # biases in the linear layers and LayerNorms
    activation: str = "gelu"  # the MLP's: exact GELU, or "gelu_new", GPT-2's tanh approximation

    def __post_init__(self):
        for name in ("vocab_size", "context_length", "n_layer", "n_head", "d_model"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ModelError(f"{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_head:
            raise ModelError(f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})")
        if not 0 <= self.dropout < 1:
            raise ModelError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.activation not in ACTIVATIONS:
            raise ModelError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")

    @property
    def head_size(self) -> int:
        return self.d_model // self.n_head


class KVCache:
    """The keys and values every layer has computed so far, so that each new token costs one position.

    Without a cache, generating token ``t`` re-runs the model over all ``t`` tokens before it.
    The keys and values of those tokens never change (attention is causal), so we keep them:
    one (batch, heads, context_length, head_size) buffer per layer, filled from the left.
    """

    def __init__(self, config: GPTConfig, batch_size: int, *, device=None, dtype=torch.float32):
        shape = (batch_size, config.n_head, config.context_length, config.head_size)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.length = 0  # how many positions are filled (the same in every layer)
        self.capacity = config.context_length

    def reset(self) -> None:
        self.length = 0


class CausalSelfAttention(nn.Module):
    """Multi-head scaled dot-product attention in which a position sees only itself and the past."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.head_size = config.head_size
        # Queries, keys and values of all heads come from one matrix multiplication.
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=config.bias)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=config.bias)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def split_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, 3 * d_model) -> three tensors of shape (B, n_head, T, head_size)."""
        B, T, _ = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, self.head_size).permute(2, 0, 3, 1, 4)
        return q, k, v

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.split_heads(x)
        start = 0
        if cache is not None:
            start = cache.length
            cache.keys[layer][:, :, start:start + T] = k
            cache.values[layer][:, :, start:start + T] = v
            k = cache.keys[layer][:, :, :start + T]
            v = cache.values[layer][:, :, :start + T]
        if start == 0:
            mask, is_causal = None, True  # the usual case: queries and keys are the same positions
        elif T == 1:
            mask, is_causal = None, False  # one new token may look at everything before it
        else:
            # New queries at positions start..start+T-1 against keys at 0..start+T-1: the last
            # T rows of the square mask.
            mask, is_causal = causal_mask(start + T, device=x.device)[start:][None, None], False
        dropout = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, dropout_p=dropout)
        y = y.transpose(1, 2).reshape(B, T, C)  # put the heads side by side again
        return self.resid_dropout(self.proj(y))

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The softmax weights, (B, n_head, T, T), computed explicitly (the fast path never forms them)."""
        T = x.shape[1]
        q, k, _ = self.split_heads(x)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_size)
        scores = scores.masked_fill(~causal_mask(T, device=x.device), float("-inf"))
        return scores.softmax(dim=-1)


class MLP(nn.Module):
    """Position-wise feed-forward network: widen four times, GELU, project back."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(config.d_model, 4 * config.d_model, bias=config.bias)
        self.gelu = nn.GELU(approximate=ACTIVATIONS[config.activation])
        self.proj = nn.Linear(4 * config.d_model, config.d_model, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(self.gelu(self.fc(x))))


class Block(nn.Module):
    """One Transformer layer, pre-LayerNorm: x + attention(norm(x)), then x + mlp(norm(x)).

    Normalising the input of each branch (not the sum, as the original Transformer did)
    leaves the residual stream a clean sum of every layer's contribution, which keeps
    gradients well-behaved in deep stacks without a careful warm-up.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.d_model, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.d_model, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    """The language model: token ids in, next-token logits (and optionally the loss) out."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.position_embedding = nn.Embedding(config.context_length, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model, bias=config.bias)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        # Weight tying: the output layer scores a hidden state against every token's embedding.
        # Reading and writing a token then use one vector, and the model has V x d fewer parameters.
        self.lm_head.weight = self.token_embedding.weight
        self.apply(self._init_weights)
        # Each block adds two projections into the residual stream; shrinking them by
        # sqrt(2 * n_layer) keeps the stream's variance at initialisation independent of depth
        # (the GPT-2 paper's scaled residual initialisation).
        for name, param in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @classmethod
    def from_config(cls, **settings) -> "GPT":
        """Build a model from keyword settings, e.g. ``GPT.from_config(vocab_size=65, n_layer=2)``."""
        return cls(GPTConfig(**settings))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self, include_positions: bool = True) -> int:
        """Number of parameters, the tied embedding counted once."""
        count = sum(p.numel() for p in self.parameters())  # parameters() yields a shared tensor once
        if not include_positions:
            count -= self.position_embedding.weight.numel()
        return count

    def check_input(self, idx: torch.Tensor, start: int = 0) -> None:
        if idx.dim() != 2:
            raise ModelError(f"token ids must have shape (batch, time), got {tuple(idx.shape)}")
        if idx.dtype not in (torch.int64, torch.int32):
            raise ModelError(f"token ids must be integers, got {idx.dtype}")
        T = idx.shape[1]
        if T == 0:
            raise ModelError("the sequence is empty")
        if start + T > self.config.context_length:
            where = f" after {start} cached tokens" if start else ""
            raise ModelError(f"sequence of {T} tokens{where} is longer than the context ({self.config.context_length})")
        if idx.min() < 0 or idx.max() >= self.config.vocab_size:
            raise ModelError(f"token id {int(idx.max())} is outside the vocabulary (0..{self.config.vocab_size - 1})")

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *,
                cache: KVCache | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits of shape (B, T, vocab_size) and, given ``targets`` (B, T), the mean cross-entropy.

        With a ``cache``, ``idx`` holds only the new tokens; they take the positions after
        the ``cache.length`` already cached, and the cache grows by T.
        """
        start = cache.length if cache is not None else 0
        self.check_input(idx, start)
        positions = torch.arange(start, start + idx.shape[1], device=idx.device)
        x = self.drop(self.token_embedding(idx) + self.position_embedding(positions))
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer)
        if cache is not None:
            cache.length += idx.shape[1]
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    @torch.no_grad()
    def attention_maps(self, idx: torch.Tensor) -> torch.Tensor:
        """Attention weights of every layer and head for one sequence: (n_layer, n_head, T, T).

        ``idx`` is a 1-D tensor of token ids (or a batch of one). Row ``i`` of a map is how
        token ``i`` spreads its attention over tokens ``0..i``; each row sums to one.
        """
        if idx.dim() == 1:
            idx = idx[None]
        if idx.shape[0] != 1:
            raise ModelError(f"attention_maps takes one sequence, got a batch of {idx.shape[0]}")
        self.check_input(idx)
        was_training = self.training
        self.eval()
        positions = torch.arange(idx.shape[1], device=idx.device)
        x = self.token_embedding(idx) + self.position_embedding(positions)
        maps = []
        for block in self.blocks:
            maps.append(block.attn.attention_weights(block.ln_1(x))[0])
            x = block(x)
        self.train(was_training)
        return torch.stack(maps)

    def new_cache(self, batch_size: int = 1) -> KVCache:
        weight = self.token_embedding.weight
        return KVCache(self.config, batch_size, device=weight.device, dtype=weight.dtype)


def count_parameters(config: GPTConfig) -> int:
    """The parameter count of ``GPT(config)`` by formula (tied embedding counted once)."""
    d, V, T, L = config.d_model, config.vocab_size, config.context_length, config.n_layer
    b = 1 if config.bias else 0
    layer_norm = d + b * d
    attention = d * 3 * d + b * 3 * d + d * d + b * d
    mlp = d * 4 * d + b * 4 * d + 4 * d * d + b * d
    return V * d + T * d + L * (2 * layer_norm + attention + mlp) + layer_norm
