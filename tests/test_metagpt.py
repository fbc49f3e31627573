"""MetaGPT experiment: training steps, the count-based and in-context baselines, the protocol, the shipped results."""
import json
import math
import subprocess
import sys

import pytest
import torch

from book.experiments import metagpt
from book.model import GPT
from book.tasks import DialectFamily, Task


def tiny_gpt(seed=0):
    torch.manual_seed(seed)
    return GPT.from_config(vocab_size=84, context_length=metagpt.WINDOW, n_layer=1, n_head=2, d_model=16)


def dialect_tasks(count=4, split="train"):
    return DialectFamily().sample(split, count, seed=0, support=metagpt.SUPPORT, query=metagpt.QUERY,
                                  length=metagpt.WINDOW)


def test_one_maml_step_lowers_the_adapted_query_loss():
    model, tasks = tiny_gpt(), dialect_tasks()

    def adapted_loss():
        return sum(metagpt.adaptation_curve(model, t, metagpt.INNER_LR, steps=1)[1] for t in tasks)

    before = adapted_loss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(3):
        metagpt.maml_step(model, optimizer, tasks)
    assert adapted_loss() < before


def test_sgd_steps_are_the_inner_loop_of_book_maml():
    model, task = tiny_gpt(), dialect_tasks(1)[0]
    weights = metagpt.sgd_steps(model, metagpt.parameters(model), task.support, 0.2, 3)
    net = tiny_gpt()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.2)
    for _ in range(3):
        loss = net(task.support[:, :-1], task.support[:, 1:])[1]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for name, p in net.named_parameters():
        torch.testing.assert_close(weights[name], p.detach(), atol=1e-5, rtol=1e-4)


def test_adaptation_curve_has_one_point_per_step_and_caps_blow_ups():
    model, task = tiny_gpt(), dialect_tasks(1, "val")[0]
    curve = metagpt.adaptation_curve(model, task, 0.3, steps=3)
    assert len(curve) == 4 and curve[-1] < curve[0]
    assert metagpt.adaptation_curve(model, task, 1e6, steps=3)[-1] == metagpt.DIVERGED_BITS
    adam = metagpt.adaptation_curve(model, task, 3e-3, steps=3, optimizer="adam")
    assert adam[0] == curve[0] and adam[-1] < adam[0]
    with pytest.raises(metagpt.ExperimentError, match="unknown optimizer 'lbfgs'"):
        metagpt.adaptation_curve(model, task, 0.1, optimizer="lbfgs")
    net = metagpt.adapted(model, task, 3e-3, 3, optimizer="adam")  # the model the curve's last point measures
    with torch.no_grad():
        assert float(net(*task.query_xy)[1]) / math.log(2) == pytest.approx(adam[-1], abs=1e-9)
    assert all(torch.equal(p, q) for p, q in zip(metagpt.adapted(model, task, 0.3, 0).parameters(),
                                                   model.parameters()))


def test_choose_picks_the_best_step_size_and_count_within_the_budget():
    val = torch.tensor([[[3.0, 2.0, 1.0]], [[3.0, 2.5, 0.5]]])  # (lrs, tasks, steps)
    assert metagpt.choose(val, (0.1, 1.0), 1) == (0.1, 1)
    assert metagpt.choose(val, (0.1, 1.0), 2) == (1.0, 2)
    assert metagpt.choose(val, (0.1, 1.0), 0)[1] == 0


def test_count_learner_approaches_the_oracle_with_much_support_text():
    family = DialectFamily()
    chain = family.chain("test", 0)
    ids = torch.tensor(metagpt.shared_tokenizer().encode(family.alphabet))
    runs = ids[chain.sample(600, metagpt.WINDOW + 1, torch.Generator().manual_seed(0))]
    task = Task("long", runs[:500], runs[500:], chain.entropy_rate())
    prior = torch.full((84, 84), 1 / 84, dtype=torch.double)
    assert abs(metagpt.count_bits(task, prior, 1.0) - chain.entropy_rate()) < 0.05
    assert metagpt.count_bits(task, prior, 1e9) == pytest.approx(math.log2(84), abs=1e-3)  # all prior


def test_context_count_is_the_prior_at_the_first_position():
    prior = torch.full((84, 84), 1 / 84, dtype=torch.double)
    windows = dialect_tasks(1)[0].query
    bits = metagpt.context_count_bits(windows, prior, 3.0)
    assert bits.shape == (metagpt.WINDOW,)
    assert float(bits[0]) == pytest.approx(math.log2(84))
    assert float(bits[-8:].mean()) < float(bits[:8].mean())  # counting the context helps


def test_in_context_scores_exactly_the_query_targets():
    model, task = tiny_gpt(), dialect_tasks(1)[0]
    half = metagpt.WINDOW // 2
    total = 0.0
    with torch.no_grad():
        for window in task.query:
            for t in range(1, metagpt.WINDOW + 1):  # window[t] after the support's tail, or after 32+ own
                history = torch.cat([task.support[-1, -half:], window[:t]]) if t <= half else window[:t]
                logits, _ = model(history[None])
                total -= float(torch.log_softmax(logits[0, -1], -1)[window[t]])
    expected = total / (task.query.shape[0] * metagpt.WINDOW) / math.log(2)
    assert metagpt.in_context_bits(model, task) == pytest.approx(expected, rel=1e-4)


def test_finished_needs_a_flat_tail_of_three_thousand_iterations():
    flat = {"log": {"iteration": list(range(25, 5001, 25)), "loss_bits": [1.5] * 200}}
    falling = {"log": {"iteration": list(range(25, 5001, 25)), "loss_bits": [3 - i / 100 for i in range(200)]}}
    short = {"log": {"iteration": list(range(25, 1001, 25)), "loss_bits": [1.5] * 40}}
    assert metagpt.finished(flat)["flat"] and not metagpt.finished(falling)["flat"]
    assert metagpt.finished(short) == {"change_bits": None, "flat": False, "iterations_since_start": 1000}


def test_confidence_interval_treats_the_task_as_the_unit():
    per_seed = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.2, 2.2, 3.2, 4.2], [0.8, 1.8, 2.8, 3.8]])
    row = metagpt.summary_row("f", "m", 1, per_seed)
    assert row["tasks"] == 4 and row["seeds"] == 3
    assert row["ci95"] == pytest.approx(1.96 * float(torch.tensor([1.0, 2, 3, 4]).std()) / 2, abs=1e-4)
    assert row["seed_sd"] == pytest.approx(0.2, abs=1e-4)


def test_shipped_checkpoints_records_and_results():
    records = metagpt.load_records()
    for family in ("dialects", "cipher", "speakers"):
        for method in metagpt.TRAINED:
            runs = [r for r in records if r["family"] == family and r["method"] == method]
            assert len(runs) == 3 and all(r["iterations"] > 100 for r in runs)
            assert {r["budget_seconds"] for r in runs} == {metagpt.BUDGET_SECONDS[family]}
        assert metagpt.load(family, "maml", 0).config.context_length == 64
    results = metagpt.load_results()
    for family in ("dialects", "cipher", "speakers"):
        for method in metagpt.ADAPTED:
            for steps in metagpt.REPORT_STEPS:
                row = metagpt.lookup(results, family, method, steps)
                assert row["seeds"] == 3 and row["tasks"] >= 128 and row["ci95"] > 0
            if method != "finetune":
                assert math.isfinite(metagpt.paired(results, family, method, 10)["diff_vs_finetune"])
        assert metagpt.lookup(results, family, "count", 0)["bits_per_char"] > 0
        assert metagpt.lookup(results, family, "in-context", 0)["bits_per_char"] > 0


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(metagpt.ExperimentError, match="is missing; train it"):
        metagpt.load("dialects", "maml", 0, directory=tmp_path)
    with pytest.raises(metagpt.ExperimentError, match="unknown method"):
        metagpt.load("dialects", "anil", 0)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "book.experiments.metagpt", *args], capture_output=True,
                          text=True, timeout=600)


def test_cli_trains_and_evaluates_in_json(tmp_path):
    result = run_cli("--train", "--budget", "3", "--families", "dialects", "--seeds", "0", "--quiet",
                     "--checkpoints", str(tmp_path), "--tasks", "2", "--val-tasks", "2", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = report["results"]
    assert {r["method"] for r in rows} >= {"count", "in-context", "oracle", "maml", "pretrain-maml", "finetune"}
    maml = [r for r in rows if r["method"] == "maml"]
    assert [r["steps"] for r in maml] == [0, 1, 5, 10]
    assert set(maml[0]) >= {"family", "method", "steps", "bits_per_char", "ci95", "seeds", "tasks"}
    assert {p["method"] for p in report["paired"]} >= {"maml", "count"}
    assert set(report["paired"][0]) == {"family", "method", "steps", "diff_vs_finetune", "ci95"}


def test_alpha_sweep_trains_one_continuation_per_alpha_and_scores_on_validation(tmp_path):
    result = run_cli("--train", "--no-eval", "--budget", "3", "--families", "speakers", "--seeds", "0", "--quiet",
                     "--methods", "finetune", "--switch", "0.5", "--inner-lrs", "0.01", "0.1",
                     "--first-order", "--support-weight", "1", "--checkpoints", str(tmp_path))
    assert result.returncode == 0, result.stderr
    for alpha in (0.01, 0.1):
        folder = metagpt.sweep_directory(tmp_path, alpha)
        assert metagpt.trained_inner_lr("speakers", "pretrain-maml", 0, folder) == alpha
        assert (folder / "speakers-finetune-seed0").is_dir()
    finetune = [metagpt.load("speakers", "finetune", 0, metagpt.sweep_directory(tmp_path, a)) for a in (0.01, 0.1)]
    assert all(torch.equal(p, q) for p, q in zip(finetune[0].parameters(), finetune[1].parameters()))
    selection = metagpt.select_inner_lr("speakers", (0,), tmp_path, val_tasks=2, progress=False)
    assert set(selection["diff_vs_finetune"]) == {"0.01", "0.1"}
    worst = {a: max(d.values()) for a, d in selection["diff_vs_finetune"].items()}
    assert selection["chosen"] == float(min(worst, key=worst.get))
    assert (selection["switch"], selection["first_order"], selection["support_weight"]) == (0.5, True, 1.0)
    assert selection["clock"] == metagpt.BUDGET_CLOCK["speakers"] == "cpu"
    path = metagpt.sweep_results_path(tmp_path, "speakers")
    assert path.name == "sweep-speakers-switch0.5-first-order-support1-cpu-clock.json"


def test_runs_stop_on_their_familys_clock(monkeypatch):
    ticks = iter(range(1000))
    monkeypatch.setitem(metagpt.CLOCKS, "cpu", lambda: float(next(ticks)))
    monkeypatch.setitem(metagpt.CLOCKS, "wall", lambda: pytest.fail("speakers runs read the CPU clock"))
    steps = []
    log = metagpt.Log()
    end = metagpt._run(lambda model, optimizer, tasks: steps.append(len(tasks)) or 1.0, None,
                       torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), "speakers", 0,
                       start_fraction=0.0, end_fraction=1.0, budget=10.0, first_iteration=0, log=log,
                       progress=False, label="test")
    # One tick to start, then two per step (the check and the log): the tenth tick ends the run.
    assert end == len(steps) == 5 and steps == [metagpt.META_BATCH] * 5


def test_shipped_pretrain_maml_was_trained_with_the_families_recipe():
    for family in metagpt.FAMILIES:
        for seed in metagpt.SEEDS:
            assert metagpt.trained_inner_lr(family, "pretrain-maml", seed) == metagpt.PRETRAIN_INNER_LR[family]
            path = metagpt.checkpoint_path(metagpt.CHECKPOINTS, family, "pretrain-maml", seed) / "checkpoint.json"
            assert metagpt.recipe_of(json.loads(path.read_text())["metadata"]) == {
                "switch": metagpt.SWITCH[family], "first_order": metagpt.PRETRAIN_FIRST_ORDER[family],
                "support_weight": metagpt.PRETRAIN_SUPPORT_WEIGHT[family], "clock": metagpt.BUDGET_CLOCK[family]}
            assert metagpt.trained_inner_lr(family, "maml", seed) == metagpt.INNER_LR


@pytest.mark.parametrize("args, message", [
    (["--tasks", "0"], "must be a positive integer"),
    (["--methods", "anil"], "invalid choice: 'anil'"),
    (["--budget", "-1"], "must be a positive number of seconds"),
    (["--budget", "nan"], "must be a positive number of seconds"),
    (["--seeds", "-2"], "seeds are non-negative"),
    (["--switch", "1"], "strictly between 0 and 1"),
])
def test_cli_rejects_bad_arguments(args, message, capsys):
    with pytest.raises(SystemExit) as error:
        metagpt.parse_args(args)
    assert error.value.code == 2 and message in capsys.readouterr().err


def test_cli_reports_missing_checkpoints(tmp_path, capsys):
    code = metagpt.main(["--checkpoints", str(tmp_path), "--quiet", "--families", "dialects", "--seeds", "0",
                         "--tasks", "1", "--val-tasks", "1"])
    assert code == 2 and "is missing" in capsys.readouterr().err


def test_best_of_sweeps_picks_the_lowest_worst_budget_across_switch_points():
    sweeps = [{"switch": 0.9, "diff_vs_finetune": {"0.01": {"0": 0.02, "1": -0.05}, "0.1": {"0": 0.3, "1": -0.2}}},
              {"switch": 0.95, "diff_vs_finetune": {"0.01": {"0": 0.01, "1": 0.012}}}]
    assert metagpt.best_of_sweeps(sweeps) == (1, 0.01)
