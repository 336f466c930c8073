"""Neuron adapter for MPT: a fused ``Wqkv`` projection (q | k | v side by side), ALiBi, optional clipping.

``Wqkv`` returns ``[q | k | v]`` over the whole width, as GPT-2's ``c_attn``; the hooks keep the first two
thirds. With ``attn_config.clip_qkv`` the model clamps the fused output before splitting it, and the
transform clamps q and k the same way. The multiplier is ``attn_config.softmax_scale`` (default
1/sqrt(head_dim)). MPT's position term is ALiBi: MptModel builds one ``position_bias`` of
``slope[h] * (j - (max_seq_len - 1))`` (``[H, 1, max_seq_len]``, not scaled) and every layer slices its last
``cols`` keys and adds it to the scaled scores; the adapter takes that slice from the call and stores it
in the canonical form ``-slope[h] * (i - j)`` (minus each query row's own-position value, which the softmax
ignores; see bloom.py). Every layer gets the same tensor, so the bias is stored once for the section.
"""

from __future__ import annotations

from typing import Any

from .base import Site, Source, find_modules
from .bloom import relative_to_own_position

ATTENTION_CLASSES = frozenset({"MptAttention"})


def sites(model: Any) -> list[Site]:
    found: list[Site] = []
    for _, module in find_modules(model, ATTENTION_CLASSES):
        width = int(module.hidden_size)
        site = Site(
            section="decoder",
            module=module,
            query_source=Source(module.Wqkv, slice(0, width)),
            key_source=Source(module.Wqkv, slice(width, 2 * width)),
            head_dim=int(module.head_dim),
            scale=float(module.softmax_scale),
            transform=_clip if module.clip_qkv else None,
            kwarg_names=("hidden_states", "position_bias"),
        )
        if found:
            site.bias_from = found[0]  # every layer gets the same position_bias
        else:
            site.bias_from_call = _alibi_bias
        found.append(site)
    return found


def _clip(site: Site, query: Any, key: Any, kwargs: dict[str, Any]) -> tuple[Any, Any]:
    limit = float(site.module.clip_qkv)
    return query.clamp(min=-limit, max=limit), key.clamp(min=-limit, max=limit)


def _alibi_bias(site: Site, kwargs: dict[str, Any]) -> Any:
    bias, hidden = kwargs.get("position_bias"), kwargs.get("hidden_states")
    if bias is None or hidden is None:
        raise RuntimeError("the attention module was called without its position_bias")
    rows = int(hidden.shape[1])
    if bias.dim() != 3 or bias.shape[-1] < rows:
        raise RuntimeError(f"position_bias of shape {tuple(bias.shape)} does not cover {rows} keys")
    # As the model slices it (no cache: as many keys as queries): the last rows queries and keys.
    bias = bias[:, max(0, bias.shape[1] - rows) :, bias.shape[2] - rows :]
    return relative_to_own_position(bias.unsqueeze(0), rows)
