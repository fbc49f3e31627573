"""Task builders and metrics of Chapter 7, on tiny models and hand-made texts."""
import json
import pathlib

import pytest
import torch

from book import applications as apps
from book.data import load_corpus
from book.generate import generate
from book.model import GPT, GPTConfig
from book.tokenize import CharTokenizer

ROOT = pathlib.Path(__file__).resolve().parent.parent
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


def test_number_words():
    assert apps.number_words(1) == ("one", "un")
    assert apps.number_words(17) == ("seventeen", "dix-sept")
    assert apps.number_words(21) == ("twenty-one", "vingt et un")
    assert apps.number_words(44) == ("forty-four", "quarante-quatre")
    assert apps.number_words(60) == ("sixty", "soixante")
    with pytest.raises(apps.TaskError, match="1 to 69"):
        apps.number_words(70)
    support, query = apps.translation_split()
    assert not set(support) & set(query) and sorted(support + query) == list(range(1, 70))
    assert all(n % 10 and n > 20 for n in query) and len(query) == 30


def test_translate_decodes_each_prompt_like_generate(tiny):
    model, tokenizer = tiny
    answers = apps.translate(model, tokenizer, [1, 21], shots=[2], max_chars=6)
    assert len(answers) == 2 and all("\n" not in a for a in answers)
    # Left padding with line breaks is what makes the batch; one prompt alone gives the same text.
    header = apps.translation_line(2)
    prompt = header + "one: "
    padded = "\n" * (len(header + "twenty-one: ") - len(prompt)) + prompt
    alone = generate(model, torch.tensor(tokenizer.encode(padded)), max_new_tokens=6, do_sample=False)
    assert tokenizer.decode(alone[len(padded):].tolist()).split("\n")[0] == answers[0]


def test_exact_match_and_similarity():
    assert apps.exact_match(["un", "deux "], ["un", "deux"]) == 1.0
    assert apps.similarity(["abcd"], ["abcd"]) == 1.0 and apps.similarity(["abcd"], ["wxyz"]) == 0.0
    with pytest.raises(apps.TaskError):
        apps.exact_match(["a"], [])


def test_finetune_lowers_the_loss(tiny):
    model, tokenizer = tiny
    import copy
    net = copy.deepcopy(model)
    losses = apps.finetune(net, torch.tensor(tokenizer.encode(TEXT)), steps=15, lr=2e-2, batch_size=4, block=16)
    assert losses[-1] < losses[0]
    with pytest.raises(apps.TaskError, match="too short"):
        apps.finetune(net, torch.tensor([1, 2, 3]), steps=1, lr=1e-3, block=16)


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


def test_speaker_questions_are_held_out_and_answerable():
    work = load_corpus()["macbeth"]
    questions = apps.speaker_questions(work, n=10)
    tail = apps.heldout_part(work).text
    for q in questions:
        assert q.answer in q.candidates and q.line in tail
    assert questions == apps.speaker_questions(work, n=10)  # deterministic
    with pytest.raises(apps.TaskError, match="held-out speeches"):
        apps.speaker_questions(work, n=10_000)


def test_shipped_translation_results_are_consistent():
    results = json.loads((ROOT / "checkpoints/applications/translation.json").read_text())
    support, query = apps.translation_split(seed=results["seed"])
    assert results["support"] == support and results["query"] == query
    for row in results["rows"].values():
        references = [apps.number_words(n)[1] for n in query]
        assert row["exact_match"] == apps.exact_match(row["predictions"], references)


def test_keyword_label_follows_the_stated_rule():
    assert apps.keyword_label("O happy dagger!") == "happy"
    assert apps.keyword_label("A plague o' both your houses!") == "sad"
    assert apps.keyword_label("My love, my woe") is None  # words from both lists
    assert apps.keyword_label("Lovers and madmen") is None  # whole words only
    assert not set(apps.POSITIVE_WORDS) & set(apps.NEGATIVE_WORDS)


def test_sentiment_set_is_balanced_held_out_and_deterministic():
    corpus = load_corpus()
    items = apps.sentiment_set(corpus, n_per_label=10)
    assert [e.label for e in items] == ["happy", "sad"] * 10
    for e in items:
        assert apps.keyword_label(e.text) == e.label and 25 <= len(e.text) <= 70
        assert e.text in apps.heldout_part(corpus[e.work]).text
    assert items == apps.sentiment_set(corpus, n_per_label=10)
    with pytest.raises(apps.TaskError, match=r"only \d+ (happy|sad) lines, 100000 asked"):
        apps.sentiment_set(corpus, n_per_label=100_000)


class Scripted(torch.nn.Module):
    """A stand-in language model whose choices are known without running it.

    Every next token is equally likely (so a shorter continuation is more likely), except that
    once ``marker`` has appeared in a row, ``avoided`` gets a logit of -10 at every later position.
    """

    def __init__(self, vocab_size, marker=None, avoided=None, context_length=64):
        super().__init__()
        self.config = GPTConfig(vocab_size=vocab_size, context_length=context_length, n_layer=1, n_head=1, d_model=4)
        self.marker, self.avoided = marker, avoided

    def forward(self, idx, targets=None):
        logits = torch.zeros(*idx.shape, self.config.vocab_size)
        if self.marker is not None:
            seen = (idx == self.marker).cumsum(dim=1) > 0
            logits[..., self.avoided] = torch.where(seen, -10.0, 0.0)
        return logits, None


def test_classify_sentiment_picks_the_likelier_label():
    tokenizer = CharTokenizer.from_text(TEXT + "abcdefghijklmnopqrstuvwxyz-TK")
    lines = ["He is a King.", "She is fair.", "Kind words."]
    # Uniform next characters: "sad line." (9 characters) beats "happy line." (11) for every line.
    uniform = Scripted(tokenizer.vocab_size)
    assert apps.classify_sentiment(uniform, tokenizer, lines) == ["sad", "sad", "sad"]
    # After a "K", an "s" is unlikely: "sad line." loses on exactly the lines holding a "K".
    scripted = Scripted(tokenizer.vocab_size, marker=tokenizer.encode("K")[0], avoided=tokenizer.encode("s")[0])
    assert apps.classify_sentiment(scripted, tokenizer, lines) == ["happy", "sad", "happy"]
    item = apps.LabelledLine("He is a king.", "happy", "x")
    text = tokenizer.decode(apps.sentiment_ids(tokenizer, [item], repeats=2).tolist())
    assert text == ("He is a king.\nThat was a happy line.\n\n") * 2


def test_reply_questions_hold_the_true_next_speech():
    work = load_corpus()["hamlet"]
    speeches = apps.heldout_part(work).speeches()
    openings = [s.text[:40] for s in speeches]
    questions = apps.reply_questions(work, n=10)
    for q in questions:
        assert len(q.candidates) == 4 and q.speech.endswith("\n\n")
        i = next(k for k, s in enumerate(speeches)
                 if f"{s.speaker}.\n{s.text}".endswith(q.speech[:-2]) and openings[k + 1] == q.candidates[q.answer])
        assert openings[i + 1] == q.candidates[q.answer]
    assert {q.answer for q in questions} != {0}  # the true reply is not always first
    assert questions == apps.reply_questions(work, n=10)
    with pytest.raises(apps.TaskError, match="held-out speeches"):
        apps.reply_questions(work, n=100_000)


def test_overlap_replies_and_answer_replies():
    tokenizer = CharTokenizer.from_text(TEXT + "abcdefghijklmnopqrstuvwxyz-TK")
    q = apps.ReplyQuestion("x", "He.\nthe king is fair\n\n", ("one two", "the fair king", "a b", "c d e"), 1)
    assert apps.overlap_replies([q]) == [1]
    # With every next character equally likely, the shortest candidate is the likeliest ("a b").
    uniform = Scripted(tokenizer.vocab_size)
    assert apps.answer_replies(uniform, tokenizer, [q, q]) == [2, 2]
    # After a "K" in the speech, a "b" is unlikely: the next shortest without one wins ("c d e").
    marked = apps.ReplyQuestion("x", "K.\nthe king is fair\n\n", q.candidates, 1)
    scripted = Scripted(tokenizer.vocab_size, marker=tokenizer.encode("K")[0], avoided=tokenizer.encode("b")[0])
    assert apps.answer_replies(scripted, tokenizer, [q, marked]) == [2, 3]


def test_sonnets_are_split_at_numerals():
    poems = apps.sonnets(load_corpus()["sonnets"].text)
    assert len(poems) == 154 and poems[17][0].startswith("Shall I compare thee")
    assert sum(len(p) == 14 for p in poems) >= 150
    assert apps.sonnets("title\n\nI\n\na\nb\n\nII\n\nc\n") == [["a", "b"], ["c"]]
    form = apps.form_metrics(poems[17])
    assert 35 < form["mean_characters"] < 50


def test_translation_command_saves_its_results_with_the_command(tmp_path, monkeypatch, capsys):
    from book.experiments import translation_adaptation as command

    calls = []

    def experiment(checkpoint, *, steps):
        calls.append((checkpoint, steps))
        return {"rows": {"prompt only": {"exact_match": 0.5, "similarity": 0.75, "train_seconds": 0.0}}}

    monkeypatch.setattr(command, "translation_experiment", experiment)
    out = tmp_path / "new folder" / "translation.json"
    assert command.main(["--out", str(out), "--steps", "3"]) == 0
    assert calls == [("checkpoints/shakespeare-char", 3)]
    saved = json.loads(out.read_text())
    assert saved["command"] == f"python -m book.experiments.translation_adaptation --out {out} --steps 3"
    assert saved["rows"] == experiment("x", steps=1)["rows"]
    assert "prompt only: exact match 0.500, similarity 0.750, 0.0 s" in capsys.readouterr().out

    with pytest.raises(SystemExit) as exit_info:
        command.main(["--out", str(tmp_path / "t.json"), "--steps", "0"])
    assert exit_info.value.code == 2 and "--steps must be positive, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        command.main(["--out", str(tmp_path)])
    assert "is a folder" in capsys.readouterr().err
    monkeypatch.undo()  # the real experiment, on a checkpoint that is not there
    assert command.main(["--out", str(tmp_path / "t.json"), "--checkpoint", str(tmp_path / "absent")]) == 2
    assert "absent" in capsys.readouterr().err and not (tmp_path / "t.json").exists()
