"""AttentionRecord: the framework-neutral result of one extraction, and its file format.

A record holds the token sequences a model saw ("sides": ``encoder`` and/or ``decoder``)
and one or more attention "sections" over them (``encoder``, ``decoder``, ``cross``), as
numpy arrays. It is what the cache stores, what ``attndocs extract`` writes and what the
views read. The file is plain safetensors (no pickle) with string metadata; the format is
public and documented in the README, so users can analyse it with numpy alone.

This module imports numpy and safetensors, never torch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CacheError

SCHEMA_VERSION = 1
FORMAT_NAME = "attndocs.record"
SECTION_NAMES = ("encoder", "decoder", "cross")
SECTION_TENSORS = ("attention", "query", "key", "bias")

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
    ``attention`` (checked at extraction time).
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

    @property
    def layers(self) -> int:
        return int(self.attention.shape[0])

    @property
    def heads(self) -> int:
        return int(self.attention.shape[1])

    @property
    def has_qk(self) -> bool:
        return self.query is not None and self.key is not None

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
            "sections": {
                name: {"rows": s.rows, "cols": s.cols, "causal": s.causal, "scale": s.scale}
                for name, s in self.sections.items()
            },
            "neuron": self.neuron,
            "versions": self.versions,
            "extraction": self.extraction,
        }
        meta = {key: _dumps(values[key]) for key in _JSON_KEYS}
        meta.update(
            {
                "format": FORMAT_NAME,
                "schema": str(SCHEMA_VERSION),
                "model_id": self.model_id,
                "revision": self.revision,
                "model_type": self.model_type,
                "kind": self.kind,
                "cache_key": self.key,
            }
        )
        return meta

    def save(self, path: str | Path) -> None:
        """Write the record to ``path`` (not atomically; the cache adds atomicity)."""
        Path(path).write_bytes(self.to_bytes())

    def to_bytes(self) -> bytes:
        tensors = self.tensors()
        meta = self.metadata()
        meta["checksum"] = tensor_checksum(tensors)
        meta["metadata_checksum"] = metadata_checksum(meta)
        return safetensors_bytes(tensors, meta)

    @classmethod
    def load(cls, path: str | Path) -> AttentionRecord:
        """Read and verify a record file; a damaged file raises :class:`CacheError`."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise CacheError(f"cannot read {path}: {exc.strerror or exc}") from exc
        return cls.from_bytes(data, source=str(path))

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> AttentionRecord:
        from safetensors.numpy import load

        try:
            meta = read_metadata_bytes(data)
            tensors = load(data)
        except Exception as exc:  # safetensors raises several types for a damaged file
            raise CacheError(f"{source} is damaged: {exc}") from exc
        if meta.get("format") != FORMAT_NAME:
            raise CacheError(f"{source} is not an attndocs record")
        if meta.get("schema") != str(SCHEMA_VERSION):
            raise CacheError(f"{source} has record schema {meta.get('schema')}, expected {SCHEMA_VERSION}")
        if meta.get("metadata_checksum") != metadata_checksum(meta):
            raise CacheError(f"{source} is damaged: its metadata does not match its checksum")
        if meta.get("checksum") != tensor_checksum(tensors):
            raise CacheError(f"{source} is damaged: its tensors do not match their checksum")
        try:
            return cls._from_parts(meta, tensors)
        except (KeyError, TypeError, ValueError) as exc:
            raise CacheError(f"{source} is damaged: bad metadata ({exc})") from exc

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
        sections = {}
        for name, info in sorted(values["sections"].items(), key=lambda item: _canonical_rank(item[0])):
            sections[name] = Section(
                name=name,
                attention=tensors[f"{name}.attention"],
                rows=info["rows"],
                cols=info["cols"],
                causal=bool(info["causal"]),
                query=tensors.get(f"{name}.query"),
                key=tensors.get(f"{name}.key"),
                bias=tensors.get(f"{name}.bias"),
                scale=info.get("scale"),
            )
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
        )


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


def read_metadata_bytes(data: bytes) -> dict[str, str]:
    """The string metadata of a safetensors file, read from its header alone."""
    if len(data) < 8:
        raise ValueError("file is shorter than a safetensors header")
    size = int.from_bytes(data[:8], "little")
    if size <= 0 or 8 + size > len(data):
        raise ValueError("header length is out of range")
    header = json.loads(data[8 : 8 + size].decode("utf-8"))
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict):
        raise ValueError("metadata is not a mapping")
    return meta


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a record file without loading its tensors."""
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise ValueError("file is shorter than a safetensors header")
        size = int.from_bytes(head, "little")
        if size <= 0 or size > 100_000_000:
            raise ValueError("header length is out of range")
        body = handle.read(size)
    return read_metadata_bytes(head + body)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
