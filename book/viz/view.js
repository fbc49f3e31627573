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
  // A token and its position: a text often repeats a token, and the position tells them apart.
  function named(i) { return quoted(tokens[i]) + " @" + i; }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // Keys typed inside the view belong to the view. JupyterLab's command shortcuts (arrows move
  // the cell selection, "m" turns the cell into Markdown) are looked up by Lumino from the
  // focused element upwards, and a binding whose selector matches the focused element itself
  // wins before an ancestor is seen: so every element that can take focus carries the
  // data-lm-suppress-shortcuts attribute, and the root stops the events from bubbling further
  // (for hosts that listen on the document in the bubbling phase).
  function keepKeys(e) { e.setAttribute("data-lm-suppress-shortcuts", "true"); return e; }
  keepKeys(root);
  ["keydown", "keypress", "keyup"].forEach(function (type) {
    root.addEventListener(type, function (event) { event.stopPropagation(); });
  });
  // Arrow keys move the focus along a row of buttons.
  function arrowsMoveFocus(buttons) {
    buttons.forEach(function (button, i) {
      button.addEventListener("keydown", function (event) {
        var step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[event.key];
        if (step && buttons[i + step]) { event.preventDefault(); buttons[i + step].focus(); }
      });
    });
  }

  var start = spec.start || {};
  var startHeads = start.heads || [start.head || 0];
  var state = {
    layer: start.layer || 0, heads: startHeads.slice().sort(function (a, c) { return a - c; }),
    mode: start.mode === "lines" ? "lines" : "map", dir: "to", pinned: T - 1, hover: null, hoverDir: "to"
  };
  function several() { return state.heads.length > 1; }
  function allHeads() { return H > 1 && state.heads.length === H; }
  function headsText() {
    if (!several()) return "head " + state.heads[0];
    if (allHeads()) return H === 2 ? "mean of both heads" : "mean of all " + H + " heads";
    return "mean of heads " + state.heads.join(", ");
  }
  function meanWeight(q, k) {
    var total = 0;
    state.heads.forEach(function (h) { total += weight(state.layer, h, q, k); });
    return total / state.heads.length;
  }

  // Controls: layer; one head, all heads or a chosen set of heads; map or lines; direction.
  var controls = el("div", "av-controls");
  var layerLabel = el("label", null, "Layer"), layerSelect = keepKeys(el("select", "av-layer"));
  for (var l = 0; l < L; l++) { var o = el("option", null, String(l)); o.value = String(l); layerSelect.appendChild(o); }
  layerLabel.appendChild(layerSelect);
  var headLabel = el("label", null, "Head"), headSelect = keepKeys(el("select", "av-head"));
  for (var h = 0; h < H; h++) { var ho = el("option", null, String(h)); ho.value = String(h); headSelect.appendChild(ho); }
  var allOption = el("option", null, "all heads"); allOption.value = "all"; headSelect.appendChild(allOption);
  var someOption = el("option", null, "several"); someOption.value = "some"; someOption.disabled = true;
  headSelect.appendChild(someOption);
  headLabel.appendChild(headSelect);
  controls.appendChild(layerLabel); controls.appendChild(headLabel);

  var headToggles = [];
  if (H > 1) {
    var toggleGroup = el("span", "av-heads"); toggleGroup.setAttribute("role", "group");
    toggleGroup.setAttribute("aria-label", "heads shown together");
    toggleGroup.appendChild(el("span", "av-heads-label", "Heads"));
    for (var h5 = 0; h5 < H; h5++) (function (h) {
      var toggle = keepKeys(el("button", "av-head-toggle")); toggle.type = "button";
      toggle.setAttribute("data-head", String(h)); toggle.title = "show head " + h + " together with the others ticked";
      var swatch = el("span", "av-swatch"); swatch.style.background = headColour(h);
      toggle.appendChild(swatch); toggle.appendChild(document.createTextNode(String(h)));
      toggle.addEventListener("click", function () {
        var at = state.heads.indexOf(h);
        if (at < 0) state.heads = state.heads.concat([h]).sort(function (a, c) { return a - c; });
        else if (state.heads.length > 1) state.heads = state.heads.filter(function (x) { return x !== h; });
        render();
      });
      toggleGroup.appendChild(toggle); headToggles.push(toggle);
    })(h5);
    arrowsMoveFocus(headToggles);
    controls.appendChild(toggleGroup);
  }

  function buttonGroup(cls, label, choices, onChoose) {
    var group = el("span", "av-group " + cls); group.setAttribute("role", "group"); group.setAttribute("aria-label", label);
    var buttons = {}, list = [];
    choices.forEach(function (choice) {
      var button = keepKeys(el("button", null, choice[1])); button.type = "button";
      button.setAttribute("data-" + label, choice[0]);
      button.addEventListener("click", function () { onChoose(choice[0]); });
      group.appendChild(button); buttons[choice[0]] = button; list.push(button);
    });
    arrowsMoveFocus(list);
    controls.appendChild(group);
    return buttons;
  }
  var modeButtons = buttonGroup("av-mode", "mode", [["map", "map"], ["lines", "lines"]],
    function (mode) { state.mode = mode; render(); reveal(); });
  var dirButtons = buttonGroup("av-dir", "direction", [["to", "what it attends to"], ["from", "what attends to it"]],
    function (dir) { state.dir = dir; render(); });
  layerSelect.addEventListener("change", function () { state.layer = +layerSelect.value; render(); });
  headSelect.addEventListener("change", function () {
    if (headSelect.value === "all") { state.heads = []; for (var h = 0; h < H; h++) state.heads.push(h); }
    else if (headSelect.value !== "some") state.heads = [+headSelect.value];
    render();
  });

  var legend = el("div", "av-legend");
  var tokenBox = el("div", "av-tokens"); tokenBox.setAttribute("role", "list");
  var readout = el("div", "av-readout"); readout.setAttribute("aria-live", "polite");
  function point(i, dir) { state.hover = i; state.hoverDir = dir || state.dir; render(); }
  function leave() { state.hover = null; render(); }
  function pick(i, dir, inBox) { state.pinned = i; if (dir) state.dir = dir; state.hover = null; render(); if (!inBox) reveal(); }
  // Scroll the map's or the lines' own box (never the page) so that the selected token shows.
  function reveal() {
    var box = state.mode === "lines" ? linesScroll : matrixScroll, step = state.mode === "lines" ? rowHeight : geometry.cell;
    var top = (state.mode === "lines" ? 0 : geometry.margin) + state.pinned * step;
    if (top < box.scrollTop || top + step > box.scrollTop + box.clientHeight) box.scrollTop = Math.max(0, top - box.clientHeight / 2);
  }
  var chips = tokens.map(function (token, i) {
    var chip = keepKeys(el("span", "av-token")); chip.tabIndex = 0; chip.setAttribute("role", "listitem");
    chip.setAttribute("data-index", String(i)); chip.title = "position " + i + ": " + JSON.stringify(token);
    chip.appendChild(el("span", "av-text", shown(token)));
    var bars = el("span", "av-bars");
    for (var h = 0; h < H; h++) { var bar = el("span", "av-bar"); bar.style.background = headColour(h); bars.appendChild(bar); }
    chip.appendChild(bars);
    chip.addEventListener("mouseenter", function () { point(i); });
    chip.addEventListener("mouseleave", leave);
    chip.addEventListener("click", function () { pick(i); });
    chip.addEventListener("focus", function () { pick(i); });
    chip.addEventListener("keydown", function (event) {
      var step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[event.key];
      if (step && chips[i + step]) { event.preventDefault(); chips[i + step].focus(); }
    });
    tokenBox.appendChild(chip);
    return chip;
  });

  var panels = el("div", "av-panels");
  // The map: rows are queries, columns keys. It is as wide as the view at most, so that no
  // column is ever out of sight on a narrow screen; where the cells are too small for a label
  // each, every n-th row and column is labelled (the chips and the readout name all tokens).
  var matrixFigure = el("figure", "av-matrix-box"), matrixScroll = el("div", "av-scroll");
  var matrix = el("canvas", "av-matrix");
  matrix.setAttribute("role", "img");
  matrixScroll.appendChild(matrix); matrixFigure.appendChild(matrixScroll);
  var matrixCaption = el("figcaption", null, "");
  matrixFigure.appendChild(matrixCaption);
  // The lines: queries on the left, keys on the right, one line per weight.
  var linesFigure = el("figure", "av-lines-box"), linesScroll = el("div", "av-scroll av-lines");
  var queryColumn = el("div", "av-column av-queries"), keyColumn = el("div", "av-column av-keys");
  var lineCanvas = el("canvas", "av-line-canvas");
  linesScroll.appendChild(queryColumn); linesScroll.appendChild(lineCanvas); linesScroll.appendChild(keyColumn);
  linesFigure.appendChild(linesScroll);
  var linesCaption = el("figcaption", null, "");
  linesFigure.appendChild(linesCaption);
  var rowHeight = T <= 32 ? 18 : T <= 96 ? 15 : 13;
  linesScroll.style.setProperty("--av-row", rowHeight + "px");
  linesScroll.style.fontSize = (T <= 32 ? 12 : T <= 96 ? 11 : 10) + "px";
  function lineLabels(column, side) {
    return tokens.map(function (token, i) {
      var label = el("span", "av-label", shown(token));
      label.setAttribute("data-index", String(i)); label.setAttribute("data-side", side);
      label.title = (side === "query" ? "query" : "key") + " position " + i + ": " + JSON.stringify(token);
      var dir = side === "query" ? "to" : "from";
      label.addEventListener("mouseenter", function () { point(i, dir); });
      label.addEventListener("mouseleave", leave);
      label.addEventListener("click", function () { pick(i, dir, true); });  // already in sight: no scrolling
      column.appendChild(label);
      return label;
    });
  }
  var queryLabels = lineLabels(queryColumn, "query"), keyLabels = lineLabels(keyColumn, "key");

  var gridFigure = el("figure", "av-grid-box"), grid = el("div", "av-grid");
  grid.style.gridTemplateColumns = "auto repeat(" + H + ", auto)";
  gridFigure.appendChild(grid);
  gridFigure.appendChild(el("figcaption", null, "Overview: one map per layer (row) and head (column). Click one to select it."));
  panels.appendChild(matrixFigure); panels.appendChild(linesFigure); panels.appendChild(gridFigure);

  grid.appendChild(el("span", null, ""));
  for (var hh = 0; hh < H; hh++) grid.appendChild(el("span", null, "head " + hh));
  var thumbs = [];
  for (var ll = 0; ll < L; ll++) {
    grid.appendChild(el("span", null, "layer " + ll));
    for (var h2 = 0; h2 < H; h2++) (function (l, h) {
      var button = keepKeys(el("button", "av-thumb")); button.type = "button";
      button.setAttribute("data-layer", String(l)); button.setAttribute("data-head", String(h));
      button.setAttribute("aria-label", "layer " + l + ", head " + h); button.title = "layer " + l + ", head " + h;
      var canvas = el("canvas"); canvas.width = T; canvas.height = T; button.appendChild(canvas);
      button.addEventListener("click", function () { state.layer = l; state.heads = [h]; render(); });
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
  function available() { return Math.max(200, (root.clientWidth || 420) - 8); }

  // The map is painted once per layer, heads and theme into an off-screen canvas; moving the
  // selection only copies it back and draws the outline, so hovering stays fast for long texts.
  var LABELLED = 160;  // beyond this many tokens even thinned labels say little
  var SMALLEST_CELL = 2;  // below this a cell is no longer seen; the canvas is then scaled down by CSS
  var geometry = null, painted = { key: null, canvas: document.createElement("canvas") };
  function fit(ctx, text, width) {
    if (ctx.measureText(text).width <= width) return text;
    while (text.length > 1 && ctx.measureText(text + "\u2026").width > width) text = text.slice(0, -1);
    return text + "\u2026";
  }
  function paintMap(fg, rgb, ratio) {
    var canvas = painted.canvas, ctx = canvas.getContext("2d"), labels = T <= LABELLED, margin = 0;
    var avail = available(), fontSize = T <= 24 ? 12 : 10;
    var font = fontSize + "px ui-monospace, Menlo, Consolas, monospace";
    ctx.font = font;
    if (labels) tokens.forEach(function (t) { margin = Math.max(margin, ctx.measureText(shown(t)).width); });
    margin = labels ? Math.min(T <= 24 ? 80 : 64, Math.ceil(margin) + 8) : 0;
    // A short text fills up to 420 px; a long one gets a cell per label as long as the view is wide enough.
    var cell = Math.max(labels && T > 24 ? fontSize + 1 : 2, Math.floor((Math.min(420, avail) - margin) / T));
    if (margin + cell * T > avail) cell = Math.max(SMALLEST_CELL, Math.floor((avail - margin) / T));
    var every = labels ? Math.max(1, Math.ceil(fontSize / cell)) : 0, size = margin + cell * T;
    var key = [state.layer, state.heads.join(","), fg, rgb.join(","), ratio, size].join("|");
    geometry = { margin: margin, cell: cell, size: size, every: every };
    if (painted.key === key) return canvas;
    canvas.width = Math.round(size * ratio); canvas.height = Math.round(size * ratio);
    ctx = canvas.getContext("2d"); ctx.setTransform(ratio, 0, 0, ratio, 0, 0); ctx.font = font;
    var maskFill = hatch(ctx, "rgba(128,128,128,0.6)");
    for (var r = 0; r < T; r++) for (var k = 0; k < T; k++) {
      var x = margin + k * cell, y = margin + r * cell;
      if (masked(r, k)) { ctx.fillStyle = maskFill; ctx.fillRect(x, y, cell, cell); continue; }
      var w = meanWeight(r, k);
      if (w > 0) { ctx.fillStyle = "rgba(" + rgb.join(",") + "," + w.toFixed(3) + ")"; ctx.fillRect(x, y, cell, cell); }
    }
    ctx.strokeStyle = "rgba(128,128,128,0.45)"; ctx.lineWidth = 1;
    ctx.strokeRect(margin + 0.5, margin + 0.5, cell * T - 1, cell * T - 1);
    if (labels) {
      ctx.fillStyle = fg; ctx.textBaseline = "middle";
      tokens.forEach(function (t, i) {
        if (i % every) return;
        var label = fit(ctx, shown(t), margin - 6);
        ctx.textAlign = "right"; ctx.fillText(label, margin - 4, margin + (i + 0.5) * cell);
        ctx.save(); ctx.translate(margin + (i + 0.5) * cell, margin - 4); ctx.rotate(-Math.PI / 2);
        ctx.textAlign = "left"; ctx.fillText(label, 0, 0); ctx.restore();
      });
    }
    painted.key = key;
    return canvas;
  }
  function drawMatrix(q, dir) {
    var style = getComputedStyle(root), ratio = window.devicePixelRatio || 1;
    var map = paintMap(style.color, heat(), ratio), margin = geometry.margin, cell = geometry.cell;
    if (matrix.width !== map.width || matrix.height !== map.height) {
      matrix.width = map.width; matrix.height = map.height;
    }
    matrix.style.width = geometry.size + "px";
    matrix.setAttribute("data-cell", String(cell)); matrix.setAttribute("data-label-every", String(geometry.every));
    var ctx = matrix.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0); ctx.clearRect(0, 0, matrix.width, matrix.height); ctx.drawImage(map, 0, 0);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.strokeStyle = style.getPropertyValue("--av-accent").trim() || "#d35400"; ctx.lineWidth = 2;
    if (dir === "to") ctx.strokeRect(margin + 1, margin + q * cell + 1, cell * T - 2, cell - 2);
    else ctx.strokeRect(margin + q * cell + 1, margin + 1, cell - 2, cell * T - 2);
    matrix.setAttribute("aria-label", "attention map, layer " + state.layer + ", " + headsText() +
      ": rows are queries, columns are keys");
  }

  // The lines: every weight of every head shown is a line from its query (left) to its key
  // (right), as opaque and as thick as the weight; one colour per head when several are shown.
  // The lines of the selected token are drawn in full, the others faintly behind them.
  var FAINT = 0.3;
  function drawLines(q, dir) {
    var ratio = window.devicePixelRatio || 1, height = rowHeight * T;
    var side = (queryColumn.offsetWidth || 90) + (keyColumn.offsetWidth || 90);
    var width = Math.max(70, Math.min(260, available() - side - 12));
    if (lineCanvas.width !== Math.round(width * ratio) || lineCanvas.height !== Math.round(height * ratio)) {
      lineCanvas.width = Math.round(width * ratio); lineCanvas.height = Math.round(height * ratio);
    }
    lineCanvas.style.width = width + "px"; lineCanvas.style.height = height + "px";
    var ctx = lineCanvas.getContext("2d"), rgb = heat(), drawn = 0, strong = 0;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0); ctx.clearRect(0, 0, width, height); ctx.lineCap = "round";
    var colours = state.heads.map(function (h) { return several() ? headColour(h) : "rgb(" + rgb.join(",") + ")"; });
    function pass(selected) {
      state.heads.forEach(function (h, n) {
        ctx.strokeStyle = colours[n];
        for (var r = 0; r < T; r++) for (var k = 0; k <= (causal ? r : T - 1); k++) {
          var w = weight(state.layer, h, r, k), mine = dir === "to" ? r === q : k === q;
          if (w < 0.01 || mine !== selected) continue;
          ctx.globalAlpha = selected ? Math.min(1, 0.15 + w) : FAINT * w;
          ctx.lineWidth = selected ? 1 + 3 * w : 0.5 + 1.5 * w;
          ctx.beginPath(); ctx.moveTo(2, (r + 0.5) * rowHeight); ctx.lineTo(width - 2, (k + 0.5) * rowHeight); ctx.stroke();
          drawn++; if (selected) strong++;
        }
      });
    }
    pass(false); pass(true);
    ctx.globalAlpha = 1;
    lineCanvas.setAttribute("data-lines", String(drawn)); lineCanvas.setAttribute("data-selected-lines", String(strong));
    lineCanvas.setAttribute("role", "img");
    lineCanvas.setAttribute("aria-label", "attention lines, layer " + state.layer + ", " + headsText() +
      ": queries on the left, keys on the right");
  }
  function paintLabels(q, dir, rgb) {
    var own = dir === "to" ? queryLabels : keyLabels, other = dir === "to" ? keyLabels : queryLabels;
    own.forEach(function (label, i) {
      label.classList.toggle("av-selected", i === q); label.style.background = "";
      label.classList.remove("av-masked");
    });
    other.forEach(function (label, j) {
      var query = dir === "to" ? q : j, key = dir === "to" ? j : q, w = meanWeight(query, key);
      label.classList.remove("av-selected");
      label.classList.toggle("av-masked", masked(query, key));
      label.style.background = w > 0 ? "rgba(" + rgb.join(",") + "," + (0.8 * w).toFixed(3) + ")" : "";
    });
  }

  function ordinal(n) {
    var tens = n % 100, ones = n % 10;
    return n + (tens > 10 && tens < 14 ? "th" : ones === 1 ? "st" : ones === 2 ? "nd" : ones === 3 ? "rd" : "th");
  }
  // Two decimals: the page holds weights in steps of 1/255, so a third decimal would be noise.
  function format(w) { return w.toFixed(2); }
  function render() {
    var q = state.hover !== null ? state.hover : state.pinned, dir = state.hover !== null ? state.hoverDir : state.dir;
    var head = several() ? (allHeads() ? "all" : state.heads.join(",")) : String(state.heads[0]);
    root.setAttribute("data-layer", String(state.layer));
    root.setAttribute("data-head", head);
    root.setAttribute("data-heads", state.heads.join(","));
    root.setAttribute("data-mode", state.mode);
    root.setAttribute("data-query", String(q));
    root.setAttribute("data-direction", dir);
    root.classList.toggle("av-all", several());
    root.classList.toggle("av-show-lines", state.mode === "lines");
    layerSelect.value = String(state.layer);
    headSelect.value = several() ? (allHeads() ? "all" : "some") : String(state.heads[0]);
    headToggles.forEach(function (toggle, h) { toggle.setAttribute("aria-pressed", String(state.heads.indexOf(h) >= 0)); });
    ["map", "lines"].forEach(function (m) { modeButtons[m].setAttribute("aria-pressed", String(state.mode === m)); });
    ["to", "from"].forEach(function (d) { dirButtons[d].setAttribute("aria-pressed", String(dir === d)); });
    var rgb = heat(), ranked = [];
    chips.forEach(function (chip, j) {
      var query = dir === "to" ? q : j, key = dir === "to" ? j : q;
      var isMasked = masked(query, key);
      chip.classList.toggle("av-masked", isMasked);
      chip.classList.toggle("av-selected", j === q);
      chip.setAttribute("data-masked", String(isMasked));
      var weights = [];
      for (var h = 0; h < H; h++) weights.push(weight(state.layer, h, query, key));
      var w = meanWeight(query, key);
      chip.setAttribute("data-weight", String(w));
      chip.setAttribute("data-head-weights", weights.map(String).join(","));
      var bars = chip.lastChild.childNodes;
      for (var b = 0; b < H; b++) {
        bars[b].style.height = (100 * weights[b]).toFixed(1) + "%";
        bars[b].classList.toggle("av-off", state.heads.indexOf(b) < 0);
      }
      chip.style.background = several() || isMasked || w === 0 ? "" : "rgba(" + rgb.join(",") + "," + w.toFixed(3) + ")";
      chip.classList.toggle("av-strong", !several() && !isMasked && w > 0.55);
      var what = isMasked ? "masked (a future position)" : (several() ? "mean " + format(w) + "; " +
        state.heads.map(function (x) { return "head " + x + " " + format(weights[x]); }).join(", ") : format(w));
      chip.title = "position " + j + ": " + JSON.stringify(tokens[j]) + "\n" +
        (dir === "to" ? "weight from " + named(q) + ": " : "weight to " + named(q) + ": ") + what;
      if (!isMasked) ranked.push([w, j]);
    });
    ranked.sort(function (a, c) { return c[0] - a[0] || a[1] - c[1]; });
    // The three largest weights, leaving out any that would read 0.00 (the largest always shows).
    var best = ranked.slice(0, 3).filter(function (r, n) { return r[0] > 0 && (n === 0 || r[0] >= 0.005); })
      .map(function (r) { return named(r[1]) + " " + (r[0] < 0.005 ? "<0.01" : format(r[0])); });
    readout.textContent = named(q) + " " + (dir === "to" ? "attends most to " : "is attended most by ") +
      (best.length ? best.join(", ") : "nothing") + (several() ? " (" + headsText() + ")" : "");
    legend.textContent = "";
    var swatch;
    if (several() && state.mode === "lines") {
      state.heads.forEach(function (h) {
        var item = el("span", null); swatch = el("span", "av-swatch"); swatch.style.background = headColour(h);
        item.appendChild(swatch); item.appendChild(document.createTextNode("head " + h)); legend.appendChild(item);
      });
    } else {
      var strong = el("span", null); swatch = el("span", "av-swatch"); swatch.style.background = "rgb(" + rgb.join(",") + ")";
      strong.appendChild(swatch);
      strong.appendChild(document.createTextNode(several() ? "weight 1 (" + headsText() + ")" : "weight 1"));
      legend.appendChild(strong);
      var zero = el("span", null); zero.appendChild(el("span", "av-swatch")); zero.appendChild(document.createTextNode("weight 0"));
      legend.appendChild(zero);
    }
    if (causal) {
      var m = el("span", null); m.appendChild(el("span", "av-swatch av-masked"));
      m.appendChild(document.createTextNode("masked: a later position, never attended")); legend.appendChild(m);
    }
    thumbs.forEach(function (t) {
      var shownNow = t.l === state.layer && state.heads.indexOf(t.h) >= 0;
      t.button.classList.toggle("av-current", shownNow);
      t.button.setAttribute("aria-pressed", String(shownNow && !several()));
    });
    var where = "Layer " + state.layer + ", " + headsText();
    if (state.mode === "lines") {
      linesCaption.textContent = where + (several() ? ", one colour per head" : "") + ". Left: the queries (the " +
        "tokens that look); right: the keys (the tokens looked at). A line is as strong as its weight; point at " +
        "a token on either side to pick out its lines.";
      drawLines(q, dir); paintLabels(q, dir, rgb);
    } else {
      drawMatrix(q, dir);
      matrixCaption.textContent = where + ". Row = query (the token that looks), column = key (the token looked " +
        "at)" + (causal ? "; hatched cells are masked." : ".") + (geometry.every > 1 ? " Every " +
        ordinal(geometry.every) + " token is labelled; point at a cell to name it." : "");
    }
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
    var text = named(at.q) + " \u2192 " + named(at.k) + ": ";
    if (masked(at.q, at.k)) text += "masked";
    else if (several()) {
      text += "mean " + format(meanWeight(at.q, at.k)) + " (" + state.heads.map(function (h) {
        return "head " + h + " " + format(weight(state.layer, h, at.q, at.k));
      }).join(", ") + ")";
    } else text += format(weight(state.layer, state.heads[0], at.q, at.k));
    matrix.title = text;
  });
  matrix.addEventListener("click", function (event) {
    var at = cellAt(event);
    if (at) { state.pinned = state.dir === "to" ? at.q : at.k; state.hover = null; render(); }
  });

  drawThumbs();
  render();
  var redraw = function () { painted.key = null; drawThumbs(); render(); };
  // The map follows the view's width (a phone turned, a window resized), once per frame at most.
  var lastWidth = available(), pending = false;
  window.addEventListener("resize", function () {
    if (pending || !root.isConnected) return;
    pending = true;
    window.requestAnimationFrame(function () {
      pending = false;
      if (available() !== lastWidth) { lastWidth = available(); render(); }
    });
  });
  if (window.MutationObserver) {
    var watcher = new MutationObserver(redraw);
    watcher.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
    if (document.body) watcher.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light", "class"] });
  }
  root.setAttribute("data-ready", "true");
})();
