"""The bAbI-style question answering of Chapter 7: the generator's rules, the held-out pools, scoring, the results."""
import re

import pytest
import torch

from book.applications import qa
from book.applications.results import read_results, results_path, wilson_interval
from book.model import GPT


def words(prompt, kind):
    facts, subject = qa.parse_story(prompt)
    if kind == "names":
        return {person for person, _, _ in facts} | ({subject} if subject[0].isupper() else set())
    if kind == "places":
        return {word for _, k, word in facts if k == "move"}
    return {word for _, k, word in facts if k != "move"} | ({subject} if subject[0].islower() else set())


def test_pools_are_disjoint_and_cover_every_split():
    for kind, pools in qa.POOLS.items():
        assert set(pools) == set(qa.SPLITS)
        for a in qa.SPLITS:
            assert pools[a], (kind, a)
            for b in qa.SPLITS:
                if a < b:
                    assert not set(pools[a]) & set(pools[b]), (kind, a, b)


@pytest.mark.parametrize("task", qa.TASKS)
@pytest.mark.parametrize("split", qa.SPLITS)
def test_stories_use_only_their_split_pools_and_follow_the_rule(task, split):
    examples = qa.make_examples(task, split, 300, seed=5)
    for example in examples:
        assert example.task == task and example.prompt.endswith("?")
        assert set(example.text) <= set(qa.VOCABULARY) and example.text.endswith(f"? {example.answer}\n")
        for kind in ("names", "places", "objects"):
            assert words(example.prompt, kind) <= set(qa.POOLS[kind][split]), (kind, example.prompt)
        assert example.answer in qa.POOLS["places"][split]
        # the oracle re-derives every answer from the text alone
        assert qa.rule_answer(example.prompt) == example.answer
        facts, subject = qa.parse_story(example.prompt)
        assert len(facts) == example.prompt.count(".")  # every sentence parsed
        if task == qa.TASKS[0]:
            assert 2 <= len(facts) <= 6 and all(k == "move" for _, k, _ in facts)
            assert example.answer == [w for p, _, w in facts if p == subject][-1]
        else:
            assert 4 <= len(facts) <= 8
            assert any(k == "take" and w == subject for _, k, w in facts)  # someone picked the object up


def test_the_test_set_is_new_stories_with_unseen_names():
    train = {e.prompt for task in qa.TASKS for e in qa.make_examples(task, "train", 2000, 0)}
    test = [e for task in qa.TASKS for e in qa.make_examples(task, "test", 500, 0)]
    assert not train & {e.prompt for e in test}
    train_names = set(qa.POOLS["names"]["train"])
    assert all(not words(e.prompt, "names") & train_names for e in test)


def test_the_generator_is_seeded():
    a = qa.make_examples(qa.TASKS[1], "train", 50, seed=3)
    assert a == qa.make_examples(qa.TASKS[1], "train", 50, seed=3)
    assert a != qa.make_examples(qa.TASKS[1], "train", 50, seed=4)


def test_the_two_fact_rule_on_written_stories():
    story = ("Ada went to the kitchen. Ada picked up the apple. Bo moved to the garden. Ada travelled to the office. "
             "Where is the apple?")
    assert qa.rule_answer(story) == "office"  # the holder's place now
    assert qa.last_place(story) == "office"
    assert qa.last_place_before_object(story) == "kitchen"
    dropped = ("Ada went to the kitchen. Ada took the apple. Ada dropped the apple. Ada went to the office. "
               "Where is the apple?")
    assert qa.rule_answer(dropped) == "kitchen"  # where it was dropped
    assert qa.last_place(dropped) == "office"
    one = "Mary moved to the bathroom. John went to the hallway. Where is Mary?"
    assert qa.rule_answer(one) == "bathroom" and qa.last_place(one) == "hallway"


def test_bad_inputs_are_refused_in_one_line():
    with pytest.raises(qa.QAError, match="task must be"):
        qa.make_examples("three facts", "train", 3, 0)
    with pytest.raises(qa.QAError, match="split must be"):
        qa.make_examples(qa.TASKS[0], "dev", 3, 0)
    with pytest.raises(qa.QAError, match="positive"):
        qa.make_examples(qa.TASKS[0], "train", 0, 0)
    with pytest.raises(qa.QAError, match="Where is"):
        qa.parse_story("Mary went to the garden.")
    with pytest.raises(qa.QAError, match="predictions"):
        qa.exact_match(["a"], [])


def test_a_score_of_none_or_all_has_an_interval_that_holds_it():
    from book.applications.results import proportion

    assert proportion("qa", "t", "exact match", "m", 0, 500).ci95[0] == 0.0
    assert proportion("qa", "t", "exact match", "m", 500, 500).ci95[1] == 1.0


def test_exact_match_scores_the_whole_word():
    assert qa.exact_match(["garden", " garden ", "gard", "gardens", None], ["garden"] * 5) == [
        True, True, False, False, False]


def test_the_loss_is_on_the_answer_alone():
    tok = qa.tokenizer()
    examples = qa.make_examples(qa.TASKS[0], "train", 4, 0)
    x, y = qa.encode_batch(examples, tok)
    for i, example in enumerate(examples):
        assert tok.decode(x[i, :len(example.text) - 1].tolist()) == example.text[:-1]
        kept = [tok.decode([t]) for t in y[i].tolist() if t != -100]
        assert "".join(kept) == example.answer + "\n"
        assert y[i, len(example.prompt)] == tok.char_to_id[example.answer[0]]  # after "prompt " comes the answer
    x_all, y_all = qa.encode_batch(examples, tok, loss_on="all")
    assert torch.equal(x, x_all)
    n = len(examples[0].text) - 1
    assert tok.decode(y_all[0, :n].tolist()) == examples[0].text[1:]


def test_the_loss_on_all_and_the_answer_adds_the_two_means():
    tok = qa.tokenizer()
    examples = qa.make_examples(qa.TASKS[1], "train", 16, 0)
    torch.manual_seed(0)
    model = GPT.from_config(vocab_size=tok.vocab_size, context_length=320, n_layer=1, n_head=2, d_model=16)
    x, y_all = qa.encode_batch(examples, tok, loss_on="all")
    y_answer = qa.encode_batch(examples, tok)[1]
    with torch.no_grad():
        expected = model(x, y_all)[1].item() + model(x, y_answer)[1].item()
    history = qa.train_model(model, examples, tok, steps=1, batch_size=16, loss_on="all+answer", bf16=False)
    first = history["loss"][0]
    assert first == pytest.approx(expected, rel=1e-5)
    with pytest.raises(qa.QAError, match="loss_on"):
        qa.train_model(model, examples, tok, steps=1, batch_size=16, loss_on="question")


def test_greedy_answers_stop_at_the_line_break():
    tok = qa.tokenizer()
    torch.manual_seed(0)
    model = GPT.from_config(vocab_size=tok.vocab_size, context_length=64, n_layer=1, n_head=2, d_model=16)
    answers = qa.answer_questions(model, tok, ["Where is Ada?", "Ada went to the mill. Where is Ada?"], max_chars=5)
    assert len(answers) == 2 and all(len(a) <= 5 and "\n" not in a for a in answers)
    with pytest.raises(qa.QAError, match="context"):
        qa.answer_questions(model, tok, ["x" * 60 + "?"], max_chars=14)


def test_cached_greedy_answers_match_rereading_the_whole_line():
    tok = qa.tokenizer()
    torch.manual_seed(4)
    model = GPT.from_config(vocab_size=tok.vocab_size, context_length=96, n_layer=2, n_head=2, d_model=32)
    newline = tok.char_to_id["\n"]
    with torch.no_grad():  # large random weights: varied characters, and answers of several lengths
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0, 0.3)
    prompts = ["Where is Ada?", "Bo went to the mill. Where is Bo?", "Cy moved to the barn. Where is Cy?",
               "Ada went to the pier. Ada moved to the dock. Where is Ada?", "Where is Bo?"]

    def slow(prompt, max_chars=6):  # re-read the whole line for every character
        ids, answer = tok.encode(prompt + " "), []
        for _ in range(max_chars):
            with torch.no_grad():
                nxt = int(model(torch.tensor([ids]))[0][0, -1].argmax())
            if nxt == newline:
                break
            answer.append(nxt)
            ids.append(nxt)
        return tok.decode(answer)

    expected = [slow(p) for p in prompts]
    assert qa.answer_questions(model, tok, prompts, max_chars=6, batch_size=2) == expected
    assert len(set(map(len, expected))) > 1


def test_held_out_words_are_spelt_in_letters_that_training_stories_use():
    seen = set()
    for task in qa.TASKS:
        for example in qa.make_examples(task, "train", 3000, 0):
            seen |= set(example.text)
    for kind, pools in qa.POOLS.items():
        for split in ("validation", "test"):
            assert all(set(word) <= seen for word in pools[split]), (kind, split)
    assert "q" not in "".join(qa.POOLS["places"]["validation"])  # "quarry", the one "q", trains
    assert len(qa.POOLS["places"]["validation"]) >= 10 and len(qa.POOLS["places"]["test"]) == 16


def test_invented_stories_are_training_stories_with_made_up_words():
    plain = qa.make_examples(qa.TASKS[0], "train", 200, 0)
    assert plain == qa.make_examples(qa.TASKS[0], "train", 200, 0, invented=0.0)
    held_out = {w for pools in qa.POOLS.values() for split in ("validation", "test") for w in pools[split]}
    for task in qa.TASKS:
        examples = qa.make_examples(task, "train", 400, 1, invented=0.5)
        made_up = [e for e in examples if not words(e.prompt, "places") <= set(qa.POOLS["places"]["train"])]
        assert 120 < len(made_up) < 280  # about half
        for example in made_up:
            assert qa.rule_answer(example.prompt) == example.answer
            assert set(example.text) <= set(qa.VOCABULARY)
            for kind in ("names", "places", "objects"):
                found = words(example.prompt, kind)
                assert not found & held_out, (kind, example.prompt)
    with pytest.raises(qa.QAError, match="invented"):
        qa.make_examples(qa.TASKS[0], "validation", 3, 0, invented=0.5)
    with pytest.raises(qa.QAError, match="invented"):
        qa.make_examples(qa.TASKS[0], "train", 3, 0, invented=1.5)


def test_entities_are_lettered_in_order_of_first_mention():
    prompt = "Mary went to the kitchen. John picked up the milk. Mary moved to the hall. Where is Mary?"
    coded, words = qa.code_entities(prompt)
    assert coded == "A went to the B. C picked up the D. A moved to the E. Where is A?"
    assert words == {"A": "Mary", "B": "kitchen", "C": "John", "D": "milk", "E": "hall"}
    example = qa.coded_example(qa.Example(qa.TASKS[0], prompt, "hall"))
    assert (example.prompt, example.answer) == (coded, "E")
    with pytest.raises(qa.QAError, match="not in the story"):
        qa.coded_example(qa.Example(qa.TASKS[0], prompt, "garden"))
    with pytest.raises(qa.QAError, match="more than"):
        qa.code_entities(" ".join(f"P{chr(97 + i)} went to the x{chr(97 + i)}." for i in range(12)) + " Where is Pa?")


@pytest.mark.parametrize("task", qa.TASKS)
def test_lettering_loses_nothing(task):
    for example in qa.make_examples(task, "test", 200, seed=5):
        coded, words = qa.code_entities(example.prompt)
        spelt = re.sub(r"\b[A-V]\b", lambda m: words[m.group(0)], coded)
        assert spelt == example.prompt and len(set(words.values())) == len(words)
        assert words[qa.coded_example(example).answer] == example.answer


def test_a_lettered_reply_is_turned_back_into_the_storys_word():
    class Scripted(torch.nn.Module):  # always writes "B" then a line break
        def __init__(self, tok):
            super().__init__()
            self.tok = tok
            self.config = type("Config", (), {"context_length": 512})()

        def new_cache(self, batch):
            return {"n": 0, "batch": batch}

        def forward(self, x, cache=None):
            cache["n"] += 1
            logits = torch.zeros(x.shape[0], x.shape[1], self.tok.vocab_size)
            logits[:, -1, self.tok.char_to_id["B" if cache["n"] == 1 else "\n"]] = 1.0
            return logits, None

    tok = qa.tokenizer()
    prompts = ["Ada went to the mill. Where is Ada?", "Bo went to the barn. Cy went to the pier. Where is Cy?"]
    assert qa.model_answers(Scripted(tok), tok, prompts, "coded") == ["mill", "barn"]
    with pytest.raises(qa.QAError, match="entities"):
        qa.model_answers(Scripted(tok), tok, prompts, "letters")


def test_a_few_training_steps_lower_the_answer_loss():
    tok = qa.tokenizer()
    torch.manual_seed(0)
    examples = qa.make_examples(qa.TASKS[0], "train", 64, 0)
    model = GPT.from_config(vocab_size=tok.vocab_size, context_length=256, n_layer=1, n_head=2, d_model=32)
    history = qa.train_model(model, examples, tok, steps=30, batch_size=16, max_lr=1e-2, warmup_steps=5, bf16=False)
    assert sum(history["loss"][-5:]) / 5 < history["loss"][0] - 1.0


def test_the_command_refuses_bad_settings(capsys):
    from book.experiments.qa import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--steps", "0"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


shipped = pytest.mark.skipif(not results_path("qa").exists()
                             or not (qa.CODED_MODEL_DIR / "checkpoint.json").exists(),
                             reason="the question-answering results are not written yet")


@shipped
def test_the_results_file_agrees_with_its_outcomes():
    payload = read_results("qa")
    rows = {(r["task"], r["method"]): r for r in payload["results"]}
    for task in qa.TASKS:
        for method in ("GPT trained from scratch, entities lettered", "GPT trained from scratch, reading the words"):
            outcomes = payload["test_outcomes"][f"{task}: {method}"]
            row = rows[(task, method)]
            assert row["n"] == len(outcomes) >= 500
            assert row["value"] == pytest.approx(sum(outcomes) / len(outcomes), abs=1e-6)
            assert row["ci95"] == pytest.approx(list(wilson_interval(sum(outcomes), len(outcomes))), abs=1e-6)
        # the baselines are re-computed here from the same test stories
        test = qa.make_examples(task, "test", row["n"], payload["settings"]["seed"])
        last = rows[(task, "last place mentioned")]
        assert last["is_baseline"]
        assert last["value"] == pytest.approx(sum(qa.exact_match([qa.last_place(e.prompt) for e in test],
                                                                 [e.answer for e in test])) / len(test), abs=1e-6)
    table = qa.qa_table()
    assert len(table) == len(payload["results"]) and {row["task"] for row in table} == set(qa.TASKS)


@shipped
def test_the_shipped_model_answers_as_recorded():
    payload = read_results("qa")
    model, tok, entities = qa.load_model()
    assert entities == payload["settings"]["entities"] == "coded"
    assert model.num_parameters() == payload["settings"]["parameters"]
    assert sum(p.numel() * 2 for p in model.parameters()) < 3_000_000
    for task in qa.TASKS:
        recorded = payload["examples"][task][:3]
        predictions = qa.model_answers(model, tok, [r["prompt"] for r in recorded], entities)
        assert predictions == [r["model"] for r in recorded]
    table = qa.demo(n=2)
    assert len(table) == 4 and all(set(row) >= {"answer", "model", "correct"} for row in table)
    assert [row["correct"] for row in table] == [row["model"] == row["answer"] for row in table]


def test_the_command_trains_saves_the_best_validation_step_and_measures(tmp_path):
    from book.experiments.qa import main

    out, model_dir = tmp_path / "qa.json", tmp_path / "model"
    assert main(["--steps", "2", "--eval-every", "1", "--layers", "1", "--d-model", "16", "--heads", "2",
                 "--train-stories", "16", "--batch-size", "8", "--validation-stories", "2", "--test-stories", "3",
                 "--out", str(out), "--model-dir", str(model_dir)]) == 0
    payload = read_results("qa", out)
    assert [p["step"] for p in payload["validation_curve"]] == [1, 2] and payload["best_step"] in (1, 2)
    assert payload["training_finished"] and payload["oracle_rule"] == {task: 1.0 for task in qa.TASKS}
    assert {r["n"] for r in payload["results"]} == {3} and payload["settings"]["entities"] == "coded"
    assert main(["--evaluate-only", "--test-stories", "3", "--out", str(out), "--model-dir", str(model_dir)]) == 0
    assert read_results("qa", out)["test_outcomes"] == payload["test_outcomes"]
    assert main(["--evaluate-only", "--out", str(out), "--model-dir", str(tmp_path / "none")]) == 2
