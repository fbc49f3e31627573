"""Named model sizes and training budgets for ``python -m book.train --preset NAME`` (Chapter 4 trains with them).

A preset fixes everything but the vocabulary, which comes from the text.
"""
from __future__ import annotations

import dataclasses

from book.training import TrainConfig


@dataclasses.dataclass(frozen=True)
class Preset:
    description: str
    model: dict  # GPTConfig settings, without vocab_size
    training: TrainConfig
    val_fraction: float = 0.1


def _preset(description: str, model: dict, **training) -> Preset:
    training.setdefault("context_length", model["context_length"])
    return Preset(description, model, TrainConfig(**training))


BABY_GPT = dict(n_layer=4, n_head=4, d_model=128, context_length=64, dropout=0.0, bias=False)
# The shipped models (Shakespeare, then Python code) share BABY_GPT's size and this budget.
SHIPPED_TRAINING = dict(batch_size=16, max_lr=2e-3, min_lr=2e-4, warmup_steps=100, weight_decay=0.1,
                        beta1=0.9, beta2=0.99, grad_clip=1.0, eval_interval=500, eval_iters=50)

PRESETS: dict[str, Preset] = {
    # nanoGPT's CPU "baby GPT" budget (README, shakespeare_char with the CPU overrides): the same
    # model, context, batch, 2000 steps, warm-up, cosine schedule and AdamW settings, with the peak
    # learning rate tuned for this short budget (4e-3 instead of 1e-3: a tiny model takes larger
    # steps). Tiny shakespeare: val loss about 1.76, where the reference settings give about 1.9.
    "nanogpt-cpu": _preset(
        "nanoGPT's CPU baby GPT budget, tuned: 4 layers, 4 heads, 128 dims, context 64, batch 12, 2000 steps",
        BABY_GPT, max_steps=2000, batch_size=12, max_lr=4e-3, min_lr=4e-4, warmup_steps=100,
        weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0, eval_interval=250, eval_iters=20),
    # nanoGPT's settings exactly, learning rate 1e-3 cosine to 1e-4 included (its README: 1.88).
    "nanogpt-cpu-reference": _preset(
        "nanoGPT's CPU baby GPT with its own learning rate (1e-3 to 1e-4), for comparison",
        BABY_GPT, max_steps=2000, batch_size=12, max_lr=1e-3, min_lr=1e-4, warmup_steps=100,
        weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0, eval_interval=250, eval_iters=20),
    # The checkpoint shipped in checkpoints/shakespeare-char (a few minutes on two CPU cores).
    "shakespeare-char": _preset(
        "the book's shipped model: 4 layers, 4 heads, 128 dims, context 128, batch 16",
        dict(BABY_GPT, context_length=128), max_steps=2000, **SHIPPED_TRAINING),
    # The larger model shipped in checkpoints/shakespeare-large, for generation worth reading: four
    # times the parameters, every passage read about eight times (epochs), bfloat16 matrix
    # products. 66 minutes on two idle CPU cores
    # (checkpoints/shakespeare-large/timing-rerun.json).
    "shakespeare-large": _preset(
        "the book's larger Shakespeare model: 4 layers, 4 heads, 256 dims, context 256, batch 16, "
        "9000 steps (66 minutes on 2 idle CPU cores)",
        dict(BABY_GPT, d_model=256, context_length=256), max_steps=9000,
        **dict(SHIPPED_TRAINING, warmup_steps=200, eval_interval=1000, eval_iters=50),
        sampling="epochs", compute_dtype="bfloat16"),
    # The code model shipped in checkpoints/stdlib-code: the same size, a longer context (code's
    # structure spans more characters than a line of verse) and more steps.
    "stdlib-code": _preset(
        "the book's code model: 4 layers, 4 heads, 128 dims, context 256, batch 16, 3000 steps",
        dict(BABY_GPT, context_length=256), max_steps=3000, **SHIPPED_TRAINING),
    # For tests and quick experiments: trains in a second.
    "tiny": _preset(
        "a toy model for tests: 1 layer, 2 heads, 16 dims, context 16",
        dict(n_layer=1, n_head=2, d_model=16, context_length=16, dropout=0.0, bias=True),
        max_steps=20, batch_size=4, max_lr=1e-2, min_lr=1e-3, warmup_steps=2,
        weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0, eval_interval=10, eval_iters=2),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None
