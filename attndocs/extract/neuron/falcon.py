"""Neuron adapter for Falcon: one fused ``query_key_value`` in three layouts, rotary or ALiBi positions.

The hook keeps the whole fused output; how it splits into heads depends on the config, as in the
model's ``_split_heads``:

- ``new_decoder_architecture`` (Falcon-40B/180B): per key/value group ``[q_1 .. q_g | k | v]``, ``g`` query
  heads sharing one key head (grouped-query attention, ``kv_groups = g``);
- ``multi_query`` (Falcon-7B): ``[q_1 .. q_H | k | v]``, one key head for every query head (``kv_groups = H``);
- neither: per head ``[q | k | v]``, as BLOOM.

Without ``alibi`` (every released Falcon) q and k are rotated with the model's ``apply_rotary_pos_emb`` and
the ``position_embeddings`` the layer passed in. With ``alibi`` the eager attention computes
``(q.k + alibi) / sqrt(d) + attention_mask``, and FalconModel has folded ``alibi / sqrt(d)`` into that mask
as well, so the model adds the ALiBi term twice (transformers' eager path; its SDPA path adds it once). The
adapter takes both terms from the call, as the model used them, and stores them in the canonical ALiBi form
(minus each query row's own-position value, see bloom.py): ``-2 * slope / sqrt(d) * distance``.
"""

from __future__ import annotations

from typing import Any

from .base import Site, Source, default_scale, find_modules, model_rotation, rotate_as_called
from .bloom import relative_to_own_position

ATTENTION_CLASSES = frozenset({"FalconAttention"})  # FalconFlashAttention2 never returns attention


def sites(model: Any) -> list[Site]:
    alibi = bool(getattr(model.config, "alibi", False))
    found: list[Site] = []
    for _, module in find_modules(model, ATTENTION_CLASSES):
        rotate = model_rotation(module, required=not alibi)
        heads, head_dim = int(module.num_heads), int(module.head_dim)
        if module.new_decoder_architecture:
            kv_heads = int(module.num_kv_heads)
            width, groups = (heads // kv_heads + 2) * head_dim, heads // kv_heads
        elif module.multi_query:
            width, groups = head_dim, heads
        else:
            width, groups = 3 * head_dim, 1
        fused = Source(module.query_key_value)
        site = Site(
            section="decoder",
            module=module,
            query_source=fused,
            key_source=fused,
            head_dim=width,
            scale=float(module.inv_norm_factor) if alibi else default_scale(module, head_dim),
            kv_groups=groups,
            transform=_transform(module, head_dim, None if alibi else rotate),
            kwarg_names=("hidden_states", "alibi", "attention_mask") if alibi else ("position_embeddings",),
        )
        if alibi:
            if found:
                site.bias_from = found[0]  # every layer gets the same alibi and mask
            else:
                site.bias_from_call = _alibi_bias
        found.append(site)
    return found


def _transform(module: Any, head_dim: int, rotate: Any) -> Any:
    heads = int(module.num_heads)

    def transform(site: Site, query: Any, key: Any, kwargs: dict[str, Any]) -> tuple[Any, Any]:
        # query and key are the same view of the fused output, [B, parts, n, width] (see sites()).
        fused = query
        batch, parts, length, _ = fused.shape
        if module.new_decoder_architecture:
            groups = heads // parts
            query = fused[..., : groups * head_dim].reshape(batch, parts, length, groups, head_dim)
            query = query.permute(0, 1, 3, 2, 4).reshape(batch, heads, length, head_dim)
            key = fused[..., groups * head_dim : (groups + 1) * head_dim]
        elif module.multi_query:
            query, key = fused[:, :heads], fused[:, heads : heads + 1]
        else:
            query, key = fused[..., :head_dim], fused[..., head_dim : 2 * head_dim]
        if rotate is None:
            return query, key
        return rotate_as_called(rotate, query, key, kwargs)

    return transform


def _alibi_bias(site: Site, kwargs: dict[str, Any]) -> Any:
    alibi, mask, hidden = kwargs.get("alibi"), kwargs.get("attention_mask"), kwargs.get("hidden_states")
    if alibi is None or hidden is None:
        raise RuntimeError("the attention module was called without its alibi tensor")
    heads = int(site.module.num_heads)
    # As the eager attention: (scores + alibi) * inv_norm_factor + attention_mask, for the first text.
    full = alibi.reshape(-1, heads, 1, alibi.shape[-1])[:1].float() * float(site.module.inv_norm_factor)
    if mask is not None:
        if mask.dtype.is_floating_point:
            full = full + mask[:1].float()
        else:  # a boolean mask (True = attend) carries no ALiBi
            full = full.masked_fill(~mask[:1], float("-inf"))
    return relative_to_own_position(full, int(hidden.shape[1]))
