"""Comparisons of two records (two texts, two models) or two layers of one: alignment and differences.

A comparison figure has two sides, A (the figure's own text, model and layer) and B (what
``compare-text``, ``compare-model`` or ``compare-layer`` names). Differences A - B are
defined only where the two sides hold the same thing:

* tokens: aligned where their display text is the same, found with difflib over each
  side's display tokens (:func:`align_tokens`); a piece with no counterpart (another
  word, another tokenizer's split) is shown but gets no difference;
* layers and heads: only those both models have (:func:`summary_difference`).

Everything here works from records (numpy only): never from a model.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import OptionError

if TYPE_CHECKING:
    from .options import FigureOptions
    from .record import AttentionRecord

COMPARE_OPTIONS = ("compare_text", "compare_model", "compare_layer")
COMPARE_VIEWS = ("head", "model", "matrix", "summary")
LABEL_CHARS = 32  # a text label is shortened to this many characters


def compare_mode(options: FigureOptions) -> str | None:
    """``"text"``, ``"model"``, ``"layer"`` or None: what the figure's second side differs by."""
    for name in COMPARE_OPTIONS:
        if getattr(options, name, None) is not None:
            return name.removeprefix("compare_")
    return None


def check_options(options: FigureOptions) -> None:
    """At most one comparison a figure, in a view that can show it (OptionError otherwise)."""
    given = [name for name in COMPARE_OPTIONS if getattr(options, name, None) is not None]
    if not given:
        if getattr(options, "difference", None) is not None:
            error = OptionError(
                "option 'difference' needs a comparison", "add compare-text, compare-model or compare-layer, or remove difference"
            )
            error.option = "difference"  # type: ignore[attr-defined]
            raise error
        return
    pages = [name.replace("_", "-") for name in given]
    if len(given) > 1:
        error = OptionError(
            f"options {' and '.join(pages)} both set: a figure compares one thing at a time",
            "keep one of them, or make one figure per comparison",
        )
        error.option = pages[1]  # type: ignore[attr-defined]
        raise error
    if options.view not in COMPARE_VIEWS:
        error = OptionError(
            f"option '{pages[0]}' does nothing in the {options.view} view",
            "comparisons are shown by the " + ", ".join(COMPARE_VIEWS[:-1]) + f" and {COMPARE_VIEWS[-1]} views",
        )
        error.option = pages[0]  # type: ignore[attr-defined]
        raise error
    if getattr(options, "generate", None) is not None:
        # A written continuation differs from text to text and model to model: its step
        # control has no counterpart on the other side yet.
        error = OptionError(f"option '{pages[0]}' does not combine with generate", "make one figure that generates and one that compares")
        error.option = pages[0]  # type: ignore[attr-defined]
        raise error
    if given == ["compare_layer"] and options.view == "model":
        error = OptionError(
            "option 'compare-layer' does nothing in the model view: it shows every layer",
            "set view: head, matrix or summary, or use compare-text / compare-model",
        )
        error.option = "compare-layer"  # type: ignore[attr-defined]
        raise error


def second_options(options: FigureOptions) -> FigureOptions | None:
    """The options of the comparison's second record (None: no second record is needed).

    ``compare-layer`` reads another layer of the same record, so it needs none.
    """
    mode = compare_mode(options)
    if mode == "text":
        return options.replace(text=options.compare_text, compare_text=None)
    if mode == "model":
        # The revision belongs to the first model; the second is named in full by compare-model.
        return options.replace(model=options.compare_model, revision=None, compare_model=None)
    return None


def _shorten(text: str, width: int = LABEL_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def labels(options: FigureOptions, a: AttentionRecord, b: AttentionRecord | None, layer: int) -> list[str]:
    """What tells the two sides apart: the two texts (shortened), the two models, or the two layers.

    ``layer``: the layer the figure opens on (side A of a layer comparison).
    """
    mode = compare_mode(options)
    if mode == "layer":
        return [f"layer {layer}", f"layer {options.compare_layer}"]
    if mode == "model":
        return [_model_label(options.model, a), _model_label(options.compare_model, b)]
    text_a, text_b = a.text, (b.text if b else options.compare_text or "")
    short_a, short_b = _shorten(text_a), _shorten(text_b)
    if short_a == short_b or len(text_a) > LABEL_CHARS or len(text_b) > LABEL_CHARS:
        # Long texts that share their start are told apart by where they differ.
        start = _common_prefix(text_a, text_b)
        if start > 8:
            short_a, short_b = "…" + _shorten(text_a[start - 8:]), "…" + _shorten(text_b[start - 8:])
    return [short_a, short_b]


def _model_label(name: str | None, record: AttentionRecord | None) -> str:
    """The name the page gave (an alias, a hub id), but a local folder by its record's name:
    a path would publish where the docs were built."""
    model_id = record.model_id if record is not None else ""
    if not name or name.startswith((".", "/", "~", "\\")) or (len(name) > 1 and name[1] == ":") or Path(name).expanduser().is_dir():
        return model_id or (Path(name).name if name else "")
    return name


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


# -- token alignment --------------------------------------------------------------------------
@dataclass(frozen=True)
class Alignment:
    """How the tokens of one side (encoder or decoder) of A and B correspond.

    ``pairs``: ``(index in A, index in B)`` of every aligned token, increasing in both.
    ``merged``: one entry per position of the drawing's axis, ``(a, b)`` with -1 where a
    token has no counterpart: aligned tokens once, unaligned ones of A then of B in place.
    """

    pairs: list[tuple[int, int]]
    merged: list[tuple[int, int]]
    a_count: int
    b_count: int

    @property
    def complete(self) -> bool:
        return len(self.pairs) == self.a_count == self.b_count

    def as_json(self) -> dict[str, Any]:
        return {"pairs": [list(p) for p in self.pairs], "merged": [list(m) for m in self.merged], "complete": self.complete}


def align_tokens(a: list[Any], b: list[Any]) -> Alignment:
    """Tokens aligned where they are the same (difflib over the display tokens, or any keys).

    Two tokenizers that split a word differently give pieces that do not align, and those
    get no difference: nothing is averaged or guessed across different pieces.
    """
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    pairs: list[tuple[int, int]] = []
    merged: list[tuple[int, int]] = []
    for tag, a0, a1, b0, b1 in matcher.get_opcodes():
        if tag == "equal":
            for k in range(a1 - a0):
                pairs.append((a0 + k, b0 + k))
                merged.append((a0 + k, b0 + k))
        else:
            merged.extend((i, -1) for i in range(a0, a1))
            merged.extend((-1, j) for j in range(b0, b1))
    return Alignment(pairs=pairs, merged=merged, a_count=len(a), b_count=len(b))


def align_records(a: AttentionRecord, b: AttentionRecord) -> dict[str, Alignment]:
    """An :class:`Alignment` per side both records have (encoder, decoder).

    Two texts through one tokenizer align by their display tokens. One text through two
    tokenizers aligns by where each piece lies in the text: a piece aligns only with a
    piece of the same characters at the same place ("i" of "tired" never with the "i" of
    "it"), and special tokens only with the same special token.
    """
    same_text = (a.text, a.text_b, a.target) == (b.text, b.text_b, b.target)
    out = {}
    for name in a.sides:
        if name not in b.sides:
            continue
        if same_text:
            text = _side_text(a, name)
            out[name] = align_tokens(_span_keys(a.sides[name], text), _span_keys(b.sides[name], text))
        else:
            out[name] = align_tokens(list(a.sides[name].display), list(b.sides[name].display))
    return out


def _side_text(record: AttentionRecord, name: str) -> str:
    if name == "decoder" and record.kind == "encoder-decoder":
        return record.target or ""
    return record.text + ("\n" + record.text_b if record.text_b else "")


def _span_keys(side: Any, text: str) -> list[Any]:
    """Per token, the characters of ``text`` it covers, found in order (case-insensitive: an
    uncased tokenizer lowercases); a special token or one not found is keyed by itself."""
    low, cursor, keys = text.lower(), 0, []
    for k, (shown, special) in enumerate(zip(side.display, side.special)):
        piece = shown.strip().lower()
        if special or not piece:
            keys.append(("special", shown))
            continue
        at = low.find(piece, cursor)
        if at < 0 or low[cursor:at].strip():  # only whitespace may lie between two pieces
            keys.append(("unplaced", k, shown))
            continue
        keys.append((at, at + len(piece)))
        cursor = at + len(piece)
    return keys


def identity_alignment(record: AttentionRecord) -> dict[str, Alignment]:
    """Every token aligned with itself (two layers of one record)."""
    return {name: align_tokens(list(side.display), list(side.display)) for name, side in record.sides.items()}


# -- differences ------------------------------------------------------------------------------
def attention_difference(
    a: AttentionRecord,
    b: AttentionRecord,
    section: str,
    layer: int,
    head: int,
    alignment: dict[str, Alignment],
    *,
    layer_b: int | None = None,
) -> tuple[list[tuple[int, int]], list[tuple[int, int]], np.ndarray]:
    """A - B of one head on aligned rows x aligned columns: (row pairs, column pairs, matrix).

    The matrix is ``[len(row pairs), len(column pairs)]``; ``layer_b`` is B's layer (the
    same as ``layer`` unless the figure compares two layers). Empty where nothing aligns.
    Raises OptionError where B has no such section, layer or head.
    """
    sa, sb = a.sections[section], b.sections.get(section)
    layer_b = layer if layer_b is None else layer_b
    if sb is None or layer_b >= sb.layers or head >= sb.heads:
        raise OptionError(f"the second side has no {section} layer {layer_b} head {head}", "only what both sides have is compared")
    rows, cols = alignment[sa.rows].pairs, alignment[sa.cols].pairs
    if not rows or not cols:
        return rows, cols, np.zeros((len(rows), len(cols)), np.float32)
    ra, rb = np.array([p[0] for p in rows]), np.array([p[1] for p in rows])
    ca, cb = np.array([p[0] for p in cols]), np.array([p[1] for p in cols])
    left = np.asarray(sa.attention[layer][head], np.float32)[np.ix_(ra, ca)]
    right = np.asarray(sb.attention[layer_b][head], np.float32)[np.ix_(rb, cb)]
    return rows, cols, left - right


def shared_layers_heads(a: AttentionRecord, b: AttentionRecord, section: str) -> tuple[int, int]:
    """How many layers and heads both records have in ``section`` (0, 0 when B lacks it)."""
    sb = b.sections.get(section)
    if sb is None:
        return 0, 0
    sa = a.sections[section]
    return min(sa.layers, sb.layers), min(sa.heads, sb.heads)


def summary_difference(
    stats_a: dict[str, Any], stats_b: dict[str, Any], rows: list[tuple[int, int]], heads: list[int]
) -> dict[str, list[list[float | None]]]:
    """Per head, statistic of A minus statistic of B (attndocs.analysis.head_statistics arrays).

    ``rows``: (layer of A, layer of B) pairs, one row of the result each; ``heads``: heads
    both have. A statistic either side lacks is left out; a cell either side cannot give
    (a NaN: no previous token for a one-token text) is None.
    """
    out: dict[str, list[list[float | None]]] = {}
    for key, va in stats_a.items():
        vb = stats_b.get(key)
        if va is None or vb is None:
            continue
        va, vb = np.asarray(va, np.float64), np.asarray(vb, np.float64)
        table = []
        for la, lb in rows:
            line: list[float | None] = []
            for h in heads:
                d = float(va[la, h] - vb[lb, h])
                line.append(round(d, 5) + 0.0 if np.isfinite(d) else None)
            table.append(line)
        out[key] = table
    return out


def payload_summary(
    a: AttentionRecord, b: AttentionRecord | None, options: FigureOptions, layers: list[int], heads: list[int], layer_b: int | None, layer: int
) -> dict[str, Any]:
    """Per section: the rows (layer pairs), heads and per-head statistic differences, for the summary view."""
    from .analysis import record_statistics

    other = b if b is not None else a
    out: dict[str, Any] = {}
    for name in a.sections:
        if name not in other.sections:
            continue
        n_layers, n_heads = shared_layers_heads(a, other, name)
        shared_heads = [h for h in heads if h < n_heads]
        if layer_b is not None:
            rows = [(layer, layer_b)]
        else:
            rows = [(la, la) for la in layers if la < n_layers]
        if not rows or not shared_heads:
            continue
        stats_a, stats_b = record_statistics(a, name), record_statistics(other, name)
        out[name] = {
            "rows": [list(r) for r in rows],
            "heads": shared_heads,
            "stats": summary_difference(stats_a, stats_b, rows, shared_heads),
            "a": _stat_table(stats_a, [r[0] for r in rows], shared_heads),
            "b": _stat_table(stats_b, [r[1] for r in rows], shared_heads),
        }
    return out


def _stat_table(stats: dict[str, Any], layers: list[int], heads: list[int]) -> dict[str, list[list[float | None]]]:
    out = {}
    for key, values in stats.items():
        if values is None:
            continue
        values = np.asarray(values, np.float64)
        out[key] = [[round(float(values[la, h]), 5) + 0.0 if np.isfinite(values[la, h]) else None for h in heads] for la in layers]
    return out


# -- the payload's header.compare ---------------------------------------------------------------
def second_selection(b: AttentionRecord, options: FigureOptions, layer: int, selected: tuple[int, ...]) -> dict[str, Any]:
    """What of the second record ships: the figure's include-layers / include-heads where B has
    them (every layer and head of B when they are not set), and the layer and heads it opens on."""
    n_layers = max(s.layers for s in b.sections.values())
    n_heads = max(s.heads for s in b.sections.values())
    layers = tuple(x for x in (options.include_layers or range(n_layers)) if x < n_layers)
    heads = tuple(x for x in (options.include_heads or range(n_heads)) if x < n_heads)
    if not layers or not heads:
        raise OptionError(
            f"include-layers / include-heads leave nothing of the second model ({b.model_id}: {n_layers} layers x {n_heads} heads)",
            "include a layer and a head both models have",
        )
    return {
        "layers": tuple(sorted(layers)),
        "heads": tuple(sorted(heads)),
        "layer": layer if layer in layers else layers[0],
        "selected_heads": tuple(h for h in selected if h in heads) or heads,
    }


def payload_header(
    a: AttentionRecord,
    b: AttentionRecord | None,
    options: FigureOptions,
    layers: list[int],
    heads: list[int],
    layer: int,
    selected: tuple[int, ...],
    encode: Any,
) -> dict[str, Any]:
    """``header.compare``: mode, labels, the alignment per side, and the second record's data.

    ``encode(b, selection)`` encodes the second record's sections and extras into the
    figure's own chunks (payload.py), so a large comparison loads lazily like any figure.
    """
    mode = compare_mode(options)
    if mode == "layer":
        second = options.compare_layer
        n_layers = max(s.layers for s in a.sections.values())
        if second >= n_layers:
            raise _option_error(
                "compare-layer", f"option 'compare-layer' is {second}, out of range", f"model {a.model_id or '(unnamed)'} has {n_layers} layers: 0-{n_layers - 1}"
            )
        if second not in layers:
            raise _option_error(
                "compare-layer", f"option 'compare-layer' is {second}, which include-layers leaves out", f"included: {', '.join(map(str, layers))}"
            )
        alignment = identity_alignment(a)
        return {
            "mode": mode,
            "labels": labels(options, a, None, layer),
            "layers": [layer, second],
            "alignment": {name: al.as_json() for name, al in alignment.items()},
            **_summary(options, a, None, layers, heads, second, layer),
        }
    if b is None:
        raise OptionError("this comparison's second record was not given", "render it with compare=<the second record>")
    if a.kind != b.kind:
        raise _option_error(
            f"compare-{mode}",
            f"option 'compare-{mode}' compares a{'n' if a.kind[0] in 'ae' else ''} {a.kind} model ({a.model_id}) with a{'n' if b.kind[0] in 'ae' else ''} {b.kind} model ({b.model_id})",
            "compare models of one kind: encoder with encoder, decoder with decoder, encoder-decoder with encoder-decoder",
        )
    alignment = align_records(a, b)
    chosen = second_selection(b, options, layer, selected)
    encoded = encode(b, chosen)
    return {
        "mode": mode,
        "labels": labels(options, a, b, layer),
        "alignment": {name: al.as_json() for name, al in alignment.items()},
        "model": {"id": b.model_id, "revision": b.revision, "type": b.model_type},
        "kind": b.kind,
        "text": b.text,
        "layer": chosen["layer"],
        "heads": list(chosen["selected_heads"]),
        **encoded,
        **_summary(options, a, b, layers, heads, None, layer),
    }


def _summary(options: FigureOptions, a: AttentionRecord, b: AttentionRecord | None, *args: Any) -> dict[str, Any]:
    # Only the summary view draws per-head differences; other views ship none.
    return {"summary": payload_summary(a, b, options, *args)} if options.view == "summary" else {}


def _option_error(option: str, message: str, hint: str) -> OptionError:
    error = OptionError(message, hint)
    error.option = option  # type: ignore[attr-defined]
    return error
