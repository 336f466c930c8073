"""Turns an AttentionRecord into the compact browser payload: a JSON header and binary chunks.

Encoding (the JS decoder in ``assets/js/10-payload.js`` mirrors it):

* attention probabilities: uint8 with square-root companding, ``q = round(255 * sqrt(a))``,
  decoded as ``(q / 255) ** 2``. A non-zero weight that would round to 0 is stored as 1, so
  no attention ever disappears. Causal sections ship only the kept triangle (row ``i``
  keeps columns ``j < i + 1 + cols - rows``), row-major.
* query / key vectors: float32, as the model computed them (the neuron view prints scores to
  three decimals), each head's as four byte planes (:func:`byte_planes`, ``f32planes``).
* additive bias (T5-style relative positions): float16, once when every layer has the same.
* extras (aggregates, rollout, ... from :mod:`attndocs.analysis`): encoded like attention.
* top weights (``top8``, large head views only): per head of the first layer, the weights
  its all-tokens line drawing shows (see :func:`_top_weights`).
* overview (``max8``, large model views only): each head's codes max-pooled to at most
  48 x 48 bins, which the model view draws its thumbnails from.

A figure ships in chunks. Chunk 0 holds what its first view draws; every other chunk is
one layer (head view) or one head (the other views) and loads when the reader asks for it.
A figure of at most :data:`SINGLE_CHUNK` bytes ships as chunk 0 alone. Each block is one
part per (layer, head) (part ``li * nHeads + hi``), in runs of parts laid out one after
the other (``runs: [[chunk, offset, count], ...]``, parts ``part`` bytes long; parts of f16
and f32 blocks aligned to 4, parts of one-byte blocks back to back); multi-byte numbers are
little-endian. Each chunk is zlib-compressed when that makes it
smaller and named by the hash of its bytes as shipped, so side files can be cached
forever and rebuilds are byte-identical. Only the layers and heads in ``include-layers``
/ ``include-heads`` ship.

The header is JSON with camelCase keys (see the contract at the top of ``00-core.js``).
:func:`script_json` makes any JSON safe to place inside a ``<script>`` element.

This module imports numpy only; never torch.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .compact import dequantize_attention, kept_columns, quantize_attention, triangle_mask
from .compare import compare_mode
from .compare import payload_header as compare_payload_header
from .errors import OptionError
from .options import FigureOptions
from .record import SECTION_NAMES, AttentionRecord, Section
from .state import opening_state
from .vision import payload_json as image_json

PAYLOAD_FORMAT = "attndocs.payload"
PAYLOAD_VERSION = 3
_ALIGN = 4
SMALL_PAYLOAD = 2 * 1024 * 1024  # bytes of codes compressed at zlib's level 6 (see compression_level)


# -- quantisation -------------------------------------------------------------------------
# The cache's codec (compact.py) is the page's: a page built from a cached record ships the very
# codes the cache holds, and one implementation keeps the two from drifting apart.


def compression_level(size: int) -> int:
    """zlib level for ``size`` bytes of payload: 6 for small payloads, 1 for large ones.

    Small payloads, where either takes milliseconds, also try zlib's default strategy
    beside its run-length one (see :func:`_compress`) and keep the smaller.
    """
    return 6 if size <= SMALL_PAYLOAD else 1


# -- escaping -----------------------------------------------------------------------------
_SCRIPT_UNSAFE = re.compile("[<>&'\u2028\u2029\ud800-\udfff]")


def script_json(value: Any) -> str:
    """JSON that can sit in a single-quoted HTML attribute or a ``<script>`` with no way out.

    ``<``, ``>``, ``&``, ``'``, U+2028/U+2029 and lone surrogates become ``\\uXXXX`` escapes,
    so no text can end the attribute, close an element, start a character reference, open
    a comment or break the page's encoding; the browser hands the attribute back verbatim.
    Keys are sorted, so equal values always give equal bytes.
    """
    text = json.dumps(_clean_json(value), ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False)
    return _SCRIPT_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _clean_json(value: Any) -> Any:
    """Plain JSON types only; non-finite floats (which JSON cannot hold) become null."""
    if isinstance(value, dict):
        return {str(k): _clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_json(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return _clean_json(value.tolist())
    return value


# -- selection ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Selection:
    """Which layers and heads ship, and which are shown first (all model indices)."""

    layers: tuple[int, ...]
    heads: tuple[int, ...]
    layer: int
    selected_heads: tuple[int, ...]
    # The state keys the author set, checked and resolved (attndocs.state.opening_state).
    opening: dict[str, Any] = field(default_factory=dict)


def _describe_range(count: int) -> str:
    return f"0-{count - 1}" if count > 1 else "0"


def select_layers_heads(record: AttentionRecord, options: FigureOptions) -> Selection:
    """Check layer, heads, include-layers and include-heads against the record.

    Raises :class:`OptionError` naming the option, the bad value and the allowed range.
    """
    n_layers = max(s.layers for s in record.sections.values())
    n_heads = max(s.heads for s in record.sections.values())

    def check(name: str, values: tuple[int, ...] | None, count: int, what: str) -> tuple[int, ...]:
        if values is None:
            return tuple(range(count))
        bad = [v for v in values if v >= count]
        if bad:
            raise OptionError(
                f"option '{name}' has {what} {', '.join(map(str, bad))} out of range",
                f"model {record.model_id or '(unnamed)'} has {count} {what}s: {_describe_range(count)}",
            )
        if not values:
            raise OptionError(f"option '{name}' selects no {what}s")
        return tuple(sorted(values))

    layers = check("include-layers", options.include_layers, n_layers, "layer")
    heads = check("include-heads", options.include_heads, n_heads, "head")
    layer = layers[0] if options.layer is None else options.layer
    if layer >= n_layers:
        raise OptionError(
            f"option 'layer' is {layer}, out of range",
            f"model {record.model_id or '(unnamed)'} has {n_layers} layers: {_describe_range(n_layers)}",
        )
    if layer not in layers:
        raise OptionError(f"option 'layer' is {layer}, which include-layers leaves out", f"included: {', '.join(map(str, layers))}")
    selected = heads if options.heads is None else tuple(options.heads)
    bad = [h for h in selected if h >= n_heads]
    if bad:
        raise OptionError(
            f"option 'heads' has head {', '.join(map(str, bad))} out of range",
            f"model {record.model_id or '(unnamed)'} has {n_heads} heads: {_describe_range(n_heads)}",
        )
    left_out = [h for h in selected if h not in heads]
    if left_out:
        raise OptionError(
            f"option 'heads' selects head {', '.join(map(str, left_out))}, which include-heads leaves out",
            f"included: {', '.join(map(str, heads))}",
        )
    opening = opening_state(record, options, layer, selected)
    return Selection(layers=layers, heads=heads, layer=layer, selected_heads=selected, opening=opening)


# -- the payload --------------------------------------------------------------------------
# A figure whose blocks add up to at most this many bytes ships as one chunk, as small
# figures always did: splitting it would only add requests. A larger one is split so that
# its first view loads what it draws and nothing else.
SINGLE_CHUNK = 512 * 1024
# The head view's first layer goes whole into the first chunk up to this size; past it the
# first chunk holds only the lines the first drawing shows (see _top_weights).
FIRST_LAYER_WHOLE = 512 * 1024
OVERVIEW_SIDE = 48  # the model view's thumbnails: at most this many bins a side ...
OVERVIEW_CELLS = 1 << 20  # ... and this many cells over all of them (32 x 32 heads get 32 x 32)
BUCKETS = 16  # opacity steps of the line drawings (BUCKETS in 30-head.js)
_WORKERS = min(8, os.cpu_count() or 1)
# Below this many attention cells (or bytes to compress) a figure is encoded on one thread.
SERIAL_WORK = 1 << 18


def _smallest_drawn_code() -> int:
    """The smallest code the all-tokens line drawing shows: its weight rounds to 1/16 or more.

    Computed as the browser computes it (30-head.js, weightTable): the weight stored as a
    float32, times 16, rounded half up.
    """
    for code in range(1, 256):
        weight = float(np.float32((code / 255) * (code / 255)))
        if math.floor(weight * BUCKETS + 0.5) >= 1:
            return code
    raise AssertionError("unreachable")


MIN_DRAWN_CODE = _smallest_drawn_code()


# Encodings of more than one byte a value: their parts are 4-byte aligned, so the browser can view
# them as typed arrays. Parts of every other block (one byte a value: sqrt8, max8, and the
# extras, which carry no encoding) follow one another with no gap: a 13-token figure's heads are
# 169 bytes, and aligning each cost 3 bytes a head. 10-payload.js knows the same list.
ALIGNED_ENCODINGS = frozenset({"f16", "f32"})


def _stride(size: int, encoding: str | None) -> int:
    """Bytes from one part of a block to the next in a run: its size, aligned to 4 for multi-byte values."""
    return size + (-size) % _ALIGN if encoding in ALIGNED_ENCODINGS else size


class _Chunk:
    """The blocks of one chunk, each starting 4-byte aligned (a packed part right after its neighbour)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, raw: bytes, packed: bool = False) -> int:
        pad = 0 if packed else (-self.size) % _ALIGN
        if pad:
            self.parts.append(b"\0" * pad)
            self.size += pad
        offset = self.size
        self.parts.append(raw)
        self.size += len(raw)
        return offset

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


class _ChunkWriter:
    """Blocks grouped into chunks: the groups the first view needs share chunk 0, and every
    other group is a chunk of its own. With ``single`` everything goes into chunk 0."""

    def __init__(self, first: set[tuple], single: bool) -> None:
        self.first = first
        self.single = single
        self.chunks = [_Chunk()]
        self._index: dict[tuple, int] = {}

    def add(self, group: tuple, data: bytes | np.ndarray, packed: bool = False) -> list[int]:
        """Append ``data`` to ``group``'s chunk (4-byte aligned unless ``packed``); returns ``[chunk, offset]``."""
        raw = data.tobytes() if isinstance(data, np.ndarray) else data
        if self.single or group in self.first:
            index = 0
        else:
            index = self._index.get(group, len(self.chunks))
            if index == len(self.chunks):
                self._index[group] = index
                self.chunks.append(_Chunk())
        return [index, self.chunks[index].add(raw, packed)]

    def parted(self, parts: list[tuple[tuple, bytes | np.ndarray]], **info: Any) -> dict[str, Any]:
        """A block in equal-sized parts (one per head, layer ...), each in its group's chunk."""
        raws = [(group, data.tobytes() if isinstance(data, np.ndarray) else data) for group, data in parts]
        size = len(raws[0][1]) if raws else 0
        stride = _stride(size, info.get("encoding"))
        packed = stride == size
        # Runs of parts laid out one after the other: [chunk, offset of the first, count].
        # A figure in one chunk is a single run, so the header stays small.
        runs: list[list[int]] = []
        for group, raw in raws:
            chunk, offset = self.add(group, raw, packed)
            last = runs[-1] if runs else None
            if last and last[0] == chunk and last[1] + last[2] * stride == offset:
                last[2] += 1
            else:
                runs.append([chunk, offset, 1])
        return {**info, "part": size, "runs": runs}


@dataclass
class Payload:
    """A figure's data as the browser receives it: a JSON header and binary chunks.

    Chunk 0 holds what the figure's first view draws; the others load when the reader
    asks for what they hold (another layer, a head's detail). ``header["chunks"]`` names
    each by the hash of its bytes as shipped.
    """

    header: dict[str, Any]
    chunks: list[bytes]  # uncompressed
    shipped: list[bytes]  # what ships: each chunk compressed when that is smaller

    def header_json(self) -> str:
        """The header as JSON that is safe inside a single-quoted attribute (or a ``<script>``)."""
        return script_json(self.header)

    @property
    def body(self) -> bytes:
        """Every chunk, uncompressed, one after the other (its length is the figure's data)."""
        return b"".join(self.chunks)

    @property
    def encoded(self) -> bytes:
        """Every chunk as shipped, one after the other (its length is what the figure ships in all)."""
        return b"".join(self.shipped)

    def body_base64(self, index: int = 0) -> str:
        """Chunk ``index`` as shipped, in base64 (what an inline figure carries)."""
        return base64.b64encode(self.shipped[index]).decode("ascii")

    def chunk_id(self, index: int) -> str:
        return self.header["chunks"][index]["id"]

    def chunk_file_name(self, index: int) -> str:
        """``attndocs-<hash>.js``: named by its content, so a browser cache never serves a stale one."""
        return f"attndocs-{self.chunk_id(index)}.js"

    def chunk_script(self, index: int) -> bytes:
        """Chunk ``index`` as a script that hands its data to the page's attndocs.js.

        A ``<script>`` element loads it from a web server and from file:// alike, where
        ``fetch`` cannot. Hex and base64 only: nothing in it needs escaping.
        """
        return f'attndocs.chunk("{self.chunk_id(index)}","{self.body_base64(index)}");\n'.encode("ascii")

    def digest(self, header_json: str | None = None) -> str:
        """sha256 of the header, which names every chunk by its hash: the figure's content hash
        (``header_json``: :meth:`header_json`'s text, when the caller has it already)."""
        return hashlib.sha256((header_json or self.header_json()).encode("utf-8")).hexdigest()


_SECTION_ORDER = {name: i for i, name in enumerate(SECTION_NAMES)}


def _section_layers_heads(section: Section, selection: Selection) -> tuple[list[int], list[int]]:
    return [x for x in selection.layers if x < section.layers], [h for h in selection.heads if h < section.heads]


def _heads_of(array: np.ndarray, layer: int, heads: list[int]) -> np.ndarray:
    """``array[layer][heads]`` without a copy when every head is wanted in order."""
    layer_array = array[layer]
    if heads == list(range(layer_array.shape[0])):
        return layer_array
    return layer_array[heads]


class _InlinePool:
    """A stand-in for a one-thread pool that runs each job at once, on the calling thread."""

    def __enter__(self) -> _InlinePool:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, function: Any, *args: Any) -> Future:
        done: Future = Future()
        done.set_result(function(*args))
        return done


def _threads_pay(work: int) -> bool:
    """Whether ``work`` (attention cells, or bytes to compress) is worth threads: starting a pool
    costs about a millisecond, more than a small figure's whole encoding."""
    return _WORKERS > 1 and work >= SERIAL_WORK


def _pool_map(function: Any, items: list, work: int) -> list:
    """``[function(x) for x in items]``, on several threads when there is more than one item
    and ``work`` (see :func:`_threads_pay`) is large enough.

    numpy and zlib let go of the GIL for their work, so layers quantise and chunks
    compress side by side; the results keep the items' order, so output never depends
    on which thread finished first.
    """
    if len(items) < 2 or not _threads_pay(work):
        return [function(x) for x in items]
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        return list(pool.map(function, items))


# -- what a figure ships and where ----------------------------------------------------------
@dataclass
class _Plan:
    """Which blocks a figure ships and which of them its first view needs."""

    view: str
    single: bool  # everything in one chunk
    layer_unit: bool  # attention grouped by layer (head view) rather than by head
    first: set[tuple]
    top: tuple[str, int] | None  # (section, layer) shipped as top weights in chunk 0
    overview: int  # bins a side of the model view's thumbnails; 0: none
    # (section, layer, head, row): a neuron view's first query row, shipped alone in chunk 0; the
    # rest of that head's queries load after the first paint. None: the queries ship with the keys.
    query_row: tuple[str, int, int, int] | None = None

    def attn_group(self, name: str, layer: int, head: int) -> tuple:
        return ("layer", name, layer) if self.layer_unit else ("head", name, layer, head)


def _cells(section: Section) -> int:
    """Attention codes one head ships: the kept triangle of a causal section, else every cell."""
    rows, cols = int(section.attention.shape[2]), int(section.attention.shape[3])
    return int(kept_columns(rows, cols).sum()) if section.causal else rows * cols


def _first_view(record: AttentionRecord, selection: Selection, order: list[str], with_qk: bool) -> tuple[str, int, int]:
    """The section, layer and head the figure opens on (as ``initialState`` in 00-core.js sets them)."""
    names = [n for n in order if record.sections[n].has_qk] if with_qk else []
    name = selection.opening.get("section") or (names[0] if names else order[0])
    section = record.sections[name]
    layers, heads = _section_layers_heads(section, selection)
    layer = selection.layer if selection.layer in layers else (layers or [0])[0]
    head = next((h for h in selection.selected_heads if h in heads), (heads or [0])[0])
    return name, layer, head


def _plan(
    record: AttentionRecord, options: FigureOptions, selection: Selection, order: list[str], with_qk: bool, extras: dict[str, np.ndarray]
) -> _Plan:
    view = options.view
    estimate = sum(int(np.prod(a.shape)) for a in extras.values())
    thumbs = 0
    for name in order:
        section = record.sections[name]
        layers, heads = _section_layers_heads(section, selection)
        count = len(layers) * len(heads)
        thumbs += count
        if not (with_qk and section.has_qk):  # a neuron view with vectors ships no attention (_encode_section)
            estimate += count * _cells(section)
        if with_qk and section.has_qk:
            rows, cols = section.attention.shape[2:]
            estimate += count * (rows + cols) * int(section.query.shape[-1])
    name, layer, head = _first_view(record, selection, order, with_qk)
    # The patch view averages the heads of a layer: it loads a layer at a time, as the head view does.
    plan = _Plan(view=view, single=estimate <= SINGLE_CHUNK, layer_unit=view in ("head", "patch"), first={("base",)}, top=None, overview=0)
    if plan.single:
        return plan
    if view == "patch":
        plan.first.add(("layer", name, layer))
    elif view == "head":
        heads = _section_layers_heads(record.sections[name], selection)[1]
        if len(heads) * _cells(record.sections[name]) <= FIRST_LAYER_WHOLE:
            plan.first.add(("layer", name, layer))
        else:
            plan.top = (name, layer)
            plan.first.add(("top", name, layer))
    elif view == "model":
        plan.overview = max(8, min(OVERVIEW_SIDE, math.isqrt(OVERVIEW_CELLS // max(1, thumbs))))
        plan.first.add(("overview",))
    else:
        plan.first.add(("head", name, layer, head))
        plan.first.add(("bias", name, head))
        if with_qk and record.sections[name].has_qk:
            plan.query_row = (name, layer, head, _first_query(record.sections[name], selection))
        if view == "matrix":
            plan.first |= _matrix_opening(record.sections[name], name, layer, selection)
    return plan


def _first_query(section: Section, selection: Selection) -> int:
    """The query row a neuron view opens on (as currentQuery in 50-neuron.js): the author's query
    token, else the last row of a causal section (it sees the whole prefix), else the first."""
    rows = int(section.attention.shape[2])
    token = selection.opening.get("token")
    if isinstance(token, dict) and token.get("side") == "q" and 0 <= int(token.get("index", -1)) < rows:
        return int(token["index"])
    return rows - 1 if section.causal else 0


def _matrix_opening(section: Section, name: str, layer: int, selection: Selection) -> set[tuple]:
    """What a matrix figure opened in an aggregate mode draws first (beside the first head), so
    that it opens on its picture, not on a loading state."""
    mode = selection.opening.get("mode")
    layers, heads = _section_layers_heads(section, selection)
    if mode == "rollout" and section.rows == section.cols and layer in layers:
        return {("extra", f"{name}.rollout", layers.index(layer))}
    if mode in ("mean-all", "max-all"):
        return {("extra", f"{name}.{mode.replace('-', '_')}", 0)}
    if mode in ("mean", "max"):
        if len(heads) < section.heads:  # the aggregate over every head ships as an extra
            return {("extra", f"{name}.{mode}_heads", layers.index(layer))}
        return {("head", name, layer, h) for h in heads}
    return set()


# -- attention, layer by layer ------------------------------------------------------------------
def _bin_edges(n: int, bins: int, split: int | None) -> np.ndarray:
    """``bins + 1`` increasing token positions cutting ``n`` tokens into bins, one cut at ``split``.

    Cutting at sentence B's first token keeps every bin in one sentence, so the model
    view's A/B filters apply to thumbnails exactly.
    """
    if n <= bins:
        return np.arange(n + 1)
    if split is None or not 0 < split < n:
        return np.rint(np.linspace(0, n, bins + 1)).astype(np.int64)
    left = min(max(1, round(bins * split / n)), split, bins - 1)
    left = max(left, bins - (n - split))
    return np.concatenate([
        np.rint(np.linspace(0, split, left + 1)).astype(np.int64)[:-1],
        np.rint(np.linspace(split, n, bins - left + 1)).astype(np.int64),
    ])


def _top_weights(codes: np.ndarray, b_start: int | None) -> list[bytes]:
    """Per head of ``codes [H, rows, cols]``: the weights the all-tokens line drawing shows.

    Each row keeps every code from MIN_DRAWN_CODE up (at most about 32, since a row sums
    to one) and, where a row has none, its strongest key, which the drawing shows at the
    faintest step: over all keys, and over each sentence's keys (the A/B filters). Layout
    per head: uint16 count per row, uint16 key of each entry, uint8 code of each entry.
    """
    keep = codes >= MIN_DRAWN_CODE
    cols = codes.shape[-1]
    ranges = [(0, cols)] + ([(0, b_start), (b_start, cols)] if b_start and 0 < b_start < cols else [])
    for lo, hi in ranges:
        part = codes[..., lo:hi]
        best = part.argmax(axis=-1)
        best_code = np.take_along_axis(part, best[..., None], axis=-1)[..., 0]
        heads, rows = np.nonzero(~keep[..., lo:hi].any(axis=-1) & (best_code > 0))
        keep[heads, rows, best[heads, rows] + lo] = True
    out = []
    for h in range(codes.shape[0]):
        counts = keep[h].sum(axis=-1).astype("<u2")
        keys = np.nonzero(keep[h])[1].astype("<u2")
        out.append(counts.tobytes() + keys.tobytes() + codes[h][keep[h]].tobytes())
    return out


@dataclass
class _LayerCodes:
    attn: list[bytes]  # per head: sqrt8 codes (the kept triangle of a causal section)
    top: list[bytes] | None = None
    overview: list[bytes] | None = None


def _encode_layer(job: tuple) -> _LayerCodes:
    section, layer, heads, plan, name, b_start, edges = job
    # A record read from the cache form keeps the codes its attention came from: the same
    # companding as quantize_attention, so reusing them gives the same bytes a third faster.
    stored = section.attention_codes()
    codes = _heads_of(stored, layer, heads) if stored is not None else quantize_attention(_heads_of(section.attention, layer, heads))
    mask = triangle_mask(codes.shape[1], codes.shape[2]) if section.causal else None
    out = _LayerCodes(attn=[(c[mask] if mask is not None else c).tobytes() for c in codes])
    if plan.top == (name, layer):
        out.top = _top_weights(codes, b_start)
    if edges is not None:
        pooled = np.maximum.reduceat(np.maximum.reduceat(codes, edges[0][:-1], axis=1), edges[1][:-1], axis=2)
        out.overview = [np.ascontiguousarray(p).tobytes() for p in pooled]
    return out


def _encode_section(
    record: AttentionRecord, name: str, selection: Selection, plan: _Plan, writer: _ChunkWriter, with_qk: bool
) -> dict[str, Any]:
    section = record.sections[name]
    layers, heads = _section_layers_heads(section, selection)
    att = section.attention
    n_rows, n_cols = int(att.shape[2]), int(att.shape[3])
    causal = bool(section.causal)
    b_start = record.sides[section.cols].text_b_start
    edges = None
    if plan.overview:
        edges = (
            _bin_edges(n_rows, plan.overview, record.sides[section.rows].text_b_start),
            _bin_edges(n_cols, plan.overview, b_start),
        )
    # A neuron view with query/key vectors draws its weights as the softmax of the scores it shows
    # (softmax(s * q.k + bias), which extraction checked against the model's attention): it ships
    # the vectors and no attention, half its bytes at 512 tokens and a third of its render time.
    vectors_only = bool(with_qk and section.has_qk and layers and heads)
    jobs = [(section, layer, heads, plan, name, b_start, edges) for layer in layers] if heads and not vectors_only else []
    encoded = _pool_map(_encode_layer, jobs, len(jobs) * len(heads) * n_rows * n_cols)
    attn_parts = []
    for layer, codes in zip(layers, encoded):
        attn_parts += [(plan.attn_group(name, layer, h), data) for h, data in zip(heads, codes.attn)]
    # A causal section's parts are its kept triangles; "triangle" says so only there, which
    # keeps the header of a short figure as small as it was before figures came in chunks.
    blocks: dict[str, Any] = {}
    if not vectors_only:
        blocks["attn"] = writer.parted(attn_parts, encoding="sqrt8", **({"triangle": True} if causal else {}))
    for layer, codes in zip(layers, encoded):
        if codes.top is not None:
            top = {"encoding": "top8", "minCode": MIN_DRAWN_CODE, "layers": {}}
            top["layers"][str(layer)] = [writer.add(("top", name, layer), data) + [len(data)] for data in codes.top]
            blocks["top"] = top
    if edges is not None:
        parts = [(("overview",), data) for codes in encoded for data in codes.overview or []]
        blocks["overview"] = writer.parted(
            parts, encoding="max8", rows=len(edges[0]) - 1, cols=len(edges[1]) - 1,
            rowEdges=edges[0].tolist(), colEdges=edges[1].tolist(),
        )
    info: dict[str, Any] = {
        "rows": section.rows,
        "cols": section.cols,
        "causal": causal,
        "shape": [n_rows, n_cols],
        "layers": layers,
        "heads": heads,
        "nLayers": section.layers,
        "nHeads": section.heads,
        "hasQK": False,
        "blocks": blocks,
    }
    if with_qk and section.has_qk and layers and heads:
        _encode_qk(section, name, layers, heads, plan, writer, blocks)
        d = int(section.query.shape[-1])
        scale = section.scale if section.scale is not None else 1.0 / math.sqrt(d)
        info.update(hasQK=True, scale=float(scale), d=d)
        # Only when set: payloads of families without a cap or a window keep their bytes.
        if section.softcap is not None:
            info["softcap"] = float(section.softcap)
        if section.windows is not None:
            info["windows"] = list(section.windows)
    return info


def _encode_qk(section: Section, name: str, layers: list[int], heads: list[int], plan: _Plan, writer: _ChunkWriter, blocks: dict) -> None:
    """Query and key vectors (float32, as the model computed them) and the bias (float16), per head.

    float32 because the neuron view prints each score ``s * q.k`` to three decimals and its
    weights as the softmax of those scores: int8 vectors put scores off by up to 0.5.
    """
    def pick(array: np.ndarray) -> np.ndarray:
        if layers == list(range(array.shape[0])) and heads == list(range(array.shape[1])):
            return np.asarray(array, dtype=np.float32)
        return np.asarray(array, dtype=np.float32)[np.ix_(layers, heads)]

    slots = [(li, layer, hi, head) for li, layer in enumerate(layers) for hi, head in enumerate(heads)]
    # The first view's queries: the row it opens on ships in chunk 0 ("queryRow"), the head's other
    # rows in a chunk of their own that loads after the first paint. A query row is as large as a
    # key row, so at 1,024 tokens and head size 128 this halves what the first paint needs.
    first = plan.query_row if plan.query_row is not None and plan.query_row[0] == name else None
    for which, values in (("query", section.query), ("key", section.key)):
        vectors = np.nan_to_num(pick(values)).astype("<f4")
        parts = []
        for li, layer, hi, head in slots:
            group = plan.attn_group(name, layer, head)
            if which == "query" and first is not None and first[1:3] == (layer, head):
                group = ("query", name, layer, head)
            parts.append((group, byte_planes(vectors[li, hi])))
        blocks[which] = writer.parted(parts, encoding="f32planes")
        if which == "query" and first is not None and first[1] in layers and first[2] in heads:
            _, layer, head, row = first
            blocks["queryRow"] = writer.parted(
                [(("base",), byte_planes(vectors[layers.index(layer), heads.index(head), row]))],
                encoding="f32planes", layer=layer, head=head, row=row,
            )
    if section.bias is None or is_window_mask(section):
        return  # a bias that is only each layer's window mask: the page builds it from the widths
    bias = pick(section.bias)
    # -inf marks masked cells; float16 keeps it. Large finite masks saturate to -inf too.
    shared = bool(len(layers) > 1 and all(np.array_equal(bias[0], b, equal_nan=True) for b in bias[1:]))
    slopes = alibi_slopes(bias[0], bool(section.causal)) if shared or len(layers) == 1 else None
    if slopes is not None:
        # ALiBi (BLOOM, MPT, Falcon): -slope * (i - j) in every layer; one number per head is all it ships.
        blocks["bias"] = {"slopes": slopes, "sharedLayers": True}
        return
    stored = bias[:1] if shared else bias
    # Mask values beyond float16's range (-1e9, finfo.min) mean "never attend": store -inf.
    stored = np.where(stored < -65504, -np.inf, np.minimum(stored, 65504)).astype("<f2")
    if shared:
        parts = [(("bias", name, head), stored[0, hi]) for hi, head in enumerate(heads)]
    else:
        parts = [(plan.attn_group(name, layer, head), stored[li, hi]) for li, layer, hi, head in slots]
    blocks["bias"] = writer.parted(parts, encoding="f16", sharedLayers=shared)


def key_distance(rows: int, cols: int) -> np.ndarray:
    """``[rows, cols]``: how far key j lies behind query i, the query at position ``i + cols - rows``
    (the last rows of a longer sequence, as a decoder's queries are)."""
    return (np.arange(rows)[:, None] + (cols - rows)) - np.arange(cols)[None, :]


def window_hidden(rows: int, cols: int, width: int, causal: bool) -> np.ndarray:
    """``[rows, cols]``: True where a window of ``width`` hides key j from query i (at position
    ``i + cols - rows``). Causal (Mistral, Qwen, Gemma: transformers' sliding window): keys more than
    ``width - 1`` back, so a query sees ``width`` tokens, itself included. Bidirectional (ModernBERT's
    local layers): keys more than ``width`` away on either side. 50-neuron.js masks by the same rule."""
    distance = key_distance(rows, cols)
    return distance >= width if causal else np.abs(distance) > width


def is_window_mask(section: Section) -> bool:
    """Whether ``section.bias`` is exactly its layers' window masks (-inf where each layer's window hides
    a key, 0 elsewhere, every head alike), so that the widths in ``windows`` say all it says."""
    if section.windows is None or section.bias is None or len(section.windows) != section.bias.shape[0]:
        return False
    _, _, rows, cols = section.bias.shape
    for layer, width in enumerate(section.windows):
        values = section.bias[layer]
        hidden = np.zeros((rows, cols), dtype=bool) if width is None else window_hidden(rows, cols, width, bool(section.causal))
        if not (np.all(np.isneginf(values[:, hidden])) and np.all(values[:, ~hidden] == 0)):
            return False
    return True


def alibi_slopes(bias: np.ndarray, causal: bool) -> list[float] | None:
    """Per-head slopes when ``bias`` (``[H, rows, cols]``) is ALiBi, ``-slope[h] * (i - j)`` with key j at
    position j and query i at position ``i + cols - rows``, over every cell the query may see (all of
    them unless ``causal``); else None. The slopes (float32, as the browser reads them) must give every
    such cell within 1e-6 of the head's largest value (at least 1): float32 rounding of the model's own
    term (a difference of two ``slope * position``), far closer than float16 storage. A bfloat16
    model's rounded ALiBi misses that and ships as a matrix."""
    heads, rows, cols = bias.shape
    if rows == 0 or cols < 2:
        return None
    distance = key_distance(rows, cols)
    seen = distance >= 0 if causal else np.ones_like(distance, dtype=bool)
    one_back = (distance == 1) & seen
    if not one_back.any():
        return None
    slopes = []
    for head in range(heads):
        values = np.asarray(bias[head], dtype=np.float64)
        slope = float(np.float32(-np.median(values[one_back])))
        if not np.all(np.isfinite(values[seen])):
            return None
        error = np.abs(values[seen] + slope * distance[seen])
        if np.any(error > 1e-6 * max(1.0, float(np.abs(values[seen]).max()))):
            return None
        slopes.append(slope)
    return slopes


def _words_json(record: AttentionRecord, options: FigureOptions) -> dict[str, Any]:
    """Option words (attndocs.words): a record of words ships each word's pieces (``words``); a
    neuron figure, drawn per piece all the same, says so (``wordPieces``). Nothing otherwise."""
    from .words import payload_words

    words = payload_words(record)
    if words is not None:
        return {"words": words}
    if getattr(options, "words", False) and options.view == "neuron":
        return {"wordPieces": True}
    return {}


def generation_json(generation: dict[str, Any]) -> dict[str, Any]:
    """The header's ``generation``: which side the model wrote, where its continuation starts
    (``promptLength`` tokens of that side are the prompt), how many it wrote, the text, the settings."""
    settings = generation.get("settings") or {}
    return {
        "side": generation["side"],
        "promptLength": int(generation["prompt_tokens"]),
        "generated": int(generation["new_tokens"]),
        "text": generation.get("text", ""),
        "stopped": generation.get("stopped"),
        "settings": {
            "newTokens": settings.get("new_tokens"),
            "sampling": bool(settings.get("sampling")),
            "seed": settings.get("seed"),
            "temperature": settings.get("temperature"),
        },
    }


def _side_json(side: Any) -> dict[str, Any]:
    return {
        "tokens": list(side.tokens),
        "display": list(side.display),
        "special": [1 if s else 0 for s in side.special],
        "textBStart": side.text_b_start,
    }


def _analysis_extras(record: AttentionRecord, options: FigureOptions) -> tuple[dict[str, np.ndarray], Any]:
    """Arrays and JSON from attndocs.analysis, or nothing while that module is absent."""
    try:
        from . import analysis
    except ImportError:
        return {}, None
    make = getattr(analysis, "payload_extras", None)
    if make is None:
        return {}, None
    arrays, meta = make(record, options)
    return dict(arrays or {}), meta


def _compare_json(
    record: AttentionRecord, second: AttentionRecord | None, options: FigureOptions, selection: Selection, plan: _Plan, writer: _ChunkWriter
) -> dict[str, Any]:
    """``header["compare"]``; the second record's attention goes in the chunks of the first's
    (the same groups: B's layer 3 loads with A's layer 3)."""

    def encode(other: AttentionRecord, chosen: dict[str, Any]) -> dict[str, Any]:
        picked = Selection(layers=chosen["layers"], heads=chosen["heads"], layer=chosen["layer"], selected_heads=chosen["selected_heads"])
        order = sorted(other.sections, key=lambda n: _SECTION_ORDER.get(n, len(_SECTION_ORDER)))
        arrays, analysis_json = _analysis_extras(other, options)
        extras = {}
        for name in sorted(arrays):
            array = np.asarray(arrays[name], dtype=np.float32)
            parts = [(("extra", name, k), quantize_attention(a)) for k, a in enumerate(array)] if array.ndim == 3 else [
                (("extra", name, 0), quantize_attention(array))
            ]
            extras[name] = writer.parted(parts, shape=[int(x) for x in array.shape])
        return {
            "sides": {name: _side_json(side) for name, side in other.sides.items()},
            "sections": {name: _encode_section(other, name, picked, plan, writer, False) for name in order},
            "sectionOrder": order,
            "analysis": analysis_json,
            "extras": extras,
        }

    return compare_payload_header(
        record, second, options, list(selection.layers), list(selection.heads), selection.layer, selection.selected_heads, encode
    )


def _deflate(raw: bytes, level: int, strategy: int) -> bytes:
    packer = zlib.compressobj(level, zlib.DEFLATED, 15, 8, strategy)
    return packer.compress(raw) + packer.flush()


def _compress(job: tuple[bytes, int]) -> tuple[bytes, str]:
    """A chunk as shipped: zlib-compressed when that saves at least 5%.

    Attention codes are a skewed spread of byte values with few long repeats, so zlib's
    run-length strategy beats its default search, and takes a tenth of the time: a
    random-initialised BERT-base at 512 tokens (37 MB of codes) packs to 31% in 0.33 s,
    against 36% in 4.2 s at level 6; minilm's attention to 45% against 47%. Small chunks
    try both and keep the smaller.
    """
    raw, level = job
    if not level or not raw:
        return raw, "none"
    packed = _deflate(raw, level, zlib.Z_RLE)
    if level >= 6:
        other = _deflate(raw, level, zlib.Z_DEFAULT_STRATEGY)
        packed = other if len(other) < len(packed) else packed
    if len(packed) < len(raw) * 0.95:
        return packed, "deflate"
    return raw, "none"


def build_payload(
    record: AttentionRecord,
    options: FigureOptions,
    *,
    qk: bool | None = None,
    compress: bool = True,
    hash_state: bool = True,
    compare: AttentionRecord | None = None,
) -> Payload:
    """Encode ``record`` for the browser as ``options`` asks.

    ``compare``: the second record of a compare-text / compare-model figure, shipped in
    the same chunks under ``header["compare"]`` (attndocs.compare).

    ``qk`` ships query/key vectors (default: only for the neuron view, which needs them).
    ``hash_state=False`` keeps the figure from writing its state into the URL hash (for
    notebooks, whose URL is not the reader's to change). Raises :class:`OptionError` when
    a layer or head option does not fit the record.
    """
    if not record.sections:
        raise OptionError("the attention record has no attention sections")
    if options.view == "patch" and record.image is None:
        raise OptionError("view patch shows attention over an image, but this record was made from text", "choose another view")
    selection = select_layers_heads(record, options)
    with_qk = (options.view == "neuron") if qk is None else qk
    order = sorted(record.sections, key=lambda n: _SECTION_ORDER.get(n, len(_SECTION_ORDER)))
    from .analysis import ARRAY_VIEWS

    # The analysis on a thread of its own, beside the encoding, unless the view ships analysis
    # arrays (the matrix view's): the plan places those, so they come first. A small figure
    # does it first, on this thread.
    cells = sum(int(np.prod(s.attention.shape)) for s in record.sections.values() if s.attention is not None)
    with ThreadPoolExecutor(max_workers=1) if _threads_pay(cells) else _InlinePool() as pool:
        analysis_job = pool.submit(_analysis_extras, record, options)
        extras_arrays = analysis_job.result()[0] if options.view in ARRAY_VIEWS else {}
        extras_arrays = {name: np.asarray(extras_arrays[name], dtype=np.float32) for name in sorted(extras_arrays)}
        plan = _plan(record, options, selection, order, with_qk, extras_arrays)
        writer = _ChunkWriter(plan.first, plan.single)
        sections = {name: _encode_section(record, name, selection, plan, writer, with_qk) for name in order}
        # Done before the second record's analysis: its BLAS thread limit is process-wide, one at a time.
        analysis_json = analysis_job.result()[1]
    compared = _compare_json(record, compare, options, selection, plan, writer) if compare_mode(options) else None

    extras = {}
    for name, array in extras_arrays.items():
        # A 3-d extra (one matrix per layer, such as rollout) loads a layer at a time.
        parts = [(("extra", name, k), quantize_attention(a)) for k, a in enumerate(array)] if array.ndim == 3 else [
            (("extra", name, 0), quantize_attention(array))
        ]
        extras[name] = writer.parted(parts, shape=[int(x) for x in array.shape])  # sqrt8, as attention

    shipped_qk = any(s["hasQK"] for s in sections.values())
    if shipped_qk:
        neuron = {"available": True, "reason": None}
    elif not (record.neuron or {}).get("available"):
        neuron = {"available": False, "reason": (record.neuron or {}).get("reason") or "this record has no query/key vectors"}
    elif not record.has_qk:
        neuron = {"available": False, "reason": "this record has no query/key vectors"}
    else:
        neuron = {"available": False, "reason": "query/key vectors ship only with the neuron view"}

    chunks = [c.getvalue() for c in writer.chunks]
    level = compression_level(sum(len(c) for c in chunks)) if compress else 0
    packed = _pool_map(_compress, [(c, level) for c in chunks], sum(len(c) for c in chunks))
    shipped = [data for data, _ in packed]
    header = {
        "format": PAYLOAD_FORMAT,
        "version": PAYLOAD_VERSION,
        "view": options.view,
        "kind": record.kind,
        "model": {"id": record.model_id, "revision": record.revision, "type": record.model_type},
        "text": record.text,
        # The second text and the target only when there is one, caption and alt likewise: a
        # 13-token figure is 16 kB on a page, and nulls are bytes on every figure of a site.
        **({"textB": record.text_b} if record.text_b is not None else {}),
        **({"target": record.target} if record.target is not None else {}),
        **({"generation": generation_json(record.generation)} if record.generation is not None else {}),
        **({"image": image_json(record.image, selection.layers)} if record.image is not None else {}),
        "sides": {name: _side_json(side) for name, side in record.sides.items()},
        "sections": sections,
        "sectionOrder": order,
        "neuron": neuron,
        **_words_json(record, options),
        "options": {
            "layer": selection.layer,
            "heads": list(selection.selected_heads),
            "includeLayers": list(selection.layers),
            "includeHeads": list(selection.heads),
            "display": options.display,
            **({"caption": options.caption} if options.caption is not None else {}),
            **({"alt": options.alt} if options.alt is not None else {}),
            "hash": hash_state,
            # What the author set; the keys themselves (defaults, allowed values) are the same for
            # every figure of a view and ship once, in attndocs.js (render.bundle_js).
            **({"state": selection.opening} if selection.opening else {}),
        },
        "analysis": analysis_json,
        "extras": extras,
        **({"compare": compared} if compared is not None else {}),
        "chunks": [
            {"id": hashlib.sha256(data).hexdigest()[:16], "length": len(raw), "compression": how}
            for raw, (data, how) in zip(chunks, packed)
        ],
    }
    return Payload(header=_clean_json(header), chunks=chunks, shipped=shipped)


# -- decoding (Python side: tests, benchmarks, tools) -------------------------------------
Body = bytes | list[bytes]


def decode_body(header: dict[str, Any], encoded: bytes | list[bytes]) -> list[bytes]:
    """The uncompressed chunks of a payload from the chunks as shipped (bytes: chunk 0 alone)."""
    shipped = [encoded] if isinstance(encoded, (bytes, bytearray, memoryview)) else list(encoded)
    table = header["chunks"]
    if len(shipped) != len(table):
        raise ValueError(f"the payload has {len(table)} chunks; {len(shipped)} given")
    out = []
    for data, info in zip(shipped, table):
        raw = zlib.decompress(data) if info["compression"] == "deflate" else bytes(data)
        if len(raw) != info["length"]:
            raise ValueError("a payload chunk has the wrong length")
        out.append(raw)
    return out


def _chunks(body: Body) -> list[bytes]:
    return [bytes(body)] if isinstance(body, (bytes, bytearray, memoryview)) else list(body)


def part_locations(block: dict[str, Any]) -> list[tuple[int, int]]:
    """``[(chunk, offset)]`` of every part of a block, from its runs."""
    stride = _stride(block["part"], block.get("encoding"))
    return [(chunk, offset + k * stride) for chunk, offset, count in block["runs"] for k in range(count)]


def byte_planes(values: np.ndarray) -> bytes:
    """little-endian float32 values as four byte planes: every value's first byte, then every second
    byte, and so on ("f32planes"). The planes of sign and exponent repeat a few values, which deflate
    packs; interleaved, it cannot: query/key vectors of an 8B-shaped head at 1,024 tokens pack to
    84% of their float32 bytes this way, 93% as they are, and a neuron view's first paint stays
    under 1 MB."""
    raw = np.ascontiguousarray(values, dtype="<f4").view(np.uint8).reshape(-1, 4)
    return np.ascontiguousarray(raw.T).tobytes()


def from_byte_planes(data: np.ndarray) -> np.ndarray:
    """The inverse of :func:`byte_planes`: float32 values from their four byte planes."""
    planes = np.asarray(data, dtype=np.uint8).reshape(4, -1)
    return np.ascontiguousarray(planes.T).view("<f4").reshape(-1).astype(np.float32)


def _read(chunks: list[bytes], block: dict[str, Any], part: int, dtype: str = "u1") -> np.ndarray:
    chunk, offset = part_locations(block)[part]
    count = block["part"] // np.dtype(dtype).itemsize
    return np.frombuffer(chunks[chunk], dtype=dtype, count=count, offset=offset)


def decode_attention(header: dict[str, Any], body: Body, section: str) -> np.ndarray:
    """``[L', H', rows, cols]`` float32 of the shipped layers/heads of ``section``."""
    chunks = _chunks(body)
    info = header["sections"][section]
    block = info["blocks"]["attn"]
    n_rows, n_cols = info["shape"]
    n_l, n_h = len(info["layers"]), len(info["heads"])
    codes = np.stack([_read(chunks, block, k) for k in range(n_l * n_h)]) if n_l * n_h else np.zeros((0, 0), np.uint8)
    out = np.zeros((n_l, n_h, n_rows, n_cols), dtype=np.float32)
    if info["causal"]:
        out[:, :, triangle_mask(n_rows, n_cols)] = dequantize_attention(codes.reshape(n_l, n_h, -1))
    else:
        out[:] = dequantize_attention(codes.reshape(n_l, n_h, n_rows, n_cols))
    return out


def decode_qk(header: dict[str, Any], body: Body, section: str) -> dict[str, np.ndarray | None]:
    """query ``[L', H', rows, d]``, key ``[L', H', cols, d]`` and bias as float32."""
    chunks = _chunks(body)
    info = header["sections"][section]
    blocks = info["blocks"]
    n_l, n_h = len(info["layers"]), len(info["heads"])
    n_rows, n_cols = info["shape"]
    d = info["d"]

    def vectors(name: str, n: int) -> np.ndarray:
        parts = [from_byte_planes(_read(chunks, blocks[name], k)) for k in range(n_l * n_h)]
        return np.stack(parts).reshape(n_l, n_h, n, d)

    bias = None
    if "bias" in blocks and "slopes" in blocks["bias"]:
        distance = key_distance(n_rows, n_cols)
        slopes = np.asarray(blocks["bias"]["slopes"], dtype=np.float32).astype(np.float64)
        one = (-slopes[:, None, None] * distance).astype(np.float32)
        bias = np.broadcast_to(one, (n_l, n_h, n_rows, n_cols)).copy()
    elif "bias" in blocks:
        shared = blocks["bias"]["sharedLayers"]
        parts = len(part_locations(blocks["bias"]))
        bias = np.stack([_read(chunks, blocks["bias"], k, "<f2") for k in range(parts)]).astype(np.float32)
        bias = bias.reshape(1 if shared else n_l, n_h, n_rows, n_cols)
        if shared:
            bias = np.broadcast_to(bias, (n_l, n_h, n_rows, n_cols)).copy()
    elif info.get("windows") is not None:
        # Window masks shipped as widths (is_window_mask): the -inf bias they stand for, None when
        # no window hides a key (as a record of a text no longer than its windows has none).
        hidden = np.zeros((n_l, n_rows, n_cols), dtype=bool)
        for li, layer in enumerate(info["layers"]):
            width = info["windows"][layer]
            if width is not None:
                hidden[li] = window_hidden(n_rows, n_cols, width, bool(info["causal"]))
        if hidden.any():
            bias = np.broadcast_to(np.where(hidden, -np.inf, 0.0).astype(np.float32)[:, None], (n_l, n_h, n_rows, n_cols)).copy()
    return {"query": vectors("query", n_rows), "key": vectors("key", n_cols), "bias": bias}


def decode_top(header: dict[str, Any], body: Body, section: str, layer: int) -> list[list[tuple[int, int]]] | None:
    """The top weights shipped for ``layer`` of ``section``: per head, per row, [(key, code)]."""
    chunks = _chunks(body)
    info = header["sections"][section]
    top = info["blocks"].get("top")
    if not top or str(layer) not in top["layers"]:
        return None
    rows = info["shape"][0]
    out = []
    for chunk, offset, length in top["layers"][str(layer)]:
        data = chunks[chunk][offset:offset + length]
        counts = np.frombuffer(data, "<u2", rows)
        total = int(counts.sum())
        keys = np.frombuffer(data, "<u2", total, 2 * rows)
        codes = np.frombuffer(data, "u1", total, 2 * rows + 2 * total)
        starts = np.concatenate([np.zeros(1, np.int64), np.cumsum(counts, dtype=np.int64)])
        out.append([list(zip(keys[a:b].tolist(), codes[a:b].tolist())) for a, b in zip(starts[:-1], starts[1:])])
    return out


def decode_overview(header: dict[str, Any], body: Body, section: str) -> np.ndarray | None:
    """``[L', H', R, C]`` max-pooled codes of the model view's thumbnails, or None."""
    chunks = _chunks(body)
    info = header["sections"][section]
    block = info["blocks"].get("overview")
    if not block:
        return None
    n = len(info["layers"]) * len(info["heads"])
    codes = np.stack([_read(chunks, block, k) for k in range(n)])
    return codes.reshape(len(info["layers"]), len(info["heads"]), block["rows"], block["cols"])


def decode_extra(header: dict[str, Any], body: Body, name: str) -> np.ndarray:
    chunks = _chunks(body)
    block = header["extras"][name]
    codes = np.concatenate([_read(chunks, block, k) for k in range(len(part_locations(block)))])
    return dequantize_attention(codes).reshape(block["shape"])
