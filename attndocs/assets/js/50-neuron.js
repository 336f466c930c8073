// attndocs neuron view: how one query token's attention is computed from q, k and the bias.
//
// Also defines attndocs.viewKit, the small drawing and control helpers the neuron, matrix
// and summary views share (60-matrix.js and 70-summary.js load after this file).

var util = attndocs.util;
var el = util.el;
var kit = attndocs.viewKit = {};

kit.SECTION_LABELS = { encoder: "Encoder", decoder: "Decoder", cross: "Cross" };

kit.sectionLabel = function (name) {
  return util.own(kit.SECTION_LABELS, name) || name;
};

// Number of leading key columns query row i may attend to in a causal section (the same
// rule as payload.kept_columns, which also covers rows != cols).
kit.keptColumns = function (rows, cols, i) {
  var k = i + 1 + cols - rows;
  return k < 0 ? 0 : k > cols ? cols : k;
};

// The one head a single-head view shows: the first selected head, else the first shipped.
kit.headOf = function (fig) {
  var info = fig.header.sections[fig.state.section];
  var heads = fig.state.heads || [];
  for (var i = 0; i < heads.length; i++) if (info.heads.indexOf(heads[i]) >= 0) return heads[i];
  return info.heads[0];
};

// A token as a label: empty or blank tokens would be invisible, so they get a visible mark.
kit.label = function (text) {
  text = text == null ? "" : String(text);
  return /^\s*$/.test(text) ? (text.length ? "\u2423".repeat(Math.min(text.length, 3)) : "\u2205") : text;
};

kit.sectionControl = function (fig, names, onChange) {
  if (names.length < 2) return null;
  return util.buttons("Section", names.map(function (n) { return { value: n, label: kit.sectionLabel(n) }; }),
    fig.state.section, onChange);
};

kit.layerControl = function (fig, onChange) {
  var info = fig.header.sections[fig.state.section];
  return util.select("Layer", info.layers.map(function (l) { return { value: l, label: String(l) }; }),
    fig.state.layer, onChange);
};

kit.headControl = function (fig, onChange) {
  var info = fig.header.sections[fig.state.section];
  return util.select("Head", info.heads.map(function (h) { return { value: h, label: String(h) }; }),
    kit.headOf(fig), onChange);
};

// Colour ramps as functions returning [r, g, b]; painting pixels directly is much faster
// than building a CSS colour string per cell at 512 tokens.
function rgb(css) {
  var c = util.parseColor(css);
  return [c[0], c[1], c[2]];
}
kit.rgb = rgb;

kit.ramp = function (fromCss, toCss) {
  var a = rgb(fromCss), b = rgb(toCss);
  return function (t) {
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
  };
};

// colors.neg .. bg .. colors.pos; the square root keeps small magnitudes visible.
kit.diverging = function (colors) {
  var up = kit.ramp(colors.bg, colors.pos), down = kit.ramp(colors.bg, colors.neg);
  return function (value, maxAbs) {
    if (!(maxAbs > 0) || !isFinite(value)) return up(0);
    var t = Math.sqrt(Math.min(1, Math.abs(value) / maxAbs));
    return value >= 0 ? up(t) : down(t);
  };
};

kit.css = function (c) {
  return "rgb(" + Math.round(c[0]) + "," + Math.round(c[1]) + "," + Math.round(c[2]) + ")";
};

// An off-screen canvas of width x height pixels, one pixel per value; paint(x, y) returns
// [r, g, b] or null (transparent). Drawn scaled up with kit.blit.
kit.image = function (width, height, paint) {
  var canvas = document.createElement("canvas");
  canvas.width = Math.max(1, width);
  canvas.height = Math.max(1, height);
  var ctx = canvas.getContext("2d");
  var img = ctx.createImageData(canvas.width, canvas.height), px = img.data;
  for (var y = 0; y < height; y++) {
    for (var x = 0; x < width; x++) {
      var c = paint(x, y), o = (y * width + x) * 4;
      if (!c) continue;
      px[o] = c[0]; px[o + 1] = c[1]; px[o + 2] = c[2]; px[o + 3] = c.length > 3 ? c[3] : 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
};

kit.blit = function (ctx, image, x, y, w, h) {
  ctx.save();
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(image, x, y, w, h);
  ctx.restore();
};

kit.maxAbs = function (values) {
  var m = 0;
  for (var i = 0; i < values.length; i++) {
    var a = Math.abs(values[i]);
    if (a > m && isFinite(a)) m = a;
  }
  return m;
};

// Replace a control in place (layer and head lists change with the section).
kit.swap = function (oldNode, newNode) {
  if (oldNode && oldNode.parentNode) oldNode.parentNode.replaceChild(newNode, oldNode);
  return newNode;
};

// The class that hides a drawing whose data is still loading (the figure's loading state
// says what is coming): a stale picture under a new label would be a wrong one.
kit.WAITING = "attndocs-waiting";

// What an export holds while the part it would draw is still loading.
kit.pendingSVG = function (fig, text) {
  var colors = fig.colors(), svg = util.svgDoc(Math.max(240, text.length * 7 + 16), 40, colors);
  svg.add("text", { x: 8, y: 24, fill: colors.muted }, text);
  return svg.toString();
};

kit.note = function (title, message) {
  return el("div", { class: "attndocs-note", role: "note" }, [el("strong", { text: title }), " ", message]);
};

// -- the neuron view ----------------------------------------------------------------------
var ROW = 20;      // px per key row; the CSS grid uses the same height
var GAP = 12;      // px between the k block and the q x k block

function neuronView(fig) {
  var header = fig.header;
  var names = header.sectionOrder.filter(function (n) { return header.sections[n].hasQK; });
  if (!header.neuron || !header.neuron.available || !names.length) {
    var reason = (header.neuron && header.neuron.reason) || "this figure carries no query/key vectors";
    fig.body.appendChild(el("div", { class: "attndocs-note attndocs-neuron-unavailable", role: "note" }, [
      el("strong", { text: "Neuron view unavailable: " }), String(reason),
    ]));
    return { update: function () {} };
  }
  // A link may only open a section this view can show (one with query/key vectors).
  fig.defineState({}, { section: names });
  if (names.indexOf(fig.state.section) < 0) fig.setState({ section: names[0], token: null }, true);

  var pinned = null;          // the query shown while nothing is hovered (last locked one)
  var layout = null;          // DOM built for the current section
  var sectionCtl = kit.sectionControl(fig, names, function (name) {
    pinned = null;
    fig.setState({ section: name, token: null, locked: false });
  });
  var layerCtl = kit.layerControl(fig, function (l) { fig.setState({ layer: l }); });
  var headCtl = kit.headControl(fig, function (h) { fig.setState({ heads: [h] }); });
  // The head view's sentence filter (30-head.js): which queries are offered, which keys shown.
  var filterCtl = attndocs.components.filterControl(fig);
  if (sectionCtl) fig.controls.appendChild(sectionCtl);
  fig.controls.appendChild(layerCtl);
  fig.controls.appendChild(headCtl);
  fig.controls.appendChild(filterCtl);
  function showFilter() { filterCtl.hidden = !attndocs._hasPair(fig, fig.state.section); }
  showFilter();

  var info = el("p", { class: "attndocs-ninfo" });
  var root = el("div", { class: "attndocs-neuron" });
  fig.body.appendChild(info);
  fig.body.appendChild(root);
  var tip = attndocs.explain.tip(fig), key = attndocs.explain.key(fig, fig.body);
  fig.body.insertBefore(key.el, root);
  // What the colours and s mean, under the line that says what is shown.
  function showKey(c) {
    var colors = fig.colors(), d = c.d, root1 = Math.abs(c.scale * Math.sqrt(d) - 1) < 1e-3;
    // Short, so that it takes one or two lines in a narrow column.
    key.set({ label: "q, k, q \u00d7 k, scores:", items: [
      { color: colors.pos, text: "positive" },
      { color: colors.neg, text: "negative" },
      { color: null, text: "s = " + util.fmt(c.scale) + (root1 ? " = 1/\u221a" + d : "") + " scales q\u00b7k" },
      { color: colors.accent, text: "softmax weight" },
    ] });
  }

  function section() { return header.sections[fig.state.section]; }

  // The query rows and key columns the sentence filter keeps, as index lists; a filter that
  // would keep none of one side (a pair without a sentence B) keeps all of it.
  function shown() {
    var m = attndocs._pairMasks(fig, fig.state.section, fig.state.filter);
    function kept(mask) {
      var out = [];
      for (var i = 0; i < mask.length; i++) if (mask[i]) out.push(i);
      if (!out.length) for (i = 0; i < mask.length; i++) out.push(i);
      return out;
    }
    return { key: m.key, active: m.active, rows: kept(m.rows), cols: kept(m.cols), colMask: m.cols };
  }

  function defaultQuery(rowList) {
    // In a decoder the last token sees the whole prefix; the first sees only itself.
    return section().causal ? rowList[rowList.length - 1] : rowList[0];
  }

  function currentQuery() {
    var t = fig.state.token, rowList = shown().rows;
    if (t && t.side === "q" && rowList.indexOf(t.index) >= 0) return t.index;
    return pinned != null && rowList.indexOf(pinned) >= 0 ? pinned : defaultQuery(rowList);
  }

  // Up to 256 px per vector block, less in a narrow column (documentation themes often
  // give content ~700 px); the token and number columns take about 360 px (+70 for each of the
  // bias and the capped score).
  function vectorCell(d, extraColumns) {
    var avail = (fig.body.clientWidth || 900) - 360 - 70 * extraColumns;
    var cell = Math.min(256, avail / 2) / d;
    // Whole pixels where there is room; in a phone's column, down to half a pixel a dimension (the
    // vectors are drawn scaled), so the numbers keep their room and the grid its width.
    return Math.max(0.5, Math.min(8, cell >= 1 ? Math.floor(cell) : Math.floor(cell * 4) / 4));
  }

  function build() {
    var name = fig.state.section, s = section(), view = shown();
    var rowList = view.rows, colList = view.cols, cols = colList.length;
    var qTokens = fig.tokens(s.rows), kTokens = fig.tokens(s.cols);
    var qSpecial = header.sides[s.rows].special, kSpecial = header.sides[s.cols].special;
    var probe = fig.qk(name, fig.state.layer, kit.headOf(fig), currentQuery());
    var d = probe.d, hasBias = !!probe.bias, hasCap = !!probe.softcap;
    var cw = vectorCell(d, hasBias + hasCap);
    var blockW = d * cw, width = 2 * blockW + GAP;

    root.textContent = "";
    var queries = el("div", { class: "attndocs-nq", role: "listbox", "aria-label": "Query tokens: pick the token whose attention is computed" });
    queries.appendChild(el("div", { class: "attndocs-nhead", text: "query" }));
    // An empty cell beside the q row, so the query list starts level with the keys (query i sits
    // level with key i unless a sentence filter shows different queries and keys).
    queries.appendChild(el("div", { class: "attndocs-nqspacer", "aria-hidden": "true" }));
    var qEls = [];
    for (var n = 0; n < rowList.length; n++) {
      var i = rowList[n], t = fig.tokenEl("q", i, kit.label(qTokens[i]), qSpecial[i]);
      t.setAttribute("role", "option");
      t.setAttribute("aria-selected", "false");
      qEls.push(t);
      queries.appendChild(t);
    }

    // Number columns are never narrower than their numbers and header ("−11.604", "softmax"):
    // the vectors shrink first (vectorCell), and what still does not fit scrolls, with a cue.
    var columns = "minmax(3em, max-content) " + width + "px minmax(max-content, 6em)" + (hasCap ? " minmax(max-content, 6em)" : "") +
      (hasBias ? " minmax(max-content, 5em)" : "") + " minmax(max-content, 8em)";
    var grid = el("div", { class: "attndocs-ngrid", style: "grid-template-columns:" + columns + ";grid-auto-rows:" + ROW + "px" });
    // Grid columns of the optional number columns: the capped score (Gemma 2), then the bias.
    var capCol = hasCap ? 4 : 0, biasCol = hasBias ? 4 + hasCap : 0, probCol = 4 + hasCap + hasBias;
    var heads = [
      { text: "key", title: "key tokens" },
      { text: "k  \u2502  q \u00d7 k", title: "left: each key vector k; right: q \u00d7 k elementwise" },
      { text: "q\u00b7k \u00d7 s", title: "scaled dot product: s \u00b7 q\u00b7k" + (hasCap ? ", before the model caps it" : "") },
    ];
    if (hasCap) {
      heads.push({ text: "capped", title: "the score the model used: c \u00b7 tanh(q\u00b7k \u00d7 s / c), soft-capped at c = " + plainNumber(probe.softcap) });
    }
    if (hasBias) heads.push({ text: "bias", title: "additive position bias of this model family" });
    heads.push({
      text: "softmax", title: "attention weight: softmax of " + (hasCap ? "the capped score" : "q\u00b7k \u00d7 s") +
        (hasBias ? " + bias" : "") + " over the keys this query may see, as the model computed it",
    });
    var biasHead = null;
    heads.forEach(function (head, c) {
      var cell = el("div", { class: "attndocs-nhead", text: head.text, title: head.title, style: "grid-row:1;grid-column:" + (c + 1) });
      if (c + 1 === biasCol) biasHead = cell;  // its title names this head's ALiBi slope (fill)
      if (c === 1) {
        // One header over each of the two blocks the column holds.
        cell.textContent = "";
        cell.classList.add("attndocs-nhead-blocks");
        cell.appendChild(el("span", { text: "k", title: "each key vector k", style: "width:" + (blockW + GAP) + "px" }));
        cell.appendChild(el("span", { text: "q \u00d7 k", title: "q \u00d7 k elementwise: its sum is q\u00b7k" }));
      }
      grid.appendChild(cell);
    });
    var qLabel = el("div", { class: "attndocs-nqlabel", style: "grid-row:2;grid-column:1" });
    var qCanvas = fig.canvas(width, ROW);
    qCanvas.classList.add("attndocs-nqvec");
    qCanvas.style.gridRow = "2";
    qCanvas.style.gridColumn = "2";
    grid.appendChild(qLabel);
    grid.appendChild(qCanvas);
    var canvas = fig.canvas(width, Math.max(1, cols) * ROW);
    canvas.classList.add("attndocs-nvec");
    canvas.style.gridRow = "3 / span " + Math.max(1, cols);
    canvas.style.gridColumn = "2";
    grid.appendChild(canvas);

    var keyEls = [], scoreEls = [], capEls = [], biasEls = [], probEls = [], barEls = [];
    for (var row = 0; row < cols; row++) {
      var j = colList[row], r = "grid-row:" + (row + 3) + ";grid-column:";
      var k = fig.tokenEl("k", j, kit.label(kTokens[j]), kSpecial[j]);
      k.style.cssText = r + "1";
      keyEls.push(k);
      grid.appendChild(k);
      var sc = el("span", { class: "attndocs-nnum attndocs-nscore", style: r + "3" });
      scoreEls.push(sc);
      grid.appendChild(sc);
      if (hasCap) {
        var cp = el("span", { class: "attndocs-nnum attndocs-ncapped", style: r + capCol });
        capEls.push(cp);
        grid.appendChild(cp);
      }
      if (hasBias) {
        var b = el("span", { class: "attndocs-nnum attndocs-nbias", style: r + biasCol });
        biasEls.push(b);
        grid.appendChild(b);
      }
      // The bar sits in its own track beside the number, never over it.
      var bar = el("span", { class: "attndocs-nbar" });
      var p = el("span", { class: "attndocs-nnum attndocs-nprob", style: r + probCol }, [
        el("span", { class: "attndocs-nval" }), el("span", { class: "attndocs-ntrack", "aria-hidden": "true" }, [bar]),
      ]);
      barEls.push(bar);
      probEls.push(p);
      grid.appendChild(p);
    }
    root.appendChild(queries);
    root.appendChild(grid);

    queries.addEventListener("mouseover", function (e) {
      var target = e.target.closest ? e.target.closest(".attndocs-token") : null;
      if (!target || fig.state.locked) return;
      fig.setState({ token: { side: "q", index: +target.getAttribute("data-index") } });
    });
    queries.addEventListener("mouseleave", function () {
      if (!fig.state.locked && fig.state.token) fig.setState({ token: fig.restingToken() });
    });
    queries.addEventListener("click", function (e) {
      var target = e.target.closest ? e.target.closest(".attndocs-token") : null;
      if (target) lock(+target.getAttribute("data-index"));
    });
    util.roving(queries, ".attndocs-token", {
      vertical: true,
      onMove: function (node) { fig.setState({ token: { side: "q", index: +node.getAttribute("data-index") } }); },
      onEnter: function (node) { lock(+node.getAttribute("data-index")); },
    });
    // Hovering a key marks its row (the token state is shared with the other views).
    grid.addEventListener("mouseover", function (e) {
      var target = e.target.closest ? e.target.closest(".attndocs-token") : null;
      keyEls.forEach(function (node) { node.classList.toggle("attndocs-hl", node === target); });
    });
    grid.addEventListener("mouseleave", function () {
      keyEls.forEach(function (node) { node.classList.remove("attndocs-hl"); });
    });
    // A vector cell's value by the pointer: k (left block), q x k (right block), q (top row).
    function vectorTip(e, isQuery) {
      var c = layout.last, box = e.currentTarget.getBoundingClientRect();
      var x = e.clientX - box.left, y = e.clientY - box.top;
      var right = x >= blockW + GAP, t = Math.floor((right ? x - blockW - GAP : x) / cw), at = Math.floor(y / ROW);
      if (!c || t < 0 || t >= d || (isQuery && right) || (!isQuery && (at < 0 || at >= cols))) { tip.hide(); return; }
      var jj = colList[at];
      var text = isQuery ? "q[" + t + "] = " + util.fmt(c.q[t]) :
        (right ? "q \u00d7 k" : "k") + "[" + t + "] of \u201c" + kit.label(kTokens[jj]) + "\u201d = " +
        util.fmt(right ? c.prod[jj * d + t] : c.k[jj * d + t]);
      tip.show(text, e.clientX, e.clientY);
    }
    canvas.addEventListener("mousemove", function (e) { vectorTip(e, false); });
    qCanvas.addEventListener("mousemove", function (e) { vectorTip(e, true); });
    canvas.addEventListener("mouseleave", function () { tip.hide(); });
    qCanvas.addEventListener("mouseleave", function () { tip.hide(); });

    layout = {
      name: name, key: view.key, rows: s.shape[0], rowList: rowList, colList: colList, colMask: view.colMask, active: view.active,
      cols: cols, d: d, cw: cw, blockW: blockW, width: width, hasBias: hasBias, hasCap: hasCap, biasHead: biasHead,
      qEls: qEls, keyEls: keyEls, scoreEls: scoreEls, capEls: capEls, biasEls: biasEls, probEls: probEls, barEls: barEls,
      canvas: canvas, qCanvas: qCanvas, qLabel: qLabel, queries: queries,
    };
  }

  function lock(i) {
    var t = fig.state.token;
    var same = fig.state.locked && t && t.side === "q" && t.index === i;
    pinned = same ? pinned : i;
    fig.setState(same ? { locked: false } : { token: { side: "q", index: i }, locked: true });
  }

  // q.k, the bias and the softmax for query i. q and k ship as the model computed them
  // (float32), so the scores are the model's own, and the softmax column is the softmax of
  // exactly the scores (plus bias and mask) printed beside it: the numbers agree with each
  // other. Extraction checked these vectors against the model's attention (within 1e-4); the
  // page ships no attention for this view: its weights are these.
  function compute() {
    var s = section(), v = fig.qk(fig.state.section, fig.state.layer, kit.headOf(fig), currentQuery());
    var rows = s.shape[0], cols = s.shape[1], d = v.d;
    var i = Math.min(currentQuery(), rows - 1);
    var kept = s.causal ? kit.keptColumns(rows, cols, i) : cols;
    // The layer's window (payload.window_hidden): causal, the last `width` keys up to the query;
    // bidirectional (ModernBERT's local layers), the keys within `width` either side.
    var width = v.window, pos = i + cols - rows;
    var q = v.q.subarray(i * d, (i + 1) * d);
    var prod = new Float32Array(cols * d), score = new Float64Array(cols), bias = new Float64Array(cols);
    var capped = v.softcap ? new Float64Array(cols) : score;
    var masked = new Uint8Array(cols), why = [], prob = new Float64Array(cols);
    var top = -Infinity;
    for (var j = 0; j < cols; j++) {
      var dot = 0;
      for (var t = 0; t < d; t++) {
        var x = q[t] * v.k[j * d + t];
        prod[j * d + t] = x;
        dot += x;
      }
      score[j] = v.scale * dot;
      // Gemma 2 caps the score before it adds the mask: c * tanh(score / c).
      if (v.softcap) capped[j] = v.softcap * Math.tanh(score[j] / v.softcap);
      bias[j] = v.bias ? v.bias[i * cols + j] : 0;
      var logit = capped[j] + bias[j];
      why[j] = j >= kept ? "causal" : width != null && (s.causal ? pos - j >= width : Math.abs(pos - j) > width) ? "window" :
        !isFinite(logit) ? "bias" : null;
      masked[j] = why[j] ? 1 : 0;
      if (!masked[j] && logit > top) top = logit;
    }
    var total = 0;
    for (j = 0; j < cols; j++) {
      prob[j] = masked[j] ? 0 : Math.exp(capped[j] + bias[j] - top);
      total += prob[j];
    }
    for (j = 0; j < cols; j++) prob[j] = total > 0 ? prob[j] / total : 0;
    return {
      i: i, q: q, k: v.k, d: d, prod: prod, score: score, capped: v.softcap ? capped : null, bias: v.bias ? bias : null,
      masked: masked, why: why, prob: prob, scale: v.scale, softcap: v.softcap, window: width, slope: v.slope,
    };
  }

  // What hides keys from this query and what the bias is, for the selected layer and head, in words.
  function maskText(s, c) {
    var out = [], windowed = !!s.windows;
    if (s.causal && c.window != null) out.push("causal + sliding window of " + c.window + " tokens: later keys and keys " + c.window + " or more back are masked");
    else if (s.causal) out.push("causal: later keys are masked" + (windowed ? " (a full layer: no sliding window)" : ""));
    else if (c.window != null) out.push("bidirectional local window of " + c.window + ": keys more than " + c.window + " tokens away are masked");
    else if (windowed) out.push("global layer: every key is seen");
    if (c.slope != null) out.push("ALiBi bias: \u2212" + plainNumber(c.slope) + " \u00d7 distance (this head's slope)");
    if (c.softcap) out.push("scores soft-capped: c \u00b7 tanh(q\u00b7k \u00d7 s / c), c = " + plainNumber(c.softcap));
    return out.length ? " \u00b7 " + out.join(" \u00b7 ") : "";
  }

  // Why a key is masked, for its softmax cell's tooltip.
  function maskedTitle(c, j) {
    if (c.why[j] === "window") {
      return section().causal ? "masked: " + c.window + " or more tokens back, outside this layer's sliding window of " + c.window + " tokens" :
        "masked: more than " + c.window + " tokens away, outside this layer's local window";
    }
    if (c.why[j] === "bias") return "masked: the bias hides this key (\u2212\u221e)";
    return "masked: this key comes after the query (causal attention)";
  }

  // A model's constant as its config writes it (a cap of 50, not 50.0); ALiBi slopes run from 1/2 down
  // to 1/256 and below, so four significant digits rather than three decimals.
  function plainNumber(x) {
    return String(+x.toPrecision(4)).replace("-", "\u2212");
  }

  function biasTitle(c) {
    if (c.slope != null) return "ALiBi: \u2212slope \u00d7 distance from the query back to the key; slope " + plainNumber(c.slope) + " for this head";
    return "additive position bias of this model family (\u2212\u221e: a key it hides)";
  }

  // Scores and biases to three decimals, whatever their size: the weights beside them are
  // their softmax to three decimals, which the printed scores then reproduce (3 significant
  // digits would print 35.5 for 35.529, and move a weight by up to 5%).
  function decimals3(x) {
    return isFinite(x) ? x.toFixed(3).replace("-", "\u2212") : util.fmt(x);
  }

  // A cell colour behind a number, faded until the number keeps 4.5:1 contrast (WCAG AA): a
  // saturated tint at 0.65 over a dark page leaves light text at under 4:1.
  function luminance(c) {
    var f = function (v) { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  }
  function behindText(c, colors) {
    var bg = rgb(colors.bg), text = luminance(rgb(colors.fg)), a = 0.65;
    for (; a > 0.1; a -= 0.05) {
      var cell = luminance([0, 1, 2].map(function (i) { return c[i] * a + bg[i] * (1 - a); }));
      if ((Math.max(text, cell) + 0.05) / (Math.min(text, cell) + 0.05) >= 4.5) break;
    }
    return util.rgba(kit.css(c), Math.round(a * 100) / 100);
  }

  // The softmax is over every key the model saw (the weights are the model's); the filter
  // only chooses which of them are shown, so the shown weights may sum to less than 1.
  function fill() {
    var L = layout, c = compute(), colors = fig.colors(), diverge = kit.diverging(colors);
    var cols = L.cols, d = L.d, grid = rgb(colors.grid), at = L.colList;
    var vecMax = Math.max(kit.maxAbs(c.q), kit.maxAbs(c.k)), prodMax = kit.maxAbs(c.prod);
    var scoreMax = 0, biasMax = 0, capMax = 0;
    for (var j = 0; j < c.score.length; j++) {
      if (c.masked[j]) continue;
      scoreMax = Math.max(scoreMax, Math.abs(c.score[j]));
      if (c.capped) capMax = Math.max(capMax, Math.abs(c.capped[j]));
      if (c.bias) biasMax = Math.max(biasMax, Math.abs(c.bias[j]));
    }
    if (L.biasHead) L.biasHead.setAttribute("title", biasTitle(c));
    var kImg = kit.image(d, cols, function (x, y) {
      var col = diverge(c.k[at[y] * d + x], vecMax);
      return c.masked[at[y]] ? [col[0], col[1], col[2], 70] : col;
    });
    var pImg = kit.image(d, cols, function (x, y) {
      return c.masked[at[y]] ? grid.concat([90]) : diverge(c.prod[at[y] * d + x], prodMax);
    });
    var qImg = kit.image(d, 1, function (x) { return diverge(c.q[x], vecMax); });
    var ctx = L.canvas.ctx;
    ctx.clearRect(0, 0, L.width, cols * ROW);
    kit.blit(ctx, kImg, 0, 0, L.blockW, cols * ROW);
    kit.blit(ctx, pImg, L.blockW + GAP, 0, L.blockW, cols * ROW);
    // Thin separators between key rows keep 512 rows readable.
    ctx.fillStyle = colors.bg;
    for (j = 1; j < cols; j++) {
      ctx.fillRect(0, j * ROW - 1, L.blockW, 1);
      ctx.fillRect(L.blockW + GAP, j * ROW - 1, L.blockW, 1);
    }
    var qctx = L.qCanvas.ctx;
    qctx.clearRect(0, 0, L.width, ROW);
    kit.blit(qctx, qImg, 0, 2, L.blockW, ROW - 4);
    qctx.fillStyle = colors.muted;
    qctx.font = "11px system-ui, sans-serif";
    qctx.textBaseline = "middle";
    qctx.fillText("\u2190 q", L.blockW + 4, ROW / 2);

    var s = section(), qTokens = fig.tokens(s.rows);
    L.qLabel.textContent = "q: " + kit.label(qTokens[c.i]);
    for (var row = 0; row < cols; row++) {
      j = at[row];
      var m = !!c.masked[j];
      L.keyEls[row].classList.toggle("attndocs-masked", m);
      var sc = L.scoreEls[row];
      sc.textContent = m && !isFinite(c.score[j] + (c.bias ? c.bias[j] : 0)) ? "\u2212\u221e" : decimals3(c.score[j]);
      sc.classList.toggle("attndocs-masked", m);
      sc.style.backgroundColor = m ? "" : behindText(diverge(c.score[j], scoreMax), colors);
      if (L.hasCap) {
        var cp = L.capEls[row];
        cp.textContent = m && !isFinite(c.capped[j] + (c.bias ? c.bias[j] : 0)) ? "\u2212\u221e" : decimals3(c.capped[j]);
        cp.classList.toggle("attndocs-masked", m);
        cp.style.backgroundColor = m ? "" : behindText(diverge(c.capped[j], capMax), colors);
      }
      if (L.hasBias) {
        var b = L.biasEls[row];
        b.textContent = decimals3(c.bias[j]);
        b.classList.toggle("attndocs-masked", m);
        b.style.backgroundColor = m ? "" : behindText(diverge(c.bias[j], biasMax), colors);
      }
      var p = L.probEls[row];
      p.classList.toggle("attndocs-masked", m);
      p.firstChild.textContent = m ? "masked" : c.prob[j].toFixed(3);
      p.setAttribute("title", m ? maskedTitle(c, j) :
        "attention weight " + c.prob[j].toFixed(4) + ": the softmax of the scores shown, as the model computed it");
      L.barEls[row].style.width = (m ? 0 : 100 * c.prob[j]).toFixed(1) + "%";
    }
    var token = fig.state.token;
    L.qEls.forEach(function (node) {
      var on = +node.getAttribute("data-index") === c.i;
      node.classList.toggle("attndocs-selected", on);
      node.classList.toggle("attndocs-locked", on && !!fig.state.locked);
      node.setAttribute("aria-selected", String(on));
    });
    if (token && token.side === "k") {
      L.keyEls.forEach(function (node) { node.classList.toggle("attndocs-hl", +node.getAttribute("data-index") === token.index); });
    }
    info.textContent = kit.sectionLabel(fig.state.section) + " \u00b7 layer " + fig.state.layer + " \u00b7 head " +
      kit.headOf(fig) + " \u00b7 query \u201c" + kit.label(qTokens[c.i]) + "\u201d (" + (c.i + 1) + "/" + L.rows + ") \u00b7 s = " +
      util.fmt(c.scale) + maskText(s, c) + filterText(L);
    layout.last = c;
    showKey(c);
  }

  // What the filter keeps, in words: the weights shown are still over every key.
  function filterText(L) {
    if (!L.active) return "";
    var f = fig.state.filter.toUpperCase();
    return " \u00b7 sentence " + f.charAt(0) + " queries, sentence " + f.charAt(1) + " keys (" + L.cols + " of " +
      L.colMask.length + "; the softmax is over all " + L.colMask.length + ")";
  }

  function announceTop() {
    var c = layout.last, kTokens = fig.tokens(section().cols);
    var top = util.topK(Float32Array.from(c.prob), 3, layout.colMask);
    fig.announce("Query " + kit.label(fig.tokens(section().rows)[c.i]) + " attends most to " + top.map(function (t) {
      return kit.label(kTokens[t.index]) + " " + t.value.toFixed(2);
    }).join(", "));
  }

  function hide() {
    root.classList.add(kit.WAITING);
    info.classList.add(kit.WAITING);
  }

  function render() {
    var name = fig.state.section, layer = fig.state.layer, head = kit.headOf(fig);
    // The query row drawn is all that must be here: the first paint ships only that row of the
    // first head's queries, and the rest of them load right after it (a hover seldom waits).
    var need = fig.missing("qk", name, layer, head, currentQuery());
    var rest = fig.missing("qk", name, layer, head);
    if (!need.length && rest.length) fig.load(rest).then(function () { if (layout) render(); }, function () {});
    if (!fig.ready("neuron", need, "Loading layer " + layer + ", head " + head + "\u2026", render, hide)) return false;
    root.classList.remove(kit.WAITING);
    info.classList.remove(kit.WAITING);
    if (!layout || layout.name !== fig.state.section || layout.key !== shown().key) build();
    fill();
    return true;
  }

  function replaceSelectors() {
    layerCtl = kit.swap(layerCtl, kit.layerControl(fig, function (l) { fig.setState({ layer: l }); }));
    headCtl = kit.swap(headCtl, kit.headControl(fig, function (h) { fig.setState({ heads: [h] }); }));
  }

  render();
  fig.onTheme(function () { if (layout) render(); });
  // A new width (a theme's sidebar folding, a phone turned) gives the vectors new cells.
  var lastWidth = fig.body.clientWidth;
  if (typeof ResizeObserver !== "undefined") {
    new ResizeObserver(function () {
      var w = fig.body.clientWidth;
      if (Math.abs(w - lastWidth) <= 4 || !layout) return;
      lastWidth = w;
      if (vectorCell(layout.d, layout.hasBias + layout.hasCap) !== layout.cw) {
        layout = null;
        render();
      }
    }).observe(fig.body);
  }

  return {
    update: function (changes) {
      if ("section" in changes) { replaceSelectors(); showFilter(); }
      if ("filter" in changes) filterCtl.group.set(fig.state.filter);
      if ("section" in changes && sectionCtl) sectionCtl.set(fig.state.section);
      if ("layer" in changes) layerCtl.set(fig.state.layer);
      if ("heads" in changes) headCtl.set(kit.headOf(fig));
      if ("locked" in changes && !fig.state.locked && !fig.state.token) pinned = null;
      var drawn = render();
      if (drawn && fig.state.locked && ("token" in changes || "locked" in changes || "layer" in changes || "heads" in changes || "filter" in changes)) announceTop();
    },
    exportLabel: function () {
      var q = layout && layout.last ? " \u00b7 query \u201c" + kit.label(fig.tokens(section().rows)[layout.last.i]) + "\u201d" : "";
      return (header.sectionOrder.length > 1 ? kit.sectionLabel(fig.state.section) + " \u00b7 " : "") + "layer " +
        fig.state.layer + " \u00b7 head " + kit.headOf(fig) + q;
    },
    toSVG: function () {
      if (!layout || root.classList.contains(kit.WAITING)) return kit.pendingSVG(fig, "Loading layer " + fig.state.layer + "\u2026");
      var L = layout, c = L.last, colors = fig.colors();
      var s = section(), kTokens = fig.tokens(s.cols), qTokens = fig.tokens(s.rows);
      var left = 150, top = 40, numW = 70, ncols = 2 + L.hasCap + L.hasBias, biasX = numW * (1 + L.hasCap);
      var width = left + L.width + 16 + ncols * numW + 10, height = top + (L.cols + 1) * ROW + 10;
      var svg = util.svgDoc(width, height, colors);
      svg.add("text", { x: 8, y: 18, fill: colors.fg }, info.textContent);
      // The column headers, as on screen.
      var hy = top - 6, hx = left + L.width + 16, hAttrs = function (x, anchor) {
        return { x: x, y: hy, fill: colors.muted, "font-weight": "600", "text-anchor": anchor || "start", class: "attndocs-export-header" };
      };
      svg.add("text", hAttrs(left - 8, "end"), "key");
      svg.add("text", hAttrs(left), "k");
      svg.add("text", hAttrs(left + L.blockW + GAP), "q \u00d7 k");
      svg.add("text", hAttrs(hx), "q\u00b7k \u00d7 s");
      if (L.hasCap) svg.add("text", hAttrs(hx + numW), "capped");
      if (L.hasBias) svg.add("text", hAttrs(hx + biasX), "bias");
      svg.add("text", hAttrs(hx + (ncols - 1) * numW), "softmax");
      svg.add("text", { x: left - 8, y: top + ROW * 0.7, fill: colors.fg, "text-anchor": "end" }, "q: " + kit.label(qTokens[c.i]));
      svg.add("image", { x: left, y: top, width: L.width, height: ROW, href: L.qCanvas.toDataURL("image/png"), preserveAspectRatio: "none" });
      svg.add("image", { x: left, y: top + ROW, width: L.width, height: L.cols * ROW, href: L.canvas.toDataURL("image/png"), preserveAspectRatio: "none" });
      for (var row = 0; row < L.cols; row++) {
        var j = L.colList[row], y = top + (row + 1) * ROW + ROW * 0.7;
        var fill = c.masked[j] ? colors.muted : colors.fg;
        svg.add("text", { x: left - 8, y: y, fill: fill, "text-anchor": "end" }, kit.label(kTokens[j]));
        var x = left + L.width + 16;
        svg.add("text", { x: x, y: y, fill: fill }, L.scoreEls[row].textContent);
        if (L.hasCap) svg.add("text", { x: x + numW, y: y, fill: fill }, L.capEls[row].textContent);
        if (L.hasBias) svg.add("text", { x: x + biasX, y: y, fill: fill }, L.biasEls[row].textContent);
        var px = x + (ncols - 1) * numW;
        // The bar beside the number, as on screen.
        if (!c.masked[j]) svg.add("rect", { x: px + 44, y: y - ROW * 0.5, width: Math.max(0.5, 30 * c.prob[j]), height: ROW * 0.5, fill: colors.accent, "fill-opacity": 0.6 });
        svg.add("text", { x: px + 2, y: y, fill: fill }, c.masked[j] ? "masked" : c.prob[j].toFixed(3));
      }
      return svg.toString();
    },
  };
}

attndocs.registerView("neuron", neuronView);
