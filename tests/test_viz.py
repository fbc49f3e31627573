"""The attention view: self-contained, escaped, compact HTML; clear errors; the explorer."""
import base64
import json
import os
import re
import shutil
import subprocess
import warnings

import numpy as np
import pytest
import torch

from book.viz import MAX_TOKENS, AttentionExplorer, AttentionView, attention_explorer


def causal_attention(layers=2, heads=3, length=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(layers, heads, length, length, generator=generator)
    future = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


def tokens_for(length):
    return [f"tok{i}" for i in range(length)]


def embedded_payload(page):
    match = re.search(r'<script type="application/json" class="av-data">(.*?)</script>', page, re.S)
    assert match, "no embedded data block"
    return json.loads(match.group(1))


def decode_weights(payload, length):
    """Rebuild (layers, heads, T, T) from the page's bytes, independently of book.viz."""
    data = np.frombuffer(base64.b64decode(payload["weights"]), dtype=np.uint8).astype(np.float64) / payload["scale"]
    layers, heads = payload["layers"], payload["heads"]
    full = np.zeros((layers, heads, length, length))
    if payload["causal"]:
        rows, cols = np.tril_indices(length)
        full[:, :, rows, cols] = data.reshape(layers, heads, -1)
    else:
        full[:] = data.reshape(layers, heads, length, length)
    return full


HOSTILE = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "</script><script>window.__xss=1</script>",
           "&amp; <!-- -->"]


# ---------------------------------------------------------------- the HTML

def test_html_is_self_contained():
    page = AttentionView(causal_attention(), tokens_for(5), title="A title")._repr_html_()
    assert "data-attention-view" in page
    assert "<script src" not in page.lower()
    assert "http:" not in page and "https:" not in page
    assert "//" not in re.sub(r"<script>.*?</script>", "", page, flags=re.S)
    js = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert len(js) == 1
    loads = re.search(r"\b(require|import\s*\(|fetch|XMLHttpRequest|WebSocket|define\()", js[0])
    assert not loads, "the script must not load anything"
    assert "<link" not in page and "@import" not in page and "url(" not in page


def test_embedded_weights_round_trip():
    attention = causal_attention(layers=2, heads=3, length=7)
    view = AttentionView(attention, tokens_for(7))
    payload = embedded_payload(view._repr_html_())
    assert payload["tokens"] == tokens_for(7) and payload["causal"] is True
    shown = decode_weights(payload, 7)
    np.testing.assert_allclose(shown, view.shown_weights(), atol=0)
    np.testing.assert_allclose(shown, attention.numpy(), atol=0.5 / 255 + 1e-7)


def test_non_causal_attention_is_embedded_in_full():
    attention = torch.randn(1, 2, 4, 4).softmax(-1)
    view = AttentionView(attention, tokens_for(4))
    assert view.causal is False
    np.testing.assert_allclose(decode_weights(embedded_payload(view._repr_html_()), 4), view.shown_weights())


def test_hostile_tokens_are_escaped():
    view = AttentionView(causal_attention(1, 1, len(HOSTILE)), HOSTILE, title='<b onmouseover="x">title</b>')
    page = view._repr_html_()
    for token in HOSTILE:
        assert token not in page, f"token text appears unescaped: {token!r}"
    assert "<img" not in page
    assert page.count("<script") == 2 and page.count("</script>") == 2, "a token closed or opened a script element"
    assert "&lt;b onmouseover=&quot;x&quot;&gt;title&lt;/b&gt;" in page
    assert embedded_payload(page)["tokens"] == HOSTILE, "the tokens must reach the page exactly as written"
    assert "textContent" in page and "innerHTML" not in page, "the script sets token text as text, never as HTML"


def test_front_end_files_are_inlined_as_shipped():
    """The page carries the package's view.js (indentation dropped) and view.css (comments and
    line breaks dropped), read from the installed package."""
    from importlib import resources

    files = resources.files("book.viz")
    page = AttentionView(causal_attention(), tokens_for(5))._repr_html_()
    element_id = re.search(r'id="(attention-view-[^"]+)"', page).group(1)
    (script,) = re.findall(r"<script>(.*?)</script>", page, re.S)
    source = files.joinpath("view.js").read_text(encoding="utf-8").replace("__ELEMENT_ID__", element_id)
    assert script.splitlines() == [line.strip() for line in source.splitlines() if line.strip()]
    (style,) = re.findall(r"<style>(.*?)</style>", page, re.S)
    css = files.joinpath("view.css").read_text(encoding="utf-8")
    assert ".attention-view .av-title{font-weight:600;margin-bottom:.3em}" in css and style in css.replace("\n", "")
    assert "/*" not in style and "\n" not in style and style.count("{") == style.count("}") > 10


def test_the_script_parses_as_javascript(tmp_path):
    """``node --check`` on the script exactly as a page runs it (required under CI=true)."""
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is required under CI (apt-get install nodejs)")
        pytest.skip("node is not installed")
    page = AttentionView(causal_attention(), tokens_for(5))._repr_html_()
    (script,) = re.findall(r"<script>(.*?)</script>", page, re.S)
    path = tmp_path / "view.js"
    path.write_text(script, encoding="utf-8")
    result = subprocess.run([node, "--check", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_ids_are_unique_and_deterministic():
    attention = causal_attention()
    first, second = AttentionView(attention, tokens_for(5)), AttentionView(attention, tokens_for(5))
    ids = [re.search(r'id="([^"]+)"', view._repr_html_()).group(1) for view in (first, second, first)]
    assert len(set(ids)) == 3, f"two views on one page share an id: {ids}"
    other = re.search(r'id="([^"]+)"', AttentionView(causal_attention(seed=1), tokens_for(5))._repr_html_()).group(1)
    assert other.rsplit("-", 2)[1] != ids[0].rsplit("-", 2)[1], "different data gives a different id"
    def stem(element_id):
        return element_id.rsplit("-", 1)[0]

    assert stem(ids[0]) == stem(ids[1]), "the id derives from the data (and a counter), not from memory addresses"
    # Apart from the id, the same view renders the same HTML every time.
    a, b = first._repr_html_(), first._repr_html_()
    assert re.sub(r"attention-view-\w+-\d+", "ID", a) == re.sub(r"attention-view-\w+-\d+", "ID", b)


def test_compact_size_for_4_layers_4_heads_64_tokens():
    page = AttentionView(causal_attention(4, 4, 64), tokens_for(64))._repr_html_()
    size = len(page.encode("utf-8"))
    weights = len(embedded_payload(page)["weights"])
    assert weights == 4 * (4 * 4 * 64 * 65 // 2 + 2) // 3, "one byte per causal weight, base64"
    assert size < 100_000, f"the view adds {size} bytes for 4x4x64"
    lines = AttentionView(causal_attention(4, 4, 64), tokens_for(64), heads="all", mode="lines", layer=3)
    assert len(lines._repr_html_().encode("utf-8")) < 100_000


def test_reprs():
    view = AttentionView(causal_attention(4, 4, 12), tokens_for(12))
    assert repr(view) == "AttentionView(4 layers x 4 heads, 12 tokens)"
    single = AttentionView(np.ones((1, 1)), ["only"], title="One")
    assert repr(single) == "AttentionView(1 layer x 1 head, 1 token, title='One')"


def test_lower_ranks_get_leading_axes():
    attention = causal_attention(1, 3, 4)
    assert AttentionView(attention[0], tokens_for(4)).shape == (1, 3, 4, 4)
    assert AttentionView(attention[0, 1].numpy(), tokens_for(4)).shape == (1, 1, 4, 4)
    per_layer = [causal_attention(1, 2, 4, seed=s)[0] for s in range(3)]
    assert AttentionView(per_layer, tokens_for(4)).shape == (3, 2, 4, 4)


def test_causal_detection_and_override():
    assert AttentionView(causal_attention(), tokens_for(5)).causal is True
    full = torch.randn(1, 1, 5, 5).softmax(-1)
    assert AttentionView(full, tokens_for(5)).causal is False
    assert AttentionView(causal_attention(), tokens_for(5), causal=False).causal is False
    with pytest.raises(ValueError, match="later position"):
        AttentionView(full, tokens_for(5), causal=True)


def test_float16_rounding_is_accepted():
    attention = causal_attention(2, 2, 64).half()  # rows sum to 1 only within float16's rounding
    view = AttentionView(attention, tokens_for(64))
    assert view.causal is True and view.shape == (2, 2, 64, 64)
    np.testing.assert_allclose(view.shown_weights(), attention.double().numpy(), atol=0.5 / 255 + 1e-9)


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("attention, tokens, message", [
    (np.ones(3) / 3, tokens_for(3), "4 dimensions"),
    (np.ones((1, 1, 1, 3, 3)) / 3, tokens_for(3), "for a batch, pass one sequence"),
    (np.ones((2, 3)) / 3, tokens_for(3), "must be square"),
    (np.ones((1, 2, 3, 3)) / 3, tokens_for(4), "got 4 tokens for attention over 3 positions"),
    (np.ones((3, 3)) / 3, "abc", "not a single string"),
    (np.ones((3, 3)) / 3, ["a", 2, "c"], "token 1 is int"),
    (np.zeros((0, 2, 3, 3)), tokens_for(3), "empty"),
    (np.zeros((2, 0, 0)), [], "empty"),
    (np.array([[1.0, np.nan], [0.5, 0.5]]), tokens_for(2), "non-finite"),
    (np.array([[1.0, 0.0], [np.inf, 0.5]]), tokens_for(2), "non-finite"),
    (np.array([[1.0, 0.0], [1.5, -0.5]]), tokens_for(2), "negative"),
    (np.array([[1.0, 0.0], [2.0, 3.0]]), tokens_for(2), "query 1 sums to 5.0000"),
    (np.ones((1, 2, 3, 3)), tokens_for(3), "probability distribution"),
    (np.ones((MAX_TOKENS + 1, MAX_TOKENS + 1)) / (MAX_TOKENS + 1), tokens_for(MAX_TOKENS + 1), "too large"),
    ([["a", "b"], ["c", "d"]], tokens_for(2), "array of numbers"),
])
def test_bad_input_raises_a_clear_error(attention, tokens, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        AttentionView(attention, tokens)


def test_bad_title_raises():
    with pytest.raises(ValueError, match="title"):
        AttentionView(np.ones((1, 1)), ["a"], title=3)


# ---------------------------------------------------------------- the explorer

def toy_attention_fn(text):
    words = text.split()
    if not words:
        raise ValueError("type at least one word")
    length = len(words)
    scores = torch.arange(length * length, dtype=torch.float32).reshape(length, length) / length
    future = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
    return scores.masked_fill(future, float("-inf")).softmax(-1)[None, None].expand(2, 2, -1, -1), words


def test_explorer_constructs_without_a_front_end():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "no kernel"/comm warnings either
        explorer = attention_explorer(toy_attention_fn, "the cat sat")
    assert isinstance(explorer, AttentionExplorer)
    assert repr(explorer.view) == "AttentionView(2 layers x 2 heads, 3 tokens)"
    (output,) = explorer.output.outputs
    assert "data-attention-view" in output["data"]["text/html"]
    assert explorer.widget.children[0] is explorer.text and explorer.text.value == "the cat sat"
    bundle = explorer._repr_mimebundle_()  # a notebook opened without a kernel shows the text, not an error
    assert "application/vnd.jupyter.widget-view+json" in bundle and "kernel" in bundle["text/plain"]


def test_explorer_follows_the_text_and_shows_errors():
    explorer = attention_explorer(toy_attention_fn, "the cat sat")
    explorer.text.value = "the cat sat on the mat"
    assert explorer.view.length == 6 and explorer.error is None
    explorer.text.value = "   "
    assert "type at least one word" in explorer.error and "type at least one word" in explorer.message.value
    assert explorer.view.length == 6, "the last good view stays"
    explorer.text.value = "<b>bold</b>"
    assert explorer.error is None and explorer.message.value == ""


def test_explorer_escapes_error_messages():
    def failing(text):
        raise ValueError("<img src=x onerror=alert(1)>")
    explorer = attention_explorer(failing, "x")
    assert "<img" not in explorer.message.value and "&lt;img" in explorer.message.value


def test_explorer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="attention_fn"):
        attention_explorer("not a function", "text")
    with pytest.raises(ValueError, match="initial_text"):
        attention_explorer(toy_attention_fn, None)


def test_front_end_code_can_be_normalised_for_nbval():
    """A sanitizer with these two patterns lets notebooks keep comparing the data strictly while
    the view's script and styles evolve (the payload and the summary stay outside both)."""
    page = AttentionView(causal_attention(), tokens_for(5), title="t")._repr_html_()
    script = re.compile(r"<script>\(function \(\) \{[\s\S]*?\}\)\(\);</script>")
    style = re.compile(r"<style>\.attention-view\{[\s\S]*?</style>")
    assert len(script.findall(page)) == 1 and len(style.findall(page)) == 1
    normalised = style.sub("<style>S</style>", script.sub("<script>J</script>", page))
    assert "textContent" not in normalised and "av-token" not in normalised
    assert embedded_payload(normalised) == embedded_payload(page)


def test_the_view_opens_on_the_layer_and_head_asked_for():
    default = embedded_payload(AttentionView(causal_attention(), tokens_for(5))._repr_html_())
    assert "start" not in default  # the front end's own default: layer 0, head 0, the map
    page = AttentionView(causal_attention(), tokens_for(5), layer=1, head=2)._repr_html_()
    assert embedded_payload(page)["start"] == {"layer": 1, "head": 2}
    numpy_index = AttentionView(causal_attention(), tokens_for(5), layer=np.int64(1), head=np.int64(2))
    assert numpy_index.start == {"layer": 1, "head": 2} and type(numpy_index.start["head"]) is int


def test_head_subsets_and_the_line_mode_reach_the_page():
    attention = causal_attention(layers=2, heads=3)
    def start(**kwargs):
        return embedded_payload(AttentionView(attention, tokens_for(5), **kwargs)._repr_html_()).get("start")

    assert start(heads=[2, 0]) == {"layer": 0, "heads": [0, 2]}, "heads are sorted"
    assert start(heads="all", layer=1) == {"layer": 1, "heads": [0, 1, 2]}
    assert start(heads=(1,)) == {"layer": 0, "head": 1}, "one head is the same as head="
    assert start(heads=np.array([0, 1])) == {"layer": 0, "heads": [0, 1]}
    assert start(mode="lines") == {"layer": 0, "head": 0, "mode": "lines"}
    assert start(mode="map") is None
    # The same data opened differently is a different view, with a different id.
    ids = {re.search(r'id="attention-view-(\w+)-', AttentionView(attention, tokens_for(5), **kwargs)._repr_html_())
           .group(1) for kwargs in ({}, {"heads": [0, 1]}, {"mode": "lines"}, {"head": 1})}
    assert len(ids) == 4


@pytest.mark.parametrize("kwargs, message", [
    ({"layer": 2}, "layer must be an integer from 0 to 1, got 2 (the attention has 2 layers)"),
    ({"layer": -1}, "layer must be an integer from 0 to 1, got -1"),
    ({"layer": "1"}, "layer must be an integer from 0 to 1, got str '1'"),
    ({"layer": True}, "layer must be an integer from 0 to 1, got bool True"),
    ({"head": 3}, "head must be an integer from 0 to 2, got 3 (the attention has 3 heads)"),
    ({"head": 1.0}, "head must be an integer from 0 to 2, got float 1.0"),
    ({"heads": [0, 3]}, "each of heads must be an integer from 0 to 2, got 3"),
    ({"heads": [0, "1"]}, "each of heads must be an integer from 0 to 2, got str '1'"),
    ({"heads": []}, "heads must name at least one head"),
    ({"heads": [1, 1]}, "heads names head 1 more than once"),
    ({"heads": 2}, 'heads must be a list of head indices or "all", not int'),
    ({"heads": "every"}, "heads must be a list of head indices or \"all\", got 'every'"),
    ({"head": 1, "heads": [1, 2]}, "give head= (one head) or heads= (several), not both"),
    ({"mode": "matrix"}, "mode must be \"map\" or \"lines\", got 'matrix'"),
    ({"mode": None}, "mode must be \"map\" or \"lines\", got None"),
])
def test_bad_start_arguments_raise_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        AttentionView(causal_attention(layers=2, heads=3), tokens_for(5), **kwargs)


def test_one_layer_one_head_names_the_singular():
    with pytest.raises(ValueError, match=re.escape("got 1 (the attention has 1 head)")):
        AttentionView(np.ones((1, 1)), ["a"], head=1)


def test_hostile_tokens_are_escaped_in_the_line_view_with_several_heads():
    """Opening on the lines with several heads changes nothing in how token text reaches the page."""
    view = AttentionView(causal_attention(2, 2, len(HOSTILE)), HOSTILE, heads="all", mode="lines", layer=1,
                         title="</script><b>")
    page = view._repr_html_()
    for token in HOSTILE:
        assert token not in page
    assert "<img" not in page and "<b>" not in page
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert embedded_payload(page)["tokens"] == HOSTILE
    assert "innerHTML" not in page and "insertAdjacentHTML" not in page and "outerHTML" not in page


def test_the_view_keeps_its_keys_from_the_notebook():
    """JupyterLab's shortcuts skip an element with data-lm-suppress-shortcuts; the script sets
    it on the root and on every control, and stops key events at the root (see the browser test)."""
    (script,) = re.findall(r"<script>(.*?)</script>", AttentionView(causal_attention(), tokens_for(5))._repr_html_(),
                           re.S)
    assert 'setAttribute("data-lm-suppress-shortcuts", "true")' in script
    assert "stopPropagation" in script
