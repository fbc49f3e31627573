"""An interactive view of a Transformer's attention, self-contained in one HTML block.

``AttentionView(attention, tokens)`` renders the attention weights of every layer and head
for one sequence. In a notebook, the last expression of a cell being a view displays it;
in the static book the same HTML works with no kernel and no network: the styles, the
script and the weights are all inside the output (no CDN, no require.js, no files).

    view = AttentionView(attention, tokens, title="Layer-by-layer attention")
    view                      # in a notebook: the interactive view

``attention`` holds probabilities: ``attention[layer, head, query, key]`` is how much the
token at position ``query`` attends to the token at position ``key``, so each row
``attention[layer, head, query, :]`` sums to 1. Shapes ``(heads, T, T)`` (one layer) and
``(T, T)`` (one layer, one head) are accepted too; leading axes of size 1 are added.

The weights are embedded quantised to 1/255 (one byte each; only the lower triangle when
the attention is causal): a 4-layer, 4-head, 64-token view adds about 66 kB to a page, 44 kB
of it the weights (29 kB when the server compresses the page).
``view.shown_weights()`` returns exactly the values the page shows.

Token text is shown exactly as written, markup included: the script sets it as text,
never as HTML, and everything placed in the HTML is escaped.

``attention_explorer(attention_fn, initial_text)`` is the JupyterLab front end: a text box
whose text goes through ``attention_fn(text) -> (attention, tokens)`` and a view below it.
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
from collections import Counter
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
        layer, head: the layer and head the view opens on (where the text points).

    Raises:
        ValueError: naming the problem, for a wrong rank, maps that are not T x T, a token
            count that is not T, empty input, non-finite values, or rows that are not
            probability distributions.
    """

    def __init__(self, attention, tokens: Sequence[str], title: str | None = None, *, causal: bool | None = None,
                 layer: int = 0, head: int = 0):
        array = _check_attention(_to_array(attention))
        self.layers, self.heads, self.length = array.shape[0], array.shape[1], array.shape[2]
        for name, value, count in (("layer", layer, self.layers), ("head", head, self.heads)):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < count:
                raise ValueError(f"{name} must be an integer from 0 to {count - 1}, got {value!r}")
        self.start = {"layer": layer, "head": head}
        self.tokens = _check_tokens(tokens, self.length)
        if title is not None and not isinstance(title, str):
            raise ValueError(f"title must be a string or None, not {type(title).__name__}")
        self.title = title
        future = np.triu(np.ones((self.length, self.length), dtype=bool), k=1)
        attends_ahead = bool((array[..., future] != 0).any())
        if causal is None:
            causal = not attends_ahead and self.length > 1
        elif causal and attends_ahead:
            raise ValueError("causal=True, but some token attends to a later position (a non-zero weight above the diagonal)")
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
        if self.start != {"layer": 0, "head": 0}:  # the front end opens on layer 0, head 0 otherwise
            payload["start"] = dict(self.start)
        return payload

    def _digest(self) -> str:
        digest = hashlib.sha256()
        described = [self.tokens, self.title, self.causal, self.shape]
        if self.start != {"layer": 0, "head": 0}:
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
        return (
            # tex2jax_ignore: the book's MathJax must not typeset token text such as "$x$".
            f'<div class="attention-view tex2jax_ignore mathjax_ignore" id="{element_id}" data-attention-view="1">'
            f"<style>{_CSS}</style>"
            f"{title}"
            f'<div class="av-nojs">{summary}: an interactive view that needs JavaScript '
            f"(in Jupyter, run the cell or trust the notebook).</div>"
            f'<script type="application/json" class="av-data">{_json_for_script(self.payload())}</script>'
            f"<script>{_JS.replace('__ELEMENT_ID__', element_id)}</script>"
            f"</div>"
        )


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
        return self.widget._repr_mimebundle_(**kwargs)

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


# Colours adapt to the page: text inherits, weights are drawn with transparency, and the dark
# themes of the book (pydata: html[data-theme=dark]), JupyterLab and VS Code switch the palette.
# In its dark mode the book's theme gives HTML outputs a light panel (for tables that assume a
# white page); the :has() rule gives a view's panel back to the dark page instead.
_CSS = """
.attention-view{--av-heat:31,119,180;--av-line:rgba(127,127,127,.35);--av-mask:rgba(127,127,127,.32);
 --av-accent:#d35400;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:inherit;
 max-width:100%;box-sizing:border-box;margin:.5em 0 1em;overflow-x:auto}
html[data-theme="dark"] .attention-view,body[data-jp-theme-light="false"] .attention-view,
body.vscode-dark .attention-view{--av-heat:88,166,255;--av-line:rgba(200,200,200,.3);--av-mask:rgba(200,200,200,.28);
 --av-accent:#ffa657;color-scheme:dark}
html[data-theme="dark"] .attention-view{color:var(--pst-color-text-base,#ced6dd)}
html[data-theme="dark"] .bd-content div.cell_output div.text_html:has(> div.attention-view){background:transparent;color:inherit}
.attention-view *{box-sizing:border-box}
.attention-view .av-title{font-weight:600;margin-bottom:.3em}
.attention-view .av-nojs{font-style:italic;opacity:.8}
.attention-view .av-controls{display:flex;flex-wrap:wrap;gap:.4em 1em;align-items:center;margin:.2em 0 .5em}
.attention-view label{display:inline-flex;gap:.35em;align-items:center;margin:0}
.attention-view select,.attention-view button{font:inherit;color:inherit;background:transparent;
 border:1px solid var(--av-line);border-radius:4px;padding:.15em .45em;cursor:pointer}
.attention-view select option{color:initial;background:initial}
.attention-view .av-dir button[aria-pressed="true"]{background:rgba(var(--av-heat),.2);border-color:rgb(var(--av-heat))}
.attention-view .av-legend{display:flex;flex-wrap:wrap;gap:.3em .9em;font-size:12px;opacity:.9;margin-bottom:.4em;align-items:center}
.attention-view .av-swatch{display:inline-block;width:1.1em;height:.9em;vertical-align:-.1em;border:1px solid var(--av-line);
 border-radius:2px;margin-right:.3em}
.attention-view .av-tokens{display:flex;flex-wrap:wrap;gap:4px;margin:.2em 0 .4em}
.attention-view .av-token{position:relative;display:inline-flex;flex-direction:column;align-items:center;
 min-width:1.6em;padding:2px 5px 3px;border:1px solid var(--av-line);border-radius:4px;cursor:pointer;
 font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;white-space:pre;user-select:none}
.attention-view .av-token.av-strong{color:#fff}
.attention-view .av-token.av-selected{outline:2px solid var(--av-accent);outline-offset:1px}
.attention-view .av-token:focus-visible{outline:2px dashed var(--av-accent)}
.attention-view .av-token.av-masked,.attention-view .av-swatch.av-masked{
 background:repeating-linear-gradient(135deg,var(--av-mask) 0 3px,transparent 3px 7px)!important;border-style:dashed}
.attention-view .av-token.av-masked .av-text{opacity:.5}
.attention-view .av-bars{display:none;align-items:flex-end;gap:1px;height:16px;margin-top:2px}
.attention-view.av-all .av-bars{display:flex}
.attention-view .av-bar{display:inline-block;width:5px;min-height:0}
.attention-view .av-token.av-masked .av-bars{visibility:hidden}
.attention-view .av-readout{min-height:1.45em;font-size:13px;margin:.1em 0 .5em}
.attention-view .av-panels{display:flex;flex-wrap:wrap;gap:1em 1.5em;align-items:flex-start}
.attention-view figure{margin:0;max-width:100%}
.attention-view figcaption{font-size:12px;opacity:.85;margin-top:.2em;max-width:420px;color:inherit;text-align:left;padding:0}
.attention-view canvas.av-matrix{display:block;max-width:100%;height:auto;cursor:crosshair;touch-action:manipulation}
.attention-view .av-grid{display:inline-grid;gap:3px 6px;align-items:center;justify-items:center;font-size:11px}
.attention-view .av-thumb{padding:1px;line-height:0;border-radius:3px;border:1px solid var(--av-line)}
.attention-view .av-thumb canvas{width:44px;height:44px;image-rendering:pixelated}
.attention-view .av-thumb.av-current{outline:2px solid var(--av-accent);outline-offset:1px}
@media (max-width:480px){.attention-view .av-thumb canvas{width:34px;height:34px}.attention-view .av-token{font-size:12px}}
""".strip().replace("\n", "")

_JS = r"""
(function () {
  "use strict";
  var me = document.currentScript;
  var root = me && me.parentNode && me.parentNode.getAttribute && me.parentNode.getAttribute("data-attention-view") ?
    me.parentNode : document.getElementById("__ELEMENT_ID__");
  if (!root || root.getAttribute("data-ready") === "true") return;
  var spec = JSON.parse(root.querySelector("script.av-data").textContent);
  var L = spec.layers, H = spec.heads, tokens = spec.tokens, T = tokens.length, causal = spec.causal;
  var raw = atob(spec.weights), bytes = new Uint8Array(raw.length);
  for (var b = 0; b < raw.length; b++) bytes[b] = raw.charCodeAt(b);
  var perHead = causal ? T * (T + 1) / 2 : T * T;
  var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
  function headColour(h) { return H <= PALETTE.length ? PALETTE[h] : "hsl(" + Math.round(h * 360 / H) + ",70%,50%)"; }
  function hexRgb(c) {
    if (c.charAt(0) === "#") return [parseInt(c.substr(1, 2), 16), parseInt(c.substr(3, 2), 16), parseInt(c.substr(5, 2), 16)];
    var probe = document.createElement("canvas").getContext("2d"); probe.fillStyle = c; return hexRgb(probe.fillStyle);
  }
  function masked(q, k) { return causal && k > q; }
  function weight(l, h, q, k) {
    if (masked(q, k)) return 0;
    return bytes[(l * H + h) * perHead + (causal ? q * (q + 1) / 2 : q * T) + k] / spec.scale;
  }
  function shown(token) {
    var s = /^\s*$/.test(token) ? token.replace(/ /g, "\u2423") : token;
    s = s.replace(/\n/g, "\u21b5").replace(/\t/g, "\u21e5").replace(/\r/g, "\u240d");
    return s === "" ? "\u2205" : s;
  }
  function quoted(token) { return "\u201c" + shown(token) + "\u201d"; }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  var start = spec.start || { layer: 0, head: 0 };
  var state = { layer: start.layer, head: start.head, all: false, dir: "to", pinned: T - 1, hover: null };

  // Controls: layer, head (or all heads), and the direction of reading.
  var controls = el("div", "av-controls");
  var layerLabel = el("label", null, "Layer"), layerSelect = el("select", "av-layer");
  for (var l = 0; l < L; l++) { var o = el("option", null, String(l)); o.value = String(l); layerSelect.appendChild(o); }
  layerLabel.appendChild(layerSelect);
  var headLabel = el("label", null, "Head"), headSelect = el("select", "av-head");
  for (var h = 0; h < H; h++) { var ho = el("option", null, String(h)); ho.value = String(h); headSelect.appendChild(ho); }
  var allOption = el("option", null, "all heads (overlaid)"); allOption.value = "all"; headSelect.appendChild(allOption);
  headLabel.appendChild(headSelect);
  var dirGroup = el("span", "av-dir"); dirGroup.setAttribute("role", "group"); dirGroup.setAttribute("aria-label", "direction");
  var dirButtons = {
    to: el("button", null, "what it attends to"),
    from: el("button", null, "what attends to it")
  };
  ["to", "from"].forEach(function (d) {
    dirButtons[d].type = "button"; dirButtons[d].setAttribute("data-direction", d);
    dirButtons[d].addEventListener("click", function () { state.dir = d; render(); });
    dirGroup.appendChild(dirButtons[d]);
  });
  controls.appendChild(layerLabel); controls.appendChild(headLabel); controls.appendChild(dirGroup);
  layerSelect.addEventListener("change", function () { state.layer = +layerSelect.value; render(); });
  headSelect.addEventListener("change", function () {
    state.all = headSelect.value === "all"; if (!state.all) state.head = +headSelect.value; render();
  });

  var legend = el("div", "av-legend");
  var tokenBox = el("div", "av-tokens"); tokenBox.setAttribute("role", "list");
  var readout = el("div", "av-readout"); readout.setAttribute("aria-live", "polite");
  var chips = tokens.map(function (token, i) {
    var chip = el("span", "av-token"); chip.tabIndex = 0; chip.setAttribute("role", "listitem");
    chip.setAttribute("data-index", String(i)); chip.title = "position " + i + ": " + JSON.stringify(token);
    chip.appendChild(el("span", "av-text", shown(token)));
    var bars = el("span", "av-bars");
    for (var h = 0; h < H; h++) { var bar = el("span", "av-bar"); bar.style.background = headColour(h); bars.appendChild(bar); }
    chip.appendChild(bars);
    chip.addEventListener("mouseenter", function () { state.hover = i; render(); });
    chip.addEventListener("mouseleave", function () { state.hover = null; render(); });
    chip.addEventListener("click", function () { state.pinned = i; render(); });
    chip.addEventListener("focus", function () { state.pinned = i; render(); });
    chip.addEventListener("keydown", function (event) {
      var step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[event.key];
      if (step && chips[i + step]) { event.preventDefault(); chips[i + step].focus(); }
    });
    tokenBox.appendChild(chip);
    return chip;
  });

  var panels = el("div", "av-panels");
  var matrixFigure = el("figure", "av-matrix-box"), matrix = el("canvas", "av-matrix");
  matrix.setAttribute("role", "img");
  matrixFigure.appendChild(matrix);
  var matrixCaption = el("figcaption", null, "");
  matrixFigure.appendChild(matrixCaption);
  var gridFigure = el("figure", "av-grid-box"), grid = el("div", "av-grid");
  grid.style.gridTemplateColumns = "auto repeat(" + H + ", auto)";
  gridFigure.appendChild(grid);
  gridFigure.appendChild(el("figcaption", null, "Overview: one map per layer (row) and head (column). Click one to select it."));
  panels.appendChild(matrixFigure); panels.appendChild(gridFigure);

  grid.appendChild(el("span", null, ""));
  for (var hh = 0; hh < H; hh++) grid.appendChild(el("span", null, "head " + hh));
  var thumbs = [];
  for (var ll = 0; ll < L; ll++) {
    grid.appendChild(el("span", null, "layer " + ll));
    for (var h2 = 0; h2 < H; h2++) (function (l, h) {
      var button = el("button", "av-thumb"); button.type = "button";
      button.setAttribute("data-layer", String(l)); button.setAttribute("data-head", String(h));
      button.setAttribute("aria-label", "layer " + l + ", head " + h); button.title = "layer " + l + ", head " + h;
      var canvas = el("canvas"); canvas.width = T; canvas.height = T; button.appendChild(canvas);
      button.addEventListener("click", function () { state.layer = l; state.head = h; state.all = false; render(); });
      grid.appendChild(button); thumbs.push({ l: l, h: h, button: button, canvas: canvas });
    })(ll, h2);
  }

  var nojs = root.querySelector(".av-nojs");
  if (nojs) nojs.parentNode.removeChild(nojs);
  [controls, legend, tokenBox, readout, panels].forEach(function (e) { root.insertBefore(e, me && me.parentNode === root ? me : null); });

  function heat() {
    var value = getComputedStyle(root).getPropertyValue("--av-heat") || "31,119,180";
    return value.split(",").map(function (x) { return parseInt(x, 10); });
  }
  function hatch(ctx, colour) {
    var tile = document.createElement("canvas"); tile.width = tile.height = 6;
    var t = tile.getContext("2d"); t.strokeStyle = colour; t.lineWidth = 1.2;
    t.beginPath(); t.moveTo(0, 6); t.lineTo(6, 0); t.stroke();
    return ctx.createPattern(tile, "repeat");
  }
  function drawThumbs() {
    var rgb = heat();
    thumbs.forEach(function (t) {
      var ctx = t.canvas.getContext("2d"), image = ctx.createImageData(T, T), d = image.data;
      for (var q = 0; q < T; q++) for (var k = 0; k < T; k++) {
        var p = 4 * (q * T + k);
        if (masked(q, k)) { d[p] = d[p + 1] = d[p + 2] = 128; d[p + 3] = 40; continue; }
        d[p] = rgb[0]; d[p + 1] = rgb[1]; d[p + 2] = rgb[2]; d[p + 3] = Math.round(255 * weight(t.l, t.h, q, k));
      }
      ctx.putImageData(image, 0, 0);
    });
  }

  // The map is painted once per layer, head and theme into an off-screen canvas; moving the
  // selection only copies it back and draws the outline, so hovering stays fast for long texts.
  var geometry = null, painted = { key: null, canvas: document.createElement("canvas") };
  function fit(ctx, text, width) {
    if (ctx.measureText(text).width <= width) return text;
    while (text.length > 1 && ctx.measureText(text + "\u2026").width > width) text = text.slice(0, -1);
    return text + "\u2026";
  }
  function paintMap(fg, rgb, ratio) {
    var font = "11px ui-monospace, Menlo, Consolas, monospace", canvas = painted.canvas, ctx = canvas.getContext("2d");
    var avail = Math.max(160, Math.min(420, (root.clientWidth || 420) - 8)), labels = T <= 24, margin = 0;
    ctx.font = font;
    if (labels) tokens.forEach(function (t) { margin = Math.max(margin, ctx.measureText(shown(t)).width); });
    margin = labels ? Math.min(80, Math.ceil(margin) + 8) : 0;
    var cell = Math.max(2, Math.floor((avail - margin) / T)), size = margin + cell * T;
    var key = [state.layer, state.all ? "all" : state.head, fg, rgb.join(","), ratio, size].join("|");
    geometry = { margin: margin, cell: cell, size: size };
    if (painted.key === key) return canvas;
    canvas.width = Math.round(size * ratio); canvas.height = Math.round(size * ratio);
    ctx = canvas.getContext("2d"); ctx.setTransform(ratio, 0, 0, ratio, 0, 0); ctx.font = font;
    var maskFill = hatch(ctx, "rgba(128,128,128,0.6)"), colours = [];
    for (var h = 0; h < H; h++) colours.push(hexRgb(headColour(h)));
    for (var r = 0; r < T; r++) for (var k = 0; k < T; k++) {
      var x = margin + k * cell, y = margin + r * cell;
      if (masked(r, k)) { ctx.fillStyle = maskFill; ctx.fillRect(x, y, cell, cell); continue; }
      if (state.all) {
        // Overlay: the colour mixes the heads by their weights; opacity is the largest weight.
        var total = 0, top = 0, mix = [0, 0, 0];
        for (var h3 = 0; h3 < H; h3++) {
          var w3 = weight(state.layer, h3, r, k); total += w3; top = Math.max(top, w3);
          for (var c = 0; c < 3; c++) mix[c] += w3 * colours[h3][c];
        }
        if (total > 0) {
          ctx.fillStyle = "rgba(" + Math.round(mix[0] / total) + "," + Math.round(mix[1] / total) + "," +
            Math.round(mix[2] / total) + "," + top.toFixed(3) + ")";
          ctx.fillRect(x, y, cell, cell);
        }
      } else {
        var w = weight(state.layer, state.head, r, k);
        if (w > 0) { ctx.fillStyle = "rgba(" + rgb.join(",") + "," + w.toFixed(3) + ")"; ctx.fillRect(x, y, cell, cell); }
      }
    }
    ctx.strokeStyle = "rgba(128,128,128,0.45)"; ctx.lineWidth = 1;
    ctx.strokeRect(margin + 0.5, margin + 0.5, cell * T - 1, cell * T - 1);
    if (labels) {
      ctx.fillStyle = fg; ctx.textBaseline = "middle";
      tokens.forEach(function (t, i) {
        var label = fit(ctx, shown(t), margin - 6);
        ctx.textAlign = "right"; ctx.fillText(label, margin - 4, margin + (i + 0.5) * cell);
        ctx.save(); ctx.translate(margin + (i + 0.5) * cell, margin - 4); ctx.rotate(-Math.PI / 2);
        ctx.textAlign = "left"; ctx.fillText(label, 0, 0); ctx.restore();
      });
    }
    painted.key = key;
    return canvas;
  }
  function drawMatrix(q) {
    var style = getComputedStyle(root), ratio = window.devicePixelRatio || 1;
    var map = paintMap(style.color, heat(), ratio), margin = geometry.margin, cell = geometry.cell;
    if (matrix.width !== map.width || matrix.height !== map.height) {
      matrix.width = map.width; matrix.height = map.height; matrix.style.width = geometry.size + "px";
    }
    var ctx = matrix.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0); ctx.clearRect(0, 0, matrix.width, matrix.height); ctx.drawImage(map, 0, 0);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.strokeStyle = style.getPropertyValue("--av-accent").trim() || "#d35400"; ctx.lineWidth = 2;
    if (state.dir === "to") ctx.strokeRect(margin + 1, margin + q * cell + 1, cell * T - 2, cell - 2);
    else ctx.strokeRect(margin + q * cell + 1, margin + 1, cell - 2, cell * T - 2);
    matrix.setAttribute("aria-label", "attention map, layer " + state.layer + ", " +
      (state.all ? "all heads" : "head " + state.head) + ": rows are queries, columns are keys");
  }

  // Two decimals: the page holds weights in steps of 1/255, so a third decimal would be noise.
  function format(w) { return w.toFixed(2); }
  function render() {
    var q = state.hover !== null ? state.hover : state.pinned;
    root.setAttribute("data-layer", String(state.layer));
    root.setAttribute("data-head", state.all ? "all" : String(state.head));
    root.setAttribute("data-query", String(q));
    root.setAttribute("data-direction", state.dir);
    root.classList.toggle("av-all", state.all);
    layerSelect.value = String(state.layer);
    headSelect.value = state.all ? "all" : String(state.head);
    dirButtons.to.setAttribute("aria-pressed", String(state.dir === "to"));
    dirButtons.from.setAttribute("aria-pressed", String(state.dir === "from"));
    var rgb = heat(), ranked = [];
    chips.forEach(function (chip, j) {
      var query = state.dir === "to" ? q : j, key = state.dir === "to" ? j : q;
      var isMasked = masked(query, key);
      chip.classList.toggle("av-masked", isMasked);
      chip.classList.toggle("av-selected", j === q);
      chip.setAttribute("data-masked", String(isMasked));
      var weights = [];
      for (var h = 0; h < H; h++) weights.push(weight(state.layer, h, query, key));
      var w = state.all ? weights.reduce(function (a, x) { return a + x; }, 0) / H : weights[state.head];
      chip.setAttribute("data-weight", String(w));
      chip.setAttribute("data-head-weights", weights.map(String).join(","));
      var bars = chip.lastChild.childNodes;
      for (var b = 0; b < H; b++) bars[b].style.height = (100 * weights[b]).toFixed(1) + "%";
      chip.style.background = state.all || isMasked || w === 0 ? "" : "rgba(" + rgb.join(",") + "," + w.toFixed(3) + ")";
      chip.classList.toggle("av-strong", !state.all && !isMasked && w > 0.55);
      var what = isMasked ? "masked (a future position)" : (state.all ? "mean " + format(w) + "; heads " +
        weights.map(format).join(", ") : format(w));
      chip.title = "position " + j + ": " + JSON.stringify(tokens[j]) + "\n" +
        (state.dir === "to" ? "weight from " + quoted(tokens[q]) + ": " : "weight to " + quoted(tokens[q]) + ": ") + what;
      if (!isMasked) ranked.push([w, j]);
    });
    ranked.sort(function (a, b) { return b[0] - a[0] || a[1] - b[1]; });
    var best = ranked.slice(0, 3).filter(function (r) { return r[0] > 0; }).map(function (r) {
      return quoted(tokens[r[1]]) + " " + format(r[0]);
    });
    readout.textContent = quoted(tokens[q]) + " (position " + q + ") " +
      (state.dir === "to" ? "attends most to " : "is attended most by ") + (best.length ? best.join(", ") : "nothing") +
      (state.all ? " (mean over heads)" : "");
    legend.textContent = "";
    var swatch;
    if (state.all) {
      for (var h4 = 0; h4 < H; h4++) {
        var item = el("span", null); swatch = el("span", "av-swatch"); swatch.style.background = headColour(h4);
        item.appendChild(swatch); item.appendChild(document.createTextNode("head " + h4)); legend.appendChild(item);
      }
    } else {
      var strong = el("span", null); swatch = el("span", "av-swatch"); swatch.style.background = "rgb(" + rgb.join(",") + ")";
      strong.appendChild(swatch); strong.appendChild(document.createTextNode("weight 1")); legend.appendChild(strong);
      var zero = el("span", null); zero.appendChild(el("span", "av-swatch")); zero.appendChild(document.createTextNode("weight 0"));
      legend.appendChild(zero);
    }
    if (causal) {
      var m = el("span", null); m.appendChild(el("span", "av-swatch av-masked"));
      m.appendChild(document.createTextNode("masked: a later position, never attended")); legend.appendChild(m);
    }
    thumbs.forEach(function (t) {
      t.button.classList.toggle("av-current", t.l === state.layer && (state.all || t.h === state.head));
      t.button.setAttribute("aria-pressed", String(t.l === state.layer && !state.all && t.h === state.head));
    });
    matrixCaption.textContent = "Layer " + state.layer + ", " + (state.all ? "all heads overlaid (colour = head)" :
      "head " + state.head) + ". Row = query (the token that looks), column = key (the token looked at)" +
      (causal ? "; hatched cells are masked." : ".");
    drawMatrix(q);
  }

  function cellAt(event) {
    if (!geometry) return null;
    var box = matrix.getBoundingClientRect(), scale = box.width / (matrix.width / (window.devicePixelRatio || 1));
    var x = (event.clientX - box.left) / scale - geometry.margin, y = (event.clientY - box.top) / scale - geometry.margin;
    var k = Math.floor(x / geometry.cell), q = Math.floor(y / geometry.cell);
    return q >= 0 && k >= 0 && q < T && k < T ? { q: q, k: k } : null;
  }
  matrix.addEventListener("mousemove", function (event) {
    var at = cellAt(event);
    if (!at) return;
    var text = quoted(tokens[at.q]) + " \u2192 " + quoted(tokens[at.k]) + ": ";
    if (masked(at.q, at.k)) text += "masked";
    else if (state.all) { var ws = []; for (var h = 0; h < H; h++) ws.push(format(weight(state.layer, h, at.q, at.k))); text += "heads " + ws.join(", "); }
    else text += format(weight(state.layer, state.head, at.q, at.k));
    matrix.title = text;
  });
  matrix.addEventListener("click", function (event) {
    var at = cellAt(event);
    if (at) { state.pinned = state.dir === "to" ? at.q : at.k; state.hover = null; render(); }
  });

  drawThumbs();
  render();
  var redraw = function () { drawThumbs(); render(); };
  if (window.MutationObserver) {
    var watcher = new MutationObserver(redraw);
    watcher.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
    if (document.body) watcher.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light", "class"] });
  }
  root.setAttribute("data-ready", "true");
})();
""".strip()
# Indentation only costs bytes in every page; the line breaks stay, so the script reads the same.
_JS = "\n".join(line.strip() for line in _JS.splitlines() if line.strip())
