"""Number-word translation: the references, the split, the masks, decoding, the baseline and the results file."""
import pytest
import torch

from book.applications import number_translation as nt
from book.applications.results import RESULTS_DIR, read_results, wilson_interval
from book.experiments import number_translation as experiment
from book.model import GPT, GPTConfig


def test_references_come_from_num2words_with_french_irregularities():
    assert nt.number_words(71, "en") == "seventy-one"
    assert nt.number_words(71, "fr") == "soixante et onze"
    assert nt.number_words(80, "fr") == "quatre-vingts"
    assert nt.number_words(81, "fr") == "quatre-vingt-un"
    assert nt.number_words(200, "fr") == "deux cents"
    assert nt.number_words(201, "fr") == "deux cent un"
    assert nt.number_words(9999, "fr") == "neuf mille neuf cent quatre-vingt-dix-neuf"
    assert nt.pair_line(21, "es") == "twenty-one=veintiuno\n"
    assert nt.prompt(7) == "\nseven="


@pytest.mark.parametrize("bad", [0, 10000, -3, 2.0, True, "7"])
def test_numbers_outside_the_range_are_refused(bad):
    with pytest.raises(nt.TranslationError, match="numbers run from 1 to 9999"):
        nt.number_words(bad, "fr")


def test_unknown_language_is_refused():
    with pytest.raises(nt.TranslationError, match="unknown language 'xx'"):
        nt.number_words(5, "xx")


def test_split_is_disjoint_complete_and_ten_percent_test():
    split = nt.split_numbers()
    train, val, test = (set(split[k]) for k in ("train", "val", "test"))
    assert not train & val and not train & test and not val & test
    assert train | val | test == set(range(1, 10000))
    assert len(test) == 1000 and len(val) == 900
    small = nt.split_numbers(999)
    for name in ("train", "val", "test"):  # Part B keeps every number's part
        assert set(small[name]) == {n for n in split[name] if n <= 999}
    assert experiment.META_TRAIN and not set(experiment.META_TEST) & (set(experiment.META_TRAIN)
                                                                     | set(experiment.META_VAL))
    assert not set(experiment.META_VAL) & set(experiment.META_TRAIN)


def test_target_mask_marks_the_translation_and_its_line_break_only():
    tokenizer = nt.make_tokenizer(("fr",), 20)
    text = "x=un\nsix=six\nt"  # a window that begins inside an English phrase
    x = torch.tensor([tokenizer.encode(text[:-1])])
    mask = nt.target_mask(x, *tokenizer.encode("=\n"))[0].tolist()
    targets = text[1:]
    counted = "".join(c for c, m in zip(targets, mask) if m)
    assert counted == "un\nsix\n"


def test_pack_keeps_lines_whole_and_counts_only_translations():
    tokenizer = nt.make_tokenizer(("fr",), 30)
    lines = [nt.pair_line(n) for n in (1, 2, 21, 30)]
    x, y = nt.pack(lines, tokenizer, 24)
    rows = ["".join(tokenizer.decode([i]) for i in row.tolist()) for row in x]
    assert all(row.startswith("\n") for row in rows)
    counted = "".join(tokenizer.decode([t]) for t in y.flatten().tolist() if t != nt.IGNORE)
    assert counted == "un\ndeux\nvingt et un\ntrente\n"
    with pytest.raises(nt.TranslationError, match="does not fit"):
        nt.pack(["un" * 15 + "=un\n"], tokenizer, 24)


def test_translation_loss_ignores_the_english_side():
    tokenizer = nt.make_tokenizer(("fr",), 30)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, context_length=32, n_layer=1, n_head=2, d_model=16))
    x, y = nt.pack([nt.pair_line(n) for n in (3, 12)], tokenizer, 32)
    wrapped = nt.TranslationLoss(model, tokenizer)
    _, loss = wrapped(x, x.roll(-1, 1))
    assert torch.allclose(loss, nt.masked_loss(model(x), y))


def test_greedy_decoding_matches_step_by_step_argmax():
    tokenizer = nt.make_tokenizer(("fr",), 30)
    torch.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, context_length=48, n_layer=1, n_head=2, d_model=16))
    prompts = [nt.prompt(n) for n in (3, 12, 21)]
    got = nt.translate(model, tokenizer, prompts, max_chars=8)
    for text, answer in zip(prompts, got):
        ids = tokenizer.encode(text)
        expected = ""
        for _ in range(8):
            token = int(model(torch.tensor([ids]))[0][0, -1].argmax())
            if tokenizer.decode([token]) == "\n":
                break
            expected += tokenizer.decode([token])
            ids.append(token)
        assert answer == expected
    with pytest.raises(nt.TranslationError, match="leaves no room"):
        nt.translate(model, tokenizer, ["\n" + "one" * 20 + "="])


def test_analogy_baseline_glues_a_beginning_and_an_ending():
    pairs = {n: nt.number_words(n, "fr") for n in range(1, 3000) if n != 1345}
    analogy = nt.Analogy(pairs)
    assert analogy.endings[45] == "quarante-cinq"
    assert analogy(1345) == "mille trois cent quarante-cinq"
    assert analogy(5678) == ""  # no training number begins with 56 hundred
    assert nt.Analogy({45: "quarante-cinq"})(45) == "quarante-cinq"


def test_exact_match_and_mcnemar():
    assert nt.exact_matches(["sept", "huit"], [7, 9], "fr") == [True, False]
    with pytest.raises(nt.TranslationError, match="2 predictions for 1 numbers"):
        nt.exact_matches(["a", "b"], [1], "fr")
    assert nt.mcnemar_p([True] * 10, [True] * 10) == 1.0
    assert nt.mcnemar_p([True] * 10, [False] * 10) == pytest.approx(2 / 2 ** 10)


def test_shipped_results_agree_with_their_outcomes():
    path = RESULTS_DIR / "translation.json"
    if not path.exists():
        pytest.skip("python -m book.experiments.number_translation has not written its results yet")
    payload = read_results("translation")
    rows = {(r["task"], r["method"]): r for r in payload["results"]}
    if "part_a" in payload:
        part = payload["part_a"]
        row = rows["English -> French, numbers 1-9999", "GPT trained from scratch (greedy)"]
        assert row["n"] == len(part["test_outcomes"]) == 1000
        assert row["value"] == pytest.approx(sum(part["test_outcomes"]) / 1000, abs=1e-6)
        assert row["ci95"] == pytest.approx(list(wilson_interval(sum(part["test_outcomes"]), 1000)), abs=1e-6)
    if "part_b" in payload:
        for key, outcome in payload["part_b"]["outcomes"].items():
            language, method = key.split("/", 1)
            task = f"held-out language {nt.LANGUAGES[language]}, K=32, numbers 1-999"
            assert rows[task, method]["value"] == pytest.approx(sum(outcome) / len(outcome), abs=1e-6)


def test_table_reads_the_results_file():
    if not (RESULTS_DIR / "translation.json").exists():
        pytest.skip("no results yet")
    table = nt.translation_table()
    assert table and all(r["95% low"] <= r["exact match"] <= r["95% high"] for r in table)
    text = nt.format_table(table)
    assert all(r["method"] in text for r in table)


def test_demo_translates_test_numbers_with_the_shipped_model():
    if not (nt.MODEL_DIR / "fr" / "checkpoint.json").exists():
        pytest.skip("no shipped Part A model yet")
    rows = nt.demo(count=3)
    assert len(rows) == 3 and all(r["number"] in nt.split_numbers()["test"] for r in rows)
    assert all(r["correct"] == (r["model"] == r["reference"]) for r in rows)
    with pytest.raises(nt.TranslationError, match="count must be positive"):
        nt.demo(count=0)


def _record(losses, switch=0):
    every = experiment.LOG_EVERY
    return {"log": {"iteration": [every * (i + 1) for i in range(len(losses))], "loss_bits": losses},
            "switch_iteration": switch}


def test_a_run_is_finished_only_when_its_loss_stopped_moving():
    flat = experiment.flatness(_record([5.0] * 40 + [1.0] * 60))
    assert flat["flat"] and flat["change_bits"] == 0.0 and flat["window_iterations"] == 625
    falling = experiment.flatness(_record([3.0 - 0.01 * i for i in range(100)]))
    assert not falling["flat"] and falling["change_bits"] < -experiment.FLAT_BITS
    # Only the iterations after the last switch of objective count: 8 MAML iterations are too few.
    assert experiment.flatness(_record([1.0] * 100, switch=2300))["change_bits"] is None


def test_part_b_alone_keeps_part_a_rows(monkeypatch, tmp_path):
    from book.applications import results

    monkeypatch.setattr(results, "RESULTS_DIR", tmp_path)
    a_row = results.proportion("translation", "English -> French, numbers 1-9999", "exact match", "GPT", 9, 10)
    monkeypatch.setattr(experiment, "part_a", lambda *a: {"rows": [a_row], "extra": {"part_a": {"x": 1}}})
    b_task = "held-out language Italian, K=32, numbers 1-999"
    for value in (3, 4):
        row = results.proportion("translation", b_task, "exact match", "MetaGPT", value, 10)
        monkeypatch.setattr(experiment, "part_b", lambda *a, row=row: {"rows": [row], "extra": {"part_b": {}}})
        assert experiment.main(["--part", "A" if value == 3 else "B", "--quiet"]) == 0
    payload = results.read_results("translation")
    assert payload["part_a"]["x"] == 1 and payload["part_a"]["command"].endswith("--part A --quiet")
    assert sorted((r["task"], r["value"]) for r in payload["results"]) == [(a_row.task, 0.9), (b_task, 0.4)]


def test_shipped_part_b_is_the_default_command_with_equal_budgets():
    path = RESULTS_DIR / "translation.json"
    if not path.exists() or "part_b" not in read_results("translation"):
        pytest.skip("Part B has not been run yet")
    payload = read_results("translation")
    part = payload["part_b"]
    prefix = "python -m book.experiments.number_translation "
    assert part["command"].startswith(prefix)
    # the recorded arguments are the defaults (--quiet only hides progress bars)
    recorded = experiment.parse_args(part["command"][len(prefix):].split())
    assert (recorded.part, recorded.budget, recorded.steps) == ("B", experiment.BUDGET, None)
    assert part["budget_cpu_seconds"] == experiment.BUDGET and part["model"] == experiment.B_MODEL
    for record in part["records"].values():
        # Each run stops at its first iteration past the budget: equal CPU budgets, to an iteration.
        assert experiment.BUDGET <= record["cpu_seconds"] <= experiment.BUDGET + 10
        assert record["finished"] == experiment.flatness(record)
    rows = {(r["task"], r["method"]): r for r in payload["results"]}
    pooled = "3 held-out languages pooled, K=32, numbers 1-999"
    methods = {key.split("/", 1)[1] for key in part["outcomes"]}
    for method in methods:
        outcome = [x for lang in experiment.META_TEST for x in part["outcomes"][f"{lang}/{method}"]]
        row = rows[pooled, method]
        assert row["n"] == len(outcome) and row["value"] == pytest.approx(sum(outcome) / len(outcome), abs=1e-6)
        assert row["ci95"] == pytest.approx(list(wilson_interval(sum(outcome), len(outcome))), abs=1e-6)
    meta, tuned = "pretrain-maml (MetaGPT)", "pretrained, fine-tuned"
    first = [x for lang in experiment.META_TEST for x in part["outcomes"][f"{lang}/{meta}"]]
    second = [x for lang in experiment.META_TEST for x in part["outcomes"][f"{lang}/{tuned}"]]
    assert part["mcnemar_p_maml_vs_finetune_pooled"] == pytest.approx(nt.mcnemar_p(first, second), abs=1e-6)
