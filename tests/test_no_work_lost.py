"""The commands never lose work and fail with one clear line: overwrites, interrupted saves, bad settings."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_cli import TEXT, assert_clean_error, run

from book.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from book.distributed import DistributedError, resolve_device
from book.model import GPT
from book.tokenize import CharTokenizer
from book.training import make_optimizer

ENV = {"TQDM_DISABLE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.is_dir() else None


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("guard")
    data = folder / "richard.txt"
    data.write_text(TEXT, encoding="utf-8")
    out = folder / "model"
    result = run("book.train", "--data", str(data), "--preset", "tiny", "--iters", "4", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return data, out


def small_checkpoint(folder, step=3):
    tokenizer = CharTokenizer.from_text("abcdef")
    torch.manual_seed(0)
    model = GPT.from_config(vocab_size=tokenizer.vocab_size, context_length=8, n_layer=1, n_head=1, d_model=8)
    optimizer = make_optimizer(model, lr=1e-3, weight_decay=0.0, betas=(0.9, 0.99))
    model(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long))[1].backward()
    optimizer.step()
    save_checkpoint(folder, model, tokenizer, step=step, optimizer=optimizer)
    return model, optimizer


def test_train_refuses_to_replace_a_checkpoint_without_force(trained):
    data, out = trained
    before = snapshot(out)
    result = run("book.train", "--data", str(data), "--preset", "tiny", "--iters", "2", "--out", str(out))
    assert_clean_error(result, "already holds a checkpoint", "--force")
    assert snapshot(out) == before


def test_train_replaces_with_force(trained, tmp_path):
    data, out = trained
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    result = run("book.train", "--data", str(data), "--preset", "tiny", "--iters", "2", "--out", str(copy), "--force")
    assert result.returncode == 0, result.stderr
    assert json.loads((copy / "checkpoint.json").read_text())["step"] == 2


@pytest.mark.parametrize("problem", ["file", "unwritable", "resume-nothing", "both"])
def test_train_checks_its_output_before_any_work(trained, tmp_path, problem):
    data, _ = trained
    out = tmp_path / "out"
    extra = []
    if problem == "file":
        out.write_text("not a folder")
        message = "is a file"
    elif problem == "unwritable":
        out = "/proc/no-such-dir/out"
        message = "cannot be written"
    elif problem == "resume-nothing":
        extra, message = ["--resume"], "holds no checkpoint"
    else:
        extra, message = ["--resume", "--force"], "choose one"
    result = run("book.train", "--data", str(data), "--preset", "tiny", "--out", str(out), *extra)
    assert_clean_error(result, message)


@pytest.mark.parametrize("device, message", [("banana", "is not a device"), ("meta", "cannot train"),
                                             ("cuda:7" if torch.cuda.is_available() else "cuda", "CUDA")])
def test_devices_are_checked(device, message):
    with pytest.raises(DistributedError, match=message):
        resolve_device(device)
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("args, message", [
    (["--temperature", "nan"], "positive finite"),
    (["--temperature", "inf"], "positive finite"),
    (["--max-new-tokens", "99999999999999999999999"], "between 0 and"),
    (["--device", "banana"], "is not a device"),
    (["--top-p", "nan"], "--top-p must be in (0, 1]"),
])
def test_generate_rejects_bad_settings(trained, args, message):
    _, out = trained
    assert_clean_error(run("book.generate", "--checkpoint", str(out), "--prompt", "Now", *args), message)


def test_generate_streams_what_it_prints(trained):
    _, out = trained
    result = run("book.generate", "--checkpoint", str(out), "--prompt", "Now", "--greedy", "--max-new-tokens", "7")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Now") and len(result.stdout.rstrip("\n")) == 3 + 7


def test_every_file_is_written_atomically_and_records_its_step(tmp_path):
    small_checkpoint(tmp_path, step=3)
    assert not list(tmp_path.glob("*.tmp"))
    assert load_checkpoint(tmp_path).step == 3


def test_an_interrupted_save_is_caught_on_loading(tmp_path):
    """Weights of step 5 renamed into place, but the description still from step 3."""
    small_checkpoint(tmp_path, step=3)
    description = (tmp_path / "checkpoint.json").read_bytes()
    model, optimizer = small_checkpoint(tmp_path, step=5)
    (tmp_path / "checkpoint.json").write_bytes(description)
    with pytest.raises(CheckpointError, match="from step 5 but checkpoint.json says step 3"):
        load_checkpoint(tmp_path)


def test_damaged_descriptions_and_weights_name_the_problem(tmp_path):
    small_checkpoint(tmp_path)
    meta_path = tmp_path / "checkpoint.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps(dict(meta, step="abc")))
    with pytest.raises(CheckpointError, match=r"checkpoint.json.*step.*'abc'"):
        load_checkpoint(tmp_path)
    hostile = dict(meta, model=dict(meta["model"], context_length=10**9))
    meta_path.write_text(json.dumps(hostile))
    with pytest.raises(CheckpointError, match="position_embedding.weight has shape"):
        load_checkpoint(tmp_path)  # checked on shapes, before a 10^9-row table is allocated
    meta_path.write_text(json.dumps(meta))
    weights = load_file(tmp_path / "model.safetensors")
    weights["ln_f.weight"][0] = float("nan")
    save_file(weights, tmp_path / "model.safetensors", metadata={"step": str(meta["step"])})
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_checkpoint(tmp_path)


def test_student_edition_keeps_a_students_work(tmp_path):
    out = tmp_path / "student"
    first = run("book.tooling.student_edition", "--out", str(out))
    assert first.returncode == 0, first.stderr
    edited = out / "01_text_to_vectors.ipynb"
    edited.write_text(edited.read_text() + " ")
    before = snapshot(out)
    assert_clean_error(run("book.tooling.student_edition", "--out", str(out)), "--force")
    assert snapshot(out) == before
    assert_clean_error(run("book.tooling.student_edition", "--out", "/proc/no-such-dir/x"), "cannot be written")


def test_hf_export_refuses_to_write_over_its_own_checkpoint(trained):
    _, out = trained
    before = snapshot(out)
    assert_clean_error(run("book.hf", "export", "--checkpoint", str(out), "--out", str(out), "--force"),
                       "is the checkpoint itself")
    assert snapshot(out) == before


def test_sinusoid_rejects_zero_iterations():
    result = run("book.experiments.sinusoid", "--train", "--iterations", "0")
    assert result.returncode == 2 and "--iterations must be at least 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_codegen_checks_its_output_before_the_experiment(tmp_path):
    result = run("book.experiments.code_adaptation", "--out", str(tmp_path))
    assert result.returncode == 2 and "is a folder" in result.stderr and "Traceback" not in result.stderr
    result = run("book.experiments.code_adaptation", "--out", "/proc/no-such-dir/code.json")
    assert result.returncode == 2 and "cannot be written" in result.stderr


def test_train_prints_what_it_is_about_to_do(trained, tmp_path):
    data, _ = trained
    result = run("book.train", "--data", str(data), "--preset", "tiny", "--iters", "2", "--out", str(tmp_path / "m"))
    first = result.stdout.splitlines()[0]
    assert first.startswith("training on richard.txt:") and "parameters" in first and "device cpu" in first


def interrupt_when(process, ready, timeout=600):
    """Send Ctrl-C (SIGINT) to ``process`` once ``ready()`` holds; return its (stdout, stderr)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "never became ready"
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    return process.communicate(timeout=timeout)


def test_ctrl_c_during_training_keeps_the_last_checkpoint_and_it_resumes(trained, tmp_path):
    data, _ = trained
    out = tmp_path / "long"
    command = [sys.executable, "-m", "book.train", "--data", str(data), "--preset", "tiny", "--iters", "1000000",
               "--eval-interval", "3", "--out", str(out), "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    stdout, stderr = interrupt_when(process, lambda: (out / "checkpoint.json").is_file())
    assert process.returncode == 130
    assert stderr.strip() == "error: interrupted", stderr
    saved = load_checkpoint(out)  # every file belongs to the same step
    assert saved.step > 0 and saved.step % 3 == 0
    resumed = run("book.train", "--data", str(data), "--preset", "tiny", "--out", str(out), "--resume",
                  "--iters", str(saved.step + 2), "--final-eval-iters", "1")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "checkpoint.json").read_text())["step"] == saved.step + 2


def test_ctrl_c_during_generation_stops_cleanly_after_what_was_printed(trained):
    _, out = trained
    command = [sys.executable, "-m", "book.generate", "--checkpoint", str(out), "--prompt", "Now",
               "--max-new-tokens", "100000", "--no-cache"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    first = b""

    def streaming():
        nonlocal first
        first += os.read(process.stdout.fileno(), 64)  # blocks until the first characters arrive
        return first.startswith(b"Now") and len(first) > 3

    stdout, stderr = interrupt_when(process, streaming)
    assert process.returncode == 130
    assert stderr.decode().strip() == "interrupted" and b"Traceback" not in stderr
    assert len(first + stdout) < 3 + 100000


def test_ctrl_c_in_the_middle_of_a_save_waits_for_its_end(tmp_path, monkeypatch):
    """The interrupt arrives after the weights are renamed: the save still completes, then stops."""
    from book import checkpoint

    small_checkpoint(tmp_path, step=3)
    real = checkpoint.save_tensors

    def save_then_interrupt(tensors, path, metadata):
        real(tensors, path, metadata)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(checkpoint, "save_tensors", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        small_checkpoint(tmp_path, step=5)
    assert load_checkpoint(tmp_path).step == 5
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
