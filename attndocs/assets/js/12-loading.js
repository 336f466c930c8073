// attndocs loading: what a view still needs of a figure's data, loading it, and saying so.
//
// A large figure's data comes in chunks (10-payload.js); chunk 0, what the first view
// draws, is there before the view starts, and the rest loads as the reader asks for it.
// Views ask through these methods of the fig object (see the contract in 00-core.js):
// fig.missing / fig.missingAll say which chunks a drawing still needs, fig.ready draws now
// or shows the loading state and draws again once they are in, fig.load loads quietly.
// While a view waits, the figure element carries data-attndocs-loading="<slot>", and
// fig.loadingEl (over the top of the drawing) says what is coming, or why it did not.

var Figure = attndocs.Figure;

Figure.prototype.missing = function (what, section, layer, heads, row) {
  var store = this._store;
  return attndocs._chunksFor(this, what, section, layer, heads, row).filter(function (c) { return !store.has(c); });
};

Figure.prototype.ships = function (what, section, layer, head) {
  return attndocs._ships(this, what, section, layer, head);
};

Figure.prototype.load = function (chunks) {
  var store = this._store;
  return Promise.all(chunks.map(function (c) { return store.load(c); }));
};

// Whether a view may draw now: true when `chunks` (from fig.missing) are all loaded.
// Otherwise it shows the loading state with `label`, calls onWait() (which hides the drawing
// that no longer matches the state: never a wrong picture), loads them and then calls
// retry(), unless a later call for the same slot replaced this one. retry is the view's
// render step: it reads the state again and asks again, so the picture always follows
// the latest state, and a part that arrives late never draws over a newer one.
Figure.prototype.ready = function (slot, chunks, label, retry, onWait) {
  var fig = this, ticket = {};
  fig._waits[slot] = ticket;
  if (!chunks.length) {
    fig._doneWaiting(slot);
    return true;
  }
  if (onWait) onWait();
  fig._showWaiting(slot, label);
  fig.load(chunks).then(function () {
    if (fig._waits[slot] !== ticket || !fig.view) return;
    fig._doneWaiting(slot);
    retry();
  }, function (err) {
    if (fig._waits[slot] !== ticket) return;
    console.warn("attndocs: cannot load part of a figure", err);
    fig._doneWaiting(slot);
    fig._showError(label, err);
  });
  return false;
};

// Chunk indices of fig.missing over several layers (a view of every layer, such as the
// model view's grid), each once.
Figure.prototype.missingAll = function (what, section, layers, heads) {
  var fig = this, out = [];
  layers.forEach(function (layer) {
    fig.missing(what, section, layer, heads).forEach(function (c) { if (out.indexOf(c) < 0) out.push(c); });
  });
  return out;
};

Figure.prototype._showWaiting = function (slot, label) {
  this._waitLabels = this._waitLabels.filter(function (w) { return w[0] !== slot; }).concat([[slot, label]]);
  this._renderWaiting();
};

Figure.prototype._doneWaiting = function (slot) {
  var before = this._waitLabels.length;
  this._waitLabels = this._waitLabels.filter(function (w) { return w[0] !== slot; });
  if (before !== this._waitLabels.length || this.loadingEl.classList.contains("attndocs-load-error")) this._renderWaiting();
};

Figure.prototype._renderWaiting = function () {
  var node = this.loadingEl, last = this._waitLabels[this._waitLabels.length - 1];
  node.classList.remove("attndocs-load-error");
  node.hidden = !last;
  node.textContent = last ? last[1] : "";
  if (last) this.el.setAttribute("data-attndocs-loading", last[0]);
  else this.el.removeAttribute("data-attndocs-loading");
};

Figure.prototype._showError = function (label, err) {
  var node = this.loadingEl;
  var what = String(label || "").replace(/^Loading\s*/, "").replace(/[.\u2026]+$/, "");
  node.hidden = false;
  node.classList.add("attndocs-load-error");
  node.textContent = "Could not load " + (what || "this part") + ": " + (err && err.message ? err.message : String(err));
  this.announce(node.textContent);
};
