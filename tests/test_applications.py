"""Scoring, memorisation, bias, compute and verse form (Chapters 8 and 9), on tiny models and texts."""
import pytest
import torch

from book import applications as apps
from book.data import load_corpus
from book.model import GPT, GPTConfig
from book.tokenize import CharTokenizer

TEXT = "He is a king.\nShe is fair.\nHe is not here.\nShe is a queen, she is fair: one: un\n" * 20


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    tokenizer = CharTokenizer.from_text(TEXT + "abcdefghijklmnopqrstuvwxyz-")
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, context_length=64, n_layer=1, n_head=2, d_model=16)).eval()
    return model, tokenizer


def test_continuation_logprobs_match_a_direct_computation(tiny):
    model, tokenizer = tiny
    scores = apps.continuation_logprobs(model, tokenizer, ["He is", "She is a"], [" fair", " king"])
    for score, (prompt, cont) in zip(scores, [("He is", " fair"), ("She is a", " king")]):
        ids = torch.tensor([tokenizer.encode(prompt + cont)])
        logp = model(ids)[0].log_softmax(-1)[0]
        expected = sum(logp[len(prompt) - 1 + i, ids[0, len(prompt) + i]] for i in range(len(cont)))
        torch.testing.assert_close(score, expected)


def test_continuation_logprobs_errors(tiny):
    model, tokenizer = tiny
    with pytest.raises(apps.TaskError, match="2 prompts but 1"):
        apps.continuation_logprobs(model, tokenizer, ["a", "b"], ["c"])
    with pytest.raises(apps.TaskError, match="empty continuation"):
        apps.continuation_logprobs(model, tokenizer, ["a"], [""])
    with pytest.raises(apps.TaskError, match="does not fit the context"):
        apps.continuation_logprobs(model, tokenizer, ["a"], ["b" * 64])


def test_sliding_window_scores_every_character_with_the_context_before_it(tiny):
    model, tokenizer = tiny
    context = model.config.context_length
    prompt, continuation = TEXT[:150], TEXT[150:250]  # together far longer than the context (64)
    stride = 16
    score = apps.continuation_logprobs(model, tokenizer, [prompt], [continuation], stride=stride)[0]
    ids = tokenizer.encode(prompt + continuation)
    expected = 0.0
    for start in range(len(prompt), len(ids), stride):
        stop = min(start + stride, len(ids))
        window = torch.tensor([ids[max(0, stop - context):stop]])
        logp = model(window)[0].log_softmax(-1)[0]
        offset = max(0, stop - context)
        expected += sum(logp[p - 1 - offset, ids[p]] for p in range(start, stop))
        assert start - 1 - offset >= context - stride - 1  # each character sees that much before it
    torch.testing.assert_close(score, torch.as_tensor(expected, dtype=score.dtype))
    # a stride as long as the continuation, when it fits, is the plain scorer
    short = apps.continuation_logprobs(model, tokenizer, ["He is", "She is a"], [" fair", " king"], stride=5)
    plain = apps.continuation_logprobs(model, tokenizer, ["He is", "She is a"], [" fair", " king"])
    torch.testing.assert_close(short, plain)
    with pytest.raises(apps.TaskError, match="stride must be"):
        apps.continuation_logprobs(model, tokenizer, [prompt], [continuation], stride=0)
    with pytest.raises(apps.TaskError, match="stride must be"):
        apps.continuation_logprobs(model, tokenizer, [prompt], [continuation], stride=context + 1)


def test_memorisation_shortcut_equals_greedy_generation(tiny):
    model, tokenizer = tiny
    passages = apps.sample_passages(TEXT, 6, 16, 12, seed=3)
    generated = apps.greedy_continuations(model, tokenizer, [p for p, _ in passages], 12)
    by_generation = [apps.common_prefix_length(g, t) for g, (_, t) in zip(generated, passages)]
    shortcut = apps.memorisation(model, tokenizer, TEXT, n=6, prefix_chars=16, continuation_chars=12, seed=3)
    assert shortcut == by_generation


def test_exact_match_rates():
    assert apps.exact_match_rates([0, 4, 8, 16]) == {1: 0.75, 4: 0.75, 8: 0.5, 16: 0.25, 32: 0.0}


def test_common_prefix_length():
    assert apps.common_prefix_length("abcd", "abxd") == 2
    assert apps.common_prefix_length("", "a") == 0
    assert apps.common_prefix_length("same", "same") == 4


def test_greedy_continuations_need_equal_lengths(tiny):
    model, tokenizer = tiny
    with pytest.raises(apps.TaskError, match="same number of tokens"):
        apps.greedy_continuations(model, tokenizer, ["He", "She"], 3)


def test_phrase_counts_and_probe(tiny):
    counts = apps.phrase_counts(TEXT)
    assert counts["he is", "a"] == 20 and counts["he is", "a king"] == 20
    assert counts["she is", "fair"] == 40  # "She is fair" and "she is fair", case ignored
    model, tokenizer = tiny
    rows = apps.bias_probe(model, tokenizer, TEXT, ["fair", "a king"])
    assert [r.corpus_he for r in rows] == [0, 20] and [r.corpus_she for r in rows] == [40, 0]
    assert rows[0].corpus_log_ratio < 0 < rows[1].corpus_log_ratio


def test_pearson():
    assert apps.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert apps.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_compute_costs_add_up():
    model = GPT(GPTConfig(vocab_size=65, context_length=32, n_layer=2, n_head=2, d_model=16, bias=False))
    costs = apps.compute_costs(model)
    assert costs["parameters"] == model.num_parameters()
    assert costs["non_embedding"] == 2 * (12 * 16 * 16 + 2 * 16) + 16
    assert costs["forward_total"] == costs["forward_2N"] + costs["attention"] + costs["output_layer"]


def test_exact_match_and_similarity():
    assert apps.exact_match(["un", "deux "], ["un", "deux"]) == 1.0
    assert apps.similarity(["abcd"], ["abcd"]) == 1.0 and apps.similarity(["abcd"], ["wxyz"]) == 0.0
    with pytest.raises(apps.TaskError):
        apps.exact_match(["a"], [])


def test_syllables_and_form():
    assert apps.syllables("Shall I compare thee to a summer's day?") == 10
    assert apps.syllables("hour") == 1 and apps.syllables("") == 0
    quatrain = ["the cat sat on the mat", "a dog ran in the fog", "a bat sat on a hat", "a log in the bog"]
    assert apps.form_metrics(quatrain)["rhyme_rate"] == 1.0
    assert apps.rhymes("day", "way") and not apps.rhymes("day", "day")
    with pytest.raises(apps.TaskError, match="four"):
        apps.form_metrics(["one line"])


def test_sonnet_reference_is_mostly_pentameter():
    sonnets = load_corpus()["sonnets"].text
    sonnet = sonnets[sonnets.index("\nXVIII\n") + 1:sonnets.index("\nXIX\n")].strip().split("\n")[1:]
    form = apps.form_metrics(sonnet)
    assert form["lines"] == 14 and form["pentameter_share"] >= 0.8


def test_sonnets_are_split_at_numerals():
    poems = apps.sonnets(load_corpus()["sonnets"].text)
    assert len(poems) == 154 and poems[17][0].startswith("Shall I compare thee")
    assert sum(len(p) == 14 for p in poems) >= 150
    assert apps.sonnets("title\n\nI\n\na\nb\n\nII\n\nc\n") == [["a", "b"], ["c"]]
    form = apps.form_metrics(poems[17])
    assert 35 < form["mean_characters"] < 50


