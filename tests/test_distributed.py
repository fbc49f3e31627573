"""`python -m book.train` under torchrun with DistributedDataParallel: 2 CPU processes (gloo)."""
import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch

from book.checkpoint import load_checkpoint
from book.data import load_corpus
from book.distributed import DistributedError, Process, check_batch_size, shard

ROOT = pathlib.Path(__file__).resolve().parent.parent
# One thread per process: two processes already fill this machine's two cores.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PYTHONPATH": str(ROOT)}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def run(command, cwd):
    result = subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    (folder / "hamlet.txt").write_text(load_corpus()["hamlet"].text)
    return folder


def train_command(out, iters, *extra):
    return ["-m", "book.train", "--data", "hamlet.txt", "--preset", "tiny", "--iters", str(iters),
            "--out", out, "--quiet", "--final-eval-iters", "4", *extra]


def test_two_processes_train_exactly_like_one_with_the_same_global_batch(text_file):
    run([sys.executable, *train_command("single", 10)], text_file)
    run([*TORCHRUN, *train_command("double", 10)], text_file)
    single, double = load_checkpoint(text_file / "single"), load_checkpoint(text_file / "double")
    # The same global batch, its rows split over the processes, the gradients averaged:
    # the trajectories agree up to floating-point rounding.
    torch.testing.assert_close(double.history.train_loss, single.history.train_loss, atol=1e-5, rtol=1e-5)
    for name, tensor in single.model.state_dict().items():
        # Adam divides by the root of tiny second moments, which magnifies rounding a little.
        torch.testing.assert_close(double.model.state_dict()[name], tensor, atol=1e-4, rtol=1e-3)
    assert double.metadata["processes"] == 2 and single.metadata["processes"] == 1


def test_every_process_holds_the_same_parameters_after_every_step(tmp_path):
    report = tmp_path / "sync.json"
    run([*TORCHRUN, str(ROOT / "tests" / "ddp_sync_worker.py"), str(report)], ROOT)
    result = json.loads(report.read_text())
    assert len(result["differences"]) == 6
    assert max(result["differences"]) == 0.0, result["differences"]
    assert result["eval_steps"] == [3, 6], "the main process evaluates"


def test_a_run_saved_under_ddp_resumes_and_loads_in_one_process(text_file):
    run([*TORCHRUN, *train_command("resumed-ddp", 5)], text_file)
    run([*TORCHRUN, *train_command("resumed-ddp", 10, "--resume")], text_file)
    run([sys.executable, *train_command("resumed-single", 5)], text_file)
    run([sys.executable, *train_command("resumed-single", 10, "--resume")], text_file)
    ddp, single = load_checkpoint(text_file / "resumed-ddp"), load_checkpoint(text_file / "resumed-single")
    assert ddp.step == single.step == 10
    torch.testing.assert_close(ddp.history.train_loss, single.history.train_loss, atol=1e-5, rtol=1e-5)
    generated = run([sys.executable, "-m", "book.generate", "--checkpoint", "resumed-ddp", "--prompt", "To be",
                     "--max-new-tokens", "10", "--greedy"], text_file)
    assert generated.stdout.startswith("To be")


def test_rows_of_a_batch_are_dealt_out_to_the_processes():
    rows = torch.arange(12).view(6, 2)
    parts = [shard(rows, Process(rank, 3)) for rank in range(3)]
    assert sorted(torch.cat(parts)[:, 0].tolist()) == rows[:, 0].tolist()
    assert parts[1][:, 0].tolist() == [2, 8]


def test_a_batch_that_does_not_split_evenly_is_refused():
    with pytest.raises(DistributedError, match="does not split evenly over 3 processes"):
        check_batch_size(4, Process(0, 3))
