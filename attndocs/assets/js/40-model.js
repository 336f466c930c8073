// attndocs model view: every included layer x head as a thumbnail; a click opens the head.
//
// Thumbnails are miniature line drawings (queries on the left edge, keys on the right),
// drawn from the quantised codes with a per-bucket path, so 72 heads at 200 tokens draw
// in a few tens of milliseconds. A large figure draws them from its overview (each head
// max-pooled to at most 48 x 48 bins, one chunk), and loads a head's full matrix only when
// its detail opens. State: layer + heads[0] name the opened head, open=true while its
// detail panel shows.

var util = attndocs.util;
var el = util.el;

// Every head stays in view: thumbnails shrink with the width, down to MIN_THUMB px; below
// that a layer's heads wrap onto several rows of equal length (12 heads at 320 px: 2 x 6).
var MIN_THUMB = 28;
function thumbLayout(fig, nHeads) {
  return attndocs._thumbLayout(fig.body.clientWidth || fig.el.clientWidth || 720, nHeads);
}

attndocs._thumbLayout = function (width, nHeads) {  // 06-boot.js reserves the grid's height with it
  var avail = width - 34;  // the layer labels ("L11") and their gap; each thumb takes size + 5
  var perRow = nHeads;
  if (Math.floor(avail / nHeads) - 5 < MIN_THUMB) {
    var most = Math.max(1, Math.floor(avail / (MIN_THUMB + 5)));
    perRow = Math.ceil(nHeads / Math.ceil(nHeads / most));
  }
  return { size: Math.max(12, Math.min(88, Math.floor(avail / perRow) - 5)), perRow: perRow };
};

// Lines from bin b of the rows (at rowPos[b]) to bin c of the columns, by opacity step, as
// 30-head.js's bucketLines does for tokens: a row with no line shows its strongest key.
function binLines(codes, nRows, nCols, rowPos, colPos, rowMask, colMask, table) {
  var out = [];
  for (var b = 0; b <= 16; b++) out.push([]);
  for (var i = 0; i < nRows; i++) {
    if (!rowMask[i]) continue;
    var base = i * nCols, drawn = false, best = -1, bestCode = 0;
    for (var j = 0; j < nCols; j++) {
      if (!colMask[j]) continue;
      var code = codes[base + j], bucket = table[code];
      if (bucket) { out[bucket].push(rowPos[i], colPos[j]); drawn = true; }
      else if (code > bestCode) { bestCode = code; best = j; }
    }
    if (!drawn && best >= 0) out[1].push(rowPos[i], colPos[best]);
  }
  return out;
}

// Where each bin sits (the middle of its tokens) and whether the filter keeps it: a bin
// holds tokens of one sentence only (payload._bin_edges), so its first token decides.
function bins(edges, offset, step, mask) {
  var n = edges.length - 1, pos = new Float32Array(n), keep = new Uint8Array(n);
  for (var b = 0; b < n; b++) {
    pos[b] = offset + step * (edges[b] + edges[b + 1] - 1) / 2;
    keep[b] = mask[edges[b]];
  }
  return { pos: pos, keep: keep };
}

function identity(n) {
  var edges = [];
  for (var i = 0; i <= n; i++) edges.push(i);
  return edges;
}

// A thumbnail: from the head's overview (max-pooled codes, large figures) or its full codes.
function drawThumb(fig, canvas, section, layer, head, masks) {
  var info = fig.section(section);
  var rows = info.shape[0], cols = info.shape[1];
  var w = canvas.cssWidth, h = canvas.cssHeight, ctx = canvas.ctx;
  var colors = fig.colors();
  ctx.clearRect(0, 0, w, h);
  var overview = fig.overview(section, layer, head);
  var codes = overview ? overview.codes : fig.attnQ(section, layer, head);
  if (!codes) return;
  // Opacity = weight, as in the head view (over the head's maximum on the "head" scale);
  // overview bins are max-pooled, so their maximum is the head's.
  var full = attndocs.explain.full(fig, attndocs.DEQUANT[attndocs.explain.maxCode(codes)]);
  var table = attndocs._weightTable(full);
  var pad = 3, x0 = pad + 1, x1 = w - pad - 1;
  var n = Math.max(rows, cols);
  var step = n > 1 ? (h - 2 * pad) / (n - 1) : 0;
  var offR = ((n - rows) * step) / 2 + pad, offC = ((n - cols) * step) / 2 + pad;
  var r = bins(overview ? overview.rowEdges : identity(rows), offR, step, masks.rows);
  var c = bins(overview ? overview.colEdges : identity(cols), offC, step, masks.cols);
  var lines = binLines(codes, r.pos.length, c.pos.length, r.pos, c.pos, r.keep, c.keep, table);
  ctx.strokeStyle = fig.headColor(head);
  ctx.lineWidth = 1;
  attndocs._strokeLines(ctx, lines, x0, x1, -Infinity, Infinity);
  // Token ticks on both edges make the two sides readable at a glance.
  ctx.fillStyle = colors.grid;
  ctx.fillRect(0, pad, 2, h - 2 * pad);
  ctx.fillRect(w - 2, pad, 2, h - 2 * pad);
}

attndocs.registerView("model", function (fig) {
  fig.defineState(["open"]);
  var sections = attndocs.components.sectionControl(fig);
  var filter = attndocs.components.filterControl(fig);
  if (sections) fig.controls.appendChild(el("span", { class: "attndocs-control" }, [sections]));
  fig.controls.appendChild(filter);
  function showFilter() { filter.hidden = !attndocs._hasPair(fig, fig.state.section); }
  showFilter();

  // Detail panel: the line drawing of one head, with hover, lock and keyboard like the head view.
  var detail = el("div", { class: "attndocs-detail", role: "region", id: fig.uid("detail"), hidden: true });
  var detailTitle = el("span", { id: fig.uid("detail-title") });
  var closeButton = el("button", {
    type: "button", class: "attndocs-button", text: "Close", "aria-label": "Close the head detail",
    on: { click: function () { close(); } },
  });
  detail.setAttribute("aria-labelledby", fig.uid("detail-title"));
  detail.appendChild(el("div", { class: "attndocs-detail-head" }, [detailTitle, closeButton]));
  fig.body.appendChild(detail);
  var lines = null;

  var grid = el("div", { class: "attndocs-grid", role: "group", "aria-label": "Layers and heads" });
  fig.body.appendChild(grid);
  var roleUI = attndocs.roles.modelView(fig, grid);  // 25-roles.js: named head roles
  var explain = attndocs.explain, tip = explain.tip(fig), key = explain.key(fig, fig.body);
  function showKey() {
    var colors = fig.colors();
    key.set({
      label: explain.scale(fig) === "head" ? "line opacity: weight \u00f7 its head\u2019s maximum" : "line opacity: attention weight",
      lo: 0, hi: 1, from: colors.bg, to: colors.fg,
    });
  }

  // A thumbnail's strongest weight and where it is (the first tokens of its bins when the
  // thumbnail comes from the overview).
  function strongest(layer, head) {
    var name = fig.state.section, info = fig.section(name), overview = fig.overview(name, layer, head);
    var codes = overview ? overview.codes : fig.attnQ(name, layer, head);
    if (!codes) return null;
    var cols = overview ? overview.cols : info.shape[1], best = 0;
    for (var i = 1; i < codes.length; i++) if (codes[i] > codes[best]) best = i;
    var r = Math.floor(best / cols), c = best % cols;
    if (overview) { r = overview.rowEdges[r]; c = overview.colEdges[c]; }
    return { weight: attndocs.DEQUANT[codes[best]], from: fig.tokens(info.rows)[r], to: fig.tokens(info.cols)[c] };
  }
  function thumbTip(th, e) {
    var top = strongest(th.layer, th.head);
    var text = "Layer " + th.layer + ", head " + th.head + (top ? ": strongest weight " + top.weight.toFixed(3) +
      " (\u201c" + top.from + "\u201d \u2192 \u201c" + top.to + "\u201d)" : "");
    if (e) tip.show(text, e.clientX, e.clientY);
    else tip.showBy(th.button, text);
  }
  grid.addEventListener("mousemove", function (e) {
    var node = e.target.closest ? e.target.closest(".attndocs-thumb") : null;
    var th = node && thumbs.filter(function (t) { return t.button === node; })[0];
    if (th) thumbTip(th, e);
    else tip.hide();
  });
  grid.addEventListener("mouseleave", function () { tip.hide(); });
  grid.addEventListener("focusin", function (e) {
    var th = thumbs.filter(function (t) { return t.button === e.target; })[0];
    if (th && e.target.matches(":focus-visible")) thumbTip(th, null);
  });
  grid.addEventListener("focusout", function () { tip.hide(); });
  var thumbs = [];  // {layer, head, button, canvas}
  var gridFit = null;  // the thumbLayout the grid was built with

  function pickOpen() {
    return { section: fig.state.section, layer: fig.state.layer, heads: [fig.state.heads[0]] };
  }

  function buildGrid() {
    var info = fig.section(fig.state.section);
    grid.textContent = "";
    thumbs = [];
    var fit = gridFit = thumbLayout(fig, info.heads.length), size = fit.size, perRow = fit.perRow;
    var height = Math.round(size * 1.15);
    var band = info.layers.length + 1;  // grid rows per band of heads: their labels, then each layer
    grid.style.gridTemplateColumns = "max-content repeat(" + perRow + ", " + (size + 2) + "px)";
    // Labels first, then the thumbnails in layer order (the keyboard walks them in DOM order),
    // each placed in its band.
    function place(node, row, column) {
      node.style.gridRow = String(row);
      node.style.gridColumn = String(column);
      return grid.appendChild(node);
    }
    for (var first = 0; first < info.heads.length; first += perRow) {
      var top = (first / perRow) * band + 1;
      place(el("span", { class: "attndocs-grid-label", "aria-hidden": "true" }), top, 1);
      info.heads.slice(first, first + perRow).forEach(function (h, k) {
        place(el("span", { class: "attndocs-grid-label", text: "H" + h, "aria-hidden": "true" }), top, k + 2);
      });
      info.layers.forEach(function (l, li) {
        place(el("span", { class: "attndocs-grid-label", text: "L" + l, "aria-hidden": "true" }), top + li + 1, 1);
      });
    }
    info.layers.forEach(function (l, li) {
      info.heads.forEach(function (h, hi) {
        var canvas = fig.canvas(size, height);
        var button = el("button", {
          type: "button", class: "attndocs-thumb", "data-layer": String(l), "data-head": String(h),
          "aria-label": "Layer " + l + ", head " + h, title: "Layer " + l + ", head " + h, "aria-pressed": "false",
          "aria-controls": fig.uid("detail"),
        }, [canvas]);
        button.addEventListener("click", function () { open(l, h); });
        place(button, Math.floor(hi / perRow) * band + li + 2, (hi % perRow) + 2);
        thumbs.push({ layer: l, head: h, button: button, canvas: canvas });
      });
    });
    var nHeads = info.heads.length;
    util.roving(grid, ".attndocs-thumb", {
      onKey: function (e, i, list) {
        var j = null;
        if (e.key === "ArrowUp") j = i - nHeads;
        else if (e.key === "ArrowDown") j = i + nHeads;
        else if (e.key === "ArrowLeft" && i % nHeads > 0) j = i - 1;
        else if (e.key === "ArrowRight" && i % nHeads < nHeads - 1) j = i + 1;
        else if (e.key === "ArrowLeft" || e.key === "ArrowRight") return true;
        if (j == null) return false;
        if (j < 0 || j >= list.length) return true;
        list.forEach(function (node, k) { node.tabIndex = k === j ? 0 : -1; });
        list[j].focus();
        return true;
      },
    });
    if (roleUI) roleUI.mark();
    drawAll();
  }

  function clearThumbs() {
    thumbs.forEach(function (th) { th.canvas.ctx.clearRect(0, 0, th.canvas.cssWidth, th.canvas.cssHeight); });
  }

  function drawAll() {
    var name = fig.state.section, info = fig.section(name);
    var kind = fig.ships("overview", name) ? "overview" : "attn";
    if (!fig.ready("grid", fig.missingAll(kind, name, info.layers, info.heads), "Loading the thumbnails\u2026", drawAll, clearThumbs)) {
      markOpen();
      return;
    }
    var masks = attndocs._pairMasks(fig, name, fig.state.filter);
    showKey();
    for (var t = 0; t < thumbs.length; t++) {
      var th = thumbs[t];
      drawThumb(fig, th.canvas, fig.state.section, th.layer, th.head, masks);
    }
    markOpen();
  }

  function markOpen() {
    thumbs.forEach(function (th) {
      var on = fig.state.open && th.layer === fig.state.layer && th.head === fig.state.heads[0];
      th.button.setAttribute("aria-pressed", String(!!on));
    });
  }

  function showDetail() {
    var isOpen = fig.state.open && fig.state.heads.length > 0;
    detail.hidden = !isOpen;
    if (!isOpen) { markOpen(); return; }
    detailTitle.textContent = attndocs._sectionLabel(fig.state.section) + " · layer " + fig.state.layer +
      ", head " + fig.state.heads[0];
    if (!lines) lines = attndocs.components.lines(fig, detail, { pick: pickOpen, maxHeight: "28rem" });
    else lines.relayout();
    markOpen();
  }

  function open(l, h) {
    fig.setState({ layer: l, heads: [h], open: true, token: null, locked: false });
    fig.announce("Opened layer " + l + ", head " + h + ". Escape closes it.");
    closeButton.focus({ preventScroll: true });
  }

  // Escape keeps the selection (the next Escape clears it); the Close button clears it too.
  function close(keepSelection) {
    var state = fig.state;
    fig.setState(keepSelection ? { open: false } : { open: false, token: null, locked: false });
    var back = thumbs.filter(function (th) { return th.layer === state.layer && th.head === state.heads[0]; })[0];
    if (back) back.button.focus({ preventScroll: true });
    fig.announce("Closed the head detail");
  }


  fig.onTheme(function () {
    drawAll();
    if (lines && fig.state.open) lines.draw();
  });

  var lastWidth = fig.body.clientWidth;
  var resizeObserver = null;
  if (typeof ResizeObserver !== "undefined") {
    resizeObserver = new ResizeObserver(function () {
      var w = fig.body.clientWidth;
      if (Math.abs(w - lastWidth) > 4) {
        lastWidth = w;
        var fit = thumbLayout(fig, fig.section(fig.state.section).heads.length);
        if (!gridFit || fit.size !== gridFit.size || fit.perRow !== gridFit.perRow) buildGrid();
      }
    });
    resizeObserver.observe(fig.body);
  }

  buildGrid();
  showDetail();

  return {
    update: function (changes) {
      if (roleUI) roleUI.update(changes);
      if ("section" in changes) {
        if (sections) sections.set(fig.state.section);
        showFilter();
        buildGrid();
        if (lines) lines.relayout();
        showDetail();
        return;
      }
      if ("filter" in changes || "scale" in changes) {
        filter.group.set(fig.state.filter);
        drawAll();
      }
      if ("open" in changes || "layer" in changes || "heads" in changes) showDetail();
      else if (lines && fig.state.open) lines.draw();
    },
    // Escape closes the open detail first (20-explain.js).
    escape: function () {
      if (!fig.state.open) return false;
      close(true);
      return true;
    },
    exportLabel: function () {
      var where = fig.header.sectionOrder.length > 1 ? attndocs._sectionLabel(fig.state.section) + " \u00b7 " : "";
      return fig.state.open ? where + "layer " + fig.state.layer + " \u00b7 head " + fig.state.heads[0] : where + "all layers and heads";
    },
    exportLayer: function () { return fig.state.open ? fig.state.layer : null; },
    toSVG: function () {
      if (fig.state.open && lines) {
        return lines.toSVG((fig.header.model.id || "") + " · " + detailTitle.textContent);
      }
      return gridSVG();
    },
    destroy: function () {
      if (resizeObserver) resizeObserver.disconnect();
      if (lines) lines.destroy();
    },
  };

  // The grid as SVG: each thumbnail embedded as a PNG image keeps the file small.
  function gridSVG() {
    var info = fig.section(fig.state.section);
    var colors = fig.colors();
    var first = thumbs[0];
    var tw = first ? first.canvas.cssWidth : 40, th = first ? first.canvas.cssHeight : 40;
    var gap = 4, left = 36, top = 40;
    var width = left + info.heads.length * (tw + gap), height = top + info.layers.length * (th + gap);
    var doc = util.svgDoc(width, height, colors);
    doc.add("text", { x: 4, y: 16, fill: colors.fg, "font-weight": "600" },
      (fig.header.model.id || "") + " · " + attndocs._sectionLabel(fig.state.section) + " · all layers and heads");
    info.heads.forEach(function (h, k) {
      doc.add("text", { x: left + k * (tw + gap) + tw / 2, y: top - 6, "text-anchor": "middle", fill: colors.muted }, "H" + h);
    });
    info.layers.forEach(function (l, r) {
      doc.add("text", { x: left - 6, y: top + r * (th + gap) + th / 2 + 4, "text-anchor": "end", fill: colors.muted }, "L" + l);
    });
    thumbs.forEach(function (t) {
      var k = info.heads.indexOf(t.head), r = info.layers.indexOf(t.layer);
      doc.add("image", {
        x: left + k * (tw + gap), y: top + r * (th + gap), width: tw, height: th, href: t.canvas.toDataURL("image/png"),
      });
      doc.add("rect", {
        x: left + k * (tw + gap), y: top + r * (th + gap), width: tw, height: th, fill: "none", stroke: colors.grid,
      });
    });
    return doc.toString();
  }
});
