"""Neuron adapter for GPT-2: the fused ``c_attn`` projection split into q | k | v, and its scaling options.

``c_attn`` (a Conv1D) returns ``[q | k | v]`` side by side; the hooks keep the first two thirds. In a
cross-attention block (``add_cross_attention``) the query comes from ``q_attn`` and ``c_attn`` holds
``[k | v]`` of the encoder states. The multiplier is 1/sqrt(d) with ``scale_attn_weights`` (else 1), divided
by ``layer_idx + 1`` with ``scale_attn_by_inverse_layer_idx``; that per-layer factor ends up folded into the
stored query (see SectionQK). ``reorder_and_upcast_attn`` only changes the order and precision of the
same product, so it needs nothing here.
"""

from __future__ import annotations

from typing import Any

from .base import Site, Source, find_modules

ATTENTION_CLASSES = frozenset({"GPT2Attention"})


def sites(model: Any) -> list[Site]:
    found = []
    for _, module in find_modules(model, ATTENTION_CLASSES):
        width = int(module.split_size)
        cross = bool(getattr(module, "is_cross_attention", False))
        if cross:
            query, key = Source(module.q_attn), Source(module.c_attn, slice(0, width))
        else:
            query, key = Source(module.c_attn, slice(0, width)), Source(module.c_attn, slice(width, 2 * width))
        found.append(
            Site(
                section="cross" if cross else "decoder",
                module=module,
                query_source=query,
                key_source=key,
                head_dim=int(module.head_dim),
                scale=_scale(module),
            )
        )
    return found


def _scale(module: Any) -> float:
    scaling = getattr(module, "scaling", None)  # transformers >= 4.48 precomputes it
    if isinstance(scaling, (int, float)):
        return float(scaling)
    scale = float(module.head_dim) ** -0.5 if module.scale_attn_weights else 1.0
    if module.scale_attn_by_inverse_layer_idx:
        scale /= float(module.layer_idx + 1)
    return scale
