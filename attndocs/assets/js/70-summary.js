// attndocs summary view: every layer x head coloured by a statistic (entropy, distance,
// special-token, previous-token share ...), as a grid or a sortable table; each head opens
// in a detail panel with its own small heatmap.

var util = attndocs.util;
var el = util.el;
var kit = attndocs.viewKit;

// Keys match attndocs.analysis.head_statistics; the order is the order of the selector.
var STATS = [
  { key: "entropy", label: "Entropy", short: "Entropy", unit: "nats", help: "how spread out each row is (nats, averaged over query tokens)" },
  { key: "entropy_norm", label: "Entropy (normalised)", short: "Norm. entropy", unit: "", help: "entropy divided by its maximum for the keys each row may see: 1 = uniform, 0 = one key" },
  { key: "distance", label: "Mean distance", short: "Distance", unit: "tokens", help: "average |query position \u2212 key position|, weighted by attention" },
  { key: "special", label: "Special tokens", short: "Special", unit: "share", help: "share of attention on special tokens such as [CLS], [SEP], </s>" },
  { key: "previous", label: "Previous token", short: "Previous", unit: "share", help: "share of attention on the token just before the query" },
  { key: "self", label: "Self", short: "Self", unit: "share", help: "share of attention a token gives itself" },
  { key: "cross_ab", label: "A \u2194 B", short: "A\u2194B", unit: "share", help: "share of attention crossing between sentence A and sentence B" },
];

function summaryView(fig) {
  var header = fig.header;
  var analysis = header.analysis && header.analysis.sections ? header.analysis.sections : null;
  if (!analysis || !header.sectionOrder.some(function (n) { return analysis[n]; })) {
    fig.body.appendChild(kit.note("No head statistics:", "this figure's payload was built without them."));
    return { update: function () {} };
  }
  // Defaults and allowed values come from attndocs/state.py (SUMMARY_STATS, SUMMARY_LAYOUTS).
  fig.defineState(["stat", "layout"]);
  var names = header.sectionOrder.filter(function (n) { return analysis[n]; });
  // A link may only open a section that has statistics.
  fig.defineState({}, { section: names });
  if (names.indexOf(fig.state.section) < 0) fig.setState({ section: names[0] }, true);
  var sort = { key: null, desc: false };

  function data() { return analysis[fig.state.section]; }

  function stats() {
    var d = data();
    return STATS.filter(function (s) { return d.stats[s.key]; });
  }

  function stat() {
    var list = stats(), key = fig.state.stat;
    for (var i = 0; i < list.length; i++) if (list[i].key === key) return list[i];
    return list[0];
  }

  function openHead() {
    var d = data();
    var layer = d.layers.indexOf(fig.state.layer) >= 0 ? fig.state.layer : d.layers[0];
    var head = kit.headOf(fig);
    return { layer: layer, head: d.heads.indexOf(head) >= 0 ? head : d.heads[0] };
  }

  function value(key, li, hi) {
    var table = data().stats[key];
    return table ? table[li][hi] : null;
  }

  // -- controls ---------------------------------------------------------------------------
  var sectionCtl = kit.sectionControl(fig, names, function (name) { fig.setState({ section: name, token: null }); });
  var statCtl = null;
  var layoutCtl = util.buttons("Layout", [{ value: "grid", label: "Grid" }, { value: "table", label: "Table" }], fig.state.layout,
    function (v) { fig.setState({ layout: v }); });
  function buildStatControl() {
    var next = util.select("Statistic", stats().map(function (s) { return { value: s.key, label: s.label }; }), stat().key,
      function (key) { fig.setState({ stat: key }); });
    statCtl = statCtl ? kit.swap(statCtl, next) : next;
  }
  buildStatControl();
  if (sectionCtl) fig.controls.appendChild(sectionCtl);
  fig.controls.appendChild(statCtl);
  fig.controls.appendChild(layoutCtl);
  var roleUI = attndocs.roles.summaryView(fig);  // 25-roles.js: named head roles

  var help = el("p", { class: "attndocs-shelp" });
  var main = el("div", { class: "attndocs-smain" });
  var detail = el("div", { class: "attndocs-sdetail" });
  fig.body.appendChild(help);
  fig.body.appendChild(el("div", { class: "attndocs-summary" }, [main, detail]));
  var explain = attndocs.explain, tip = explain.tip(fig);
  var statKey = explain.key(fig, fig.body), miniKey = null;
  statKey.el.classList.add("attndocs-slegend");
  function cellTip(node, e) {
    var s = stat(), text = "Layer " + node.getAttribute("data-layer") + ", head " + node.getAttribute("data-head") + ": " +
      s.label + " " + node.textContent + (s.unit && s.unit !== "share" ? " " + s.unit : "") +
      (roleUI ? roleUI.note(+node.getAttribute("data-layer"), +node.getAttribute("data-head")) : "");
    if (e) tip.show(text, e.clientX, e.clientY);
    else tip.showBy(node, text);
  }
  main.addEventListener("mousemove", function (e) {
    var node = e.target.closest ? e.target.closest(".attndocs-scell") : null;
    if (node) cellTip(node, e);
    else tip.hide();
  });
  main.addEventListener("mouseleave", function () { tip.hide(); });
  main.addEventListener("focusin", function (e) {
    if (e.target.classList.contains("attndocs-scell") && e.target.matches(":focus-visible")) cellTip(e.target, null);
  });
  main.addEventListener("focusout", function () { tip.hide(); });

  function open(layer, head) {
    fig.setState({ layer: layer, heads: [head] });
    fig.announce("Opened layer " + layer + ", head " + head + ": " + stats().map(function (s) {
      var d = data();
      return s.label + " " + util.fmt(value(s.key, d.layers.indexOf(layer), d.heads.indexOf(head)));
    }).join(", "));
  }

  function range(key) {
    var table = data().stats[key], lo = Infinity, hi = -Infinity;
    table.forEach(function (row) {
      row.forEach(function (v) {
        if (v == null) return;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      });
    });
    return lo <= hi ? [lo, hi] : [0, 1];
  }

  // Readable text on a cell: the theme's fg or bg, whichever differs more in brightness.
  function textOn(rgbValue, colors) {
    function lum(c) { return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]; }
    var l = lum(rgbValue), fg = lum(kit.rgb(colors.fg)), bg = lum(kit.rgb(colors.bg));
    return Math.abs(l - fg) >= Math.abs(l - bg) ? colors.fg : colors.bg;
  }

  function renderGrid() {
    var d = data(), s = stat(), colors = fig.colors(), r = range(s.key), ramp = kit.ramp(colors.bg, colors.accent);
    var now = openHead();
    var grid = el("div", {
      class: "attndocs-sgrid", role: "grid", "aria-label": s.label + " per layer (rows) and head (columns)",
      style: "grid-template-columns:auto repeat(" + d.heads.length + ",minmax(max-content,4.5em))",
    });
    grid.appendChild(el("div", { class: "attndocs-scorner", role: "presentation", text: "layer \\ head" }));
    d.heads.forEach(function (h) { grid.appendChild(el("div", { class: "attndocs-shead", role: "columnheader", text: String(h) })); });
    d.layers.forEach(function (layer, li) {
      grid.appendChild(el("div", { class: "attndocs-shead", role: "rowheader", text: String(layer) }));
      d.heads.forEach(function (head, hi) {
        var v = value(s.key, li, hi), t = r[1] > r[0] ? (v - r[0]) / (r[1] - r[0]) : 0.5;
        var c = ramp(t), selected = now.layer === layer && now.head === head;
        var cell = el("button", {
          type: "button", role: "gridcell", class: "attndocs-scell" + (selected ? " attndocs-selected" : ""),
          "data-layer": String(layer), "data-head": String(head), "aria-selected": String(selected),
          "aria-label": "Layer " + layer + ", head " + head + ": " + s.label + " " + util.fmt(v),
          title: "layer " + layer + ", head " + head + ": " + util.fmt(v) + (s.unit ? " " + s.unit : ""),
          style: "background-color:" + kit.css(c) + ";color:" + textOn(c, colors),
          text: util.fmt(v),
          on: { click: function () { open(layer, head); } },
        });
        if (roleUI) roleUI.mark(cell, layer, head);
        grid.appendChild(cell);
      });
    });
    var nh = d.heads.length;
    var nav = util.roving(grid, ".attndocs-scell", {
      onKey: function (e, i) {
        if (e.key === "ArrowUp" || e.key === "ArrowDown") {
          nav.focusAt(i + (e.key === "ArrowUp" ? -nh : nh));
          return true;
        }
        return false;
      },
      onEnter: function (node) { open(+node.getAttribute("data-layer"), +node.getAttribute("data-head")); },
    });
    statKey.set({ label: "colour: " + s.label.toLowerCase() + (s.unit ? " (" + s.unit + ")" : ""), lo: r[0], hi: r[1], from: colors.bg, to: colors.accent });
    main.textContent = "";
    main.appendChild(grid);
    main.appendChild(statKey.el);  // under the grid it explains (the table has no colours)
    // Keep keyboard focus on the opened head after a redraw.
    var focusIndex = d.layers.indexOf(now.layer) * nh + d.heads.indexOf(now.head);
    grid.querySelectorAll(".attndocs-scell").forEach(function (node, i) { node.tabIndex = i === focusIndex ? 0 : -1; });
  }

  function renderTable() {
    var d = data(), list = stats(), current = stat(), now = openHead();
    var rows = [];
    d.layers.forEach(function (layer, li) {
      d.heads.forEach(function (head, hi) {
        var row = { layer: layer, head: head };
        list.forEach(function (s) { row[s.key] = value(s.key, li, hi); });
        if (roleUI) row.roles = roleUI.column.value(layer, head);
        rows.push(row);
      });
    });
    if (sort.key) {
      var k = sort.key, sign = sort.desc ? -1 : 1;
      rows.sort(function (a, b) {
        var x = a[k], y = b[k];
        if (x == null || y == null) return (x == null) - (y == null);
        return sign * (x - y) || a.layer - b.layer || a.head - b.head;
      });
    }
    var columns = [{ key: "layer", label: "Layer" }, { key: "head", label: "Head" }].concat(list.map(function (s) {
      return { key: s.key, label: s.short, title: s.help };
    })).concat(roleUI ? [roleUI.column] : []);
    var headRow = el("tr");
    columns.forEach(function (col) {
      var sorted = sort.key === col.key;
      var button = el("button", {
        type: "button", class: "attndocs-ssort", text: col.label, title: col.title ? col.title + " (click to sort)" : "click to sort",
        on: { click: function () {
          sort = { key: col.key, desc: sort.key === col.key ? !sort.desc : col.key !== "layer" && col.key !== "head" };
          renderMain();
        } },
      });
      headRow.appendChild(el("th", {
        scope: "col", class: col.key === current.key ? "attndocs-scurrent" : null,
        "aria-sort": sorted ? (sort.desc ? "descending" : "ascending") : "none",
      }, [button]));
    });
    var body = el("tbody");
    rows.forEach(function (row) {
      var selected = row.layer === now.layer && row.head === now.head;
      var tr = el("tr", {
        class: "attndocs-srow" + (selected ? " attndocs-selected" : ""), tabindex: "-1",
        "data-layer": String(row.layer), "data-head": String(row.head), "aria-selected": String(selected),
        on: { click: function () { open(row.layer, row.head); } },
      });
      columns.forEach(function (col) {
        var v = row[col.key];
        tr.appendChild(el("td", {
          class: col.key === current.key ? "attndocs-scurrent" : null,
          text: col.text ? col.text(row.layer, row.head) : col.key === "layer" || col.key === "head" ? String(v) : util.fmt(v),
        }));
      });
      if (roleUI) roleUI.mark(tr, row.layer, row.head);
      body.appendChild(tr);
    });
    util.roving(body, ".attndocs-srow", {
      vertical: true,
      onEnter: function (node) { open(+node.getAttribute("data-layer"), +node.getAttribute("data-head")); },
    });
    var table = el("table", { class: "attndocs-stable" }, [
      el("caption", { class: "attndocs-sr", text: "Head statistics of the " + kit.sectionLabel(fig.state.section) + " attention; click a column to sort, a row to open the head" }),
      el("thead", null, [headRow]), body,
    ]);
    main.textContent = "";
    main.appendChild(el("div", { class: "attndocs-stablebox" }, [table]));
  }

  function renderMain() {
    var s = stat();
    help.textContent = kit.sectionLabel(fig.state.section) + " attention \u00b7 " + s.label + ": " + s.help + ".";
    if (fig.state.layout === "table") renderTable();
    else renderGrid();
  }

  // The opened head: its statistics and a small heatmap of its attention.
  function renderDetail() {
    var now = openHead(), name = fig.state.section;
    var label = "Loading layer " + now.layer + ", head " + now.head + "\u2026";
    if (!fig.ready("detail", fig.missing("attn", name, now.layer, now.head), label, renderDetail, function () {
      detail.classList.add(kit.WAITING);
      detail.lastImage = null;
    })) return;
    detail.classList.remove(kit.WAITING);
    var d = data(), info = header.sections[name];
    var rows = info.shape[0], cols = info.shape[1];
    var cell = Math.max(1, Math.min(12, Math.floor(240 / Math.max(rows, cols, 1))));
    var canvas = fig.canvas(cols * cell, rows * cell);
    canvas.classList.add("attndocs-smini");
    var values = fig.attn(name, now.layer, now.head), colors = fig.colors();
    var vmax = 0;
    for (var i = 0; i < values.length; i++) if (values[i] > vmax) vmax = values[i];
    vmax = explain.full(fig, vmax);  // 1 on the fixed scale: a flat head stays pale
    var ramp = kit.ramp(colors.bg, colors.accent), masked = kit.rgb(colors.grid).concat([110]);
    var image = kit.image(cols, rows, function (x, y) {
      if (info.causal && x >= kit.keptColumns(rows, cols, y)) return masked;
      return ramp(vmax > 0 ? values[y * cols + x] / vmax : 0);
    });
    kit.blit(canvas.ctx, image, 0, 0, cols * cell, rows * cell);
    var li = d.layers.indexOf(now.layer), hi = d.heads.indexOf(now.head);
    var list = el("dl", { class: "attndocs-sstats" });
    stats().forEach(function (s) {
      list.appendChild(el("dt", { text: s.label }));
      list.appendChild(el("dd", { text: util.fmt(value(s.key, li, hi)) + (s.unit && s.unit !== "share" ? " " + s.unit : "") }));
    });
    if (roleUI) roleUI.detail(list, now.layer, now.head);
    detail.textContent = "";
    detail.appendChild(el("h4", { class: "attndocs-stitle", text: "Layer " + now.layer + " \u00b7 head " + now.head }));
    detail.appendChild(el("div", { class: "attndocs-sminibox", title: "rows: query tokens, columns: key tokens" }, [canvas]));
    detail.appendChild(list);
    if (miniKey) detail.appendChild(miniKey.el);
    else miniKey = explain.key(fig, detail);
    miniKey.set({ label: "heatmap: attention weight", lo: 0, hi: vmax, from: colors.bg, to: colors.accent });
    detail.lastImage = { image: image, w: cols * cell, h: rows * cell };
  }

  function render() {
    renderMain();
    renderDetail();
  }

  render();
  fig.onTheme(render);

  return {
    update: function (changes) {
      if ("section" in changes) {
        buildStatControl();
        if (sectionCtl) sectionCtl.set(fig.state.section);
        sort = { key: null, desc: false };
      }
      if ("stat" in changes) statCtl.set(stat().key);
      if ("layout" in changes) layoutCtl.set(fig.state.layout);
      if (roleUI) roleUI.update(changes);
      if ("section" in changes || "stat" in changes || "layout" in changes || "layer" in changes || "heads" in changes || "scale" in changes || "role" in changes) render();
    },
    exportLabel: function () {
      var now = openHead();
      return (header.sectionOrder.length > 1 ? kit.sectionLabel(fig.state.section) + " \u00b7 " : "") + stat().label +
        " of every head \u00b7 open: layer " + now.layer + ", head " + now.head;
    },
    exportLayer: function () { return openHead().layer; },
    toSVG: function () {
      var d = data(), s = stat(), colors = fig.colors(), r = range(s.key), ramp = kit.ramp(colors.bg, colors.accent);
      var cw = 44, ch = 24, left = 40, top = 50, now = openHead();
      var gridW = left + d.heads.length * cw, mini = detail.lastImage || { image: null, w: 0, h: 0 };
      var width = gridW + 30 + mini.w + 10, height = Math.max(top + d.layers.length * ch, top + mini.h) + 20;
      var svg = util.svgDoc(width, height, colors);
      svg.add("text", { x: 8, y: 18, fill: colors.fg }, kit.sectionLabel(fig.state.section) + " \u00b7 " + s.label + (s.unit ? " (" + s.unit + ")" : ""));
      svg.add("text", { x: left - 6, y: top - 6, fill: colors.muted, "text-anchor": "end", "font-size": 10, class: "attndocs-export-header" }, "layer \\ head");
      d.heads.forEach(function (h, hi) {
        svg.add("text", { x: left + (hi + 0.5) * cw, y: top - 6, fill: colors.muted, "text-anchor": "middle" }, String(h));
      });
      d.layers.forEach(function (layer, li) {
        var y = top + li * ch;
        svg.add("text", { x: left - 6, y: y + ch * 0.65, fill: colors.muted, "text-anchor": "end" }, String(layer));
        d.heads.forEach(function (head, hi) {
          var v = value(s.key, li, hi), t = r[1] > r[0] ? (v - r[0]) / (r[1] - r[0]) : 0.5, c = ramp(t);
          svg.add("rect", { x: left + hi * cw, y: y, width: cw - 1, height: ch - 1, fill: kit.css(c) });
          svg.add("text", { x: left + (hi + 0.5) * cw, y: y + ch * 0.65, fill: textOn(c, colors), "text-anchor": "middle", "font-size": 10 }, util.fmt(v));
        });
      });
      svg.add("text", { x: gridW + 30, y: top - 6, fill: colors.fg }, "Layer " + now.layer + " \u00b7 head " + now.head);
      if (mini.image) {  // none while the head's matrix is still loading
        var big = document.createElement("canvas");
        big.width = mini.w;
        big.height = mini.h;
        kit.blit(big.getContext("2d"), mini.image, 0, 0, mini.w, mini.h);
        svg.add("image", { x: gridW + 30, y: top, width: mini.w, height: mini.h, href: big.toDataURL("image/png"), preserveAspectRatio: "none" });
      }
      return svg.toString();
    },
  };
}

attndocs.registerView("summary", summaryView);
