"""An interactive view of a Transformer's attention, self-contained in one HTML block (Chapter 2 and its appendix).

``AttentionView(attention, tokens)`` renders the attention weights of every layer and head
for one sequence. In a notebook, the last expression of a cell being a view displays it;
in the static book the same HTML works with no kernel and no network: the styles, the
script and the weights are all inside the output (no CDN, no require.js, no files).

    view = AttentionView(attention, tokens, title="Layer-by-layer attention")
    view                      # in a notebook: the interactive view

Where it opens, for prose that points at something: ``layer=`` and ``head=`` (default 0 and 0),
or ``heads=[0, 2]`` / ``heads="all"`` to show several heads together, and ``mode="lines"`` for
the line picture (queries on the left, keys on the right, one line per weight, as bertviz
draws it) instead of the heat map. The reader can change all of these in the view.

    AttentionView(attention, tokens, layer=1, heads=[0, 2], mode="lines")

``attention`` holds probabilities: ``attention[layer, head, query, key]`` is how much the
token at position ``query`` attends to the token at position ``key``, so each row
``attention[layer, head, query, :]`` sums to 1. Shapes ``(heads, T, T)`` (one layer) and
``(T, T)`` (one layer, one head) are accepted too; leading axes of size 1 are added.

The weights are embedded quantised to 1/255 (one byte each; only the lower triangle when
the attention is causal): a 4-layer, 4-head, 64-token view adds about 76 kB to a page, 44 kB
of it the weights (35 kB when the server compresses the page).
``view.shown_weights()`` returns exactly the values the page shows.

Token text is shown exactly as written, markup included: the script sets it as text,
never as HTML, and everything placed in the HTML is escaped.

``attention_explorer(attention_fn, initial_text)`` is the JupyterLab front end: a text box
whose text goes through ``attention_fn(text) -> (attention, tokens)`` and a view below it.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
import numbers
import re
from collections import Counter
from importlib import resources
from typing import Callable, Sequence

import numpy as np

__all__ = ["AttentionView", "attention_explorer", "AttentionExplorer", "MAX_TOKENS", "ROW_SUM_TOLERANCE"]

MAX_TOKENS = 512            # beyond this the maps are unreadable and the page heavy
ROW_SUM_TOLERANCE = 1e-3    # how far a row may sum from 1 (float16/float32 softmax rounding)
QUANTISATION_LEVELS = 255   # weights travel to the page as bytes: round(w * 255)

# How many times each distinct view has been rendered in this process: the element id is
# derived from the data and this count, so ids are the same on every run of a notebook,
# and two views on one page (even of the same data) never share an id.
_RENDER_COUNTS: Counter = Counter()


@functools.cache
def _front_end() -> tuple[str, str]:
    """The view's styles and script, from this package's ``view.css`` and ``view.js``, ready to inline.

    Read once, when the first view renders. Comments and line breaks leave the styles, and
    indentation the script (it only costs bytes in every page; the script keeps its line breaks,
    so it reads the same in a browser's inspector).
    """
    files = resources.files(__name__)
    css = files.joinpath("view.css").read_text(encoding="utf-8")
    css = re.sub(r"/\*[\s\S]*?\*/", "", css).strip().replace("\n", "")
    js = files.joinpath("view.js").read_text(encoding="utf-8")
    js = "\n".join(line.strip() for line in js.splitlines() if line.strip())
    return css, js


def _to_array(attention) -> np.ndarray:
    """Return ``attention`` as a float64 numpy array (torch tensors, arrays, nested lists)."""
    if isinstance(attention, (list, tuple)) and attention and all(hasattr(a, "shape") for a in attention):
        shapes = {tuple(a.shape) for a in attention}
        if len(shapes) != 1:
            raise ValueError(f"the attention maps of the layers have different shapes: {sorted(shapes)}")
        return np.stack([_to_array(a) for a in attention])
    if hasattr(attention, "detach"):  # a torch tensor, without importing torch here
        attention = attention.detach().cpu().float().numpy()
    try:
        array = np.asarray(attention, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"attention must be an array of numbers: {error}") from None
    return array


def _check_attention(array: np.ndarray) -> np.ndarray:
    """Validate ``array`` and return it with shape (layers, heads, T, T)."""
    if array.ndim == 2:
        array = array[None, None]
    elif array.ndim == 3:
        array = array[None]
    elif array.ndim != 4:
        hint = " (for a batch, pass one sequence, e.g. attention[:, 0] or attention[0])" if array.ndim == 5 else ""
        raise ValueError(
            f"attention must have 4 dimensions (layers, heads, T, T), or 3 (heads, T, T) or 2 (T, T); "
            f"got {array.ndim} with shape {tuple(array.shape)}{hint}")
    if array.size == 0:
        raise ValueError(f"attention is empty: shape {tuple(array.shape)} (layers, heads, T, T)")
    queries, keys = array.shape[-2:]
    if queries != keys:
        raise ValueError(f"attention maps must be square, T x T (every token attends over the same T tokens); "
                         f"got {queries} x {keys}")
    if queries > MAX_TOKENS:
        raise ValueError(f"a view of {queries} tokens is too large to read (at most {MAX_TOKENS}); "
                         f"show a shorter slice of the sequence")
    bad = ~np.isfinite(array)
    if bad.any():
        layer, head, query, key = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"attention has {int(bad.sum())} non-finite values (NaN or infinity), the first at "
                         f"layer {layer}, head {head}, query {query}, key {key}")
    negative = array < -ROW_SUM_TOLERANCE
    if negative.any():
        layer, head, query, key = (int(i) for i in np.argwhere(negative)[0])
        raise ValueError(f"attention weights must be probabilities, but layer {layer}, head {head}, query {query}, "
                         f"key {key} is {array[layer, head, query, key]:.4f} (negative)")
    sums = array.sum(axis=-1)
    off = np.abs(sums - 1.0) > ROW_SUM_TOLERANCE
    if off.any():
        layer, head, query = (int(i) for i in np.argwhere(off)[0])
        raise ValueError(f"each attention row must be a probability distribution summing to 1, but {int(off.sum())} "
                         f"rows do not: layer {layer}, head {head}, query {query} sums to "
                         f"{sums[layer, head, query]:.4f} (pass softmax weights, not scores)")
    return array


def _check_tokens(tokens, length: int) -> tuple[str, ...]:
    if isinstance(tokens, (str, bytes)):
        raise ValueError("tokens must be a list of strings, one per position, not a single string")
    try:
        tokens = tuple(tokens)
    except TypeError:
        raise ValueError(f"tokens must be a list of strings, not {type(tokens).__name__}") from None
    for index, token in enumerate(tokens):
        if not isinstance(token, str):
            raise ValueError(f"tokens must be strings; token {index} is {type(token).__name__} {token!r}")
    if len(tokens) != length:
        raise ValueError(f"got {len(tokens)} tokens for attention over {length} positions (T = {length}); "
                         f"there must be one token per position")
    return tokens


MODES = ("map", "lines")
DEFAULT_START = {"layer": 0, "head": 0}


def _index(name: str, value, count: int, unit: str) -> int:
    """``value`` as an index from 0 to ``count - 1`` (a ``unit`` of the attention), or a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer from 0 to {count - 1}, got {type(value).__name__} {value!r}")
    if not 0 <= value < count:
        raise ValueError(f"{name} must be an integer from 0 to {count - 1}, got {value!r} "
                         f"(the attention has {count} {unit}{'s' if count != 1 else ''})")
    return int(value)


def _check_start(layer, head, heads, mode, layers: int, head_count: int) -> dict:
    """Where the view opens: ``{"layer", "head" or "heads", "mode"}``, checked against the data."""
    start = {"layer": _index("layer", layer, layers, "layer")}
    if head is not None and heads is not None:
        raise ValueError("give head= (one head) or heads= (several), not both")
    if heads is None:
        start["head"] = _index("head", 0 if head is None else head, head_count, "head")
    else:
        if isinstance(heads, str):
            if heads != "all":
                raise ValueError(f'heads must be a list of head indices or "all", got {heads!r}')
            chosen = list(range(head_count))
        else:
            try:
                chosen = [_index("each of heads", h, head_count, "head") for h in heads]
            except TypeError:
                raise ValueError(f'heads must be a list of head indices or "all", not {type(heads).__name__}') from None
            if not chosen:
                raise ValueError("heads must name at least one head")
            repeated = sorted({h for h in chosen if chosen.count(h) > 1})
            if repeated:
                raise ValueError(f"heads names head {repeated[0]} more than once")
        chosen = sorted(chosen)
        if len(chosen) == 1:
            start["head"] = chosen[0]
        else:
            start["heads"] = chosen
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f'mode must be "map" or "lines", got {mode!r}')
    if mode != "map":
        start["mode"] = mode
    return start


def _json_for_script(value) -> str:
    """JSON that is safe inside a <script> element: no '<', '>' or '&' appear literally."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class AttentionView:
    """An interactive, self-contained HTML view of attention weights.

    Args:
        attention: weights shaped (layers, heads, T, T), or (heads, T, T), or (T, T);
            a torch tensor, a numpy array, or a list of per-layer (heads, T, T) maps.
            Every row ``attention[l, h, q, :]`` must be a probability distribution.
        tokens: the T token strings, shown exactly as written.
        title: an optional heading shown above the view.
        causal: whether positions after the query are masked (shown hatched, unlike a
            weight of zero). ``None`` (the default) decides from the data: the attention
            is causal when every weight above the diagonal is exactly zero.
        layer, head: the layer and head the view opens on (where the text points); by
            default layer 0, head 0.
        heads: instead of ``head``, several heads shown together: a list of head indices, or
            ``"all"``. The map then shows their mean weight, the lines one colour per head.
        mode: ``"map"`` (the default) opens on the heat map of the weights, ``"lines"`` on
            the line picture (queries on the left, keys on the right, a line per weight).

    Raises:
        ValueError: naming the problem, for a wrong rank, maps that are not T x T, a token
            count that is not T, empty input, non-finite values, rows that are not
            probability distributions, or a layer, head or mode the view does not have.
    """

    def __init__(self, attention, tokens: Sequence[str], title: str | None = None, *, causal: bool | None = None,
                 layer: int = 0, head: int | None = None, heads: Sequence[int] | str | None = None,
                 mode: str = "map"):
        array = _check_attention(_to_array(attention))
        self.layers, self.heads, self.length = array.shape[0], array.shape[1], array.shape[2]
        self.start = _check_start(layer, head, heads, mode, self.layers, self.heads)
        self.tokens = _check_tokens(tokens, self.length)
        if title is not None and not isinstance(title, str):
            raise ValueError(f"title must be a string or None, not {type(title).__name__}")
        self.title = title
        future = np.triu(np.ones((self.length, self.length), dtype=bool), k=1)
        attends_ahead = bool((array[..., future] != 0).any())
        if causal is None:
            causal = not attends_ahead and self.length > 1
        elif causal and attends_ahead:
            raise ValueError("causal=True, but some token attends to a later position "
                             "(a non-zero weight above the diagonal)")
        self.causal = bool(causal)
        self.attention = array.astype(np.float32)
        self._bytes = np.rint(np.clip(array, 0.0, 1.0) * QUANTISATION_LEVELS).astype(np.uint8)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.layers, self.heads, self.length, self.length)

    def shown_weights(self) -> np.ndarray:
        """The weights exactly as the page shows them: rounded to multiples of 1/255."""
        return self._bytes.astype(np.float64) / QUANTISATION_LEVELS

    def payload(self) -> dict:
        """The data embedded in the page: the tokens and the weights as base64 bytes.

        The bytes are ordered layer, head, query, key; for causal attention only the keys
        ``0..query`` of each query row are stored (the rest are masked).
        """
        if self.causal:
            rows, cols = np.tril_indices(self.length)
            data = self._bytes[:, :, rows, cols]
        else:
            data = self._bytes
        payload = {
            "version": 1,
            "layers": self.layers,
            "heads": self.heads,
            "tokens": list(self.tokens),
            "causal": self.causal,
            "scale": QUANTISATION_LEVELS,
            "weights": base64.b64encode(np.ascontiguousarray(data).tobytes()).decode("ascii"),
        }
        if self.start != DEFAULT_START:  # the front end opens on layer 0, head 0, the map otherwise
            payload["start"] = dict(self.start)
        return payload

    def _digest(self) -> str:
        digest = hashlib.sha256()
        described = [self.tokens, self.title, self.causal, self.shape]
        if self.start != DEFAULT_START:
            described.append(self.start)
        digest.update(json.dumps(described).encode("utf-8"))
        digest.update(self._bytes.tobytes())
        return digest.hexdigest()[:12]

    def __repr__(self) -> str:
        layers = f"{self.layers} layer{'s' if self.layers != 1 else ''}"
        heads = f"{self.heads} head{'s' if self.heads != 1 else ''}"
        tokens = f"{self.length} token{'s' if self.length != 1 else ''}"
        title = f", title={self.title!r}" if self.title is not None else ""
        return f"AttentionView({layers} x {heads}, {tokens}{title})"

    def _repr_html_(self) -> str:
        digest = self._digest()
        _RENDER_COUNTS[digest] += 1
        element_id = f"attention-view-{digest}-{_RENDER_COUNTS[digest]}"
        title = f'<div class="av-title">{html.escape(self.title)}</div>' if self.title else ""
        summary = html.escape(repr(self))
        css, js = _front_end()
        return (
            # tex2jax_ignore: the book's MathJax must not typeset token text such as "$x$".
            f'<div class="attention-view tex2jax_ignore mathjax_ignore" id="{element_id}" data-attention-view="1">'
            f"<style>{css}</style>"
            f"{title}"
            f'<div class="av-nojs">{summary}: an interactive view that needs JavaScript '
            f"(in Jupyter, run the cell or trust the notebook).</div>"
            f'<script type="application/json" class="av-data">{_json_for_script(self.payload())}</script>'
            f"<script>{js.replace('__ELEMENT_ID__', element_id)}</script>"
            f"</div>"
        )


EXPLORER_TEXT = "(a text box with the attention view of its text: it needs a running Python kernel)"


class AttentionExplorer:
    """A text box and, below it, the attention view of the text typed into it (ipywidgets).

    ``attention_fn(text)`` returns ``(attention, tokens)`` as accepted by
    :class:`AttentionView`. The view is redrawn when the reader presses Enter or leaves
    the box. An error from ``attention_fn`` (a character outside the vocabulary, a text
    longer than the context) is shown above the view, which keeps the last text that worked.
    """

    def __init__(self, attention_fn: Callable[[str], tuple], initial_text: str, title: str | None = None):
        import ipywidgets as widgets  # only the explorer needs the widget library

        if not callable(attention_fn):
            raise ValueError("attention_fn must be a function text -> (attention, tokens)")
        if not isinstance(initial_text, str):
            raise ValueError(f"initial_text must be a string, not {type(initial_text).__name__}")
        self.attention_fn = attention_fn
        self.title = title
        self.view: AttentionView | None = None
        self.error: str | None = None
        self.text = widgets.Text(value=initial_text, description="Text:", continuous_update=False,
                                 placeholder="Type a text and press Enter",
                                 layout=widgets.Layout(width="100%"))
        self.message = widgets.HTML()
        self.output = widgets.Output()
        self.widget = widgets.VBox([self.text, self.message, self.output])
        self.text.observe(self._on_text, names="value")
        self.update(initial_text)

    def _on_text(self, change) -> None:
        self.update(change["new"])

    def update(self, text: str) -> None:
        """Compute the attention of ``text`` and show its view (or the error it caused)."""
        try:
            attention, tokens = self.attention_fn(text)
            self.view = AttentionView(attention, tokens, title=self.title)
        except Exception as error:  # show the reader what went wrong, keep the box usable
            self.error = f"{type(error).__name__}: {error}"
            self.message.value = f'<span style="color:#c62828">{html.escape(self.error)}</span>'
            return
        self.error = None
        self.message.value = ""
        # Setting the outputs directly works with or without a running front end.
        self.output.outputs = ({
            "output_type": "display_data",
            "data": {"text/plain": repr(self.view), "text/html": self.view._repr_html_()},
            "metadata": {},
        },)

    def _repr_mimebundle_(self, **kwargs):
        # A front end without the widget's state (a notebook opened with no kernel) shows this
        # text instead of an error about a missing widget model.
        data = self.widget._repr_mimebundle_(**kwargs)
        data["text/plain"] = EXPLORER_TEXT
        return data

    def __repr__(self) -> str:
        return f"AttentionExplorer(text={self.text.value!r}, view={self.view!r})"


def attention_explorer(attention_fn: Callable[[str], tuple], initial_text: str,
                       title: str | None = None) -> AttentionExplorer:
    """A text box the reader types into, with the attention view of that text below it.

    ``attention_fn(text) -> (attention, tokens)``, e.g. a trained model's attention maps.
    Needs a live kernel to react; in the static book, show a precomputed
    ``AttentionView(*attention_fn(text))`` instead.
    """
    return AttentionExplorer(attention_fn, initial_text, title=title)
