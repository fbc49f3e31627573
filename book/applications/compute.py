"""Compute: parameters and forward FLOPs per token, by formula (Chapter 9)."""
from __future__ import annotations

from book.model import GPT


def compute_costs(model: GPT) -> dict[str, float]:
    """Parameter counts and forward FLOPs per token (Kaplan et al. 2020's approximation).

    Kaplan et al. count N, the parameters outside the embeddings, and estimate the forward
    pass at 2N FLOPs per token (a multiply and an add per weight) plus 2 n_layer n_ctx d_model
    for the attention scores; training (forward and backward) costs about three times that.
    """
    c = model.config
    total = model.num_parameters()
    embeddings = model.token_embedding.weight.numel() + model.position_embedding.weight.numel()
    n = total - embeddings
    attention = 2 * c.n_layer * c.context_length * c.d_model
    head = 2 * c.d_model * c.vocab_size  # the output layer: tied to the embedding, but still computed
    return {"parameters": total, "non_embedding": n, "forward_2N": 2 * n, "attention": attention,
            "output_layer": head, "forward_total": 2 * n + attention + head,
            "train_per_token": 3 * (2 * n + attention + head)}
