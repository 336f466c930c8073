"""AttentionRecord: the framework-neutral result of one extraction, and its file format.

A record holds the token sequences a model saw ("sides": ``encoder`` and/or ``decoder``)
and one or more attention "sections" over them (``encoder``, ``decoder``, ``cross``), as
numpy arrays. It is what the cache stores, what ``attndocs extract`` writes and what the
views read. The file is plain safetensors (no pickle) with string metadata, in two forms:

* the public record (schema 1, ``to_bytes``: what ``attndocs extract -o`` writes): float32
  arrays exactly as extracted, documented in docs/record-format.md so that users can analyse
  it with numpy alone;
* the cache entry (schema 2, ``to_cache_bytes``): the same metadata, arrays at the precision
  the views show (attention as 8-bit square-root codes, query/key as float16, keys once per
  key/value head; see compact.py and docs/cache.md), a few times smaller.

Both read back as float32 arrays. ``precision`` says which a record in memory holds: a record
read from a cache entry, or made by :meth:`AttentionRecord.as_cached`, is "cache" (what the
pipeline renders, computed or not, so that cold and warm builds are byte-identical).

Every record read from a file is read bounded (read_record_file: no symbolic links, no
byte past the size the header declares) and checked against itself (AttentionRecord.check)
before anything else sees it.

This module imports numpy and safetensors, never torch.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .compact import (
    ATTENTION_ENCODING,
    attention_error_bound,
    decode_attention,
    decode_bias,
    decode_vectors,
    encode_attention,
    encode_bias,
    encode_vectors,
    expand_key_heads,
    shared_key_heads,
    triangle_mask,
)
from .errors import CacheError

# The public record's schema. The cache key is not tied to either (cache.KEY_SCHEMA), so an
# entry of an older storage form is still found, and converted instead of recomputed.
SCHEMA_VERSION = 1
# A cache entry's schema: 2 is the compact form; 1, an entry written before it, is the public form.
CACHE_SCHEMA_VERSION = 2
FORMAT_NAME = "attndocs.record"
# What a record's arrays hold: exactly what the model gave, or the cache's display precision.
EXACT = "exact"
CACHED = "cache"
# A cache entry whose query/key vectors an earlier attndocs stored as float16: its attention is
# as good as any, but scores recomputed from its vectors are off by up to about 0.01, more than
# the neuron view prints, so a neuron figure recomputes it (pipeline) rather than show them.
CACHED_HALF_VECTORS = "cache, float16 vectors"
PRECISIONS = (EXACT, CACHED, CACHED_HALF_VECTORS)
SECTION_NAMES = ("encoder", "decoder", "cross")
SECTION_TENSORS = ("attention", "query", "key", "bias")
SIDE_NAMES = ("encoder", "decoder")
# The sections each kind of model produces, and the sides (rows, cols) each one reads.
KIND_SECTIONS = {"encoder": ("encoder",), "decoder": ("decoder",), "encoder-decoder": ("encoder", "decoder", "cross")}
SECTION_SIDES = {"encoder": ("encoder", "encoder"), "decoder": ("decoder", "decoder"), "cross": ("decoder", "encoder")}
# Attention rows are softmax outputs (README, "The record file"). The slack covers models
# run in bfloat16 (a weight keeps 8 bits, so a row of them can sum to 1 +- 0.004); a
# damaged or misplaced array misses by far more.
PROBABILITY_TOLERANCE = 1e-2
# safetensors' own reader refuses longer headers; a record's is kilobytes.
MAX_HEADER_BYTES = 100_000_000

# Metadata keys whose values are JSON (everything else is a plain string).
_JSON_KEYS = (
    "text",
    "text_b",
    "target",
    "tokens",
    "display_tokens",
    "special_tokens",
    "text_b_start",
    "sections",
    "neuron",
    "versions",
    "extraction",
)


@dataclass
class Side:
    """One token sequence the model read: the encoder input or the decoder input."""

    tokens: list[str]
    display: list[str]
    special: list[bool]
    text_b_start: int | None = None

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass
class Section:
    """Attention of one kind, for every layer and head.

    ``attention`` is ``[layers, heads, rows, cols]`` float32, rows being query positions on
    side ``rows`` and columns key positions on side ``cols``. ``query`` / ``key`` are
    ``[layers, heads, rows|cols, head_dim]`` and ``bias`` ``[layers, heads, rows, cols]``:
    when present, ``softmax(scale * query @ key.T + bias + causal mask)`` reproduces
    ``attention`` (checked at extraction time). ``softcap`` (Gemma 2): the scores are capped
    first, ``softcap * tanh(scale * query @ key.T / softcap)``. ``windows``: per layer, the
    width of the window mask it applies (None for a layer without one), or None when no layer
    has one; the bias carries the same window as -inf wherever it hides a key (see
    docs/record-format.md for what a width means in causal and bidirectional sections).
    """

    name: str
    attention: np.ndarray
    rows: str
    cols: str
    causal: bool = False
    query: np.ndarray | None = None
    key: np.ndarray | None = None
    bias: np.ndarray | None = None
    scale: float | None = None
    softcap: float | None = None
    windows: list[int | None] | None = None

    @property
    def layers(self) -> int:
        return int(self.attention.shape[0])

    @property
    def heads(self) -> int:
        return int(self.attention.shape[1])

    @property
    def has_qk(self) -> bool:
        return self.query is not None and self.key is not None

    def attention_codes(self) -> np.ndarray | None:
        """The 8-bit codes ``attention`` was decoded from (``[L, H, rows, cols]``, 0 above a causal
        diagonal), when this section was read from the cache form and ``attention`` is still that
        array; else None. The page ships the same codes, so it need not quantise again."""
        known = self.__dict__.get("_codes")
        if known is None or known[0] is not self.attention:
            return None
        return known[1]

    def tensors(self) -> dict[str, np.ndarray]:
        out = {}
        for name in SECTION_TENSORS:
            value = getattr(self, name)
            if value is not None:
                out[f"{self.name}.{name}"] = np.ascontiguousarray(value)
        return out


@dataclass
class AttentionRecord:
    """Everything one figure needs from a model run, independent of any framework."""

    model_id: str
    revision: str
    model_type: str
    kind: str  # "encoder" | "decoder" | "encoder-decoder"
    text: str
    sides: dict[str, Side]
    sections: dict[str, Section]
    text_b: str | None = None
    target: str | None = None
    neuron: dict[str, Any] = field(default_factory=lambda: {"available": False, "reason": "not requested"})
    versions: dict[str, str] = field(default_factory=dict)
    extraction: dict[str, Any] = field(default_factory=dict)
    key: str = ""
    # What ``key`` was computed from (cache.cache_key's ``parts``), stored with the entry so
    # that a record copied under another figure's key is recognised. None: not recorded
    # (a record made outside the pipeline, or an entry written before it was stored).
    key_parts: dict[str, Any] | None = None
    # EXACT: arrays as the model gave them. CACHED: at the cache's precision (read from an
    # entry, or as_cached()); its attention rows sum to 1 only within the companding error.
    precision: str = EXACT
    # The model wrote part of the tokens (option generate): {"side": "decoder", "prompt_tokens",
    # "new_tokens", "text" (the continuation decoded), "stopped" ("eos" | "length"), "settings":
    # {"new_tokens", "sampling", "seed", "temperature"}}. None: the record's tokens are all the page's.
    generation: dict[str, Any] | None = None
    # The model read an image (option image, attndocs.vision): {"mime", "data" (base64 of the picture
    # as the model saw it), "width", "height", "pixels", "rows", "cols", "patch", "first" (index of the
    # first patch token), "rollout" ([layers][tokens] from token 0, or None), "processor"}. None: text.
    image: dict[str, Any] | None = None

    # -- conveniences -------------------------------------------------------------
    @property
    def layers(self) -> int:
        return next(iter(self.sections.values())).layers

    @property
    def heads(self) -> int:
        return next(iter(self.sections.values())).heads

    @property
    def has_qk(self) -> bool:
        return bool(self.sections) and all(s.has_qk for s in self.sections.values())

    def tokens(self, side: str) -> list[str]:
        return self.sides[side].tokens

    # -- serialisation ------------------------------------------------------------
    def tensors(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for section in self.sections.values():
            out.update(section.tensors())
        return out

    def metadata(self) -> dict[str, str]:
        """The public record's string metadata (schema 1; docs/record-format.md)."""
        return self._metadata(SCHEMA_VERSION)

    def _metadata(self, schema: int) -> dict[str, str]:
        sides = self.sides
        text_b_start = next((s.text_b_start for s in sides.values() if s.text_b_start is not None), None)
        values: dict[str, Any] = {
            "text": self.text,
            "text_b": self.text_b,
            "target": self.target,
            "tokens": {name: s.tokens for name, s in sides.items()},
            "display_tokens": {name: s.display for name, s in sides.items()},
            "special_tokens": {name: [int(b) for b in s.special] for name, s in sides.items()},
            "text_b_start": text_b_start,
            "sections": {name: _section_metadata(s) for name, s in self.sections.items()},
            "neuron": self.neuron,
            "versions": self.versions,
            "extraction": self.extraction,
        }
        meta = {key: _dumps(values[key]) for key in _JSON_KEYS}
        meta.update(
            {
                "format": FORMAT_NAME,
                "schema": str(schema),
                "model_id": self.model_id,
                "revision": self.revision,
                "model_type": self.model_type,
                "kind": self.kind,
                "cache_key": self.key,
            }
        )
        if self.key_parts is not None:
            # Only when set: records without it keep exactly the bytes they always had.
            meta["key_parts"] = _dumps(self.key_parts)
        if self.generation is not None:
            # Only when set, like key_parts: records of figures that generate nothing keep their bytes.
            meta["generation"] = _dumps(self.generation)
        if self.image is not None:
            meta["image"] = _dumps(self.image)  # only when set: text records keep their bytes
        if self.precision != EXACT and schema == SCHEMA_VERSION:
            # A public file of a record read from the cache says so (its attention rows are
            # checked with the companding's slack); exact records keep their bytes.
            meta["precision"] = self.precision
        return meta

    def cache_parts(self) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """The tensors and metadata of this record's cache entry (schema 2), without checksums.

        Attention as 8-bit square-root codes (a causal section's kept triangle only), query
        and key vectors as float16 with repeated key heads stored once, a bias as float16
        (once when every layer shares it). See compact.py and docs/cache.md.
        """
        tensors: dict[str, np.ndarray] = {}
        storage: dict[str, dict[str, Any]] = {}
        for name, section in self.sections.items():
            tensors[f"{name}.attention"] = encode_attention(section.attention, bool(section.causal))
            info: dict[str, Any] = {"key_heads": None, "bias_shared": False}
            if section.query is not None:
                tensors[f"{name}.query"] = encode_vectors(section.query)
            if section.key is not None:
                tensors[f"{name}.key"], info["key_heads"] = shared_key_heads(encode_vectors(section.key))
            if section.bias is not None:
                tensors[f"{name}.bias"], info["bias_shared"] = encode_bias(section.bias)
            storage[name] = info
        meta = self._metadata(CACHE_SCHEMA_VERSION)
        meta["storage"] = _dumps({"attention": ATTENTION_ENCODING, "vectors": "float32", "bias": "float16", "sections": storage})
        return tensors, meta

    def to_cache_bytes(self) -> bytes:
        """This record as a cache entry: :meth:`cache_parts` with checksums, as safetensors."""
        tensors, meta = self.cache_parts()
        meta["checksum"] = tensor_checksum(tensors)
        meta["metadata_checksum"] = metadata_checksum(meta)
        return safetensors_bytes(tensors, meta)

    def as_cached(self) -> AttentionRecord:
        """This record exactly as its cache entry reads back: float32 arrays at the cache's precision.

        The pipeline renders this, not the record the model gave, whether the cache is
        writable or not, so that a figure computed now and the same figure served from the
        cache later are byte-identical. Idempotent: a record read from the cache comes back
        equal. The same decoding as a file read, minus the serialisation.
        """
        tensors, meta = self.cache_parts()
        try:
            return type(self)._from_parts(meta, tensors)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RecordFormatError(f"it cannot be stored ({_one_line(exc)})") from None

    # -- consistency ----------------------------------------------------------------------
    def check(self) -> None:
        """Raise :class:`RecordFormatError` naming the first way this record contradicts itself.

        Checksums only prove that a file is the one that was written; a file written by
        hand, merged badly or made by a buggy tool can be intact and still describe
        something no view can draw. Every record read from a file passes through here
        before a view sees it.
        """
        for name in ("model_id", "revision", "model_type", "kind", "text"):
            _check_text(getattr(self, name), name)
        for name in ("text_b", "target"):
            if getattr(self, name) is not None:
                _check_text(getattr(self, name), name)
        for name in ("neuron", "versions", "extraction"):
            if not isinstance(getattr(self, name), dict):
                raise RecordFormatError(f"its {name} metadata is not a mapping")
        if self.kind not in KIND_SECTIONS:
            raise RecordFormatError(f"its kind {self.kind!r} is not one of {', '.join(KIND_SECTIONS)}")
        if self.precision not in PRECISIONS:
            raise RecordFormatError(f"its precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if not self.sides:
            raise RecordFormatError("it has no tokens")
        for name, side in self.sides.items():
            _check_side(name, side)
        expected = KIND_SECTIONS[self.kind]
        if sorted(self.sections) != sorted(expected):
            raise RecordFormatError(
                f"a {self.kind} record has the sections {', '.join(expected)}, this one {', '.join(self.sections) or 'none'}"
            )
        for name, section in self.sections.items():
            _check_section(name, section, self.sides, companded=self.precision != EXACT)
        if self.generation is not None:
            _check_generation(self.generation, self.sides)
        if self.image is not None:
            from .vision import check_record_image

            try:
                check_record_image(self.image, self.sides, self.layers)
            except ValueError as exc:
                raise RecordFormatError(str(exc)) from None
        if self.neuron.get("available") and not self.has_qk:
            raise RecordFormatError("its neuron view is marked available but it lacks query/key vectors")

    def save(self, path: str | Path) -> None:
        """Write the record to ``path`` (not atomically; the cache adds atomicity)."""
        Path(path).write_bytes(self.to_bytes())

    def to_bytes(self) -> bytes:
        """The public record file (schema 1): float32 arrays as they are in memory."""
        tensors = self.tensors()
        meta = self.metadata()
        meta["checksum"] = tensor_checksum(tensors)
        meta["metadata_checksum"] = metadata_checksum(meta)
        return safetensors_bytes(tensors, meta)

    @classmethod
    def load(cls, path: str | Path) -> AttentionRecord:
        """Read and verify a record file; a damaged file raises :class:`CacheError`."""
        try:
            data = read_record_file(path).data
        except RecordFormatError as exc:
            raise CacheError(f"{path} is damaged: {exc}") from None
        except OSError as exc:
            raise CacheError(f"cannot read {path}: {exc.strerror or exc}") from exc
        return cls.from_bytes(data, source=str(path))

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> AttentionRecord:
        """Read and verify a public record or a cache entry; arrays come back as float32."""
        from safetensors.numpy import load

        try:
            meta = read_metadata_bytes(data, whole=True)
            tensors = load(data)
        except Exception as exc:  # safetensors raises several types for a damaged file
            raise CacheError(f"{source} is damaged: {_one_line(exc)}") from exc
        if meta.get("format") != FORMAT_NAME:
            raise CacheError(f"{source} is not an attndocs record")
        if meta.get("schema") not in (str(SCHEMA_VERSION), str(CACHE_SCHEMA_VERSION)):
            raise CacheError(
                f"{source} has record schema {_one_line(meta.get('schema'))}, expected {SCHEMA_VERSION} or {CACHE_SCHEMA_VERSION}"
            )
        if meta.get("metadata_checksum") != metadata_checksum(meta):
            raise CacheError(f"{source} is damaged: its metadata does not match its checksum")
        if meta.get("checksum") != tensor_checksum(tensors):
            raise CacheError(f"{source} is damaged: its tensors do not match their checksum")
        try:
            record = cls._from_parts(meta, tensors)
        except RecordFormatError as exc:
            raise CacheError(f"{source} is damaged: {exc}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CacheError(f"{source} is damaged: bad metadata ({_one_line(exc)})") from exc
        try:
            record.check()
        except RecordFormatError as exc:
            raise CacheError(f"{source} is damaged: {exc}") from None
        return record

    @classmethod
    def _from_parts(cls, meta: dict[str, str], tensors: dict[str, np.ndarray]) -> AttentionRecord:
        values = {key: json.loads(meta[key]) for key in _JSON_KEYS}
        tokens, display, special = values["tokens"], values["display_tokens"], values["special_tokens"]
        # JSON metadata is written with sorted keys; sides and sections come back in the
        # order extraction produces them, so a record read from the cache renders exactly
        # like a freshly computed one.
        sides = {
            name: Side(tokens=list(tokens[name]), display=list(display[name]), special=[bool(b) for b in special[name]])
            for name in sorted(tokens, key=_canonical_rank)
        }
        if values["text_b_start"] is not None and "encoder" in sides:
            sides["encoder"].text_b_start = int(values["text_b_start"])
        elif values["text_b_start"] is not None:
            next(iter(sides.values())).text_b_start = int(values["text_b_start"])
        compact = meta.get("schema") == str(CACHE_SCHEMA_VERSION)
        if compact:
            precision = CACHED
            storage = json.loads(meta["storage"])
            if not isinstance(storage, dict) or storage.get("attention") != ATTENTION_ENCODING:
                raise RecordFormatError("its storage metadata does not describe 8-bit square-root attention")
        else:
            precision = meta.get("precision", EXACT)
            if precision not in PRECISIONS:
                raise RecordFormatError(f"its precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        sections = {}
        used: set[str] = set()
        for name, info in sorted(values["sections"].items(), key=lambda item: _canonical_rank(item[0])):
            used.update(f"{name}.{tensor}" for tensor in SECTION_TENSORS)
            section = Section(
                name=name,
                attention=tensors[f"{name}.attention"],
                rows=info["rows"],
                cols=info["cols"],
                causal=bool(info["causal"]),
                query=tensors.get(f"{name}.query"),
                key=tensors.get(f"{name}.key"),
                bias=tensors.get(f"{name}.bias"),
                scale=info.get("scale"),
                softcap=info.get("softcap"),
                windows=info.get("windows"),
            )
            if compact:
                if any(v is not None and v.dtype == np.float16 for v in (section.query, section.key)):
                    precision = CACHED_HALF_VECTORS
                section = _decode_section(section, sides, storage["sections"][name])
            sections[name] = section
        stray = sorted(set(tensors) - used)
        if stray:
            raise RecordFormatError(f"its tensor {stray[0]} belongs to no section")
        generation = json.loads(meta["generation"]) if "generation" in meta else None
        image = json.loads(meta["image"]) if "image" in meta else None
        key_parts = json.loads(meta["key_parts"]) if "key_parts" in meta else None
        if key_parts is not None and not isinstance(key_parts, dict):
            raise RecordFormatError("its key_parts metadata is not a mapping")
        return cls(
            model_id=meta["model_id"],
            revision=meta["revision"],
            model_type=meta["model_type"],
            kind=meta["kind"],
            text=values["text"],
            text_b=values["text_b"],
            target=values["target"],
            sides=sides,
            sections=sections,
            neuron=values["neuron"],
            versions=values["versions"],
            extraction=values["extraction"],
            key=meta.get("cache_key", ""),
            key_parts=key_parts,
            precision=precision,
            generation=generation,
            image=image,
        )


def _decode_section(stored: Section, sides: dict[str, Side], info: Any) -> Section:
    """A cache entry's section (codes, float32 or older float16 vectors, kept key heads) as float32 arrays.

    Sizes come from the tokens, so a file whose tensors disagree with them is refused here,
    before anything is allocated from what the tensors claim.
    """
    name = stored.name
    if not isinstance(info, dict):
        raise RecordFormatError(f"its storage metadata has no entry for the {name} section")
    for side in (stored.rows, stored.cols):
        if side not in sides:
            raise RecordFormatError(f"its {name} section needs the {side} tokens, which it does not have")
    rows, cols = len(sides[stored.rows]), len(sides[stored.cols])
    try:
        attention = decode_attention(stored.attention, rows, cols, stored.causal)
        query = None if stored.query is None else decode_vectors(stored.query)
        key = None
        if stored.key is not None:
            heads = attention.shape[1]
            key = expand_key_heads(decode_vectors(stored.key), info.get("key_heads"), heads)
        bias = None if stored.bias is None else decode_bias(stored.bias, attention.shape[0], bool(info.get("bias_shared")))
    except ValueError as exc:
        raise RecordFormatError(f"its {name} {exc}") from None
    section = Section(
        name, attention, stored.rows, stored.cols, stored.causal, query, key, bias, stored.scale,
        softcap=stored.softcap, windows=stored.windows,
    )
    # Not a field: a copy (dataclasses.replace) or a new attention array leaves it behind.
    section.__dict__["_codes"] = (attention, _square_codes(stored.attention, rows, cols, stored.causal))
    return section


def _section_metadata(section: Section) -> dict[str, Any]:
    """A section's entry in the ``sections`` metadata; ``softcap`` and ``windows`` only when set, so that
    records of models without them keep exactly the bytes they always had."""
    out: dict[str, Any] = {"rows": section.rows, "cols": section.cols, "causal": section.causal, "scale": section.scale}
    if section.softcap is not None:
        out["softcap"] = section.softcap
    if section.windows is not None:
        out["windows"] = section.windows
    return out


def _square_codes(codes: np.ndarray, rows: int, cols: int, causal: bool) -> np.ndarray:
    """Stored attention codes laid out ``[L, H, rows, cols]`` (a causal section's triangle unfolded)."""
    if not causal:
        return codes
    square = np.zeros((codes.shape[0], codes.shape[1], rows, cols), dtype=np.uint8)
    square[:, :, triangle_mask(rows, cols)] = codes
    return square


def _canonical_rank(name: str) -> tuple[int, str]:
    return (SECTION_NAMES.index(name) if name in SECTION_NAMES else len(SECTION_NAMES), name)


def tensor_checksum(tensors: dict[str, np.ndarray]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


# safetensors stores little-endian data; its names for the little-endian numpy dtypes.
_DTYPES = {
    np.dtype(name).newbyteorder("<"): code
    for name, code in [("float64", "F64"), ("float32", "F32"), ("float16", "F16"), ("int64", "I64"), ("int32", "I32"),
                       ("int16", "I16"), ("int8", "I8"), ("uint8", "U8"), ("bool", "BOOL")]
}


def safetensors_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """A safetensors file whose bytes depend only on its content.

    safetensors' own writer orders the header from a hash map, so the same record written
    by two processes differed byte for byte. Here the header is JSON with sorted keys and
    the tensors are laid out in name order, little-endian, without gaps, as the format
    requires; any safetensors reader loads it.
    """
    header: dict[str, object] = {"__metadata__": dict(metadata)}
    chunks, offset = [], 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        little = array.dtype.newbyteorder("<")
        data = array.astype(little, copy=False).tobytes()
        header[name] = {"dtype": _DTYPES[little], "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the format pads the header to 8 bytes with spaces
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def metadata_checksum(meta: dict[str, str]) -> str:
    """sha256 of canonical JSON of every metadata entry but this checksum itself.

    The tensor checksum cannot see the header; a flipped byte inside a token or the text
    would otherwise leave valid JSON that reads as a different record.
    """
    body = {k: v for k, v in meta.items() if k != "metadata_checksum"}
    return hashlib.sha256(_dumps(body).encode("utf-8")).hexdigest()


class RecordFormatError(ValueError):
    """A file or record that is not a well-formed, self-consistent attndocs record.

    The message is one line saying what is wrong, without the file's name: the caller
    knows which file it read and says so. ``meta`` is the file's metadata when its header
    could be read (so a caller can still tell whose file it is), ``folder`` is True when
    the path is a folder (which no attndocs writer ever creates under a record's name),
    ``status`` the opened file's status (which file it was, for a safe removal).
    """

    def __init__(
        self, message: str, *, meta: dict[str, str] | None = None, folder: bool = False, status: os.stat_result | None = None
    ) -> None:
        super().__init__(message)
        self.meta = meta
        self.folder = folder
        self.status = status


@dataclass
class RecordFile:
    """What :func:`read_record_file` read: the bytes, the string metadata, the file's status."""

    data: bytes  # the whole file, or only its header (``header_only``)
    meta: dict[str, str]
    stat: os.stat_result


# Bytes per element of each safetensors dtype a record may hold.
_ITEM_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def parse_header(head: bytes) -> tuple[dict[str, str], int]:
    """Metadata and the file size the header declares, from ``head`` (the file's start).

    ``head`` must hold the 8-byte length and the whole header. The declared size is what
    the tensors' offsets add up to: they must tile the body, each as long as its dtype and
    shape say, so a file of any other length has lost or gained bytes.
    """
    if len(head) < 8:
        raise RecordFormatError("the file is shorter than a safetensors header")
    size = int.from_bytes(head[:8], "little")
    if size <= 0 or size > MAX_HEADER_BYTES:
        raise RecordFormatError(f"its header length ({size} bytes) is out of range")
    if len(head) < 8 + size:
        raise RecordFormatError(f"the file ends inside its header ({len(head)} of {8 + size} bytes)")
    try:
        header = json.loads(head[8 : 8 + size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RecordFormatError(f"its header is not JSON ({_one_line(exc)})") from None
    if not isinstance(header, dict):
        raise RecordFormatError("its header is not a JSON object")
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise RecordFormatError("its metadata is not a mapping of strings")
    try:
        body = _declared_body(header)
    except RecordFormatError as exc:
        raise RecordFormatError(str(exc), meta=meta) from None  # whose file it is can still be told
    return meta, 8 + size + body


def _declared_body(header: dict[str, Any]) -> int:
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise RecordFormatError(f"tensor {name!r} has no description")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in _ITEM_SIZES:
            raise RecordFormatError(f"tensor {name!r} has the dtype {dtype!r}")
        if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
            raise RecordFormatError(f"tensor {name!r} has the shape {shape!r}")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(type(n) is int for n in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            raise RecordFormatError(f"tensor {name!r} has the offsets {offsets!r}")
        if offsets[1] - offsets[0] != math.prod(shape) * _ITEM_SIZES[dtype]:
            raise RecordFormatError(f"tensor {name!r} spans {offsets[1] - offsets[0]} bytes, not what its dtype and shape need")
        spans.append((offsets[0], offsets[1]))
    body = 0
    for start, end in sorted(spans):
        if start != body:
            raise RecordFormatError("its tensors overlap or leave gaps")
        body = end
    return body


def read_metadata_bytes(data: bytes, *, whole: bool = False) -> dict[str, str]:
    """The string metadata of a safetensors file, read from its header alone.

    ``whole``: ``data`` is the entire file, and must be exactly as long as its header says.
    """
    meta, declared = parse_header(data)
    if whole and len(data) != declared:
        raise RecordFormatError(f"the file is {len(data)} bytes, its header declares {declared}", meta=meta)
    return meta


# O_NOFOLLOW: an entry that is a symbolic link (to /dev/zero, to a file elsewhere) is refused,
# not read. O_NONBLOCK: opening a FIFO put where a file belongs returns at once instead of
# waiting for a writer that never comes (it is then refused as not a regular file).
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def read_record_file(path: str | os.PathLike[str], *, header_only: bool = False) -> RecordFile:
    """Read a record file, never more than the size its header declares.

    A symbolic link, a device or a folder, a header longer than MAX_HEADER_BYTES, and a
    file whose size is not the one its header declares raise :class:`RecordFormatError`
    before the body is read. ``FileNotFoundError`` (nothing there) and other ``OSError``
    (unreadable) pass through for the caller to word.
    """
    if not hasattr(os, "O_NOFOLLOW") and os.path.islink(path):
        raise RecordFormatError("it is a symbolic link, not a file")  # Windows: checked, then opened
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if not isinstance(exc, FileNotFoundError) and os.path.islink(path):
            raise RecordFormatError("it is a symbolic link, not a file") from None
        raise
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            folder = stat.S_ISDIR(status.st_mode)
            raise RecordFormatError(f"it is {'a folder' if folder else 'a device, socket or pipe'}, not a file", folder=folder, status=status)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        try:
            return _read_open_file(handle, status, header_only)
        except RecordFormatError as exc:
            exc.status = status
            raise


def _read_open_file(handle: Any, status: os.stat_result, header_only: bool) -> RecordFile:
    head = _read_exactly(handle, 8)
    if len(head) == 8:
        size = int.from_bytes(head, "little")
        if 0 < size <= MAX_HEADER_BYTES and 8 + size <= status.st_size:
            head += _read_exactly(handle, size)
    meta, declared = parse_header(head)  # raises for a short or oversized header
    if declared != status.st_size:
        raise RecordFormatError(f"the file is {status.st_size} bytes, its header declares {declared}", meta=meta)
    if header_only:
        return RecordFile(head, meta, status)
    data = head + _read_exactly(handle, declared - len(head))
    if len(data) != declared:
        raise RecordFormatError(f"the file shrank to {len(data)} bytes while it was read", meta=meta)
    return RecordFile(data, meta, status)


def _read_exactly(handle: Any, count: int) -> bytes:
    chunks, left = [], count
    while left > 0:
        chunk = handle.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a record file without loading its tensors (bounded, like every read)."""
    return read_record_file(path, header_only=True).meta


# -- consistency checks --------------------------------------------------------------------
def _check_text(value: object, what: str) -> None:
    if not isinstance(value, str):
        raise RecordFormatError(f"its {what} is not a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # JSON can spell a lone surrogate (\ud800); no page, browser or terminal can show one.
        raise RecordFormatError(f"its {what} holds a lone surrogate, not valid text") from None


def _check_side(name: str, side: Side) -> None:
    if name not in SIDE_NAMES:
        raise RecordFormatError(f"it has tokens for {name!r}, which is neither {' nor '.join(SIDE_NAMES)}")
    n = len(side.tokens)
    if n == 0:
        raise RecordFormatError(f"its {name} side has no tokens")
    if len(side.display) != n or len(side.special) != n:
        raise RecordFormatError(f"its {name} side has {n} tokens but {len(side.display)} display forms and {len(side.special)} special flags")
    for i, (token, shown) in enumerate(zip(side.tokens, side.display)):
        _check_text(token, f"{name} token {i}")
        _check_text(shown, f"{name} display token {i}")
    if not all(isinstance(flag, (bool, np.bool_)) for flag in side.special):
        raise RecordFormatError(f"its {name} special-token flags are not all true or false")
    start = side.text_b_start
    if start is not None and (type(start) is not int or not 0 <= start <= n):
        raise RecordFormatError(f"its {name} side starts text B at {start!r}, outside 0..{n}")


def _check_generation(generation: Any, sides: dict[str, Side]) -> None:
    """The generation metadata must describe the tokens: prompt and continuation make up its side."""
    if not isinstance(generation, dict):
        raise RecordFormatError("its generation metadata is not a mapping")
    side = generation.get("side")
    if side not in sides:
        raise RecordFormatError(f"its generation names the side {side!r}, which it has no tokens for")
    prompt, new = generation.get("prompt_tokens"), generation.get("new_tokens")
    if type(prompt) is not int or type(new) is not int or prompt < 1 or new < 0 or prompt + new != len(sides[side]):
        raise RecordFormatError(
            f"its generation says {prompt!r} prompt and {new!r} new tokens, but its {side} side has {len(sides[side])}"
        )
    _check_text(generation.get("text"), "generated text")
    if not isinstance(generation.get("settings"), dict):
        raise RecordFormatError("its generation settings are not a mapping")


def _check_section(name: str, section: Section, sides: dict[str, Side], *, companded: bool = False) -> None:
    rows, cols = SECTION_SIDES[name]
    if (section.rows, section.cols) != (rows, cols):
        raise RecordFormatError(f"its {name} section reads {section.rows!r} x {section.cols!r} tokens, not {rows} x {cols}")
    for side in (rows, cols):
        if side not in sides:
            raise RecordFormatError(f"its {name} section needs the {side} tokens, which it does not have")
    attention = section.attention
    if not isinstance(attention, np.ndarray) or attention.ndim != 4:
        dims = getattr(attention, "ndim", "no")
        raise RecordFormatError(f"its {name} attention has {dims} dimensions, not 4 (layers, heads, rows, columns)")
    layers, heads, n_rows, n_cols = attention.shape
    if layers == 0 or heads == 0:
        raise RecordFormatError(f"its {name} attention has {layers} layers and {heads} heads")
    want = (len(sides[rows]), len(sides[cols]))
    if (n_rows, n_cols) != want:
        raise RecordFormatError(f"its {name} attention covers {n_rows} x {n_cols} tokens, but it has {want[0]} x {want[1]} tokens")
    if section.causal and n_rows != n_cols:
        raise RecordFormatError(f"its {name} section is causal but not square ({n_rows} x {n_cols})")
    if not isinstance(section.causal, bool):
        raise RecordFormatError(f"its {name} causal flag is not true or false")
    if attention.dtype.kind != "f":
        raise RecordFormatError(f"its {name} attention holds {attention.dtype}, not floating-point weights")
    tol = PROBABILITY_TOLERANCE
    low, high = float(attention.min()), float(attention.max())
    if not (low >= -tol and high <= 1 + tol):  # written so that NaN fails too
        raise RecordFormatError(f"its {name} attention has weights outside 0..1 ({low:.3g} to {high:.3g})")
    off = np.abs(attention.sum(axis=-1, dtype=np.float64) - 1.0)
    worst = float(np.max(off))
    if not worst <= tol:
        # Companded weights (cache precision) drift by what 8 bits allow each of them, a
        # long flat row by several percent: the rows past the plain tolerance get that slack.
        loose = ~(off <= tol)  # NaN sums included
        if not (companded and bool(np.all(off[loose] <= tol + attention_error_bound(attention[loose])))):
            raise RecordFormatError(f"its {name} attention has rows that do not sum to 1 (off by up to {worst:.3g})")
    if section.causal and n_rows > 1 and float(np.abs(np.triu(attention, 1)).max()) > tol:
        raise RecordFormatError(f"its {name} section is causal but has weights above the diagonal")
    _check_qk(name, section, layers, heads, n_rows, n_cols)


def _check_qk(name: str, section: Section, layers: int, heads: int, n_rows: int, n_cols: int) -> None:
    query, key, bias = section.query, section.key, section.bias
    if query is None and key is None:
        if bias is not None:
            raise RecordFormatError(f"its {name} section has an attention bias but no query/key vectors")
        return
    if query is None or key is None:
        raise RecordFormatError(f"its {name} section has {'query' if key is None else 'key'} vectors without {'key' if key is None else 'query'} vectors")
    for what, array, n in (("query", query, n_rows), ("key", key, n_cols)):
        if array.ndim != 4 or array.shape[:3] != (layers, heads, n) or array.shape[3] == 0:
            raise RecordFormatError(
                f"its {name} {what} vectors have the shape {list(array.shape)}, not [{layers}, {heads}, {n}, head size]"
            )
        if array.dtype.kind != "f" or not np.isfinite(array).all():
            raise RecordFormatError(f"its {name} {what} vectors are not all finite numbers")
    if query.shape[3] != key.shape[3]:
        raise RecordFormatError(f"its {name} query vectors have {query.shape[3]} numbers, its key vectors {key.shape[3]}")
    if bias is not None:
        if bias.shape != (layers, heads, n_rows, n_cols):
            raise RecordFormatError(f"its {name} attention bias has the shape {list(bias.shape)}, not that of the attention")
        if bias.dtype.kind != "f" or np.isnan(bias).any():
            raise RecordFormatError(f"its {name} attention bias is not all numbers")
    scale = section.scale
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise RecordFormatError(f"its {name} query/key scale is {scale!r}, not a positive number")
    softcap = section.softcap
    if softcap is not None and (
        isinstance(softcap, bool) or not isinstance(softcap, (int, float)) or not math.isfinite(softcap) or softcap <= 0
    ):
        raise RecordFormatError(f"its {name} soft-capping is {softcap!r}, not a positive number")
    windows = section.windows
    if windows is not None and (
        not isinstance(windows, list)
        or len(windows) != layers
        or any(w is not None and (isinstance(w, bool) or not isinstance(w, int) or w < 0) for w in windows)
    ):
        raise RecordFormatError(f"its {name} windows are {windows!r}, not one width (or null) per layer")


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
