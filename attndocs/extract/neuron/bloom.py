"""Neuron adapter for BLOOM: a fused per-head ``query_key_value`` projection and ALiBi position bias.

``query_key_value`` returns, for each head in turn, ``[q | k | v]`` (the model views it as
``[B, n, H, 3, head_dim]``); the hook keeps the whole output split into heads of ``3 * head_dim`` and
the transform takes the first two thirds of every head. The score is ``alibi + q.k / sqrt(head_dim)``
(``baddbmm`` with ``beta`` 1): BLOOM has no position embeddings, only ALiBi, the ``alibi`` tensor the
model hands every layer, ``slope[h] * position(j)`` of the key alone (``[B * H, 1, cols]``; a key's
position counts the unpadded tokens before it). A term that is the same for every key of a query row
changes nothing after the softmax, so the adapter stores the canonical ALiBi form
``bias[h, i, j] = alibi[h, j] - alibi[h, i]``, i.e. ``-slope[h] * (i - j)``, computed from the model's own
tensor (its slopes and dtype rounding): 0 on the diagonal, more negative the farther back the key. The
bias is the same in every layer (one tensor, ``bias_from`` the first layer) and is taken from the first
text of the batch: texts padded differently get different positions and fail the self-check.
"""

from __future__ import annotations

from typing import Any

from .base import Site, Source, find_modules

ATTENTION_CLASSES = frozenset({"BloomAttention"})


def sites(model: Any) -> list[Site]:
    found: list[Site] = []
    for _, module in find_modules(model, ATTENTION_CLASSES):
        head_dim = int(module.head_dim)
        fused = Source(module.query_key_value)
        site = Site(
            section="decoder",
            module=module,
            query_source=fused,
            key_source=fused,
            head_dim=3 * head_dim,  # per head [q | k | v]; the transform keeps q and k
            scale=float(module.inv_norm_factor),
            transform=split_fused_heads(head_dim),
            kwarg_names=("hidden_states", "alibi"),
        )
        if found:
            site.bias_from = found[0]  # every layer gets the same alibi tensor
        else:
            site.bias_from_call = _alibi_bias
        found.append(site)
    return found


def split_fused_heads(head_dim: int) -> Any:
    """The transform for a fused projection viewed as ``[B, n, H, 3 * head_dim]``: q and k of each head."""

    def transform(site: Site, query: Any, key: Any, kwargs: dict[str, Any]) -> tuple[Any, Any]:
        return query[..., :head_dim], key[..., head_dim : 2 * head_dim]

    return transform


def _alibi_bias(site: Site, kwargs: dict[str, Any]) -> Any:
    alibi, hidden = kwargs.get("alibi"), kwargs.get("hidden_states")
    if alibi is None or hidden is None:
        raise RuntimeError("the attention module was called without its alibi tensor")
    beta = float(getattr(site.module, "beta", 1.0))
    heads = int(site.module.num_heads)
    # [B * H, 1, cols] -> the first text's [1, H, 1, cols]
    full = alibi.reshape(-1, heads, 1, alibi.shape[-1])[:1].float() * beta
    return relative_to_own_position(full, int(hidden.shape[1]))


def relative_to_own_position(full: Any, rows: int) -> Any:
    """``full`` ([1, H, rows or 1, cols], the additive term of the scores) minus, in each query row, its value
    at the query's own key position (row i is position ``i + cols - rows``): the same softmax, and ALiBi in
    its canonical form ``-slope * distance``. Masked cells (a mask folded into ``full``) stay hugely negative."""
    import torch

    cols = full.shape[-1]
    full = full.float().expand(full.shape[0], full.shape[1], rows, cols)
    own = torch.arange(rows, device=full.device) + (cols - rows)
    diagonal = full.gather(-1, own.view(1, 1, rows, 1).expand(full.shape[0], full.shape[1], rows, 1))
    return full - diagonal
