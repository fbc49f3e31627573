"""The dialogue application: next-speech questions, their scoring rules, and the booking dialogues' rules."""
import random

import pytest
import torch

from book.applications import conversation as cv
from book.applications.results import RESULTS_DIR
from book.model import GPT, GPTConfig
from book.tasks import TaskError
from book.tokenize import CharTokenizer


@pytest.fixture(scope="module")
def test_questions():
    return cv.selection_questions("test")


def test_selection_questions_come_from_held_out_text_and_splits_use_different_plays(test_questions):
    validation = cv.selection_questions("validation")
    assert len(test_questions) >= 400 and len(validation) >= 200
    assert not {q.work for q in validation} & {q.work for q in test_questions}
    from book.applications.scoring import heldout_part
    from book.data import load_corpus

    corpus = load_corpus()
    for question in random.Random(0).sample(test_questions, 20):
        speeches = [s.text for s in heldout_part(corpus[question.work]).speeches()]
        assert len(question.candidates) == 4 and len(set(question.candidates)) == 4
        assert all(len(c) <= cv.REPLY_CHARS and any(s.startswith(c) for s in speeches) for c in question.candidates)
        assert question.context.endswith(f"{question.speaker}.\n")
        # the true reply is the speech after the context's last speech
        last = question.context.rsplit("\n\n", 1)[0].rsplit("\n", 1)[-1]
        after = [b for a, b in zip(speeches, speeches[1:]) if a.endswith(last)]
        assert any(b.startswith(question.candidates[question.answer]) for b in after)


def test_answers_are_spread_over_the_positions(test_questions):
    counts = [sum(q.answer == i for q in test_questions) for i in range(4)]
    assert min(counts) > len(test_questions) / 4 * 0.8


def test_speech_opening_cuts_after_a_whole_word():
    assert cv.speech_opening("short", 60) == "short"
    text = "Now is the winter of our discontent made glorious summer by this son of York"
    cut = cv.speech_opening(text, 30)
    assert len(cut) <= 30 and text.startswith(cut) and text[len(cut)] == " "


def test_scoring_rules_and_pmi():
    scores = {"conditional": torch.tensor([[-5.0, -20.0]]), "prior": torch.tensor([[-4.0, -30.0]]),
              "chars": torch.tensor([[5.0, 40.0]])}
    assert cv.choose(scores, "total log-probability") == [0]
    assert cv.choose(scores, "mean log-probability per character") == [1]   # -1.0 vs -0.5
    assert cv.choose(scores, "PMI") == [1]                                   # -1 vs +10
    with pytest.raises(TaskError, match="unknown scoring rule"):
        cv.choose(scores, "vibes")


def test_candidate_scores_are_log_probabilities_of_the_candidates(test_questions):
    torch.manual_seed(0)
    tokenizer = CharTokenizer.from_text("".join(q.context + "".join(q.candidates) for q in test_questions[:3]))
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, context_length=96, n_layer=1, n_head=2, d_model=16))
    scores = cv.candidate_scores(model, tokenizer, test_questions[:3])
    assert scores["conditional"].shape == (3, 4) == scores["prior"].shape
    assert (scores["conditional"] < 0).all() and (scores["prior"] < 0).all()
    assert scores["chars"][0].tolist() == [len(c) for c in test_questions[0].candidates]


def test_mcnemar_exact():
    result = cv.mcnemar([True] * 10 + [False] * 5, [False] * 10 + [True] * 5)
    assert result["only_first"] == 10 and result["only_second"] == 5
    assert result["p_value"] == pytest.approx(0.3017578125)  # 2 * P(Binomial(15, 1/2) <= 5)
    assert cv.mcnemar([True, False], [True, False])["p_value"] == 1.0
    with pytest.raises(TaskError):
        cv.mcnemar([True], [])


@pytest.mark.parametrize("booking, reply", [
    (cv.Booking("table", 4, "Friday", 19, 0), "Booked: table for 4, Friday, 19:00."),
    (cv.Booking("tickets", 1, "Monday", 8, 15, "York"), "Booked: 1 ticket to York, Monday, 08:15."),
    (cv.Booking("tickets", 3, "Sunday", 21, 45, "Bath"), "Booked: 3 tickets to Bath, Sunday, 21:45."),
])
def test_a_booking_determines_its_reply(booking, reply):
    assert booking.reply() == reply


def test_every_phrasing_states_the_slots():
    rng = random.Random(1)
    for _ in range(300):
        intent = rng.choice(["table", "tickets"])
        booking = rng.choice([b for b in cv.all_bookings()[:2016]] if intent == "table"
                             else cv.all_bookings()[2016:])
        request = cv.phrase(booking, rng.randrange(len(cv.TABLE_TEMPLATES)), rng)
        text = request.text.lower()
        assert booking.day.lower() in text and booking.city.lower() in text
        h12 = booking.hour - 12 if booking.hour > 12 else booking.hour
        assert (f"{booking.hour:02d}:{booking.minute:02d}" in text or str(h12) in text
                or cv.NUMBER_WORDS[h12] in text or "quarter to" in text)
        if intent == "tickets" and f"{booking.hour:02d}:" not in text:
            assert "am" in text or "pm" in text or "morning" in text or "afternoon" in text or "evening" in text


def test_test_combinations_and_phrasings_are_held_out():
    split = cv.booking_split()
    combos = {name: {b.combination for b in bookings} for name, bookings in split.items()}
    assert not combos["train"] & combos["test"] and not combos["train"] & combos["validation"]
    train = cv.booking_requests("train", 2000)
    test = cv.booking_requests("test", 500)
    new = cv.booking_requests("test", 500, held_out_phrasings=True)
    assert not {r.booking.combination for r in train} & {r.booking.combination for r in test + new}
    seen = len(cv.TABLE_TEMPLATES) - cv.HELD_OUT_TEMPLATES
    assert all(r.template < seen for r in train + test) and all(r.template >= seen for r in new)
    assert {r.booking.intent for r in test} == {"table", "tickets"}
    with pytest.raises(TaskError):
        cv.booking_requests("train", 5, held_out_phrasings=True)


def test_keyword_filler_learns_slots_from_training_requests():
    train = cv.booking_requests("train", 3000)
    filler = cv.KeywordFiller(train)
    assert filler.reply("A table for 4 at 19:00 on Friday, please.").startswith("Booked: table for 4, Friday")
    test = cv.booking_requests("test", 200)
    assert 0.3 < sum(filler.reply(r.text) == r.reply for r in test) / len(test) < 1


def test_dialogue_lines_round_trip():
    request = cv.booking_requests("validation", 1)[0]
    line = cv.dialogue_text(request)
    assert line.startswith(cv.reply_prompt(request.text)) and line.endswith(request.reply + "\n")


@pytest.mark.skipif(not (RESULTS_DIR / "dialogue.json").exists(), reason="results not written yet")
def test_results_file_agrees_with_its_outcomes():
    payload = cv.dialogue_results()
    table = cv.dialogue_table()
    assert len(table) == len(payload["results"])
    designs = {payload["selection"][design]["task"]: payload["selection"][design] for design in cv.DISTRACTORS}
    checked = 0
    for row in payload["results"]:
        outcomes = designs[row["task"]]["outcomes"] if row["task"] in designs else {}
        if row["method"] in outcomes:
            assert row["value"] == pytest.approx(sum(outcomes[row["method"]]) / row["n"], abs=1e-6)
            checked += 1
    assert checked >= 2 * 3
    booking = payload["booking"]["outcomes"]
    for row in payload["results"]:
        if row["method"] == "GPT trained on the dialogues":
            name = "test_new" if "phrasings" in row["task"] else "test"
            assert row["value"] == pytest.approx(sum(booking[name]) / row["n"], abs=1e-6)


@pytest.mark.parametrize("loss", cv.LOSSES)
def test_dialogue_rows_start_at_dialogues_and_count_the_right_characters(loss):
    dialogues = [cv.dialogue_text(r) for r in cv.booking_requests("train", 40)]
    rows = cv.dialogue_rows(dialogues, 160, loss=loss)
    assert all(len(text) == 161 and len(flags) == 160 for text, flags in rows)
    starts = [text for text, _ in rows]
    # every dialogue begins a row, whole, in the order given
    assert [next(i for i, t in enumerate(starts) if t.startswith(d)) for d in dialogues] == sorted(
        next(i for i, t in enumerate(starts) if t.startswith(d)) for d in dialogues)
    assert all(any(t.startswith(d) for t in starts) for d in dialogues)
    text, flags = rows[0]
    counted = "".join(c for c, f in zip(text[1:], flags) if f)
    if loss == "all":
        assert counted == text[1:]
    else:
        first = cv.booking_requests("train", 1)[0]
        assert counted.startswith(f" {first.reply}\n") and "U:" not in counted
    assert not rows[-1][1][-1] and rows[-1][0].endswith("\n\n")  # the padding does not count
    with pytest.raises(TaskError):
        cv.dialogue_rows(dialogues, 160, loss="request")


def test_training_on_dialogue_rows_lowers_the_loss():
    from book.experiments.dialogue import train_on_dialogues
    from book.training import TrainConfig

    torch.manual_seed(0)
    dialogues = [cv.dialogue_text(r) for r in cv.booking_requests("train", 96)]
    val = [cv.dialogue_text(r) for r in cv.booking_requests("validation", 16)]
    tokenizer = CharTokenizer.from_text("".join(dialogues + val))
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, context_length=160, n_layer=1, n_head=2, d_model=32))
    settings = TrainConfig(max_steps=40, batch_size=16, context_length=160, max_lr=3e-3, min_lr=3e-4,
                           warmup_steps=5, eval_interval=20, eval_iters=1, seed=0)
    history = train_on_dialogues(model, tokenizer, dialogues, val, settings, "all", log=lambda line: None)
    assert history.eval_steps == [20, 40] and len(history.train_loss) == 40
    assert history.val_loss[-1] < history.train_loss[0] - 1.0   # from about log(vocabulary) = 4 nats
