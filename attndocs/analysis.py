"""Build-time attention analysis: aggregates, rollout and per-head statistics for the views.

Everything here is computed with numpy from the unquantised float32 record, before the
payload quantises it, so aggregates over many heads and products over many layers carry no
quantisation error. :func:`payload_extras` is what ``payload.py`` calls: it picks, per
view, the arrays the browser cannot derive itself and the small JSON the views read from
``fig.header.analysis``. The other functions are public so that users can analyse a record
with the same definitions the figures use.

Conventions: ``attention`` is ``[layers, heads, rows, cols]`` with rows = query positions
and cols = key positions, every row summing to 1 over the keys it may attend to. In a
causal section row ``i`` may attend keys ``0..i`` only.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from .options import FigureOptions
from .record import AttentionRecord, Section

ANALYSIS_VERSION = 1

# The statistics of :func:`head_statistics`, in the order the summary view lists them.
STATISTICS = ("entropy", "entropy_norm", "distance", "special", "previous", "self", "cross_ab")

# The views whose :func:`payload_extras` gives arrays; every other view's is JSON at most, which the
# payload computes beside its encoding (the arrays shape the payload's chunks, so they come first).
ARRAY_VIEWS = frozenset({"matrix"})


# -- aggregates ----------------------------------------------------------------------------
def mean_over_heads(attention: np.ndarray) -> np.ndarray:
    """``[layers, rows, cols]``: each layer's attention averaged over its heads."""
    return np.asarray(attention, np.float32).mean(axis=1, dtype=np.float64).astype(np.float32)


def max_over_heads(attention: np.ndarray) -> np.ndarray:
    """``[layers, rows, cols]``: each layer's elementwise maximum over its heads."""
    return np.asarray(attention, np.float32).max(axis=1)


def mean_over_all(attention: np.ndarray) -> np.ndarray:
    """``[rows, cols]``: the attention averaged over every layer and head."""
    return np.asarray(attention, np.float32).mean(axis=(0, 1), dtype=np.float64).astype(np.float32)


def max_over_all(attention: np.ndarray) -> np.ndarray:
    """``[rows, cols]``: the elementwise maximum over every layer and head."""
    return np.asarray(attention, np.float32).max(axis=(0, 1))


def rollout(attention: np.ndarray) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema, 2020), ``[layers, n, n]``, one matrix per layer.

    Each layer's heads are averaged, the identity is added for the residual connection and
    the rows are renormalised; the rollout through layer ``l`` is the product of these
    matrices from layer ``l`` down to layer 0. Entry ``[l, i, j]`` estimates how much of
    position ``i``'s representation after layer ``l`` flows from input token ``j``; every
    row sums to 1 and causal sections stay lower triangular.

    Rollout follows information through one stack of self-attention layers, so it is only
    defined for self-attention sections (rows and cols on the same side). It is *not*
    defined for cross attention, whose rows and columns are different sequences; for the
    decoder of an encoder-decoder model it follows the decoder's own path only and ignores
    what flows in through cross attention.
    """
    attention = np.asarray(attention, np.float32)
    layers, _, rows, cols = attention.shape
    if rows != cols:
        raise ValueError("rollout needs self attention (a square matrix per head)")
    identity = np.eye(rows, dtype=np.float64)
    out = np.empty((layers, rows, cols), np.float32)
    flow = identity
    for layer in range(layers):
        mixed = attention[layer].mean(axis=0, dtype=np.float64) + identity
        mixed /= mixed.sum(axis=1, keepdims=True)
        flow = mixed @ flow
        out[layer] = flow
    return out


# -- per-head statistics ---------------------------------------------------------------------
def attendable_keys(rows: int, cols: int, causal: bool) -> np.ndarray:
    """How many keys each query row may attend to: ``i + 1`` in a causal section, else all."""
    if causal:
        return np.minimum(np.arange(rows) + 1, cols)
    return np.full(rows, cols)


def head_statistics(
    section: Section,
    *,
    key_special: Sequence[bool] | None = None,
    text_b_start: int | None = None,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    only: Collection[str] | None = None,
) -> dict[str, np.ndarray | None]:
    """Per-(layer, head) summary statistics of one section, each ``[layers, heads]`` float64.

    Every statistic is a per-row quantity averaged over the query rows:

    ``entropy``
        ``-sum_j a_ij ln a_ij`` in nats. Uniform attention over ``n`` keys gives ``ln n``.
    ``entropy_norm``
        each row's entropy divided by ``ln`` of the number of keys the row may attend to,
        so 1 means uniform and 0 fully focused, and the short rows of a causal section are
        judged against their own choice; rows with a single attendable key (no choice) are
        left out of the average.
    ``distance``
        mean attention distance ``sum_j a_ij |i - j|`` in token positions.
    ``special``
        the share of attention given to special tokens (``[CLS]``, ``</s>`` ...) of the key side.
    ``previous``
        the share given to the previous token ``i - 1``, over rows ``i >= 1``.
    ``self``
        the share given to the token itself.
    ``cross_ab``
        for sentence pairs, the share that crosses between A (before ``text_b_start``) and
        B (from it on): A rows attending B keys and B rows attending A keys.

    ``distance``, ``previous``, ``self`` and ``cross_ab`` compare query and key positions, so
    they are ``None`` for cross attention; ``special`` is ``None`` without ``key_special``
    and ``cross_ab`` without ``text_b_start``.

    ``layers`` and ``heads`` (model indices, default all) restrict the work to those heads: the
    arrays are then ``[len(layers), len(heads)]``, each head's numbers exactly those of the full
    computation. ``only`` names the statistics to compute (default all); the others are ``None``.
    """
    attention = section.attention
    _, all_heads, rows, cols = attention.shape
    layer_list = list(range(attention.shape[0])) if layers is None else [int(x) for x in layers]
    head_list = list(range(all_heads)) if heads is None else [int(h) for h in heads]
    every_head = head_list == list(range(all_heads))
    wanted = set(STATISTICS if only is None else only)
    shape = (len(layer_list), len(head_list))
    same_side = section.rows == section.cols and rows == cols
    i = np.arange(rows)
    j = np.arange(cols)
    keys = attendable_keys(rows, cols, section.causal)
    choice = keys > 1
    log_keys = np.log(np.where(choice, keys, 2)).astype(np.float64)

    def empty(stat: str, applies: bool = True) -> np.ndarray | None:
        return np.empty(shape) if stat in wanted and applies else None

    entropy = empty("entropy")
    entropy_norm = empty("entropy_norm")
    distance = empty("distance", same_side)
    previous = empty("previous", same_side and rows > 1)
    self_share = empty("self", same_side)
    special = empty("special", key_special is not None)
    pair = same_side and text_b_start is not None and 0 < text_b_start < rows
    cross_ab = empty("cross_ab", pair)
    with_entropy = entropy is not None or entropy_norm is not None

    # float32 throughout, one layer at a time, reductions as matrix-vector products where they are sums
    # over keys: at 512 tokens and BERT-base's 144 heads this takes a tenth of the float64 version's time,
    # and every statistic stays within 1e-6 of it (far below the five decimals the payload keeps).
    gap = np.abs(i[:, None] - j[None, :]).astype(np.float32) if distance is not None else None
    special_keys = None if special is None else np.asarray(key_special, bool).astype(np.float32)
    if cross_ab is not None:
        in_b = i >= text_b_start
        b_keys = (j >= text_b_start).astype(np.float32)
    # a ln a a block of query rows at a time, in one small scratch buffer: the block stays in the CPU's
    # cache from the clip to the row sums (a third faster than whole layers at 512 tokens; the same
    # numbers, each row summed alone either way).
    block = max(1, _ENTROPY_BLOCK // max(cols, 1))
    plogp = np.empty((block, cols), np.float32) if with_entropy else None

    for out, layer in enumerate(layer_list):
        a = np.asarray(attention[layer], dtype=np.float32)  # [heads, rows, cols], no copy when float32
        if not every_head:
            a = a[head_list]  # a copy of the included heads only
        if plogp is not None:
            row_entropy = _row_entropy(a, plogp)  # [heads, rows]
            if entropy is not None:
                entropy[out] = row_entropy.mean(axis=1)
            if entropy_norm is not None:
                if choice.any():
                    entropy_norm[out] = (row_entropy[:, choice] / log_keys[choice]).mean(axis=1)
                else:
                    entropy_norm[out] = 0.0
        if distance is not None:
            distance[out] = np.einsum("hij,ij->hi", a, gap, dtype=np.float64).mean(axis=1)
        if self_share is not None:
            self_share[out] = a[:, i, i].mean(axis=1, dtype=np.float64)
        if previous is not None:
            previous[out] = a[:, i[1:], i[1:] - 1].mean(axis=1, dtype=np.float64)
        if special is not None:
            special[out] = (a @ special_keys).mean(axis=1, dtype=np.float64)
        if cross_ab is not None:
            to_b = (a @ b_keys).astype(np.float64)  # [heads, rows]: each row's share on sentence B
            to_a = (a @ (1.0 - b_keys)).astype(np.float64)
            cross_ab[out] = np.where(in_b[None, :], to_a, to_b).mean(axis=1)
    return {
        "entropy": entropy,
        "entropy_norm": entropy_norm,
        "distance": distance,
        "special": special,
        "previous": previous,
        "self": self_share,
        "cross_ab": cross_ab,
    }


_ENTROPY_BLOCK = 1 << 16  # float32 values of a ln a per block: 256 kB
_TINY = np.float32(1e-30)  # a * ln(max(a, tiny)) is 0 where a is 0, with no branch


def _row_entropy(a: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """``[heads, rows]`` float64: ``-sum_j a_ij ln a_ij`` of every row of ``a`` ``[heads, rows, cols]``,
    computed ``len(scratch)`` rows at a time in ``scratch``."""
    heads, rows, cols = a.shape
    flat = a.reshape(heads * rows, cols)
    out = np.empty(heads * rows)
    step = len(scratch)
    for start in range(0, heads * rows, step):
        rows_in = flat[start : start + step]
        plogp = scratch[: len(rows_in)]
        np.maximum(rows_in, _TINY, out=plogp)
        np.log(plogp, out=plogp)
        plogp *= rows_in
        out[start : start + step] = plogp.sum(axis=1, dtype=np.float64)
    np.negative(out, out=out)
    return out.reshape(heads, rows)


def record_statistics(
    record: AttentionRecord,
    name: str,
    *,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    only: Collection[str] | None = None,
) -> dict[str, np.ndarray | None]:
    """:func:`head_statistics` for section ``name`` of a record, with its sides' token facts."""
    section = record.sections[name]
    key_side = record.sides.get(section.cols)
    row_side = record.sides.get(section.rows)
    return head_statistics(
        section,
        key_special=key_side.special if key_side is not None else None,
        text_b_start=row_side.text_b_start if row_side is not None and section.rows == section.cols else None,
        layers=layers,
        heads=heads,
        only=only,
    )


# -- what the payload ships --------------------------------------------------------------------
def _included(wanted: Sequence[int] | None, count: int) -> list[int]:
    # Sorted like the payload's own layer and head lists, so positions line up.
    if wanted is None:
        return list(range(count))
    return sorted({k for k in wanted if 0 <= k < count})


def _rounded(values: np.ndarray, rows: list[int], cols: list[int]) -> list[list[float]]:
    # Five decimals: far finer than any colour scale, and stable across BLAS builds, so a
    # rebuild of the same record writes the same bytes.
    return [[round(float(values[r, c]), 5) + 0.0 for c in cols] for r in rows]


def payload_extras(record: AttentionRecord, options: FigureOptions) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The extra arrays and the ``analysis`` JSON a figure of ``options.view`` needs.

    Arrays are named ``"<section>.<what>"``, hold values in [0, 1] and are quantised like
    attention by the payload. Only what the browser cannot work out from the attention it
    already has is shipped:

    * ``matrix``: ``mean_all`` and ``max_all`` ``[rows, cols]`` over every layer and head
      of the model, and ``rollout`` ``[included layers, n, n]`` for self-attention sections
      (rollout through a layer needs every head of every layer below it, shipped or not).
      Per-layer mean and max over heads are derived in the browser when every head ships
      (the quantiser is monotone, so the maximum of quantised weights is exactly the
      quantised maximum, and a mean of quantised weights is as close as a quantised mean);
      when ``include-heads`` leaves heads out, ``mean_heads`` and ``max_heads``
      ``[included layers, rows, cols]`` ship so that they still cover all heads.
    * ``matrix`` and ``summary``: per-head statistics (:func:`head_statistics`) for the
      included layers and heads, as JSON.
    * ``summary``: each section's head-role scores (:mod:`attndocs.roles`) for the included
      layers and heads as ``roles`` ``{role: [[percent 0..100]]}``; ``head`` and ``model``:
      only the named heads, as ``named`` ``{role: [[layer, head, percent]]}`` and nothing
      else. Both carry the thresholds as ``roleThresholds`` ``{role: percent}``.
    * every other view: nothing.
    """
    view = options.view
    if view in ("head", "model"):
        with threadpool_limits(limits=1, user_api="blas"):
            return {}, _head_roles(record, options)
    if view not in ("matrix", "summary"):
        return {}, {}
    # One BLAS thread: the payload encodes on its own worker threads, and BLAS threads on a busy
    # machine wait for each other (rollout of BERT-base at 512 tokens took 1.3-2.1 s with two
    # threads on two loaded cores, 0.10-0.13 s with one).
    with threadpool_limits(limits=1, user_api="blas"):
        return _payload_extras(record, options)


def _payload_extras(record: AttentionRecord, options: FigureOptions) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from . import roles  # it builds on this module's statistics

    view = options.view
    arrays: dict[str, np.ndarray] = {}
    sections: dict[str, Any] = {}
    # Every section's statistics on a thread of their own, beside the matrix view's aggregates
    # here: two independent passes over the attention, each about half the time at 512 tokens.
    with ThreadPoolExecutor(max_workers=1) as pool:
        # Only the included heads: a figure of two layers does not pay for twelve.
        included = {
            name: (_included(options.include_layers, section.layers), _included(options.include_heads, section.heads))
            for name, section in record.sections.items()
        }
        statistics = {
            name: pool.submit(record_statistics, record, name, layers=layers, heads=heads) for name, (layers, heads) in included.items()
        }
        aggregates = {name: _aggregates(section, options) for name, section in record.sections.items()} if view == "matrix" else {}
        for name in record.sections:
            layers, heads = included[name]
            stats = statistics[name].result()
            positions = (list(range(len(layers))), list(range(len(heads))))
            info: dict[str, Any] = {
                "layers": layers,
                "heads": heads,
                "stats": {key: _rounded(value, *positions) for key, value in stats.items() if value is not None},
                "extras": {},
            }
            for what, values in aggregates.get(name, {}).items():
                arrays[f"{name}.{what}"] = values
                info["extras"][what] = f"{name}.{what}"
            if view == "summary":
                info["roles"] = roles.section_roles_payload(record, name, layers, heads, stats)
            sections[name] = info
    out: dict[str, Any] = {"version": ANALYSIS_VERSION, "view": view, "sections": sections}
    if view == "summary":
        out["roleThresholds"] = roles.thresholds_json()
    return arrays, out


def _head_roles(record: AttentionRecord, options: FigureOptions) -> dict[str, Any]:
    """The head and model views' analysis JSON: the included heads named with a role, nothing else."""
    from . import roles

    sections = {}
    for name, section in record.sections.items():
        layers = _included(options.include_layers, section.layers)
        heads = _included(options.include_heads, section.heads)
        sections[name] = {"named": roles.section_roles_payload(record, name, layers, heads, sparse=True)}
    return {"version": ANALYSIS_VERSION, "view": options.view, "sections": sections, "roleThresholds": roles.thresholds_json()}


def _aggregates(section: Section, options: FigureOptions) -> dict[str, np.ndarray]:
    """The matrix view's aggregates of one section, clipped to [0, 1] as the payload quantises them."""
    attention = section.attention
    layers = _included(options.include_layers, section.layers)
    extras = {"mean_all": mean_over_all(attention), "max_all": max_over_all(attention)}
    if len(_included(options.include_heads, section.heads)) < section.heads:
        extras["mean_heads"] = mean_over_heads(attention)[layers]
        extras["max_heads"] = max_over_heads(attention)[layers]
    if section.rows == section.cols:
        extras["rollout"] = rollout(attention)[layers]
    return {what: np.clip(values, 0.0, 1.0).astype(np.float32) for what, values in extras.items()}
