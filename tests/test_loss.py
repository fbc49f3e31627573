"""Tests for book.loss: the stable log-softmax, cross-entropy against PyTorch, units, the bigram model."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from book.loss import BigramModel, LossInputError, cross_entropy, log_softmax, nats_to_bits, perplexity


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


def test_log_softmax_matches_pytorch_and_is_stable():
    logits = 10 * torch.randn(3, 4, 17)
    assert_close(log_softmax(logits), F.log_softmax(logits, dim=-1))
    assert_close(log_softmax(logits, dim=1), F.log_softmax(logits, dim=1))
    extreme = torch.tensor([1000.0, 0.0, -1000.0])
    result = log_softmax(extreme)
    assert torch.isfinite(result).all()
    assert_close(result, torch.tensor([0.0, -1000.0, -2000.0]))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_matches_pytorch(reduction):
    logits, targets = torch.randn(5, 6, 13), torch.randint(0, 13, (5, 6))
    expected = F.cross_entropy(logits.reshape(-1, 13), targets.reshape(-1), reduction=reduction)
    assert_close(cross_entropy(logits, targets, reduction).reshape(-1), expected.reshape(-1))


def test_cross_entropy_gradient_is_softmax_minus_one_hot():
    logits = torch.randn(8, 5, requires_grad=True)
    targets = torch.randint(0, 5, (8,))
    cross_entropy(logits, targets).backward()
    expected = (torch.softmax(logits.detach(), -1) - F.one_hot(targets, 5)) / 8
    assert_close(logits.grad, expected)


def test_uniform_logits_give_log_vocab_size():
    loss = cross_entropy(torch.zeros(10, 84), torch.arange(10))
    assert loss.item() == pytest.approx(math.log(84))


def test_cross_entropy_errors():
    with pytest.raises(LossInputError, match="out of range for 5 classes"):
        cross_entropy(torch.zeros(2, 5), torch.tensor([0, 5]))
    with pytest.raises(LossInputError, match="out of range"):
        cross_entropy(torch.zeros(2, 5), torch.tensor([-1, 0]))
    with pytest.raises(LossInputError, match="need targets of shape"):
        cross_entropy(torch.zeros(2, 3, 5), torch.zeros(2, dtype=torch.long))
    with pytest.raises(LossInputError, match="integer"):
        cross_entropy(torch.zeros(2, 5), torch.zeros(2))
    with pytest.raises(LossInputError, match="reduction"):
        cross_entropy(torch.zeros(2, 5), torch.zeros(2, dtype=torch.long), reduction="max")


def test_units():
    assert nats_to_bits(math.log(2)) == pytest.approx(1.0)
    assert perplexity(math.log(84)) == pytest.approx(84)
    assert 2 ** nats_to_bits(1.7) == pytest.approx(perplexity(1.7))


def test_bigram_counts_and_probabilities():
    ids = torch.tensor([0, 1, 0, 1, 2, 0])
    model = BigramModel.fit(ids, vocab_size=3, smoothing=0.0)
    assert model.counts.tolist() == [[0, 2, 0], [1, 0, 1], [1, 0, 0]]
    probs = model.log_probs().exp()
    assert_close(probs.sum(1), torch.ones(3, dtype=torch.float64))
    assert probs[1, 0].item() == pytest.approx(0.5)
    expected = -(math.log(1.0) * 2 + math.log(0.5) * 2 + math.log(1.0)) / 5
    assert model.loss(ids) == pytest.approx(expected)


def test_bigram_smoothing():
    ids = torch.tensor([0, 1, 0, 1])
    unseen = torch.tensor([1, 1])
    assert BigramModel.fit(ids, 2, smoothing=0.0).loss(unseen) == math.inf
    smoothed = BigramModel.fit(ids, 2, smoothing=1.0)
    assert smoothed.loss(unseen) == pytest.approx(-math.log(1 / 3))  # (n_11 + 1) / (n_1 + 1 * 2) = 1 / 3


def test_bigram_closed_form_is_the_training_optimum():
    ids = torch.randint(0, 6, (500,))
    closed = BigramModel.fit(ids, 6, smoothing=0.0)
    for alpha in (0.1, 1.0):
        assert closed.loss(ids) < BigramModel(closed.counts, alpha).loss(ids)
    table = closed.log_probs().float()
    assert_close(cross_entropy(table[ids[:-1]], ids[1:]).item(), closed.loss(ids), rtol=1e-5, atol=1e-5)


def test_bigram_errors():
    with pytest.raises(LossInputError, match="square"):
        BigramModel(torch.zeros(3, 4))
    with pytest.raises(LossInputError, match="smoothing"):
        BigramModel(torch.zeros(3, 3), smoothing=-1)
    with pytest.raises(LossInputError, match="0..2"):
        BigramModel.fit(torch.tensor([0, 3]), 3)
    with pytest.raises(LossInputError, match="1-D"):
        BigramModel.fit(torch.zeros(2, 2, dtype=torch.long), 3)
