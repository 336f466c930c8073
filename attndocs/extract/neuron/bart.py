"""Neuron adapter for BART-style encoder-decoders: BART, mBART and Marian.

The hooks keep the ``q_proj`` / ``k_proj`` outputs; in ``encoder_attn`` (cross attention) ``k_proj``
runs on the encoder output. The multiplier is 1/sqrt(d): transformers 5 passes it to the attention
function as ``scaling``, older versions multiplied ``q_proj``'s output by it, so the raw projection with
scale 1/sqrt(d) is right for both.
"""

from __future__ import annotations

from typing import Any

from .base import Site, Source, default_scale, find_modules, section_of

ATTENTION_CLASSES = frozenset({"BartAttention", "MBartAttention", "MarianAttention"})


def sites(model: Any) -> list[Site]:
    found = []
    for name, module in find_modules(model, ATTENTION_CLASSES):
        cross = name.endswith("encoder_attn")
        decoder = bool(getattr(module, "is_decoder", False))
        head_dim = int(module.head_dim)
        found.append(
            Site(
                section=section_of(cross=cross, decoder=decoder),
                module=module,
                query_source=Source(module.q_proj),
                key_source=Source(module.k_proj),
                head_dim=head_dim,
                scale=default_scale(module, head_dim),
            )
        )
    return found
