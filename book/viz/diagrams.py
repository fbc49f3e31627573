"""Conceptual diagrams of Chapters 1-6, drawn with matplotlib patches and arrows.

One function per diagram; each returns a matplotlib ``Figure`` (made with pyplot, so a notebook
shows it like any other figure):

    draw_text_to_vectors()      Chapter 1: text -> tokens -> ids -> rows of the embedding table
    draw_attention()            Chapter 2: scaled dot-product attention with a causal mask
    draw_next_token_loss()      Chapter 3: logits -> softmax -> -log p(target), targets shifted
    draw_gpt()                  Chapter 4: the GPT stack and one pre-LayerNorm block
    draw_maml()                 Chapter 5: MAML's inner and outer loops
    draw_metagpt_pipeline()     Chapter 6: pretrain, meta-train, adapt, measure

The figures read on a light and on a dark page: the background is transparent, boxes are filled
with mid-tone colours and labelled in white, and every other line and text is a mid-tone colour
(``CONTRAST_PAGES`` are the two pages ``tests/test_diagrams.py`` checks them against). The few
numbers a diagram shows (attention weights, probabilities) are computed here from the example
they draw, never typed in.
"""
from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyBboxPatch, Rectangle

__all__ = [
    "draw_text_to_vectors", "draw_attention", "draw_next_token_loss", "draw_gpt", "draw_maml",
    "draw_metagpt_pipeline", "PALETTE", "TEXT", "CONTRAST_PAGES",
]

# Mid tones: white text on each fill, and each colour on a white or a near-black page, keeps a
# contrast ratio of at least 3 (tests/test_diagrams.py computes it).
PALETTE = {
    "blue": "#3f7fc4",
    "orange": "#b8661a",
    "green": "#2f8a50",
    "purple": "#8e63c7",
    "red": "#cc4c4c",
    "teal": "#2a8f8f",
}
TEXT = "#7a7a7a"            # labels and arrows outside boxes: mid grey, never black
ON_FILL = "#ffffff"         # labels inside the filled boxes
CONTRAST_PAGES = ("#ffffff", "#121212")
FONT = 10                   # points; at most 8 inches wide, so never below 9 points in the book


def _canvas(width: float, height: float):
    """A figure whose data coordinates are inches, (0, 0) at the bottom left, no axes drawn."""
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    fig.patch.set_alpha(0)
    ax.patch.set_alpha(0)
    return fig, ax


def _box(ax, x, y, w, h, text, color, *, fontsize=FONT, weight="normal", filled=True):
    """A rounded box centred on (x, y), labelled in white when filled, in its colour when not."""
    patch = FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.06",
                           facecolor=color if filled else "none", edgecolor=color, linewidth=1.4)
    ax.add_patch(patch)
    if text:
        ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, weight=weight,
                color=ON_FILL if filled else color)
    return patch


def _arrow(ax, start, end, *, color=TEXT, style="-|>", connection="arc3", lw=1.3, dashed=False):
    ax.annotate("", xy=end, xytext=start,
                arrowprops=dict(arrowstyle=style, color=color, lw=lw, shrinkA=0, shrinkB=0,
                                mutation_scale=11, connectionstyle=connection,
                                linestyle="--" if dashed else "-"))


def _label(ax, x, y, text, *, color=TEXT, fontsize=FONT, ha="center", va="center", **kwargs):
    return ax.text(x, y, text, ha=ha, va=va, fontsize=fontsize, color=color, **kwargs)


def _grid(ax, x0, y0, cell, values, color, *, mask=None):
    """A matrix of cells, bottom-left at (x0, y0), row 0 on top, each holding a square whose area
    is its value (in [0, 1]), so it reads the same on a light and on a dark page; cells where
    ``mask`` is False are hatched instead."""
    rows, cols = values.shape
    for i in range(rows):
        for j in range(cols):
            x, y = x0 + j * cell, y0 + (rows - 1 - i) * cell
            if mask is not None and not mask[i, j]:
                ax.add_patch(Rectangle((x, y), cell, cell, facecolor="none", edgecolor=TEXT,
                                       hatch="////", linewidth=0.6))
                continue
            side = cell * 0.9 * math.sqrt(max(float(values[i, j]), 0.0))
            ax.add_patch(Rectangle((x + (cell - side) / 2, y + (cell - side) / 2), side, side,
                                   facecolor=color, edgecolor="none"))
            ax.add_patch(Rectangle((x, y), cell, cell, facecolor="none", edgecolor=TEXT,
                                   linewidth=0.6))


def _vector(ax, x0, y, cell, values, color):
    """A row of cells, one per number, shaded by value (values in [-1, 1])."""
    for j, value in enumerate(values):
        ax.add_patch(Rectangle((x0 + j * cell, y - cell / 2), cell, cell, facecolor=color,
                               alpha=0.2 + 0.8 * (float(value) + 1) / 2, edgecolor=TEXT, linewidth=0.6))


def _visible(token: str) -> str:
    return token.replace(" ", "\u2423").replace("\n", "\u21b5")


# ---------------------------------------------------------------------------------------------
# Chapter 1


def draw_text_to_vectors(text: str = "Full fathom five",
                         tokens: Sequence[str] = ("F", "u", "ll", " f", "ath", "om", " f", "ive"),
                         ids: Sequence[int] = (32, 76, 101, 103, 314, 123, 103, 302),
                         d_shown: int = 8):
    """Text, cut into tokens, each token's id, and row id of the embedding table E as its vector.

    The defaults are the BPE tokens and ids of Chapter 1's example; the shades of a row are a
    fixed function of its id, so a repeated token gets the same vector, as it does in E.
    """
    if len(tokens) != len(ids) or not tokens:
        raise ValueError(f"one id per token: {len(tokens)} tokens, {len(ids)} ids")
    if "".join(tokens) != text:
        raise ValueError("the tokens must spell the text")
    n = len(tokens)
    row_h = 0.34
    height = 1.2 + n * row_h
    fig, ax = _canvas(6.4, height)
    top = height - 0.65
    ys = [top - k * row_h for k in range(n)]
    x_text, x_tok, x_id, x_vec, cell = 0.75, 2.05, 3.05, 3.85, 0.26
    headers = [(x_text, "text"), (x_tok, "tokens (BPE)"), (x_id, "ids $x_i$"),
               (x_vec + d_shown * cell / 2, "$e_i = E[x_i]$: row $x_i$ of $E$")]
    for x, header in headers:
        _label(ax, x, height - 0.25, header, weight="bold")
    centre = (ys[0] + ys[-1]) / 2
    _box(ax, x_text, centre, 1.3, 0.5, f'"{text}"', PALETTE["blue"], fontsize=9)
    for k, (token, token_id, y) in enumerate(zip(tokens, ids, ys)):
        _arrow(ax, (x_text + 0.67, centre), (x_tok - 0.38, y), connection="arc3,rad=0")
        _box(ax, x_tok, y, 0.7, row_h - 0.08, _visible(token), PALETTE["orange"])
        _arrow(ax, (x_tok + 0.38, y), (x_id - 0.3, y))
        _box(ax, x_id, y, 0.56, row_h - 0.08, str(token_id), PALETTE["green"])
        _arrow(ax, (x_id + 0.3, y), (x_vec - 0.06, y))
        values = np.sin(np.arange(1, d_shown + 1) * (token_id * 0.37 + 1.3))
        _vector(ax, x_vec, y, cell, values, PALETTE["purple"])
    repeated = sorted({i for i in ids if list(ids).count(i) > 1})
    note = f"$E$ has $V$ rows of $d$ numbers ({d_shown} shown)"
    if repeated:
        note += f";\nthe same id ({repeated[0]}) picks the same row"
    _label(ax, x_vec + d_shown * cell / 2, ys[-1] - 0.5, note, fontsize=9)
    return fig


# ---------------------------------------------------------------------------------------------
# Chapter 2


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def attention_example(length: int = 4, d_k: int = 8, seed: int = 0):
    """The scores, mask and weights the attention diagram shows, for a random Q and K."""
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((length, d_k)), rng.standard_normal((length, d_k))
    scores = q @ k.T / math.sqrt(d_k)
    mask = np.tril(np.ones((length, length), dtype=bool))
    weights = _softmax(np.where(mask, scores, -np.inf))
    return scores, mask, weights


def draw_attention():
    """x -> Q, K, V by three linear maps; QK^T / sqrt(d_k); causal mask; softmax by rows; A V."""
    fig, ax = _canvas(7.2, 3.6)
    blue, orange, green, purple = (PALETTE[c] for c in ("blue", "orange", "green", "purple"))
    _box(ax, 0.45, 1.75, 0.6, 1.3, "$x$\n$T \\times d$", PALETTE["teal"])
    rows = {"Q": (2.85, blue, "$W_Q$"), "K": (1.75, orange, "$W_K$"), "V": (0.65, green, "$W_V$")}
    for name, (y, color, weight) in rows.items():
        _arrow(ax, (0.78, 1.75), (1.5, y), connection="arc3,rad=0")
        _label(ax, 1.13, y + (0.17 if y > 1.75 else -0.17 if y < 1.75 else 0.14), weight, fontsize=9)
        _box(ax, 1.85, y, 0.66, 0.5, name, color, fontsize=12, weight="bold")
    scores, mask, weights = attention_example()
    cell = 0.24
    # QK^T / sqrt(d)
    x_scores = 2.75
    _arrow(ax, (2.2, 2.85), (x_scores - 0.05, 2.35), connection="arc3,rad=-0.2")
    _arrow(ax, (2.2, 1.75), (x_scores - 0.05, 2.1), connection="arc3,rad=0.2")
    span = (scores - scores.min()) / (scores.max() - scores.min())
    _grid(ax, x_scores, 1.75, cell, span, purple)
    _label(ax, x_scores + 2 * cell, 2.95, "$QK^\\top / \\sqrt{d_k}$")
    _label(ax, x_scores + 2 * cell, 1.55, "scores, $T \\times T$", fontsize=9)
    # causal mask
    x_mask = 4.05
    _arrow(ax, (x_scores + 4 * cell + 0.07, 2.23), (x_mask - 0.07, 2.23))
    _grid(ax, x_mask, 1.75, cell, span, purple, mask=mask)
    _label(ax, x_mask + 2 * cell, 2.95, "causal mask")
    _label(ax, x_mask + 2 * cell, 1.55, "$j > i$: $-\\infty$", fontsize=9)
    # softmax
    x_soft = 5.35
    _arrow(ax, (x_mask + 4 * cell + 0.07, 2.23), (x_soft - 0.07, 2.23))
    _grid(ax, x_soft, 1.75, cell, weights, purple, mask=mask)
    _label(ax, x_soft + 2 * cell, 2.95, "softmax by row")
    _label(ax, x_soft + 2 * cell, 1.45, "weights $A$,\nrows sum to 1", fontsize=9)
    # A V
    _box(ax, 6.6, 0.65, 0.9, 0.6, "$AV$\n$T \\times d_v$", PALETTE["red"])
    _arrow(ax, (2.2, 0.65), (6.13, 0.65))
    _label(ax, 4.15, 0.82, "values: what each position hands over", fontsize=9)
    _arrow(ax, (x_soft + 4 * cell + 0.07, 2.23), (6.85, 0.97), connection="angle,angleA=0,angleB=90")
    _label(ax, 6.6, 0.15, "weighted sum\nof the values", fontsize=9)
    return fig


# ---------------------------------------------------------------------------------------------
# Chapter 3


def draw_next_token_loss(text: str = "To be, or", position: int = 3,
                         vocabulary: Sequence[str] = ("a", "b", "e", "o", " ", ","),
                         logits: Sequence[float] = (0.2, 0.6, 1.7, 0.9, -0.3, -1.0)):
    """Inputs and targets (the text shifted by one); for one position, logits -> softmax ->
    -log p(target). The target of ``position`` must be in ``vocabulary``."""
    inputs, targets = text[:-1], text[1:]
    if not 0 <= position < len(inputs):
        raise ValueError(f"position {position} outside the {len(inputs)} inputs")
    if len(vocabulary) != len(logits):
        raise ValueError("one logit per vocabulary entry")
    target = targets[position]
    if target not in vocabulary:
        raise ValueError(f"the target {target!r} is not in the vocabulary shown")
    s = np.asarray(logits, dtype=float)
    p = _softmax(s)
    y = list(vocabulary).index(target)
    loss = -math.log(p[y])
    fig, ax = _canvas(6.4, 4.6)
    blue, orange, green, red = (PALETTE[c] for c in ("blue", "orange", "green", "red"))
    # the two rows: inputs and the same text shifted by one
    width = 0.5
    x0 = 1.45
    _label(ax, 0.65, 4.15, "input $x_t$", ha="center")
    _label(ax, 0.65, 3.3, "target $x_{t+1}$", ha="center")
    for t, (a, b) in enumerate(zip(inputs, targets)):
        x = x0 + t * (width + 0.08)
        chosen = t == position
        _box(ax, x, 4.15, width, 0.42, _visible(a), blue, filled=True)
        _box(ax, x, 3.3, width, 0.42, _visible(b), orange, filled=chosen)
        _arrow(ax, (x, 3.93), (x, 3.53))
        if t + 1 < len(inputs):
            ax.plot([x + width + 0.08 - 0.12, x + 0.12], [3.94, 3.51], color=orange, lw=0.9, ls=":")
    last = x0 + (len(inputs) - 1) * (width + 0.08)
    _label(ax, last + 0.45, 3.72, "one prediction\nper position;\ntarget = next input",
           ha="left", fontsize=9)
    _label(ax, x0 + position * (width + 0.08), 2.9, f"position {position}", fontsize=9)  # counted from 0
    # the three panels for the chosen position
    panels = [(0.55, "logits $s_c$"), (2.6, "\u2192 softmax $p(c)$"), (4.65, "\u2192 $-\\log p$(target)")]
    axes = []
    for left, title in panels:
        sub = fig.add_axes((left / 6.4, 0.35 / 4.6, 1.55 / 6.4, 1.75 / 4.6))
        sub.patch.set_alpha(0)
        for side in ("top", "right"):
            sub.spines[side].set_visible(False)
        for side in ("left", "bottom"):
            sub.spines[side].set_color(TEXT)
        sub.tick_params(colors=TEXT, labelsize=9, labelcolor=TEXT)
        sub.set_title(title, color=TEXT, fontsize=FONT)
        axes.append(sub)
    names = [_visible(c) for c in vocabulary]
    colours = [orange if i == y else blue for i in range(len(s))]
    axes[0].bar(names, s, color=colours)
    axes[0].axhline(0, color=TEXT, lw=0.6)
    axes[1].bar(names, p, color=colours)
    axes[1].set_ylim(0, 1)
    grid = np.linspace(0.02, 1, 100)
    axes[2].plot(grid, -np.log(grid), color=blue)
    axes[2].plot([p[y]], [loss], "o", color=orange)
    axes[2].set_xlim(0, 1)
    axes[2].set_ylim(0, 4)
    axes[2].set_xlabel("p(target)", color=TEXT, fontsize=9)
    axes[2].annotate(f"p = {p[y]:.2f}\nloss = {loss:.2f} nats", (p[y], loss), (p[y] + 0.08, 2.3),
                     color=TEXT, fontsize=9)
    _label(ax, 3.2, 2.55, f"at position {position}: scores for every character, target "
                          f"{_visible(target)!r}; the loss is the mean over all positions",
           fontsize=9)
    return fig


# ---------------------------------------------------------------------------------------------
# Chapter 4


def draw_gpt():
    """Left: the GPT, embeddings + positions -> L blocks -> final LayerNorm -> head. Right: one
    pre-LayerNorm block, LN -> attention -> add, LN -> MLP -> add, around the residual stream."""
    fig, ax = _canvas(6.6, 5.8)
    blue, orange, green, purple, red, teal = (PALETTE[c] for c in PALETTE)
    x = 1.35
    stack = [
        (0.35, "token ids $x_1 \\dots x_T$", None),
        (1.0, "token embedding $E(x_i)$\n+ position $P(i)$", teal),
        (1.75, "block 1", purple),
        (2.4, "block 2", purple),
        (3.35, "block $L$", purple),
        (4.05, "final LayerNorm", blue),
        (4.7, "head: $h_i \\cdot E(v)$ (tied)", red),
        (5.4, "logits, next-token scores", None),
    ]
    for k, (y, text, color) in enumerate(stack):
        if color is None:
            _label(ax, x, y, text)
        else:
            _box(ax, x, y, 2.3, 0.5 if "\n" in text else 0.42, text, color)
        if k:
            previous = stack[k - 1][0]
            gap_bottom = previous + (0.25 if stack[k - 1][2] is not None and "\n" in stack[k - 1][1]
                                     else 0.21 if stack[k - 1][2] is not None else 0.14)
            gap_top = y - (0.25 if color is not None and "\n" in text else 0.21 if color else 0.14)
            if text == "block $L$":
                _label(ax, x, (previous + y) / 2 + 0.02, "\u22ee", fontsize=14)
                continue
            _arrow(ax, (x, gap_bottom), (x, gap_top))
    # zoom lines from block 2 to the block on the right
    left, right, bottom, top = 3.05, 6.45, 0.55, 5.1
    ax.add_patch(FancyBboxPatch((left, bottom), right - left, top - bottom,
                                boxstyle="round,pad=0,rounding_size=0.1", facecolor="none",
                                edgecolor=purple, linewidth=1.2, linestyle="--"))
    ax.plot([x + 1.15, left], [2.4 + 0.21, top], color=purple, lw=0.8, ls=":")
    ax.plot([x + 1.15, left], [2.4 - 0.21, bottom], color=purple, lw=0.8, ls=":")
    _label(ax, (left + right) / 2, top + 0.22, "one pre-LayerNorm block", color=purple, weight="bold")
    stream = 3.5
    _label(ax, stream, bottom + 0.2, "$x$", fontsize=11)
    _label(ax, stream, top - 0.2, "$x$ out", fontsize=10)
    ax.annotate("", xy=(stream, top - 0.35), xytext=(stream, bottom + 0.35),
                arrowprops=dict(arrowstyle="-|>", color=TEXT, lw=2.2, mutation_scale=14,
                                shrinkA=0, shrinkB=0))
    _label(ax, stream - 0.2, (top + bottom) / 2, "residual stream", rotation=90, fontsize=9)
    branch_x = 5.0
    for y_from, y_add, first, second, colour in ((1.05, 2.45, "LayerNorm 1", "causal\nself-attention",
                                                  orange),
                                                 (2.95, 4.35, "LayerNorm 2", "MLP (GELU)", green)):
        _arrow(ax, (stream, y_from + 0.25), (branch_x - 0.75, y_from + 0.25))
        _box(ax, branch_x, y_from + 0.25, 1.5, 0.4, first, blue)
        _arrow(ax, (branch_x, y_from + 0.45), (branch_x, y_from + 0.8))
        _box(ax, branch_x, y_from + 1.05, 1.5, 0.5, second, colour)
        _arrow(ax, (branch_x, y_from + 1.3), (stream + 0.17, y_add), connection="angle,angleA=90,angleB=0")
        ax.add_patch(plt.Circle((stream, y_add), 0.15, facecolor=teal, edgecolor=teal))
        _label(ax, stream, y_add, "+", color=ON_FILL, fontsize=12, weight="bold")
    return fig


# ---------------------------------------------------------------------------------------------
# Chapter 5


def draw_maml(tasks: int = 3, inner_steps: int = 3):
    """Parameter space: from theta, a few SGD steps on each task's support set reach theta'_i
    (inner loop); the query losses at the theta'_i move theta (outer loop)."""
    if not 1 <= tasks <= 5 or not 1 <= inner_steps <= 5:
        raise ValueError("draw 1 to 5 tasks of 1 to 5 inner steps")
    fig, ax = _canvas(6.4, 4.3)
    blue, orange, green, purple, red, teal = (PALETTE[c] for c in PALETTE)
    theta = np.array([1.0, 2.25])
    step = 2.7 / inner_steps
    angles = np.linspace(0.36, -0.36, tasks) if tasks > 1 else np.zeros(1)
    colours = [orange, green, teal, red, blue]
    for i, angle in enumerate(angles):
        colour = colours[i % len(colours)]
        direction = np.array([math.cos(angle), math.sin(angle)])
        normal = np.array([-direction[1], direction[0]])
        points = [theta]
        for k in range(1, inner_steps + 1):
            wiggle = 0.1 * (-1) ** k if k < inner_steps else 0.0
            points.append(theta + direction * step * k + normal * wiggle)
        for a, b in zip(points[:-1], points[1:]):
            _arrow(ax, tuple(a), tuple(b), color=colour, lw=1.5)
        end = points[-1]
        ax.plot(*end, "o", color=colour, ms=7)
        _label(ax, end[0] + 0.15, end[1] + 0.13, f"$\\theta_{i + 1}'$", color=colour,
               fontsize=12, ha="left")
        _label(ax, end[0] + 0.15, end[1] - 0.17,
               f"query loss $\\mathcal{{L}}_{{Q_{i + 1}}}(\\theta_{i + 1}')$", color=colour,
               fontsize=9, ha="left")
    # the outer loop: the query losses, differentiated through the inner steps, move theta
    new = theta + np.array([0.55, -1.15])
    _arrow(ax, tuple(theta), tuple(new), color=purple, lw=2.2)
    ax.plot(*new, "o", color=purple, ms=7, fillstyle="none")
    _label(ax, new[0] - 0.14, new[1], "$\\theta$ after one\nmeta-update", color=purple,
           fontsize=9, ha="right")
    _arrow(ax, (4.3, 0.98), (new[0] + 0.12, new[1] - 0.02), color=purple, dashed=True, lw=1.2,
           connection="arc3,rad=-0.08")
    ax.plot(*theta, "o", color=purple, ms=9)
    _label(ax, theta[0] - 0.14, theta[1], "$\\theta$", color=purple, fontsize=14, ha="right")
    _label(ax, 0.1, 4.05, "inner loop, per task $i$: $k$ SGD steps on its support set $S_i$,",
           color=orange, ha="left")
    _label(ax, 0.1, 3.75, "$\\theta_i' = \\theta - \\alpha \\nabla_\\theta \\mathcal{L}_{S_i}(\\theta)$"
                          " (repeated $k$ times)", color=orange, ha="left")
    _label(ax, 0.1, 0.55, "outer loop: the query losses at the $\\theta_i'$, differentiated "
                          "through the inner steps,", color=purple, ha="left")
    _label(ax, 0.1, 0.2, "$\\theta \\leftarrow \\theta - \\beta\\, \\nabla_\\theta \\sum_i"
                         " \\mathcal{L}_{Q_i}(\\theta_i')$", color=purple, ha="left")
    return fig


# ---------------------------------------------------------------------------------------------
# Chapter 6


def draw_metagpt_pipeline():
    """Pretrain on the meta-training tasks, meta-train with MAML over tasks of a family, then adapt
    to a new task on its support set and measure on its query set; below, which stages each of
    the three trained starts of Chapter 6 goes through."""
    fig, ax = _canvas(7.6, 4.4)
    blue, orange, green, purple = (PALETTE[c] for c in ("blue", "orange", "green", "purple"))
    stages = [
        (2.0, "1. pretrain", "next-character loss\non the text of the\ntraining tasks", blue),
        (3.62, "2. MAML",
         "tasks of the family:\nadapt on $S_i$, update\n$\\theta$ with $L_{Q_i}(\\theta_i')$", purple),
        (5.24, "3. adapt", "a new test task:\n$k$ SGD steps on\nits support set", orange),
        (6.86, "4. measure", "bits per character\nof $\\theta'$ on the\ntask's query set", green),
    ]
    y = 2.95
    for k, (x, title, body, colour) in enumerate(stages):
        _box(ax, x, y + 0.6, 1.4, 0.42, title, colour, weight="bold")
        _box(ax, x, y - 0.3, 1.4, 1.1, "", colour, filled=False)
        _label(ax, x, y - 0.3, body, color=colour, fontsize=9)
        if k:
            _arrow(ax, (stages[k - 1][0] + 0.71, y + 0.1), (x - 0.71, y + 0.1))
    for x, name in ((2.81, "$\\theta_0$"), (4.43, "$\\theta$"), (6.05, "$\\theta'$")):
        _label(ax, x, y + 0.33, name)
    _label(ax, 4.43, 4.2, "one family at a time: dialects, cipher or speakers", fontsize=9)
    # which trained start goes through which stage
    rows = [("finetune", ("on", "skipped", "on", "on")),
            ("maml", ("random init", "on", "on", "on")),
            ("pretrain-maml", ("on", "on", "on", "on"))]
    _label(ax, 0.05, 1.45, "start", ha="left", weight="bold")
    for r, (name, used) in enumerate(rows):
        yy = 1.05 - r * 0.38
        _label(ax, 0.05, yy, name, ha="left", fontsize=9, family="monospace")
        for (x, _, _, colour), use in zip(stages, used):
            if use == "on":
                ax.add_patch(Rectangle((x - 0.6, yy - 0.1), 1.2, 0.2, facecolor=colour,
                                       edgecolor="none"))
            else:
                _label(ax, x, yy, use, fontsize=9)
    return fig
