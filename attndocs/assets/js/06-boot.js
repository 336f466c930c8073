// attndocs boot: when each figure on the page starts (decodes its payload and draws).
//
// Starting every figure at once costs what the whole page holds, not what the reader
// sees: 1,000 figures took seconds and 10,000 left Chromium unresponsive for minutes. So
// a figure starts when it comes within a viewport height of the screen, and at once when
// a link targets it, the page is printed, or focus moves into it. A page of a few inline
// figures starts them all at once, as it always did: that costs little, and keeps every
// figure's tokens findable (Ctrl+F) and its controls in the tab order from the start.
// Side-file payloads always wait for the viewport, so a page fetches what is read.

var links = attndocs._links;
var SELECTOR = ".attndocs-figure[data-attndocs-view]";
var EAGER_FIGURES = 32;     // pages with at most this many figures start them all at once
var MARGIN = "100% 0px";    // how near the screen a figure starts

var seen = new WeakSet();   // figure elements found so far (started or waiting)
var waiting = new Set();    // figure elements not started yet, watched by the observer
var observer = null;

function start(figEl) {
  if (waiting.delete(figEl) && observer) observer.unobserve(figEl);
  reserve(figEl);
  attndocs._bootNow(figEl);
  watchScrolling(figEl);
  releaseWhenDrawn(figEl);
}

// -- reserving a figure's height ----------------------------------------------------------
// The page reserves about the height each figure will draw at (render.py's
// reserved_height, for a ~700 px column); as a figure starts, before it draws, that is
// made good for the width it really has, and it holds until the figure has drawn. The
// sizes follow the views' layouts (rows of 18 px in the head view, 20 px in the neuron
// view, thumbnails and matrix cells sized to the width).
function lines(items, width) { return Math.max(1, Math.ceil(items / Math.max(width, 1))); }

var RESERVE = {
  head: function (s, w, rem) {
    var tokens = Math.max(s.shape[0], s.shape[1]);
    var rowH = tokens > 120 ? 15 : 18;
    return 55 + 26 * lines(50 + 41 * s.heads.length, w) + (w < 300 ? 20 : 0) + Math.min(tokens * rowH, 40 * rem);
  },
  model: function (s, w) {
    var fit = attndocs._thumbLayout ? attndocs._thumbLayout(w, s.heads.length) : { size: 40, perRow: s.heads.length };
    var bands = Math.ceil(s.heads.length / fit.perRow);
    // The role select wraps the control bar onto a second row below about 360 px.
    return 57 + bands * (21 + s.layers.length * (Math.round(fit.size * 1.15) + 5)) + (w < 360 ? 34 : 0) + (w < 300 ? 20 : 0);
  },
  neuron: function (s, w, rem) {
    return 95 + Math.min(s.shape[0] * 20 + 40, 40 * rem) + (w < 420 ? 40 : 0) + (w < 300 ? 20 : 0);
  },
  matrix: function (s, w, rem) {
    var tallest = Math.floor((48 * rem - 130) / Math.max(s.shape[0], 1));
    var cell = Math.max(2, Math.min(48, tallest, Math.floor((w - 57) / Math.max(s.shape[1], 1))));
    if (Math.max(s.shape[0], s.shape[1]) <= 48) cell = Math.max(cell, 10);
    return 67 + Math.min(s.shape[0] * cell + 74, 48 * rem) + (w < 420 ? 36 : 0) + (w < 300 ? 36 : 0);
  },
  summary: function (s, w) {
    var grid = 80 + s.layers.length * 32, gridW = 40 + s.heads.length * 38;
    // Narrow: the detail panel goes below the grid (its last line names the head's roles) and
    // the role select takes a row of the control bar of its own.
    return 70 + (gridW + 270 > w ? grid + 330 + 52 : Math.max(grid, 470)) + (w < 300 ? 36 : 0);
  },
  patch: function (s, w, rem, header) {
    // The image as wide as the column allows, up to 448 px (38-patch.js), keeping its aspect; the
    // control bar wraps onto up to four rows, the head buttons as in the head view, and the line of
    // text under the picture (about 100 characters) onto one row per 720 px.
    var image = header.image || {}, side = Math.min(448, Math.max(w - 4, 96));
    var controls = w >= 600 ? 24 : w >= 400 ? 55 : w >= 300 ? 84 : 102;
    var heads = 28 * (lines(50 + 41 * s.heads.length, w) - 1);
    return 109 + controls + heads + 20 * Math.ceil(720 / Math.max(w, 1)) + Math.round(side * (image.height || 1) / (image.width || 1));
  },
};

function reserve(figEl) {
  var frame = figEl.querySelector(".attndocs-frame"), data = figEl.querySelector(".attndocs-data");
  var estimate = RESERVE[figEl.getAttribute("data-attndocs-view")];
  if (!frame || !data || !estimate || !frame.style.minHeight) return;
  try {
    var header = JSON.parse(data.getAttribute("data-header"));
    var order = header.sectionOrder || Object.keys(header.sections);
    var section = header.sections[order[0]];
    var rem = parseFloat(getComputedStyle(document.documentElement).fontSize) || 16;
    var height = Math.round(estimate(section, frame.clientWidth, rem, header));
    if (height > 0) frame.style.minHeight = height + "px";
  } catch (e) {
    // A header this script cannot read keeps the page's reservation; the figure reports it.
  }
}

// The reservation holds until the figure has drawn; from then on its content decides, as
// the reader changes it.
function releaseWhenDrawn(figEl) {
  var frame = figEl.querySelector(".attndocs-frame");
  if (!frame || !frame.style.minHeight) return;
  function drawn() {
    var status = figEl.getAttribute("data-attndocs-status");
    if (status !== "ready" && status !== "error") return false;
    frame.style.minHeight = "";
    return true;
  }
  if (drawn() || !window.MutationObserver) return;
  var watch = new MutationObserver(function () { if (drawn()) watch.disconnect(); });
  watch.observe(figEl, { attributes: true, attributeFilter: ["data-attndocs-status"] });
}

// -- scroll cues -------------------------------------------------------------------------
// A box narrower (or shorter) than what it holds scrolls; without a cue a reader cannot
// tell that the last head columns or the softmax column are there. Each scroll box of a
// figure says which of its edges hide more (data-attndocs-more="left right up down"), and
// attndocs.css fades those edges. Views need no code for it: the boxes are found by class.
var SCROLL_BOXES = ".attndocs-scroll, .attndocs-grid, .attndocs-neuron, .attndocs-mscroll, .attndocs-mlinebox, " +
  ".attndocs-smain, .attndocs-stablebox, .attndocs-scrollbox";

function markEdges(box) {
  var more = [];
  if (box.scrollWidth > box.clientWidth + 1) {
    if (box.scrollLeft > 1) more.push("left");
    if (box.scrollLeft + box.clientWidth < box.scrollWidth - 1) more.push("right");
  }
  if (box.scrollHeight > box.clientHeight + 1) {
    if (box.scrollTop > 1) more.push("up");
    if (box.scrollTop + box.clientHeight < box.scrollHeight - 1) more.push("down");
  }
  var value = more.join(" ");
  if (value) {
    if (box.getAttribute("data-attndocs-more") !== value) box.setAttribute("data-attndocs-more", value);
  } else if (box.hasAttribute("data-attndocs-more")) box.removeAttribute("data-attndocs-more");
}

function watchScrolling(figEl) {
  if (figEl._attndocsCues) return;
  var pending = false;
  function mark() {
    pending = false;
    Array.prototype.forEach.call(figEl.querySelectorAll(SCROLL_BOXES), markEdges);
  }
  function later() {
    if (!pending) { pending = true; requestAnimationFrame(mark); }
  }
  figEl._attndocsCues = later;
  // Scroll events do not bubble; a capturing listener on the figure hears every box's.
  figEl.addEventListener("scroll", function (e) {
    if (e.target.matches && e.target.matches(SCROLL_BOXES)) markEdges(e.target);
  }, true);
  if (typeof ResizeObserver !== "undefined") new ResizeObserver(later).observe(figEl);
  // Only the figure's own changes of structure (a view built, a layer loaded), not its drawing.
  if (window.MutationObserver) new MutationObserver(later).observe(figEl, { childList: true, subtree: true });
  later();
}

function wait(figEl) {
  if (!observer) {
    observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (entry.isIntersecting) start(entry.target);
      });
    }, { rootMargin: MARGIN });
  }
  waiting.add(figEl);
  figEl.setAttribute("data-attndocs-status", "waiting");
  observer.observe(figEl);
}

function sideFile(figEl) {
  var node = figEl.querySelector(".attndocs-data");
  return !!node && node.hasAttribute("data-src");
}

// The figure the address names: by its name (#name, #name/layer=2), or by an anchor just
// before it (Sphinx writes a figure's labels as empty <span id> elements before it).
function linkedFigure() {
  var target = links.targetOf();
  if (target) return target;
  var name = links.anchor(location.hash);
  var node = name ? document.getElementById(name) : null;
  while (node && node.matches("span:empty") && node.nextElementSibling) node = node.nextElementSibling;
  return node && node.matches(SELECTOR) ? node : null;
}

// Finds the figures under root (a document or an element, itself included) not seen yet.
attndocs.boot = function (root) {
  root = root || document;
  var nodes = Array.prototype.slice.call(root.querySelectorAll(SELECTOR));
  if (root.matches && root.matches(SELECTOR)) nodes.unshift(root);
  var fresh = nodes.filter(function (node) {
    if (seen.has(node)) return false;
    seen.add(node);
    return true;
  });
  if (!fresh.length) return;
  var lazy = typeof IntersectionObserver !== "undefined";
  // Counted on the page as it is now: a host that swaps pages (instant navigation) starts
  // a short new page at once whatever the earlier ones held.
  var eager = !lazy || document.querySelectorAll(SELECTOR).length <= EAGER_FIGURES;
  var target = linkedFigure();
  fresh.forEach(function (figEl) {
    if (figEl === target || (eager && !(lazy && sideFile(figEl)))) start(figEl);
    else wait(figEl);
  });
  // A page swapped in by a host's instant navigation: its link target lands as on a load.
  if (target && fresh.indexOf(target) >= 0 && pinnedFor !== location.href) {
    pinnedFor = location.href;
    pinTop(target);
  }
};

// Lets go of the figures under root (an element, itself included): started ones are
// destroyed, waiting ones no longer watched. For hosts that unmount figures where the
// document's own watch cannot see (a widget in a shadow root, widgets.py's module).
attndocs.release = function (root) {
  var nodes = Array.prototype.slice.call(root.querySelectorAll(SELECTOR));
  if (root.matches && root.matches(SELECTOR)) nodes.unshift(root);
  nodes.forEach(function (figEl) {
    if (waiting.delete(figEl) && observer) observer.unobserve(figEl);
    var fig = attndocs.figure(figEl);
    if (fig) fig.destroy();
  });
};

// A link followed on the page: a started figure takes its values at once; one still
// waiting starts now and reads them from the address as it starts.
function followHash() {
  // A link the reader followed wins over state changes still waiting to be written.
  attndocs.figures().forEach(function (f) { f._hashQueued = null; });
  var target = linkedFigure();
  if (!target) return;
  if (unpin) unpin();  // the figure of an earlier link lets go
  var fig = attndocs.figure(target);
  if (!fig) {
    if (target.matches(SELECTOR)) {
      start(target);
      pinnedFor = location.href;
      pinTop(target);
    }
    // A figure that could not be made (a placeholder) is still where the anchor points.
    else if (target.scrollIntoView) target.scrollIntoView({ block: "start", behavior: "instant" });
    return;
  }
  var link = links.parse(location.hash);
  if (link) fig._applyHashValues(link.values, false);
  pinnedFor = location.href;
  pinTop(fig.el);
}

// -- landing on a linked figure --------------------------------------------------------------
// A link to a figure puts its top at the top of the window, and keeps it there while the
// figures above it (and the figure itself) draw and settle, until the reader scrolls, or
// for a few seconds. Each figure reserves its height before it draws, so the page rarely
// moves at all; this covers what no reservation can know (fonts loading, a host's own
// late layout, instant navigation restoring its scroll position).
// The bottom of whatever the host fixes over the top of the window (0 when nothing is):
// fixed or sticky boxes under the figure's top edge, the figure's own sticky parts aside.
function coveredTop(figEl) {
  var box = figEl.getBoundingClientRect(), bottom = 0;
  var x = Math.min(Math.max(box.left + box.width / 2, 0), window.innerWidth - 1);
  (document.elementsFromPoint ? document.elementsFromPoint(x, 1) : []).forEach(function (node) {
    if (figEl.contains(node)) return;
    for (var n = node; n && n !== document.body && n !== document.documentElement; n = n.parentElement) {
      var position = getComputedStyle(n).position;
      if (position === "fixed" || position === "sticky") {
        var r = n.getBoundingClientRect();
        if (r.top <= 1 && r.bottom < window.innerHeight / 3) bottom = Math.max(bottom, r.bottom);
        return;
      }
    }
  });
  return bottom;
}

var PIN_MS = 3000;
var unpin = null;
var pinnedFor = null;  // the address whose target was last pinned

function pinTop(target) {
  if (unpin) unpin();
  if (!target.scrollIntoView) return;
  var done = false, timer = 0, resize = null;
  var stopEvents = ["wheel", "touchstart", "keydown", "mousedown"];
  function place() {
    if (!done && Math.abs(target.getBoundingClientRect().top - landing()) > 1) target.scrollIntoView({ block: "start", behavior: "instant" });
  }
  // Where the figure's top belongs: the top of the window, or just below a header the host
  // keeps there (Material's, Furo's on a phone, pydata's), whether or not the host gives
  // its link targets a scroll-margin for it.
  var offset = null, margin = target.style.scrollMarginTop;
  function landing() {
    if (offset === null) {
      target.scrollIntoView({ block: "start", behavior: "instant" });
      var top = target.getBoundingClientRect().top, covered = coveredTop(target);
      if (covered > top + 1) {
        var own = parseFloat(getComputedStyle(target).scrollMarginTop) || 0;
        target.style.scrollMarginTop = own + covered - top + "px";
        target.scrollIntoView({ block: "start", behavior: "instant" });
      }
      offset = target.getBoundingClientRect().top;
    }
    return offset;
  }
  function stop() {
    if (done) return;
    done = true;
    clearTimeout(timer);
    if (resize) resize.disconnect();
    stopEvents.forEach(function (name) { window.removeEventListener(name, stop, true); });
    window.removeEventListener("scroll", place, true);
    target.style.scrollMarginTop = margin;
    if (unpin === stop) unpin = null;
  }
  unpin = stop;
  landing();
  stopEvents.forEach(function (name) { window.addEventListener(name, stop, { capture: true, passive: true }); });
  // Scrolling that is not the reader's (the browser's own, smooth, jump to the anchor; a
  // host restoring a position) does not take the figure away either.
  window.addEventListener("scroll", place, { capture: true, passive: true });
  timer = setTimeout(stop, PIN_MS);
  if (typeof ResizeObserver !== "undefined") {
    resize = new ResizeObserver(function () { place(); });
    resize.observe(document.documentElement);
    document.querySelectorAll(".attndocs-figure").forEach(function (figEl) { resize.observe(figEl); });
  }
}

// Figures added later (notebook outputs, instant navigation) are found as they appear.
// Only added subtrees are searched, and a figure's own drawing is skipped, so a page of
// many figures does not rescan itself every time one of them draws.
function watchDocument() {
  if (!window.MutationObserver) return;
  new MutationObserver(function (records) {
    var removed = false;
    for (var i = 0; i < records.length; i++) {
      var added = records[i].addedNodes, gone = records[i].removedNodes;
      for (var a = 0; a < added.length; a++) {
        var node = added[a];
        if (node.nodeType !== 1) continue;
        if (node.matches(SELECTOR) || !(node.parentElement && node.parentElement.closest(".attndocs-figure"))) {
          attndocs.boot(node);
        }
      }
      for (var r = 0; r < gone.length && !removed; r++) {
        var old = gone[r];
        removed = old.nodeType === 1 && (old.matches(".attndocs-figure") || !!old.querySelector(".attndocs-figure"));
      }
    }
    if (removed) {
      attndocs._sweepRemoved();
      waiting.forEach(function (figEl) {
        if (!figEl.isConnected) {
          waiting.delete(figEl);
          observer.unobserve(figEl);
        }
      });
    }
  }).observe(document.body || document.documentElement, { childList: true, subtree: true });
}

attndocs.start = function () {
  if (attndocs._started) return attndocs.boot();
  attndocs._started = true;
  function go() {
    attndocs.boot();
    followHash();  // the address may name a placeholder, which boot leaves alone
    watchDocument();
    window.addEventListener("hashchange", followHash);
    // Printing shows every figure, so every figure starts (their payloads decode
    // asynchronously: a print started at once may still show a few as text).
    window.addEventListener("beforeprint", function () {
      Array.from(waiting).forEach(start);
    });
    // Focus moved into a waiting figure (by a script or a host's keyboard navigation).
    document.addEventListener("focusin", function (e) {
      var figEl = e.target && e.target.closest ? e.target.closest(SELECTOR) : null;
      if (figEl && waiting.has(figEl)) start(figEl);
    }, true);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", go);
  else go();
};
