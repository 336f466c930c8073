// Words instead of word pieces (option words; attndocs/words.py, docs/words.md).
//
// A figure of words carries header.words = {style, sides: {side: [[piece, ...] per word]}}:
// each word's pieces as shown. Its tokens get a tooltip ("word 'unbelievable' = 3 pieces:
// un · believ · able") and the figure a note saying how the words were merged. A neuron
// figure of a page that asked for words is drawn per piece all the same
// (header.wordPieces) and says so.

var util = attndocs.util, el = util.el;
var words = attndocs.words = {};
var NEURON_NOTE = "The neuron view shows word pieces: q·k is per piece";

function sideName(fig, side) {
  if (side !== "q" && side !== "k") return side;
  var info = fig.section(fig.state.section) || fig.section(fig.header.sectionOrder[0]);
  return info ? (side === "q" ? info.rows : info.cols) : null;
}

function piecesOf(fig, side, index) {
  var map = fig.header.words;
  var list = map && map.sides ? util.own(map.sides, sideName(fig, side)) : null;
  return list && index >= 0 && index < list.length ? list[index] : null;
}

function describe(word, pieces) {
  var n = pieces.length;
  return "word '" + word.trim() + "' = " + n + (n === 1 ? " piece" : " pieces") + (n > 1 ? ": " + pieces.join(" · ") : "");
}

// The tooltip of token `index` on `side` ("q", "k" or a side name); null for a figure of pieces.
words.title = function (fig, side, index) {
  var pieces = piecesOf(fig, side, index);
  if (!pieces) return null;
  var name = sideName(fig, side), shown = fig.tokens(name)[index];
  return describe(shown == null ? pieces.join("") : shown, pieces);
};

// Called by fig.tokenEl for every token element it makes.
words.token = function (fig, node, side, index) {
  var title = words.title(fig, side, index);
  if (!title) return;
  node.title = title;
  if (piecesOf(fig, side, index).length > 1) {
    node.classList.add("attndocs-multipiece");
    node.setAttribute("aria-label", node.getAttribute("aria-label") + " (" + title + ")");
  }
};

// The figure's note: under the controls, above the drawing, in every view.
words.decorate = function (fig) {
  var header = fig.header, note = null;
  if (header.wordPieces) {
    note = el("p", { class: "attndocs-words-note attndocs-words-pieces", role: "note", text: NEURON_NOTE + "." });
  } else if (header.words && header.words.sides) {
    var parts = [], pieces = 0, count = 0;
    Object.keys(header.words.sides).sort().forEach(function (name) {
      var list = header.words.sides[name], shown = fig.tokens(name);
      count += list.length;
      list.forEach(function (p, i) {
        pieces += p.length;
        if (p.length > 1) parts.push(el("span", { class: "attndocs-words-word", title: describe(shown[i], p), text: shown[i].trim() + " (" + p.length + ")" }));
      });
    });
    var children = [el("strong", { text: "Words: " }),
      count + " words from " + pieces + " word pieces; attention to a word is the sum over its pieces, from a word the mean."];
    if (parts.length) {
      children.push(" Several pieces: ");
      parts.forEach(function (span, i) {
        if (i) children.push(", ");
        children.push(span);
      });
      children.push(".");
    }
    note = el("p", { class: "attndocs-words-note", role: "note" }, children);
  }
  if (note) fig.body.parentNode.insertBefore(note, fig.body);
};
