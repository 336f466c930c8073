// attndocs core: finds figures, decodes their payloads, owns view state, themes and export.
//
// ======================================================================================
//  CONTRACT FOR VIEW AUTHORS (kept stable; any change is made here first)
// ======================================================================================
//
//  Assembly
//    Every file in attndocs/assets/js/*.js is concatenated in sorted file-name order into
//    one attndocs.js. render.py wraps each file as
//        (function (attndocs) { "use strict"; <file> })(window.attndocs);
//    so nothing leaks; the only global is window.attndocs. 00-core.js runs first.
//    Files may only talk to each other through the `attndocs` object.
//
//  Registering a view
//    attndocs.registerView(name, factory)
//      name     "head" | "model" | "neuron" | "matrix" | "summary" (the figure's view option)
//      factory  function (fig) -> view, called once per figure after its payload decoded.
//               It draws into fig.body (and may add controls to fig.controls).
//      view     { update(changes), destroy?(), toSVG?() -> string, defaults?: {...}, escape?(),
//               exportLabel?(), exportLayer?() }: the last three are described in 20-explain.js
//               update(changes) is called after every fig.setState(); `changes` is an
//               object whose keys are the state keys that changed (values: the new values).
//               toSVG() returns a complete standalone SVG document of what is shown now;
//               the core's export buttons use it for both SVG and PNG export.
//    A view may call fig.defineState(["key", ...], {key: [allowed values]}) inside its
//    factory to name its own state keys. Every state key is declared once, in
//    attndocs/state.py (STATE_KEYS): that gives it a figure option of the same name, its
//    default, the author's opening value and the values a link may give, shipped as
//    header.stateKeys; defineState throws for a key not declared there. The optional
//    second argument narrows the allowed values for this figure. Keys are synced to the
//    URL hash; a hash value outside a key's allowed list is ignored. Call it before
//    reading fig.state.
//
//  The fig object
//    fig.el         the <figure class="attndocs-figure"> element
//    fig.id         its element id (deterministic: "attndocs-" + name or content hash)
//    fig.name       the name links use: data-attndocs-name, else fig.id
//    fig.controls   <div> for the view's controls (selectors, buttons); export buttons are
//                   appended by the core after the factory returns
//    fig.body       <div> where the view draws
//    fig.header     the decoded JSON header:
//      .view            "head" | "model" | ...
//      .kind            "encoder" | "decoder" | "encoder-decoder"
//      .model           {id, revision, type}
//      .sides           {encoder|decoder: {tokens[], display[], special[0|1], textBStart|null}}
//      .sections        {encoder|decoder|cross: {rows: sideName, cols: sideName, causal,
//                        shape: [nRows, nCols], layers: [included layer indices],
//                        heads: [included head indices], nLayers, nHeads (model totals),
//                        hasQK, scale, softcap? (Gemma 2's score cap), windows? (per model
//                        layer: its window width or null; payload.window_hidden)}}
//      .sectionOrder    section names in display order
//      .neuron          {available: bool, reason: string|null}
//      .words           (option words only) {style, sides: {side: [[piece, ...] per word]}}: the
//                        tokens are words, each made of these pieces (25-words.js)
//      .wordPieces      (option words, neuron view only) true: drawn per piece all the same
//      .text, .textB, .target   the texts (textB and target only when the figure has them)
//      .generation      (option generate only) {side, promptLength, generated, text, stopped,
//                        settings}: the model wrote tokens promptLength.. of that side (32-steps.js)
//      .options         {layer, heads, includeLayers, includeHeads, display, hash, caption?,
//                        alt?, state?: {key: value} the state keys the author set (token
//                        resolved to {side, index}); caption, alt and state only when set}
//      .stateKeys       (optional) {key: {default, values?}}; by default the view's entry of
//                        attndocs.STATE_KEYS, which attndocs.js carries (attndocs/state.py)
//      .analysis        JSON from attndocs.analysis.payload_extras (null when absent)
//      .extras          {name: {shape}} arrays available through fig.extra(name)
//      .chunks          [{id, length, compression}]: where the data is (10-payload.js)
//
//    Data comes in chunks. Chunk 0 (what the first view draws) is loaded before the view
//    starts; the others (a layer, a head, an aggregate) load when a view asks for them. A
//    view finds what it needs with fig.missing, and draws only when fig.ready says so:
//    until then it hides its old drawing, and the figure shows a loading state. The data
//    accessors return null for what is not loaded yet (a small figure is one chunk: all
//    of it is loaded from the start).
//    fig.missing(what, section, layer, heads) -> [chunk indices not loaded yet] holding
//                   what = "attn" | "qk" | "top" | "overview" of (section, layer, a head or
//                   a list of heads), or what = "extra" with section = the extra's name and
//                   layer = its part (a layer slot of a 3-d extra; null for all)
//    fig.missingAll(what, section, layers, heads): the same over several layers
//    fig.ships(what, section, layer, head) -> whether the payload has such a block at all
//                   ("top": the head view's first layer of a large figure; "overview": the
//                   model view's thumbnails of a large figure)
//    fig.ready(slot, chunks, label, retry, onWait) -> true when `chunks` are loaded: draw
//                   now. Otherwise: onWait() (hide the stale drawing), the loading state
//                   says `label`, and once they are loaded retry() runs, unless a later
//                   call for the same slot replaced this one.
//    fig.load(chunks) -> Promise (quietly, no loading state: a prefetch)
//    fig.attn(section, layer, head) -> Float32Array(rows*cols), row-major (row = query
//                   token, col = key token); layer/head are MODEL indices (as in
//                   header.sections[s].layers/heads). Dequantised ((q/255)^2); causal
//                   sections have zeros above the diagonal. Cached: do not modify it.
//                   null while its chunk is not loaded.
//    fig.attnQ(section, layer, head) -> Uint8Array(rows*cols) of the quantised codes
//                   (0..255, weight = attndocs.DEQUANT[code]); cheaper for dense drawing.
//    fig.top(section, layer, head) -> {starts, keys, codes}: per row, the weights the
//                   all-tokens line drawing shows (codes >= minCode, plus each row's
//                   strongest key), when the payload ships them (fig.ships("top", ...))
//    fig.overview(section, layer, head) -> {codes: Uint8Array(R*C), rows: R, cols: C,
//                   rowEdges, colEdges}: the head max-pooled to bins (bin b holds tokens
//                   rowEdges[b] .. rowEdges[b+1]-1), for thumbnails
//    fig.qk(section, layer, head, row?) -> {q: Float32Array(rows*d), k: Float32Array(cols*d), d,
//                   rowOnly: null, or `row` when only that query row is loaded yet,
//                   bias: Float32Array(rows*cols) | null, scale, softcap: c | null, window:
//                   this layer's width | null, slope: this head's ALiBi slope | null} or null
//                   when the payload has no query/key (see header.neuron.reason) or it is not
//                   loaded. Logits are scale * q.k (c * tanh(scale * q.k / c) with a softcap)
//                   + bias (+ causal mask, + window mask).
//    fig.extra(name) -> {data: Float32Array, shape: [..]} | null (every part loaded)
//    fig.extraPart(name, part) -> Float32Array of one part (a layer slot of a 3-d extra)
//    fig.tokens(sideName) -> display strings; fig.rowSide(section), fig.colSide(section)
//    fig.state      current state (read only; change it with setState). Common keys:
//                     section  section name shown
//                     layer    model layer index
//                     heads    array of selected model head indices
//                     token    null | {side: "q" | "k", index}  "q" = a query token (a row
//                              of the attention matrix, left column of the line view),
//                              "k" = a key token (a column, right column)
//                     locked   bool: token stays selected (Enter / click); only a locked
//                              token goes to the URL hash
//                     filter   "all" | "aa" | "bb" | "ab" | "ba" (sentence A/B, pairs only)
//                     scale    "fixed" (one 0-1 scale for every head and section) | "head"
//                              (each head scaled to its own maximum)
//                   and the view's own (mode, lines, stat, layout, open): attndocs/state.py
//    fig.setState(patch)  merge, call view.update(changes), sync the URL hash
//                   (#<fig.name>/layer=2&heads=0,3&token=q4&locked=1; written at once, or
//                   0.4 s after the last change of a long burst). Hover is cheap: it does
//                   not touch the hash unless the token is locked.
//    fig.colors()   {fg, bg, muted, grid, accent, pos, neg, heads: [css colours]} read from
//                   the theme's CSS custom properties
//    fig.headColor(h) colour of model head h (stable per head index, distinct past 10)
//    fig.onTheme(cb)  cb(colors) after the theme changed (live); redraw there
//    fig.announce(text)  speak text in the figure's ARIA live region
//    fig.canvas(width, height) -> HTMLCanvasElement sized for the device pixel ratio;
//                   canvas.ctx is its 2d context already scaled to CSS pixels;
//                   canvas.resize(width, height) changes its size (clears it)
//    fig.tokenEl(side, index, text, special?) -> <span class="attndocs-token"> real-text
//                   token with role, tabindex=-1 and aria-label; data-side/data-index set
//    fig.section(name) -> header.sections[name]
//    fig.exportSVG() -> string, fig.exportPNG() -> Promise<Blob>  (use view.toSVG)
//    fig.uid(suffix) -> deterministic element id "<fig.id>-<suffix>"
//    fig.onDestroy(cb)
//
//  Helpers for views (attndocs.util)
//    el(tag, attrs, children)  DOM builder; attrs.text sets textContent (never innerHTML);
//                              attrs.on = {event: handler}; other attrs via setAttribute
//    select(label, items:[{value,label}], value, onChange) -> <label> with a <select>
//    buttons(label, items:[{value,label}], value, onChange) -> segmented radio group;
//                              .set(value) updates it
//    svgDoc(width, height, colors) -> {add(tag, attrs, text?), toString()} escaped SVG
//    rgba(cssColor, alpha) -> "rgba(...)";  parseColor(css) -> [r,g,b,a]
//    mix(cssA, cssB, t) -> css colour between the two;  escapeXML(text)
//    diverging(value, maxAbs, colors) -> css colour (colors.neg .. bg .. colors.pos)
//    sequential(value01, colors) -> css colour (bg .. colors.accent)
//    topK(Float32Array, k, mask?) -> [{index, value}] sorted descending
//    fmt(x) -> short number text;  clamp(x, lo, hi)
//    roving(container, selector, {onMove(el, i), onEnter(el, i), vertical})
//                              arrow-key focus movement over items (roving tabindex)
//    has(obj, key) -> own property only;  own(obj, key) -> obj[key] when own, else undefined.
//                              Use them for every lookup by a string that came from a link,
//                              a page or a key press: "constructor" or "__proto__" must not
//                              find Object.prototype's members.
//    attndocs.DEQUANT        Float32Array(256): code -> weight
//    attndocs.components.lines(fig, host, opts) -> the line (head-view) drawing, reusable
//                              by other views (see 30-head.js for its options)
//    attndocs.components.sectionControl(fig) / layerControl(fig) / filterControl(fig) /
//                              headButtons(fig, host, getHeads, onChange): the head view's
//                              controls (encoder/decoder/cross, layer, sentence filter, heads)
//    attndocs.download(blob, fileName)
//
//  Lifecycle (06-boot.js)
//    attndocs.boot(root?) finds the .attndocs-figure elements under root (document by
//    default) that it has not seen yet; it runs on DOMContentLoaded and for figures added
//    later. A page of at most 32 inline figures starts them all at once; otherwise (and
//    for side-file payloads always) a figure starts when it comes within a viewport height
//    of the screen, or at once when a link targets it, the page is printed or focus moves
//    into it. attndocs.figure(nameIdOrElement) -> fig once it started, else null;
//    attndocs.figures() lists the started ones. attndocs.release(root) destroys the figures
//    under root (for hosts that unmount where the document's watch cannot see: shadow roots).
//    The figure element gets data-attndocs-status = "waiting" (not near the viewport yet)
//    | "loading" | "ready" | "error", and data-attndocs-loading = <slot> while a view waits
//    for a chunk (fig.ready). Chunk scripts (embed=file) call attndocs.chunk(id, base64).
//
//  Names, ids and links (04-links.js)
//    A figure with a `name` option carries data-attndocs-name="<name>" and the id
//    "attndocs-<name>" (never the bare name: the host page owns its ids); an unnamed figure
//    has the id "attndocs-<content hash>" and no name. Links say #<name>/key=value&... or
//    #<id>/...; every value from a link is checked against the figure's own keys.
// ======================================================================================

var VERSION = "1";
attndocs.version = VERSION;

var views = new Map();     // view name -> factory
var figures = [];          // live fig objects, in boot order
var byElement = new WeakMap();
var util = attndocs.util = {};
attndocs.components = {};

var hasOwn = Object.prototype.hasOwnProperty;
function has(obj, key) {
  return obj != null && hasOwn.call(obj, key);
}
util.has = has;
util.own = function (obj, key) {
  return has(obj, key) ? obj[key] : undefined;
};

attndocs.registerView = function (name, factory) {
  views.set(name, factory);
};

// By name (what links use) first, then by element id; or by the figure element.
attndocs.figure = function (ref) {
  if (typeof ref === "string") {
    for (var i = 0; i < figures.length; i++) if (figures[i].name === ref) return figures[i];
    for (var j = 0; j < figures.length; j++) if (figures[j].id === ref) return figures[j];
    return null;
  }
  return byElement.get(ref) || null;
};

attndocs.figures = function () {
  return figures.slice();
};

// -- small DOM and colour helpers ---------------------------------------------------------
function el(tag, attrs, children) {
  var node = document.createElement(tag);
  if (attrs) {
    for (var key in attrs) {
      var value = attrs[key];
      if (value == null || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.className = value;
      else if (key === "style") node.style.cssText = value;   // CSSOM, allowed under a strict CSP
      else if (key === "on") for (var ev in value) node.addEventListener(ev, value[ev]);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  if (children) {
    for (var i = 0; i < children.length; i++) {
      var child = children[i];
      if (child == null) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
  }
  return node;
}
util.el = el;

var colorProbe = null;
var colorCache = new Map();  // a Map: colour names come from the host page's CSS
// Any CSS colour -> [r, g, b, a]; the browser does the parsing so named colours work too.
function parseColor(css) {
  var hit = colorCache.get(css);
  if (hit) return hit;
  if (!colorProbe) colorProbe = document.createElement("canvas").getContext("2d");
  colorProbe.fillStyle = "#000";
  colorProbe.fillStyle = css;
  var v = colorProbe.fillStyle, out;
  if (v.charAt(0) === "#") {
    out = [parseInt(v.substr(1, 2), 16), parseInt(v.substr(3, 2), 16), parseInt(v.substr(5, 2), 16), 1];
  } else {
    var m = v.match(/[\d.]+/g) || ["0", "0", "0"];
    out = [+m[0], +m[1], +m[2], m.length > 3 ? +m[3] : 1];
  }
  colorCache.set(css, out);
  return out;
}
util.parseColor = parseColor;

function rgba(css, alpha) {
  var c = parseColor(css);
  return "rgba(" + c[0] + "," + c[1] + "," + c[2] + "," + (+alpha.toFixed(4)) + ")";
}
util.rgba = rgba;

function mix(a, b, t) {
  var x = parseColor(a), y = parseColor(b);
  return "rgb(" + Math.round(x[0] + (y[0] - x[0]) * t) + "," + Math.round(x[1] + (y[1] - x[1]) * t) + "," +
    Math.round(x[2] + (y[2] - x[2]) * t) + ")";
}
util.mix = mix;

function clamp(x, lo, hi) {
  return x < lo ? lo : x > hi ? hi : x;
}
util.clamp = clamp;

util.diverging = function (value, maxAbs, colors) {
  if (!(maxAbs > 0) || !isFinite(value)) return colors.bg;
  var t = clamp(Math.abs(value) / maxAbs, 0, 1);
  return mix(colors.bg, value >= 0 ? colors.pos : colors.neg, Math.sqrt(t));
};

util.sequential = function (value, colors) {
  return mix(colors.bg, colors.accent, clamp(isFinite(value) ? value : 0, 0, 1));
};

util.fmt = function (x) {
  if (x == null || isNaN(x)) return "–";
  if (!isFinite(x)) return x > 0 ? "∞" : "−∞";
  var a = Math.abs(x);
  if (a !== 0 && (a < 0.001 || a >= 10000)) return x.toExponential(1);
  return (a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : a >= 1 ? x.toFixed(2) : x.toFixed(3)).replace("-", "−");
};

util.topK = function (values, k, mask) {
  var out = [];
  for (var i = 0; i < values.length; i++) {
    if (mask && !mask[i]) continue;
    var v = values[i];
    if (out.length < k || v > out[out.length - 1].value) {
      out.push({ index: i, value: v });
      out.sort(function (a, b) { return b.value - a.value || a.index - b.index; });
      if (out.length > k) out.pop();
    }
  }
  return out;
};

function escapeXML(text) {
  return String(text).replace(/[&<>"']/g, function (c) {
    return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
  }).replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, "");
}
util.escapeXML = escapeXML;

// A tiny SVG writer: every attribute value and text is escaped, so tokens stay data.
util.svgDoc = function (width, height, colors) {
  var parts = [];
  var doc = {
    add: function (tag, attrs, text) {
      var s = "<" + tag;
      for (var key in attrs) {
        if (attrs[key] == null) continue;
        var v = attrs[key];
        if (typeof v === "number") v = +v.toFixed(2);
        s += " " + key + '="' + escapeXML(v) + '"';
      }
      parts.push(text == null ? s + "/>" : s + ">" + escapeXML(text) + "</" + tag + ">");
      return doc;
    },
    raw: function (markup) { parts.push(markup); return doc; },
    toString: function () {
      return '<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="' +
        Math.ceil(width) + '" height="' + Math.ceil(height) + '" viewBox="0 0 ' + Math.ceil(width) + " " +
        Math.ceil(height) + '" font-family="system-ui, sans-serif" font-size="12">' +
        '<rect width="100%" height="100%" fill="' + escapeXML(colors.bg) + '"/>' + parts.join("") + "</svg>";
    },
  };
  return doc;
};

// <label>Layer <select></label>; items are {value, label}.
util.select = function (label, items, value, onChange) {
  var select = el("select", { class: "attndocs-select" });
  items.forEach(function (item) {
    var opt = el("option", { value: String(item.value), text: item.label });
    if (String(item.value) === String(value)) opt.selected = true;
    select.appendChild(opt);
  });
  select.addEventListener("change", function () {
    var hit = items.filter(function (item) { return String(item.value) === select.value; })[0];
    onChange(hit ? hit.value : select.value);
  });
  var wrap = el("label", { class: "attndocs-control" }, [el("span", { text: label }), select]);
  wrap.select = select;
  wrap.set = function (v) { select.value = String(v); };
  return wrap;
};

// A segmented radio group (buttons with aria-pressed); arrow keys move between buttons.
util.buttons = function (label, items, value, onChange) {
  var group = el("div", { class: "attndocs-segmented", role: "group", "aria-label": label });
  var buttons = items.map(function (item) {
    var b = el("button", {
      type: "button", class: "attndocs-seg", text: item.label, "data-value": String(item.value),
      title: item.title || null, "aria-pressed": String(String(item.value) === String(value)),
    });
    b.addEventListener("click", function () { onChange(item.value); });
    group.appendChild(b);
    return b;
  });
  group.set = function (v) {
    buttons.forEach(function (b) { b.setAttribute("aria-pressed", String(b.getAttribute("data-value") === String(v))); });
  };
  util.roving(group, "button", {});
  return group;
};

// Roving tabindex: one item of the group is tabbable, arrows move focus between items.
// opts: vertical (bool, default false: left/right), onMove(el, index), onEnter(el, index),
//       onKey(event, index) -> true when it handled the key itself.
util.roving = function (container, selector, opts) {
  opts = opts || {};
  function items() { return Array.prototype.slice.call(container.querySelectorAll(selector)); }
  function focusAt(list, i) {
    i = clamp(i, 0, list.length - 1);
    list.forEach(function (node, j) { node.tabIndex = j === i ? 0 : -1; });
    list[i].focus();
    if (opts.onMove) opts.onMove(list[i], i);
  }
  var initial = items();
  initial.forEach(function (node, j) { node.tabIndex = j === 0 ? 0 : -1; });
  container.addEventListener("keydown", function (e) {
    var list = items();
    var i = list.indexOf(e.target);
    if (i < 0) return;
    if (opts.onKey && opts.onKey(e, i, list)) { e.preventDefault(); return; }
    var prev = opts.vertical ? "ArrowUp" : "ArrowLeft", next = opts.vertical ? "ArrowDown" : "ArrowRight";
    if (e.key === prev) focusAt(list, i - 1);
    else if (e.key === next) focusAt(list, i + 1);
    else if (e.key === "Home") focusAt(list, 0);
    else if (e.key === "End") focusAt(list, list.length - 1);
    else if (e.key === "Enter" && opts.onEnter) opts.onEnter(list[i], i);
    else return;
    e.preventDefault();
  });
  return { focusAt: function (i) { focusAt(items(), i); }, items: items };
};

// -- themes -------------------------------------------------------------------------------
var media = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

// The host page's own light/dark switch, or null when it has none. Furo keeps it on
// body[data-theme] (light|dark|auto), pydata on html[data-theme], Material on
// data-md-color-scheme (default|slate|custom names: judged by the page background).
function hostTheme() {
  var body = document.body, html = document.documentElement;
  var furo = body && body.getAttribute("data-theme");
  if (furo === "dark" || furo === "light") return furo;
  var pydata = html.getAttribute("data-theme");
  if (pydata === "dark" || pydata === "light") return pydata;
  var md = (body && body.getAttribute("data-md-color-scheme")) || html.getAttribute("data-md-color-scheme");
  if (md === "slate") return "dark";
  if (md === "default") return "light";
  if (md) return backgroundIsDark(body || html) ? "dark" : "light";
  // Notebook front-ends: JupyterLab marks its theme on body, VS Code uses body classes.
  var jupyter = body && body.getAttribute("data-jp-theme-light");
  if (jupyter === "true" || jupyter === "false") return jupyter === "true" ? "light" : "dark";
  if (body && body.classList.contains("vscode-dark")) return "dark";
  if (body && body.classList.contains("vscode-light")) return "light";
  return null;
}

function backgroundIsDark(node) {
  var c = parseColor(getComputedStyle(node).backgroundColor || "#fff");
  if (c[3] === 0) return false;
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2] < 128;
}

// What is actually painted behind a figure: the first ancestor with an opaque background.
// Themes without a dark mode (alabaster, Read the Docs) stay light when the reader's system
// is dark; themes that switch through CSS alone change this colour with the system. A
// figure in a shadow root (a marimo widget) looks on through the root's host element.
function outward(node) {
  if (node.parentElement) return node.parentElement;
  var root = node.getRootNode ? node.getRootNode() : null;
  return root && root.host ? root.host : null;
}

function backdropTheme(el) {
  for (var node = el && outward(el); node; node = outward(node)) {
    var bg = getComputedStyle(node).backgroundColor;
    if (!bg) continue;
    var c = parseColor(bg);
    if (c[3] > 0.5) return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2] < 128 ? "dark" : "light";
  }
  return null;
}

function resolveTheme(display, el) {
  if (display === "light" || display === "dark") return display;
  return hostTheme() || backdropTheme(el) || (media && media.matches ? "dark" : "light");
}

function refreshThemes() {
  figures.forEach(function (fig) { fig._applyTheme(); });
}

var themeWatching = false;
function watchThemes() {
  if (themeWatching) return;
  themeWatching = true;
  if (media) {
    if (media.addEventListener) media.addEventListener("change", refreshThemes);
    else if (media.addListener) media.addListener(refreshThemes);
  }
  if (window.MutationObserver) {
    var observer = new MutationObserver(refreshThemes);
    var attrs = {
      attributes: true,
      attributeFilter: ["data-theme", "data-md-color-scheme", "data-mode", "data-jp-theme-light", "class", "style"],
    };
    observer.observe(document.documentElement, attrs);
    if (document.body) observer.observe(document.body, attrs);
  }
}

// -- decoding helpers (the payload layout lives in 10-payload.js) ----------------------
var DEQUANT = new Float32Array(256);
for (var qi = 0; qi < 256; qi++) DEQUANT[qi] = (qi / 255) * (qi / 255);
attndocs.DEQUANT = DEQUANT;

// -- the fig object -----------------------------------------------------------------------
var DECODED_BUDGET = 48 * 1024 * 1024;  // bytes of dequantised attention kept per figure

function Figure(root, header, store) {
  var fig = this;
  fig.el = root;
  fig.id = root.id || "attndocs-figure";
  fig.name = root.getAttribute("data-attndocs-name") || fig.id;
  fig.header = header;
  fig._store = store;             // the figure's chunks (10-payload.js)
  fig._waits = Object.create(null);  // slot -> the latest whenLoaded request
  fig._waitLabels = [];           // [slot, label] of what is loading, latest last
  fig._themeCallbacks = [];
  fig._destroyCallbacks = [];
  fig._cache = new Map();
  fig._cacheBytes = 0;
  fig._hashEnabled = header.options.hash !== false;
  // Keyed by state keys, which links name: maps without a prototype, read with has().
  fig._defaults = Object.create(null);
  // The state keys a link may set on this figure, with their defaults and allowed values,
  // as attndocs/state.py declares them (header.stateKeys); views narrow them (defineState).
  fig._keys = stateKeysOf(header);
  // state key -> the values a hash link may set
  fig._allowed = Object.create(null);
  for (var sk in fig._keys || {}) if (has(fig._keys, sk) && fig._keys[sk].values) fig._allowed[sk] = fig._keys[sk].values.slice();
  fig._transient = Object.create(null);
  fig._transient.token = true;
  fig.state = {};
  fig.view = null;

  var frame = root.querySelector(".attndocs-frame") || root;
  frame.textContent = "";
  fig.frame = frame;
  fig.controls = el("div", { class: "attndocs-controls" });
  fig.body = el("div", { class: "attndocs-body" });
  fig.live = el("div", { class: "attndocs-sr", "aria-live": "polite", role: "status", id: fig.uid("live") });
  fig.help = el("p", {
    class: "attndocs-sr", id: fig.uid("help"),
    text: "Tab moves between groups of controls, arrow keys within a group, Enter locks the selection, " +
      "Escape closes what is open and then clears the selection. The ? button lists every key.",
  });
  // Says what is loading (another layer, a head's detail) over the drawing it replaces.
  fig.loadingEl = el("div", { class: "attndocs-loading", role: "status", hidden: true });
  frame.appendChild(fig.controls);
  frame.appendChild(fig.loadingEl);
  frame.appendChild(fig.body);
  frame.appendChild(fig.live);
  frame.appendChild(fig.help);
  frame.setAttribute("aria-describedby", fig.uid("help"));
}
attndocs.Figure = Figure;

Figure.prototype.uid = function (suffix) {
  return this.id + "-" + suffix;
};

// The token the figure comes back to when the pointer leaves it with nothing locked: the
// author's opening token (option token without locked), on the section it was set for; else none.
Figure.prototype.restingToken = function () {
  var t = this._defaults.token;
  return t && this.state.section === this._defaults.section ? { side: t.side, index: t.index } : null;
};

Figure.prototype.section = function (name) {
  return util.own(this.header.sections, name);
};
Figure.prototype.rowSide = function (name) {
  return this.section(name).rows;
};
Figure.prototype.colSide = function (name) {
  return this.section(name).cols;
};
Figure.prototype.tokens = function (sideName) {
  var side = util.own(this.header.sides, sideName);
  return side ? side.display : [];
};

Figure.prototype._remember = function (key, value, bytes) {
  this._cache.set(key, { value: value, bytes: bytes });
  this._cacheBytes += bytes;
  // Evict oldest entries first so long inputs cannot grow memory without bound.
  while (this._cacheBytes > DECODED_BUDGET && this._cache.size > 1) {
    var oldest = this._cache.keys().next().value;
    this._cacheBytes -= this._cache.get(oldest).bytes;
    this._cache.delete(oldest);
  }
  return value;
};

Figure.prototype._recall = function (key) {
  var hit = this._cache.get(key);
  return hit ? hit.value : null;
};

Figure.prototype.attnQ = function (section, layer, head) {
  var key = "q|" + section + "|" + layer + "|" + head;
  var hit = this._recall(key);
  if (hit) return hit;
  var got = attndocs._attnCodes(this, section, layer, head);
  if (!got) return null;
  if (got.view) return got.codes;  // a view into a loaded chunk: free to keep
  return this._remember(key, got.codes, got.codes.byteLength);
};

Figure.prototype.attn = function (section, layer, head) {
  var key = "f|" + section + "|" + layer + "|" + head;
  var hit = this._recall(key);
  if (hit) return hit;
  var codes = this.attnQ(section, layer, head);
  if (!codes) return null;
  var out = new Float32Array(codes.length);
  for (var i = 0; i < codes.length; i++) out[i] = DEQUANT[codes[i]];
  return this._remember(key, out, out.byteLength);
};

Figure.prototype.qk = function (section, layer, head, row) {
  var key = "k|" + section + "|" + layer + "|" + head;
  var hit = this._recall(key);
  if (hit) return hit;
  var value = attndocs._qk(this, section, layer, head, row);
  if (!value) return null;
  if (value.rowOnly != null) return value;  // one query row, until the head's queries load
  var bytes = value.q.byteLength + value.k.byteLength + (value.bias ? value.bias.byteLength : 0);
  return this._remember(key, value, bytes);
};

Figure.prototype.extra = function (name) {
  var key = "x|" + name;
  var hit = this._recall(key);
  if (hit) return hit;
  var value = attndocs._extra(this, name);
  if (!value) return null;
  return this._remember(key, value, value.data.byteLength);
};

Figure.prototype.extraPart = function (name, part) {
  var key = "p|" + name + "|" + part;
  var hit = this._recall(key);
  if (hit) return hit;
  var value = attndocs._extraPart(this, name, part);
  if (!value) return null;
  return this._remember(key, value, value.byteLength);
};

Figure.prototype.top = function (section, layer, head) {
  var key = "t|" + section + "|" + layer + "|" + head;
  var hit = this._recall(key);
  if (hit) return hit;
  var value = attndocs._top(this, section, layer, head);
  if (!value) return null;
  return this._remember(key, value, value.keys.byteLength + value.starts.byteLength);
};

Figure.prototype.overview = function (section, layer, head) {
  return attndocs._overview(this, section, layer, head);
};

// keys: the view's own state keys, by name. Each must be one attndocs/state.py declares
// (header.stateKeys), which gives its default, the author's opening value and the values a
// link may give; a key it does not declare is a view author's mistake and throws. allowed:
// {key: [values]} narrows what links may set for this figure (the neuron view's sections).
Figure.prototype.defineState = function (keys, allowed) {
  var declared = this._keys, names = Array.isArray(keys) ? keys : Object.keys(keys || {});
  for (var i = 0; i < names.length; i++) {
    var key = names[i];
    if (declared && !has(declared, key)) throw new Error("state key '" + key + "' is not declared in attndocs/state.py");
    if (has(this.state, key)) continue;
    // Without a header's declaration (a page built before it) a view's own default stands,
    // where it gives one; the views read a missing key as their first choice.
    if (!declared && Array.isArray(keys)) continue;
    var value = declared ? declared[key].default : keys[key];
    this.state[key] = value;
    this._defaults[key] = value;
  }
  for (var name in allowed || {}) {
    if (!has(allowed, name)) continue;
    var fixed = util.own(this._allowed, name);
    this._allowed[name] = fixed ? allowed[name].filter(function (v) { return fixed.indexOf(v) >= 0; }) : allowed[name];
  }
  if (this._pendingHash) this._applyHashValues(this._pendingHash, true);
};

Figure.prototype.setState = function (patch, quiet) {
  var changes = {}, any = false, synced = false;
  for (var key in patch) {
    if (!has(patch, key)) continue;
    var value = patch[key];
    if (attndocs._links.same(util.own(this.state, key), value)) continue;
    this.state[key] = value;
    changes[key] = value;
    any = true;
    if (!this._transient[key] || (key === "token" && this.state.locked)) synced = true;
  }
  if (!any) return changes;
  if (this.view && this.view.update) this.view.update(changes);
  if (synced && !quiet) this._scheduleHash();
  return changes;
};

// The hash is written just after the change has been painted: history.replaceState is a
// same-document navigation that costs a few milliseconds, which should not delay the frame
// that shows the change. One write is queued at a time and writes the state as it then is,
// so a burst of changes (an arrow key held on a selector) writes once. Browsers throttle
// (Chrome) or refuse (Safari: 100 per 30 s) rapid replaceState calls, so past 40 writes in
// 30 s a write waits 400 ms, and a burst still ends with its last state in the hash.
var hashWrites = [];
function whenIdle(cb) {
  // Idle time comes after the frame has been painted; the timeout covers pages that never
  // idle and hidden tabs.
  if (window.requestIdleCallback) requestIdleCallback(cb, { timeout: 300 });
  else setTimeout(cb, 50);
}
Figure.prototype._scheduleHash = function () {
  var fig = this;
  if (fig._hashQueued) return;
  var now = Date.now();
  while (hashWrites.length && now - hashWrites[0] > 30000) hashWrites.shift();
  var ticket = fig._hashQueued = {};
  var write = function () {
    if (fig._hashQueued !== ticket) return;  // cancelled by a followed link
    fig._hashQueued = null;
    hashWrites.push(Date.now());
    fig._writeHash();
  };
  if (hashWrites.length < 40) whenIdle(write);
  else setTimeout(write, 400);
};

Figure.prototype._writeHash = function () {
  if (!this._hashEnabled || !window.history || !history.replaceState) return;
  var hash = attndocs._links.write(this);
  try {
    history.replaceState(history.state, "", hash);
  } catch (e) {
    // Sandboxed frames (some notebook front-ends) refuse; the state simply is not linkable.
  }
};

// Apply {key: text} from a URL hash (a map without a prototype); what does not fit this
// figure is ignored (see 04-links.js).
Figure.prototype._applyHashValues = function (values, initial) {
  var patch = attndocs._links.read(this, values);
  if (initial) {
    for (var k in patch) this.state[k] = patch[k];
  } else {
    this.setState(patch, true);
  }
};

Figure.prototype.colors = function () {
  if (this._colors) return this._colors;
  var style = getComputedStyle(this.el);
  function v(name, fallback) {
    var value = style.getPropertyValue("--attndocs-" + name).trim();
    return value || fallback;
  }
  var heads = v("heads", "#0072B2,#D55E00,#009E73,#CC79A7,#E69F00,#56B4E9").split(",").map(function (s) {
    return s.trim();
  }).filter(Boolean);
  this._colors = {
    fg: v("fg", "#1f2328"), bg: v("bg", "#ffffff"), muted: v("muted", "#6e7781"), grid: v("grid", "#d0d7de"),
    accent: v("accent", "#0969da"), pos: v("pos", "#0072B2"), neg: v("neg", "#D55E00"), heads: heads,
    theme: this.el.getAttribute("data-attndocs-theme") || "light",
  };
  return this._colors;
};

// Beyond the palette, colours cycle with alternating lighter/darker shades so that heads
// 12..23 differ from 0..11; the head number is always shown next to the colour too.
Figure.prototype.headColor = function (h) {
  var colors = this.colors(), palette = colors.heads, n = palette.length;
  var base = palette[h % n], round = Math.floor(h / n);
  if (round === 0) return base;
  var toward = round % 2 === 1 ? colors.bg : colors.fg;
  return mix(base, toward, Math.min(0.45, 0.3 * Math.ceil(round / 2)));
};

Figure.prototype.onTheme = function (cb) {
  this._themeCallbacks.push(cb);
};

Figure.prototype.onDestroy = function (cb) {
  this._destroyCallbacks.push(cb);
};

Figure.prototype._applyTheme = function () {
  var theme = resolveTheme(this.header.options.display || "auto", this.el);
  if (this.el.getAttribute("data-attndocs-theme") === theme && this._colors) return;
  this.el.setAttribute("data-attndocs-theme", theme);
  this._colors = null;
  var colors = this.colors();
  this._themeCallbacks.forEach(function (cb) { cb(colors); });
};

Figure.prototype.announce = function (text) {
  var live = this.live;
  // Clearing first makes screen readers repeat an identical message.
  live.textContent = "";
  setTimeout(function () { live.textContent = text; }, 30);
  this._lastAnnouncement = text;
};

Figure.prototype.canvas = function (width, height) {
  var canvas = el("canvas", { class: "attndocs-canvas", "aria-hidden": "true" });
  canvas.resize = function (w, h) {
    var ratio = window.devicePixelRatio || 1;
    // Keep the backing store bounded for very long inputs (512 tokens is ~9000 px tall).
    var maxPixels = 24e6;
    if (w * h * ratio * ratio > maxPixels) ratio = Math.max(0.5, Math.sqrt(maxPixels / Math.max(1, w * h)));
    canvas.width = Math.max(1, Math.round(w * ratio));
    canvas.height = Math.max(1, Math.round(h * ratio));
    canvas.style.width = w + "px";
    canvas.style.height = h + "px";
    canvas.cssWidth = w;
    canvas.cssHeight = h;
    canvas.ratio = ratio;
    canvas.ctx = canvas.getContext("2d");
    canvas.ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  };
  canvas.resize(width, height);
  return canvas;
};

Figure.prototype.tokenEl = function (side, index, text, special) {
  var label = (side === "q" ? "query" : side === "k" ? "key" : side) + " token " + (index + 1) + ": " + text;
  var node = el("span", {
    class: "attndocs-token" + (special ? " attndocs-special" : ""), role: "button", tabindex: "-1",
    "data-side": side, "data-index": String(index), "aria-label": label, text: text,
  });
  attndocs.words.token(this, node, side, index);  // a word's pieces, as a tooltip (25-words.js)
  return node;
};

Figure.prototype.exportSVG = function () {
  if (!this.view || !this.view.toSVG) throw new Error("this view cannot be exported");
  // Above the drawing: model, layer, head; below it: the colour keys (20-explain.js).
  return attndocs.explain.frameSVG(this, this.view.toSVG());
};

Figure.prototype.exportPNG = function () {
  var svg = this.exportSVG();
  return new Promise(function (resolve, reject) {
    var url = URL.createObjectURL(new Blob([svg], { type: "image/svg+xml" }));
    var img = new Image();
    img.onload = function () {
      var scale = 2;
      var canvas = document.createElement("canvas");
      canvas.width = Math.max(1, img.naturalWidth * scale);
      canvas.height = Math.max(1, img.naturalHeight * scale);
      var ctx = canvas.getContext("2d");
      ctx.scale(scale, scale);
      ctx.drawImage(img, 0, 0);
      URL.revokeObjectURL(url);
      canvas.toBlob(function (blob) { blob ? resolve(blob) : reject(new Error("PNG encoding failed")); }, "image/png");
    };
    img.onerror = function () {
      URL.revokeObjectURL(url);
      reject(new Error("the SVG could not be rasterised"));
    };
    img.src = url;
  });
};

// "<figure name>-<view>-layer<L>.<ext>", never a hash (see 20-explain.js).
Figure.prototype.exportName = function (ext) {
  return attndocs.explain.exportName(this, ext);
};

Figure.prototype.destroy = function () {
  if (this.view && this.view.destroy) this.view.destroy();
  this._destroyCallbacks.forEach(function (cb) { cb(); });
  var i = figures.indexOf(this);
  if (i >= 0) figures.splice(i, 1);
  this._hashQueued = null;  // a removed figure no longer writes the URL
  // Drop the decoded data: a page that swaps content (notebooks, instant navigation)
  // must not keep every figure it ever showed.
  this._cache.clear();
  this._cacheBytes = 0;
  this._store.clear();
  this._waits = Object.create(null);
  this.view = null;
};

// Figures whose element left the document are destroyed.
function sweepRemoved() {
  figures.slice().forEach(function (fig) {
    if (!fig.el.isConnected) fig.destroy();
  });
}

function download(blob, name) {
  var url = URL.createObjectURL(blob);
  var a = el("a", { href: url, download: name, style: "display:none" });
  document.body.appendChild(a);
  a.click();
  setTimeout(function () { URL.revokeObjectURL(url); a.remove(); }, 0);
}
attndocs.download = download;

function addExportButtons(fig) {
  if (!fig.view || !fig.view.toSVG) return;
  var box = el("div", { class: "attndocs-export", role: "group", "aria-label": "Export" });
  box.appendChild(el("button", {
    type: "button", class: "attndocs-button", text: "PNG", title: "Download the current view as PNG",
    "aria-label": "Download the current view as a PNG image", "data-export": "png",
    on: { click: function () {
      fig.exportPNG().then(function (blob) { download(blob, fig.exportName("png")); }, function (err) {
        fig.announce("Export failed: " + err.message);
      });
    } },
  }));
  box.appendChild(el("button", {
    type: "button", class: "attndocs-button", text: "SVG", title: "Download the current view as SVG",
    "aria-label": "Download the current view as an SVG image", "data-export": "svg",
    on: { click: function () {
      download(new Blob([fig.exportSVG()], { type: "image/svg+xml" }), fig.exportName("svg"));
    } },
  }));
  fig.controls.appendChild(box);
}

// The state keys of a figure's view: attndocs.STATE_KEYS (written into attndocs.js from
// attndocs/state.py), or a header's own stateKeys where one carries them.
function stateKeysOf(header) {
  if (header.stateKeys) return header.stateKeys;
  var all = attndocs.STATE_KEYS;
  return all && has(all, header.view) ? all[header.view] : null;
}

// What the figure opens on: each declared key's default (header.stateKeys), then what the
// author set (header.options.state, checked at build time by attndocs/state.py).
function initialState(header) {
  var o = header.options, opening = o.state || {}, keys = stateKeysOf(header) || {};
  var name = has(opening, "section") && has(header.sections, opening.section) ? opening.section : header.sectionOrder[0];
  var section = header.sections[name];
  var heads = attndocs._links.fitList(o.heads || section.heads, section.heads);
  var state = {
    section: name,
    layer: o.layer != null && section.layers.indexOf(o.layer) >= 0 ? o.layer : section.layers[0],
    heads: heads || [],
    token: null,
    locked: false,
    filter: "all",
  };
  for (var key in keys) {
    if (has(keys, key) && !has(state, key) && keys[key].default != null) state[key] = keys[key].default;
  }
  for (var k in opening) {
    if (has(opening, k) && k !== "section" && k !== "layer" && k !== "heads") state[k] = opening[k];
  }
  return state;
}

function showError(figEl, message) {
  figEl.setAttribute("data-attndocs-status", "error");
  var frame = figEl.querySelector(".attndocs-frame") || figEl;
  frame.textContent = "";
  frame.appendChild(el("div", { class: "attndocs-placeholder", role: "note" }, [
    el("strong", { text: "Attention figure unavailable: " }), message,
  ]));
}

function startFigure(figEl, header, store) {
  var factory = views.get(header.view);
  if (!factory) {
    showError(figEl, "this page's attndocs.js has no '" + header.view + "' view");
    return;
  }
  var fig = new Figure(figEl, header, store);
  byElement.set(figEl, fig);
  figures.push(fig);
  fig.state = initialState(header);
  // A link says how the state differs from what the figure opens on.
  for (var key in fig.state) {
    var value = fig.state[key];
    fig._defaults[key] = Array.isArray(value) ? value.slice() : value;
  }
  var links = attndocs._links;
  var targeted = links.targetOf() === figEl;
  var hash = targeted ? links.parse() : null;
  if (hash) {
    fig._pendingHash = hash.values;
    fig._applyHashValues(hash.values, true);
  }
  fig._applyTheme();
  watchThemes();
  try {
    // A comparison (header.compare) draws the view twice, A and B (36-compare.js).
    fig.view = header.compare && attndocs.compare ? attndocs.compare.start(fig, factory) : factory(fig) || {};
  } catch (err) {
    console.warn("attndocs: the " + header.view + " view failed", err);
    forget(fig);
    showError(figEl, "the " + header.view + " view failed: " + (err && err.message));
    return;
  }
  fig._pendingHash = null;
  addExportButtons(fig);
  attndocs.explain.decorate(fig);
  if (attndocs.steps) attndocs.steps.attach(fig);  // generated tokens and the step control (32-steps.js)
  attndocs.words.decorate(fig);
  // One thing per press: the help, an open detail, then the selection.
  figEl.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && !e.defaultPrevented && attndocs.explain.escape(fig)) e.preventDefault();
  });
  figEl.setAttribute("data-attndocs-status", "ready");
  if (targeted && figEl.scrollIntoView) figEl.scrollIntoView({ block: "start" });
}

// A figure whose start failed leaves the registry, so nothing reaches a half-made view.
function forget(fig) {
  var i = figures.indexOf(fig);
  if (i >= 0) figures.splice(i, 1);
  byElement.delete(fig.el);
  fig._hashQueued = null;
}

var booted = new WeakSet();

// Decode and draw one figure now; 06-boot.js decides when. An error anywhere on the way
// shows in the figure (never a figure stuck "loading").
attndocs._bootNow = function (figEl) {
  if (booted.has(figEl)) return;
  booted.add(figEl);
  figEl.setAttribute("data-attndocs-status", "loading");
  attndocs._loadPayload(figEl).then(function (payload) {
    startFigure(figEl, payload.header, payload.store);
  }).catch(function (err) {
    console.warn("attndocs: cannot start a figure", err);
    var fig = byElement.get(figEl);
    if (fig) forget(fig);
    showError(figEl, err && err.message ? err.message : String(err));
  });
};

attndocs._sweepRemoved = sweepRemoved;
