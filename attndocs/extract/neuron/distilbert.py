"""Neuron adapter for DistilBERT: ``q_lin`` / ``k_lin`` projections, scores ``q.k / sqrt(d)``.

transformers 4.x divided the query by sqrt(d) before the matmul and 5.x passes the factor to the
attention function; the hooks take the raw projection either way, so the scale is 1/sqrt(d) in both.
"""

from __future__ import annotations

from typing import Any

from .base import Site, Source, default_scale, find_modules

ATTENTION_CLASSES = frozenset({"DistilBertSelfAttention", "MultiHeadSelfAttention"})


def sites(model: Any) -> list[Site]:
    found = []
    for _, module in find_modules(model, ATTENTION_CLASSES):
        head_dim = int(getattr(module, "attention_head_size", 0) or module.dim // module.n_heads)
        found.append(
            Site(
                section="encoder",
                module=module,
                query_source=Source(module.q_lin),
                key_source=Source(module.k_lin),
                head_dim=head_dim,
                scale=default_scale(module, head_dim),
            )
        )
    return found
