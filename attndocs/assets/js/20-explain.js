// attndocs explanations shared by every view: the scale weights are drawn on, the value
// tooltip by the pointer, colour keys, the visible keyboard help, Escape, and the frame an
// export carries (model, layer, head above the drawing; the colour keys below it).
//
//  attndocs.explain.scale(fig) -> "fixed" | "head"   (fig.state.scale, "fixed" by default)
//  attndocs.explain.maxCode(codes) -> the largest quantised code (a head's maximum weight)
//  attndocs.explain.tip(fig) -> {show(text, clientX, clientY), showBy(element, text), hide()}
//                   one tooltip per figure, kept inside the figure; what it shows is also
//                   said in the live region (once the pointer rests)
//  attndocs.explain.key(fig, host, spec?) -> {el, set(spec)}: a colour key. spec:
//                   {label, lo, hi, from, to}: a ramp from colour `from` (at lo) to `to`
//                   (at hi), or {label, items: [{color, text}]}: named swatches
//  attndocs.explain.frameSVG(fig, svg) -> the export: svg under a title and over the keys
//  attndocs.explain.exportName(fig, ext) -> "<figure>-<view>-layer<L>.<ext>"
//
//  Optional view hooks: view.escape() closes what the view has open and returns true (else
//  false: Escape then clears the selection); view.exportLabel() -> the export's second title
//  line (default: section, layer, heads); view.exportLayer() -> the layer the file name
//  says, or null for a picture of every layer (default: fig.state.layer).

var util = attndocs.util;
var el = util.el;
var explain = attndocs.explain = {};

explain.scale = function (fig) {
  return fig.state.scale === "head" ? "head" : "fixed";
};

explain.maxCode = function (codes) {
  var m = 0;
  for (var i = 0; i < codes.length; i++) if (codes[i] > m) m = codes[i];
  return m;
};

// The weight that gets full colour: 1 on the fixed scale (every head and section on one
// scale, so a flat head stays pale), the head's own maximum on the "head" scale.
explain.full = function (fig, max) {
  return explain.scale(fig) === "head" && max > 0 ? max : 1;
};

// -- the value tooltip -----------------------------------------------------------------------
explain.tip = function (fig) {
  if (fig._tip) return fig._tip;
  // Hidden from assistive technology: the live region says the same text.
  var node = el("div", { class: "attndocs-tip", id: fig.uid("tip"), hidden: true, "aria-hidden": "true" });
  fig.frame.appendChild(node);
  var said = null, timer = null;

  function place(x, y) {
    var frame = fig.frame.getBoundingClientRect();
    var w = node.offsetWidth, h = node.offsetHeight, room = fig.frame.clientWidth;
    var left = x - frame.left + 12, top = y - frame.top + 16;
    // Beside the pointer, flipped to its other side near the edges: always inside the figure.
    if (left + w > room) left = x - frame.left - w - 12;
    if (top + h > fig.frame.clientHeight) top = y - frame.top - h - 12;
    node.style.left = Math.round(util.clamp(left, 0, Math.max(0, room - w))) + "px";
    node.style.top = Math.round(util.clamp(top, 0, Math.max(0, fig.frame.clientHeight - h))) + "px";
  }

  function show(text, x, y) {
    if (node.textContent !== text) node.textContent = text;
    node.hidden = false;
    place(x, y);
    // Said once the pointer rests, so sweeping across a drawing does not flood a reader.
    if (text !== said) {
      clearTimeout(timer);
      timer = setTimeout(function () { said = text; fig.announce(text); }, 250);
    }
  }

  fig._tip = {
    el: node,
    show: show,
    showBy: function (target, text) {
      var r = target.getBoundingClientRect();
      show(text, r.left + Math.min(r.width, 40), r.top + r.height / 2);
    },
    // What it shows was said another way already (a key press announces its cell).
    quiet: function () {
      clearTimeout(timer);
      said = node.textContent;
    },
    hide: function () {
      clearTimeout(timer);
      node.hidden = true;
      said = null;
    },
  };
  fig.onDestroy(function () { clearTimeout(timer); });
  return fig._tip;
};

// -- colour keys -----------------------------------------------------------------------------
// The ends of a scale: whole numbers as such ("0", "1"), others as the figure writes numbers.
function endText(x) {
  return x === Math.round(x) && Math.abs(x) < 1e4 ? String(x) : util.fmt(x);
}
explain.endText = endText;

explain.key = function (fig, host, spec) {
  var box = el("div", { class: "attndocs-key", role: "img" });
  var label = el("span", { class: "attndocs-key-label" });
  var lo = el("span", { class: "attndocs-key-lo" });
  var hi = el("span", { class: "attndocs-key-hi" });
  var bar = fig.canvas(96, 10);
  bar.classList.add("attndocs-key-bar");
  var items = el("span", { class: "attndocs-key-items" });
  // The ends stay beside the bar: the label may wrap above it in a narrow column, "1" may not.
  var ramp = el("span", { class: "attndocs-key-ramp" }, [lo, bar, hi]);
  box.appendChild(label);
  box.appendChild(ramp);
  box.appendChild(items);
  host.appendChild(box);
  var key = { el: box, spec: null };

  function paint() {
    var s = key.spec;
    if (!s) return;
    var ramp = !s.items;
    lo.hidden = hi.hidden = bar.hidden = !ramp;
    box.querySelector(".attndocs-key-ramp").hidden = !ramp;
    items.hidden = ramp;
    label.textContent = s.label;
    if (ramp) {
      lo.textContent = endText(s.lo);
      hi.textContent = endText(s.hi);
      var ctx = bar.ctx, w = bar.cssWidth, h = bar.cssHeight;
      var grad = ctx.createLinearGradient(0, 0, w, 0);
      grad.addColorStop(0, s.from);
      grad.addColorStop(1, s.to);
      ctx.clearRect(0, 0, w, h);
      ctx.fillStyle = grad;
      ctx.fillRect(0, 0, w, h);
      box.setAttribute("aria-label", "Colour key: " + s.label + ", from " + endText(s.lo) + " to " + endText(s.hi));
    } else {
      items.textContent = "";
      s.items.forEach(function (item) {
        var swatch = item.color ? el("span", { class: "attndocs-key-swatch" }) : null;
        if (swatch) swatch.style.background = item.color;
        items.appendChild(el("span", { class: "attndocs-key-item" }, [swatch, item.text]));
      });
      box.setAttribute("aria-label", "Colour key: " + s.label + " " + s.items.map(function (i) { return i.text; }).join(", "));
    }
  }
  key.set = function (next) { key.spec = next; paint(); };
  // Keys of drawings that were rebuilt leave the list (an export shows the keys on screen).
  fig._colourKeys = (fig._colourKeys || []).filter(function (k) { return k.el.isConnected; }).concat([key]);
  if (spec) key.set(spec);
  return key;
};

// -- the export's frame ------------------------------------------------------------------------
function slug(text) {
  return String(text || "").toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 60);
}

// What the export shows: model, section, layer and head(s) (a view may say it better).
explain.describe = function (fig) {
  if (fig.view && fig.view.exportLabel) return fig.view.exportLabel();
  var s = fig.state, parts = [];
  if (fig.header.sectionOrder.length > 1) parts.push(attndocs._sectionLabel(s.section));
  if (s.layer != null) parts.push("layer " + s.layer);
  var heads = s.heads || [];
  if (heads.length) parts.push((heads.length === 1 ? "head " : "heads ") + attndocs._ranges(heads));
  return parts.join(" \u00b7 ");
};

explain.exportName = function (fig, ext) {
  var name = slug(fig.el.getAttribute("data-attndocs-name")) || "attention-" + (slug(String(fig.header.model.id || "").split("/").pop()) || "figure");
  name += "-" + fig.header.view;
  var what = fig.view && fig.view.exportLayer ? fig.view.exportLayer() : fig.state.layer;
  if (what != null) name += "-layer" + what;
  return name + "." + ext;
};

explain.frameSVG = function (fig, svg) {
  var size = svg.match(/<svg[^>]*?\swidth="([\d.]+)"[^>]*?\sheight="([\d.]+)"/);
  var w = size ? +size[1] : 400, h = size ? +size[2] : 300;
  var inner = svg.replace(/^<\?xml[^>]*\?>\s*/, "");
  var colors = fig.colors();
  var model = String(fig.header.model.id || "model");
  var title = explain.describe(fig);
  var keys = (fig._colourKeys || []).filter(function (k) { return k.spec && k.el.isConnected && !k.el.closest("[hidden]"); });
  var head = 44, keyH = keys.length ? 10 + keys.length * 22 : 0;
  var keyW = keys.map(function (k) {
    var s = k.spec, n = s.label.length * 6.5 + 20;
    return s.items ? s.items.reduce(function (a, item) { return a + 30 + item.text.length * 6.5; }, n) : n + 170;
  });
  var width = Math.max.apply(null, [w, model.length * 7.5 + 16, title.length * 7 + 16, 360].concat(keyW));
  var doc = util.svgDoc(width, head + h + keyH, colors);
  doc.add("text", { x: 8, y: 17, fill: colors.fg, "font-weight": "600", class: "attndocs-export-model" }, model);
  doc.add("text", { x: 8, y: 35, fill: colors.fg, class: "attndocs-export-title" }, title);
  doc.raw('<g transform="translate(0 ' + head + ')">' + inner + "</g>");
  keys.forEach(function (k, i) {
    var s = k.spec, y = head + h + 10 + i * 22, x = 8;
    doc.raw('<g class="attndocs-export-key">');
    doc.add("text", { x: x, y: y + 13, fill: colors.muted }, s.label);
    x += s.label.length * 6.5 + 12;
    if (!s.items) {
      var id = fig.uid("key" + i);
      doc.raw('<defs><linearGradient id="' + util.escapeXML(id) + '"><stop offset="0" stop-color="' + util.escapeXML(s.from) +
        '"/><stop offset="1" stop-color="' + util.escapeXML(s.to) + '"/></linearGradient></defs>');
      doc.add("text", { x: x, y: y + 13, fill: colors.muted, class: "attndocs-export-lo" }, endText(s.lo));
      x += endText(s.lo).length * 7 + 6;
      doc.add("rect", { x: x, y: y + 3, width: 96, height: 12, fill: "url(#" + id + ")", stroke: colors.grid, class: "attndocs-export-ramp" });
      doc.add("text", { x: x + 102, y: y + 13, fill: colors.muted, class: "attndocs-export-hi" }, endText(s.hi));
    } else {
      s.items.forEach(function (item) {
        var sw = item.color ? 16 : 0;
        if (item.color) doc.add("rect", { x: x, y: y + 3, width: 12, height: 12, fill: item.color });
        doc.add("text", { x: x + sw, y: y + 13, fill: colors.muted }, item.text);
        x += sw + item.text.length * 6.5 + 14;
      });
    }
    doc.raw("</g>");
  });
  return doc.toString();
};

// -- what the named head roles mean (25-roles.js shows them; docs/head-roles.md says more) ---
explain.ROLE_HELP = {
  sink: "Why does every token attend to the first one? A head must spread a total weight of 1 over the keys, even when " +
    "it has nothing to look up for a token; many heads then park their weight on the first token or a special token " +
    "([CLS], [SEP], <s>, </s>), whose value changes little. A high sink score says the head is mostly idle on this text, " +
    "not that the first token matters. Cross attention parks the same way, on <s>, </s> and often on \u201c.\u201d " +
    "(punctuation is not counted in this score).",
  previous: "Reads the token just before: how a model learns word order and bigrams.",
  current: "Each token mostly looks at itself.",
  broad: "Spreads its weight evenly: an average over the text. Untrained heads are broad too.",
  induction: "In repeated text, looks at the token that came after the previous occurrence of the current token, " +
    "the pattern that lets a model continue a sequence it has seen (in-context copying).",
};

// -- keyboard help ---------------------------------------------------------------------------
var KEYS = [
  ["Tab", "moves from one group of controls to the next", null],
  ["\u2190 \u2192 \u2191 \u2193", "move within a group: buttons, tokens, heads, cells", null],
  ["Home / End", "first / last item of a group", null],
  ["Enter", "locks the selected token (again: releases it)", ["head", "model", "neuron", "matrix"]],
  ["Enter", "opens the head", ["model", "summary"]],
  ["Enter", "keeps the patch under the cursor (the arrow keys move it over the picture)", ["patch"]],
  ["Shift+Enter", "shows only this head", ["head", "patch"]],
  ["Escape", "closes what is open (this help, a head's detail), then clears the selection", null],
  ["Hover or focus", "shows a weight by the pointer", null],
];

explain.helpControl = function (fig) {
  var panel = el("div", { class: "attndocs-helppanel", id: fig.uid("keys"), hidden: true, role: "region", "aria-label": "Keyboard and mouse" });
  var list = el("dl", { class: "attndocs-helpkeys" });
  KEYS.forEach(function (k) {
    if (k[2] && k[2].indexOf(fig.header.view) < 0) return;
    list.appendChild(el("dt", null, [el("kbd", { text: k[0] })]));
    list.appendChild(el("dd", { text: k[1] }));
  });
  panel.appendChild(list);
  (fig._helpNotes || []).forEach(function (note) { panel.appendChild(note); });  // a module's own help (25-roles.js)
  var button = el("button", {
    type: "button", class: "attndocs-button attndocs-helpbutton", text: "?", title: "Keyboard and mouse",
    "aria-label": "Keyboard and mouse help", "aria-expanded": "false", "aria-controls": fig.uid("keys"),
  });
  function set(open) {
    panel.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
  }
  button.addEventListener("click", function () { set(panel.hidden); });
  fig.controls.appendChild(button);
  fig.controls.after(panel);
  fig._help = { button: button, panel: panel, isOpen: function () { return !panel.hidden; }, close: function () { set(false); button.focus({ preventScroll: true }); } };
  return fig._help;
};

// Escape closes one thing per press: the help, then what the view has open (the model
// view's detail), then the selection. Returns whether it closed something.
explain.escape = function (fig) {
  if (fig._tip) fig._tip.hide();
  if (fig._help && fig._help.isOpen()) { fig._help.close(); return true; }
  if (fig.view && fig.view.escape && fig.view.escape()) return true;
  if (fig.state.token || fig.state.locked) {
    fig.setState({ token: null, locked: false });
    fig.announce("Selection cleared");
    return true;
  }
  return false;
};

// The core calls this once the view has started: the help control, and the export buttons
// as one group (one Tab stop, arrows between them).
explain.decorate = function (fig) {
  var box = fig.controls.querySelector(".attndocs-export");
  if (box) util.roving(box, "button", {});
  explain.helpControl(fig);
};
