"""The counted n-gram baseline and the generation measures of Chapter 8, on small hand-made inputs."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from book.applications import generation
from book.applications.generation import POET_CHECKPOINT
from book.applications.results import read_results
from book.checkpoint import read_metadata
from book.model import GPT, GPTConfig
from book.ngram import CharNgram, NgramError, choose_order


def test_ngram_probabilities_sum_to_one_after_any_context():
    rng = np.random.default_rng(0)
    text = rng.integers(0, 5, 2000)
    text[::7] = 2
    model = CharNgram(text, 4, 5)
    for context in ([2, 3, 1], [4, 4, 4], [0, 1, 2], [3, 3, 3]):
        total = sum(math.exp(model.log_probs(np.r_[context, c])[-1]) for c in range(5))
        assert total == pytest.approx(1.0)


def test_ngram_of_order_one_is_the_witten_bell_unigram():
    text = np.array([0, 0, 0, 1, 1, 2])  # 3 symbols seen of 4
    model = CharNgram(text, 1, 4)
    expected = [(3 + 3 / 4) / 9, (2 + 3 / 4) / 9, (1 + 3 / 4) / 9, (0 + 3 / 4) / 9]
    assert np.exp(model.log_probs([0, 1, 2, 3])) == pytest.approx(expected)


def test_a_longer_context_learns_a_deterministic_pattern():
    text = np.tile([0, 1, 2, 3], 200)  # each symbol fixes the next
    unigram, bigram = (CharNgram(text, order, 4) for order in (1, 2))
    assert -bigram.log_probs(text[:50]).mean() < 0.05 < math.log(4) - 0.01 < -unigram.log_probs(text[:50]).mean()
    losses = choose_order(text[:600], text[600:], 4, orders=[1, 2, 3])
    assert set(losses) == {1, 2, 3} and losses[2] < losses[1]


@pytest.mark.parametrize("ids, order, vocab, message", [
    ([0, 1], 0, 2, "order must be at least 1"),
    ([0, 1], 3, 2, "too short for order 3"),
    ([0, 5], 1, 2, r"token ids must lie in 0..1"),
    ([0, 1], 40, 84, "overflows"),
])
def test_ngram_refuses_what_it_cannot_count(ids, order, vocab, message):
    with pytest.raises(NgramError, match=message):
        CharNgram(ids, order, vocab)


def test_per_character_losses_are_the_losses_of_the_scored_positions():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=7, context_length=8, n_layer=1, n_head=2, d_model=16)).eval()
    ids = torch.randint(0, 7, (60,))
    losses = generation.per_character_losses(model, ids, stride=4, batch_size=3)
    positions = generation.scored_positions(len(ids), 8, stride=4)
    assert len(losses) == len(positions) and len(set(positions.tolist())) == len(positions)
    for loss, target in zip(losses[::5], positions[::5]):  # each against a direct computation
        start = (target - (8 - 4 + 1)) // 4 * 4  # the window that scores this target
        logits, _ = model(ids[start:target][None])
        assert loss == pytest.approx(F.cross_entropy(logits[0, -1:], ids[target:target + 1]).item(), abs=1e-5)
    assert positions.min() == 8 - 4 + 1  # every scored target has at least context - stride characters before it


def test_block_interval_counts_blocks_not_characters():
    values = np.r_[np.zeros(256), np.ones(256), np.zeros(256), np.ones(256)]
    mean, half, blocks = generation.block_interval(values)
    assert (mean, blocks) == (0.5, 4)
    assert half == pytest.approx(1.96 * np.std([0, 1, 0, 1], ddof=1) / 2)


def test_verse_summary_counts_metre_and_rhyme():
    sample = generation.VerseSample([], ["Shall I compare thee to a summer's day?", "go away",
                                         "Thou art more lovely and more temperate:", "I pray"])
    assert sample.in_metre == 2
    assert sample.rhyming_pairs == (1, 2)  # "away"/"pray" rhyme, "day"/"temperate" do not
    summary = generation.verse_summary([sample])
    assert (summary["lines"], summary["in_metre"], summary["metre_share"]) == (4, 2, 0.5)


def test_stanzas_and_sonnets_are_cut_at_their_boundaries():
    text = "a\nb\nc\n\nd\ne\nf\ng\n\nh"
    assert generation.stanzas(text, 3) == [["a", "b", "c"], ["d", "e", "f"]]
    sonnet = "\n".join(f"line {i}" for i in range(14))
    assert generation.held_out_sonnets(f"end of one\n\n  XII\n\n{sonnet}\n\n  XIII\n\nshort") == \
        [[f"line {i}" for i in range(14)]]


def test_the_shipped_generation_results_are_consistent():
    payload = read_results("generation")
    by_order = payload["ngram"]["dev_loss_by_order"]
    assert str(payload["ngram"]["order"]) == min(by_order, key=by_order.get)  # chosen on the development text
    for model in ("large", "poet"):  # each model's temperature: the best metre on Lucrece's stanzas
        chosen = payload["temperature"][model]["chosen"]
        validation = payload["temperature"][model]["validation"]
        assert validation[str(chosen)]["metre_share"] == max(v["metre_share"] for v in validation.values())
    curve = payload["finetuning"]["validation_curve"]  # the verse model's step: the lowest validation loss
    best = curve["step"][curve["validation_loss"].index(min(curve["validation_loss"]))]
    assert payload["finetuning"]["chosen_step"] == best
    for row in payload["results"]:
        if row["metric"].startswith("share of lines"):
            key = "poet" if "fine-tuned" in row["method"] else "large" if "3.2M" in row["method"] else None
            if key:
                summary = payload["verse"][key]
                assert row["value"] == pytest.approx(summary["in_metre"] / summary["lines"], abs=1e-6)
    poet = read_metadata(POET_CHECKPOINT)
    assert poet["metadata"]["steps"] == payload["finetuning"]["chosen_step"]
