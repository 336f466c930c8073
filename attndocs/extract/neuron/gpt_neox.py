"""Neuron adapter for GPT-NeoX (Pythia): one fused ``query_key_value`` projection, partial rotary.

``query_key_value`` returns, for each head in turn, ``[q | k | v]`` of ``head_size`` columns each (the
model views its output as ``[B, n, H, 3 * head_size]`` and chunks the last dimension), so unlike GPT-2's
``c_attn`` the three are not side by side over the whole width: the hook keeps the whole output, split
into heads of ``3 * head_size``, and the transform takes the first and second thirds of every head. It
then rotates them with the model's own ``apply_rotary_pos_emb``, which rotates only the first
``rotary_ndims`` dimensions (``rotary_pct`` / ``partial_rotary_factor``, a quarter in Pythia) and passes
the rest through, using the ``position_embeddings`` (cos, sin) the layer handed to the attention module.
The multiplier is 1/sqrt(head_size); the mask is plain causal.
"""

from __future__ import annotations

from typing import Any

from .base import Site, Source, default_scale, find_modules, model_rotation, rotate_as_called

ATTENTION_CLASSES = frozenset({"GPTNeoXAttention"})


def sites(model: Any) -> list[Site]:
    found = []
    for _, module in find_modules(model, ATTENTION_CLASSES):
        rotate = model_rotation(module)
        head_dim = int(module.head_size)
        fused = Source(module.query_key_value)
        found.append(
            Site(
                section="decoder",
                module=module,
                query_source=fused,
                key_source=fused,
                head_dim=3 * head_dim,  # per head [q | k | v]; the transform keeps q and k
                scale=default_scale(module, head_dim),
                transform=_split_and_rotate(rotate, head_dim),
                kwarg_names=("position_embeddings",),
            )
        )
    return found


def _split_and_rotate(rotate: Any, head_dim: int) -> Any:
    def transform(site: Site, query: Any, key: Any, kwargs: dict[str, Any]) -> tuple[Any, Any]:
        # query and key are the same [B, H, n, 3 * head_dim] view of the fused output.
        return rotate_as_called(rotate, query[..., :head_dim], key[..., head_dim : 2 * head_dim], kwargs)

    return transform
