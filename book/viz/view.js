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
