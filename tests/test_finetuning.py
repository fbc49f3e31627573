"""Few-shot fine-tuning (book.applications.finetuning): it learns, and bfloat16 changes only rounding."""
import copy

import pytest
import torch

from book.applications.finetuning import finetune
from book.checkpoint import load_checkpoint
from book.data import load_corpus
from book.model import GPT
from book.paths import ROOT
from book.tasks import TaskError

TEXT = "to be or not to be, that is the question; " * 20


@pytest.fixture
def net_and_data():
    torch.manual_seed(0)
    vocabulary = sorted(set(TEXT))
    data = torch.tensor([vocabulary.index(c) for c in TEXT])
    net = GPT.from_config(vocab_size=len(vocabulary), context_length=16, n_layer=1, n_head=2, d_model=32)
    return net, data


def held_out_loss(net, data):
    with torch.no_grad():
        _, loss = net(data[:-1][None, :16], data[1:][None, :16])
    return loss.item()


def test_finetune_lowers_the_loss(net_and_data):
    net, data = net_and_data
    losses = finetune(net, data, steps=15, lr=2e-2, batch_size=4, block=16)
    assert losses[-1] < losses[0]
    with pytest.raises(TaskError, match="too short"):
        finetune(net, torch.tensor([1, 2, 3]), steps=1, lr=1e-3, block=16)


def test_bfloat16_fine_tuning_of_the_shipped_model_follows_float32():
    """The weights a bfloat16 run ends with compute what the float32 run's do, up to rounding."""
    saved = load_checkpoint(ROOT / "checkpoints" / "shakespeare-char")
    text = load_corpus()["sonnets"].text
    ids = torch.tensor(saved.tokenizer.encode(text))
    train, held_out = ids[:20_000], ids[-2_049:]
    losses = {}
    for bfloat16 in (False, True):
        net = copy.deepcopy(saved.model)
        finetune(net, train, steps=5, lr=3e-4, batch_size=8, block=128, bfloat16=bfloat16)
        with torch.no_grad():
            _, loss = net(held_out[:-1].view(16, 128), held_out[1:].view(16, 128))
        losses[bfloat16] = loss.item()
    assert abs(losses[True] - losses[False]) < 0.02, losses
