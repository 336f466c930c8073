"""Display forms of tokens: what a reader should see for each token the tokenizer produced.

Raw tokens keep the tokenizer's markers (``##ing``, ``Ġcat``, ``▁cat``, ``<0xE4>``, and
byte-level BPE's stand-in characters for UTF-8 bytes). The display form shows the text:
word-piece continuations lose ``##``, ``Ġ``/``▁`` become a space, and byte-level or
byte-fallback tokens are decoded as UTF-8 across token boundaries, so "Café 你好" reads as
characters. A token that holds only the first bytes of a character shows those bytes as
``\\xNN`` escapes, and the token that completes the character shows the character.
"""

from __future__ import annotations

import codecs
import json
import re
import weakref
from functools import lru_cache
from typing import Any

_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")


@lru_cache(maxsize=1)
def byte_level_alphabet() -> dict[str, int]:
    """Byte-level BPE's printable stand-in for each byte value, inverted (char -> byte).

    Printable Latin-1 bytes stand for themselves; the other 68 byte values are mapped, in
    increasing order, to the code points from 256 upwards. That is the convention every
    byte-level BPE tokenizer (GPT-2, RoBERTa, BART, Llama-3 style) uses.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return {char: b for b, char in mapping.items()}


# A tokenizer's style never changes; without a decoder to read, finding it scans the vocabulary
# (25 ms for 30k entries), which every text of the tokenizer would pay again.
_STYLES: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def token_style(tokenizer: Any) -> str:
    """'byte-level', 'wordpiece', 'metaspace' or 'plain', read from the tokenizer's decoder."""
    try:
        return _STYLES[tokenizer]
    except (KeyError, TypeError):  # TypeError: an object that cannot be weakly referenced
        pass
    style = _token_style(tokenizer)
    try:
        _STYLES[tokenizer] = style
    except TypeError:
        pass
    return style


def _token_style(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        kinds = set(_types(_component(backend, "decoder"))) | set(_types(_component(backend, "pre_tokenizer")))
        if "ByteLevel" in kinds:
            return "byte-level"
        if "WordPiece" in kinds:
            return "wordpiece"
        if "Metaspace" in kinds or "ByteFallback" in kinds or "Replace" in kinds:
            return "metaspace"
    vocab_sample = list(getattr(tokenizer, "get_vocab", dict)().keys())[:5000]
    if any(t.startswith("##") for t in vocab_sample):
        return "wordpiece"
    if any(t.startswith("\u2581") for t in vocab_sample):
        return "metaspace"
    if any(t.startswith("\u0120") for t in vocab_sample):
        return "byte-level"
    return "plain"


def _component(backend: Any, name: str) -> Any:
    """The JSON spec of one part of a fast tokenizer (its decoder, its pre-tokenizer), or None.

    Read from that part alone: serialising the whole tokenizer (``to_str``) writes its vocabulary and
    merges too, which took 0.26 s per text for SmolLM2's 49k-token vocabulary.
    """
    try:
        part = getattr(backend, name)
        if part is None:
            return None
        return json.loads(part.__getstate__())
    except Exception:  # an older tokenizers without per-part state: the whole spec, as before
        try:
            return json.loads(backend.to_str()).get(name)
        except (TypeError, ValueError, AttributeError):
            return None


def _types(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["type"]] if isinstance(node.get("type"), str) else []
        for value in node.values():
            found.extend(_types(value))
        return found
    if isinstance(node, list):
        return [t for item in node for t in _types(item)]
    return []


def display_tokens(tokens: list[str], style: str, special: list[bool]) -> list[str]:
    """The display form of each token (special tokens are shown as they are)."""
    if style == "wordpiece":
        return [t if s else (t[2:] if t.startswith("##") and len(t) > 2 else t) for t, s in zip(tokens, special)]
    if style in ("byte-level", "metaspace"):
        return _decode_bytes(tokens, style, special)
    return list(tokens)


def _token_bytes(token: str, style: str) -> bytes:
    if style == "byte-level":
        alphabet = byte_level_alphabet()
        if all(c in alphabet for c in token):
            return bytes(alphabet[c] for c in token)
        return token.encode("utf-8")
    # metaspace: "▁" is a space; "<0xNN>" is a raw byte (sentencepiece byte fallback)
    match = _BYTE_FALLBACK.fullmatch(token)
    if match:
        return bytes([int(match.group(1), 16)])
    return token.replace("\u2581", " ").encode("utf-8")


def _decode_bytes(tokens: list[str], style: str, special: list[bool]) -> list[str]:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    out: list[str] = []
    for token, is_special in zip(tokens, special):
        if is_special:
            decoder.reset()
            out.append(token)
            continue
        data = _token_bytes(token, style)
        try:
            text = decoder.decode(data)
        except UnicodeDecodeError:
            decoder.reset()
            text = data.decode("utf-8", errors="replace")
        if text:
            out.append(text)
        else:
            # Only part of a character: show the raw bytes so the token is still visible.
            out.append("".join(f"\\x{b:02x}" for b in data))
    return out
