"""Few-shot fine-tuning: a few AdamW steps on a small text, and that text built from shuffled pieces.

Derived in Chapter 7 (Applications), where each application compares a prompt, a fine-tuned
shipped model and the same model trained from scratch on the same few examples.
"""
from __future__ import annotations

import random
from collections.abc import Callable

import torch

from book.model import GPT
from book.tasks import TaskError


def finetune(model: GPT, data: torch.Tensor, *, steps: int, lr: float, batch_size: int = 16, block: int = 48,
             seed: int = 0, bfloat16: bool = False, after_step: Callable[[int], None] | None = None) -> list[float]:
    """A few AdamW steps of next-character prediction on random windows of the token ids ``data`` (in place).

    With ``bfloat16``, each forward pass runs under CPU autocast (the weights and AdamW stay in float32),
    in a region that closes before AdamW changes the weights, as :func:`book.training.train` does.
    ``after_step(n)``, if given, is called after the ``n``-th step with the model in eval mode (to
    evaluate it on validation data and keep the best weights, for example).
    """
    if len(data) <= block + 1:
        raise TaskError(f"text of {len(data)} tokens is too short for windows of {block}")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for step in range(1, steps + 1):
        starts = torch.randint(0, len(data) - block - 1, (batch_size,), generator=generator)
        x = torch.stack([data[s:s + block] for s in starts])
        y = torch.stack([data[s + 1:s + block + 1] for s in starts])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
            _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if after_step is not None:
            model.eval()
            after_step(step)
            model.train()
    model.eval()
    return losses


def shuffled_text_ids(tokenizer, pieces: list[str], repeats: int, seed: int) -> torch.Tensor:
    """The pieces of text in ``repeats`` shuffled orders, concatenated and encoded.

    Shuffling keeps a few-shot fine-tuning run from learning the order of its examples.
    """
    rng = random.Random(seed)
    text = []
    for _ in range(repeats):
        order = list(pieces)
        rng.shuffle(order)
        text += order
    return torch.tensor(tokenizer.encode("".join(text)), dtype=torch.long)
