// attndocs payload decoding and chunk loading: mirrors attndocs/payload.py (header JSON +
// binary chunks).
//
// Each figure holds a hidden div.attndocs-data whose data-header attribute is the JSON
// header. Its data comes in chunks (header.chunks: {id, length, compression}); chunk 0 holds
// what the first view draws, the others one layer or one head each, loaded when a view
// asks for them (fig.missing / fig.whenLoaded in 00-core.js). Where the chunks are:
//   inline  chunk 0 in the data div's data-body, chunk i in a hidden
//           div.attndocs-chunk[data-chunk=<id>] inside the figure: base64, decoded on demand
//   file    data-src names chunk 0's script; every chunk is a script beside it named
//           attndocs-<id>.js, which calls attndocs.chunk(id, base64). A <script> element
//           loads from file:// as well as from a server, where fetch cannot; several
//           figures that need the same file share one load.
// Data in attributes, not <script> blocks: hosts that re-run a page's scripts (Material for
// MkDocs' instant navigation copies inline scripts without their type) would execute
// script blocks, and search indexers read their text. A chunk may be zlib-compressed
// (compression "deflate"). Blocks are located by runs of parts ([chunk, offset, count],
// parts `part` bytes long; parts of f16 and f32 blocks are 4-byte aligned, parts of one-byte
// blocks follow one another with no gap); multi-byte values are little-endian.

var FORMAT = "attndocs.payload";
var SUPPORTED_VERSION = 3;
var CHUNK_ID = /^[0-9a-f]{16,64}$/;
var util = attndocs.util;

function base64Bytes(text) {
  text = text.replace(/\s+/g, "");
  if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(text);
  var binary = atob(text);
  var out = new Uint8Array(binary.length);
  for (var i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

function inflate(bytes) {
  if (typeof DecompressionStream === "undefined") {
    return Promise.reject(new Error("this browser cannot decompress the figure (no DecompressionStream)"));
  }
  // Written straight into the stream: a Blob would copy megabytes into the browser's blob store.
  var inflater = new DecompressionStream("deflate");
  var writer = inflater.writable.getWriter();
  writer.write(bytes);
  writer.close();
  return new Response(inflater.readable).arrayBuffer().then(function (buffer) { return new Uint8Array(buffer); });
}

function dataNode(figEl) {
  return figEl.querySelector(".attndocs-data");
}

function readHeader(figEl) {
  var node = dataNode(figEl);
  if (!node || !node.hasAttribute("data-header")) throw new Error("the figure has no payload header");
  var header = JSON.parse(node.getAttribute("data-header"));
  if (header.format !== FORMAT) throw new Error("not an attndocs payload");
  if (header.version > SUPPORTED_VERSION) {
    throw new Error("payload version " + header.version + " is newer than this attndocs.js (" + SUPPORTED_VERSION + ")");
  }
  if (header.version < SUPPORTED_VERSION || !Array.isArray(header.chunks) || !header.chunks.length) {
    throw new Error("payload version " + header.version + " is older than this attndocs.js reads; rebuild the page");
  }
  header.chunks.forEach(function (c) {
    if (!CHUNK_ID.test(String(c.id))) throw new Error("the figure's payload is damaged (a bad chunk name)");
  });
  return header;
}

// -- chunk scripts (embed=file) -------------------------------------------------------------
// id -> {promise, resolve, reject, done}: chunk scripts being loaded. A script hands its data
// over through attndocs.chunk; an entry leaves once settled (the figures keep what they decoded).
var scripts = new Map();

attndocs.chunk = function (id, base64) {
  var entry = scripts.get(String(id));
  if (!entry || entry.done) return;
  entry.done = true;
  scripts.delete(String(id));
  entry.resolve(String(base64));
};

function loadScript(url, id) {
  var hit = scripts.get(id);
  if (hit) return hit.promise;
  var entry = { done: false };
  entry.promise = new Promise(function (resolve, reject) { entry.resolve = resolve; entry.reject = reject; });
  scripts.set(id, entry);
  var script = document.createElement("script");
  function fail(message) {
    script.remove();
    if (entry.done) return;
    entry.done = true;
    scripts.delete(id);
    entry.reject(new Error(message));
  }
  script.onload = function () { fail(url + " did not hand over its data"); };
  script.onerror = function () { fail("cannot load " + url); };
  script.async = true;
  script.src = url;
  (document.head || document.documentElement).appendChild(script);
  return entry.promise;
}

// -- the chunks of one figure ----------------------------------------------------------------
// Decoded chunks a figure keeps (chunk 0 always): past this, the least recently loaded go,
// and load again if asked for. An 8B-sized figure at 1,024 tokens is 16 MB a layer.
var CHUNK_BUDGET = 256 * 1024 * 1024;

function ChunkStore(figEl, header) {
  var node = dataNode(figEl);
  this.figEl = figEl;
  this.node = node;
  this.table = header.chunks;
  this.data = this.table.map(function () { return null; });
  this.pending = this.table.map(function () { return null; });
  this.order = [];  // loaded chunks other than chunk 0, oldest first
  this.bytes = 0;
  var src = node.getAttribute("data-src");
  this.src = src;
  // Chunk scripts sit beside chunk 0's: the same folder, named by their id.
  this.base = src ? src.slice(0, src.lastIndexOf("/") + 1) : null;
  if (!src && !node.hasAttribute("data-body")) throw new Error("the figure has no payload body");
}

ChunkStore.prototype.has = function (i) {
  return !!this.data[i];
};

ChunkStore.prototype._inline = function (i) {
  if (i === 0) return this.node.getAttribute("data-body");
  var id = this.table[i].id;
  var nodes = this.figEl.querySelectorAll(".attndocs-chunk");
  for (var k = 0; k < nodes.length; k++) {
    if (nodes[k].getAttribute("data-chunk") === id) return nodes[k].getAttribute("data-body");
  }
  throw new Error("part " + i + " of the figure's data is missing from the page");
};

ChunkStore.prototype.load = function (i) {
  var store = this;
  if (store.data[i]) return Promise.resolve(store.data[i]);
  if (store.pending[i]) return store.pending[i];
  var info = store.table[i];
  if (!info) return Promise.reject(new Error("the figure has no part " + i));
  var raw;
  if (store.src) {
    var url = i === 0 ? store.src : store.base + "attndocs-" + info.id + ".js";
    raw = loadScript(url, info.id).then(base64Bytes);
  } else {
    raw = new Promise(function (resolve) { resolve(base64Bytes(store._inline(i))); });
  }
  var pending = raw.then(function (bytes) {
    return info.compression === "deflate" ? inflate(bytes) : bytes;
  }).then(function (body) {
    if (body.length !== info.length) throw new Error("the figure's payload is damaged (wrong length)");
    if (store.pending[i] === pending) {
      store.data[i] = body;
      store.pending[i] = null;
      if (i > 0) store._keep(i, body.length);
    }
    return body;
  }, function (err) {
    if (store.pending[i] === pending) store.pending[i] = null;
    throw err;
  });
  store.pending[i] = pending;
  return pending;
};

ChunkStore.prototype._keep = function (i, size) {
  this.order.push(i);
  this.bytes += size;
  while (this.bytes > CHUNK_BUDGET && this.order.length > 1) {
    var old = this.order.shift();
    this.bytes -= this.data[old].length;
    this.data[old] = null;
  }
};

ChunkStore.prototype.clear = function () {
  this.data = this.data.map(function () { return null; });
  this.pending = this.pending.map(function () { return null; });
  this.order = [];
  this.bytes = 0;
};

attndocs._loadPayload = function (figEl) {
  return new Promise(function (resolve) { resolve(readHeader(figEl)); }).then(function (header) {
    var store = new ChunkStore(figEl, header);
    return store.load(0).then(function () { return { header: header, store: store }; });
  });
};

// -- locating blocks ---------------------------------------------------------------------------
// [[chunk, offset], ...] of every part of a block, expanded once from its runs.
function partsOf(block) {
  if (block._at) return block._at;
  var aligned = block.encoding === "f16" || block.encoding === "f32";  // payload.ALIGNED_ENCODINGS
  var stride = aligned ? block.part + ((4 - (block.part % 4)) % 4) : block.part, at = [];
  block.runs.forEach(function (run) {
    for (var k = 0; k < run[2]; k++) at.push([run[0], run[1] + k * stride]);
  });
  Object.defineProperty(block, "_at", { value: at });
  return at;
}

// The bytes of part k of a block, or null while its chunk is not loaded.
function partBytes(fig, block, k, length) {
  var where = partsOf(block)[k];
  if (!where) throw new Error("the figure's payload is damaged (a part is missing)");
  var chunk = fig._store.data[where[0]];
  if (!chunk) return null;
  var n = length == null ? block.part : length;
  return chunk.subarray(where[1], where[1] + n);
}

function indexOf(list, value, what) {
  var i = list.indexOf(value);
  if (i < 0) throw new Error(what + " " + value + " is not in this figure's payload");
  return i;
}

function sectionInfo(fig, name) {
  var info = util.own(fig.header.sections, name);
  if (!info) throw new Error("section " + name + " is not in this figure's payload");
  return info;
}

function slotOf(info, layer, head) {
  return indexOf(info.layers, layer, "layer") * info.heads.length + indexOf(info.heads, head, "head");
}

function asList(x) {
  return Array.isArray(x) ? x : [x];
}

// Chunk indices holding what a view needs: what is "attn" | "qk" | "top" | "overview" (of
// section `name`, `layer`, one head or a list) or "extra" (`name` = the extra, `layer` = the
// part: a layer slot of a 3-d extra, or null for every part). Empty when the payload has no
// such block (top weights and overviews ship only with large figures). For "qk", `row` (a
// query row) asks only for what drawing that row needs.
attndocs._chunksFor = function (fig, what, name, layer, heads, row) {
  var out = [];
  function add(block, k) {
    if (!block) return;
    var where = partsOf(block)[k];
    if (where && out.indexOf(where[0]) < 0) out.push(where[0]);
  }
  if (what === "extra") {
    var extra = util.own(fig.header.extras, name);
    if (!extra) return out;
    if (layer == null) partsOf(extra).forEach(function (_, k) { add(extra, k); });
    else add(extra, extra.shape.length === 3 ? layer : 0);
    return out;
  }
  var info = sectionInfo(fig, name), blocks = info.blocks;
  asList(heads).forEach(function (head) {
    var slot = slotOf(info, layer, head);
    if (what === "attn") add(blocks.attn, slot);
    else if (what === "overview") add(blocks.overview, slot);
    else if (what === "top") {
      var top = blocks.top && util.own(blocks.top.layers, String(layer));
      var where = top && top[info.heads.indexOf(head)];
      if (where && out.indexOf(where[0]) < 0) out.push(where[0]);
    } else if (what === "qk" && info.hasQK) {
      // With a row the first view's queries ship alone (queryRow), that row is all a drawing needs.
      if (servesRow(info, layer, head, row)) add(blocks.queryRow, 0);
      else add(blocks.query, slot);
      add(blocks.key, slot);
      if (blocks.bias && !blocks.bias.slopes) add(blocks.bias, blocks.bias.sharedLayers ? info.heads.indexOf(head) : slot);
    }
  });
  return out;
};

// Whether the payload has a block of this kind at all for (section, layer, head).
attndocs._ships = function (fig, what, name, layer, head) {
  var info = sectionInfo(fig, name);
  if (what === "top") return !!(info.blocks.top && util.own(info.blocks.top.layers, String(layer)));
  if (what === "overview") return !!info.blocks.overview;
  if (what === "qk") return !!info.hasQK;
  return true;
};

// -- decoding -----------------------------------------------------------------------------------
// Number of leading columns row i of a causal section keeps (payload.kept_columns).
function keptColumns(rows, cols, i) {
  var k = i + 1 + cols - rows;
  return k < 0 ? 0 : k > cols ? cols : k;
}

// {codes: Uint8Array(rows*cols), view: whether it is a view into a chunk} or null while the
// chunk is not loaded.
attndocs._attnCodes = function (fig, name, layer, head) {
  var info = sectionInfo(fig, name);
  var rows = info.shape[0], cols = info.shape[1];
  var packed = partBytes(fig, info.blocks.attn, slotOf(info, layer, head));
  if (!packed) return null;
  if (!info.causal) return { codes: packed, view: true };
  var out = new Uint8Array(rows * cols);
  var p = 0;
  for (var i = 0; i < rows; i++) {
    var keep = keptColumns(rows, cols, i);
    out.set(packed.subarray(p, p + keep), i * cols);
    p += keep;
  }
  return { codes: out, view: false };
};

// The weights the all-tokens line drawing shows, per row: {counts, starts, keys, codes}.
attndocs._top = function (fig, name, layer, head) {
  var info = sectionInfo(fig, name), top = info.blocks.top;
  var parts = top && util.own(top.layers, String(layer));
  var where = parts && parts[indexOf(info.heads, head, "head")];
  if (!where) return null;
  var chunk = fig._store.data[where[0]];
  if (!chunk) return null;
  var rows = info.shape[0], base = where[1], bytes = chunk.subarray(base, base + where[2]);
  var starts = new Uint32Array(rows + 1), total = 0;
  for (var i = 0; i < rows; i++) {
    starts[i] = total;
    total += bytes[2 * i] | (bytes[2 * i + 1] << 8);
  }
  starts[rows] = total;
  var keys = new Uint16Array(total), at = 2 * rows;
  for (var k = 0; k < total; k++) keys[k] = bytes[at + 2 * k] | (bytes[at + 2 * k + 1] << 8);
  return { starts: starts, keys: keys, codes: bytes.subarray(at + 2 * total, at + 3 * total), minCode: top.minCode };
};

// A head's max-pooled codes for the model view's thumbnail: {codes: Uint8Array(R*C), rows: R,
// cols: C, rowEdges, colEdges}, or null.
attndocs._overview = function (fig, name, layer, head) {
  var info = sectionInfo(fig, name), block = info.blocks.overview;
  if (!block) return null;
  var codes = partBytes(fig, block, slotOf(info, layer, head));
  if (!codes) return null;
  return { codes: codes, rows: block.rows, cols: block.cols, rowEdges: block.rowEdges, colEdges: block.colEdges };
};

function view(bytes) {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function float16(bits) {
  var sign = bits & 0x8000 ? -1 : 1, exp = (bits >> 10) & 0x1f, frac = bits & 0x3ff;
  if (exp === 0) return sign * Math.pow(2, -14) * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * Math.pow(2, exp - 15) * (1 + frac / 1024);
}

// The first query row a neuron view opens on ships alone in chunk 0 ("queryRow"; the rest of
// that head's queries follow in a chunk of their own): whether it is (layer, head, row).
function servesRow(info, layer, head, row) {
  var r = info.blocks.queryRow;
  return !!r && row != null && r.layer === layer && r.head === head && r.row === row;
}

// With `row`, the query vectors may be that row alone: q then holds it at its place (the other
// rows are zero) and the result says rowOnly: row. Such a partial result is not cached.
attndocs._qk = function (fig, name, layer, head, row) {
  var info = sectionInfo(fig, name);
  if (!info.hasQK) return null;
  var slot = slotOf(info, layer, head), hi = info.heads.indexOf(head);
  var d = info.d, rows = info.shape[0], cols = info.shape[1], blocks = info.blocks;
  // float32, as the model computed them, shipped as four byte planes (payload.byte_planes:
  // every value's first byte, then every second ...), put back together little-endian.
  function vectors(block, n, part) {
    var bytes = partBytes(fig, block, part == null ? slot : part);
    if (!bytes) return null;
    var count = n * d, joined = new Uint8Array(4 * count);
    for (var i = 0; i < count; i++) {
      joined[4 * i] = bytes[i];
      joined[4 * i + 1] = bytes[count + i];
      joined[4 * i + 2] = bytes[2 * count + i];
      joined[4 * i + 3] = bytes[3 * count + i];
    }
    var dv = view(joined), out = new Float32Array(count);
    for (i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
    return out;
  }
  var q = vectors(blocks.query, rows), k = vectors(blocks.key, cols), rowOnly = null;
  if (!q && servesRow(info, layer, head, row)) {
    var one = vectors(blocks.queryRow, 1, 0);
    if (one) {
      q = new Float32Array(rows * d);
      q.set(one, row * d);
      rowOnly = row;
    }
  }
  if (!q || !k) return null;
  // softcap (Gemma 2): the model used cap * tanh(s * q.k / cap). window: this layer's window width
  // (payload.window_hidden says which keys it hides), null without one; its mask ships as the width.
  var width = info.windows ? info.windows[layer] : null;
  var result = {
    q: q, k: k, d: d, bias: null, scale: info.scale, rowOnly: rowOnly, softcap: info.softcap || null,
    window: width == null ? null : width, slope: null,
  };
  if (blocks.bias && blocks.bias.slopes) {
    // ALiBi (payload.alibi_slopes): -slope * (i - j), query i at key position i + cols - rows.
    var slope = blocks.bias.slopes[hi], alibi = new Float32Array(rows * cols);
    result.slope = slope;
    for (var r = 0; r < rows; r++) {
      for (var c = 0; c < cols; c++) alibi[r * cols + c] = -slope * (r + cols - rows - c);
    }
    result.bias = alibi;
  } else if (blocks.bias) {
    var raw = partBytes(fig, blocks.bias, blocks.bias.sharedLayers ? hi : slot);
    if (!raw) return null;
    var dv = view(raw), n = rows * cols;
    var bias = new Float32Array(n);
    for (var j = 0; j < n; j++) bias[j] = float16(dv.getUint16(j * 2, true));
    result.bias = bias;
  }
  return result;
};

function dequantise(codes) {
  var data = new Float32Array(codes.length);
  for (var i = 0; i < codes.length; i++) data[i] = attndocs.DEQUANT[codes[i]];
  return data;
}

// One part of an extra (a layer slot of a 3-d extra; the whole of a 2-d one), or null.
attndocs._extraPart = function (fig, name, k) {
  var block = util.own(fig.header.extras, name);
  if (!block) return null;
  var codes = partBytes(fig, block, block.shape.length === 3 ? k : 0);
  return codes ? dequantise(codes) : null;
};

attndocs._extra = function (fig, name) {
  var block = util.own(fig.header.extras, name);
  if (!block) return null;
  var parts = partsOf(block), data = new Float32Array(block.part * parts.length);
  for (var k = 0; k < parts.length; k++) {
    var codes = partBytes(fig, block, k);
    if (!codes) return null;
    for (var i = 0; i < codes.length; i++) data[k * block.part + i] = attndocs.DEQUANT[codes[i]];
  }
  return { data: data, shape: block.shape.slice() };
};
