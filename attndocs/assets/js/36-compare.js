// attndocs comparisons: two records (compare-text, compare-model) or two layers (compare-layer)
// in one figure (header.compare, attndocs/compare.py).
//
// Side B is drawn by the figure's own view a second time, on a stand-in fig object whose
// header holds B's sections (shipped in the figure's own chunks) and whose state follows A's:
// layer, heads and token are A's, mapped to B (a token through the alignment; a layer or head
// B lacks leaves B's drawing out, with a note). The head and model views show A and B next to
// each other (stacked on a narrow screen). The matrix and summary views open on the difference
// A - B on a diverging scale centred on zero, defined only on aligned tokens (others hatched)
// and on layers and heads both sides have; a switch shows both side by side instead.
//
// Hooked in by 00-core.js (startFigure): attndocs.compare.start(fig, factory) -> the view.

var util = attndocs.util;
var el = util.el;
var DIFF_VIEWS = { matrix: true, summary: true };

function start(fig, factory) {
  var c = fig.header.compare;
  var ui = layout(fig, c);
  var a = factory(fig) || {};
  var side = makeSide(fig, c, ui);
  fig.compareSide = side.fig;  // side B's stand-in fig (its state, its data), for tools and tests
  var b = null;
  try {
    b = side.fig.view = factory(side.fig) || {};
    side.settle();
  } catch (err) {
    console.warn("attndocs: the second drawing of the comparison failed", err);
    ui.noteB.textContent = "Side B cannot be drawn: " + (err && err.message);
    ui.noteB.hidden = false;
  }
  var diff = DIFF_VIEWS[fig.header.view] ? differencePane(fig, c, side, ui) : null;
  side.sync(b);
  return {
    update: function (changes) {
      if (a.update) a.update(changes);
      side.sync(b, changes);
      if (diff) diff.update(changes);
    },
    destroy: function () {
      if (a.destroy) a.destroy();
      if (b && b.destroy) b.destroy();
    },
    toSVG: a.toSVG ? function () { return a.toSVG(); } : undefined,
    defaults: a.defaults,
    escape: a.escape ? function () { return a.escape(); } : undefined,
    exportLabel: a.exportLabel ? function () { return a.exportLabel(); } : undefined,
    exportLayer: a.exportLayer ? function () { return a.exportLayer(); } : undefined,
  };
}

// -- layout ----------------------------------------------------------------------------------
function layout(fig, c) {
  var bar = el("div", { class: "attndocs-compare-bar", role: "group", "aria-label": "Comparison" });
  var pair = el("div", { class: "attndocs-compare-pair" });
  var paneA = el("div", { class: "attndocs-compare-pane", "data-compare-side": "a" });
  var paneB = el("div", { class: "attndocs-compare-pane", "data-compare-side": "b" });
  var bodyB = el("div", { class: "attndocs-body" });
  var noteB = el("div", { class: "attndocs-note attndocs-compare-note", role: "note", hidden: true });
  fig.body.parentNode.insertBefore(bar, fig.body);
  fig.body.parentNode.insertBefore(pair, fig.body);
  paneA.appendChild(sideLabel("A", c.labels[0]));
  paneA.appendChild(fig.body);
  paneB.appendChild(sideLabel("B", c.labels[1]));
  paneB.appendChild(noteB);
  paneB.appendChild(bodyB);
  pair.appendChild(paneA);
  pair.appendChild(paneB);
  fig.el.classList.add("attndocs-comparing");
  return { bar: bar, pair: pair, bodyB: bodyB, noteB: noteB };
}

function sideLabel(letter, text) {
  return el("div", { class: "attndocs-compare-label", "data-compare-side": letter.toLowerCase() }, [
    el("span", { class: "attndocs-compare-letter", text: letter }), " ", el("span", { text: text }),
  ]);
}

// -- side B: the same view on B's data, following A's state ------------------------------------
function makeSide(fig, c, ui) {
  var mode = c.mode;
  var header = Object.assign({}, fig.header);
  if (mode === "layer") {
    header.options = Object.assign({}, fig.header.options, { layer: c.layers[1] });
  } else {
    header.sides = c.sides;
    header.sections = c.sections;
    header.sectionOrder = c.sectionOrder;
    header.extras = c.extras;
    header.analysis = c.analysis;
    header.model = c.model;
    header.text = c.text;
    header.kind = c.kind;
    header.options = Object.assign({}, fig.header.options, { layer: c.layer, heads: c.heads });
  }
  var b = Object.create(fig);
  b.header = header;
  b.id = fig.id + "-compare";
  b.body = ui.bodyB;
  b.controls = el("div", { class: "attndocs-controls", hidden: true });
  b._cache = new Map();
  b._cacheBytes = 0;
  b._waits = {};
  b._waitLabels = [];
  b.state = Object.create(fig.state);
  // The sequence a token belongs to: a row (q) or a column (k) of the section shown.
  function tokenSide(token) {
    var info = token && util.own(fig.header.sections, fig.state.section);
    return info ? (token.side === "q" ? info.rows : info.cols) : null;
  }
  var fitted = fit();
  // The stand-in's own changes are A's: a token maps back through the alignment.
  b.setState = function (patch, quiet) {
    var out = {};
    for (var key in patch) {
      if (!util.has(patch, key)) continue;
      if (key === "layer" && mode === "layer") continue;
      out[key] = key === "token" ? mapToken(c, patch.token, 1, 0, tokenSide(patch.token)) : patch[key];
    }
    return fig.setState(out, quiet);
  };

  // B's state: A's, with the layer, heads and token B has (own keys of b.state shadow A's).
  function fit() {
    var s = fig.state, info = util.own(header.sections, s.section);
    var own = b.state;
    Object.keys(own).forEach(function (k) { delete own[k]; });
    var problem = null;
    if (!info) {
      problem = "side B has no " + s.section + " section";
      own.section = header.sectionOrder[0];
      info = header.sections[own.section];
    }
    own.layer = mode === "layer" ? c.layers[1] : s.layer;
    if (info.layers.indexOf(own.layer) < 0) {
      // B's drawing keeps a layer it has (hidden, with the note) until A's is one of B's again.
      problem = problem || "side B (" + c.labels[1] + ") has no layer " + own.layer;
      own.layer = info.layers.indexOf(c.layer) >= 0 ? c.layer : info.layers[0];
    }
    own.heads = (s.heads || []).filter(function (h) { return info.heads.indexOf(h) >= 0; });
    own.token = mapToken(c, s.token, 0, 1, tokenSide(s.token));
    if (s.token && !own.token) own.locked = false;
    return problem;
  }

  var drawn = true;
  return {
    fig: b,
    // After B's view started: the keys its defineState gave B are A's again.
    settle: function () { fitted = fit(); },
    sync: function (view, changes) {
      fitted = fit();
      ui.noteB.hidden = !fitted;
      ui.noteB.textContent = fitted ? "Not shown: " + fitted + "." : "";
      ui.bodyB.hidden = !!fitted;
      if (fitted || !view || !view.update) { drawn = !fitted && drawn; return; }
      var mapped = {};
      var keys = changes ? Object.keys(changes) : [];
      if (!drawn) keys = ["section", "layer", "heads", "token"];
      keys.forEach(function (k) { if (!(mode === "layer" && k === "layer")) mapped[k] = b.state[k]; });
      drawn = true;
      if (keys.length) {
        try { view.update(mapped); } catch (err) { console.warn("attndocs: side B", err); }
      }
    },
  };
}

// A token {side, index} of one side (0 = A, 1 = B) as the other side's, through the alignment
// of its sequence (sideName: encoder or decoder); null where it has no counterpart.
function mapToken(c, token, from, to, sideName) {
  if (!token) return token == null ? token : null;
  var al = sideName && util.own(c.alignment, sideName);
  if (!al) return null;
  for (var i = 0; i < al.pairs.length; i++) {
    if (al.pairs[i][from] === token.index) return { side: token.side, index: al.pairs[i][to] };
  }
  return null;
}

// -- the difference (matrix and summary views) ------------------------------------------------
function differencePane(fig, c, side, ui) {
  var b = side.fig;
  var pane = el("div", { class: "attndocs-compare-diff" });
  var title = el("div", { class: "attndocs-compare-title" });
  var note = el("div", { class: "attndocs-note attndocs-compare-note attndocs-compare-unaligned", role: "note", hidden: true });
  var grid = el("div", { class: "attndocs-compare-grid" });
  var key = el("div", { class: "attndocs-compare-key" });
  var tip = el("div", { class: "attndocs-compare-tip", role: "status", hidden: true });
  pane.appendChild(title);
  pane.appendChild(note);
  pane.appendChild(grid);
  pane.appendChild(key);
  pane.appendChild(tip);
  ui.pair.parentNode.insertBefore(pane, ui.pair.nextSibling);
  var nothingAligns = Object.keys(c.alignment).every(function (n) { return !c.alignment[n].pairs.length; });
  // State key `difference` (attndocs/state.py): the author's opening choice, and links.
  fig.defineState(["difference"]);
  // Per-head statistics compare whatever the tokens; a matrix with nothing aligned opens on both.
  if (nothingAligns && fig.header.view === "matrix" && fig.state.difference !== false) fig.setState({ difference: false }, true);
  var show = fig.state.difference === false ? "both" : "diff";
  var toggle = util.buttons("Show", [
    { value: "diff", label: "A \u2212 B" },
    { value: "both", label: "Side by side" },
  ], show, function (value) { fig.setState({ difference: value === "diff" }); });
  toggle.classList.add("attndocs-compare-toggle");
  ui.bar.appendChild(toggle);

  function place() {
    pane.hidden = show !== "diff";
    ui.pair.hidden = show === "diff";
    fig.el.setAttribute("data-compare-show", show);
    if (show === "diff") draw();
  }

  function draw() {
    if (pane.hidden) return;
    if (fig.header.view === "summary") drawSummary();
    else drawMatrix();
  }

  function drawMatrix() {
    var s = fig.state, name = s.section, info = fig.section(name), infoB = b.section(name);
    var layerA = s.layer, layerB = c.mode === "layer" ? c.layers[1] : s.layer;
    var mode = s.mode || "head";
    var heads = mode === "mean" ? (s.heads && s.heads.length ? s.heads : info.heads) : [attndocs.viewKit.headOf(fig)];
    var problem = null;
    if (mode !== "head" && mode !== "mean") problem = "the difference is drawn for one head or the layer mean, not for " + mode;
    else if (!infoB) problem = "side B has no " + name + " section";
    else if (infoB.layers.indexOf(layerB) < 0) problem = "side B has no layer " + layerB;
    else {
      var missingHeads = heads.filter(function (h) { return infoB.heads.indexOf(h) < 0; });
      if (missingHeads.length) problem = "side B has no head " + missingHeads.join(", ");
    }
    title.textContent = "Layer " + layerA + (layerB !== layerA ? " \u2212 layer " + layerB : "") +
      (heads.length === 1 ? ", head " + heads[0] : ", mean of heads " + heads.join(", ")) + ": A \u2212 B";
    if (problem) return empty("No difference: " + problem + "; only what both sides have is compared.");
    var chunks = [];
    heads.forEach(function (h) {
      fig.missing("attn", name, layerA, h).concat(b.missing("attn", name, layerB, h)).forEach(function (k) {
        if (chunks.indexOf(k) < 0) chunks.push(k);
      });
    });
    if (!fig.ready("compare-diff", chunks, "Loading the comparison\u2026", draw, function () { grid.textContent = ""; })) return;
    var rowsAl = c.alignment[info.rows], colsAl = c.alignment[info.cols];
    var nColsA = info.shape[1], nColsB = infoB.shape[1];
    var mats = heads.map(function (h) { return [fig.attn(name, layerA, h), b.attn(name, layerB, h)]; });
    function cell(r, col) {
      var va = 0, vb = 0;
      mats.forEach(function (m) { va += m[0][r[0] * nColsA + col[0]]; vb += m[1][r[1] * nColsB + col[1]]; });
      return [va / mats.length, vb / mats.length];
    }
    var rows = rowsAl.merged, cols = colsAl.merged, values = [], maxAbs = 0;
    rows.forEach(function (r) {
      cols.forEach(function (col) {
        if (r[0] < 0 || r[1] < 0 || col[0] < 0 || col[1] < 0) { values.push(null); return; }
        var v = cell(r, col);
        values.push(v);
        maxAbs = Math.max(maxAbs, Math.abs(v[0] - v[1]));
      });
    });
    var aTokens = fig.tokens(info.rows), bTokens = b.tokens(infoB.rows);
    var aCols = fig.tokens(info.cols), bCols = b.tokens(infoB.cols);
    unalignedNote(rowsAl, colsAl, info);
    // The selected token's row (a query) or column (a key) is outlined, as the matrix view does.
    var token = fig.state.token, mark = { row: -1, col: -1 };
    if (token && token.side === "q") mark.row = rows.findIndex(function (r) { return r[0] === token.index; });
    if (token && token.side === "k") mark.col = cols.findIndex(function (col) { return col[0] === token.index; });
    var rowLabels = rows.map(function (r, i) { return picked(axisLabel(r, aTokens, bTokens), i === mark.row); });
    var colLabels = cols.map(function (col, j) { return picked(axisLabel(col, aCols, bCols), j === mark.col); });
    heatmap("hatched: no difference (token not aligned)", rowLabels, colLabels, values, maxAbs, function (i, j, v) {
        var rl = axisLabel(rows[i], aTokens, bTokens).text, cl = axisLabel(cols[j], aCols, bCols).text;
        if (!v) return rl + " \u2192 " + cl + ": no difference (the token is only in " + (rows[i][0] < 0 || cols[j][0] < 0 ? "B" : "A") + ")";
        return rl + " \u2192 " + cl + ": A " + v[0].toFixed(3) + ", B " + v[1].toFixed(3) + ", A \u2212 B " + signed(v[0] - v[1]);
      });
  }

  function drawSummary() {
    var s = fig.state, summary = c.summary && util.own(c.summary, s.section);
    if (!summary) return empty("No difference: the two sides share no layer and head of this section.");
    var stats = Object.keys(summary.stats);
    var stat = stats.indexOf(s.stat) >= 0 ? s.stat : stats[0];
    note.hidden = true;
    title.textContent = "Head statistic \u201c" + stat + "\u201d: A \u2212 B per head";
    var values = [], maxAbs = 0;
    summary.rows.forEach(function (_, r) {
      summary.heads.forEach(function (_, h) {
        var d = summary.stats[stat][r][h];
        if (d == null) { values.push(null); return; }
        values.push([summary.a[stat][r][h], summary.b[stat][r][h]]);
        maxAbs = Math.max(maxAbs, Math.abs(d));
      });
    });
    var partial = c.mode === "model" && (summary.rows.length < fig.section(s.section).layers.length ||
      summary.heads.length < fig.section(s.section).heads.length);
    note.hidden = !partial;
    note.textContent = partial ? "Only the layers and heads both models have are compared (" + summary.rows.length +
      " layers \u00d7 " + summary.heads.length + " heads); switch to side by side for the rest." : "";
    var rowLabels = summary.rows.map(function (r) {
      return { text: r[0] === r[1] ? "layer " + r[0] : "layer " + r[0] + " \u2212 " + r[1], cls: "" };
    });
    var colLabels = summary.heads.map(function (h) { return { text: "h" + h, cls: "" }; });
    heatmap("hatched: no value on one side", rowLabels, colLabels, values, maxAbs, function (i, j, v) {
      var where = rowLabels[i].text + ", head " + summary.heads[j];
      if (!v) return where + ": no value on one side";
      return where + ": A " + v[0].toFixed(3) + ", B " + v[1].toFixed(3) + ", A \u2212 B " + signed(v[0] - v[1]);
    });
  }

  function unalignedNote(rowsAl, colsAl, info) {
    var lists = info.rows === info.cols ? [rowsAl] : [rowsAl, colsAl];
    var onlyA = 0, onlyB = 0;
    lists.forEach(function (al) {
      al.merged.forEach(function (m) { if (m[1] < 0) onlyA++; else if (m[0] < 0) onlyB++; });
    });
    note.hidden = !(onlyA || onlyB);
    note.textContent = onlyA || onlyB
      ? (onlyA + " token" + (onlyA === 1 ? "" : "s") + " of A and " + onlyB + " of B have no counterpart (another word or " +
        "another tokenizer's pieces): they are shown, hatched, with no difference.")
      : "";
  }

  function empty(message) {
    grid.textContent = "";
    key.textContent = "";
    note.hidden = false;
    note.textContent = message;
  }

  function picked(label, on) {
    if (on) label.cls = (label.cls ? label.cls + " " : "") + "attndocs-compare-picked";
    return label;
  }

  // A grid of cells coloured by A - B; values[i * cols + j] = [a, b] or null (hatched). A label
  // marked picked (the selected token) has its row or column outlined.
  function heatmap(hatchText, rowLabels, colLabels, values, maxAbs, describe) {
    var colors = fig.colors();
    var nr = rowLabels.length, nc = colLabels.length;
    var width = Math.max(160, (pane.clientWidth || fig.body.clientWidth || 600) - 120);
    var size = Math.max(4, Math.min(28, Math.floor(width / Math.max(nc, 1))));
    grid.textContent = "";
    grid.style.setProperty("--attndocs-cell", size + "px");
    var top = el("div", { class: "attndocs-compare-cols" }, colLabels.map(labelEl));
    var left = el("div", { class: "attndocs-compare-rows" }, rowLabels.map(labelEl));
    var canvas = fig.canvas(nc * size, nr * size);
    canvas.classList.add("attndocs-compare-canvas");
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", title.textContent + "; blue: A higher, orange: B higher");
    var ctx = canvas.ctx;
    for (var i = 0; i < nr; i++) {
      for (var j = 0; j < nc; j++) {
        var v = values[i * nc + j];
        if (v) {
          ctx.fillStyle = divergingColor(v[0] - v[1], maxAbs, colors);
          ctx.fillRect(j * size, i * size, size, size);
        } else {
          hatch(ctx, j * size, i * size, size, colors);
        }
      }
    }
    ctx.strokeStyle = colors.fg;
    ctx.lineWidth = 2;
    rowLabels.forEach(function (label, i) {
      if (/attndocs-compare-picked/.test(label.cls)) ctx.strokeRect(1, i * size + 1, nc * size - 2, size - 2);
    });
    colLabels.forEach(function (label, j) {
      if (/attndocs-compare-picked/.test(label.cls)) ctx.strokeRect(j * size + 1, 1, size - 2, nr * size - 2);
    });
    grid.appendChild(el("div", { class: "attndocs-compare-corner" }));
    grid.appendChild(top);
    grid.appendChild(left);
    grid.appendChild(canvas);
    canvas.addEventListener("mousemove", function (e) {
      var box = canvas.getBoundingClientRect();
      var j = Math.floor((e.clientX - box.left) / size), i = Math.floor((e.clientY - box.top) / size);
      if (i < 0 || j < 0 || i >= nr || j >= nc) { tip.hidden = true; return; }
      tip.textContent = describe(i, j, values[i * nc + j]);
      tip.hidden = false;
    });
    canvas.addEventListener("mouseleave", function () { tip.hidden = true; });
    colourKey(maxAbs, colors, values.indexOf(null) >= 0 ? hatchText : "");
  }

  function colourKey(maxAbs, colors, hatchText) {
    key.textContent = "";
    var bar = el("span", { class: "attndocs-compare-ramp" });
    bar.style.background = "linear-gradient(to right, " + colors.neg + ", " + colors.bg + ", " + colors.pos + ")";
    key.appendChild(el("span", { class: "attndocs-compare-end", text: "B higher \u2212" + maxAbs.toFixed(3) }));
    key.appendChild(bar);
    key.appendChild(el("span", { class: "attndocs-compare-end", text: "+" + maxAbs.toFixed(3) + " A higher" }));
    if (hatchText) key.appendChild(el("span", { class: "attndocs-compare-hatch-key", text: hatchText }));
  }

  function labelEl(label) {
    return el("span", { class: "attndocs-compare-tok" + (label.cls ? " " + label.cls : ""), title: label.text, text: label.text });
  }

  fig.onTheme(function () { draw(); });
  place();
  return {
    update: function (changes) {
      if (changes.difference !== undefined) {
        show = changes.difference === false ? "both" : "diff";
        toggle.set(show);
        place();
        return;
      }
      if (!pane.hidden && (changes.section !== undefined || changes.layer !== undefined || changes.heads !== undefined ||
          changes.mode !== undefined || changes.stat !== undefined || changes.token !== undefined)) draw();
    },
  };
}

// A token of the merged axis: aligned ones once, A's own and B's own marked.
function axisLabel(m, aTokens, bTokens) {
  var kit = attndocs.viewKit;
  if (m[0] >= 0 && m[1] >= 0) return { text: kit.label(aTokens[m[0]]), cls: "" };
  if (m[0] >= 0) return { text: kit.label(aTokens[m[0]]) + " (A)", cls: "attndocs-compare-only" };
  return { text: kit.label(bTokens[m[1]]) + " (B)", cls: "attndocs-compare-only" };
}

function divergingColor(value, maxAbs, colors) {
  if (!(maxAbs > 0) || !isFinite(value)) return colors.bg;
  var t = Math.min(1, Math.abs(value) / maxAbs);
  return util.mix(colors.bg, value >= 0 ? colors.pos : colors.neg, t);
}

function hatch(ctx, x, y, size, colors) {
  ctx.fillStyle = colors.bg;
  ctx.fillRect(x, y, size, size);
  ctx.save();
  ctx.beginPath();
  ctx.rect(x, y, size, size);
  ctx.clip();
  ctx.strokeStyle = colors.grid;
  ctx.lineWidth = 1;
  for (var k = -size; k < size; k += 4) {
    ctx.moveTo(x + k, y + size);
    ctx.lineTo(x + k + size, y);
  }
  ctx.stroke();
  ctx.restore();
}

function signed(x) {
  return (x >= 0 ? "+" : "\u2212") + Math.abs(x).toFixed(3);
}

attndocs.compare = { start: start, mapToken: mapToken };
