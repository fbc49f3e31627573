"""The named presets of `python -m book.train --preset`: valid, described truly, and the ones that
made the shipped checkpoints still match them."""
import dataclasses
import json
import pathlib
import re

import pytest

from book.model import GPT, GPTConfig
from book.presets import PRESETS, get_preset
from book.training import TrainConfig

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_a_model_of_the_size_it_describes(name):
    preset = PRESETS[name]
    model = GPT(GPTConfig(vocab_size=65, **preset.model))
    c = model.config
    assert preset.training.context_length == c.context_length, "batches as long as the model's context"
    assert 0 < preset.val_fraction < 1
    numbers = {unit: int(value) for value, unit in re.findall(r"(\d+) (layers?|heads|dims|steps)", preset.description)}
    stated = {"layer": c.n_layer, "layers": c.n_layer, "heads": c.n_head, "dims": c.d_model,
              "steps": preset.training.max_steps}
    for unit, value in numbers.items():
        assert stated[unit] == value, f"{name}: description says {value} {unit}"
    for what, value in re.findall(r"(context|batch) (\d+)", preset.description):
        actual = c.context_length if what == "context" else preset.training.batch_size
        assert actual == int(value), f"{name}: description says {what} {value}, preset has {actual}"
    for high, low in re.findall(r"\((\S+) to (\S+)\)", preset.description):
        assert (preset.training.max_lr, preset.training.min_lr) == (float(high), float(low))


@pytest.mark.parametrize("checkpoint", ["shakespeare-char", "shakespeare-large", "stdlib-code"])
def test_the_shipped_checkpoints_were_trained_with_their_preset(checkpoint):
    saved = json.loads((ROOT / "checkpoints" / checkpoint / "checkpoint.json").read_text())
    preset = get_preset(saved["metadata"].get("preset", checkpoint))
    # Settings added later (with defaults) are absent from older checkpoints.
    vocab_size = saved["model"]["vocab_size"]
    assert GPTConfig(**saved["model"]) == GPTConfig(vocab_size=vocab_size, **preset.model)
    assert TrainConfig.from_dict(saved["training"]) == preset.training
    assert saved["step"] == preset.training.max_steps


def test_nanogpt_presets_follow_nanogpt_baby_gpt():
    """nanoGPT's shakespeare_char config with its CPU overrides (README): 4 layers, 4 heads, 128
    dims, context 64, batch 12, 2000 steps, dropout 0, no bias; the reference keeps its learning rates."""
    for name in ("nanogpt-cpu", "nanogpt-cpu-reference"):
        preset = PRESETS[name]
        assert preset.model == dict(n_layer=4, n_head=4, d_model=128, context_length=64, dropout=0.0, bias=False)
        assert (preset.training.batch_size, preset.training.max_steps) == (12, 2000)
    reference = PRESETS["nanogpt-cpu-reference"].training
    assert (reference.max_lr, reference.min_lr, reference.beta2) == (1e-3, 1e-4, 0.99)
    tuned = PRESETS["nanogpt-cpu"].training
    assert dataclasses.replace(tuned, max_lr=reference.max_lr, min_lr=reference.min_lr) == reference


def test_an_unknown_preset_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown preset 'huge'; choose one of: nanogpt-cpu, "):
        get_preset("huge")


def test_the_timing_rerun_of_the_larger_model_repeated_the_shipped_run():
    """checkpoints/shakespeare-large/timing-rerun.json is the record of the preset's command run again
    on an idle machine to time it (Chapter 8 prints its time); it times the shipped model only if it
    computed the same model: same settings, and the same loss at every step."""
    folder = ROOT / "checkpoints" / "shakespeare-large"
    shipped = json.loads((folder / "checkpoint.json").read_text())
    rerun = json.loads((folder / "timing-rerun.json").read_text())
    command = rerun["metadata"]["command"].split()
    command[command.index("--out") + 1] = "checkpoints/shakespeare-large"
    assert " ".join(command) == shipped["metadata"]["command"]
    for part in ("model", "tokenizer", "training", "step"):
        assert rerun[part] == shipped[part], part
    assert rerun["metadata"]["threads"] == shipped["metadata"]["threads"]
    for curve in ("train_loss", "learning_rate", "eval_steps", "val_loss"):
        assert rerun["history"][curve] == shipped["history"][curve], curve
    assert len(rerun["history"]["train_loss"]) == shipped["step"]
