"""The code-generation application: its corpus, its tasks, their metrics and the shipped results."""
import ast
import json
import pathlib

import pytest
import torch

from book import train
from book.applications import TaskError, codegen, exact_match
from book.data import DataError, load_code_corpus
from book.experiments import code_adaptation
from book.model import GPT, GPTConfig
from book.tokenize import CharTokenizer

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def corpus():
    return load_code_corpus()


def test_whole_modules_are_held_out(corpus):
    heldout, train = corpus.heldout_names, corpus.train_names
    assert 10 <= len(heldout) <= 20 and not set(heldout) & set(train)
    assert sorted(heldout + train) == sorted(corpus.modules)
    train_text, val_text = corpus.split()
    # A distinctive stretch of every held-out module is absent from the training text.
    for name in heldout:
        text = corpus.modules[name]
        middle = text[len(text) // 2: len(text) // 2 + 200]
        assert middle in val_text and middle not in train_text, name


def test_training_command_reads_the_same_split(corpus):
    train_ids, val_ids, description, tokenizer = train.load_data("stdlib", val_fraction=0.1)
    train_text, val_text = corpus.split()
    assert tokenizer.decode(train_ids.tolist()) == train_text
    assert tokenizer.decode(val_ids.tolist()) == val_text
    assert f"{len(corpus.heldout_names)} held out" in description


def test_corpus_is_ascii_python(corpus):
    assert all(text.isascii() for text in corpus.modules.values())
    for name in ("os", "random", "string"):
        ast.parse(corpus.modules[name])


def test_missing_corpus_file_names_the_fix(tmp_path):
    with pytest.raises(DataError, match="prepare_code_corpus.py"):
        load_code_corpus.__wrapped__(tmp_path / "absent.json.xz")


def test_line_tasks_are_the_text_that_follows_their_prompt(corpus):
    tasks = codegen.line_tasks(corpus, corpus.heldout_names, n=50, seed=3)
    assert tasks == codegen.line_tasks(corpus, corpus.heldout_names, n=50, seed=3)
    for task in tasks:
        assert len(task.prompt) == codegen.PROMPT_CHARS and task.prompt.endswith("\n")
        assert task.prompt + task.line + "\n" in corpus.modules[task.module]
        assert len(task.line.strip()) >= 8 and len(task.line) < codegen.LINE_CHARS


def test_line_tasks_from_within_a_line(corpus):
    whole = codegen.line_tasks(corpus, ["string"], n=30, seed=2)
    halves = codegen.line_tasks(corpus, ["string"], n=30, given=0.5, seed=2)
    for full, half in zip(whole, halves):
        assert len(half.prompt) == codegen.PROMPT_CHARS
        assert full.line.endswith(half.line) and 0 < len(half.line) < len(full.line)
        assert (full.prompt + full.line).endswith(half.prompt + half.line)
    with pytest.raises(TaskError, match="fraction"):
        codegen.line_tasks(corpus, ["string"], n=1, given=1.0)


def test_line_tasks_keep_to_their_region(corpus):
    text = corpus.modules["os"]
    for task in codegen.line_tasks(corpus, ["os"], n=20, region=(0.5, 1.0)):
        assert text.index(task.prompt + task.line) + codegen.PROMPT_CHARS >= len(text) // 2
    with pytest.raises(TaskError, match="only"):
        codegen.line_tasks(corpus, ["os"], n=10**6)


def test_reference_functions_parse_and_end_where_python_says(corpus):
    tasks = codegen.function_tasks(corpus, corpus.heldout_names, n=60, seed=1)
    for task in tasks:
        assert task.prompt.endswith(task.header + "\n") and len(task.prompt) == codegen.PROMPT_CHARS
        assert codegen.parses(task.header, task.body), task
        assert task.header + "\n" + task.body in corpus.modules[task.module]


def test_parses_accepts_functions_only():
    assert codegen.parses("    def f(x):", "        return x")
    assert codegen.parses("def f():", '    """doc\nat column zero\n"""')
    assert not codegen.parses("def f(x):", "    return (x")
    assert not codegen.parses("def f(x):", "    ")
    assert not codegen.parses("def f(x):", None)


def test_written_body_ends_at_the_dedent_that_parses():
    header = "    def f(x):"
    docstring = '        """doc\nmore\n"""\n        return x\n    def g'
    assert codegen._written_body(header, docstring) == '        """doc\nmore\n"""\n        return x'
    assert codegen._written_body(header, "        return (x\n    def g") == "        return (x"
    assert codegen._written_body(header, "        return x\n        return") is None


def test_metrics_and_copy_baseline():
    assert codegen.prefix_share(["abcd", "xbcd"], ["abcz", "abcd"]) == pytest.approx((3 / 4 + 0) / 2)
    task = codegen.LineTask("m", "x = 1\n\n", "y = 2")
    assert codegen.copy_previous_line([task]) == ["x = 1"]
    with pytest.raises(TaskError, match="whole lines"):
        codegen.copy_previous_line([codegen.LineTask("m", "x = 1\ny = ", "2")])
    with pytest.raises(ValueError):
        codegen.prefix_share(["a"], ["a", "b"])


def test_completions_stop_at_the_line_break(corpus):
    text = "".join(corpus.modules[name] for name in ("string", "bisect"))
    tokenizer = CharTokenizer.from_text(text)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, context_length=256, n_layer=1, n_head=2, d_model=16))
    tasks = codegen.line_tasks(corpus, ["string", "bisect"], n=5)
    completions = codegen.complete_lines(model, tokenizer, tasks, batch_size=2)
    assert len(completions) == 5 and not any("\n" in c for c in completions)
    bodies = codegen.write_bodies(model, tokenizer, codegen.function_tasks(corpus, ["string"], n=3), batch_size=2)
    assert len(bodies) == 3


def test_shipped_code_model_is_consistent_with_its_corpus(corpus):
    metadata = json.loads((ROOT / "checkpoints/stdlib-code/checkpoint.json").read_text())["metadata"]
    train_text, val_text = corpus.split()
    assert metadata["train_characters"] == len(train_text) and metadata["val_characters"] == len(val_text)


def test_shipped_adaptation_results_are_consistent(corpus):
    results = json.loads(code_adaptation.ADAPTATION_RESULTS.read_text())
    assert results["modules"] == corpus.heldout_names
    assert [tuple(s) for s in results["settings"]] == list(code_adaptation.ADAPTATION_SETTINGS)
    assert len(results["rows"]) == 1 + 2 * len(code_adaptation.ADAPTATION_SETTINGS)
    tasks = [task for name in corpus.heldout_names
             for task in codegen.line_tasks(corpus, [name], n=results["lines_per_module"], given=results["given"],
                                            seed=results["seed"], region=(0.5, 1.0))]
    assert results["references"] == [task.line for task in tasks]
    for row in results["rows"].values():
        assert row["exact_match"] == exact_match(row["predictions"], results["references"])
        assert row["prefix_share"] == round(codegen.prefix_share(row["predictions"], results["references"]), 4)


def test_command_rejects_bad_settings_and_checkpoints(tmp_path, capsys):
    out = tmp_path / "code.json"
    for bad in (["--steps", "0"], ["--lr", "0"], ["--lr", "nan"]):
        with pytest.raises(SystemExit) as exit_info:
            code_adaptation.main(["--out", str(out), *bad])
        assert exit_info.value.code == 2 and "must be positive" in capsys.readouterr().err
    assert code_adaptation.main(["--out", str(out), "--checkpoint", str(tmp_path / "absent")]) == 2
    assert "absent" in capsys.readouterr().err and not out.exists()
