"""The sinusoid benchmark of the MAML paper: tasks, baselines, checkpoints and the command line."""
import json
import math
import subprocess
import sys

import pytest
import torch

from book.experiments import sinusoid


def test_tasks_follow_the_paper_ranges():
    tasks, amplitude, phase = sinusoid.sample_tasks(50, shots=10, queries=7, generator=torch.Generator().manual_seed(0))
    assert tasks.x_support.shape == (50, 10, 1) and tasks.x_query.shape == (50, 7, 1)
    assert tasks.y_support.shape == (50, 10, 1) and tasks.y_query.shape == (50, 7, 1)
    assert amplitude.min() >= 0.1 and amplitude.max() <= 5.0
    assert phase.min() >= 0.0 and phase.max() <= math.pi
    assert tasks.x_support.abs().max() <= 5.0
    expected = amplitude[:, None, None] * torch.sin(tasks.x_query - phase[:, None, None])
    torch.testing.assert_close(tasks.y_query, expected)
    with pytest.raises(ValueError, match="at least one"):
        sinusoid.sample_tasks(3, shots=0, queries=5, generator=torch.Generator())


def test_network_is_the_papers():
    network = sinusoid.make_network()
    shapes = [tuple(p.shape) for p in network.parameters()]
    assert shapes == [(40, 1), (40,), (40, 40), (40,), (1, 40), (1,)]


def test_test_tasks_are_fixed_and_share_waves_across_k():
    first, waves = sinusoid.test_tasks(30)
    second, _ = sinusoid.test_tasks(30)
    for k in sinusoid.EVAL_SHOTS:
        assert first[k].shots == k and first[k].num_tasks == 30
        torch.testing.assert_close(first[k].x_support, second[k].x_support)
    torch.testing.assert_close(first[5].y_query, first[20].y_query)


def test_oracle_recovers_the_wave():
    batches, _ = sinusoid.test_tasks(20)
    for k in sinusoid.EVAL_SHOTS:
        assert sinusoid.oracle_mse(batches[k]).max() < 1e-10


def test_confidence_interval():
    values = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert sinusoid.confidence_95(values) == pytest.approx(1.96 * values.std().item() / 2)


def test_shipped_checkpoints_load():
    for method in sinusoid.METHODS:
        network = sinusoid.load_network(method)
        record = sinusoid.load_record(method)
        assert record["method"] == method and record["iterations"] > 0 and record["seconds"] > 0
        assert network(torch.zeros(3, 1)).shape == (3, 1)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(sinusoid.CheckpointError, match="no checkpoint"):
        sinusoid.load_network("maml", tmp_path)
    network, record = sinusoid.train("pretrained", iterations=2, progress=False)
    sinusoid.save_checkpoint(network, record, tmp_path)
    (tmp_path / "pretrained.safetensors").rename(tmp_path / "maml.safetensors")
    with pytest.raises(sinusoid.CheckpointError, match="saved for method 'pretrained'"):
        sinusoid.load_network("maml", tmp_path)
    with pytest.raises(ValueError, match="unknown method 'mamal'"):
        sinusoid.train("mamal", iterations=1)


def test_shipped_results_reach_the_target():
    """At K=10, MAML after one step: MSE <= 0.5 and at most half the pretrained baseline's."""
    rows = json.loads((sinusoid.CHECKPOINTS / "results.json").read_text())["results"]
    maml = sinusoid.lookup(rows, 10, "maml", 1)["mse"]
    pretrained = sinusoid.lookup(rows, 10, "pretrained", 1)["mse"]
    assert maml <= 0.5 and maml <= pretrained / 2, (maml, pretrained)


def test_seed_summary_is_results_json_for_seed_0_and_its_mean():
    summary = json.loads((sinusoid.CHECKPOINTS / "seeds.json").read_text())
    rows = json.loads((sinusoid.CHECKPOINTS / "results.json").read_text())["results"]
    assert [entry["seed"] for entry in summary["seeds"]] == [0, 1, 2]
    for method in sinusoid.SEED_METHODS:
        for steps, mse in summary["seeds"][0][method].items():
            assert abs(mse - sinusoid.lookup(rows, summary["K"], method, int(steps))["mse"]) < 1e-3
            values = [entry[method][steps] for entry in summary["seeds"]]
            assert abs(summary["mean"][method][steps] - sum(values) / 3) < 1e-3
    assert summary["mean"]["maml"]["1"] <= 0.5 <= summary["mean"]["pretrained"]["1"]


def check_report(report, tasks):
    assert set(report) >= {"results"}
    assert report["test_tasks"] == tasks
    rows = report["results"]
    keys = {(r["K"], r["method"], r["steps"]) for r in rows}
    assert keys == {(k, m, s) for k in (5, 10, 20) for m in sinusoid.ALL_METHODS for s in range(11)}
    for row in rows:
        assert set(row) == {"K", "method", "steps", "mse", "ci95", "diverged"}
        assert isinstance(row["mse"], float) and math.isfinite(row["mse"]) and row["mse"] >= 0
        assert isinstance(row["ci95"], float) and row["ci95"] >= 0


def test_command_line_json_on_shipped_weights():
    result = subprocess.run([sys.executable, "-m", "book.experiments.sinusoid", "--json", "--tasks", "20"],
                            capture_output=True, text=True, timeout=300, check=True)
    check_report(json.loads(result.stdout), 20)


def test_command_line_train_json(tmp_path, capsys):
    code = sinusoid.main(["--train", "--iterations", "3", "--checkpoints", str(tmp_path), "--tasks", "4", "--json"])
    assert code == 0
    check_report(json.loads(capsys.readouterr().out), 4)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved["training"]) == set(sinusoid.METHODS)
    assert all(saved["training"][m]["iterations"] == 3 for m in sinusoid.METHODS)


def test_command_line_table_and_errors(tmp_path, capsys):
    assert sinusoid.main(["--checkpoints", str(tmp_path), "--tasks", "4"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sinusoid.main(["--tasks", "1"])
