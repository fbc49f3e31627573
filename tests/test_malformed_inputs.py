"""Every command, given malformed input, stops with one clean error line and leaves its output alone.

For each command a table lists, per argument, one well-formed value and many malformed ones.
Every malformed value is tried on its own (all other arguments well-formed), then a seeded
random sample of pairs of malformed values. Each case must end with exit code 2, no traceback,
exactly one line on stderr that names the problem, and the output folder exactly as it was.
The commands run in this process, through their ``main(argv)``, so the whole table takes seconds.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import itertools
import json
import pathlib
import random
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from book import generate, hf, train
from book.checkpoint import save_checkpoint
from book.experiments import metagpt, sinusoid
from book.model import GPT
from book.tokenize import CharTokenizer
from book.training import make_optimizer

TEXT = "Now is the winter of our discontent\nMade glorious summer by this sun of York;\n" * 30
PAIRS_PER_COMMAND = 25
VALUE_OPTIONS = {"--data", "--out", "--prompt", "--methods", "--families", "--checkpoint"}


def first_module(*names):
    """The first of ``names`` that imports: modules move while the package is reorganised."""
    for name in names:
        with contextlib.suppress(ModuleNotFoundError):
            return importlib.import_module(name)
    raise ModuleNotFoundError(names[0])


student_edition = first_module("book.tooling.student_edition", "book.student_edition")
code_adaptation = first_module("book.experiments.code_adaptation", "book.experiments.codegen", "book.codegen")


@dataclasses.dataclass
class Command:
    name: str
    main: object
    good: dict[str, list[str]]  # argument -> its well-formed argv fragment, in command-line order
    bad: dict[str, list[list[str]]]  # argument -> malformed fragments
    never_together: tuple[frozenset, ...] = ()  # pairs of arguments whose malformed values may cancel out

    def argv(self, broken: dict[str, list[str]]) -> list[str]:
        return [part for name, fragment in self.good.items() for part in broken.get(name, fragment)]

    def pairs(self) -> list[dict]:
        """Every pair of malformed values of two arguments.

        An option left without its value is tried alone only: in a pair, it would take the next
        argument as its value.
        """
        pairable = {name: [value for value in values if value[-1] not in VALUE_OPTIONS]
                    for name, values in self.bad.items()}
        return [{a: va, b: vb} for a, b in itertools.combinations(self.bad, 2)
                if frozenset((a, b)) not in self.never_together
                for va in pairable[a] for vb in pairable[b]]

    def cases(self, seed: int = 0):
        """Each malformed value alone, then a seeded sample of the pairs."""
        singles = [{name: value} for name, values in self.bad.items() for value in values]
        pairs = self.pairs()
        sample = random.Random(seed).sample(pairs, min(PAIRS_PER_COMMAND, len(pairs)))
        return [self.argv(case) for case in singles + sample]


def snapshot(folder: pathlib.Path) -> dict:
    """Every file and folder under ``folder`` with its bytes: what "untouched" compares."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def run_in_process(command: Command, argv: list[str], capsys) -> tuple[int, str]:
    """(exit status, stderr) of ``command.main(argv)``; an exception escaping it fails the test."""
    capsys.readouterr()
    try:
        status = command.main(argv)
    except SystemExit as exit_:  # argparse
        status = exit_.code
    return status, capsys.readouterr().err


def assert_one_clean_error(command: Command, argv, status, stderr):
    lines = stderr.strip().splitlines()  # every command's parser is book.errors.CommandParser
    assert status == 2, (argv, status, stderr)
    assert "Traceback" not in stderr, (argv, stderr)
    assert len(lines) == 1 and "error: " in lines[0] and len(lines[0]) > len("error: ") + 5, (argv, stderr)


# --------------------------------------------------------------------------------- the inputs

@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """A folder holding good and malformed data files, and a checkpoint with damaged copies."""
    root = tmp_path_factory.mktemp("malformed")
    files = {
        "good.txt": TEXT.encode(), "empty.txt": b"", "blank.txt": b" \n\t\n", "binary.bin": b"\x00\x01\x02text",
        "latin1.txt": "caf\u00e9 cr\u00e8me\n".encode("latin-1") * 20, "short.txt": b"too short\n",
        "cut.txt": TEXT.encode()[:40] + b"\xe2\x82",  # a UTF-8 character cut in two at the end
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    (root / "folder").mkdir()
    good = root / "checkpoint"
    tokenizer = CharTokenizer.from_text(TEXT)
    torch.manual_seed(0)
    model = GPT.from_config(vocab_size=tokenizer.vocab_size, context_length=16, n_layer=1, n_head=2, d_model=16)
    optimizer = make_optimizer(model, lr=1e-3, weight_decay=0.0, betas=(0.9, 0.99))
    save_checkpoint(good, model, tokenizer, step=2, optimizer=optimizer)
    damaged = root / "damaged"
    damaged.mkdir()

    def copy(name, edit_meta=None, edit_weights=None, remove=None):
        folder = damaged / name
        shutil.copytree(good, folder)
        if edit_meta:
            meta = json.loads((folder / "checkpoint.json").read_text())
            (folder / "checkpoint.json").write_text(json.dumps(edit_meta(meta)))
        if edit_weights:
            weights = load_file(folder / "model.safetensors")
            edit_weights(weights)
            save_file(weights, folder / "model.safetensors", metadata={"step": "2"})
        if remove:
            (folder / remove).unlink()
        return str(folder)

    def model(**changes):
        return lambda meta: dict(meta, model=dict(meta["model"], **changes))

    def nan(weights):
        weights["ln_f.weight"][0] = float("nan")

    checkpoints = [
        copy("step-abc", lambda meta: dict(meta, step="abc")),
        copy("step-negative", lambda meta: dict(meta, step=-1)),
        copy("step-later", lambda meta: dict(meta, step=7)),  # the weights say step 2: an interrupted save
        copy("huge-context", model(context_length=10**9)),
        copy("huge-width", model(d_model=10**6)),
        copy("heads", model(n_head=3)),
        copy("vocabulary", model(vocab_size=5)),
        copy("unknown-setting", model(colour="blue")),
        copy("tokenizer", lambda meta: dict(meta, tokenizer={"type": "morse"})),
        copy("version", lambda meta: dict(meta, version=99)),
        copy("format", lambda meta: dict(meta, format="something else")),
        copy("a-list", lambda meta: [meta]),
        copy("nan-weights", edit_weights=nan),
        copy("no-weights", remove="model.safetensors"),
        copy("no-description", remove="checkpoint.json"),
        str(root / "nowhere"), str(root / "good.txt"), str(root / "folder"),
    ]
    garbage = copy("garbage-weights")
    pathlib.Path(garbage, "model.safetensors").write_bytes(b"not safetensors at all")
    truncated = copy("truncated-description")
    pathlib.Path(truncated, "checkpoint.json").write_text('{"format": ')
    checkpoints += [garbage, truncated]
    return root, good, [[c] for c in checkpoints]


NUMBERS = ["abc", "", "1.5", "nan", "0x10", "1e3"]  # not integers


@pytest.fixture(scope="module")
def commands(place, tmp_path_factory):
    root, checkpoint, damaged = place
    out = tmp_path_factory.mktemp("out")  # each command writes below here; nothing may change
    (out / "a-file").write_text("keep")
    edition = out / "edition"
    assert student_edition.main(["--out", str(edition)]) == 0
    data_files = [[str(root / name)] for name in ("nowhere.txt", "folder", "empty.txt", "blank.txt", "binary.bin",
                                                 "latin1.txt", "short.txt", "cut.txt")]
    devices = [["--device", name] for name in ("banana", "meta", "", "cpu:x", "cuda:99")]
    unwritable = "/proc/no-such-folder/out"
    table = [
        Command("train", train.main, good={
            "data": ["--data", str(root / "good.txt")], "preset": ["--preset", "tiny"],
            "out": ["--out", str(out / "model")], "iters": ["--iters", "2"], "seed": [], "device": [],
            "threads": [], "eval": [], "mode": ["--quiet"],
        }, bad={
            "data": [["--data", *value] for value in data_files] + [["--data"]],
            "preset": [["--preset", "huge"], ["--preset", ""]],
            "out": [["--out", str(out / "a-file")], ["--out", unwritable], ["--out", str(checkpoint)]],
            "iters": [["--iters", value] for value in ["0", "-1", *NUMBERS]],
            "seed": [["--seed", value] for value in ["-1", "99999999999999999999999", *NUMBERS]],
            "device": devices,
            "threads": [["--threads", value] for value in ["0", "-2", *NUMBERS]],
            "eval": [["--eval-interval", "0"], ["--eval-interval", "-3"], ["--final-eval-iters", "-1"],
                     ["--final-eval-iters", "x"]],
            "mode": [["--resume"], ["--resume", "--force"], ["--no-such-option"], ["--quiet", "extra"]],
        }, never_together=(frozenset({"out", "mode"}),)),
        Command("generate", generate.main, good={
            "checkpoint": ["--checkpoint", str(checkpoint)], "prompt": ["--prompt", "Now"],
            "tokens": ["--max-new-tokens", "3"], "sampling": [], "seed": [], "device": [],
        }, bad={
            "checkpoint": [["--checkpoint", *value] for value in damaged],
            "prompt": [["--prompt", ""], ["--prompt", "Z\u00e9phyr"], ["--prompt", "a\x00b"], ["--prompt"]],
            "tokens": [["--max-new-tokens", value] for value in ["-1", "99999999999999999999999", *NUMBERS]],
            "sampling": [["--temperature", value] for value in ["nan", "inf", "-inf", "-1", "0", "abc"]]
            + [["--top-k", value] for value in ["0", "-1", "1.5", "abc"]]
            + [["--top-p", value] for value in ["0", "-0.1", "1.5", "nan", "inf", "abc"]],
            "seed": [["--seed", value] for value in ["-1", "99999999999999999999999", *NUMBERS]],
            "device": devices,
        }),
        Command("hf export", hf.main, good={
            "command": ["export"], "checkpoint": ["--checkpoint", str(checkpoint)], "out": ["--out", str(out / "hf")],
        }, bad={
            "command": [["exprot"], ["--export"]],
            "checkpoint": [["--checkpoint", *value] for value in damaged],
            "out": [["--out", str(out / "a-file")], ["--out", unwritable], ["--out", str(edition)],
                    ["--out", str(checkpoint), "--force"]],
        }),
        Command("student edition", student_edition.main, good={
            "out": ["--out", str(out / "student")], "flags": [],
        }, bad={
            "out": [["--out", str(out / "a-file")], ["--out", unwritable], ["--out", str(edition)], ["--out"]],
            "flags": [["--forse"], ["extra"]],
        }),
        Command("sinusoid", sinusoid.main, good={
            "iterations": [], "tasks": [], "seed": [], "methods": [], "flags": ["--json"],
        }, bad={
            "iterations": [["--train", "--iterations", value] for value in ["0", "-5", *NUMBERS]],
            "tasks": [["--tasks", value] for value in ["0", "1", "-3", *NUMBERS]],
            "seed": [["--seed", value] for value in ["-1", *NUMBERS]],
            "methods": [["--methods", "magic"], ["--methods"]],
            "flags": [["--no-such-option"]],
        }),
        Command("metagpt", metagpt.main, good={
            "families": [], "seeds": [], "numbers": [], "flags": ["--json"],
        }, bad={
            "families": [["--families", "klingon"], ["--families"], ["--methods", "magic"]],
            "seeds": [["--seeds", value] for value in ["-1", *NUMBERS]],
            "numbers": [["--switch", value] for value in ["0", "1", "1.5", "nan", "abc"]]
            + [["--budget", value] for value in ["0", "-1", "nan", "inf", "abc"]]
            + [["--inner-lrs", value] for value in ["0", "-0.1", "nan", "abc"]]
            + [["--tasks", "0"], ["--val-tasks", "-2"], ["--tasks", "abc"]],
            "flags": [["--no-such-option"]],
        }),
        Command("code adaptation", code_adaptation.main, good={
            "out": ["--out", str(out / "code.json")], "steps": [], "lr": [],
        }, bad={
            "out": [["--out", str(out)], ["--out", unwritable + ".json"], ["--out"]],
            "steps": [["--steps", value] for value in ["0", "-1", *NUMBERS]],
            "lr": [["--lr", value] for value in ["0", "-1e-3", "abc", "", "nan", "inf"]],
        }),
    ]
    return out, checkpoint, edition, table


def test_every_command_refuses_malformed_input_cleanly(commands, capsys, monkeypatch, tmp_path):
    out, checkpoint, edition, table = commands
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.chdir(tmp_path)  # a stray relative path would land here, and be seen
    threads = torch.get_num_threads()
    watched = {folder: snapshot(folder) for folder in (out, checkpoint, tmp_path)}
    tried = 0
    for command in table:
        for argv in command.cases():
            status, stderr = run_in_process(command, argv, capsys)
            assert_one_clean_error(command, argv, status, stderr)
            for folder, before in watched.items():
                assert snapshot(folder) == before, (command.name, argv, "changed", folder)
            tried += 1
    assert torch.get_num_threads() == threads
    assert tried > 300  # the table is wide: every malformed value of every command, and pairs


def test_the_cases_cover_every_argument_alone_and_in_pairs(commands):
    *_, table = commands
    for command in table:
        cases = command.cases()
        singles = sum(map(len, command.bad.values()))
        assert len(cases) == singles + min(PAIRS_PER_COMMAND, len(command.pairs())), command.name
        assert len(set(map(tuple, cases))) == len(cases), command.name
        assert command.cases() == cases, "the sample is seeded"
