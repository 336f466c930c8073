// attndocs payload decoding: mirrors attndocs/payload.py (header JSON + binary body).
//
// Each figure holds a hidden div.attndocs-data whose data-header attribute is the JSON
// header and whose data-body is the base64 body (or data-src names a side file, fetched
// only when the figure comes near the viewport: see 06-boot.js). Data in
// attributes, not <script> blocks: hosts that re-run a page's scripts (Material for
// MkDocs' instant navigation copies inline scripts without their type) would execute
// script blocks, and search indexers read their text. The body may be zlib-compressed
// (header.body.compression == "deflate"). Blocks are located by the offsets in the header;
// multi-byte values are little-endian.

var FORMAT = "attndocs.payload";
var SUPPORTED_VERSION = 1;

function base64Bytes(text) {
  var binary = atob(text.replace(/\s+/g, ""));
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
  return header;
}

attndocs._loadPayload = function (figEl) {
  return new Promise(function (resolve) { resolve(readHeader(figEl)); }).then(function (header) {
    var node = dataNode(figEl);
    var src = node.getAttribute("data-src");
    if (!src && !node.hasAttribute("data-body")) throw new Error("the figure has no payload body");
    var raw;
    if (src) {
      raw = fetch(src).then(function (response) {
        if (!response.ok) throw new Error("cannot load " + src + " (HTTP " + response.status + ")");
        return response.arrayBuffer();
      }, function () {
        throw new Error("cannot load " + src + (location.protocol === "file:" ?
          " from a file:// page; build with inline payloads to open pages from disk" : ""));
      }).then(function (buffer) { return new Uint8Array(buffer); });
    } else {
      raw = Promise.resolve(base64Bytes(node.getAttribute("data-body")));
    }
    return raw.then(function (bytes) {
      return header.body.compression === "deflate" ? inflate(bytes) : bytes;
    }).then(function (body) {
      if (body.length !== header.body.length) throw new Error("the figure's payload is damaged (wrong length)");
      return { header: header, body: body };
    });
  });
};

function indexOf(list, value, what) {
  var i = list.indexOf(value);
  if (i < 0) throw new Error(what + " " + value + " is not in this figure's payload");
  return i;
}

function sectionInfo(fig, name) {
  var info = attndocs.util.own(fig.header.sections, name);
  if (!info) throw new Error("section " + name + " is not in this figure's payload");
  return info;
}

// Number of leading columns row i of a causal section keeps (payload.kept_columns).
function keptColumns(rows, cols, i) {
  var k = i + 1 + cols - rows;
  return k < 0 ? 0 : k > cols ? cols : k;
}

function triangleSize(rows, cols) {
  var n = 0;
  for (var i = 0; i < rows; i++) n += keptColumns(rows, cols, i);
  return n;
}

attndocs._attnCodes = function (fig, name, layer, head) {
  var info = sectionInfo(fig, name);
  var li = indexOf(info.layers, layer, "layer"), hi = indexOf(info.heads, head, "head");
  var rows = info.shape[0], cols = info.shape[1];
  var block = info.blocks.attn;
  var per = block.triangle ? (info._tri || (info._tri = triangleSize(rows, cols))) : rows * cols;
  var start = block.offset + (li * info.heads.length + hi) * per;
  var packed = fig._body.subarray(start, start + per);
  if (!block.triangle) return packed;
  var out = new Uint8Array(rows * cols);
  var p = 0;
  for (var i = 0; i < rows; i++) {
    var keep = keptColumns(rows, cols, i);
    out.set(packed.subarray(p, p + keep), i * cols);
    p += keep;
  }
  return out;
};

function view(fig, block) {
  return new DataView(fig._body.buffer, fig._body.byteOffset + block.offset, block.length);
}

function float16(bits) {
  var sign = bits & 0x8000 ? -1 : 1, exp = (bits >> 10) & 0x1f, frac = bits & 0x3ff;
  if (exp === 0) return sign * Math.pow(2, -14) * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * Math.pow(2, exp - 15) * (1 + frac / 1024);
}

attndocs._qk = function (fig, name, layer, head) {
  var info = sectionInfo(fig, name);
  if (!info.hasQK) return null;
  var li = indexOf(info.layers, layer, "layer"), hi = indexOf(info.heads, head, "head");
  var nh = info.heads.length, d = info.d, rows = info.shape[0], cols = info.shape[1];
  var blocks = info.blocks;
  var slot = li * nh + hi;
  function vectors(codesBlock, scaleBlock, n) {
    var scale = view(fig, scaleBlock).getFloat32(slot * 4, true);
    var start = codesBlock.offset + slot * n * d;
    var codes = new Int8Array(fig._body.buffer, fig._body.byteOffset + start, n * d);
    var out = new Float32Array(n * d);
    for (var i = 0; i < out.length; i++) out[i] = codes[i] * scale;
    return out;
  }
  var result = {
    q: vectors(blocks.query, blocks.queryScale, rows),
    k: vectors(blocks.key, blocks.keyScale, cols),
    d: d,
    bias: null,
    scale: info.scale,
  };
  if (blocks.bias) {
    var bslot = blocks.bias.sharedLayers ? hi : slot;
    var dv = view(fig, blocks.bias), n = rows * cols, base = bslot * n * 2;
    var bias = new Float32Array(n);
    for (var j = 0; j < n; j++) bias[j] = float16(dv.getUint16(base + j * 2, true));
    result.bias = bias;
  }
  return result;
};

attndocs._extra = function (fig, name) {
  var block = attndocs.util.own(fig.header.extras, name);
  if (!block) return null;
  var codes = fig._body.subarray(block.offset, block.offset + block.length);
  var data = new Float32Array(codes.length);
  for (var i = 0; i < codes.length; i++) data[i] = attndocs.DEQUANT[codes[i]];
  return { data: data, shape: block.shape.slice() };
};
