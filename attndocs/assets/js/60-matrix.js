// attndocs matrix view: one attention matrix as a heatmap (one head, head or layer
// aggregates, rollout), with token labels as real text and an optional line drawing of the
// same matrix; hovering a token in either highlights it in both.

var util = attndocs.util;
var el = util.el;
var kit = attndocs.viewKit;

var MODES = [
  { value: "head", label: "Head", title: "one head of this layer" },
  { value: "mean", label: "Layer mean", title: "mean over the heads of this layer" },
  { value: "max", label: "Layer max", title: "maximum over the heads of this layer" },
  { value: "mean-all", label: "All mean", title: "mean over every layer and head (computed at build time)" },
  { value: "max-all", label: "All max", title: "maximum over every layer and head (computed at build time)" },
  { value: "rollout", label: "Rollout", title: "attention rollout through this layer (Abnar & Zuidema; self attention only)" },
];
var LINE_ROW = 18;     // px per token in the line drawing
var LINE_GAP = 170;    // px between the two token columns of the line drawing

function matrixView(fig) {
  var header = fig.header;
  var analysis = header.analysis && header.analysis.sections ? header.analysis.sections : {};
  // Defaults and the modes a link may name come from attndocs/state.py (MATRIX_MODES).
  fig.defineState(["mode", "lines"]);

  var cache = new Map();
  var layout = null;
  var hover = null;            // {r, c} cell under the pointer or keyboard cursor
  var cursor = { r: 0, c: 0 };

  function section() { return header.sections[fig.state.section]; }

  function modes() {
    var extras = (analysis[fig.state.section] || {}).extras || {};
    return MODES.filter(function (m) {
      if (m.value === "mean-all") return !!extras.mean_all;
      if (m.value === "max-all") return !!extras.max_all;
      if (m.value === "rollout") return !!extras.rollout;
      return true;
    });
  }

  function mode() {
    var m = fig.state.mode;
    return modes().some(function (x) { return x.value === m; }) ? m : "head";
  }

  // Position of a model layer inside an extra shipped for the included layers only.
  function layerSlot(name) {
    var a = analysis[name];
    var list = a && a.layers ? a.layers : header.sections[name].layers;
    return Math.max(0, list.indexOf(fig.state.layer));
  }

  function slice(extraName, slot) {
    return fig.extraPart(extraName, slot);
  }

  // Chunks the matrix of the current state still needs.
  function needed() {
    var name = fig.state.section, m = mode(), layer = fig.state.layer;
    var extras = (analysis[name] || {}).extras || {};
    if (m === "head") return fig.missing("attn", name, layer, kit.headOf(fig));
    if (m === "mean" || m === "max") {
      var shipped = extras[m === "mean" ? "mean_heads" : "max_heads"];
      return shipped ? fig.missing("extra", shipped, layerSlot(name)) : fig.missing("attn", name, layer, section().heads);
    }
    if (m === "mean-all") return fig.missing("extra", extras.mean_all, null);
    if (m === "max-all") return fig.missing("extra", extras.max_all, null);
    return fig.missing("extra", extras.rollout, layerSlot(name));
  }

  function reduceHeads(name, layer, heads, useMax) {
    var info = header.sections[name], n = info.shape[0] * info.shape[1];
    var out = new Float32Array(n);
    heads.forEach(function (h) {
      var a = fig.attn(name, layer, h);
      for (var i = 0; i < n; i++) out[i] = useMax ? (a[i] > out[i] ? a[i] : out[i]) : out[i] + a[i];
    });
    if (!useMax && heads.length) for (var i = 0; i < n; i++) out[i] /= heads.length;
    return out;
  }

  // The matrix the current state asks for, [rows * cols] row-major.
  function matrix() {
    var name = fig.state.section, info = section(), m = mode(), layer = fig.state.layer;
    var head = kit.headOf(fig), n = info.shape[0] * info.shape[1];
    var key = [name, m, m === "head" ? layer + "/" + head : m.slice(-3) === "all" ? "" : layer].join("|");
    if (cache.has(key)) return cache.get(key);
    var extras = (analysis[name] || {}).extras || {};
    var out;
    if (m === "head") out = fig.attn(name, layer, head);
    else if (m === "mean" || m === "max") {
      var shipped = extras[m === "mean" ? "mean_heads" : "max_heads"];
      out = shipped ? slice(shipped, layerSlot(name)) : reduceHeads(name, layer, info.heads, m === "max");
    } else if (m === "mean-all") out = slice(extras.mean_all, 0);
    else if (m === "max-all") out = slice(extras.max_all, 0);
    else out = slice(extras.rollout, layerSlot(name));
    if (!out) out = new Float32Array(n);
    if (cache.size > 24) cache.delete(cache.keys().next().value);
    cache.set(key, out);
    return out;
  }

  function describeMatrix() {
    var m = mode(), where = kit.sectionLabel(fig.state.section) + " \u00b7 ";
    if (m === "head") return where + "layer " + fig.state.layer + " \u00b7 head " + kit.headOf(fig);
    if (m === "mean") return where + "layer " + fig.state.layer + " \u00b7 mean over heads";
    if (m === "max") return where + "layer " + fig.state.layer + " \u00b7 max over heads";
    if (m === "mean-all") return where + "mean over all layers and heads";
    if (m === "max-all") return where + "max over all layers and heads";
    return where + "rollout through layer " + fig.state.layer;
  }

  // -- controls ---------------------------------------------------------------------------
  var sectionCtl = kit.sectionControl(fig, header.sectionOrder, function (name) {
    fig.setState({ section: name, token: null, locked: false });
  });
  var modeCtl = null, layerCtl = null, headCtl = null;
  var linesBtn = el("button", {
    type: "button", class: "attndocs-button attndocs-mlines-toggle", text: "Lines",
    title: "Also draw this matrix as lines between the tokens", "aria-pressed": String(!!fig.state.lines),
    on: { click: function () { fig.setState({ lines: !fig.state.lines }); } },
  });
  function buildControls() {
    var next = util.buttons("Matrix", modes(), mode(), function (m) { fig.setState({ mode: m }); });
    modeCtl = modeCtl ? kit.swap(modeCtl, next) : next;
    var nextLayer = kit.layerControl(fig, function (l) { fig.setState({ layer: l }); });
    layerCtl = layerCtl ? kit.swap(layerCtl, nextLayer) : nextLayer;
    var nextHead = kit.headControl(fig, function (h) { fig.setState({ heads: [h] }); });
    headCtl = headCtl ? kit.swap(headCtl, nextHead) : nextHead;
    syncControls();
  }
  function syncControls() {
    var m = mode();
    modeCtl.set(m);
    layerCtl.set(fig.state.layer);
    headCtl.set(kit.headOf(fig));
    layerCtl.select.disabled = m === "mean-all" || m === "max-all";
    headCtl.select.disabled = m !== "head";
    linesBtn.setAttribute("aria-pressed", String(!!fig.state.lines));
  }
  if (sectionCtl) fig.controls.appendChild(sectionCtl);
  buildControls();
  fig.controls.appendChild(modeCtl);
  fig.controls.appendChild(layerCtl);
  fig.controls.appendChild(headCtl);
  fig.controls.appendChild(linesBtn);

  var infoLine = el("p", { class: "attndocs-minfo" });
  var readout = el("p", { class: "attndocs-mreadout", "aria-hidden": "true" });
  var root = el("div", { class: "attndocs-matrixview" });
  fig.body.appendChild(infoLine);
  fig.body.appendChild(readout);
  fig.body.appendChild(root);
  var explain = attndocs.explain, tip = explain.tip(fig), key = explain.key(fig, fig.body);
  var KEY_LABELS = { head: "colour: attention weight", mean: "colour: mean weight over heads", max: "colour: max weight over heads",
    "mean-all": "colour: mean weight over layers and heads", "max-all": "colour: max weight over layers and heads",
    rollout: "colour: rollout weight" };

  // -- layout -----------------------------------------------------------------------------
  // Cells fill the width the figure gets, beside the query labels (at most 12em): square,
  // 2 to 48 px, and no taller in all than the scroll box (48rem, less the key labels), so
  // a long input shows whole. Below 10 px the labels hide until highlighted (attndocs-dense).
  var labelW = 0;
  function cellSize(rows, cols) {
    var n = Math.max(rows, cols, 1);
    var width = fig.body.clientWidth;
    if (!width) return Math.max(2, Math.min(28, Math.floor(480 / n)));
    var rem = parseFloat(getComputedStyle(document.documentElement).fontSize) || 16;
    var tallest = Math.floor((48 * rem - 130) / Math.max(rows, 1));
    var cell = Math.max(2, Math.min(48, tallest, Math.floor((width - (labelW || 96) - 2) / Math.max(cols, 1))));
    // A short text keeps labels that can be read (10 px) and scrolls sideways, with a cue.
    return n <= 48 ? Math.max(cell, 10) : cell;
  }

  function build(depth) {
    var name = fig.state.section, info = section();
    var rows = info.shape[0], cols = info.shape[1];
    var cell = cellSize(rows, cols);
    var dense = cell < 10;
    var rowSide = header.sides[info.rows], colSide = header.sides[info.cols];
    root.textContent = "";
    var colLabels = el("div", { class: "attndocs-mcols", style: "grid-template-columns:repeat(" + cols + "," + cell + "px)" });
    var rowLabels = el("div", { class: "attndocs-mrows", style: "grid-template-rows:repeat(" + rows + "," + cell + "px)" });
    var colEls = [], rowEls = [];
    for (var j = 0; j < cols; j++) {
      var ct = fig.tokenEl("k", j, kit.label(colSide.display[j]), colSide.special[j]);
      colEls.push(ct);
      colLabels.appendChild(ct);
    }
    for (var i = 0; i < rows; i++) {
      var rt = fig.tokenEl("q", i, kit.label(rowSide.display[i]), rowSide.special[i]);
      rowEls.push(rt);
      rowLabels.appendChild(rt);
    }
    var canvas = fig.canvas(cols * cell, rows * cell);
    canvas.classList.add("attndocs-mcanvas");
    var surface = el("div", {
      class: "attndocs-msurface", tabindex: "0", role: "application", "aria-roledescription": "attention matrix",
      "aria-label": "Attention matrix, " + rows + " query rows by " + cols + " key columns. Arrow keys move between cells, Enter locks the row.",
    }, [canvas]);
    var grid = el("div", { class: "attndocs-matrix" + (dense ? " attndocs-dense" : ""), style: "--attndocs-cell:" + cell + "px" }, [
      el("div", { class: "attndocs-mcorner", text: "query \u2193 key \u2192" }), colLabels, rowLabels, surface,
    ]);
    var scroller = el("div", { class: "attndocs-mscroll" }, [grid]);
    root.appendChild(scroller);
    // The query labels' real width decides the cells: measured once, then built again.
    var measured = Math.ceil(rowLabels.getBoundingClientRect().width);
    if (measured && Math.abs(measured - labelW) > 2 && (depth || 0) < 3) {
      labelW = measured;
      if (cellSize(rows, cols) !== cell) {
        build((depth || 0) + 1);
        return;
      }
    }

    var lines = el("div", { class: "attndocs-mlines" });
    root.appendChild(lines);

    function cellAt(e) {
      var rect = canvas.getBoundingClientRect();
      var c = Math.floor((e.clientX - rect.left) / cell), r = Math.floor((e.clientY - rect.top) / cell);
      return r >= 0 && r < rows && c >= 0 && c < cols ? { r: r, c: c } : null;
    }
    canvas.addEventListener("mousemove", function (e) {
      var at = cellAt(e);
      if (!at || (hover && hover.r === at.r && hover.c === at.c)) return;
      hover = at;
      cursor = at;
      if (!fig.state.locked) fig.setState({ token: { side: "q", index: at.r } });
      paint();
      cellTip(at, e.clientX, e.clientY);
    });
    canvas.addEventListener("mouseleave", function () {
      hover = null;
      tip.hide();
      if (!fig.state.locked) fig.setState({ token: fig.restingToken() });
      paint();
    });
    canvas.addEventListener("click", function (e) {
      var at = cellAt(e);
      if (at) lockToken({ side: "q", index: at.r });
    });
    surface.addEventListener("keydown", function (e) {
      var moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
      var move = util.own(moves, e.key);
      if (!layout.values) return;  // still loading
      if (move) {
        cursor = { r: util.clamp(cursor.r + move[0], 0, rows - 1), c: util.clamp(cursor.c + move[1], 0, cols - 1) };
        hover = cursor;
        fig.setState({ token: { side: "q", index: cursor.r } });
        paint();
        var v = matrix()[cursor.r * cols + cursor.c];
        var box = canvas.getBoundingClientRect();
        cellTip(cursor, box.left + (cursor.c + 1) * cell, box.top + (cursor.r + 1) * cell, true);
        fig.announce(kit.label(rowSide.display[cursor.r]) + " to " + kit.label(colSide.display[cursor.c]) + ": " + v.toFixed(3));
      } else if (e.key === "Enter") {
        lockToken({ side: "q", index: cursor.r });
      } else return;
      e.preventDefault();
    });
    surface.addEventListener("blur", function () { tip.hide(); if (hover === cursor) { hover = null; paint(); } });

    function tokenEvents(container) {
      container.addEventListener("mouseover", function (e) {
        var t = e.target.closest ? e.target.closest(".attndocs-token") : null;
        if (!t || fig.state.locked) return;
        fig.setState({ token: { side: t.getAttribute("data-side"), index: +t.getAttribute("data-index") } });
      });
      container.addEventListener("mouseleave", function () {
        if (!fig.state.locked && fig.state.token) fig.setState({ token: fig.restingToken() });
      });
      container.addEventListener("click", function (e) {
        var t = e.target.closest ? e.target.closest(".attndocs-token") : null;
        if (t) lockToken({ side: t.getAttribute("data-side"), index: +t.getAttribute("data-index") });
      });
    }
    tokenEvents(colLabels);
    tokenEvents(rowLabels);
    tokenEvents(lines);
    util.roving(rowLabels, ".attndocs-token", {
      vertical: true,
      onMove: function (node, i) { fig.setState({ token: { side: "q", index: i } }); },
      onEnter: function (node, i) { lockToken({ side: "q", index: i }); },
    });
    util.roving(colLabels, ".attndocs-token", {
      onMove: function (node, i) { fig.setState({ token: { side: "k", index: i } }); },
      onEnter: function (node, i) { lockToken({ side: "k", index: i }); },
    });

    layout = {
      name: name, rows: rows, cols: cols, cell: cell, canvas: canvas, colEls: colEls, rowEls: rowEls,
      lines: lines, rowSide: rowSide, colSide: colSide, image: null, values: null,
    };
    hover = null;
    cursor = { r: 0, c: 0 };
  }

  // The cell's value by the pointer (or by the keyboard cursor, already announced).
  function cellTip(at, x, y, quiet) {
    var L = layout;
    if (!L.values) return;
    var text = "\u201c" + kit.label(L.rowSide.display[at.r]) + "\u201d \u2192 \u201c" + kit.label(L.colSide.display[at.c]) +
      "\u201d: " + L.values[at.r * L.cols + at.c].toFixed(3);
    tip.show(text, x, y);
    if (quiet) tip.quiet();
  }

  function lockToken(token) {
    var t = fig.state.token;
    var same = fig.state.locked && t && t.side === token.side && t.index === token.index;
    fig.setState(same ? { locked: false } : { token: token, locked: true });
    if (!same && layout.values) {
      var L = layout, values = L.values, top;
      if (token.side === "q") {
        top = util.topK(values.subarray(token.index * L.cols, (token.index + 1) * L.cols), 3);
        fig.announce(kit.label(L.rowSide.display[token.index]) + " attends most to " + top.map(function (x) {
          return kit.label(L.colSide.display[x.index]) + " " + x.value.toFixed(2);
        }).join(", "));
      } else {
        var column = new Float32Array(L.rows);
        for (var i = 0; i < L.rows; i++) column[i] = values[i * L.cols + token.index];
        top = util.topK(column, 3);
        fig.announce(kit.label(L.colSide.display[token.index]) + " is attended most by " + top.map(function (x) {
          return kit.label(L.rowSide.display[x.index]) + " " + x.value.toFixed(2);
        }).join(", "));
      }
    }
  }

  function hide() {
    root.classList.add(kit.WAITING);
    readout.textContent = "\u00a0";
    infoLine.textContent = describeMatrix();
    layout.values = layout.image = null;
  }

  // Builds the heatmap image for the current matrix (not the highlights).
  function draw() {
    var what = mode() === "head" ? "layer " + fig.state.layer + ", head " + kit.headOf(fig) : describeMatrix();
    if (!fig.ready("matrix", needed(), "Loading " + what + "\u2026", draw, hide)) return;
    root.classList.remove(kit.WAITING);
    var L = layout, info = section(), colors = fig.colors();
    var values = matrix(), vmax = 0;
    for (var i = 0; i < values.length; i++) if (values[i] > vmax) vmax = values[i];
    // Full colour at 1 (the fixed scale: a flat head stays pale), or at this matrix's maximum.
    vmax = explain.full(fig, vmax);
    var ramp = kit.ramp(colors.bg, colors.accent), masked = kit.rgb(colors.grid).concat([110]);
    var rows = L.rows, cols = L.cols;
    L.values = values;
    L.vmax = vmax;
    L.image = kit.image(cols, rows, function (x, y) {
      if (info.causal && x >= kit.keptColumns(rows, cols, y)) return masked;
      return ramp(vmax > 0 ? values[y * cols + x] / vmax : 0);
    });
    infoLine.textContent = describeMatrix();
    key.set({ label: util.own(KEY_LABELS, mode()), lo: 0, hi: vmax, from: colors.bg, to: colors.accent });
    if (!fig.state.lines && L.linesBuilt) {
      L.lines.textContent = "";
      L.linesBuilt = false;
    }
    paint();
  }

  function focusCell() {
    if (hover) return hover;
    var t = fig.state.token;
    return t ? { r: t.side === "q" ? t.index : -1, c: t.side === "k" ? t.index : -1 } : null;
  }

  // The image plus the highlighted row and column, and the labels that go with them.
  function paint() {
    if (!layout.image) return;  // still loading
    var L = layout, ctx = L.canvas.ctx, cell = L.cell, colors = fig.colors();
    var w = L.cols * cell, h = L.rows * cell;
    ctx.clearRect(0, 0, w, h);
    kit.blit(ctx, L.image, 0, 0, w, h);
    var at = focusCell();
    L.rowEls.forEach(function (node, i) { node.classList.toggle("attndocs-hl", !!at && at.r === i); });
    L.colEls.forEach(function (node, j) { node.classList.toggle("attndocs-hl", !!at && at.c === j); });
    var t = fig.state.token;
    L.rowEls.forEach(function (node, i) { node.classList.toggle("attndocs-locked", !!fig.state.locked && !!t && t.side === "q" && t.index === i); });
    L.colEls.forEach(function (node, j) { node.classList.toggle("attndocs-locked", !!fig.state.locked && !!t && t.side === "k" && t.index === j); });
    if (fig.state.lines) drawLines();
    if (!at) {
      readout.textContent = "\u00a0";
      return;
    }
    // Outlines only: the row being read keeps its colours (a grey wash would hide them).
    ctx.lineWidth = 1;
    ctx.strokeStyle = util.rgba(colors.fg, 0.55);
    if (at.r >= 0) ctx.strokeRect(0.5, at.r * cell + 0.5, w - 1, Math.max(1, cell - 1));
    if (at.c >= 0) ctx.strokeRect(at.c * cell + 0.5, 0.5, Math.max(1, cell - 1), h - 1);
    if (at.r >= 0 && at.c >= 0 && cell >= 4) {
      ctx.lineWidth = 2;
      ctx.strokeStyle = colors.fg;
      ctx.strokeRect(at.c * cell + 1, at.r * cell + 1, cell - 2, cell - 2);
    }
    var rowText = at.r >= 0 ? "\u201c" + kit.label(L.rowSide.display[at.r]) + "\u201d" : "every query";
    var colText = at.c >= 0 ? "\u201c" + kit.label(L.colSide.display[at.c]) + "\u201d" : "every key";
    readout.textContent = at.r >= 0 && at.c >= 0 ?
      rowText + " \u2192 " + colText + ": " + L.values[at.r * L.cols + at.c].toFixed(4) :
      rowText + " \u2192 " + colText;
  }

  // The same matrix as lines from query tokens (left) to key tokens (right).
  function drawLines() {
    var L = layout, colors = fig.colors(), rows = L.rows, cols = L.cols;
    if (!L.linesBuilt) {
      L.lines.textContent = "";
      var left = el("div", { class: "attndocs-mlcol attndocs-mlleft" }), right = el("div", { class: "attndocs-mlcol" });
      L.lineRowEls = [];
      L.lineColEls = [];
      for (var i = 0; i < rows; i++) {
        var a = fig.tokenEl("q", i, kit.label(L.rowSide.display[i]), L.rowSide.special[i]);
        L.lineRowEls.push(a);
        left.appendChild(a);
      }
      for (var j = 0; j < cols; j++) {
        var b = fig.tokenEl("k", j, kit.label(L.colSide.display[j]), L.colSide.special[j]);
        L.lineColEls.push(b);
        right.appendChild(b);
      }
      L.lineCanvas = fig.canvas(LINE_GAP, Math.max(rows, cols) * LINE_ROW);
      L.lines.appendChild(el("div", { class: "attndocs-mlinebox", style: "--attndocs-line-row:" + LINE_ROW + "px" }, [left, L.lineCanvas, right]));
      L.linesBuilt = true;
    }
    var ctx = L.lineCanvas.ctx, values = L.values, vmax = L.vmax || 1;
    var height = Math.max(rows, cols) * LINE_ROW;
    ctx.clearRect(0, 0, LINE_GAP, height);
    var at = focusCell();
    var onlyRow = at && at.r >= 0 ? at.r : -1;
    var onlyCol = at && at.r < 0 && at.c >= 0 ? at.c : -1;
    ctx.strokeStyle = colors.accent;
    ctx.lineWidth = 2;
    for (var r = 0; r < rows; r++) {
      if (onlyRow >= 0 && r !== onlyRow) continue;
      for (var c = 0; c < cols; c++) {
        if (onlyCol >= 0 && c !== onlyCol) continue;
        var w = values[r * cols + c] / vmax;
        if (w < 0.02) continue;
        ctx.globalAlpha = Math.min(1, w);
        ctx.beginPath();
        ctx.moveTo(2, (r + 0.5) * LINE_ROW);
        ctx.lineTo(LINE_GAP - 2, (c + 0.5) * LINE_ROW);
        ctx.stroke();
      }
    }
    ctx.globalAlpha = 1;
    L.lineRowEls.forEach(function (node, i) { node.classList.toggle("attndocs-hl", i === onlyRow); });
    L.lineColEls.forEach(function (node, j) { node.classList.toggle("attndocs-hl", (at && at.c === j) || j === onlyCol); });
  }

  function render(rebuild) {
    if (rebuild || !layout || layout.name !== fig.state.section) build();
    draw();
  }

  render(true);
  fig.onTheme(function () { if (layout) draw(); });
  // A new width gives new cells (a theme's sidebar folding, a phone turned).
  var lastWidth = fig.body.clientWidth, resizeObserver = null;
  if (typeof ResizeObserver !== "undefined") {
    resizeObserver = new ResizeObserver(function () {
      var w = fig.body.clientWidth;
      if (Math.abs(w - lastWidth) > 4 && layout) {
        lastWidth = w;
        if (cellSize(layout.rows, layout.cols) !== layout.cell) render(true);
      }
    });
    resizeObserver.observe(fig.body);
  }

  return {
    update: function (changes) {
      if ("section" in changes) {
        buildControls();
        if (sectionCtl) sectionCtl.set(fig.state.section);
        render(true);
        return;
      }
      syncControls();
      if ("mode" in changes || "layer" in changes || "heads" in changes || "lines" in changes || "scale" in changes) draw();
      else paint();
    },
    exportLabel: describeMatrix,
    exportLayer: function () { return mode().slice(-3) === "all" ? null : fig.state.layer; },
    toSVG: function () {
      if (!layout.image) return kit.pendingSVG(fig, infoLine.textContent + " (loading)");
      var L = layout, colors = fig.colors(), cell = Math.max(L.cell, 4);
      var labelW = 120, top = 30 + 110, w = L.cols * cell, h = L.rows * cell;
      var svg = util.svgDoc(labelW + w + 20, top + h + 20, colors);
      svg.add("text", { x: 8, y: 18, fill: colors.fg }, infoLine.textContent);
      svg.add("text", { x: labelW - 4, y: top - 8, fill: colors.muted, "text-anchor": "end", class: "attndocs-export-header" }, "query \u2193  key \u2192");
      var big = document.createElement("canvas");
      big.width = w;
      big.height = h;
      kit.blit(big.getContext("2d"), L.image, 0, 0, w, h);
      svg.add("image", { x: labelW, y: top, width: w, height: h, href: big.toDataURL("image/png"), preserveAspectRatio: "none" });
      var size = Math.max(4, Math.min(12, cell - 1));
      for (var i = 0; i < L.rows; i++) {
        svg.add("text", { x: labelW - 4, y: top + (i + 0.5) * cell + size / 3, fill: colors.fg, "text-anchor": "end", "font-size": size }, kit.label(L.rowSide.display[i]));
      }
      for (var j = 0; j < L.cols; j++) {
        var x = labelW + (j + 0.5) * cell + size / 3;
        svg.add("text", { x: x, y: top - 4, fill: colors.fg, "font-size": size, transform: "rotate(-90 " + x.toFixed(2) + " " + (top - 4) + ")" }, kit.label(L.colSide.display[j]));
      }
      return svg.toString();
    },
  };
}

attndocs.registerView("matrix", matrixView);
