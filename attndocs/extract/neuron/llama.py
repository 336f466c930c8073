"""Neuron adapter for the Llama family (Llama, Mistral, Qwen2, Qwen3; SmolLM2 is a Llama).

The hooks keep the ``q_proj`` / ``k_proj`` outputs (or ``q_norm`` / ``k_norm``, which Qwen3 applies per
head before the rotation) and the ``position_embeddings`` (cos, sin) the decoder layer passed to the
attention module, i.e. the rotary angles of the positions the model actually used. After the forward the
adapter rotates q and k with the model's own ``apply_rotary_pos_emb`` (looked up in the module that
defines the attention class) and repeats each key head ``num_key_value_groups`` times, as ``repeat_kv``
does for grouped-query attention. Sliding-window masks (Mistral, Qwen2) are not the causal mask: on texts
longer than the window the self-check fails and the neuron view is withheld.
"""

from __future__ import annotations

import sys
from typing import Any

from .base import Site, Source, Unsupported, default_scale, find_modules

ATTENTION_CLASSES = frozenset({"LlamaAttention", "MistralAttention", "Qwen2Attention", "Qwen3Attention"})


def sites(model: Any) -> list[Site]:
    found = []
    for _, module in find_modules(model, ATTENTION_CLASSES):
        rotate = getattr(sys.modules[type(module).__module__], "apply_rotary_pos_emb", None)
        if rotate is None:
            raise Unsupported(f"{type(module).__name__} has no apply_rotary_pos_emb beside it; cannot rotate q and k")
        head_dim = int(module.head_dim)
        normed = hasattr(module, "q_norm") and hasattr(module, "k_norm")
        found.append(
            Site(
                section="decoder",
                module=module,
                query_source=Source(module.q_norm if normed else module.q_proj),
                key_source=Source(module.k_norm if normed else module.k_proj),
                head_dim=head_dim,
                scale=default_scale(module, head_dim),
                kv_groups=int(getattr(module, "num_key_value_groups", 1)),
                transform=_rotary(rotate),
                kwarg_names=("position_embeddings",),
            )
        )
    return found


def _rotary(rotate: Any) -> Any:
    def transform(site: Site, query: Any, key: Any, kwargs: dict[str, Any]) -> tuple[Any, Any]:
        position_embeddings = kwargs.get("position_embeddings")
        if position_embeddings is None:
            raise RuntimeError("the attention module was called without position_embeddings (cos, sin)")
        cos, sin = position_embeddings
        return rotate(query, key, cos, sin)

    return transform
