"""Neuron adapter for OPT: separate ``q_proj`` / ``k_proj``, learned absolute positions, causal mask.

OPT multiplies the query projection by 1/sqrt(head_dim) before the product (and passes ``scaling=1.0`` to
its attention function, to keep the original order of operations); the adapter keeps the unscaled
``q_proj`` output and stores the same multiplier as the section's scale, which is the same score up to
float32 rounding far below the self-check's tolerance. Positions are learned embeddings added to the
input, so nothing else enters the score.
"""

from __future__ import annotations

from typing import Any

from .base import Site, Source, find_modules

ATTENTION_CLASSES = frozenset({"OPTAttention"})


def sites(model: Any) -> list[Site]:
    found = []
    for _, module in find_modules(model, ATTENTION_CLASSES):
        head_dim = int(module.head_dim)
        found.append(
            Site(
                section="decoder",
                module=module,
                query_source=Source(module.q_proj),
                key_source=Source(module.k_proj),
                head_dim=head_dim,
                scale=float(getattr(module, "scaling", head_dim**-0.5)),
            )
        )
    return found
