"""Comedy or tragedy of held-out plays (book.applications.genre): labels, masking, splits, scoring, results."""
import numpy as np
import pytest
import torch

from book.applications import genre as g
from book.data import Corpus, Work, load_corpus

PLAY = """THE PLAY

PERSONS REPRESENTED.

ORSINO, Duke of Illyria.

ACT I.

Scene I. A room.

[Enter Orsino.]

Duke.
If music be the food of love, play on, Orsino; [Aside.] the tragedy ends.

Vio.
I am not what I am, good Orsino.
"""


def tiny_corpus():
    other = Work("other", "Other", "poem", "The duke spoke, if of love and music.\n", "x")
    return Corpus([Work("twelfth_night", "Twelfth Night", "play", PLAY, "x"), other])


def test_folio_table_labels_the_corpus_plays_and_keeps_the_exclusions_out():
    plays = g.labelled_plays(load_corpus())
    assert len(plays) == 25 and sum(label == "comedy" for label in plays.values()) == 14
    assert plays["cymbeline"] == "tragedy" and plays["winters_tale"] == "comedy"
    assert not set(plays) & set(g.EXCLUDED) and "henry_v" not in plays
    assert set(g.FOLIO_GENRES.values()) == {"comedy", "history", "tragedy"}


def test_names_stage_directions_and_genre_words_are_masked():
    corpus = tiny_corpus()
    names = g.proper_names(corpus)
    assert "Orsino" in names and "Duke" not in names  # "duke" also occurs in lower case
    text = g.clean_speech("If music be the food of love, play on, Orsino; [Aside.] the tragedy ends.", names)
    assert text == "If music be the food of love, play on, X; the X ends."


def test_passages_skip_the_persons_and_never_show_speakers():
    corpus = tiny_corpus()
    passages = g.play_passages(corpus["twelfth_night"], "comedy", g.proper_names(corpus), n=2, chars=16)
    assert len(passages) == 2 and all(len(p.text) == 16 for p in passages)
    joined = g.speech_text(corpus["twelfth_night"], g.proper_names(corpus))
    assert "Duke of" not in joined and "Vio" not in joined and "Orsino" not in joined
    with pytest.raises(g.GenreError, match="passages"):
        g.play_passages(corpus["twelfth_night"], "comedy", frozenset(), n=50, chars=16)


def test_folds_are_disjoint_cover_every_play_and_mix_both_genres():
    plays = g.labelled_plays(load_corpus())
    folds = g.play_folds(plays, 5)
    flat = [play for fold in folds for play in fold]
    assert sorted(flat) == sorted(plays) and len(flat) == len(set(flat))
    for fold in folds:
        assert {plays[play] for play in fold} == set(g.LABELS)
    with pytest.raises(g.GenreError, match="n_folds"):
        g.play_folds(plays, 12)


def test_balanced_accuracy_and_the_play_bootstrap():
    assert g.balanced_accuracy(["a", "a", "a", "b"], ["a", "a", "a", "a"]) == 0.5
    assert g.balanced_accuracy(["a", "b"], ["a", "b"]) == 1.0
    plays = ["p1"] * 3 + ["p2"] * 3 + ["p3"] * 3 + ["p4"] * 3
    labels = ["a"] * 6 + ["b"] * 6
    correct = [1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    low, high = g.bootstrap_by_play(plays, labels, correct, reps=500)
    assert 0.5 <= low <= 0.75 <= high <= 1.0
    assert g.bootstrap_by_play(plays, labels, correct, other=correct, reps=50) == (0.0, 0.0)


def test_naive_bayes_learns_word_counts():
    model = g.NaiveBayes(0.5).fit(["merry jest merry", "jest wedding", "death grave", "grave murder death"],
                                  ["comedy", "comedy", "tragedy", "tragedy"])
    assert model.predict(["a merry wedding", "a grave death", "unknown words"])[:2] == ["comedy", "tragedy"]
    assert model.top_words("tragedy", k=2, min_count=2) == ["death", "grave"]
    with pytest.raises(g.GenreError, match="alpha"):
        g.NaiveBayes(0)


def test_head_separates_separable_features_and_survives_a_round_trip(tmp_path):
    torch.manual_seed(0)
    x = torch.cat([torch.randn(40, 8) + 2, torch.randn(40, 8) - 2])
    labels = ["tragedy"] * 40 + ["comedy"] * 40
    head = g.fit_head(x, labels, 1e-1)
    assert head.predict(x) == labels
    g.save_head(head, "mean", {"test_plays": []}, tmp_path)
    loaded, metadata = g.load_head(tmp_path)
    assert metadata["pooling"] == "mean" and loaded.predict(x) == labels
    with pytest.raises(g.GenreError, match="both genres"):
        g.fit_head(x, ["comedy"] * 80, 1e-3)


def test_gpt_features_pool_whole_windows():
    from book.model import GPT
    from book.tokenize import CharTokenizer

    tokenizer = CharTokenizer("ab ")
    model = GPT.from_config(vocab_size=3, context_length=8, n_layer=2, n_head=2, d_model=8)
    texts = ["ab ab ab" * 2, "ba ba ba" * 2]
    features = g.gpt_features(model, tokenizer, texts, batch_size=1)
    assert features["mean"].shape == (2, 8) and features["last"].shape == (2, 8)
    assert features["layers"].shape == (2, 2, 8)
    # pooling batch by batch gives what pooling everything at once does
    at_once = g.gpt_features(model, tokenizer, texts, batch_size=4)
    assert torch.allclose(at_once["mean"], features["mean"], atol=1e-5)
    assert g.feature_sets(features) == ("mean", "last", "block 1", "all blocks")
    assert torch.equal(g.pooled(features, "block 1"), features["layers"][:, 0])
    assert g.pooled(features, "all blocks").shape == (2, 16)
    with pytest.raises(g.GenreError, match="pooling"):
        g.pooled(features, "block 3")
    with pytest.raises(g.GenreError, match="windows"):
        g.gpt_features(model, tokenizer, ["abc"])


def test_fast_naive_bayes_log_odds_match_the_class_and_cross_fitting_hides_each_play():
    texts = ["merry jest merry", "jest wedding", "death grave", "grave murder death", "merry death", "a jest"]
    labels = ["comedy", "comedy", "tragedy", "tragedy", "comedy", "tragedy"]
    counts = g.word_counts(texts)
    model = g.NaiveBayes(0.5).fit(texts[:4], labels[:4])
    scores = model.scores(texts[4:])
    fast = g.naive_bayes_log_odds(counts, labels, range(4), [4, 5], 0.5)
    assert np.allclose(fast, scores[:, 1] - scores[:, 0])
    plays = ["p1", "p2", "p3", "p4", "p5", "p6"]
    crossed = g.cross_fitted_log_odds(counts, labels, plays, range(6), 0.5, groups=2)
    # each play's number comes from a model fitted without it, so it differs from the in-sample one
    in_sample = g.naive_bayes_log_odds(counts, labels, range(6), range(6), 0.5)
    assert crossed.shape == (6,) and not np.allclose(crossed, in_sample)


def test_results_file_agrees_with_itself():
    results = g.genre_results()
    table = g.genre_table()
    rows = {row["method"]: row for row in results["results"] if "last 10%" not in row["task"]}
    gpt = next(row for name, row in rows.items() if name.startswith("shipped GPT"))
    nb = rows["word-count Naive Bayes"]
    majority = next(row for name, row in rows.items() if "majority" in name)
    assert majority["value"] == 0.5 and gpt["n"] >= 1000 and len(table) == len(results["results"])
    assert np.isclose(results["gpt_minus_naive_bayes"]["value"], gpt["value"] - nb["value"], atol=1e-3)
    per_play = results["per_play_accuracy"]
    assert len(per_play) == 25 and not set(per_play) & set(g.EXCLUDED)
    combined = [row for name, row in rows.items() if name.startswith("combined")]
    if combined:
        difference = results["gpt_plus_nb_minus_naive_bayes"]["value"]
        assert np.isclose(difference, combined[0]["value"] - nb["value"], atol=1e-3)
    if "base_model" in results:
        assert f"({results['base_model'].split('/')[-1]})" in gpt["method"]
    words = g.genre_words(5)
    assert len(words["comedy"]) == 5 and not set(words["comedy"]) & set(words["tragedy"])


def test_demo_classifies_passages_of_the_shipped_heads_test_plays():
    rows = g.demo(1)
    _, metadata = g.load_head()
    assert [row["genre"] for row in rows] == list(g.LABELS)
    assert all(row["play"] in metadata["test_plays"] and row["predicted"] in g.LABELS for row in rows)
    assert all(0 <= row["p_tragedy"] <= 1 for row in rows)
    with pytest.raises(g.GenreError, match="n_per_genre"):
        g.demo(0)


def tiny_gpt():
    from book.model import GPT
    from book.tokenize import CharTokenizer

    torch.manual_seed(0)
    return GPT.from_config(vocab_size=3, context_length=8, n_layer=1, n_head=2, d_model=16), CharTokenizer("ab ")


def test_fine_tuning_learns_a_separable_task_and_keeps_the_best_validation_checkpoint():
    model, tokenizer = tiny_gpt()
    texts = ["aaaa aaaa aaaaaa", "aa aaaa aaaa aaa", "bbbb bbbb bbbbbb", "bb bbbb bbbb bbb"]
    labels = ["comedy", "comedy", "tragedy", "tragedy"]
    ids = g.encode_passages(tokenizer, texts, 8)
    classifier = g.GenreClassifier(model)
    assert torch.equal(g.passage_logits(classifier, ids), torch.zeros(4))  # the head starts at zero
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scores = iter([0.5, 0.9, 0.7, 0.9])
    kept = {}

    def validate(c):
        point = {"score": next(scores)}
        kept[point["score"]] = kept.get(point["score"]) or {k: v.clone() for k, v in c.state_dict().items()}
        return point

    history = g.fine_tune(classifier, ids, labels, epochs=2, lr=3e-2, batch_size=2, evals_per_epoch=2,
                          validate=validate, warmup=0.1)
    assert [point["epoch"] for point in history] == [0.5, 1.0, 1.5, 2.0]
    assert history[0]["train_lm_loss"] > 0
    # the whole model trained, and the first of the two best checkpoints is the one left
    assert not torch.equal(before["blocks.0.mlp.fc.weight"], model.state_dict()["blocks.0.mlp.fc.weight"])
    assert all(torch.equal(v, kept[0.9][k]) for k, v in classifier.state_dict().items())
    g.fine_tune(classifier, ids, labels, epochs=10, lr=3e-2, batch_size=2, lm_weight=0)
    assert g.logit_predictions(g.passage_logits(classifier, ids)) == labels
    with pytest.raises(g.GenreError, match="both genres"):
        g.fine_tune(classifier, ids, ["comedy"] * 4)
    with pytest.raises(g.GenreError, match="pooling"):
        g.GenreClassifier(model, "max")


def test_the_experiments_fine_tuning_folds_run_on_a_tiny_model(tmp_path):
    from book.experiments.genre import finetune_folds

    model, tokenizer = tiny_gpt()
    plays = [f"p{k}" for k in range(16) for _ in range(2)]
    labels = ["comedy" if int(play[1:]) < 8 else "tragedy" for play in plays]
    texts = [("aa ab aa" if label == "comedy" else "bb ba bb") * 2 for label in labels]
    folds = g.play_folds(dict(zip(plays, labels)), 2)
    settings = {"lr": 1e-2, "epochs": 1, "evals_per_epoch": 2, "batch_size": 4, "lm_weight": 0.5,
                "weight_decay": 0.01, "warmup": 0.05, "pooling": "last"}
    cache = tmp_path / "ft.json"
    out = finetune_folds(model, tokenizer, texts, labels, plays, folds, settings=settings, cache=str(cache),
                         log=lambda _: None)
    assert len(out["logits"]) == len(texts) and None not in out["logits"]
    for record in out["folds"]:
        assert not set(record["validation_plays"]) & set(record["test_plays"])
        assert not set(record["fine_tuned_on_plays"]) & (set(record["test_plays"]) | set(record["validation_plays"]))
        assert record["chosen_epoch"] in [point["epoch"] for point in record["curve"]]
    # a second run reads the finished folds back instead of training again
    messages = []
    again = finetune_folds(model, tokenizer, texts, labels, plays, folds, settings=settings, cache=str(cache),
                           log=messages.append)
    assert messages == [] and again == out


def test_fine_tuned_rows_agree_with_the_recorded_passage_outcomes():
    results = g.genre_results()
    if "passage_outcomes" not in results:
        pytest.skip("the results file has no fine-tuned rows")
    outcomes = results["passage_outcomes"]
    plays, labels = outcomes["play"], outcomes["label"]
    logits = np.array(outcomes["gpt-ft logit"])
    assert outcomes["gpt-ft"] == [int((z > 0) == (y == "tragedy")) for z, y in zip(logits, labels)]
    predictions = {name: [y if ok else g.LABELS[1 - g.LABELS.index(y)] for ok, y in zip(outcomes[name], labels)]
                   for name in ("gpt-ft", "nb")}
    rows = {(row["task"], row["method"]): row for row in results["results"]}
    method = results["finetuned"]["method"]
    tail = [i for i, t in enumerate(outcomes["heldout_tail"]) if t]
    from book.experiments.genre import TASK

    for task, idx in ((TASK, range(len(labels))), (next(t for t, _ in rows if "last 10%" in t), tail)):
        for name, row_method in (("gpt-ft", method), ("nb", "word-count Naive Bayes")):
            row = rows[(task, row_method)]
            value = g.balanced_accuracy([labels[i] for i in idx], [predictions[name][i] for i in idx])
            assert np.isclose(row["value"], value) and row["n"] == len(idx)
            interval = g.bootstrap_by_play([plays[i] for i in idx], [labels[i] for i in idx],
                                           [outcomes[name][i] for i in idx], seed=results["seed"])
            assert np.allclose(row["ci95"], interval, atol=1e-5)
    difference = results["gpt_finetuned_minus_naive_bayes"]
    value = g.balanced_accuracy(labels, predictions["gpt-ft"]) - g.balanced_accuracy(labels, predictions["nb"])
    assert np.isclose(difference["value"], value, atol=1e-4)
    interval = g.bootstrap_by_play(plays, labels, outcomes["gpt-ft"], other=outcomes["nb"], seed=results["seed"])
    assert np.allclose(difference["ci95"], interval, atol=1e-4)
    # each passage's logit came from the fold that held its play out
    for record in results["finetuned"]["folds"]:
        idx = [i for i, play in enumerate(plays) if play in record["test_plays"]]
        assert np.allclose(logits[idx], record["test_logits"])
        assert not set(record["validation_plays"]) & set(record["test_plays"])
        assert record["validation_balanced_accuracy"] == max(point["score"] for point in record["curve"])
