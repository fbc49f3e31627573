"""The conceptual diagrams of book.viz.diagrams: each draws its labelled parts, fits the book's
column, has a transparent background and only colours that read on a light and a dark page."""
import io
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from PIL import Image  # noqa: E402

from book.viz import diagrams  # noqa: E402

# Each function, and words its text must contain (the parts of the idea it shows).
EXPECTED = {
    "draw_text_to_vectors": ["text", "tokens", "ids", "Full fathom five", "32", "302", "row"],
    "draw_attention": ["Q", "K", "V", "QK^\\top", "sqrt{d_k}", "causal mask", "softmax", "AV"],
    "draw_next_token_loss": ["input", "target", "logits", "softmax", "log p", "loss", "nats"],
    "draw_gpt": ["token embedding", "position", "block 1", "block $L$", "final LayerNorm", "head",
                 "LayerNorm 1", "self-attention", "LayerNorm 2", "MLP", "+", "residual stream"],
    "draw_maml": ["support set", "theta_1'", "query loss", "inner loop", "outer loop",
                  "meta-update"],
    "draw_metagpt_pipeline": ["pretrain", "MAML", "adapt", "measure", "support set", "query set",
                              "finetune", "pretrain-maml", "skipped"],
}


def texts(fig):
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def luminance(rgba):
    channels = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgba[:3]]
    return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]


def contrast(a, b):
    high, low = sorted((luminance(to_rgba(a)), luminance(to_rgba(b))), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.fixture(params=sorted(EXPECTED))
def drawn(request):
    fig = getattr(diagrams, request.param)()
    yield request.param, fig
    plt.close(fig)


def test_every_diagram_is_tested():
    assert set(EXPECTED) == {name for name in diagrams.__all__ if name.startswith("draw_")}


def test_each_diagram_labels_its_parts(drawn):
    name, fig = drawn
    assert isinstance(fig, matplotlib.figure.Figure)
    shown = "\n".join(texts(fig))
    missing = [word for word in EXPECTED[name] if word not in shown]
    assert not missing, f"{name} lacks {missing}"


def test_attention_shows_its_three_projections_as_separate_labels():
    fig = diagrams.draw_attention()
    assert {"Q", "K", "V"} <= set(texts(fig))
    plt.close(fig)


def test_text_reads_on_light_and_dark_pages(drawn):
    name, fig = drawn
    for text in fig.findobj(Text):
        if not text.get_text():
            continue
        colour = text.get_color()
        assert to_rgba(colour)[:3] != (0.0, 0.0, 0.0), f"{name}: black text {text.get_text()!r}"
        if to_rgba(colour) == to_rgba(diagrams.ON_FILL):
            continue  # drawn on a filled box, checked below
        for page in diagrams.CONTRAST_PAGES:
            ratio = contrast(colour, page)
            assert ratio >= 3, f"{name}: {text.get_text()!r} in {colour} on {page}: {ratio:.2f}"


@pytest.mark.parametrize("colour", sorted(diagrams.PALETTE.values()) + [diagrams.TEXT])
def test_palette_reads_on_both_pages_and_under_white_labels(colour):
    for page in diagrams.CONTRAST_PAGES + (diagrams.ON_FILL,):
        assert contrast(colour, page) >= 3, (colour, page)


def test_contrast_check_can_fail():
    assert contrast("#dddddd", "#ffffff") < 3 and contrast("#222222", "#121212") < 3


def test_background_is_transparent_and_width_fits_the_column(drawn):
    name, fig = drawn
    buffer = io.BytesIO()
    # As the notebook's inline backend saves it: tight box, the figure's own face colour.
    fig.savefig(buffer, format="png", dpi=150, bbox_inches="tight", facecolor=fig.get_facecolor())
    image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGBA")
    alpha = np.asarray(image)[..., 3]
    assert alpha[0, 0] == 0 and alpha[-1, -1] == 0, f"{name}: opaque background"
    assert (alpha > 0).mean() > 0.02, f"{name}: almost nothing drawn"
    assert image.size[0] / 150 <= 8.0, f"{name}: {image.size[0] / 150:.1f} inches wide"


def test_no_label_is_smaller_than_the_book_allows(drawn):
    name, fig = drawn
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_text()]
    assert min(sizes) >= 8.5, f"{name}: text at {min(sizes)} points"


def test_ch1_vectors_follow_the_ids():
    fig = diagrams.draw_text_to_vectors("ab a", ["ab", " a"], [7, 3])
    shown = texts(fig)
    assert "7" in shown and "3" in shown and "ab" in shown
    assert not any(re.search(r"same id", t) for t in shown), "no id repeats here"
    plt.close(fig)
    fig = diagrams.draw_text_to_vectors("aa", ["a", "a"], [5, 5])
    assert any("same id (5)" in t for t in texts(fig))
    plt.close(fig)


def test_loss_diagram_prints_the_loss_it_computes():
    logits = [0.0, 1.0, 2.0]
    fig = diagrams.draw_next_token_loss("xyz", 0, ["x", "y", "z"], logits)
    p = np.exp(logits) / np.exp(logits).sum()
    assert any(f"loss = {-np.log(p[1]):.2f} nats" in t for t in texts(fig))
    plt.close(fig)


def test_attention_weights_are_causal_rows_that_sum_to_one():
    _, mask, weights = diagrams.attention_example()
    assert np.allclose(weights.sum(axis=1), 1)
    assert np.all(weights[~mask] == 0) and weights[0, 0] == 1


@pytest.mark.parametrize("call, message", [
    (lambda: diagrams.draw_text_to_vectors("ab", ["a"], [1, 2]), "one id per token"),
    (lambda: diagrams.draw_text_to_vectors("ab", ["a", "c"], [1, 2]), "spell the text"),
    (lambda: diagrams.draw_next_token_loss("xyz", 5), "outside"),
    (lambda: diagrams.draw_next_token_loss("xyz", 0, ["x"], [0.0]), "not in the vocabulary"),
    (lambda: diagrams.draw_maml(tasks=9), "1 to 5"),
])
def test_bad_arguments_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()
    plt.close("all")
