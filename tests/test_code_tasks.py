"""Code generation scored by running it: the function family's rules and splits, line completion, the statistics,
and the shipped results (python -m book.experiments.code)."""
import ast
import json
import math
import random

import pytest
import torch

from book.applications import TaskError, code_tasks, codegen, results
from book.applications.results import read_results, results_path, wilson_interval
from book.applications.sandbox import run_tests
from book.data import load_code_corpus
from book.experiments import code as experiment


@pytest.fixture(scope="module")
def splits():
    return code_tasks.function_splits()


def test_a_function_follows_its_rule():
    f = code_tasks.make_function("plus", "one", 7)
    assert f.source == 'def plus_7(x):\n    """Return x plus 7."""\n    return x + 7\n'
    assert f.tests[0] == "assert plus_7(-7) == 0" and f.name == "plus_7"
    g = code_tasks.make_function("tail", "each", 3)
    assert g.body == "    return [s[-3:] for s in ss]"
    assert "assert tail_3_each(['python', 'abcdefghijklmnopqrstuvwxyz']) == ['hon', 'xyz']" in g.tests
    h = code_tasks.make_function("max", "sum", 5)
    assert h.prompt.split("\n")[1] == '    """Return the sum of the larger of x and 5 for each x in xs."""'
    with pytest.raises(TaskError, match="no shape"):
        code_tasks.make_function("head", "sum", 3)
    with pytest.raises(TaskError, match="unknown operation"):
        code_tasks.make_function("divide", "one", 3)
    with pytest.raises(TaskError, match="outside"):
        code_tasks.make_function("plus", "one", 1)


def _namespace(function):
    # The family's own reference code (written by the rule above, not by a model).
    namespace = {}
    exec(function.source, namespace)  # noqa: S102
    return namespace[function.name]


def test_every_reference_passes_its_tests_and_tests_tell_functions_apart():
    family = [code_tasks.make_function(op, shape, k) for op, shape in code_tasks.templates()
              for k in code_tasks.CONSTANTS]
    for f in family:
        namespace = {}
        exec(f.source, namespace)  # noqa: S102
        for test in f.tests:
            exec(test, namespace)  # noqa: S102
    # No other function of the family with the same argument passes all of another's tests.
    by_argument = {}
    for f in family:
        by_argument.setdefault(f.prompt[f.prompt.index("("):f.prompt.index(")")], []).append(f)
    for group in by_argument.values():
        for f in random.Random(0).sample(group, 12):
            for g in group:
                if g is f:
                    continue
                namespace = {f.name: _namespace(g)}
                assert not all(_holds(test, namespace) for test in f.tests), (f.name, g.name)


def _holds(test, namespace):
    try:
        exec(test, dict(namespace))  # noqa: S102
    except AssertionError:
        return False
    return True


def test_references_pass_in_the_sandbox():
    for op, shape in code_tasks.templates()[::6]:
        f = code_tasks.make_function(op, shape, 9)
        assert run_tests(f.source, list(f.tests)).status == "passed", f.name


def test_splits_are_disjoint_and_held_out_by_rule(splits):
    train, validation, test = splits["train"], splits["validation"], splits["test"]
    assert (len(train), len(validation), len(test)) == (261, 135, 180)
    names = [f.name for f in train + validation + test]
    assert len(names) == len(set(names)) == len(code_tasks.templates()) * len(code_tasks.CONSTANTS)
    train_templates = {f.template for f in train}
    for held in code_tasks.VALIDATION_TEMPLATES + code_tasks.TEST_TEMPLATES:
        assert held not in train_templates
        # ...but its operation and its shape are each seen in training.
        assert any(t[0] == held[0] for t in train_templates) and any(t[1] == held[1] for t in train_templates)
    seen = {(f.template, f.constant) for f in train}
    for f in validation + test:
        assert (f.template, f.constant) not in seen
        assert code_tasks.split_kind(f) == ("held-out template" if f.template not in train_templates
                                            else "held-out constant")
    assert code_tasks.function_splits() == splits


def test_baselines(splits):
    train, test = splits["train"], splits["test"]
    for f in test:
        nearest = code_tasks.nearest_body(train, f)
        assert (nearest == f.body) == (code_tasks.split_kind(f) == "held-out constant"), f.name
    assert code_tasks.most_common_body(train, test[0]).startswith("    return ")


def test_written_body_and_prompts(splits):
    assert code_tasks.written_body("    return x + 1\n\ndef g(x):\n") == "    return x + 1"
    assert code_tasks.written_body("    y = x\n    return y\nprint(1)") == "    y = x\n    return y"
    assert code_tasks.written_body("return x") == ""
    context = code_tasks.context_text(splits["train"])
    names = {f.name for f in splits["validation"] + splits["test"]}
    assert len(context) >= code_tasks.PROMPT_WIDTH and not any(f"def {name}(" in context for name in names)


def test_mcnemar_exact():
    assert code_tasks.mcnemar_exact([False] * 5, [True] * 5) == {"gained": 5, "lost": 0, "p_value": 2 / 32}
    assert code_tasks.mcnemar_exact([True, False], [False, True])["p_value"] == 1.0
    assert code_tasks.mcnemar_exact([True, True], [True, True]) == {"gained": 0, "lost": 0, "p_value": 1.0}
    before = [False] * 30 + [True] * 4 + [True] * 20
    after = [True] * 30 + [False] * 4 + [True] * 20
    expected = 2 * sum(math.comb(34, i) for i in range(5)) / 2 ** 34
    assert code_tasks.mcnemar_exact(before, after)["p_value"] == pytest.approx(expected)
    scipy_stats = pytest.importorskip("scipy.stats")
    assert expected == pytest.approx(scipy_stats.binomtest(4, 34, 0.5).pvalue)
    with pytest.raises(TaskError, match="equally long"):
        code_tasks.mcnemar_exact([True], [])


def test_module_split_and_enough_test_lines():
    corpus = load_code_corpus()
    validation, test = code_tasks.module_split(corpus)
    assert not set(validation) & set(test) and sorted(validation + test) == sorted(corpus.heldout_names)
    lines = [code_tasks.module_line_tasks(corpus, m, most=experiment.TEST_LINES) for m in test]
    assert sum(map(len, lines)) >= 800
    for module, tasks in zip(test, lines):
        assert all(t.module == module and t.prompt + t.line in corpus.modules[module] for t in tasks)


def test_short_generation_scores_like_the_long_one():
    from book.checkpoint import load_checkpoint

    loaded = load_checkpoint(codegen.CODE_CHECKPOINT)
    corpus = load_code_corpus()
    tasks = code_tasks.module_line_tasks(corpus, "string", most=6)
    short = code_tasks.complete_rests(loaded.model, loaded.tokenizer, tasks)
    long = codegen.complete_lines(loaded.model, loaded.tokenizer, tasks)
    assert code_tasks.line_correct(short, tasks) == code_tasks.line_correct(long, tasks)
    for s, full, t in zip(short, long, tasks):
        assert full.startswith(s) and len(s) <= len(t.line) + 1


def test_the_step_grid_extends_until_validation_flattens():
    base = (25, 50, 100, 200)
    stop = experiment.extension_stop
    assert experiment.extended_steps(base, 1600) == (25, 50, 100, 200, 400, 800, 1600)
    assert experiment.extended_steps((25, 50), 199) == (25, 50, 100)
    assert not stop({25: 0, 50: 1, 100: 6}, base)  # the base grid is always evaluated
    assert not stop({25: 0, 50: 1, 100: 6}, experiment.FUNCTION_STEPS)
    assert not stop({25: 0, 50: 1, 100: 6, 200: 36}, base)  # rising: go on to 400
    assert stop({25: 0, 50: 0, 100: 0, 200: 0}, base)  # two flat doublings: stop
    assert not stop({25: 0, 50: 1, 100: 6, 200: 36, 400: 19}, base)  # one fall may be noise
    assert stop({25: 0, 50: 1, 100: 6, 200: 36, 400: 19, 800: 36}, base)  # two without a new best: stop
    assert not stop({25: 0, 50: 1, 100: 6, 200: 36, 400: 19, 800: 37}, base)
    assert not stop({25: 0, 50: 3, 100: 5, 200: 9, 400: 57, 800: 57}, base)  # 400 is a new best


def test_one_fine_tuning_run_continues_and_stops():
    from book.checkpoint import load_checkpoint

    model = load_checkpoint(codegen.CODE_CHECKPOINT).model
    data = torch.arange(400, dtype=torch.long) % 90

    def weight(net):
        return float(sum(p.detach().double().sum() for p in net.parameters()))

    whole = experiment.fine_tune_checkpoints(model, data, lr=1e-3, steps=(2, 4), seed=0, evaluate=weight)
    part = experiment.fine_tune_checkpoints(model, data, lr=1e-3, steps=(2,), seed=0, evaluate=weight)
    assert part[2] == whole[2] != whole[4]  # the evaluation at 4 steps continues the run evaluated at 2
    stopped = experiment.fine_tune_checkpoints(model, data, lr=1e-3, steps=(1, 2, 3), seed=0, evaluate=weight,
                                               stop=lambda found: len(found) == 2)
    assert list(stopped) == [1, 2]


def _fake_results(path, *, with_lines=True):
    rows = [results.proportion("code", "functions, all", "pass@1", "old writer", 1, 10).to_dict(),
            results.proportion("code", "line completion, held-out modules", "exact match",
                               "code model, 0 steps", 3, 9, is_baseline=True).to_dict(),
            results.Result("code", "line completion, held-out modules", "correct prefix share", "x", 0.25,
                           None, 9, False).to_dict()]
    payload = {"application": "code", "command": "python -m book.experiments.code", "wall_seconds": 99.0,
               "finished": "then", "functions": {"grid": []}, "results": rows}
    if with_lines:
        payload["lines"] = {"test_lines": 9, "per_line": {"before": [True, False]}}
    path.write_text(json.dumps(payload))
    return payload


def test_a_functions_only_run_keeps_the_line_part(tmp_path, monkeypatch):
    from book.checkpoint import load_checkpoint

    state = load_checkpoint(codegen.CODE_CHECKPOINT).model.state_dict()
    new_rows = [results.proportion("code", "functions, all", "pass@1", "new writer", 7, 10)]
    summary = {"grid": [{"steps": 400}], "chosen": {"steps": 400}}
    calls = []

    def fake_part(part, seed, started, quick=False):
        calls.append(part)
        return {"rows": new_rows, "writer": state, "summary": summary}

    monkeypatch.setattr(experiment, "_run_part", fake_part)
    out = tmp_path / "code.json"
    old = _fake_results(out)
    assert experiment.main(["--part", "functions", "--out", str(out),
                            "--checkpoint-out", str(tmp_path / "writer")]) == 0
    assert calls == ["functions"]
    new = json.loads(out.read_text())
    assert new["lines"] == old["lines"] and new["functions"] == summary
    assert new["results"][0]["method"] == "new writer" and new["results"][1:] == old["results"][1:]
    assert new["lines_from"] == {"command": old["command"], "wall_seconds": 99.0, "finished": "then"}
    assert new["command"].endswith(f"--part functions --out {out} --checkpoint-out {tmp_path / 'writer'}")
    # a file without a line part stops the command before anything is trained
    calls.clear()
    _fake_results(out, with_lines=False)
    with pytest.raises(results.ResultsError, match="no line-completion part"):
        experiment.main(["--part", "functions", "--out", str(out), "--checkpoint-out", str(tmp_path / "w2")])
    assert calls == []


def test_copy_baseline():
    assert experiment.copy_from_support("a = 1\nbcdef = foo(1)\n", "xxx\nbcdef = ") == "foo(1)"
    assert experiment.copy_from_support("abc", "zzzzzz") == ""


@pytest.fixture(scope="module")
def shipped():
    if not results_path("code").exists():
        pytest.skip("run python -m book.experiments.code first")
    return read_results("code")


def test_shipped_line_results_agree_with_their_items(shipped):
    lines = shipped["lines"]
    assert lines["test_lines"] >= 800 and not set(lines["validation_modules"]) & set(lines["test_modules"])
    grid = {(row["steps"], row["lr"]): row["validation_correct"] for row in lines["grid"]}
    best = experiment._best(grid)
    assert (lines["chosen"]["steps"], lines["chosen"]["lr"]) == best
    per_line = lines["per_line"]
    test = code_tasks.mcnemar_exact(per_line["before"], per_line["after"])
    assert test["p_value"] == pytest.approx(lines["mcnemar"]["p_value"])
    n = len(per_line["before"])
    rows = {row["method"]: row for row in shipped["results"] if row["metric"] == "exact match"}
    assert rows["code model, 0 steps"]["value"] == pytest.approx(sum(per_line["before"]) / n, abs=1e-6)
    assert rows["code model, 0 steps"]["ci95"] == pytest.approx(list(wilson_interval(sum(per_line["before"]), n)),
                                                                abs=1e-6)


def test_shipped_pass_at_1_agrees_with_its_items(shipped):
    functions = shipped["functions"]
    items = functions["test_items"]
    grid = {(row["steps"], row["lr"]): row["validation_passed"] for row in functions["grid"]}
    assert (functions["chosen"]["steps"], functions["chosen"]["lr"]) == experiment._best(grid)
    extension = functions["extension"]
    base = tuple(extension["base_steps"])
    allowed = experiment.extended_steps(base, extension["max_steps"])
    for run in extension["runs"]:  # each run went on exactly until its validation passes flattened
        passed = {steps: p for (steps, lr), p in grid.items() if lr == run["lr"]}
        assert tuple(sorted(passed)) == allowed[:allowed.index(run["last_steps"]) + 1]
        for steps in sorted(passed)[:-1]:
            assert not experiment.extension_stop({s: p for s, p in passed.items() if s <= steps}, base)
        assert experiment.extension_stop(passed, base) or run["last_steps"] == allowed[-1]
        flattened = experiment.extension_stop(passed, base)
        assert run["still_rising"] == (run["last_steps"] == allowed[-1] and not flattened)
    chosen_run = next(run for run in extension["runs"] if run["lr"] == functions["chosen"]["lr"])
    assert extension["chosen_still_rising"] == chosen_run["still_rising"]
    assert ("still rising" in extension["note"]) == chosen_run["still_rising"]
    for row in shipped["results"]:
        if row["metric"] != "pass@1":
            continue
        kind = row["task"].removeprefix("functions, ")
        chosen = [item for item in items if kind in ("all", item["kind"])]
        assert row["n"] == len(chosen)
        passed = sum(item[row["method"]] == "passed" for item in chosen)
        assert row["value"] == pytest.approx(passed / len(chosen), abs=1e-6)
    for example in functions["examples"]:
        ast.parse(example["prompt"] + "    pass\n")


def test_code_table_and_demo(shipped):
    table = code_tasks.code_table()
    summary = code_tasks.code_summary()
    assert summary["lines"]["n"] == shipped["lines"]["test_lines"] and "all" in summary["pass_at_1"]
    assert len(table) == len(shipped["results"]) and {"method", "value", "ci95"} <= set(table[0])
    if not code_tasks.FUNCTIONS_CHECKPOINT.exists():
        pytest.skip("no shipped function writer")
    shown = code_tasks.demo("plus", "one", 5)
    assert shown["program"].startswith("def plus_5(x):") and shown["split"] in ("train", "validation", "test")
    assert shown["status"] in ("passed", "failed", "error", "timeout", "memory", "refused")
