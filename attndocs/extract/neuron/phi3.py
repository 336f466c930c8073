"""Neuron adapter for Phi-3 (and Phi-3.5, Phi-4-mini: model type ``phi3``).

Phi-3 projects q, k and v in one ``qkv_proj``: the hooks keep its output and cut the query
(``num_attention_heads * head_dim`` columns) and the key (the next ``num_key_value_heads * head_dim``)
out of it, the way the attention module does. Rotary embeddings may cover only the first
``partial_rotary_factor`` of each head (Phi-4-mini): the model's own ``apply_rotary_pos_emb`` reads the
rotated width from the cos/sin it is given and passes the rest through, so the adapter rotates exactly what
the model rotated. ``config.sliding_window`` (2047 in Phi-3-mini) masks every layer: on longer texts the
keys beyond the window are a -inf bias, as in the Llama adapter, which this one shares its code with.
"""

from __future__ import annotations

from typing import Any

from .base import Site
from .llama import rotary_sites

ATTENTION_CLASSES = frozenset({"Phi3Attention"})


def sites(model: Any) -> list[Site]:
    return rotary_sites(model, ATTENTION_CLASSES, fused=True)
