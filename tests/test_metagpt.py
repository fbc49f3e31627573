"""MetaGPT experiment: the meta-gradient, one meta-step, checkpoints, and the command line."""
import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from book.experiments import metagpt
from book.maml import TaskBatch, maml_gradient, parameters_of
from book.model import GPT
from book.tasks import DialectFamily


def tiny_tasks(count=2, length=8):
    return DialectFamily().sample("train", count, seed=0, support=3, query=3, length=length)


def test_meta_gradient_matches_book_maml():
    torch.manual_seed(0)
    model = GPT.from_config(vocab_size=84, context_length=8, n_layer=1, n_head=2, d_model=8).double()
    tasks = tiny_tasks()
    params = metagpt.parameters(model)
    ours, loss = metagpt.meta_gradient(model, params, tasks, inner_lr=0.5, steps=1)
    s = torch.stack([t.support for t in tasks])
    q = torch.stack([t.query for t in tasks])
    batch = TaskBatch(s[..., :-1], s[..., 1:], q[..., :-1], q[..., 1:])

    def lm_loss(output, targets):
        return F.cross_entropy(output[0].flatten(0, 1), targets.flatten())

    with sdpa_kernel(SDPBackend.MATH):
        reference, reference_loss = maml_gradient(model, parameters_of(model), batch, loss_fn=lm_loss,
                                                  inner_lr=0.5, vectorize=False)
    assert loss == pytest.approx(float(reference_loss))
    for name in reference:
        torch.testing.assert_close(ours[name], reference[name])
    first_order, _ = metagpt.meta_gradient(model, params, tasks, inner_lr=0.5, first_order=True)
    assert any(not torch.allclose(first_order[n], ours[n]) for n in ours)  # second order matters


@pytest.mark.parametrize("method", ["maml", "fomaml", "reptile"])
def test_one_meta_step_lowers_the_query_loss(method):
    torch.manual_seed(0)
    model = GPT.from_config(vocab_size=84, context_length=8, n_layer=1, n_head=2, d_model=16)
    tasks = tiny_tasks(4)
    params = metagpt.parameters(model)

    def adapted_query_loss(p):
        return sum(metagpt.adaptation_curve(model, t, 0.4, steps=1)[1] for t in tasks)

    before = adapted_query_loss(params)
    if method == "reptile":
        direction, _ = metagpt.reptile_direction(model, params, tasks, inner_lr=0.4, steps=3)
    else:
        direction, _ = metagpt.meta_gradient(model, params, tasks, inner_lr=0.4, first_order=method == "fomaml")
    with torch.no_grad():
        for name, p in model.named_parameters():
            p -= 0.5 * direction[name] / max(float(direction[name].norm()), 1e-12) * 0.1
    assert adapted_query_loss(metagpt.parameters(model)) < before


def test_adaptation_curve_has_one_point_per_step():
    model = metagpt.make_model(0)
    task = DialectFamily().sample("val", 1, support=2, query=2)[0]
    curve = metagpt.adaptation_curve(model, task, 0.1, steps=3)
    assert len(curve) == 4 and curve[-1] < curve[0]
    assert metagpt.adaptation_curve(model, task, 1e6, steps=3)[-1] == metagpt.DIVERGED_BITS


def test_shipped_checkpoints_and_records():
    records = metagpt.load_records()
    for family in ("dialects", "speakers"):
        for method in metagpt.TRAINED:
            seeds = [r for r in records if r["family"] == family and r["method"] == method]
            assert len(seeds) >= 3 and all(r["seconds"] > 0 for r in seeds)
            model = metagpt.load(family, method, 0)
            assert model.config.d_model == 64
    results = metagpt.load_results()
    for family in ("dialects", "speakers"):
        for method in metagpt.METHODS:
            for steps in metagpt.EVAL_STEPS:
                row = metagpt.lookup(results, family, method, steps)
                assert row["seeds"] >= 3 and row["ci95"] > 0


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(metagpt.ExperimentError, match="cannot train 'scratch'"):
        metagpt.train("dialects", "scratch")
    with pytest.raises(metagpt.ExperimentError, match="unknown family"):
        metagpt.train("poems", "maml")
    with pytest.raises(metagpt.ExperimentError, match="is missing; train it"):
        metagpt.load("dialects", "maml", 0, directory=tmp_path)
    with pytest.raises(metagpt.ExperimentError, match="unknown method"):
        metagpt.load("dialects", "anil", 0)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "book.experiments.metagpt", *args], capture_output=True,
                          text=True, timeout=300)


def test_cli_json_format():
    result = run_cli("--json", "--quiet", "--families", "dialects", "--methods", "maml", "scratch", "--seeds", "0",
                     "--tasks", "2", "--lr", "0.4")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["results"]
    maml = [r for r in rows if r["method"] == "maml"]
    assert [r["steps"] for r in maml] == [0, 1, 5, 10]
    assert set(maml[0]) >= {"family", "method", "steps", "bits_per_char", "ci95", "seeds"}
    assert maml[0]["family"] == "dialects" and maml[0]["seeds"] == 1
    assert any(r["method"] == "oracle" for r in rows)


@pytest.mark.parametrize("args, message", [
    (["--tasks", "0"], "must be a positive integer"),
    (["--methods", "anil"], "invalid choice: 'anil'"),
    (["--lr", "-1"], "--lr must be a positive number"),
    (["--seeds", "-2"], "seeds are non-negative"),
])
def test_cli_rejects_bad_arguments(args, message, capsys):
    with pytest.raises(SystemExit) as error:
        metagpt.parse_args(args)
    assert error.value.code == 2 and message in capsys.readouterr().err


def test_cli_reports_missing_checkpoints(tmp_path, capsys):
    code = metagpt.main(["--checkpoints", str(tmp_path), "--quiet", "--methods", "maml", "--seeds", "0", "--tasks", "1"])
    assert code == 2 and "is missing" in capsys.readouterr().err
