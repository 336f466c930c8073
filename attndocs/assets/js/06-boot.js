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
  attndocs._bootNow(figEl);
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
  var target = links.targetOf();
  fresh.forEach(function (figEl) {
    if (figEl === target || (eager && !(lazy && sideFile(figEl)))) start(figEl);
    else wait(figEl);
  });
};

// A link followed on the page: a started figure takes its values at once; one still
// waiting starts now and reads them from the address as it starts.
function followHash() {
  // A link the reader followed wins over state changes still waiting to be written.
  attndocs.figures().forEach(function (f) { f._hashQueued = null; });
  var target = links.targetOf();
  if (!target) return;
  var fig = attndocs.figure(target);
  if (!fig) {
    if (target.matches(SELECTOR)) start(target);
    // A figure that could not be made (a placeholder) is still where the anchor points.
    else if (target.scrollIntoView) target.scrollIntoView({ block: "start" });
    return;
  }
  var link = links.parse(location.hash);
  if (link) fig._applyHashValues(link.values, false);
  if (fig.el.scrollIntoView) fig.el.scrollIntoView({ block: "start" });
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
