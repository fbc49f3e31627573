"""Knobs for readers running the notebooks: sliders on generation (Chapter 4) and adaptation (Chapters 5-6).

    GenerationKnob(model, tokenizer, "ROMEO:\\n")        # temperature, top-k, top-p, seed, length
    AdaptationKnob(curve_fn, step_size=0.01, steps=10)  # inner step size and number of steps

The knobs only turn the book's own code: :func:`book.generate.complete` for generation, and
any ``curve_fn(step_size, steps)`` for adaptation (:func:`finetune_curves` builds one from
:func:`book.maml.finetune_curve`; Chapter 6 can pass its own). ``knob.update(...)`` sets
values from Python, as the sliders do.

How a knob is shown, with and without a kernel. Displaying a knob emits two outputs: the
controls, an ipywidgets view that only a running kernel brings to life, and the result of the
current setting as an ordinary output (text, or a PNG figure) with a display id. Turning a
control replaces that output in place (``update_display_data``), so no widget holds it. An
executed notebook therefore stores the default setting's result as a plain output: the static
book shows it with no kernel and no widget JavaScript, and nbval compares it like any other
output. The controls' output is only a widget reference with a short text form; nbval skips
widget references (their ids are random), and ``book.tooling.normalize`` drops the widget
state that execution writes into a notebook's metadata, so the page loads no widget manager.

A setting that cannot work (a prompt with a character the model does not know, a step size
of zero, a curve function that fails) is shown to the reader in place of the result, as one
line naming the problem, never as a traceback.
"""
from __future__ import annotations

import html
import io
import math
from typing import Callable, Mapping, Sequence

__all__ = ["GenerationKnob", "AdaptationKnob", "finetune_curves", "KnobError"]

from book.errors import BookError

CONTROLS_TEXT = "(sliders: they need a running Python kernel; the output below is for the settings shown)"
ERROR_COLOUR = "#c62828"


class KnobError(BookError):
    """A knob setting that cannot work (a step size of zero, a curve of the wrong length...)."""


class _Knob:
    """Controls above, the current setting's result below as an ordinary output (see the module's docstring)."""

    def __init__(self, controls: dict):
        import ipywidgets as widgets  # only the knobs need the widget library

        self._controls = controls  # name -> widget, the names update() takes
        self.controls = widgets.VBox(list(controls.values()))
        self.error: str | None = None
        self._handle = None  # the result's display handle, once the knob is shown
        self._setting = False  # update() sets several controls and computes once
        for control in controls.values():
            control.observe(self._on_change, names="value")

    # Subclasses: _compute() sets the result (raising on a bad setting); _result_bundle() shows it.
    def _compute(self) -> None:
        raise NotImplementedError

    def _result_bundle(self) -> dict:
        raise NotImplementedError

    def _on_change(self, change) -> None:
        if not self._setting:
            self.refresh()

    def update(self, **values) -> None:
        """Set controls by name, as a reader does with the sliders, and show the result once.

        A value outside a control's range is an error shown to the reader, not a silently
        clamped slider."""
        try:
            for name, value in values.items():
                self._check_range(name, value)
            self._setting = True
            try:
                for name, value in values.items():
                    self._controls[name].value = value
            finally:
                self._setting = False
        except Exception as error:  # shown in place of the result, like a failed computation
            self._show_problem(error)
            return
        self.refresh()

    def _check_range(self, name: str, value) -> None:
        import ipywidgets as widgets

        if name not in self._controls:
            raise KnobError(f"no control named {name!r}; the controls are {', '.join(self._controls)}")
        control = self._controls[name]
        if not hasattr(control, "min"):
            return
        low, high = control.min, control.max
        if isinstance(control, widgets.FloatLogSlider):  # its min and max are exponents
            low, high = control.base ** low, control.base ** high
        whole = isinstance(control.value, int)
        number = isinstance(value, int if whole else (int, float)) and not isinstance(value, bool)
        if not (number and math.isfinite(value) and low * (1 - 1e-9) <= value <= high * (1 + 1e-9)):
            kind = "a whole number" if whole else "a number"
            raise KnobError(f"{name} must be {kind} from {low:g} to {high:g}, got {value!r}")

    def refresh(self) -> None:
        """Recompute the result for the controls' values and show it (or the problem)."""
        try:
            self._compute()
        except Exception as error:  # a callback's traceback would go to a log the reader never sees
            self._show_problem(error)
            return
        self.error = None
        self._show()

    def _show_problem(self, error: Exception) -> None:
        self.error = f"{type(error).__name__}: {error}"
        self._show()

    def _show(self) -> None:
        if self._handle is not None:
            self._handle.update(self.bundle(), raw=True)

    def bundle(self) -> dict:
        """The output shown below the controls, as a MIME bundle: the result, or the problem."""
        if self.error is None:
            return self._result_bundle()
        return {"text/plain": f"error: {self.error}",
                "text/html": f'<pre style="color:{ERROR_COLOUR}">{html.escape(self.error)}</pre>'}

    def controls_bundle(self) -> dict:
        """The controls' output: the widget reference, with a short text instead of the widgets' repr."""
        data = self.controls._repr_mimebundle_()
        data["text/plain"] = CONTROLS_TEXT
        return data

    def show_controls(self) -> None:
        """Display the controls alone (then :meth:`show_result` in a cell of its own, e.g. one
        with a figure caption: Jupyter Book captions every output of a captioned cell)."""
        from IPython.display import display

        display(self.controls_bundle(), raw=True)

    def show_result(self) -> None:
        """Display the current result; the controls replace it in place from then on."""
        from IPython.display import display

        self._handle = display(self.bundle(), raw=True, display_id=True)

    def _ipython_display_(self) -> None:
        self.show_controls()
        self.show_result()


# ---------------------------------------------------------------------------------------------- generation

class GenerationKnob(_Knob):
    """Temperature, top-k, top-p, seed and length on live generation from ``model`` (Chapter 4).

    The result is ``book.generate.complete(model, tokenizer, prompt, max_new_tokens=length,
    temperature=..., top_k=..., top_p=..., generator=torch.Generator().manual_seed(seed))``.
    A top-k of 0 and a top-p of 1 mean "no filter" (``None``). The prompt is a text box.
    """

    def __init__(self, model, tokenizer, prompt: str, *, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, seed: int = 42, length: int = 150, max_length: int = 1000):
        import ipywidgets as widgets

        self.model, self.tokenizer = model, tokenizer
        self.text: str | None = None
        vocab = int(tokenizer.vocab_size)
        wide = {"description_width": "initial"}
        common = dict(continuous_update=False, style=wide)
        self.prompt = widgets.Text(value=prompt, description="prompt", **common)
        self.temperature = widgets.FloatSlider(value=temperature, min=0.05, max=2.0, step=0.05,
                                               description="temperature", **common)
        self.top_k = widgets.IntSlider(value=top_k, min=0, max=vocab, description="top-k (0: off)", **common)
        self.top_p = widgets.FloatSlider(value=top_p, min=0.05, max=1.0, step=0.05,
                                         description="top-p (1: off)", **common)
        self.seed = widgets.BoundedIntText(value=seed, min=0, max=2**31 - 1, description="seed", **common)
        self.length = widgets.IntSlider(value=length, min=1, max=max_length, description="new characters",
                                        **common)
        super().__init__({"prompt": self.prompt, "temperature": self.temperature, "top_k": self.top_k,
                          "top_p": self.top_p, "seed": self.seed, "length": self.length})
        # The sliders clamp what they are given; update() checks the values and says so instead.
        self.update(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, length=length)

    def settings(self) -> dict:
        """The keyword arguments of ``book.generate.complete`` for the controls' values (without the generator)."""
        return dict(max_new_tokens=int(self.length.value), temperature=float(self.temperature.value),
                    top_k=int(self.top_k.value) or None,
                    top_p=None if self.top_p.value >= 1.0 else float(self.top_p.value))

    def _compute(self) -> None:
        import torch

        from book.generate import complete

        self.text = None
        generator = torch.Generator().manual_seed(int(self.seed.value))
        self.text = complete(self.model, self.tokenizer, self.prompt.value, generator=generator, **self.settings())

    def describe(self) -> str:
        """The setting in one line, as the output shows it above the text."""
        s = self.settings()
        top_k = "off" if s["top_k"] is None else s["top_k"]
        top_p = "off" if s["top_p"] is None else f"{s['top_p']:g}"
        return (f"temperature {s['temperature']:g}, top-k {top_k}, top-p {top_p}, seed {self.seed.value}, "
                f"{s['max_new_tokens']} new characters")

    def _result_bundle(self) -> dict:
        heading = self.describe() + ":"
        return {"text/plain": f"{heading}\n{self.text}",
                "text/html": f"<pre><i>{html.escape(heading)}</i>\n"
                             f'<span style="white-space:pre-wrap">{html.escape(self.text)}</span></pre>'}

    def __repr__(self) -> str:
        return f"GenerationKnob({self.describe()})"


# ---------------------------------------------------------------------------------------------- adaptation

CurveFn = Callable[[float, int], "Sequence[float] | Mapping[str, Sequence[float]]"]


class AdaptationKnob(_Knob):
    """The inner step size and the number of steps on an adaptation curve (Chapters 5 and 6).

    ``curve_fn(step_size, steps)`` returns the query loss after 0, 1, ..., ``steps`` steps:
    ``steps + 1`` numbers, or a dict of such curves by name (one line each, e.g. MAML and a
    pretrained baseline). The step-size slider is logarithmic, from ``10**log10_range[0]`` to
    ``10**log10_range[1]``. A loss that becomes infinite or NaN (too large a step) is reported
    under the figure and the curve is drawn up to that step.
    """

    def __init__(self, curve_fn: CurveFn, *, step_size: float = 0.01, steps: int = 10, max_steps: int = 30,
                 log10_range: tuple[float, float] = (-4.0, 0.0), ylabel: str = "query loss",
                 title: str = "Adaptation curve", log_y: bool = False):
        import ipywidgets as widgets

        if not callable(curve_fn):
            raise KnobError("curve_fn must be a function (step_size, steps) -> losses after 0..steps steps")
        low, high = log10_range
        if not low < high:
            raise KnobError(f"log10_range must be (low, high) with low < high, got {log10_range}")
        self.curve_fn, self.ylabel, self.title, self.log_y = curve_fn, ylabel, title, log_y
        self.curves: dict[str, list[float]] | None = None
        common = dict(continuous_update=False, style={"description_width": "initial"})
        self.step_size = widgets.FloatLogSlider(value=step_size, base=10, min=low, max=high, step=0.05,
                                                description="step size", readout_format=".3g", **common)
        self.steps = widgets.IntSlider(value=steps, min=0, max=max_steps, description="steps", **common)
        super().__init__({"step_size": self.step_size, "steps": self.steps})
        self.update(step_size=step_size, steps=steps)

    def _compute(self) -> None:
        self.curves = None
        step_size, steps = float(self.step_size.value), int(self.steps.value)
        result = self.curve_fn(step_size, steps)
        named = dict(result) if isinstance(result, Mapping) else {"query loss": result}
        curves = {}
        for name, curve in named.items():
            values = [float(v) for v in (curve.tolist() if hasattr(curve, "tolist") else curve)]
            if len(values) != steps + 1:
                raise KnobError(f"curve_fn gave {len(values)} losses for {name!r}; after 0..{steps} steps "
                                f"there are {steps + 1}")
            curves[name] = values
        self.curves = curves

    def diverged(self) -> dict[str, int]:
        """For each curve that blew up, the first step whose loss is infinite or NaN."""
        return {name: next(i for i, v in enumerate(c) if not math.isfinite(v))
                for name, c in (self.curves or {}).items() if not all(math.isfinite(v) for v in c)}

    def summary(self) -> str:
        """The curves as text, two decimals (what the static book's text form and nbval read)."""
        lines = [f"step size {self.step_size.value:.3g}, {self.steps.value} steps: {self.ylabel} "
                 "after 0, 1, ... steps"]
        width = max(len(name) for name in self.curves)
        for name, curve in self.curves.items():
            lines.append(f"{name:<{width}}  " + " ".join(f"{v:.2f}" for v in curve))
        for name, step in self.diverged().items():
            lines.append(f"{name}: the loss is no longer finite from step {step} on: the step size is too large")
        return "\n".join(lines)

    def figure_png(self) -> bytes:
        """The figure of the curves, as PNG bytes (drawn without pyplot, so nothing else is displayed)."""
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter

        figure = Figure(figsize=(6.4, 3.6), dpi=150, layout="constrained")
        ax = figure.add_subplot()
        for name, curve in self.curves.items():
            finite = [v if math.isfinite(v) else math.nan for v in curve]
            ax.plot(range(len(curve)), finite, "o-", ms=3, label=name)
        if self.log_y and any(math.isfinite(v) and v > 0 for c in self.curves.values() for v in c):
            ax.set_yscale("log")
            # Plain numbers (0.2 rather than 2 x 10^-1), and between powers of ten only 2 and 5.
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(FuncFormatter(
                lambda v, _: f"{v:g}" if v > 0 and round(v / 10 ** math.floor(math.log10(v))) in (2, 5) else ""))
        ax.set(xlabel="gradient steps on the support set", ylabel=self.ylabel,
               title=f"{self.title} (step size {self.step_size.value:.3g})")
        ax.set_xlim(-0.3, max(1, self.steps.value) + 0.3)
        if len(self.curves) > 1:
            ax.legend()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=150)
        return buffer.getvalue()

    def _result_bundle(self) -> dict:
        return {"text/plain": self.summary(), "image/png": self.figure_png()}

    def __repr__(self) -> str:
        return f"AdaptationKnob(step size {self.step_size.value:.3g}, {self.steps.value} steps)"


def finetune_curves(models, tasks, loss_fn) -> CurveFn:
    """A ``curve_fn`` for :class:`AdaptationKnob`: each model's query loss, averaged over ``tasks``
    (a :class:`book.maml.TaskBatch`), after 0..steps plain gradient steps on the support sets,
    computed by :func:`book.maml.finetune_curve`. ``models`` is one module or a dict of them by name."""
    from torch import nn

    from book.maml import finetune_curve, parameters_of

    named = {"model": models} if isinstance(models, nn.Module) else dict(models)
    if not named or not all(isinstance(m, nn.Module) for m in named.values()):
        raise KnobError("models must be an nn.Module or a non-empty dict of them")

    def curve_fn(step_size: float, steps: int) -> dict[str, list[float]]:
        return {name: finetune_curve(model, parameters_of(model), tasks, loss_fn=loss_fn, inner_lr=step_size,
                                     steps=steps).mean(0).tolist()
                for name, model in named.items()}

    return curve_fn
