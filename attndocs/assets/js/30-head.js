// attndocs head view: BertViz-style lines between query and key tokens, one colour per head.
//
// attndocs.components.lines(fig, host, opts) is the reusable drawing (the model view's
// detail panel uses it too). opts:
//   pick()      -> {section, layer, heads} to draw (default: from fig.state)
//   maxHeight   css max-height of the scroll box (default from CSS)
// It returns {el, draw(), relayout(), toSVG(title) -> string, destroy()}.
// It reads fig.state.token / locked / filter and sets them on hover, click and keys.

var util = attndocs.util;
var el = util.el;
var DEQUANT = attndocs.DEQUANT;
var BUCKETS = 16;

// code -> alpha bucket (0 = not drawn) for a given minimum weight: every weight from
// minWeight up is drawn, at least at the faintest step, so a hovered token shows all of its
// weights.
// full: the weight drawn at full opacity (1, or the head's maximum on the "head" scale).
var bucketTables = {};
function bucketTable(minWeight, full) {
  full = full || 1;
  var key = minWeight + "/" + full;
  if (bucketTables[key]) return bucketTables[key];
  var table = new Uint8Array(256);
  for (var c = 1; c < 256; c++) {
    var a = DEQUANT[c];
    table[c] = a < minWeight ? 0 : Math.max(1, Math.min(BUCKETS, Math.ceil((a / full) * BUCKETS)));
  }
  bucketTables[key] = table;
  return table;
}

// code -> alpha bucket for the all-tokens drawing: a line's opacity is its weight, rounded to
// the nearest of BUCKETS steps, as in BertViz, so a weight under half a step (1/32) is not
// drawn. Such lines would be all but invisible, yet in long inputs they are most of the lines
// and most of the drawing time (at 200 tokens a layer has over 15,000 lines from 0.003 up).
// With full < 1 (the "head" scale) a line's opacity is its weight over the head's maximum.
var opacityTables = {};
function weightTable(full) {
  full = full || 1;
  if (opacityTables[full]) return opacityTables[full];
  var table = opacityTables[full] = new Uint8Array(256);
  for (var c = 1; c < 256; c++) table[c] = Math.min(BUCKETS, Math.round((DEQUANT[c] / full) * BUCKETS));
  return table;
}
attndocs._bucketTable = bucketTable;
attndocs._weightTable = weightTable;

// Line geometry by opacity step: out[b] = flat [yQuery, yKey, ...] of the lines of rows
// i0..i1-1 and columns j0..j1-1 whose code maps to bucket b in table, masked rows and columns
// left out. Query i sits at rowY + i * step, key j at colY + j * step. With rowFloor, a row
// left with no line still shows its strongest key at the faintest step: a head that spreads
// its attention evenly over a long input would otherwise look empty.
function bucketLines(codes, cols, i0, i1, j0, j1, masks, table, rowFloor, rowY, colY, step) {
  var out = [];
  for (var b = 0; b <= BUCKETS; b++) out.push([]);
  for (var i = i0; i < i1; i++) {
    if (!masks.rows[i]) continue;
    var base = i * cols, y = rowY + i * step, drawn = false, best = -1, bestCode = 0;
    for (var j = j0; j < j1; j++) {
      if (!masks.cols[j]) continue;
      var code = codes[base + j], bucket = table[code];
      if (bucket) { out[bucket].push(y, colY + j * step); drawn = true; }
      else if (code > bestCode) { bestCode = code; best = j; }
    }
    if (rowFloor && !drawn && best >= 0) out[1].push(y, colY + best * step);
  }
  return out;
}
attndocs._bucketLines = bucketLines;

// bucketLines over a head's top weights (fig.top: the weights from 1/32 up and each row's
// strongest key, which is what the all-tokens drawing shows) instead of its full matrix:
// the same lines, from the part of a large figure that loads first.
function bucketLinesTop(top, i0, i1, masks, table, rowFloor, rowY, colY, step) {
  var out = [];
  for (var b = 0; b <= BUCKETS; b++) out.push([]);
  for (var i = i0; i < i1; i++) {
    if (!masks.rows[i]) continue;
    var y = rowY + i * step, drawn = false, best = -1, bestCode = 0;
    for (var k = top.starts[i]; k < top.starts[i + 1]; k++) {
      var j = top.keys[k];
      if (!masks.cols[j]) continue;
      var code = top.codes[k], bucket = table[code];
      if (bucket) { out[bucket].push(y, colY + j * step); drawn = true; }
      else if (code > bestCode) { bestCode = code; best = j; }
    }
    if (rowFloor && !drawn && best >= 0) out[1].push(y, colY + best * step);
  }
  return out;
}
attndocs._bucketLinesTop = bucketLinesTop;

// Strokes bucketLines' output from x0 to x1, bucket b at opacity b / BUCKETS, in the
// context's current colour and width; lines wholly above top or below bottom are skipped.
function strokeLines(ctx, lines, x0, x1, top, bottom) {
  for (var b = 1; b <= BUCKETS; b++) {
    var s = lines[b];
    if (!s.length) continue;
    ctx.globalAlpha = b / BUCKETS;
    ctx.beginPath();
    for (var k = 0; k < s.length; k += 2) {
      var ya = s[k], yb = s[k + 1];
      if ((ya < top && yb < top) || (ya > bottom && yb > bottom)) continue;
      ctx.moveTo(x0, ya);
      ctx.lineTo(x1, yb);
    }
    ctx.stroke();
  }
  ctx.globalAlpha = 1;
}
attndocs._strokeLines = strokeLines;

// Sentence A/B masks of the rows and columns for a filter ("all", "aa", "bb", "ab", "ba").
function pairMasks(fig, sectionName, filter) {
  var info = fig.section(sectionName);
  var rows = info.shape[0], cols = info.shape[1];
  var rowMask = new Uint8Array(rows).fill(1), colMask = new Uint8Array(cols).fill(1);
  var rowB = fig.header.sides[info.rows].textBStart, colB = fig.header.sides[info.cols].textBStart;
  if (!filter || filter === "all" || rowB == null || colB == null) {
    return { rows: rowMask, cols: colMask, active: false, key: sectionName + "|all" };
  }
  var wantRow = filter.charAt(0), wantCol = filter.charAt(1);
  for (var i = 0; i < rows; i++) rowMask[i] = (i < rowB ? "a" : "b") === wantRow ? 1 : 0;
  for (var j = 0; j < cols; j++) colMask[j] = (j < colB ? "a" : "b") === wantCol ? 1 : 0;
  return { rows: rowMask, cols: colMask, active: true, key: sectionName + "|" + filter };
}
attndocs._pairMasks = pairMasks;

function hasPair(fig, sectionName) {
  var info = fig.section(sectionName);
  return fig.header.sides[info.rows].textBStart != null && fig.header.sides[info.cols].textBStart != null;
}
attndocs._hasPair = hasPair;

// [0,1,2,3,7] -> "0–3, 7"
function ranges(list) {
  var out = [], start = null, prev = null;
  list.concat([Infinity]).forEach(function (x) {
    if (start !== null && x === prev + 1) { prev = x; return; }
    if (start !== null) out.push(start === prev ? String(start) : start + "–" + prev);
    start = prev = x;
  });
  return out.join(", ");
}
attndocs._ranges = ranges;

var SECTION_LABELS = { encoder: "Encoder", decoder: "Decoder", cross: "Cross" };
attndocs._sectionLabel = function (name) { return util.own(SECTION_LABELS, name) || name; };

// Mean attention of the selected heads from one token, for the live region.
function describeToken(fig, pick, token) {
  var info = fig.section(pick.section);
  var rows = info.shape[0], cols = info.shape[1];
  var fromTokens = fig.tokens(token.side === "q" ? info.rows : info.cols);
  var toTokens = fig.tokens(token.side === "q" ? info.cols : info.rows);
  var n = token.side === "q" ? cols : rows;
  var sum = new Float32Array(n);
  var loaded = pick.heads.every(function (h) { return fig.attnQ(pick.section, pick.layer, h); });
  if (!loaded) return null;  // said once the layer has loaded and drawn
  pick.heads.forEach(function (h) {
    var a = fig.attn(pick.section, pick.layer, h);
    for (var x = 0; x < n; x++) sum[x] += token.side === "q" ? a[token.index * cols + x] : a[x * cols + token.index];
  });
  var k = Math.max(1, pick.heads.length);
  var top = util.topK(sum, 3).map(function (t) {
    return "“" + toTokens[t.index] + "” " + util.fmt(t.value / k);
  });
  var verb = token.side === "q" ? " attends most to " : " is attended most by ";
  var heads = pick.heads.length === 1 ? "head " + pick.heads[0] : pick.heads.length + " heads";
  return "Layer " + pick.layer + ", " + heads + ": “" + fromTokens[token.index] + "”" + verb + top.join(", ") + ".";
}
attndocs._describeToken = describeToken;

var linesCount = 0;

attndocs.components.lines = function (fig, host, opts) {
  opts = opts || {};
  var pick = opts.pick || function () {
    return { section: fig.state.section, layer: fig.state.layer, heads: fig.state.heads };
  };
  var scroll = el("div", { class: "attndocs-scroll" });
  if (opts.maxHeight) scroll.style.maxHeight = opts.maxHeight;
  var box = el("div", { class: "attndocs-lines" });
  var canvas = fig.canvas(10, 10);
  var left = el("div", { class: "attndocs-tokcol attndocs-left", role: "group" });
  var right = el("div", { class: "attndocs-tokcol attndocs-right", role: "group" });
  box.appendChild(canvas);
  box.appendChild(left);
  box.appendChild(right);
  scroll.appendChild(box);
  host.appendChild(scroll);
  var explain = attndocs.explain, tip = explain.tip(fig);
  var key = explain.key(fig, host);

  var slot = "lines" + linesCount++;  // this drawing's loading requests (fig.ready)
  var geom = null;          // layout of the current section
  var builtFor = null;      // section whose tokens are in the columns
  var leftNodes = [], rightNodes = [];

  function buildTokens() {
    var p = pick();
    if (builtFor === p.section) return;
    builtFor = p.section;
    var info = fig.section(p.section);
    var rowSide = fig.header.sides[info.rows], colSide = fig.header.sides[info.cols];
    left.textContent = "";
    right.textContent = "";
    left.setAttribute("aria-label", "Query tokens (" + attndocs._sectionLabel(info.rows) + ")");
    right.setAttribute("aria-label", "Key tokens (" + attndocs._sectionLabel(info.cols) + ")");
    leftNodes = rowSide.display.map(function (text, i) {
      var node = fig.tokenEl("q", i, text, rowSide.special[i]);
      left.appendChild(node);
      return node;
    });
    rightNodes = colSide.display.map(function (text, j) {
      var node = fig.tokenEl("k", j, text, colSide.special[j]);
      right.appendChild(node);
      return node;
    });
    // Both columns are one Tab stop; left and right arrows cross between them.
    if (leftNodes.length) leftNodes[0].tabIndex = 0;
    else if (rightNodes.length) rightNodes[0].tabIndex = 0;
    relayout();
  }

  function relayout() {
    var info = fig.section(pick().section);
    var rows = info.shape[0], cols = info.shape[1];
    var rowH = rows > 120 || cols > 120 ? 15 : 18;
    box.style.setProperty("--attndocs-row", rowH + "px");
    var leftW = Math.ceil(left.getBoundingClientRect().width) || 60;
    var rightW = Math.ceil(right.getBoundingClientRect().width) || 60;
    // The drawing takes the width it is given (a narrow one scrolls, with a cue).
    var width = Math.max(leftW + rightW + 120, Math.floor(scroll.clientWidth || host.clientWidth || 480));
    var height = Math.max(rows, cols) * rowH;
    box.style.width = width + "px";
    box.style.height = height + "px";
    // Columns are centred vertically when one side is shorter (cross attention).
    var topL = ((Math.max(rows, cols) - rows) * rowH) / 2, topR = ((Math.max(rows, cols) - cols) * rowH) / 2;
    left.style.top = topL + "px";
    right.style.top = topR + "px";
    // The canvas covers only the visible band of the scroll box (it is sticky): drawing cost
    // follows what the reader sees, not the input length, and 512 tokens need no huge canvas.
    var band = Math.min(height, scroll.clientHeight || height);
    canvas.resize(width, band);
    marked = null;
    geom = {
      width: width, height: height, band: band, rowH: rowH, leftW: leftW, rightW: rightW, topL: topL, topR: topR,
      x0: leftW + 6, x1: width - rightW - 6, rows: rows, cols: cols,
    };
    draw();
  }

  function currentToken() {
    var t = fig.state.token;
    if (!t) return null;
    var n = t.side === "q" ? geom.rows : geom.cols;
    return t.index < n ? t : null;
  }

  // The weight head h draws at full opacity: 1 on the fixed scale, its maximum on "head".
  var maxima = new WeakMap();
  function fullOf(p, h) {
    if (explain.scale(fig) !== "head") return 1;
    var codes = fig.attnQ(p.section, p.layer, h), top = codes ? null : fig.top(p.section, p.layer, h);
    var source = codes || (top && top.codes);
    if (!source) return 1;
    if (!maxima.has(source)) maxima.set(source, DEQUANT[explain.maxCode(source)]);
    return maxima.get(source) || 1;
  }

  function showKey(p) {
    var colors = fig.colors(), head = explain.scale(fig) === "head";
    var one = head && p.heads.length === 1;
    key.set({
      label: head ? (one ? "line opacity: weight, to this head’s maximum" : "line opacity: weight ÷ its head’s maximum") :
        "line opacity: attention weight",
      lo: 0, hi: one ? fullOf(p, p.heads[0]) : 1, from: colors.bg, to: colors.fg,
    });
  }

  // Line geometry of one head by opacity step (see bucketLines).
  function segments(p, h, token, masks) {
    var rows = geom.rows, cols = geom.cols, rowH = geom.rowH, full = fullOf(p, h);
    // A hovered token shows all of its weights; the all-tokens drawing shows each line at
    // its weight's opacity (see weightTable).
    var table = token ? bucketTable(0.001, full) : weightTable(full);
    var i0 = 0, i1 = rows, j0 = 0, j1 = cols;
    if (token && token.side === "q") { i0 = token.index; i1 = token.index + 1; }
    if (token && token.side === "k") { j0 = token.index; j1 = token.index + 1; }
    var codes = fig.attnQ(p.section, p.layer, h), rowY = geom.topL + rowH / 2, colY = geom.topR + rowH / 2;
    if (codes) return bucketLines(codes, cols, i0, i1, j0, j1, masks, table, !token, rowY, colY, rowH);
    var top = token ? null : fig.top(p.section, p.layer, h);
    if (top) return bucketLinesTop(top, i0, i1, masks, table, true, rowY, colY, rowH);
    return bucketLines(new Uint8Array(0), cols, 0, 0, 0, 0, masks, table, false, 0, 0, 0);  // not loaded: no lines
  }

  // Chunks the current drawing still needs. The all-tokens drawing of a large figure's
  // first layer can come from its top weights; a hovered token needs every weight.
  function needed(p, token) {
    var need = fig.missing("attn", p.section, p.layer, p.heads);
    if (!need.length || token) return need;
    var tops = p.heads.every(function (h) { return fig.ships("top", p.section, p.layer, h); });
    return tops ? fig.missing("top", p.section, p.layer, p.heads) : need;
  }

  // What the reader is about to ask for (the pointer or focus came into the drawing): the
  // whole layer, loaded quietly so that hovering a token shows its lines at once.
  function prefetch() {
    if (!geom) return;
    var p = pick(), need = fig.missing("attn", p.section, p.layer, p.heads);
    if (need.length) fig.load(need).catch(function () {});
  }

  // Lines of one device pixel or less take the rasteriser's fast hairline path; wider
  // strokes cost ~10x more, so they are kept for a hovered token in small drawings.
  function lineWidth(token) {
    return token && geom.rows <= 60 && geom.cols <= 60 ? 2 : 1;
  }

  function drawBoxes(ctx, p, token, masks) {
    // Behind the tokens on the other side: one slice per head, opacity = weight.
    var heads = p.heads, nh = heads.length;
    if (!nh) return;
    var other = token.side === "q" ? "k" : "q";
    var n = other === "k" ? geom.cols : geom.rows;
    var x = other === "k" ? geom.width - geom.rightW : 0;
    var w = other === "k" ? geom.rightW : geom.leftW;
    var top = other === "k" ? geom.topR : geom.topL;
    var slice = w / nh;
    heads.forEach(function (h, k) {
      var a = fig.attn(p.section, p.layer, h), full = fullOf(p, h);
      ctx.fillStyle = fig.headColor(h);
      for (var t = 0; t < n; t++) {
        if (!(other === "k" ? masks.cols[t] : masks.rows[t])) continue;
        var weight = other === "k" ? a[token.index * geom.cols + t] : a[t * geom.cols + token.index];
        if (weight < 0.004) continue;
        ctx.globalAlpha = Math.min(1, weight / full) * 0.85;
        ctx.fillRect(x + k * slice, top + t * geom.rowH + 1, Math.max(1, slice), geom.rowH - 2);
      }
    });
    ctx.globalAlpha = 1;
  }

  // Only nodes whose marks change are touched: restyling hundreds of tokens on every
  // hover would cost more than drawing the lines.
  var marked = null;
  function markTokens(token, masks) {
    var locked = !!fig.state.locked;
    var key = token ? token.side + token.index : "";
    if (!marked || marked.masks !== masks.key) {
      leftNodes.forEach(function (node, i) { node.classList.toggle("attndocs-dim", !masks.rows[i]); });
      rightNodes.forEach(function (node, j) { node.classList.toggle("attndocs-dim", !masks.cols[j]); });
    }
    if (marked && marked.node && (marked.key !== key || marked.locked !== locked)) {
      marked.node.classList.remove("attndocs-active", "attndocs-locked");
    }
    var node = token ? (token.side === "q" ? leftNodes : rightNodes)[token.index] : null;
    if (node) {
      node.classList.add("attndocs-active");
      node.classList.toggle("attndocs-locked", locked);
    }
    marked = { key: key, locked: locked, node: node, masks: masks.key };
  }

  function bandTop() {
    return Math.max(0, Math.min(scroll.scrollTop, geom.height - geom.band));
  }

  function clearCanvas() {
    canvas.ctx.setTransform(1, 0, 0, 1, 0, 0);
    canvas.ctx.clearRect(0, 0, canvas.width, canvas.height);
  }

  function draw() {
    if (!geom) return;
    var p = pick();
    var token = currentToken();
    var label = "Loading layer " + p.layer + (p.heads.length === 1 ? ", head " + p.heads[0] : "") + "\u2026";
    if (!fig.ready(slot, needed(p, token), label, draw, clearCanvas)) {
      markTokens(token, pairMasks(fig, p.section, fig.state.filter));
      return;
    }
    var ctx = canvas.ctx;
    var top = bandTop(), bottom = top + geom.band;
    ctx.setTransform(canvas.ratio, 0, 0, canvas.ratio, 0, -top * canvas.ratio);
    ctx.clearRect(0, top, geom.width, geom.band);
    var masks = pairMasks(fig, p.section, fig.state.filter);
    markTokens(token, masks);
    showKey(p);
    if (token) drawBoxes(ctx, p, token, masks);
    if (unsaid && token && unsaid.token.side === token.side && unsaid.token.index === token.index) say(unsaid.prefix, token);
    ctx.lineWidth = lineWidth(token);
    p.heads.forEach(function (h) {
      ctx.strokeStyle = fig.headColor(h);
      strokeLines(ctx, segments(p, h, token, masks), geom.x0, geom.x1, top, bottom);
    });
  }

  function toSVG(title) {
    var p = pick();
    var colors = fig.colors();
    var top = title ? 24 : 4;
    var info = fig.section(p.section);
    // Wide enough for the title too (about 7 px per character at 12 px).
    var doc = util.svgDoc(Math.max(geom.width, title ? title.length * 7 + 8 : 0), geom.height + top + 4, colors);
    if (title) doc.add("text", { x: 4, y: 16, fill: colors.fg, "font-weight": "600" }, title);
    var token = currentToken();
    var masks = pairMasks(fig, p.section, fig.state.filter);
    if (token) {
      var other = token.side === "q" ? "k" : "q";
      var n = other === "k" ? geom.cols : geom.rows;
      var x = other === "k" ? geom.width - geom.rightW : 0;
      var w = other === "k" ? geom.rightW : geom.leftW;
      var t0 = top + (other === "k" ? geom.topR : geom.topL);
      var slice = w / Math.max(1, p.heads.length);
      p.heads.forEach(function (h, k) {
        var a = fig.attn(p.section, p.layer, h), full = fullOf(p, h);
        if (!a) return;  // still loading: the export shows what the figure shows
        for (var t = 0; t < n; t++) {
          var weight = other === "k" ? a[token.index * geom.cols + t] : a[t * geom.cols + token.index];
          if (weight < 0.004 || !(other === "k" ? masks.cols[t] : masks.rows[t])) continue;
          doc.add("rect", {
            x: x + k * slice, y: t0 + t * geom.rowH + 1, width: Math.max(1, slice), height: geom.rowH - 2,
            fill: fig.headColor(h), "fill-opacity": Math.min(1, weight / full) * 0.85,
          });
        }
      });
    }
    var width = lineWidth(token);
    p.heads.forEach(function (h) {
      var segs = segments(p, h, token, masks);
      for (var b = 1; b <= BUCKETS; b++) {
        var s = segs[b];
        if (!s.length) continue;
        var d = [];
        for (var k = 0; k < s.length; k += 2) {
          d.push("M" + geom.x0.toFixed(1) + " " + (s[k] + top).toFixed(1) + "L" + geom.x1.toFixed(1) + " " + (s[k + 1] + top).toFixed(1));
        }
        doc.add("path", {
          d: d.join(""), stroke: fig.headColor(h), "stroke-opacity": b / BUCKETS, "stroke-width": width, fill: "none",
        });
      }
    });
    var rowSide = fig.header.sides[info.rows], colSide = fig.header.sides[info.cols];
    rowSide.display.forEach(function (text, i) {
      doc.add("text", {
        x: geom.leftW - 4, y: top + geom.topL + (i + 0.5) * geom.rowH + 4, "text-anchor": "end",
        fill: rowSide.special[i] ? colors.muted : colors.fg, "opacity": masks.rows[i] ? 1 : 0.35,
      }, text);
    });
    colSide.display.forEach(function (text, j) {
      doc.add("text", {
        x: geom.width - geom.rightW + 4, y: top + geom.topR + (j + 0.5) * geom.rowH + 4,
        fill: colSide.special[j] ? colors.muted : colors.fg, "opacity": masks.cols[j] ? 1 : 0.35,
      }, text);
    });
    return doc.toString();
  }

  // -- interaction ----------------------------------------------------------------------
  function tokenOf(node) {
    if (!node || !node.classList || !node.classList.contains("attndocs-token")) return null;
    return { side: node.getAttribute("data-side"), index: +node.getAttribute("data-index") };
  }

  // What to say about a token whose layer is still loading: said once it has drawn.
  var unsaid = null;
  function say(prefix, token) {
    var text = describeToken(fig, pick(), token);
    unsaid = text ? null : { prefix: prefix, token: token };
    if (text) fig.announce(prefix + text);
  }

  function select(token, announce) {
    if (fig.state.locked) return;
    fig.setState({ token: token });
    if (announce && token) say("", token);
  }

  box.addEventListener("mouseover", function (e) {
    var t = tokenOf(e.target);
    if (t) select(t, false);
  });
  box.addEventListener("mouseleave", function () {
    tip.hide();
    if (!fig.state.locked) fig.setState({ token: fig.restingToken() });
  });
  box.addEventListener("mousemove", function (e) {
    var hit = tokenOf(e.target) ? null : lineAt(e);
    if (!hit) { tip.hide(); return; }
    var info = fig.section(pick().section);
    tip.show("\u201c" + fig.tokens(info.rows)[hit.i] + "\u201d \u2192 \u201c" + fig.tokens(info.cols)[hit.j] + "\u201d \u00b7 head " +
      hit.h + ": " + DEQUANT[hit.code].toFixed(3), e.clientX, e.clientY);
  });

  // The drawn line under the pointer. Line (i, j) is at height yq + (yk - yq) * t a fraction
  // t across, so each query row has one key whose line can pass near the pointer (every key
  // near the left end, where a row's lines meet); the nearest within 4 px wins, the heavier
  // of two about as near.
  function lineAt(e) {
    if (!geom) return null;
    var rect = box.getBoundingClientRect();
    var x = e.clientX - rect.left, y = e.clientY - rect.top;
    if (x < geom.x0 || x > geom.x1) return null;
    var p = pick(), token = currentToken(), t = (x - geom.x0) / (geom.x1 - geom.x0);
    var masks = pairMasks(fig, p.section, fig.state.filter);
    var rowH = geom.rowH, rowY = geom.topL + rowH / 2, colY = geom.topR + rowH / 2, cols = geom.cols;
    var reach = t * Math.max(geom.rows, geom.cols) * rowH + 4, best = null;
    p.heads.forEach(function (h) {
      var codes = fig.attnQ(p.section, p.layer, h);
      if (!codes) return;
      var full = fullOf(p, h), table = token ? bucketTable(0.001, full) : weightTable(full);
      for (var i = 0; i < geom.rows; i++) {
        var yq = rowY + i * rowH;
        if (!masks.rows[i] || Math.abs(yq - y) > reach || (token && token.side === "q" && token.index !== i)) continue;
        var j0 = 0, j1 = cols - 1;
        if (t > 0.05) {
          var jf = ((y - yq * (1 - t)) / t - colY) / rowH;
          j0 = Math.max(0, Math.floor(jf) - 1);
          j1 = Math.min(cols - 1, Math.ceil(jf) + 1);
        }
        for (var j = j0; j <= j1; j++) {
          if (!masks.cols[j] || (token && token.side === "k" && token.index !== j)) continue;
          var code = codes[i * cols + j];
          if (!table[code]) continue;
          var d = Math.abs(yq + (colY + j * rowH - yq) * t - y);
          if (d > 4 || (best && (d > best.d + 0.5 || (d > best.d - 0.5 && code <= best.code)))) continue;
          best = { d: d, i: i, j: j, h: h, code: code };
        }
      }
    });
    return best;
  }
  box.addEventListener("click", function (e) {
    var t = tokenOf(e.target);
    if (!t) return;
    var cur = fig.state.token;
    if (fig.state.locked && cur && cur.side === t.side && cur.index === t.index) {
      fig.setState({ locked: false, token: t });
      fig.announce("Selection released");
    } else {
      fig.setState({ token: t, locked: true });
      say("Locked. ", t);
    }
  });
  box.addEventListener("pointerenter", prefetch);
  box.addEventListener("focusin", function (e) {
    prefetch();
    var t = tokenOf(e.target);
    if (t) select(t, true);
  });
  box.addEventListener("focusout", function (e) {
    // Tabbing out of the token columns ends a keyboard selection, as leaving with the mouse does.
    if (!box.contains(e.relatedTarget) && !fig.state.locked && fig.state.token) fig.setState({ token: fig.restingToken() });
  });
  function columnKeys(e, i, list) {
    var side = list[i].getAttribute("data-side");
    if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
      var target = e.key === "ArrowRight" ? rightNodes : leftNodes;
      if ((side === "k") === (e.key === "ArrowRight") || !target.length) return true;
      var j = Math.min(i, target.length - 1);
      list.forEach(function (node) { node.tabIndex = -1; });
      target.forEach(function (node, k) { node.tabIndex = k === j ? 0 : -1; });
      if (fig.state.locked) fig.setState({ locked: false });
      target[j].focus();
      return true;
    }
    if (e.key === "Enter" || e.key === " ") {
      var t = tokenOf(list[i]);
      fig.setState({ token: t, locked: true });
      say("Locked. ", t);
      return true;
    }
    if ((e.key === "ArrowUp" || e.key === "ArrowDown") && fig.state.locked) {
      fig.setState({ locked: false });  // moving on releases the lock, like moving the mouse
    }
    return false;
  }
  util.roving(left, ".attndocs-token", { vertical: true, onKey: columnKeys });
  util.roving(right, ".attndocs-token", { vertical: true, onKey: columnKeys });

  var scrollPending = false;
  scroll.addEventListener("scroll", function () {
    if (scrollPending || !geom || geom.band >= geom.height) return;
    scrollPending = true;
    requestAnimationFrame(function () { scrollPending = false; draw(); });
  }, { passive: true });

  var resizeObserver = null;
  var lastWidth = 0;
  if (typeof ResizeObserver !== "undefined") {
    resizeObserver = new ResizeObserver(function () {
      var w = scroll.clientWidth;
      if (Math.abs(w - lastWidth) > 4 && geom) {
        lastWidth = w;
        relayout();
      }
    });
    resizeObserver.observe(scroll);
  }

  buildTokens();
  lastWidth = scroll.clientWidth;
  return {
    el: scroll,
    draw: function () { buildTokens(); draw(); },
    relayout: function () { builtFor = null; buildTokens(); },
    toSVG: toSVG,
    destroy: function () { if (resizeObserver) resizeObserver.disconnect(); },
  };
};

// -- the head view ---------------------------------------------------------------------------
function headButtons(fig, host, getHeads, onChange) {
  var bar = el("div", { class: "attndocs-heads", role: "toolbar", "aria-label": "Heads" });
  bar.appendChild(el("span", { class: "attndocs-heads-label", text: "Heads", "aria-hidden": "true" }));
  var buttons = [];
  function render() {
    var info = fig.section(fig.state.section);
    buttons.forEach(function (b) { b.remove(); });
    buttons = info.heads.map(function (h) {
      var swatch = el("span", { class: "attndocs-swatch", "aria-hidden": "true" });
      swatch.style.background = fig.headColor(h);
      var b = el("button", {
        type: "button", class: "attndocs-head", "data-head": String(h), "aria-pressed": "false",
        title: "Head " + h + ": click to show or hide, double-click to show only this head",
        "aria-label": "Head " + h,
      }, [swatch, String(h)]);
      // The two clicks of a double-click toggle twice (no net change) before it isolates.
      b.addEventListener("click", function () { toggle(h); });
      b.addEventListener("dblclick", function () { isolate(h); });
      b.addEventListener("keydown", function (e) {
        if (e.key === "Enter" && e.shiftKey) { isolate(h); e.preventDefault(); }
      });
      bar.appendChild(b);
      return b;
    });
    // One Tab stop for the whole bar; arrow keys move between heads.
    buttons.forEach(function (b, k) { b.tabIndex = k === 0 ? 0 : -1; });
    sync();
  }
  function toggle(h) {
    var heads = getHeads().slice();
    var i = heads.indexOf(h);
    if (i >= 0) heads.splice(i, 1);
    else heads.push(h);
    heads.sort(function (a, b) { return a - b; });
    onChange(heads);
    fig.announce("Head " + h + (i >= 0 ? " hidden" : " shown"));
  }
  function isolate(h) {
    onChange([h]);
    fig.announce("Only head " + h + " shown");
  }
  function sync() {
    var heads = getHeads();
    buttons.forEach(function (b) {
      var h = +b.getAttribute("data-head");
      b.setAttribute("aria-pressed", String(heads.indexOf(h) >= 0));
      b.firstChild.style.background = fig.headColor(h);
    });
  }
  util.roving(bar, ".attndocs-head", {});
  host.appendChild(bar);
  render();
  return { el: bar, render: render, sync: sync };
}
attndocs.components.headButtons = headButtons;

// Section (encoder / decoder / cross) selector, shown when the model has several.
function sectionControl(fig) {
  var order = fig.header.sectionOrder;
  if (order.length < 2) return null;
  var items = order.map(function (name) { return { value: name, label: attndocs._sectionLabel(name) }; });
  return util.buttons("Attention", items, fig.state.section, function (value) {
    var info = fig.section(value);
    var patch = { section: value, token: null, locked: false };
    if (info.layers.indexOf(fig.state.layer) < 0) patch.layer = info.layers[0];
    patch.heads = fig.state.heads.filter(function (h) { return info.heads.indexOf(h) >= 0; });
    fig.setState(patch);
  });
}
attndocs.components.sectionControl = sectionControl;

var FILTERS = [
  { value: "all", label: "All", title: "All attention" },
  { value: "aa", label: "A→A", title: "Sentence A attending to sentence A" },
  { value: "bb", label: "B→B", title: "Sentence B attending to sentence B" },
  { value: "ab", label: "A→B", title: "Sentence A attending to sentence B" },
  { value: "ba", label: "B→A", title: "Sentence B attending to sentence A" },
];

function filterControl(fig) {
  var group = util.buttons("Sentences", FILTERS, fig.state.filter, function (value) {
    fig.setState({ filter: value });
  });
  var wrap = el("span", { class: "attndocs-control" }, [el("span", { text: "Sentences" }), group]);
  wrap.group = group;
  return wrap;
}
attndocs.components.filterControl = filterControl;

function layerControl(fig) {
  var info = fig.section(fig.state.section);
  var wrap = util.select("Layer", info.layers.map(function (l) { return { value: l, label: String(l) }; }), fig.state.layer,
    function (value) { fig.setState({ layer: +value }); });
  wrap.rebuild = function () {
    var cur = fig.section(fig.state.section);
    wrap.select.textContent = "";
    cur.layers.forEach(function (l) {
      wrap.select.appendChild(el("option", { value: String(l), text: String(l) }));
    });
    wrap.select.value = String(fig.state.layer);
  };
  return wrap;
}
attndocs.components.layerControl = layerControl;

attndocs.registerView("head", function (fig) {
  var sections = sectionControl(fig);
  var layers = layerControl(fig);
  var filter = filterControl(fig);
  if (sections) fig.controls.appendChild(el("span", { class: "attndocs-control" }, [sections]));
  fig.controls.appendChild(layers);
  fig.controls.appendChild(filter);
  function showFilter() { filter.hidden = !hasPair(fig, fig.state.section); }
  showFilter();

  var heads = headButtons(fig, fig.body, function () { return fig.state.heads; }, function (list) {
    fig.setState({ heads: list });
  });
  var roleUI = attndocs.roles.headView(fig, heads.el);  // 25-roles.js: named head roles
  var lines = attndocs.components.lines(fig, fig.body, {});
  fig.onTheme(function () { heads.sync(); lines.draw(); });

  return {
    update: function (changes) {
      if ("section" in changes) {
        if (sections) sections.set(fig.state.section);
        layers.rebuild();
        heads.render();
        if (roleUI) roleUI.update(changes);
        showFilter();
        lines.relayout();
        return;
      }
      if ("layer" in changes) layers.set(fig.state.layer);
      if ("heads" in changes) heads.sync();
      if (roleUI) roleUI.update(changes);
      if ("filter" in changes) filter.group.set(fig.state.filter);
      lines.draw();
    },
    toSVG: function () {
      var s = fig.state;
      var title = (fig.header.model.id || "") + " · " + attndocs._sectionLabel(s.section) + " · layer " + s.layer +
        " · heads " + (s.heads.length ? ranges(s.heads) : "none");
      return lines.toSVG(title);
    },
    destroy: function () { lines.destroy(); },
  };
});
