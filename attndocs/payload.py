"""Turns an AttentionRecord into the compact browser payload: a JSON header and a binary body.

Encoding (the JS decoder in ``assets/js/10-payload.js`` mirrors it):

* attention probabilities: uint8 with square-root companding, ``q = round(255 * sqrt(a))``,
  decoded as ``(q / 255) ** 2``. A non-zero weight that would round to 0 is stored as 1, so
  no attention ever disappears. Causal sections ship only the kept triangle (row ``i``
  keeps columns ``j < i + 1 + cols - rows``), row-major.
* query / key vectors: int8 with one float32 scale per (layer, head).
* additive bias (T5-style relative positions): float16, once when every layer has the same.
* extras (aggregates, rollout, ... from :mod:`attndocs.analysis`): encoded like attention.

Blocks are laid out in the body in header order, each aligned to 4 bytes; multi-byte
numbers are little-endian. Only the layers and heads in ``include-layers`` /
``include-heads`` ship. The body is zlib-compressed when that makes it smaller.

The header is JSON with camelCase keys (see the contract at the top of ``00-core.js``).
:func:`script_json` makes any JSON safe to place inside a ``<script>`` element.

This module imports numpy only; never torch.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import OptionError
from .options import FigureOptions
from .record import SECTION_NAMES, AttentionRecord, Section

PAYLOAD_FORMAT = "attndocs.payload"
PAYLOAD_VERSION = 1
_ALIGN = 4


# -- quantisation -------------------------------------------------------------------------
def quantize_attention(weights: np.ndarray) -> np.ndarray:
    """Probabilities in [0, 1] -> uint8 codes ``round(255 * sqrt(a))``; non-zero never -> 0."""
    a = np.nan_to_num(np.asarray(weights, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    a = np.clip(a, 0.0, 1.0)
    codes = np.rint(255.0 * np.sqrt(a)).astype(np.uint8)
    codes[(codes == 0) & (a > 0)] = 1
    return codes


def dequantize_attention(codes: np.ndarray) -> np.ndarray:
    """uint8 codes -> float32 probabilities ``(q / 255) ** 2``."""
    x = np.asarray(codes, dtype=np.float32) / 255.0
    return x * x


def quantize_int8(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[L, H, n, d]`` floats -> (int8 codes, float32 scale per (L, H)); value = code * scale."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float32))
    peak = np.abs(v).max(axis=(2, 3)) if v.size else np.zeros(v.shape[:2], np.float32)
    scales = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    codes = np.clip(np.rint(v / scales[:, :, None, None]), -127, 127).astype(np.int8)
    return codes, scales


def kept_columns(rows: int, cols: int) -> np.ndarray:
    """How many leading columns row ``i`` of a causal section keeps (its allowed keys)."""
    return np.clip(np.arange(rows) + 1 + cols - rows, 0, cols)


def triangle_mask(rows: int, cols: int) -> np.ndarray:
    """Boolean ``[rows, cols]``: True where a causal section may attend."""
    return np.arange(cols)[None, :] < kept_columns(rows, cols)[:, None]


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
    return Selection(layers=layers, heads=heads, layer=layer, selected_heads=selected)


# -- the payload --------------------------------------------------------------------------
class _BodyWriter:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, data: bytes | np.ndarray, **info: Any) -> dict[str, Any]:
        raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
        pad = (-self.size) % _ALIGN
        if pad:
            self.chunks.append(b"\0" * pad)
            self.size += pad
        block = {"offset": self.size, "length": len(raw), **info}
        self.chunks.append(raw)
        self.size += len(raw)
        return block

    def getvalue(self) -> bytes:
        return b"".join(self.chunks)


@dataclass
class Payload:
    """A figure's data as the browser receives it: JSON header plus binary body."""

    header: dict[str, Any]
    body: bytes  # uncompressed
    encoded: bytes  # what ships: ``body`` compressed when that is smaller

    def header_json(self) -> str:
        """The header as JSON that is safe inside a single-quoted attribute (or a ``<script>``)."""
        return script_json(self.header)

    def body_base64(self) -> str:
        return base64.b64encode(self.encoded).decode("ascii")

    def digest(self) -> str:
        """sha256 of header and shipped body: the content hash used for ids and file names."""
        h = hashlib.sha256(self.header_json().encode("utf-8"))
        h.update(b"\0")
        h.update(self.encoded)
        return h.hexdigest()


_SECTION_ORDER = {name: i for i, name in enumerate(SECTION_NAMES)}


def _section_layers_heads(section: Section, selection: Selection) -> tuple[list[int], list[int]]:
    return [x for x in selection.layers if x < section.layers], [h for h in selection.heads if h < section.heads]


def _encode_section(section: Section, layers: list[int], heads: list[int], writer: _BodyWriter, with_qk: bool) -> dict[str, Any]:
    att = np.asarray(section.attention, dtype=np.float32)
    n_rows, n_cols = int(att.shape[2]), int(att.shape[3])
    chosen = att[np.ix_(layers, heads)] if layers and heads else att[:0, :0]
    codes = quantize_attention(chosen)
    causal = bool(section.causal)
    if causal:
        mask = triangle_mask(n_rows, n_cols)
        codes = codes[:, :, mask]  # [L', H', kept] in row-major order of the kept cells
    blocks: dict[str, Any] = {"attn": writer.add(np.ascontiguousarray(codes), encoding="sqrt8", triangle=causal)}
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
        "scale": None,
        "d": None,
        "blocks": blocks,
    }
    if with_qk and section.has_qk and layers and heads:
        query = np.asarray(section.query, dtype=np.float32)[np.ix_(layers, heads)]
        key = np.asarray(section.key, dtype=np.float32)[np.ix_(layers, heads)]
        d = int(query.shape[-1])
        q_codes, q_scales = quantize_int8(query)
        k_codes, k_scales = quantize_int8(key)
        blocks["query"] = writer.add(q_codes, encoding="int8")
        blocks["queryScale"] = writer.add(q_scales.astype("<f4"), encoding="f32")
        blocks["key"] = writer.add(k_codes, encoding="int8")
        blocks["keyScale"] = writer.add(k_scales.astype("<f4"), encoding="f32")
        if section.bias is not None:
            bias = np.asarray(section.bias, dtype=np.float32)[np.ix_(layers, heads)]
            # -inf marks masked cells; float16 keeps it. Large finite masks saturate to -inf too.
            shared = bool(len(layers) > 1 and all(np.array_equal(bias[0], b, equal_nan=True) for b in bias[1:]))
            stored = bias[:1] if shared else bias
            # Mask values beyond float16's range (-1e9, finfo.min) mean "never attend": store -inf.
            stored = np.where(stored < -65504, -np.inf, np.minimum(stored, 65504)).astype("<f2")
            blocks["bias"] = writer.add(stored, encoding="f16", sharedLayers=shared)
        scale = section.scale if section.scale is not None else 1.0 / math.sqrt(d)
        info.update(hasQK=True, scale=float(scale), d=d)
    return info


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


def build_payload(
    record: AttentionRecord,
    options: FigureOptions,
    *,
    qk: bool | None = None,
    compress: bool = True,
    hash_state: bool = True,
) -> Payload:
    """Encode ``record`` for the browser as ``options`` asks.

    ``qk`` ships query/key vectors (default: only for the neuron view, which needs them).
    ``hash_state=False`` keeps the figure from writing its state into the URL hash (for
    notebooks, whose URL is not the reader's to change). Raises :class:`OptionError` when
    a layer or head option does not fit the record.
    """
    if not record.sections:
        raise OptionError("the attention record has no attention sections")
    selection = select_layers_heads(record, options)
    with_qk = (options.view == "neuron") if qk is None else qk
    writer = _BodyWriter()
    order = sorted(record.sections, key=lambda n: _SECTION_ORDER.get(n, len(_SECTION_ORDER)))
    sections = {}
    for name in order:
        section = record.sections[name]
        layers, heads = _section_layers_heads(section, selection)
        sections[name] = _encode_section(section, layers, heads, writer, with_qk)

    extras_arrays, analysis_json = _analysis_extras(record, options)
    extras = {}
    for name in sorted(extras_arrays):
        array = np.asarray(extras_arrays[name], dtype=np.float32)
        extras[name] = writer.add(quantize_attention(array), encoding="sqrt8", shape=[int(x) for x in array.shape])

    shipped_qk = any(s["hasQK"] for s in sections.values())
    if shipped_qk:
        neuron = {"available": True, "reason": None}
    elif not (record.neuron or {}).get("available"):
        neuron = {"available": False, "reason": (record.neuron or {}).get("reason") or "this record has no query/key vectors"}
    elif not record.has_qk:
        neuron = {"available": False, "reason": "this record has no query/key vectors"}
    else:
        neuron = {"available": False, "reason": "query/key vectors ship only with the neuron view"}
    body = writer.getvalue()
    encoded, compression = body, "none"
    if compress and body:
        # Level 6: on minilm at 512 tokens (18.9 MB of codes) level 9 took 2.9 s for 8.00 MB,
        # level 6 1.0 s for 8.07 MB, level 1 0.2 s for 9.04 MB.
        packed = zlib.compress(body, 6)
        if len(packed) < len(body) * 0.95:
            encoded, compression = packed, "deflate"
    header = {
        "format": PAYLOAD_FORMAT,
        "version": PAYLOAD_VERSION,
        "view": options.view,
        "kind": record.kind,
        "model": {"id": record.model_id, "revision": record.revision, "type": record.model_type},
        "text": record.text,
        "textB": record.text_b,
        "target": record.target,
        "sides": {name: _side_json(side) for name, side in record.sides.items()},
        "sections": sections,
        "sectionOrder": order,
        "neuron": neuron,
        "options": {
            "layer": selection.layer,
            "heads": list(selection.selected_heads),
            "includeLayers": list(selection.layers),
            "includeHeads": list(selection.heads),
            "display": options.display,
            "caption": options.caption,
            "alt": options.alt,
            "hash": hash_state,
        },
        "analysis": analysis_json,
        "extras": extras,
        "body": {"length": len(body), "compression": compression},
    }
    return Payload(header=_clean_json(header), body=body, encoded=encoded)


# -- decoding (Python side: tests, benchmarks, tools) -------------------------------------
def decode_body(header: dict[str, Any], encoded: bytes) -> bytes:
    """The uncompressed body of a payload."""
    body = zlib.decompress(encoded) if header["body"]["compression"] == "deflate" else encoded
    if len(body) != header["body"]["length"]:
        raise ValueError("payload body has the wrong length")
    return body


def decode_attention(header: dict[str, Any], body: bytes, section: str) -> np.ndarray:
    """``[L', H', rows, cols]`` float32 of the shipped layers/heads of ``section``."""
    info = header["sections"][section]
    block = info["blocks"]["attn"]
    n_rows, n_cols = info["shape"]
    n_l, n_h = len(info["layers"]), len(info["heads"])
    codes = np.frombuffer(body, dtype=np.uint8, count=block["length"], offset=block["offset"])
    out = np.zeros((n_l, n_h, n_rows, n_cols), dtype=np.float32)
    if block["triangle"]:
        out[:, :, triangle_mask(n_rows, n_cols)] = dequantize_attention(codes.reshape(n_l, n_h, -1))
    else:
        out[:] = dequantize_attention(codes.reshape(n_l, n_h, n_rows, n_cols))
    return out


def decode_qk(header: dict[str, Any], body: bytes, section: str) -> dict[str, np.ndarray | None]:
    """query ``[L', H', rows, d]``, key ``[L', H', cols, d]`` and bias as float32."""
    info = header["sections"][section]
    blocks = info["blocks"]
    n_l, n_h = len(info["layers"]), len(info["heads"])
    n_rows, n_cols = info["shape"]
    d = info["d"]

    def read(name: str, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
        block = blocks[name]
        count = block["length"] // np.dtype(dtype).itemsize
        return np.frombuffer(body, dtype=dtype, count=count, offset=block["offset"]).reshape(shape)

    q_scale = read("queryScale", "<f4", (n_l, n_h))
    k_scale = read("keyScale", "<f4", (n_l, n_h))
    query = read("query", "i1", (n_l, n_h, n_rows, d)).astype(np.float32) * q_scale[:, :, None, None]
    key = read("key", "i1", (n_l, n_h, n_cols, d)).astype(np.float32) * k_scale[:, :, None, None]
    bias = None
    if "bias" in blocks:
        shared = blocks["bias"]["sharedLayers"]
        bias = read("bias", "<f2", (1 if shared else n_l, n_h, n_rows, n_cols)).astype(np.float32)
        if shared:
            bias = np.broadcast_to(bias, (n_l, n_h, n_rows, n_cols)).copy()
    return {"query": query, "key": key, "bias": bias}


def decode_extra(header: dict[str, Any], body: bytes, name: str) -> np.ndarray:
    block = header["extras"][name]
    codes = np.frombuffer(body, dtype=np.uint8, count=block["length"], offset=block["offset"])
    return dequantize_attention(codes).reshape(block["shape"])
