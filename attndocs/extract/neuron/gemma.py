"""Neuron adapter for Gemma 2 (``gemma2``) and Gemma 3's text model (``gemma3_text``).

Both are Llama-shaped (rotary q and k, grouped key heads) with three differences:

* the q.k multiplier is ``query_pre_attn_scalar ** -0.5``, not ``head_dim ** -0.5`` (the module's
  ``scaling``, which the adapter reads as it reads every family's);
* Gemma 3 normalises q and k per head (``q_norm`` / ``k_norm``, on ``[B, H, n, d]``) before the rotation:
  the hooks keep the normalised vectors;
* layers alternate between a sliding window (``layer_types``: ``sliding_attention``, 4096 tokens in Gemma 2,
  512 or 1024 in Gemma 3) and full causal attention: on texts longer than the window the window's layers
  carry a -inf bias on the keys outside it (see the Llama adapter), the full layers none.

Gemma 2 caps its scores with tanh (``attn_logit_softcapping``, 50 in every released checkpoint): the
softmax is taken over ``cap * tanh(s * q.k / cap) + mask``. The adapter keeps the cap on each site; the
self-check applies it, the record keeps it (``softcap``), and the neuron view shows the raw ``s * q.k``,
then the capped score, then the softmax. Gemma 3 keeps the setting in its config but its attention does not
pass it on (transformers' Gemma 3 attention has no soft-capping): the adapter looks at the attention code
itself (a cap set on a model that does not apply it would fail the self-check, and the reverse too).
Bidirectional variants (``use_bidirectional_attention``) have no causal mask and are withheld.
"""

from __future__ import annotations

import inspect
from typing import Any

from .base import Site, Unsupported, find_modules
from .llama import rotary_sites

ATTENTION_CLASSES = frozenset({"Gemma2Attention", "Gemma3Attention"})


def sites(model: Any) -> list[Site]:
    caps: dict[int, float] = {}
    for _, module in find_modules(model, ATTENTION_CLASSES):
        name = type(module).__name__.removesuffix("Attention").replace("Gemma", "Gemma ")
        cap = getattr(module, "attn_logit_softcapping", None)
        if cap is not None and _passes_softcap(type(module)):
            if isinstance(cap, bool) or not isinstance(cap, (int, float)) or not cap > 0:
                raise Unsupported(f"{name} has a soft-capping of {cap!r}, not a positive number")
            caps[id(module)] = float(cap)
        if not getattr(module, "is_causal", True):
            raise Unsupported(
                f"{name} is configured with bidirectional attention; the neuron view covers causal attention only"
            )
    heads_first = any(type(m).__name__ == "Gemma3Attention" for _, m in find_modules(model, ATTENTION_CLASSES))
    found = rotary_sites(model, ATTENTION_CLASSES, norm_heads_first=heads_first)
    for site in found:
        site.softcap = caps.get(id(site.module))
    return found


def _passes_softcap(cls: type) -> bool:
    """Whether the attention's forward hands ``softcap`` to the attention function (assumed, when unreadable)."""
    try:
        return "softcap=" in inspect.getsource(cls.forward)
    except (OSError, TypeError):
        return True
