"""Neuron adapter for T5 and mT5: no 1/sqrt(d) scaling, and a learned relative position bias.

The hooks keep the ``q`` / ``k`` projections. T5 computes the position bias once per stack, in the first
layer's ``relative_attention_bias`` embedding (shape ``[rows, cols, heads]``; bidirectional buckets in the
encoder, causal-relative buckets in the decoder), and every later layer of that stack reuses it; the
adapter hooks that embedding and hands its output to each layer of the stack, without the padding or
causal mask that transformers 4.x added into the same tensor. Cross attention has no position bias (the
model adds zeros), so the cross section's bias is None. The q.k multiplier is 1.0.
"""

from __future__ import annotations

from typing import Any

from .base import Site, Source, find_modules, section_of

ATTENTION_CLASSES = frozenset({"T5Attention", "MT5Attention"})


def sites(model: Any) -> list[Site]:
    found = []
    first_of_stack: dict[str, Site] = {}
    for name, module in find_modules(model, ATTENTION_CLASSES):
        cross = name.endswith("EncDecAttention")
        decoder = bool(getattr(module, "is_decoder", False))
        head_dim = int(module.key_value_proj_dim)
        site = Site(
            section=section_of(cross=cross, decoder=decoder),
            module=module,
            query_source=Source(module.q),
            key_source=Source(module.k),
            head_dim=head_dim,
            scale=float(getattr(module, "scaling", 1.0)),  # T5 never divides by sqrt(d)
        )
        if not cross:
            # The stack is the module path before ".block.<i>": "encoder" or "decoder" (or a prefixed one).
            stack = name.split(".block.")[0]
            if getattr(module, "has_relative_attention_bias", False):
                site.bias_module = module.relative_attention_bias
                first_of_stack.setdefault(stack, site)
            elif stack in first_of_stack:
                site.bias_from = first_of_stack[stack]
        found.append(site)
    return found
