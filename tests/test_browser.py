"""The attention views of the built book, in a real browser, with the network blocked.

Headless Chromium (Debian's ``chromium`` package) driven by Playwright opens every page of
``_build/html`` that holds a view, served from a local HTTP server. Every request that is not
for that server is aborted and recorded. The tests read the weights back from the page and
compare them with the data embedded in the built HTML, decoded here independently.

Without Chromium or Playwright the tests are skipped, except under CI (``CI=true``), where they fail.
"""
from __future__ import annotations

import functools
import html
import http.server
import json
import os
import pathlib
import re
import threading

import numpy as np
import pytest
from test_viz import decode_weights

from book.tooling.sphinx_pages import WHOLE_ON_EVERY_SCREEN

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD = ROOT / "_build" / "html"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
APPENDIX = "chapters/appendix_attention_view.html"
HOSTILE_MARKERS = ("<script>", "onerror=")
# The theme once declared this constant in two inline scripts of every page;
# book/tooling/sphinx_pages.py keeps one, and no error is excused any more.
THEME_ERRORS = ()


def unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; the browser tests must run in CI")
    pytest.skip(reason)


try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None


# The built book comes from the session fixture `built_book` in conftest.py.


def views_in(page: pathlib.Path) -> list[dict]:
    """Each view of a built page: its element id and the payload embedded in the HTML."""
    text = page.read_text(encoding="utf-8")
    found = re.findall(r'<div class="attention-view[^"]*" id="([^"]+)" data-attention-view="1">.*?'
                       r'<script type="application/json" class="av-data">(.*?)</script>', text, re.S)
    return [{"id": element_id, "payload": json.loads(data)} for element_id, data in found]


def pages_with_views(build: pathlib.Path) -> list[str]:
    pages = [p for p in build.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts]
    return sorted(str(p.relative_to(build)) for p in pages if "data-attention-view" in p.read_text(encoding="utf-8"))


def shown(token: str) -> str:
    """How the view writes a token: exactly, with whitespace made visible."""
    text = token.replace(" ", "\u2423") if token.strip() == "" else token
    text = text.replace("\n", "\u21b5").replace("\t", "\u21e5").replace("\r", "\u240d")
    return text or "\u2205"


# ---------------------------------------------------------------- the browser

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def origin(built_book):
    handler = functools.partial(QuietHandler, directory=str(built_book))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if sync_playwright is None:
        unavailable("the playwright package is not installed")
    if not pathlib.Path(CHROMIUM).exists():
        unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Visit:
    """A page opened with every request outside the local server aborted and recorded."""

    def __init__(self, browser, origin, path, wait_until="domcontentloaded", **context_options):
        self.context = browser.new_context(service_workers="block", **context_options)
        self.blocked, self.dialogs, self.errors = [], [], []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", self._error)
        self.origin = origin
        # The views draw themselves as the page is parsed; waiting for everything else to load
        # (MathJax and its fonts) is needed only where the requests themselves are checked.
        self.page.goto(f"{origin}/{path}", wait_until=wait_until)
        self.page.wait_for_function(
            "() => [...document.querySelectorAll('[data-attention-view]')].every(v => v.dataset.ready === 'true')")

    def _route(self, route):
        url = route.request.url
        if url == self.origin or url.startswith(self.origin + "/"):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def _error(self, error):
        if str(error) not in THEME_ERRORS:
            self.errors.append(str(error))

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def view(self, element_id):
        return self.page.locator(f"#{element_id}")

    def chips(self, element_id) -> list[dict]:
        return self.view(element_id).locator(".av-token").evaluate_all(
            "chips => chips.map(c => ({text: c.querySelector('.av-text').textContent, weight: +c.dataset.weight,"
            " heads: c.dataset.headWeights.split(',').map(Number), masked: c.dataset.masked === 'true'}))")

    def state(self, element_id) -> dict:
        return self.view(element_id).evaluate(
            "v => ({layer: v.dataset.layer, head: v.dataset.head, query: +v.dataset.query, "
            "direction: v.dataset.direction})")

    def close(self):
        self.context.close()


@pytest.fixture
def visit(browser, origin):
    opened = []

    def open_page(path, wait_until="domcontentloaded", **context_options):
        opened.append(Visit(browser, origin, path, wait_until, **context_options))
        return opened[-1]

    yield open_page
    for page in opened:
        assert not page.blocked, f"requests left the page: {page.blocked}"
        assert not page.dialogs, f"a dialog was opened: {page.dialogs}"
        assert not page.errors, f"script errors: {page.errors}"
        page.close()


def expected_row(weights, layer, head, query, direction="to"):
    """What the tokens show for a query: its row ("to") or its column ("from"), and which are masked."""
    length = weights.shape[-1]
    if direction == "to":
        values, masked = weights[layer, head, query, :], [key > query for key in range(length)]
    else:
        values, masked = weights[layer, head, :, query], [query > other for other in range(length)]
    return values, masked


def sample_positions(length, every_up_to=12):
    """Every position of a short text; the first, second, middle and last of a long one."""
    return range(length) if length <= every_up_to else sorted({0, 1, length // 2, length - 1})


# ---------------------------------------------------------------- the tests

def test_the_book_has_pages_with_views(built_book):
    pages = pages_with_views(built_book)
    assert APPENDIX in pages, f"the appendix page has no view; pages with views: {pages}"
    assert len(views_in(built_book / APPENDIX)) >= 3


def test_every_view_renders_offline(built_book, visit):
    for path in pages_with_views(built_book):
        opened = visit(path, wait_until="networkidle")
        views = views_in(built_book / path)
        assert opened.page.locator("[data-attention-view]").count() == len(views)
        for view in views:
            tokens = view["payload"]["tokens"]
            chips = opened.chips(view["id"])
            assert [c["text"] for c in chips] == [shown(t) for t in tokens], f"{path}: token text differs"
            root = opened.view(view["id"])
            assert root.locator(".av-nojs").count() == 0, "the no-script message stays"
            assert root.locator(".av-thumb").count() == view["payload"]["layers"] * view["payload"]["heads"]
            size = root.locator("canvas.av-matrix").evaluate("c => [c.width, c.height]")
            assert min(size) > 0
        assert not opened.blocked, f"{path} asked the network for {opened.blocked}"


def test_hover_highlights_the_embedded_weights(built_book, visit):
    for path in pages_with_views(built_book):
        opened = visit(path)
        for view in views_in(built_book / path):
            payload, element_id = view["payload"], view["id"]
            length = len(payload["tokens"])
            weights = decode_weights(payload, length)
            start = payload.get("start", {"layer": 0, "head": 0})  # where the view opens
            layer, heads = start["layer"], start.get("heads", [start.get("head", 0)])
            head = ",".join(map(str, heads)) if len(heads) < payload["heads"] or len(heads) == 1 else "all"
            tokens = opened.view(element_id).locator(".av-token")
            for direction in ("to", "from"):
                opened.view(element_id).locator(f'button[data-direction="{direction}"]').click()
                for query in sample_positions(length, every_up_to=12 if direction == "to" else 0):
                    tokens.nth(query).hover()
                    assert opened.state(element_id) == {"layer": str(layer), "head": head, "query": query,
                                                        "direction": direction}
                    chips = opened.chips(element_id)
                    rows = [expected_row(weights, layer, h, query, direction) for h in heads]
                    values, masked = np.mean([values for values, _ in rows], axis=0), rows[0][1]
                    np.testing.assert_allclose([c["weight"] for c in chips], values, rtol=0, atol=1e-12,
                                               err_msg=f"{path} {element_id} token {query} ({direction})")
                    assert [c["masked"] for c in chips] == (masked if payload["causal"] else [False] * length)
            opened.page.mouse.move(0, 0)


def test_all_heads_overlay_shows_every_head(built_book, visit):
    opened = visit(APPENDIX)
    view = next(v for v in views_in(built_book / APPENDIX) if v["payload"]["heads"] > 1)
    weights, element_id = decode_weights(view["payload"], len(view["payload"]["tokens"])), view["id"]
    opened.view(element_id).locator("select.av-head").select_option("all")
    query = len(view["payload"]["tokens"]) - 1
    opened.view(element_id).locator(".av-token").nth(query).hover()
    assert opened.state(element_id)["head"] == "all"
    chips = opened.chips(element_id)
    np.testing.assert_array_equal([c["heads"] for c in chips], weights[0, :, query, :].T)
    np.testing.assert_allclose([c["weight"] for c in chips], weights[0, :, query, :].mean(axis=0), atol=1e-12)
    # One bar per head under each token, as tall (in % of the bar area) as that head's weight.
    heights = opened.view(element_id).locator(".av-token").evaluate_all(
        "chips => chips.map(c => [...c.querySelectorAll('.av-bar')].map(b => parseFloat(b.style.height)))")
    np.testing.assert_allclose(heights, 100 * weights[0, :, query, :].T, atol=0.051)
    assert opened.view(element_id).locator(".av-bars").first.is_visible()


def test_layer_and_head_selection_change_what_is_shown(built_book, visit):
    opened = visit(APPENDIX)
    view = next(v for v in views_in(built_book / APPENDIX) if v["payload"]["layers"] > 1 and v["payload"]["heads"] > 1)
    weights, element_id = decode_weights(view["payload"], len(view["payload"]["tokens"])), view["id"]
    root = opened.view(element_id)
    matrix = root.locator("canvas.av-matrix")
    before = matrix.evaluate("c => c.toDataURL()")
    last_layer, last_head = view["payload"]["layers"] - 1, view["payload"]["heads"] - 1
    root.locator("select.av-layer").select_option(str(last_layer))
    root.locator("select.av-head").select_option(str(last_head))
    query = len(view["payload"]["tokens"]) - 1
    root.locator(".av-token").nth(query).click()
    opened.page.mouse.move(0, 0)
    expected = {"layer": str(last_layer), "head": str(last_head), "query": query, "direction": "to"}
    assert opened.state(element_id) == expected
    shown = [c["weight"] for c in opened.chips(element_id)]
    np.testing.assert_array_equal(shown, weights[last_layer, last_head, query])
    assert matrix.evaluate("c => c.toDataURL()") != before, "the map did not change"
    assert not np.array_equal(weights[last_layer, last_head, query], weights[0, 0, query]), "the example should differ"


def test_overview_grid_selects_a_map(built_book, visit):
    opened = visit(APPENDIX)
    view = next(v for v in views_in(built_book / APPENDIX) if v["payload"]["layers"] > 1)
    root = opened.view(view["id"])
    layer, head = view["payload"]["layers"] - 1, 0
    thumb = root.locator(f'.av-thumb[data-layer="{layer}"][data-head="{head}"]')
    thumb.click()
    state = opened.state(view["id"])
    assert (state["layer"], state["head"]) == (str(layer), str(head))
    assert root.locator("select.av-layer").input_value() == str(layer)
    assert root.locator(".av-thumb.av-current").count() == 1
    assert "av-current" in thumb.get_attribute("class")
    painted = thumb.locator("canvas").evaluate(
        "c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"
        ".some((v, i) => i % 4 === 3 && v > 0)")
    assert painted, "the thumbnail is blank"


def test_hand_made_example_reads_as_the_appendix_says(built_book, visit):
    opened = visit(APPENDIX)
    view = next(v for v in views_in(built_book / APPENDIX) if "sat" in v["payload"]["tokens"])
    tokens = view["payload"]["tokens"]
    opened.view(view["id"]).locator(".av-token").nth(tokens.index("sat")).hover()
    chips = opened.chips(view["id"])
    # Layer 0, head 0 attends to the previous token: "sat" gives all its attention to "cat".
    assert [c["weight"] for c in chips] == [1.0 if t == "cat" else 0.0 for t in tokens]
    assert [c["masked"] for c in chips] == [i > tokens.index("sat") for i in range(len(tokens))]


def test_hostile_token_text_runs_nothing(built_book, visit):
    opened = visit(APPENDIX)
    page = opened.page
    # The dialog listener works: a real alert is caught (and then forgotten).
    page.evaluate("() => alert('probe')")
    assert opened.dialogs == ["probe"]
    opened.dialogs.clear()
    view = next(v for v in views_in(built_book / APPENDIX)
                if any(marker in t for t in v["payload"]["tokens"] for marker in HOSTILE_MARKERS))
    tokens = view["payload"]["tokens"]
    root = opened.view(view["id"])
    for index in range(len(tokens)):
        root.locator(".av-token").nth(index).hover()
        root.locator(".av-token").nth(index).click()
    root.locator("select.av-head").select_option("all")
    page.wait_for_timeout(200)
    assert [c["text"] for c in opened.chips(view["id"])] == [shown(t) for t in tokens]
    assert root.locator("img, b").count() == 0, "markup in token text became elements"
    assert root.locator("script").count() == 2, "token text added a script element"
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("[data-attention-view] img").count() == 0
    assert not opened.dialogs
    readout = root.locator(".av-readout").text_content()
    assert shown(tokens[-1]) in readout
    assert html.escape(tokens[0]) not in readout, "token text was escaped twice"


def test_screenshots_light_dark_and_phone(built_book, visit):
    ARTIFACTS.mkdir(exist_ok=True)
    opened = visit(APPENDIX, viewport={"width": 1000, "height": 900})
    view = next(v for v in views_in(built_book / APPENDIX) if v["payload"]["layers"] > 1)
    root = opened.view(view["id"])
    root.scroll_into_view_if_needed()
    root.locator(".av-token").nth(2).hover()
    root.screenshot(path=str(ARTIFACTS / "attention-view.png"))
    light_text = root.locator(".av-token").first.evaluate("c => getComputedStyle(c).color")

    opened.page.evaluate("() => { document.documentElement.dataset.theme = 'dark'; "
                         "document.documentElement.dataset.mode = 'dark'; }")
    opened.page.wait_for_timeout(200)
    root.locator(".av-token").nth(2).hover()
    root.screenshot(path=str(ARTIFACTS / "attention-view-dark.png"))
    dark_text = root.locator(".av-token").first.evaluate("c => getComputedStyle(c).color")
    assert luminance(dark_text) > 0.5 > luminance(light_text), (light_text, dark_text)
    background = root.evaluate(
        "v => { for (let e = v; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor;"
        " if (c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return c; } return 'rgb(255, 255, 255)'; }")
    assert luminance(background) < 0.3, f"the view sits on a light background in dark mode: {background}"
    heat = root.evaluate("v => getComputedStyle(v).getPropertyValue('--av-heat').trim()")
    assert heat.replace(" ", "") == "88,166,255", "the dark theme's colours are not applied"

    phone = visit(APPENDIX, viewport={"width": 375, "height": 800}, device_scale_factor=2, is_mobile=True,
                  has_touch=True)
    phone_root = phone.view(view["id"])
    phone_root.scroll_into_view_if_needed()
    width = phone_root.evaluate("v => [v.scrollWidth, v.clientWidth, v.getBoundingClientRect().right]")
    assert width[0] <= width[1] + 1 and width[2] <= 375 + 1, f"the view overflows a phone's width: {width}"
    phone_root.locator(".av-token").nth(3).tap()
    assert phone.state(view["id"])["query"] == 3, "tapping a token selects it"
    phone_root.screenshot(path=str(ARTIFACTS / "attention-view-phone.png"))


def luminance(css_colour: str) -> float:
    red, green, blue = (int(x) for x in re.findall(r"\d+", css_colour)[:3])
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255


# ---------------------------------------------------------------- the view on its own page

# The line view, head subsets and the keyboard are tested on a page of views made here, so the
# tests do not wait for the book to build (and see this package's front end, whatever the
# committed notebooks hold).

WORDS = ("to be or not to be that is the question whether tis nobler in the mind to suffer the slings and arrows "
         "of outrageous fortune or to take arms against a sea of troubles").split()


def repeated_words(length):
    return [WORDS[i % len(WORDS)] for i in range(length)]


def peaked_attention(layers, heads, length, seed=0):
    import torch

    generator = torch.Generator().manual_seed(seed)
    scores = 2.5 * torch.randn(layers, heads, length, length, generator=generator)
    future = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


@pytest.fixture(scope="module")
def view_page(tmp_path_factory):
    """A page of views (and their objects) served from a local server: {name: (element id, view)}."""
    from book.viz import AttentionView

    views = {
        "short": AttentionView(peaked_attention(2, 3, 12), repeated_words(12), title="Short"),
        "opened": AttentionView(peaked_attention(2, 3, 12, seed=1), repeated_words(12), layer=1, heads=[0, 2],
                                mode="lines"),
        "long": AttentionView(peaked_attention(4, 4, 64, seed=2), repeated_words(64), title="64 tokens"),
        "longer": AttentionView(peaked_attention(2, 2, 128, seed=3), repeated_words(128), title="128 tokens",
                                mode="lines"),
        "sparse": AttentionView(np.array([[1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0.003, 0.897, 0.1, 0],
                                          [0.002, 0, 0.996, 0.002]]),
                                ["a", "b", "c", "d"], title="Weights that round to zero"),
    }
    body, ids = [], {}
    for name, view in views.items():
        page = view._repr_html_()
        ids[name] = (re.search(r'id="([^"]+)"', page).group(1), view)
        body.append(page)
    folder = tmp_path_factory.mktemp("views")
    (folder / "views.html").write_text(
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
        'content="width=device-width, initial-scale=1"><title>views</title></head>'
        '<body style="max-width:920px;margin:0 auto;padding:0 8px;font-family:sans-serif">'
        '<button id="outside">outside the views</button>' + "".join(body) + "</body></html>", encoding="utf-8")
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", ids
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def open_views(browser, view_page):
    origin, ids = view_page
    opened = []

    def open_page(**context_options):
        opened.append(Visit(browser, origin, "views.html", **context_options))
        return opened[-1], ids

    yield open_page
    for page in opened:
        assert not page.blocked, f"requests left the page: {page.blocked}"
        assert not page.errors, f"script errors: {page.errors}"
        page.close()


def lines_expected(view, layer, heads, query, direction="to"):
    """How many lines the line view draws (weights of at least 0.01), and how many belong to the selection."""
    weights = view.shown_weights()[layer][heads]
    drawn = weights >= 0.01
    selected = drawn[:, query, :] if direction == "to" else drawn[:, :, query]
    return int(drawn.sum()), int(selected.sum())


def canvas_is_painted(locator) -> bool:
    return locator.evaluate("c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"
                            ".some((v, i) => i % 4 === 3 && v > 0)")


def test_line_view_draws_a_line_per_weight_and_switches_with_the_map(open_views):
    opened, ids = open_views()
    element_id, view = ids["short"]
    root = opened.view(element_id)
    matrix, lines = root.locator("canvas.av-matrix"), root.locator("canvas.av-line-canvas")
    assert root.get_attribute("data-mode") == "map" and matrix.is_visible() and not lines.is_visible()
    root.locator('button[data-mode="lines"]').click()
    assert root.get_attribute("data-mode") == "lines" and lines.is_visible() and not matrix.is_visible()
    assert root.locator('button[data-mode="lines"]').get_attribute("aria-pressed") == "true"
    last = view.length - 1
    drawn, selected = lines_expected(view, 0, [0], last)
    assert int(lines.get_attribute("data-lines")) == drawn
    assert int(lines.get_attribute("data-selected-lines")) == selected
    assert canvas_is_painted(lines)
    # Every token has a label on both sides, written as the chips write it.
    for side in ("query", "key"):
        labels = root.locator(f'.av-label[data-side="{side}"]').all_text_contents()
        assert labels == [shown(t) for t in view.tokens]
    # Pointing at a key reads its column: what attends to it.
    key = 4
    root.locator(f'.av-label[data-side="key"][data-index="{key}"]').hover()
    assert opened.state(element_id) == {"layer": "0", "head": "0", "query": key, "direction": "from"}
    assert int(lines.get_attribute("data-selected-lines")) == lines_expected(view, 0, [0], key, "from")[1]
    chips = opened.chips(element_id)
    np.testing.assert_array_equal([c["weight"] for c in chips], view.shown_weights()[0, 0, :, key])
    # Clicking a query keeps it selected; its own label is outlined.
    query = 7
    root.locator(f'.av-label[data-side="query"][data-index="{query}"]').click()
    opened.page.mouse.move(0, 0)
    assert opened.state(element_id)["query"] == query and opened.state(element_id)["direction"] == "to"
    assert "av-selected" in root.locator(f'.av-label[data-side="query"][data-index="{query}"]').get_attribute("class")
    assert int(lines.get_attribute("data-selected-lines")) == lines_expected(view, 0, [0], query)[1]
    root.locator('button[data-mode="map"]').click()
    assert matrix.is_visible() and not lines.is_visible() and canvas_is_painted(matrix)


def test_several_heads_at_once(open_views):
    opened, ids = open_views()
    element_id, view = ids["short"]
    root = opened.view(element_id)
    query = view.length - 1
    root.locator('.av-head-toggle[data-head="2"]').click()
    assert root.get_attribute("data-heads") == "0,2"
    assert root.locator("select.av-head").input_value() == "some"
    weights = view.shown_weights()[0]
    chips = opened.chips(element_id)
    np.testing.assert_allclose([c["weight"] for c in chips], weights[[0, 2], query].mean(axis=0), atol=1e-12)
    readout = root.locator(".av-readout").text_content()
    assert readout.endswith("(mean of heads 0, 2)"), readout
    assert "mean of heads 0, 2" in root.locator(".av-matrix-box figcaption").text_content()
    # The lines draw each head in its own colour, as the legend says.
    root.locator('button[data-mode="lines"]').click()
    assert root.locator(".av-legend").text_content().startswith("head 0head 2")
    lines = root.locator("canvas.av-line-canvas")
    assert int(lines.get_attribute("data-lines")) == lines_expected(view, 0, [0, 2], query)[0]
    root.locator('.av-head-toggle[data-head="0"]').click()
    assert root.get_attribute("data-heads") == "2" and root.get_attribute("data-head") == "2"
    root.locator('.av-head-toggle[data-head="2"]').click()
    assert root.get_attribute("data-heads") == "2", "the last head shown stays"
    root.locator("select.av-head").select_option("all")
    assert root.get_attribute("data-heads") == "0,1,2" and root.get_attribute("data-head") == "all"
    pressed = root.locator(".av-head-toggle").evaluate_all("ts => ts.map(t => t.getAttribute('aria-pressed'))")
    assert pressed == ["true"] * 3
    root.locator("select.av-head").select_option("1")
    assert root.get_attribute("data-heads") == "1"


def test_the_view_opens_on_the_layer_heads_and_mode_asked_for(open_views):
    opened, ids = open_views()
    element_id, view = ids["opened"]
    root = opened.view(element_id)
    assert (root.get_attribute("data-layer"), root.get_attribute("data-heads"), root.get_attribute("data-mode")) == \
        ("1", "0,2", "lines")
    assert root.locator("select.av-layer").input_value() == "1"
    lines = root.locator("canvas.av-line-canvas")
    assert lines.is_visible()
    assert int(lines.get_attribute("data-lines")) == lines_expected(view, 1, [0, 2], view.length - 1)[0]
    current = root.locator(".av-thumb.av-current").evaluate_all(
        "ts => ts.map(t => [t.dataset.layer, t.dataset.head])")
    assert current == [["1", "0"], ["1", "2"]]


def test_the_readout_names_positions(open_views):
    opened, ids = open_views()
    element_id, view = ids["short"]
    root = opened.view(element_id)
    root.locator(".av-token").nth(5).click()  # the second "be"
    readout = root.locator(".av-readout").text_content()
    assert readout.startswith("\u201cbe\u201d @5 attends most to "), readout
    best = np.argsort(-view.shown_weights()[0, 0, 5], kind="stable")[0]
    assert f"\u201c{view.tokens[best]}\u201d @{best} {view.shown_weights()[0, 0, 5, best]:.2f}" in readout


def map_geometry(root) -> dict:
    """The map's cell size, how often a row and column is labelled, and its width against the view's."""
    return root.locator("canvas.av-matrix").evaluate(
        "c => { const box = c.getBoundingClientRect(), view = c.closest('[data-attention-view]')"
        ".getBoundingClientRect(), scroll = c.parentElement;"
        " return {cell: +c.dataset.cell, every: +c.dataset.labelEvery, width: box.width,"
        " styled: parseFloat(c.style.width), left: box.left - view.left, right: view.right - box.right,"
        " overflow: scroll.scrollWidth - scroll.clientWidth}; }")


def test_long_texts_keep_readable_labels(open_views):
    opened, ids = open_views()
    for name in ("long", "longer"):
        element_id, view = ids[name]
        root = opened.view(element_id)
        root.locator('button[data-mode="map"]').click()
        geometry = map_geometry(root)
        assert geometry["overflow"] <= 0 and geometry["left"] >= 0 and geometry["right"] >= 0, (name, geometry)
        # Labels of 10-12 px: a row of its own each where the view is wide enough, else every n-th.
        assert geometry["cell"] * geometry["every"] >= 10, (name, geometry)
        if name == "long":
            assert geometry["every"] == 1 and geometry["cell"] >= 11, f"64 tokens fit with a label each: {geometry}"
        else:
            caption = root.locator(".av-matrix-box figcaption").text_content()
            assert geometry["every"] > 1 and "token is labelled" in caption, (geometry, caption)
        root.locator('button[data-mode="lines"]').click()
        sizes = root.locator(".av-label").evaluate_all(
            "ls => ls.map(l => [parseFloat(getComputedStyle(l).fontSize), l.getBoundingClientRect().height])")
        assert len(sizes) == 2 * view.length
        assert min(size for size, _ in sizes) >= 10 and min(height for _, height in sizes) >= 12


def test_the_map_fits_a_phone(open_views):
    """At 390 px every column of the map is on the screen, drawn at its own size (so labels keep their font size)."""
    opened, ids = open_views(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                             has_touch=True)
    for name in ("short", "long", "longer"):
        element_id, view = ids[name]
        root = opened.view(element_id)
        root.locator('button[data-mode="map"]').click()
        geometry = map_geometry(root)
        assert geometry["overflow"] <= 0 and geometry["left"] >= 0 and geometry["right"] >= 0, (name, geometry)
        assert root.evaluate("v => v.getBoundingClientRect().right") <= 390 + 1
        assert abs(geometry["width"] - geometry["styled"]) <= 1, f"{name}: the canvas is scaled: {geometry}"
        assert geometry["cell"] * geometry["every"] >= 10, (name, geometry)
        # A click on the map's last column still selects it (the geometry maps clicks to cells).
        box = root.locator("canvas.av-matrix").bounding_box()
        root.locator('button[data-direction="from"]').click()
        root.locator("canvas.av-matrix").click(position={"x": box["width"] - geometry["cell"] / 2,
                                                         "y": box["height"] - geometry["cell"] / 2})
        assert opened.state(element_id)["query"] == view.length - 1, name


def test_the_readout_leaves_out_weights_that_read_zero(open_views):
    opened, ids = open_views()
    element_id, view = ids["sparse"]
    root = opened.view(element_id)
    readout = root.locator(".av-readout")
    assert readout.text_content() == "\u201cd\u201d @3 attends most to \u201cc\u201d @2 1.00"
    root.locator(".av-token").nth(2).click()
    assert readout.text_content() == "\u201cc\u201d @2 attends most to \u201cb\u201d @1 0.90, \u201cc\u201d @2 0.10"
    root.locator('button[data-direction="from"]').click()
    root.locator(".av-token").nth(0).click()
    assert readout.text_content() == "\u201ca\u201d @0 is attended most by \u201ca\u201d @0 1.00, \u201cb\u201d @1 0.50"
    root.locator(".av-token").nth(3).click()  # only "d" itself looks at "d", with a weight that reads 0.00
    assert readout.text_content() == "\u201cd\u201d @3 is attended most by \u201cd\u201d @3 <0.01"


def test_keys_stay_inside_the_view(open_views):
    """JupyterLab acts on keys that reach its document listener; inside the view they stop at the
    view, while the view's own controls still answer them."""
    opened, ids = open_views()
    page = opened.page
    page.evaluate("() => { window.__keys = []; for (const type of ['keydown', 'keypress', 'keyup']) "
                  "document.addEventListener(type, e => window.__keys.push(e.type + ' ' + e.key)); }")
    page.locator("#outside").focus()
    page.keyboard.press("m")
    assert page.evaluate("() => window.__keys") == ["keydown m", "keypress m", "keyup m"], "the listener works"
    page.evaluate("() => { window.__keys = []; }")
    element_id, view = ids["short"]
    root = opened.view(element_id)
    layer = root.locator("select.av-layer")
    layer.focus()
    page.keyboard.press("ArrowDown")
    assert root.get_attribute("data-layer") == "1", "the arrow key changed the layer menu"
    root.locator('.av-head-toggle[data-head="0"]').focus()
    page.keyboard.press("ArrowRight")
    assert page.evaluate("() => document.activeElement.dataset.head") == "1"
    page.keyboard.press("Enter")
    assert root.get_attribute("data-heads") == "0,1"
    root.locator('button[data-mode="map"]').focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press(" ")
    assert root.get_attribute("data-mode") == "lines"
    root.locator(".av-token").nth(2).focus()
    for key in ("m", "ArrowRight", "ArrowDown", "a", "b", "d", "Shift+Enter", "Escape"):
        page.keyboard.press(key)
    assert opened.state(element_id)["query"] == 4, "arrow keys move along the tokens"
    assert page.evaluate("() => window.__keys") == [], "keys typed in the view reached the document"
    # Lumino reads data-lm-suppress-shortcuts on the focused element before any shortcut's selector.
    unmarked = root.evaluate(
        "v => [...v.querySelectorAll('button, select, [tabindex]')].filter(e => e.tabIndex >= 0)"
        ".filter(e => e.getAttribute('data-lm-suppress-shortcuts') !== 'true').map(e => e.outerHTML.slice(0, 80))")
    assert not unmarked and root.get_attribute("data-lm-suppress-shortcuts") == "true", unmarked


@pytest.mark.parametrize("width", [1280, 390])
def test_screenshots_of_the_map_and_the_lines(open_views, width):
    ARTIFACTS.mkdir(exist_ok=True)
    opened, ids = open_views(viewport={"width": width, "height": 1000})
    element_id, view = ids["long"]
    root = opened.view(element_id)
    root.scroll_into_view_if_needed()
    root.locator(".av-token").nth(10).click()
    root.screenshot(path=str(ARTIFACTS / f"attention-view-map-{width}.png"))
    root.locator('.av-head-toggle[data-head="1"]').click()
    root.locator('button[data-mode="lines"]').click()
    root.locator('.av-label[data-side="query"][data-index="10"]').hover()
    root.screenshot(path=str(ARTIFACTS / f"attention-view-lines-{width}.png"))
    overflow = root.evaluate("v => v.scrollWidth - v.clientWidth")
    assert overflow <= 1, f"the view is {overflow} px wider than its box at {width} px"
    assert page_scroll(opened.page) <= 0, "the page scrolls sideways"


def page_scroll(page) -> int:
    return page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")


# ---------------------------------------------------------------- every page, as a reader sees it

WIDTHS = {"laptop": 1280, "phone": 390}
TOOL_MARKERS = ("NBVAL_IGNORE_OUTPUT", "#| export")


def book_pages() -> list[str]:
    """Every page a reader reaches: the table of contents, the search page and the index."""
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    return [f"{name}.html" for name in re.findall(r"(?:root|file):\s*(\S+)", toc)] + ["search.html", "genindex.html"]


# What the page shows, measured in the page. Each list names the offenders, so a failure says where.
AUDIT = r"""(wholeChars) => {
  const article = document.querySelector('article.bd-article') || document.body;
  const all = (root, selector) => [...root.querySelectorAll(selector)];
  const visible = e => e.offsetParent !== null;
  const short = s => s.replace(/\s+/g, ' ').trim().slice(0, 80);
  const longest = text => text.split('\n').reduce((a, l) => l.length > a.length ? l : a, '');
  const column = article.getBoundingClientRect();
  const pres = all(article, 'pre').filter(visible);
  const notProse = 'pre, code, script, style, .MathJax, .MathJax_Preview, .MJX_Assistive_MathML, '
    + '.attention-view, .math';
  const textNodes = [];
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  for (let n; (n = walker.nextNode());) {
    if (!n.parentElement.closest(notProse)) textNodes.push(n.textContent);
  }
  const prose = textNodes.join('');
  const scrolls = e => ['auto', 'scroll'].includes(getComputedStyle(e).overflowX);
  const captioned = i => i.closest('figure') && i.closest('figure').querySelector('figcaption');
  const inHeading = e => e.closest('h1, h2, h3, h4, h5, h6') !== null;
  const typeset = e => e.querySelector('.MathJax, .MathJax_Display, .MathJax_Preview');
  return {
    markdownTables: all(article, 'p, li').filter(e => /\|\s*:?-{3,}:?\s*\|/.test(e.textContent))
      .map(e => short(e.textContent)),
    strayDollars: (prose.match(/\$[^$\n]{1,120}\$/g) || []).map(short),
    toolMarkers: document.body.innerText.split('\n')
      .filter(l => /NBVAL_IGNORE_OUTPUT|#\| export/.test(l)).map(short),
    scrollingCode: pres.filter(e => e.scrollWidth > e.clientWidth + 1).map(e => short(longest(e.textContent))),
    codeOutsideColumn: pres.filter(e => e.getBoundingClientRect().right > column.right + 1)
      .map(e => short(e.textContent)),
    cutEquations: all(article, 'div.math, .MathJax_Display')
      .filter(e => e.scrollWidth > e.clientWidth + 1 && !scrolls(e)).map(e => short(e.textContent)),
    scrollingWithoutCue: all(article, 'div.math, .MathJax_Display, table, pre')
      .filter(e => visible(e) && scrolls(e) && e.scrollWidth > e.clientWidth + 1 && e.scrollLeft === 0)
      .filter(e => !e.classList.contains('more-right') || getComputedStyle(e).maskImage === 'none')
      .map(e => short(e.textContent)),
    // (in a heading, at two or three times the size, a literal breaks where it must)
    splitShortLiterals: all(article, 'code.literal').filter(e => e.textContent.length <= wholeChars && !inHeading(e))
      .filter(e => [...e.getClientRects()].filter(r => r.width > 0).length > 1).map(e => e.textContent),
    splitWords: all(article, 'code.literal > span.pre').filter(e => e.textContent.length <= wholeChars && !inHeading(e))
      .filter(e => [...e.getClientRects()].filter(r => r.width > 0).length > 1).map(e => e.textContent),
    headingsWithEmptyLine: all(article, 'h1, h2, h3, h4, h5, h6').filter(visible).filter(h => {
      const range = document.createRange();
      range.selectNodeContents(h);
      const mark = h.querySelector('.headerlink');
      if (mark) range.setEndBefore(mark);
      const lines = [...range.getClientRects()].filter(r => r.width > 0);
      const style = getComputedStyle(h);
      const bottom = h.getBoundingClientRect().bottom - parseFloat(style.paddingBottom);
      return lines.length && bottom - Math.max(...lines.map(r => r.bottom)) > parseFloat(style.lineHeight) / 2;
    }).map(h => short(h.textContent)),
    figuresCut: all(article, 'figure').filter(visible).filter(f => {
      const image = f.querySelector('img');
      return f.scrollWidth > f.clientWidth + 1 || (image && image.getBoundingClientRect().right > column.right + 1);
    }).map(f => short(f.textContent)),
    figuresWithoutCaption: all(article, 'img').filter(i => !captioned(i)).map(i => i.getAttribute('src')),
    // a screen reader reads the alternative text: a file name says nothing
    figuresWithoutAlt: all(article, 'figure img')
      .filter(i => !i.alt || i.getAttribute('src').endsWith(i.alt.split('/').pop())).map(i => i.getAttribute('src')),
    pageScroll: document.documentElement.scrollWidth - window.innerWidth,
    searchFields: all(document, '.search-button-field, input[type=search]')
      .filter(e => visible(e) && !e.closest('.bd-main')).length,
    unrenderedMath: all(article, 'span.math.notranslate, div.math.notranslate').filter(e => !typeset(e)).length,
  };
}"""


@pytest.fixture(scope="module")
def file_pages(built_book, browser):
    """Open a built page from disk (file://) with everything else aborted and recorded."""

    def open_page(path: str, width: int):
        context = browser.new_context(viewport={"width": width, "height": 900}, service_workers="block")
        record = {"blocked": [], "errors": []}

        def route(request_route):
            url = request_route.request.url
            if url.startswith("file://"):
                request_route.continue_()
            else:
                record["blocked"].append(url)
                request_route.abort()

        context.route("**/*", route)
        page = context.new_page()
        page.on("console", lambda message: record["errors"].append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: record["errors"].append(str(error)))
        page.on("requestfailed", lambda request: record["errors"].append(f"failed: {request.url}"))
        page.goto((built_book / path).as_uri(), wait_until="load")
        # Equations are typeset after the page loads; wait for MathJax's queue to empty.
        page.evaluate("() => new Promise(done => (window.MathJax && MathJax.Hub) ? MathJax.Hub.Queue(done) : done())")
        page.wait_for_timeout(200)
        return context, page, record

    return open_page


@pytest.mark.parametrize("width_name", WIDTHS)
@pytest.mark.parametrize("path", book_pages())
def test_every_page_reads_cleanly(file_pages, path, width_name):
    width = WIDTHS[width_name]
    context, page, record = file_pages(path, width)
    try:
        found = page.evaluate(AUDIT, WHOLE_ON_EVERY_SCREEN)
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "pages" / f"{path.replace('/', '_').removesuffix('.html')}-{width}.png"
        shot.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
    finally:
        context.close()
    assert not record["errors"], f"{path} at {width} px: console errors {record['errors']}"
    assert not record["blocked"], f"{path} at {width} px: requests left the page {record['blocked']}"
    assert not found["markdownTables"], f"{path}: Markdown table syntax shown as text {found['markdownTables']}"
    assert not found["strayDollars"], f"{path}: maths left as $...$ {found['strayDollars']}"
    assert not found["toolMarkers"], f"{path}: tool markers shown {found['toolMarkers']}"
    assert not found["cutEquations"], f"{path} at {width} px: equations cut off {found['cutEquations']}"
    blank = found["headingsWithEmptyLine"]
    assert not blank, f"{path} at {width} px: headings with an empty line under their text {blank}"
    split = found["splitShortLiterals"]
    assert not split, f"{path} at {width} px: short inline code split over two lines {split}"
    assert not found["splitWords"], f"{path} at {width} px: inline code split inside a word {found['splitWords']}"
    assert not found["figuresCut"], f"{path} at {width} px: figures wider than the column {found['figuresCut']}"
    assert not found["figuresWithoutAlt"], f"{path}: figures with no alternative text {found['figuresWithoutAlt']}"
    assert not found["figuresWithoutCaption"], f"{path}: figures without a caption {found['figuresWithoutCaption']}"
    wide = found["codeOutsideColumn"]
    assert not wide, f"{path} at {width} px: code wider than its column {wide}"
    cue = found["scrollingWithoutCue"]
    assert not cue, f"{path} at {width} px: boxes that scroll sideways without fading at the edge {cue}"
    assert found["unrenderedMath"] == 0, f"{path}: {found['unrenderedMath']} equations not typeset"
    assert found["searchFields"] <= 1, f"{path} at {width} px: {found['searchFields']} search fields"
    if width_name == "laptop":
        # 88 characters fit in the column; nothing scrolls sideways on a laptop.
        assert not found["scrollingCode"], f"{path}: code blocks scroll sideways {found['scrollingCode']}"
    else:
        assert found["pageScroll"] <= 0, f"{path}: the page scrolls sideways by {found['pageScroll']} px on a phone"


def test_written_answers_fold_like_hidden_code(file_pages):
    """An exercise's written answer (a dropdown admonition) and its solution code (a hidden cell) look alike."""
    context, page, record = file_pages("chapters/02_attention.html", WIDTHS["laptop"])
    try:
        style = """e => {
            const c = getComputedStyle(e), hint = e.querySelector('button');
            return {weight: c.fontWeight, background: c.backgroundColor, icon: getComputedStyle(e, '::after').content,
                    hint: hint ? getComputedStyle(hint, '::before').content : 'none'};
        }"""
        answer = page.locator(".dropdown.admonition > .admonition-title").first
        solution = page.locator("details.admonition.hide summary p.collapsed").first
        answer_style, solution_style = answer.evaluate(style), solution.evaluate(style)
        assert answer_style["weight"] == solution_style["weight"]
        assert answer_style["background"] == solution_style["background"] == "rgba(0, 0, 0, 0)"
        assert answer_style["icon"] == "none" and answer_style["hint"] == "none"  # no bell, no "Click to show"
        text = page.locator(".dropdown.admonition").first.locator("p").nth(1)
        assert not text.is_visible()
        answer.click()
        text.wait_for(state="visible")
    finally:
        context.close()
    assert not record["errors"], record["errors"]
