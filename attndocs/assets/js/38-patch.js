// attndocs patch view: the image a vision transformer read, under its grid of patches. Pick a
// patch (or [CLS]) to colour the image by where it attends in the selected layer (mean over the
// selected heads), or show the attention rollout from [CLS] through the layer (computed at build
// time, attndocs/vision.py). Tokens are labelled by grid position: r<row>c<col>, 1-based.
//
// header.image: {src (data URI), width, height (px of the picture shipped), rows, cols, patch,
// first (index of the first patch token), rollout: {layer: [patch weights]} | null}.

var util = attndocs.util;
var el = util.el;

var MAX_SIDE = 448;  // px: the widest the image is drawn (render.py PATCH_SIDE)
var OVERLAYS = [
  { value: "attention", label: "Attention", title: "where the selected patch attends in this layer (mean over the selected heads)" },
  { value: "rollout", label: "Rollout from [CLS]", title: "attention rollout from [CLS] through this layer (Abnar & Zuidema 2020)" },
];
var TOP = 3;  // patches the text line names

function patchView(fig) {
  var header = fig.header, image = header.image;
  var kit = attndocs.viewKit, explain = attndocs.explain;
  if (!image) {
    fig.body.appendChild(kit.note("No image:", "this figure's record was made from text; choose another view."));
    return { update: function () {} };
  }
  // Defaults and allowed values come from attndocs/state.py (PATCH_OVERLAYS).
  fig.defineState(["overlay"], image.rollout ? {} : { overlay: ["attention"] });
  var rows = image.rows, cols = image.cols, first = image.first;
  var tokens = header.sides.encoder.display;
  var hover = null;            // token index under the pointer (a preview; the state keeps the locked one)
  var cursor = first;          // the keyboard's patch
  var picture = new Image();
  var pictureReady = false;

  function section() { return fig.section(fig.state.section); }
  function overlay() { return fig.state.overlay === "rollout" && image.rollout ? "rollout" : "attention"; }
  function heads() {
    var info = section();
    return (fig.state.heads || []).filter(function (h) { return info.heads.indexOf(h) >= 0; });
  }
  // The query token shown: the hovered one, else the selected one, else [CLS] (or the first patch).
  function query() {
    if (hover != null) return hover;
    var t = fig.state.token;
    if (t && t.side === "q" && t.index >= 0 && t.index < tokens.length) return t.index;
    return 0;
  }

  // -- controls ---------------------------------------------------------------------------
  var layerCtl = attndocs.components.layerControl(fig);
  fig.controls.appendChild(layerCtl);
  var overlayCtl = util.buttons("Overlay", image.rollout ? OVERLAYS : OVERLAYS.slice(0, 1), overlay(), function (v) {
    fig.setState({ overlay: v });
  });
  fig.controls.appendChild(el("span", { class: "attndocs-control" }, [el("span", { text: "Overlay" }), overlayCtl]));
  var headBar = attndocs.components.headButtons(fig, fig.body, function () { return fig.state.heads; }, function (list) {
    fig.setState({ heads: list });
  });

  // Special tokens ([CLS], [DIST]) are picked from buttons: they have no place on the image.
  var specials = el("div", { class: "attndocs-pspecial", role: "group", "aria-label": "Special tokens" });
  var specialEls = [];
  for (var s = 0; s < first; s++) {
    var chip = fig.tokenEl("q", s, tokens[s], true);
    chip.setAttribute("role", "button");
    chip.tabIndex = 0;
    (function (index) {
      chip.addEventListener("click", function () { select(index); });
      chip.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { select(index); e.preventDefault(); }
      });
    })(s);
    specialEls.push(chip);
    specials.appendChild(chip);
  }
  if (first) fig.body.appendChild(specials);

  var readout = el("p", { class: "attndocs-preadout", "aria-hidden": "true" });
  var stage = el("div", {
    class: "attndocs-pstage", tabindex: "0", role: "application", "aria-roledescription": "image patches",
    "aria-label": "Image in " + rows + " rows by " + cols + " columns of patches. Arrow keys move between patches, " +
      "Enter selects one, Escape goes back to " + (first ? tokens[0] : "the first patch") + ".",
  });
  var canvas = fig.canvas(1, 1);
  canvas.classList.add("attndocs-pcanvas");
  stage.appendChild(canvas);
  var text = el("p", { class: "attndocs-pdesc" });
  fig.body.appendChild(readout);
  fig.body.appendChild(stage);
  var key = explain.key(fig, fig.body);
  fig.body.appendChild(text);
  var tip = explain.tip(fig);

  // -- data ---------------------------------------------------------------------------------
  // Weights over the patches (length rows*cols), the share left on special tokens, and a label.
  function weights() {
    var layer = fig.state.layer;
    if (overlay() === "rollout") {
      var flow = util.own(image.rollout, String(layer)) || [];
      var sum = 0;
      flow.forEach(function (v) { sum += v; });
      return { values: flow, special: Math.max(0, 1 - sum), what: "rollout from " + tokens[0] + " through layer " + layer };
    }
    var list = heads(), n = tokens.length, q = query();
    var out = new Float32Array(rows * cols), special = 0;
    list.forEach(function (h) {
      var a = fig.attn(fig.state.section, layer, h);
      if (!a) return;
      for (var j = 0; j < n; j++) {
        var v = a[q * n + j] / list.length;
        if (j < first) special += v;
        else out[j - first] += v;
      }
    });
    var who = list.length === section().heads.length ? "all heads" : list.length === 1 ? "head " + list[0] : "heads " + list.join(",");
    return { values: out, special: special, what: "attention from " + tokens[q] + ", layer " + layer + ", mean of " + who };
  }

  function needed() {
    if (overlay() === "rollout") return [];
    return fig.missing("attn", fig.state.section, fig.state.layer, heads());
  }

  // -- drawing ------------------------------------------------------------------------------
  var geom = { w: 1, h: 1, cw: 1, ch: 1 };
  function layout() {
    var width = fig.body.clientWidth || MAX_SIDE;
    var w = Math.max(96, Math.min(MAX_SIDE, width - 4));
    var h = Math.round(w * image.height / image.width);
    geom = { w: w, h: h, cw: w / cols, ch: h / rows };
    canvas.resize(w, h);
  }

  function max(values) {
    var m = 0;
    for (var i = 0; i < values.length; i++) if (values[i] > m) m = values[i];
    return m;
  }

  // Low patches are veiled in the page's background, high ones tinted with the heat colour, so
  // the overlay reads on any picture (a blue tint vanishes on a sky) and in either theme.
  var VEIL = 0.5, TINT = 0.6;
  function patchStyle(t, colors) {
    var veil = util.parseColor(colors.bg), heat = util.parseColor(colors.neg);
    var a = VEIL * (1 - t), b = TINT * t, alpha = a + b - a * b;
    if (!(alpha > 0)) return "rgba(0,0,0,0)";
    var mix = [0, 1, 2].map(function (i) { return Math.round((veil[i] * a * (1 - b) + heat[i] * b) / alpha); });
    return "rgba(" + mix.join(",") + "," + alpha.toFixed(3) + ")";
  }

  function paint(ctx, data, colors) {
    var w = geom.w, h = geom.h;
    ctx.clearRect(0, 0, w, h);
    if (pictureReady) {
      ctx.save();
      // Pixels as the model saw them when the picture is blown up (a 32 px test image); smooth otherwise.
      ctx.imageSmoothingEnabled = w / image.width < 3;
      ctx.drawImage(picture, 0, 0, w, h);
      ctx.restore();
    }
    var top = max(data.values);
    for (var r = 0; r < rows; r++) {
      for (var c = 0; c < cols; c++) {
        ctx.fillStyle = patchStyle(top > 0 ? data.values[r * cols + c] / top : 0, colors);
        ctx.fillRect(c * geom.cw, r * geom.ch, geom.cw, geom.ch);
      }
    }
    ctx.strokeStyle = util.rgba(colors.bg, 0.55);
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (var i = 1; i < cols; i++) { ctx.moveTo(Math.round(i * geom.cw) + 0.5, 0); ctx.lineTo(Math.round(i * geom.cw) + 0.5, h); }
    for (var k = 1; k < rows; k++) { ctx.moveTo(0, Math.round(k * geom.ch) + 0.5); ctx.lineTo(w, Math.round(k * geom.ch) + 0.5); }
    ctx.stroke();
    var q = query();
    if (overlay() === "attention" && q >= first) mark(ctx, q - first, colors.fg, 3);
    if (document.activeElement === stage && cursor >= first && cursor !== q) mark(ctx, cursor - first, colors.muted, 2);
  }

  function mark(ctx, p, color, width) {
    var r = Math.floor(p / cols), c = p % cols;
    ctx.save();
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.strokeRect(c * geom.cw + width / 2, r * geom.ch + width / 2, geom.cw - width, geom.ch - width);
    ctx.restore();
  }

  function describe(data) {
    var order = [];
    for (var i = 0; i < data.values.length; i++) order.push(i);
    order.sort(function (a, b) { return data.values[b] - data.values[a] || a - b; });
    var named = order.slice(0, TOP).map(function (p) { return tokens[p + first] + " (" + util.fmt(data.values[p]) + ")"; });
    var line = data.what.charAt(0).toUpperCase() + data.what.slice(1) + ": most on " + named.join(", ");
    if (first) line += "; " + util.fmt(data.special) + " on " + tokens.slice(0, first).join(" and ");
    return line + ".";
  }

  function draw() {
    var slot = "patch";
    if (!fig.ready(slot, needed(), "layer " + fig.state.layer, draw, function () { stage.classList.add(kit.WAITING); })) return;
    stage.classList.remove(kit.WAITING);
    var colors = fig.colors(), data = weights();
    paint(canvas.ctx, data, colors);
    key.set({ label: overlay() === "rollout" ? "colour: rollout weight" : "colour: attention weight", lo: 0, hi: max(data.values),
      from: patchStyle(0, colors), to: patchStyle(1, colors) });
    text.textContent = describe(data);
    var q = query();
    specialEls.forEach(function (chip, i) {
      chip.classList.toggle("attndocs-selected", overlay() === "attention" && q === i);
      chip.setAttribute("aria-pressed", String(overlay() === "attention" && q === i));
    });
    readout.textContent = overlay() === "rollout" ? "Rollout from " + tokens[0] + " (the query patch does not apply)" :
      "Query: " + tokens[q] + (hover != null ? " (hover; click to keep)" : "");
  }

  // -- interaction ----------------------------------------------------------------------------
  function patchAt(e) {
    var box = canvas.getBoundingClientRect();
    var c = Math.floor((e.clientX - box.left) / geom.cw), r = Math.floor((e.clientY - box.top) / geom.ch);
    if (r < 0 || c < 0 || r >= rows || c >= cols) return null;
    return first + r * cols + c;
  }

  function select(index) {
    cursor = index >= first ? index : cursor;
    hover = null;
    var patch = { token: { side: "q", index: index }, locked: true };
    if (overlay() !== "attention") patch.overlay = "attention";
    fig.setState(patch);
    fig.announce(text.textContent);
  }

  canvas.addEventListener("mousemove", function (e) {
    var t = patchAt(e);
    if (t == null) return;
    if (overlay() === "rollout") {
      var flow = util.own(image.rollout, String(fig.state.layer)) || [];
      tip.show(tokens[t] + ": rollout " + util.fmt(flow[t - first]), e.clientX, e.clientY);
      return;
    }
    tip.show(tokens[t] + (t === query() ? " (query)" : ": " + util.fmt(weights().values[t - first])), e.clientX, e.clientY);
    if (fig.state.locked) return;  // a kept patch stays; hovering only reads values
    if (t !== hover) { hover = t; draw(); }
  });
  canvas.addEventListener("mouseleave", function () {
    tip.hide();
    if (hover != null) { hover = null; draw(); }
  });
  canvas.addEventListener("click", function (e) {
    var t = patchAt(e);
    if (t == null) return;
    select(t);
    tip.show(tokens[t] + (overlay() === "attention" ? " (query)" : ""), e.clientX, e.clientY);
  });
  stage.addEventListener("keydown", function (e) {
    var p = Math.max(0, cursor - first), r = Math.floor(p / cols), c = p % cols;
    if (e.key === "ArrowLeft") c = Math.max(0, c - 1);
    else if (e.key === "ArrowRight") c = Math.min(cols - 1, c + 1);
    else if (e.key === "ArrowUp") r = Math.max(0, r - 1);
    else if (e.key === "ArrowDown") r = Math.min(rows - 1, r + 1);
    else if (e.key === "Enter" || e.key === " ") { select(cursor); e.preventDefault(); return; }
    else return;
    e.preventDefault();
    cursor = first + r * cols + c;
    if (!fig.state.locked && overlay() === "attention") hover = cursor;
    draw();
    fig.announce(tokens[cursor] + (overlay() === "attention" && !fig.state.locked ? ": " + text.textContent : ""));
  });
  stage.addEventListener("focus", draw);
  stage.addEventListener("blur", function () {
    if (hover != null && !fig.state.locked) hover = null;
    draw();
  });

  picture.onload = function () { pictureReady = true; draw(); };
  picture.src = image.src;  // a data URI: it loads from file:// with the network off
  layout();
  fig.onTheme(draw);
  var resizeObserver = typeof ResizeObserver === "function" ? new ResizeObserver(function () {
    var before = geom.w;
    var width = fig.body.clientWidth || MAX_SIDE;
    if (Math.max(96, Math.min(MAX_SIDE, width - 4)) !== before) { layout(); draw(); }
  }) : null;
  if (resizeObserver) resizeObserver.observe(fig.body);
  draw();

  // -- export -------------------------------------------------------------------------------
  function toSVG() {
    var colors = fig.colors(), data = weights(), top = max(data.values);
    var w = geom.w, h = geom.h, svg = util.svgDoc(w, h + 24, colors);
    svg.add("image", { href: image.src, x: 0, y: 0, width: w, height: h, preserveAspectRatio: "none" });
    for (var r = 0; r < rows; r++) {
      for (var c = 0; c < cols; c++) {
        svg.add("rect", { x: c * geom.cw, y: r * geom.ch, width: geom.cw, height: geom.ch, fill: patchStyle(top > 0 ? data.values[r * cols + c] / top : 0, colors) });
      }
    }
    svg.add("text", { x: 4, y: h + 16, fill: colors.muted }, describe(data));
    return svg.toString();
  }

  return {
    update: function (changes) {
      if ("layer" in changes) layerCtl.set(fig.state.layer);
      if ("heads" in changes || "section" in changes) headBar.sync();
      if ("overlay" in changes) overlayCtl.set(overlay());
      if ("token" in changes) {
        var t = fig.state.token;
        if (t && t.index >= first) cursor = t.index;
        if (!t) hover = null;
      }
      draw();
    },
    toSVG: toSVG,
    exportLabel: function () {
      return weights().what;
    },
    escape: function () {
      if (hover != null) { hover = null; draw(); return true; }
      return false;
    },
    destroy: function () { if (resizeObserver) resizeObserver.disconnect(); },
  };
}

attndocs.registerView("patch", patchView);
