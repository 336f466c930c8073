// attndocs links: "#<figure name>/layer=2&heads=0,3&token=q4&locked=1" read and written.
//
// The keys are the figure's state keys, each declared once in attndocs/state.py with the
// figure option of the same name; the header's stateKeys lists those of the figure's view
// with their defaults and allowed values. A link says how the state differs from what the
// figure opens on (its options), and wins over the options.
//
// A link is text anyone can write, so nothing in it is trusted: keys and values are looked
// up only among the figure's own keys (Object.prototype's "constructor" or "__proto__"
// must find nothing), lists are deduplicated and bounded by what the figure has, and the
// hash is measured before it is parsed. A value that does not fit is ignored; the rest of
// the link still applies.

var util = attndocs.util;
var has = util.has;
var links = attndocs._links = {};

// Links an author writes are a few dozen characters; past these sizes a hash is not one,
// and parsing it (a 200 kB list of heads) only costs the reader time. The figure it names
// is still shown; its values are ignored.
var MAX_HASH = 4096;   // characters after "#"
var MAX_NAME = 256;    // characters of the figure name (names are at most 200)
links.MAX_HASH = MAX_HASH;

function decode(text) {
  try {
    return decodeURIComponent(text);
  } catch (e) {
    return null;  // malformed percent-encoding
  }
}

function rawHash(hash) {
  var raw = hash == null ? window.location.hash : String(hash);
  return raw.charAt(0) === "#" ? raw.slice(1) : raw;
}

// The link in the address (or `hash`): {name, values} where values maps key -> text in
// an object without a prototype; null when the hash is not "#<name>/...".
links.parse = function (hash) {
  var raw = rawHash(hash);
  var slash = raw.indexOf("/");
  if (slash <= 0 || slash > MAX_NAME * 3) return null;  // a name, percent-encoded at worst
  var name = decode(raw.slice(0, slash));
  if (name === null || name.length > MAX_NAME) return null;
  var values = Object.create(null);
  if (raw.length > MAX_HASH) {
    if (window.console) console.warn("attndocs: a link longer than " + MAX_HASH + " characters; its values are ignored");
    return { name: name, values: values };
  }
  raw.slice(slash + 1).split("&").forEach(function (pair) {
    var eq = pair.indexOf("=");
    if (eq < 0) return;
    var key = decode(pair.slice(0, eq)), value = decode(pair.slice(eq + 1));
    // A malformed pair is ignored, the rest still applies.
    if (key !== null && value !== null) values[key] = value;
  });
  return { name: name, values: values };
};

// "#<name>" with no "/": an in-page anchor, which may name a figure (see links.target).
links.anchor = function (hash) {
  var raw = rawHash(hash);
  if (!raw || raw.indexOf("/") >= 0 || raw.length > MAX_NAME * 3) return null;
  var name = decode(raw);
  return name && name.length <= MAX_NAME ? name : null;
};

function isFigure(node) {
  return !!node && !!node.classList && node.classList.contains("attndocs-figure");
}

// The figure element a link's name means: the figure of that name (id "attndocs-<name>"),
// else a figure whose id is the name (unnamed figures: "attndocs-<hash>"). Never another
// element of the host page, whatever its id.
links.target = function (name) {
  if (typeof name !== "string" || !name) return null;
  var named = document.getElementById("attndocs-" + name);
  if (isFigure(named) && named.getAttribute("data-attndocs-name") === name) return named;
  var byId = document.getElementById(name);
  return isFigure(byId) ? byId : null;
};

// The figure element the address (or `hash`) names: "#<name>/..." or an anchor "#<name>"
// that no other element of the page has as its id (that one is the host's).
links.targetOf = function (hash) {
  var link = links.parse(hash);
  if (link) return links.target(link.name);
  var name = links.anchor(hash);
  if (!name) return null;
  var node = document.getElementById(name);
  if (node) return isFigure(node) ? node : null;
  return links.target(name);
};

// -- values ---------------------------------------------------------------------------------
var INDEX = /^\d{1,9}$/;

links.encode = function (v) {
  if (v === true) return "1";
  if (v === false) return "0";
  if (Array.isArray(v)) return v.join(",");
  if (v && typeof v === "object") return v.side + v.index;
  return String(v);
};

// Text -> a value shaped like `like` (the key's default), or undefined when it is not one.
links.decode = function (text, like) {
  if (typeof like === "boolean") {
    if (text === "1" || text === "true") return true;
    if (text === "0" || text === "false") return false;
    return undefined;
  }
  if (typeof like === "number") return /^-?\d{1,9}$/.test(text) ? +text : undefined;
  if (Array.isArray(like)) {
    if (text === "") return [];
    var items = text.split(",");
    for (var i = 0; i < items.length; i++) {
      if (!INDEX.test(items[i])) return undefined;
      items[i] = +items[i];
    }
    return items;
  }
  return text;
};

links.same = function (a, b) {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return false;
    for (var i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  if (a && b && typeof a === "object" && typeof b === "object") return a.side === b.side && a.index === b.index;
  return false;
};

// The entries of `list` that `allowed` holds, each once, in the list's order: never longer
// than `allowed`. An empty list stays empty (no heads shown); a list of which nothing fits
// gives null (ignored), since it was meant for another figure.
links.fitList = function (list, allowed) {
  if (!Array.isArray(list)) return null;
  if (!list.length) return [];
  var out = [], seen = new Set();
  for (var i = 0; i < list.length && out.length < allowed.length; i++) {
    var v = list[i];
    if (seen.has(v) || allowed.indexOf(v) < 0) continue;
    seen.add(v);
    out.push(v);
  }
  return out.length ? out : null;
};

// A key a link may set on `fig`: one attndocs/state.py declares for its view (header.stateKeys).
function isKey(fig, key) {
  if (fig._keys) return has(fig._keys, key);
  return has(fig.state, key) || has(fig._defaults, key);
}

// A token as a link or an author writes it: "q4" / "k4" (side and index, what links write),
// "" (none), or as the figure option takes it: "it", "it#2" (the second "it"), "@5", each
// optionally after "query:" or "key:". Text is matched against the tokens as shown, without
// surrounding spaces, then regardless of case (as attndocs/state.py resolve_token does).
// {side: "q"|"k", index: -1} when the side is known and the text is not found.
links.token = function (fig, sectionName, text) {
  if (text === "") return null;
  var m = /^([qk])(\d{1,9})$/.exec(text);
  if (m) return { side: m[1], index: +m[2] };
  var side = "q";
  var sided = /^(q|k|query|key):(.+)$/i.exec(text);
  if (sided && sided[2].trim()) {
    side = sided[1].charAt(0).toLowerCase();
    text = sided[2];
  }
  text = text.trim();
  var at = /^@(\d{1,9})$/.exec(text);
  if (at) return { side: side, index: +at[1] };
  var nth = 1, occurrence = /^(.+?)#(\d{1,6})$/.exec(text);
  if (occurrence) {
    text = occurrence[1].trim();
    nth = +occurrence[2];
  }
  var info = util.own(fig.header.sections, sectionName);
  var sideInfo = info && util.own(fig.header.sides, side === "q" ? info.rows : info.cols);
  var shown = sideInfo ? sideInfo.display : [];
  function find(same) {
    var hits = [];
    for (var i = 0; i < shown.length; i++) if (same(String(shown[i]).trim())) hits.push(i);
    return hits;
  }
  var hits = find(function (t) { return t === text; });
  if (!hits.length) hits = find(function (t) { return t.toLowerCase() === text.toLowerCase(); });
  return { side: side, index: nth >= 1 && nth <= hits.length ? hits[nth - 1] : -1 };
};

// The patch a link's values make for `fig`: only the figure's own state keys, each value
// decoded and checked against the header and the key's allowed values.
links.read = function (fig, values) {
  var header = fig.header, state = fig.state, defaults = fig._defaults;
  var sections = header.sections, patch = {};
  for (var key in values) {
    if (!has(values, key) || !isKey(fig, key)) continue;
    var text = values[key], value;
    if (key === "token") {
      value = text;  // resolved below, once the section is known
    } else {
      var like = key === "heads" ? [] : has(defaults, key) ? defaults[key] : state[key];
      value = links.decode(text, like);
    }
    if (value !== undefined) patch[key] = value;
  }
  // Layers, heads and tokens are checked against the section the link ends on.
  var sectionName = state.section;
  if (has(patch, "section")) {
    if (typeof patch.section === "string" && has(sections, patch.section)) sectionName = patch.section;
    else delete patch.section;
  }
  if (!has(sections, sectionName)) sectionName = header.sectionOrder[0];
  var section = sections[sectionName];
  if (has(patch, "token")) patch.token = links.token(fig, sectionName, patch.token);
  var out = {};
  for (var k in patch) {
    var v = patch[k];
    if (k === "layer" && section.layers.indexOf(v) < 0) continue;
    if (k === "heads") {
      v = links.fitList(v, section.heads);
      if (v === null) continue;
    }
    if (k === "token" && v) {
      var n = v.side === "q" ? section.shape[0] : section.shape[1];
      if (!(v.index >= 0 && v.index < n)) continue;
    }
    var allowed = util.own(fig._allowed, k);
    if (allowed && allowed.indexOf(v) < 0) continue;
    out[k] = v;
  }
  return out;
};

// The token a link keeps: a locked one (a hovered token is passing, not state).
function kept(s) {
  return s.locked && s.token ? s.token : null;
}

// "#<name>/key=value&..." for the figure's state: keys left at what the figure opens on
// are omitted, so the link says only what the reader changed; a token only when it is
// locked, and "token=" when the figure opens on a locked token the reader has cleared.
links.write = function (fig) {
  var parts = [], state = fig.state, defaults = fig._defaults;
  for (var key in state) {
    if (!has(state, key) || !isKey(fig, key)) continue;
    var value = state[key];
    if (key === "token") {
      value = kept(state);
      if (links.same(value, kept(defaults))) continue;
      parts.push("token=" + (value ? encodeURIComponent(links.encode(value)) : ""));
      continue;
    }
    if (fig._transient[key] || value == null) continue;
    if (has(defaults, key) && links.same(defaults[key], value)) continue;
    parts.push(encodeURIComponent(key) + "=" + encodeURIComponent(links.encode(value)));
  }
  return "#" + encodeURIComponent(fig.name) + "/" + parts.join("&");
};
