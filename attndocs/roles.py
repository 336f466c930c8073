"""Named head roles: per-head scores for well-known attention patterns, and the thresholds that name them.

Works from an :class:`~attndocs.record.AttentionRecord`, never from a model. Every score is
a share of attention or a normalised entropy in [0, 1], averaged over the query rows that
have a choice: in a causal section row 0 may attend only to itself, so it says nothing about
the head and is left out of every score (bidirectional and cross sections keep every row).

``sink``
    the share of attention on the *sink keys*: the first key position and every special
    key token (``[CLS]``, ``[SEP]``, ``<s>``, ``</s>`` ...). Heads with nothing to do park
    their attention there (Clark et al. 2019; Xiao et al. 2023, "attention sinks").
``previous``
    the share on the token just before the query (rows ``i >= 1``);
    :func:`attndocs.analysis.head_statistics`' ``previous``.
``current``
    the share a token gives itself (rows with a choice).
``broad``
    the normalised entropy of each row (1 = uniform over the keys the row may see);
    :func:`attndocs.analysis.head_statistics`' ``entropy_norm``.
``induction``
    only when the text repeats: for a query ``i`` whose token also occurs earlier at ``j <
    i - 1``, the share on ``j + 1``, the token that followed the earlier occurrence (summed
    over every earlier occurrence); averaged over such queries. ``j + 1 = i - 1`` (a token
    repeated straight after itself) is left out so that a previous-token head does not count
    as induction, and special tokens are not queries. Without at least
    :data:`INDUCTION_MIN_QUERIES` such queries there is no score.

``previous``, ``current`` and ``induction`` compare query and key positions, so cross
attention has none of them. A head is *named* with a role when its score, as shipped (two
decimals), reaches the role's threshold (:data:`THRESHOLDS`); a head may have several roles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .analysis import attendable_keys, record_statistics
from .record import AttentionRecord, Section
from .state import HEAD_ROLES as ROLES

# Chosen on real numbers (docs/head-roles.md has the table): minilm and smollm2 on five texts,
# the tiny random test models and random softmax heads. Random heads reach at most 0.58 (sink),
# 0.55 (previous), 0.60 (current) and 0.90 (broad); trained heads of each role reach 0.77-1.0,
# induction heads 0.52-0.77 (SmolLM2), so these name under 2% of random heads.
THRESHOLDS: Mapping[str, float] = {
    "sink": 0.7,
    "previous": 0.6,
    "current": 0.6,
    "broad": 0.9,
    "induction": 0.4,
}

INDUCTION_MIN_QUERIES = 3  # fewer repeated tokens make a score of one or two rows: noise

LABELS: Mapping[str, str] = {
    "sink": "attention sink",
    "previous": "previous token",
    "current": "current token",
    "broad": "broad",
    "induction": "induction-like",
}


def sink_keys(cols: int, key_special: Sequence[bool] | None) -> np.ndarray:
    """``[cols]`` bool: the keys a sink score counts, the first position and every special token."""
    keys = np.zeros(cols, bool)
    if cols:
        keys[0] = True
    if key_special is not None:
        keys |= np.asarray(key_special, bool)[:cols]
    return keys


def induction_targets(tokens: Sequence[str], special: Sequence[bool] | None = None) -> dict[int, list[int]]:
    """``{query i: [key positions]}``: the tokens that followed the earlier occurrences of token ``i``.

    Only queries whose token occurred before at ``j < i - 1`` and that are not special tokens;
    the position ``j + 1 = i - 1`` is left out (it is the previous token).
    """
    seen: dict[str, list[int]] = {}
    out: dict[int, list[int]] = {}
    for i, token in enumerate(tokens):
        is_special = special is not None and bool(special[i])
        if not is_special:
            targets = [j + 1 for j in seen.get(token, ()) if j < i - 2]
            if targets:
                out[i] = targets
            seen.setdefault(token, []).append(i)
    return out


# What the roles take from :func:`attndocs.analysis.head_statistics` when no statistics are given.
ROLE_STATISTICS = ("entropy_norm", "previous")


def head_role_scores(
    section: Section,
    *,
    key_special: Sequence[bool] | None = None,
    tokens: Sequence[str] | None = None,
    row_special: Sequence[bool] | None = None,
    statistics: Mapping[str, np.ndarray | None] | None = None,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
) -> dict[str, np.ndarray]:
    """Each role's score ``[layers, heads]`` float64 in [0, 1] for one section; roles the section has no score for are absent.

    ``tokens`` (the row side's tokens, for a self-attention section) give the induction score;
    ``statistics`` are :func:`attndocs.analysis.head_statistics` of the same section, heads and
    key side's special tokens when the caller has them already (their ``previous`` and
    ``entropy_norm`` are reused, and ``special`` and ``self`` where they are the same number as
    ``sink`` and ``current``). ``layers`` and ``heads`` (model indices, default all) score only
    those heads: the arrays are then ``[len(layers), len(heads)]``, each head's scores exactly
    those of the full computation.
    """
    attention = section.attention
    _, all_heads, rows, cols = attention.shape
    layer_list = list(range(attention.shape[0])) if layers is None else [int(x) for x in layers]
    head_list = list(range(all_heads)) if heads is None else [int(h) for h in heads]
    every_head = head_list == list(range(all_heads))
    if statistics is None:
        from .analysis import head_statistics

        statistics = head_statistics(section, layers=layer_list, heads=head_list, only=ROLE_STATISTICS)
    same_side = section.rows == section.cols and rows == cols
    choice = attendable_keys(rows, cols, section.causal) > 1
    rows_with_choice = np.flatnonzero(choice)
    every_row = len(rows_with_choice) == rows
    sink_cols = sink_keys(cols, key_special)
    targets = induction_targets(tokens, row_special) if same_side and tokens is not None else {}
    if len(targets) < INDUCTION_MIN_QUERIES:
        targets = {}
    # Every (query, target) pair: a query's share on its targets summed, averaged over the
    # queries, is the sum over all pairs divided by the number of queries (a gather, no copy
    # of the attention).
    pair_rows = np.array([i for i in sorted(targets) for _ in targets[i]], int)
    pair_cols = np.array([j for i in sorted(targets) for j in targets[i]], int)
    sink_vector = sink_cols.astype(np.float32)

    # The statistics' special share is the sink score, computed the same way, when the sink keys are the
    # special keys (a first token that is special: [CLS], <s>) and every row counts; their self share is
    # the current score when every row counts. Then no pass over the attention is left but induction's.
    shape = (len(layer_list), len(head_list))
    special = statistics.get("special")
    reuse_sink = (
        every_row
        and special is not None
        and key_special is not None
        and len(key_special) == cols
        and np.array_equal(sink_cols, np.asarray(key_special, bool))
    )
    sink = np.asarray(special) if reuse_sink else np.zeros(shape)
    reuse_current = same_side and every_row and statistics.get("self") is not None
    current = None
    if same_side:
        current = np.asarray(statistics["self"]) if reuse_current else np.zeros(shape)
    induction = np.zeros(shape) if targets else None
    compute_sink = not reuse_sink and len(rows_with_choice) > 0
    compute_current = same_side and not reuse_current and len(rows_with_choice) > 0
    if compute_sink or compute_current or induction is not None:
        for out, layer in enumerate(layer_list):
            a = np.asarray(attention[layer], dtype=np.float32)  # [heads, rows, cols]
            if not every_head:
                a = a[head_list]
            if compute_sink:
                sink[out] = (a @ sink_vector)[:, rows_with_choice].mean(axis=1, dtype=np.float64)
            if compute_current:
                current[out] = a[:, rows_with_choice, rows_with_choice].mean(axis=1, dtype=np.float64)
            if induction is not None:
                induction[out] = a[:, pair_rows, pair_cols].sum(axis=1, dtype=np.float64) / len(targets)
    out: dict[str, np.ndarray] = {"sink": sink}
    if statistics.get("previous") is not None:
        out["previous"] = np.asarray(statistics["previous"], np.float64)
    if current is not None:
        out["current"] = current
    out["broad"] = np.asarray(statistics["entropy_norm"], np.float64)
    if induction is not None:
        out["induction"] = induction
    return {role: np.clip(out[role], 0.0, 1.0) for role in ROLES if role in out}


def record_role_scores(
    record: AttentionRecord,
    name: str,
    statistics: Mapping[str, np.ndarray | None] | None = None,
    *,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
) -> dict[str, np.ndarray]:
    """:func:`head_role_scores` for section ``name`` of a record, with its sides' tokens and special marks."""
    section = record.sections[name]
    key_side = record.sides.get(section.cols)
    row_side = record.sides.get(section.rows)
    if statistics is None:
        statistics = record_statistics(record, name, layers=layers, heads=heads, only=ROLE_STATISTICS)
    return head_role_scores(
        section,
        key_special=key_side.special if key_side is not None else None,
        tokens=row_side.tokens if row_side is not None and section.rows == section.cols else None,
        row_special=row_side.special if row_side is not None else None,
        statistics=statistics,
        layers=layers,
        heads=heads,
    )


def percent(scores: np.ndarray) -> np.ndarray:
    """Scores as the payload ships them: whole percent, 0..100 (int)."""
    return np.rint(np.clip(np.asarray(scores, np.float64), 0.0, 1.0) * 100).astype(int)


def named(role: str, scores: np.ndarray) -> np.ndarray:
    """``[layers, heads]`` bool: the heads named ``role``, judged on the score as shipped (two decimals)."""
    return percent(scores) >= round(THRESHOLDS[role] * 100)


def available_roles(record: AttentionRecord, name: str) -> list[str]:
    """The roles section ``name`` has a score for, without computing any (for option checks)."""
    section = record.sections[name]
    rows, cols = section.attention.shape[2:]
    same_side = section.rows == section.cols and rows == cols
    out = ["sink"]
    if same_side and rows > 1:
        out.append("previous")
    if same_side:
        out.append("current")
    out.append("broad")
    row_side = record.sides.get(section.rows)
    if same_side and row_side is not None and len(induction_targets(row_side.tokens, row_side.special)) >= INDUCTION_MIN_QUERIES:
        out.append("induction")
    return out


def roles_json(scores: Mapping[str, np.ndarray], layers: list[int], heads: list[int]) -> dict[str, list[list[int]]]:
    """The analysis JSON's ``roles`` of one section: ``{role: [[percent per included head] per included layer]}``."""
    return {role: [[int(v) for v in row] for row in percent(values)[np.ix_(layers, heads)]] for role, values in scores.items()}


def thresholds_json() -> dict[str, int]:
    """The analysis JSON's ``roleThresholds``: each role's threshold in percent, as the browser compares them."""
    return {role: round(THRESHOLDS[role] * 100) for role in ROLES}


def describe(scores: Mapping[str, np.ndarray], layer: int, head: int) -> list[tuple[str, float]]:
    """The roles head ``(layer, head)`` is named with and their scores (indices into ``scores``' arrays)."""
    out: list[tuple[str, float]] = []
    for role, values in scores.items():
        if named(role, values)[layer, head]:
            out.append((role, float(percent(values)[layer, head]) / 100))
    return out


def named_json(scores: Mapping[str, np.ndarray], layers: list[int], heads: list[int]) -> dict[str, list[list[int]]]:
    """The head view's ``named`` of one section: ``{role: [[layer, head, percent], ...]}``, model indices.

    Only the heads named with a role ship (the head view shows names, not every score); a role
    the section has a score for is present even when no head reaches its threshold.
    ``scores`` are indexed by position in ``layers`` and ``heads``.
    """
    out: dict[str, list[list[int]]] = {}
    for role, values in scores.items():
        hits = named(role, values)
        codes = percent(values)
        out[role] = [[layers[li], heads[hi], int(codes[li, hi])] for li, hi in zip(*np.nonzero(hits))]
    return out


def section_roles_payload(
    record: AttentionRecord,
    name: str,
    layers: list[int],
    heads: list[int],
    statistics: Mapping[str, Any] | None = None,
    *,
    sparse: bool = False,
) -> dict[str, list[list[int]]]:
    """What a figure ships of section ``name``'s roles for the included ``layers`` and ``heads``.

    Dense (the summary view: :func:`roles_json`) or, with ``sparse``, the named heads only (the
    head view: :func:`named_json`). Only the included heads are scored; ``statistics``, when
    given, are :func:`attndocs.analysis.record_statistics` of those same layers and heads.
    """
    scores = record_role_scores(record, name, statistics, layers=layers, heads=heads)
    if sparse:
        return named_json(scores, layers, heads)
    return roles_json(scores, list(range(len(layers))), list(range(len(heads))))
