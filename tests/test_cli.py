"""The commands `python -m book.train` and `python -m book.generate`, run as a reader runs them."""
import json
import os
import shutil
import subprocess
import sys

import pytest

TEXT = "Now is the winter of our discontent\nMade glorious summer by this sun of York;\n" * 30


def run(*args):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=600,
                          env={"TQDM_DISABLE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})


def assert_clean_error(result, *fragments):
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    data = folder / "richard.txt"
    data.write_text(TEXT, encoding="utf-8")
    out = folder / "model"
    result = run("book.train", "--data", str(data), "--preset", "tiny", "--iters", "6", "--out", str(out),
                 "--seed", "1")
    assert result.returncode == 0, result.stderr
    return data, out, result


def test_train_writes_a_checkpoint_and_reports(trained):
    data, out, result = trained
    last = result.stdout.strip().splitlines()[-1]
    values = dict(part.split("=") for part in last.split() if "=" in part)
    assert float(values["val_loss"]) > 0 and float(values["ms_per_iter"]) > 0
    assert {p.name for p in out.iterdir()} == {"model.safetensors", "checkpoint.json", "optimizer.safetensors"}
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["step"] == 6 and meta["model"]["n_layer"] == 1
    assert meta["metadata"]["command"].startswith("python -m book.train --data")
    assert meta["metadata"]["val_loss"] == pytest.approx(float(values["val_loss"]), abs=1e-4)


def test_resume(trained, tmp_path):
    data, out, _ = trained
    copy = tmp_path / "model"
    shutil.copytree(out, copy)
    result = run("book.train", "--data", str(data), "--preset", "tiny", "--out", str(copy), "--resume", "--iters", "9")
    assert result.returncode == 0, result.stderr
    meta = json.loads((copy / "checkpoint.json").read_text())
    assert meta["step"] == 9 and meta["history"]["steps"] == list(range(9))
    again = run("book.train", "--data", str(data), "--preset", "tiny", "--out", str(copy), "--resume", "--iters", "9")
    assert_clean_error(again, "already trained 9 steps")


def test_generate_is_reproducible(trained):
    _, out, _ = trained
    args = ("book.generate", "--checkpoint", str(out), "--prompt", "Now is", "--max-new-tokens", "30", "--seed", "3",
            "--top-k", "5", "--top-p", "0.9", "--temperature", "0.8")
    first, second = run(*args), run(*args)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert first.stdout.startswith("Now is") and len(first.stdout.rstrip("\n")) == 36
    greedy = run("book.generate", "--checkpoint", str(out), "--prompt", "Now", "--greedy", "--max-new-tokens", "5")
    assert greedy.returncode == 0 and greedy.stdout.startswith("Now")


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    (b"", "empty"),
    (b"\x00\x01\x02binary", "binary"),
    (b"\xff\xfe\xfa not utf-8", "not UTF-8"),
    (b"too short\n", "too short"),
])
def test_train_rejects_bad_data(tmp_path, content, message):
    data = tmp_path / "input.txt"
    if content is not None:
        data.write_bytes(content)
    result = run("book.train", "--data", str(data), "--preset", "tiny", "--out", str(tmp_path / "out"))
    assert_clean_error(result, message)


def test_generate_rejects_a_missing_checkpoint(tmp_path):
    assert_clean_error(run("book.generate", "--checkpoint", str(tmp_path / "none"), "--prompt", "a"),
                       "no such checkpoint")


def test_generate_rejects_a_mismatched_checkpoint(trained, tmp_path):
    _, out, _ = trained
    copy = tmp_path / "model"
    shutil.copytree(out, copy)
    meta = json.loads((copy / "checkpoint.json").read_text())
    meta["model"]["d_model"] = 32
    (copy / "checkpoint.json").write_text(json.dumps(meta))
    assert_clean_error(run("book.generate", "--checkpoint", str(copy), "--prompt", "a"), "another config")


def test_generate_rejects_unknown_characters(trained):
    _, out, _ = trained
    result = run("book.generate", "--checkpoint", str(out), "--prompt", "Now is the Z\u00e9phyr")
    assert_clean_error(result, "not in the vocabulary", "'Z'")


def test_the_final_step_is_saved_once_and_every_evaluation_before_it(tmp_path, monkeypatch):
    from book import train

    data = tmp_path / "richard.txt"
    data.write_text(TEXT, encoding="utf-8")
    saved = []
    real = train.save_checkpoint
    monkeypatch.setattr(train, "save_checkpoint", lambda *args, **kw: saved.append(kw["step"]) or real(*args, **kw))
    status = train.main(["--data", str(data), "--preset", "tiny", "--iters", "12", "--eval-interval", "4",
                         "--final-eval-iters", "2", "--out", str(tmp_path / "m"), "--quiet"])
    assert status == 0 and saved == [4, 8, 12]
    meta = json.loads((tmp_path / "m" / "checkpoint.json").read_text())
    assert meta["step"] == 12 and meta["metadata"]["val_loss_batches"] == 2


def test_the_commands_make_idle_threads_spin_briefly_unless_told_otherwise():
    from book import cpu

    cores = str(os.cpu_count() or 1)
    idle, busy = (lambda n: float(n)), (lambda n: n - 1.0)
    assert cpu.apply({}, measure=idle) == {"GOMP_SPINCOUNT": "3000", "OMP_NUM_THREADS": cores}
    assert cpu.apply({}, measure=lambda n: None) == {"GOMP_SPINCOUNT": "3000", "OMP_NUM_THREADS": cores}
    assert cpu.apply({"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "3"}, measure=busy) == {}
    assert cpu.apply({"OMP_WAIT_POLICY": "PASSIVE"}, measure=idle) == {"OMP_NUM_THREADS": cores}
    assert cpu.apply({"GOMP_SPINCOUNT": "10"}, measure=busy) == {"OMP_NUM_THREADS": cores}
    assert cpu.apply({"BOOK_CPU_DEFAULTS": "0"}, measure=busy) == {}
    probe = ("import os, book.train, torch; "
             "print(*(os.environ.get(k, '-') for k in ('GOMP_SPINCOUNT', 'OMP_WAIT_POLICY')))")
    # Without a setting of the reader's, the command applies one of its own (which one depends on how busy the
    # machine is as it starts); with one, it adds no spin count.
    for environment, expected in (({}, {"3000 -", "- PASSIVE"}), ({"OMP_WAIT_POLICY": "ACTIVE"}, {"- ACTIVE"})):
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=600,
                                env={"PATH": "/usr/bin:/bin", **environment})
        assert result.stdout.strip() in expected, result.stderr


def test_on_a_busy_machine_idle_threads_sleep_and_training_keeps_every_core():
    from book import cpu

    cores = str(os.cpu_count() or 1)
    if cores == "1":
        pytest.skip("one core: a busy machine cannot be told apart")
    applied = cpu.apply({}, measure=lambda n: n - 1.0)
    assert applied == {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": cores}
    assert cpu.training_threads(applied, measure=lambda n: 0.1) == int(cores)
    assert cpu.busy(lambda n: n - 0.6) and not cpu.busy(lambda n: n - 0.4) and not cpu.busy(lambda n: None)


def test_training_takes_the_cores_that_are_free_unless_the_reader_chose(tmp_path, monkeypatch):
    from book import cpu

    assert cpu.training_threads({"OMP_NUM_THREADS": "8"}, measure=lambda cores: 7.6) == 8
    assert cpu.training_threads({"OMP_NUM_THREADS": "8"}, measure=lambda cores: 2.7) == 3
    assert cpu.training_threads({"OMP_NUM_THREADS": "8"}, measure=lambda cores: 0.1) == 1  # never none
    assert cpu.training_threads({"OMP_NUM_THREADS": "8"}, measure=lambda cores: None) == 8  # no /proc/stat
    assert cpu.training_threads({}, measure=lambda cores: 0.1) is None  # OMP_NUM_THREADS was the reader's
    stat = tmp_path / "stat"
    snapshots = iter(["cpu  100 0 100 800 0 0 0 0 0 0\n", "cpu  250 0 150 900 100 0 0 0 0 0\n"])

    def read_next(seconds):
        stat.write_text(next(snapshots))

    read_next(0)
    monkeypatch.setattr(cpu.time, "sleep", read_next)
    # 400 jiffies passed, 200 of them idle or waiting for the disk: half of 4 cores free
    assert cpu.free_cores(4, stat_path=str(stat)) == 2.0
    assert cpu.free_cores(4, seconds=0, stat_path=str(tmp_path / "missing")) is None
