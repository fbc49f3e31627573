"""The readers' knobs (book.viz.knobs), driven from Python as a reader drives the sliders.

Each test sets controls, then checks the shown result against the underlying function
called directly with the same settings: book.generate.complete for generation, the curve
function (or book.maml.finetune_curve) for adaptation.
"""
import io
import math

import pytest
import torch
import torch.nn.functional as F
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from PIL import Image

from book.experiments import sinusoid
from book.generate import complete
from book.maml import finetune_curve, parameters_of
from book.model import GPT
from book.tokenize import CharTokenizer
from book.viz.knobs import CONTROLS_TEXT, AdaptationKnob, GenerationKnob, KnobError, finetune_curves

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
TEXT = "to be or not to be, that is the question\nwhether tis nobler in the mind to suffer\n"


@pytest.fixture(scope="module")
def tiny():
    tokenizer = CharTokenizer.from_text(TEXT)
    torch.manual_seed(0)
    model = GPT.from_config(vocab_size=tokenizer.vocab_size, context_length=16, n_layer=1, n_head=2, d_model=16)
    return model.eval(), tokenizer


def expected_text(model, tokenizer, prompt, *, seed, **options):
    return complete(model, tokenizer, prompt, generator=torch.Generator().manual_seed(seed), **options)


# ---------------------------------------------------------------------------------------------- generation

def test_generation_default_matches_complete(tiny):
    model, tokenizer = tiny
    knob = GenerationKnob(model, tokenizer, "to be", seed=3, length=30)
    assert knob.error is None
    assert knob.text == expected_text(model, tokenizer, "to be", seed=3, max_new_tokens=30, temperature=1.0,
                                      top_k=None, top_p=None)
    plain = knob.bundle()["text/plain"]
    assert plain.splitlines()[0] == "temperature 1, top-k off, top-p off, seed 3, 30 new characters:"
    assert plain.endswith(knob.text)


@pytest.mark.parametrize("control, value, option", [
    ("temperature", 0.5, {"temperature": 0.5}),
    ("top_k", 3, {"top_k": 3}),
    ("top_p", 0.6, {"top_p": 0.6}),
    ("length", 12, {"max_new_tokens": 12}),
])
def test_each_slider_changes_the_text_as_complete_would(tiny, control, value, option):
    model, tokenizer = tiny
    knob = GenerationKnob(model, tokenizer, "to be", seed=5, length=40)
    before = knob.text
    getattr(knob, control).value = value  # what the front end does when the slider moves
    settings = dict(max_new_tokens=40, temperature=1.0, top_k=None, top_p=None) | option
    assert knob.text == expected_text(model, tokenizer, "to be", seed=5, **settings)
    assert knob.text != before


def test_seed_and_prompt_controls(tiny):
    model, tokenizer = tiny
    knob = GenerationKnob(model, tokenizer, "to be", seed=5, length=20)
    knob.seed.value = 6
    assert knob.text == expected_text(model, tokenizer, "to be", seed=6, max_new_tokens=20)
    knob.prompt.value = "the question"
    assert knob.text.startswith("the question")
    assert knob.text == expected_text(model, tokenizer, "the question", seed=6, max_new_tokens=20)


def test_update_sets_several_controls_and_computes_once(tiny, monkeypatch):
    model, tokenizer = tiny
    knob = GenerationKnob(model, tokenizer, "to be", length=20)
    calls = []
    compute = knob._compute
    monkeypatch.setattr(knob, "_compute", lambda: (calls.append(1), compute()))
    knob.update(temperature=0.7, top_k=4, top_p=0.9, seed=11)
    assert len(calls) == 1
    assert knob.text == expected_text(model, tokenizer, "to be", seed=11, max_new_tokens=20, temperature=0.7,
                                      top_k=4, top_p=0.9)
    assert knob.describe() == "temperature 0.7, top-k 4, top-p 0.9, seed 11, 20 new characters"


@pytest.mark.parametrize("prompt, message", [
    ("to be€", "€"),           # a character the model has never seen
    ("", "the prompt is empty"),
])
def test_a_bad_prompt_is_shown_not_raised(tiny, prompt, message):
    model, tokenizer = tiny
    knob = GenerationKnob(model, tokenizer, "to be", length=10)
    knob.prompt.value = prompt
    assert knob.error is not None and message in knob.error
    shown = knob.bundle()
    assert shown["text/plain"].startswith("error: ") and message in shown["text/plain"]
    assert "Traceback" not in shown["text/plain"]
    knob.prompt.value = "to be"  # a good value brings the result back
    assert knob.error is None and knob.text.startswith("to be")


@pytest.mark.parametrize("values, message", [
    ({"temperature": 0.0}, "temperature must be a number from 0.05 to 2"),
    ({"top_p": 1.5}, "top_p must be a number from 0.05 to 1"),
    ({"top_k": 2.5}, "top_k must be a whole number"),
    ({"length": -1}, "length must be a whole number from 1"),
    ({"temperature": math.nan}, "temperature must be a number"),
    ({"warmth": 1.0}, "no control named 'warmth'"),
])
def test_out_of_range_settings_are_explained(tiny, values, message):
    model, tokenizer = tiny
    knob = GenerationKnob(model, tokenizer, "to be", length=10)
    before = knob.temperature.value
    knob.update(**values)
    assert message in knob.error and knob.bundle()["text/plain"].startswith("error: KnobError")
    assert knob.temperature.value == before, "a refused setting leaves the sliders where they were"


def test_error_text_is_escaped_in_html():
    def failing(step_size, steps):
        raise ValueError("<img src=x onerror=alert(1)>")

    shown = AdaptationKnob(failing).bundle()["text/html"]
    assert "<img" not in shown and "&lt;img" in shown


def test_a_constructor_setting_out_of_range_is_shown(tiny):
    model, tokenizer = tiny
    knob = GenerationKnob(model, tokenizer, "to be", temperature=7.0, length=10)
    assert "temperature must be a number from 0.05 to 2" in knob.error


# ---------------------------------------------------------------------------------------------- display

@pytest.fixture
def shell():
    return InteractiveShell.instance()


def test_display_shows_controls_then_the_result_and_updates_it_in_place(tiny, shell):
    model, tokenizer = tiny
    knob = GenerationKnob(model, tokenizer, "to be", seed=1, length=15)
    with capture_output() as captured:
        knob._ipython_display_()
        knob.temperature.value = 0.5
    controls, first, update = captured.outputs
    assert WIDGET_VIEW in controls.data and controls.data["text/plain"] == CONTROLS_TEXT
    assert len(CONTROLS_TEXT) <= 88, "the book's column"
    assert not first.update and update.update, "the second output replaces the first"
    assert first.transient["display_id"] == update.transient["display_id"]
    assert first.data["text/plain"].endswith(expected_text(model, tokenizer, "to be", seed=1, max_new_tokens=15))
    assert update.data["text/plain"].endswith(
        expected_text(model, tokenizer, "to be", seed=1, max_new_tokens=15, temperature=0.5))
    assert WIDGET_VIEW not in first.data, "the result is an ordinary output: the static book shows it"


def test_controls_and_result_can_be_shown_in_two_cells(shell):
    knob = AdaptationKnob(toy_curve, step_size=0.02, steps=3)
    with capture_output() as captured:
        knob.show_controls()
        knob.show_result()
        knob.steps.value = 4
    controls, result, update = captured.outputs
    assert WIDGET_VIEW in controls.data and WIDGET_VIEW not in result.data
    assert update.update and update.transient == result.transient
    assert update.data["text/plain"] == knob.summary()


def test_a_problem_replaces_the_shown_result(tiny, shell):
    model, tokenizer = tiny
    knob = GenerationKnob(model, tokenizer, "to be", length=10)
    with capture_output() as captured:
        knob._ipython_display_()
        knob.update(top_p=2.0)
    assert captured.outputs[-1].update and captured.outputs[-1].data["text/plain"].startswith("error: ")


# ---------------------------------------------------------------------------------------------- adaptation

def toy_curve(step_size, steps):
    """Exponential decay whose rate is the step size: a known curve for each setting."""
    return [math.exp(-10 * step_size * k) for k in range(steps + 1)]


def test_adaptation_default_matches_the_curve_function():
    knob = AdaptationKnob(toy_curve, step_size=0.02, steps=5)
    assert knob.error is None
    assert knob.curves == {"query loss": toy_curve(0.02, 5)}
    first_line, curve_line = knob.bundle()["text/plain"].splitlines()
    assert first_line.startswith("step size 0.02, 5 steps")
    assert curve_line.split()[2:] == [f"{v:.2f}" for v in toy_curve(0.02, 5)]


def test_adaptation_sliders_recompute():
    knob = AdaptationKnob(toy_curve, step_size=0.02, steps=5)
    knob.steps.value = 8
    assert knob.curves["query loss"] == toy_curve(0.02, 8)
    knob.step_size.value = 0.1
    assert knob.curves["query loss"] == pytest.approx(toy_curve(0.1, 8))
    knob.update(step_size=0.05, steps=3)
    assert knob.curves["query loss"] == pytest.approx(toy_curve(0.05, 3))


def test_adaptation_figure_is_a_sharp_png_within_the_column():
    knob = AdaptationKnob(lambda lr, steps: {"a": toy_curve(lr, steps), "b": toy_curve(lr / 2, steps)},
                          step_size=0.05, steps=6, log_y=True)
    png = knob.bundle()["image/png"]
    image = Image.open(io.BytesIO(png))
    dpi = image.info["dpi"][0]
    assert dpi >= 149 and image.size[0] / dpi <= 8.0
    knob.steps.value = 2
    assert knob.bundle()["image/png"] != png, "the figure follows the sliders"


def test_divergence_is_reported_and_drawn_up_to_the_step():
    def exploding(step_size, steps):
        return [1.0, 5.0] + [math.inf] * (steps - 1)

    knob = AdaptationKnob(exploding, steps=4)
    assert knob.error is None and knob.diverged() == {"query loss": 2}
    assert "no longer finite from step 2" in knob.bundle()["text/plain"]
    assert knob.bundle()["image/png"].startswith(b"\x89PNG")


@pytest.mark.parametrize("curve_fn, message", [
    (lambda lr, steps: [1.0] * steps, "curve_fn gave 5 losses"),
    (lambda lr, steps: 1 / 0, "ZeroDivisionError"),
])
def test_a_failing_curve_function_is_shown_not_raised(curve_fn, message):
    knob = AdaptationKnob(curve_fn, steps=5)
    assert message in knob.error and knob.bundle()["text/plain"].startswith("error: ")


@pytest.mark.parametrize("values, message", [
    ({"step_size": 0.0}, "step_size must be a number from 0.0001 to 1"),
    ({"step_size": 3.0}, "step_size must be a number from 0.0001 to 1"),
    ({"steps": 99}, "steps must be a whole number from 0 to 30"),
    ({"steps": 2.5}, "steps must be a whole number"),
])
def test_adaptation_settings_out_of_range_are_explained(values, message):
    knob = AdaptationKnob(toy_curve, step_size=0.01, steps=4)
    knob.update(**values)
    assert message in knob.error
    assert (knob.step_size.value, knob.steps.value) == (0.01, 4)


def test_adaptation_knob_rejects_arguments_that_cannot_work():
    with pytest.raises(KnobError, match="curve_fn must be a function"):
        AdaptationKnob("not a function")
    with pytest.raises(KnobError, match="low < high"):
        AdaptationKnob(toy_curve, log10_range=(0.0, -2.0))
    with pytest.raises(KnobError, match="nn.Module"):
        finetune_curves({}, None, F.mse_loss)


def test_finetune_curves_is_the_mean_of_book_maml_finetune_curve():
    torch.manual_seed(0)
    networks = {"one": sinusoid.make_network(), "two": sinusoid.make_network()}
    tasks, _, _ = sinusoid.sample_tasks(6, shots=5, queries=7, generator=torch.Generator().manual_seed(1))
    knob = AdaptationKnob(finetune_curves(networks, tasks, F.mse_loss), step_size=0.01, steps=3)
    knob.update(step_size=0.05, steps=4)
    for name, net in networks.items():
        reference = finetune_curve(net, parameters_of(net), tasks, loss_fn=F.mse_loss, inner_lr=0.05, steps=4)
        assert knob.curves[name] == pytest.approx(reference.mean(0).tolist())
    assert set(knob.curves) == {"one", "two"} and knob.curves["one"] != knob.curves["two"]
