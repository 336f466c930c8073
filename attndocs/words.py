"""Words instead of word pieces: groups each side's tokens into words and merges the attention.

Works from records alone (numpy; never a model, never torch). The pipeline merges the exact
(float32) record a model gave, right after extraction, and caches the merged record; the rule
and its limits are in docs/words.md:

* Grouping, per tokenizer style (attndocs.extract.tokens.token_style):
  WordPiece: a piece starting with ``##`` continues the word before it.
  Byte-level BPE (GPT-2, RoBERTa, BART, Llama-3, SmolLM2): a piece whose first byte is
  whitespace (``Ġ`` a space, ``Ċ`` a newline, ``ĉ`` a tab) starts a word; so does any piece
  after one that ends in a newline or tab.
  SentencePiece (T5, Marian, Llama-2): a piece starting with ``▁`` starts a word.
  Every other piece continues the word before it.
  In every style: a special token ([CLS], <s>, </s>, <|endoftext|> ...) is a word of its own;
  a piece of punctuation only (BERT's definition: ASCII symbols and Unicode P*) is a word of
  its own, so "mat." is two words whatever the tokenizer; a piece of only whitespace holding a
  newline or tab is a word of its own; a bare space marker (``Ġ`` or ``▁`` alone) joins the
  piece after it; text B starts a word.
* Merging, per section, from float32 attention ``A[layer, head, query, key]``:
  attention TO a word is the SUM over its pieces (columns), attention FROM a word the MEAN over
  its pieces (rows), so every row still sums to 1. A cross section merges rows by the decoder's
  words and columns by the encoder's. Words are runs of consecutive pieces, so a causal section
  stays causal: no word attends to a later word.
* The merged record has no query/key vectors (they are per piece: the neuron view stays per
  piece) and says how words map to pieces in ``record.extraction["words"]``.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from dataclasses import dataclass
from typing import Any

import numpy as np

from .record import AttentionRecord, Section, Side

# The cache-key part of a merged record (pipeline.record_key_parts, only when words is set).
# Change "rule" only with the rule itself: old merged entries then stop being found.
KEY_PART = {"rule": "to-sum,from-mean", "version": 1}
# Tokenizer styles (attndocs.extract.tokens.token_style), and what each merges by.
STYLES = ("wordpiece", "byte-level", "metaspace", "plain")
NEURON_NOTE = "The neuron view shows word pieces: q·k is per piece"
# Byte-level BPE's stand-ins for whitespace bytes (space, tab, newline, vertical tab, form feed, return).
_BYTE_LEVEL_SPACE = {"Ġ": " ", "ĉ": "\t", "Ċ": "\n", "ċ": "\v", "Č": "\f", "č": "\r"}
_METASPACE = "▁"


def merges(options: Any, qk: bool = False) -> bool:
    """Whether a figure with ``options`` is drawn from a merged record.

    A neuron view (or any caller asking for query/key vectors) needs the per-piece record:
    q·k is per piece, and so is what it draws.
    """
    return bool(getattr(options, "words", False)) and not qk and getattr(options, "view", None) != "neuron"


@dataclass(frozen=True)
class Grouping:
    """How one side's pieces form words: ``starts[w]`` is the first piece of word ``w``."""

    starts: tuple[int, ...]
    pieces: int

    @property
    def words(self) -> int:
        return len(self.starts)

    def spans(self) -> list[tuple[int, int]]:
        ends = (*self.starts[1:], self.pieces)
        return list(zip(self.starts, ends))

    def counts(self) -> list[int]:
        return [end - start for start, end in self.spans()]

    def word_of(self, piece: int) -> int:
        """The word holding ``piece``; ``pieces`` (one past the end) maps to ``words``."""
        if piece >= self.pieces:
            return self.words
        return int(np.searchsorted(np.asarray(self.starts), piece, side="right") - 1)


def infer_style(tokens: list[str], special: list[bool]) -> str:
    """The tokenizer style that raw tokens show, for a record made without the pipeline.

    The pipeline passes the style its tokenizer declares; this reads the markers instead, and
    cannot tell WordPiece from byte-level BPE in a text with no marker at all ("plain").
    """
    plain = [t for t, s in zip(tokens, special) if not s]
    if any(t.startswith(_METASPACE) for t in plain):
        return "metaspace"
    if any(t[:1] in _BYTE_LEVEL_SPACE for t in plain):
        return "byte-level"
    if any(t.startswith("##") and len(t) > 2 for t in plain):
        return "wordpiece"
    return "plain"


def group_words(side: Side, style: str) -> Grouping:
    """Group one side's pieces into words by ``style`` (module docstring; docs/words.md)."""
    if style not in STYLES:
        raise ValueError(f"unknown tokenizer style {style!r}; one of {', '.join(STYLES)}")
    starts: list[int] = []
    after_break = True  # the piece before ended a word for good (start, special, punctuation, newline)
    glue_next = False  # the piece before was a bare space marker: the next piece joins it
    for i, (token, special) in enumerate(zip(side.tokens, side.special)):
        text = _text(token, style)
        body = text.lstrip()
        shown = side.display[i].strip()  # decoded: byte-level punctuation is bytes in the raw token
        punct = not special and bool(shown) and all(_is_punctuation(c) for c in shown)
        if glue_next and not special:
            start = False
        elif special or after_break or punct or i == side.text_b_start:
            start = True
        elif style == "wordpiece":
            start = not token.startswith("##")
        elif style in ("byte-level", "metaspace"):
            start = text[:1].isspace()
        else:
            start = True  # plain: no markers to read, every piece is a word
        if start:
            starts.append(i)
        glue_next = not special and bool(text) and not body and not any(c in "\n\t\r\v\f" for c in text)
        after_break = special or punct or (bool(text) and text[-1] in "\n\t\r\v\f")
    return Grouping(tuple(starts), len(side.tokens))


def merge_words(record: AttentionRecord, style: str | None = None) -> AttentionRecord:
    """The record with words for pieces, merged from ``record``'s attention (float32).

    ``style``: the tokenizer's (the pipeline passes it); None reads it from the tokens
    (:func:`infer_style`). The result has no query/key vectors and records the grouping in
    ``extraction["words"]``: the style and, per side, each word's raw pieces.
    """
    if record.extraction.get("words"):
        raise ValueError("this record's pieces are already merged into words")
    if style is None:
        every = [(t, s) for side in record.sides.values() for t, s in zip(side.tokens, side.special)]
        style = infer_style([t for t, _ in every], [s for _, s in every])
    groups = {name: group_words(side, style) for name, side in record.sides.items()}
    sides = {name: _merged_side(side, groups[name], style) for name, side in record.sides.items()}
    sections = {name: _merged_section(section, groups[section.rows], groups[section.cols]) for name, section in record.sections.items()}
    extraction = dict(record.extraction)
    extraction["qk"] = False
    extraction["words"] = {
        "style": style,
        "rule": KEY_PART["rule"],
        "pieces": {name: [list(side.tokens[a:b]) for a, b in groups[name].spans()] for name, side in record.sides.items()},
    }
    neuron = {"available": False, "reason": "its word pieces are merged into words; the neuron view is per piece"}
    return dataclasses.replace(record, sides=sides, sections=sections, extraction=extraction, neuron=neuron, key="", key_parts=None)


def merge_attention(attention: np.ndarray, rows: Grouping, cols: Grouping) -> np.ndarray:
    """``[..., rows, cols]`` piece attention to ``[..., row words, col words]``: sum to, mean from."""
    attention = np.asarray(attention)
    if attention.shape[-2:] != (rows.pieces, cols.pieces):
        raise ValueError(f"attention over {attention.shape[-2:]} pieces, the grouping has {rows.pieces} x {cols.pieces}")
    counts = np.asarray(rows.counts(), dtype=np.float64)[:, None]
    out = np.empty((*attention.shape[:-2], rows.words, cols.words), dtype=np.float32)
    # Words are runs of consecutive pieces: reduceat sums each run. One layer at a time, in
    # float64, so that a long text's merge needs no more memory than a layer's attention.
    for index in np.ndindex(*attention.shape[:-3]):
        block = attention[index].astype(np.float64)
        to = np.add.reduceat(block, list(cols.starts), axis=-1)
        out[index] = (np.add.reduceat(to, list(rows.starts), axis=-2) / counts).astype(np.float32)
    return out


def word_pieces(record: AttentionRecord, side: str) -> list[list[str]] | None:
    """Each word's raw pieces on ``side`` of a merged record; None for a record of pieces."""
    words = record.extraction.get("words")
    if not isinstance(words, dict):
        return None
    pieces = words.get("pieces", {}).get(side)
    return pieces if isinstance(pieces, list) else None


def piece_count(record: AttentionRecord, side: str) -> int:
    """How many pieces the model read on ``side`` (what max-tokens counts), merged or not."""
    pieces = word_pieces(record, side)
    return len(record.sides[side]) if pieces is None else sum(len(p) for p in pieces)


def payload_words(record: AttentionRecord) -> dict[str, Any] | None:
    """The page's word map (header ``words``): the style and, per side, each word's pieces as shown."""
    words = record.extraction.get("words")
    if not isinstance(words, dict):
        return None
    from .extract.tokens import display_tokens  # numpy-free, torch-free

    style = words.get("style", "plain")
    shown: dict[str, list[list[str]]] = {}
    for name, side in record.sides.items():
        pieces = word_pieces(record, name) or []
        shown[name] = [
            [p.strip() or p for p in display_tokens(list(group), style, [bool(special)] * len(group))]
            for group, special in zip(pieces, side.special)
        ]
    return {"style": style, "sides": shown}


# -- helpers --------------------------------------------------------------------------------------
def _text(token: str, style: str) -> str:
    """A raw piece as text with its markers as the whitespace they stand for (for the grouping only)."""
    if style == "byte-level":
        return "".join(_BYTE_LEVEL_SPACE.get(c, c) for c in token)
    if style == "metaspace":
        return token.replace(_METASPACE, " ")
    if style == "wordpiece" and token.startswith("##") and len(token) > 2:
        return token[2:]
    return token


def _is_punctuation(char: str) -> bool:
    """BERT's test: ASCII symbols (!"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~) and Unicode punctuation (P*)."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _merged_side(side: Side, groups: Grouping, style: str) -> Side:
    from .extract.tokens import display_tokens

    tokens, special = [], []
    for a, b in groups.spans():
        pieces = side.tokens[a:b]
        if style == "wordpiece":
            pieces = [pieces[0], *(p[2:] if p.startswith("##") and len(p) > 2 else p for p in pieces[1:])]
        tokens.append("".join(pieces))
        special.append(bool(side.special[a]))
    if style == "plain":
        display = ["".join(side.display[a:b]) for a, b in groups.spans()]
    else:
        # The display form of the word's raw text: for byte-level BPE decoded from all its bytes,
        # so a character split over pieces reads as one.
        display = display_tokens(tokens, style, special)
    start = None if side.text_b_start is None else groups.word_of(side.text_b_start)
    return Side(tokens=tokens, display=display, special=special, text_b_start=start)


def _merged_section(section: Section, rows: Grouping, cols: Grouping) -> Section:
    return Section(
        name=section.name,
        attention=merge_attention(section.attention, rows, cols),
        rows=section.rows,
        cols=section.cols,
        causal=section.causal,
    )
