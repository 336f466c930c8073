// attndocs generation steps: a figure whose model wrote part of its tokens (option generate).
//
// header.generation = {side, promptLength, generated, text, stopped, settings}: tokens
// promptLength .. promptLength + generated - 1 of that side are the model's. Every view marks
// them (class attndocs-generated, and a "generated" key). The head, matrix and neuron views
// also get a step control that replays the writing: at step t (1..generated) the token
// written is token w = promptLength + t - 1; the position that PREDICTED it, w - 1, is
// locked as the selected query, so the view shows the attention it paid when it wrote;
// tokens after w are dimmed. Step 0 shows the whole sequence with nothing locked.
// The step is the state key `step` (attndocs/state.py): option step, link step=N.
// The model and summary views show the whole sequence (thumbnails and per-head numbers
// over every position) with the generated tokens marked in the model view's detail.
//
// core calls attndocs.steps.attach(fig) once the view started (00-core.js startFigure).

var util = attndocs.util, el = util.el, has = util.has;
var STEP_VIEWS = { head: true, matrix: true, neuron: true };
var PLAY_MS = 900;

attndocs.steps = { attach: attach };

function shown(text) {
  var t = String(text == null ? "" : text).replace(/\s+/g, " ").trim();
  return t || String(text || "").replace(/\n/g, "\u21b5") || "\u2423";
}

function attach(fig) {
  var gen = fig.header.generation;
  if (!gen || !fig.view) return;
  var side = gen.side, start = gen.promptLength, count = gen.generated;
  var stepping = has(STEP_VIEWS, fig.header.view) && count > 0 && has(fig.state, "step");
  var tokens = fig.tokens(side);
  fig.el.setAttribute("data-attndocs-generated", String(count));

  // -- marking the tokens ------------------------------------------------------------------
  function sideOf(node) {
    var info = fig.section(fig.state.section);
    if (!info) return null;
    var s = node.getAttribute("data-side");
    return s === "q" ? info.rows : s === "k" ? info.cols : null;
  }
  function step() {
    var t = fig.state.step;
    return stepping && typeof t === "number" && t >= 1 && t <= count ? t : 0;
  }
  function mark() {
    var t = step(), written = t ? start + t - 1 : -1;
    var nodes = fig.body.querySelectorAll(".attndocs-token[data-side]");
    for (var n = 0; n < nodes.length; n++) {
      var node = nodes[n], i = +node.getAttribute("data-index"), mine = sideOf(node) === side;
      node.classList.toggle("attndocs-generated", mine && i >= start);
      node.classList.toggle("attndocs-future", mine && written >= 0 && i > written);
      node.classList.toggle("attndocs-writing", mine && i === written);
    }
  }

  // -- the control ---------------------------------------------------------------------------
  var bar = el("div", { class: "attndocs-steps", role: "group", "aria-label": "Generated text" });
  var key = el("span", { class: "attndocs-gen-key" }, [
    el("span", { class: "attndocs-gen-swatch", "aria-hidden": "true", text: "abc" }), " generated",
  ]);
  var slider = null, label = null, prev = null, next = null, play = null, timer = null;
  if (stepping) {
    prev = el("button", { type: "button", class: "attndocs-button", "data-step": "prev", "aria-label": "Previous step", title: "Previous step", text: "\u25c0" });
    play = el("button", { type: "button", class: "attndocs-button", "data-step": "play", "aria-label": "Play the generation", "aria-pressed": "false", title: "Play", text: "\u25b6 Play" });
    next = el("button", { type: "button", class: "attndocs-button", "data-step": "next", "aria-label": "Next step", title: "Next step", text: "\u25b6" });
    slider = el("input", {
      type: "range", class: "attndocs-step-slider", min: "0", max: String(count), step: "1", value: String(step()),
      id: fig.uid("step"), "aria-label": "Generation step",
    });
    label = el("label", { class: "attndocs-step-label", for: fig.uid("step") });
    prev.addEventListener("click", function () { stop(); go(Math.max(0, step() - 1)); });
    next.addEventListener("click", function () { stop(); go(Math.min(count, step() + 1)); });
    slider.addEventListener("input", function () { stop(); go(+slider.value); });
    play.addEventListener("click", function () { timer ? stop() : start_(); });
    bar.appendChild(el("span", { class: "attndocs-step-buttons" }, [prev, play, next]));
    bar.appendChild(slider);
    bar.appendChild(label);
  } else {
    bar.appendChild(el("span", { class: "attndocs-step-label", text: "The model wrote " + count + " token" + (count === 1 ? "" : "s") + ": \u201c" + shown(gen.text) + "\u201d" }));
  }
  bar.appendChild(key);
  fig.frame.insertBefore(bar, fig.body);

  function describe(t) {
    if (!t) return "all " + count + " generated token" + (count === 1 ? "" : "s") + " (step 0 of " + count + ")";
    return "step " + t + " of " + count + ": wrote \u2018" + shown(tokens[start + t - 1]) + "\u2019";
  }
  function sync() {
    if (!stepping) return;
    var t = step(), text = describe(t);
    slider.value = String(t);
    slider.setAttribute("aria-valuetext", text);
    label.textContent = text;
    prev.disabled = t <= 0;
    next.disabled = t >= count;
  }
  // The patch that shows step t: the query that wrote its token, locked, on the writing side's
  // own attention (an encoder section has no row for it).
  function patchFor(t) {
    var patch = { step: t };
    if (t) {
      var info = fig.section(fig.state.section);
      if (!info || info.rows !== side) {
        if (has(fig.header.sections, side)) patch.section = side;
      }
      patch.token = { side: "q", index: start + t - 2 };
      patch.locked = true;
    } else if (fig.state.step) {
      patch.token = null;
      patch.locked = false;
    }
    return patch;
  }
  function go(t) {
    fig.setState(patchFor(t));
    fig.announce(describe(step()));
  }
  function start_() {
    if (step() >= count) go(1);
    play.setAttribute("aria-pressed", "true");
    play.textContent = "\u275a\u275a Pause";
    play.setAttribute("aria-label", "Pause");
    timer = setInterval(function () {
      if (step() >= count) { stop(); return; }
      go(step() + 1);
    }, PLAY_MS);
  }
  function stop() {
    if (!timer) return;
    clearInterval(timer);
    timer = null;
    play.setAttribute("aria-pressed", "false");
    play.textContent = "\u25b6 Play";
    play.setAttribute("aria-label", "Play the generation");
  }
  fig.onDestroy(stop);

  // Every change the view draws is marked again; a step set by a link (or by the reader
  // through history) brings its token with it.
  var update = fig.view.update;
  fig.view.update = function (changes) {
    var out = update ? update.call(fig.view, changes) : undefined;
    if (stepping && has(changes, "step") && step()) {
      var want = patchFor(step()), cur = fig.state.token;
      delete want.step;
      var there = cur && fig.state.locked && cur.side === "q" && cur.index === want.token.index && !want.section;
      if (!there) fig.setState(want, true);
    }
    sync();
    mark();
    return out;
  };
  if (window.MutationObserver) {
    // Views redraw their tokens on their own too (a layer's data arriving): mark those as well.
    var watch = new MutationObserver(mark);
    watch.observe(fig.body, { childList: true, subtree: true });
    fig.onDestroy(function () { watch.disconnect(); });
  }

  // The opening step (the author's option step, or a link's step=N) locks its query now; when
  // it is the author's, that token is what the figure opens on, so links leave it out.
  if (stepping && step()) {
    var opening = patchFor(step());
    delete opening.step;
    var authored = fig._defaults.step === fig.state.step;
    fig.setState(opening, true);
    if (authored) {
      for (var k in opening) if (has(opening, k)) fig._defaults[k] = opening[k];
    }
  } else if (stepping && fig.state.step !== 0 && fig.state.step != null) {
    fig.setState({ step: 0 }, true);  // a step past what the model wrote (a link for another text)
  }
  sync();
  mark();
}
