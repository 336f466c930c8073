"""Neuron adapter for the Llama family (Llama, Mistral, Qwen2, Qwen3; SmolLM2 is a Llama).

The hooks keep the ``q_proj`` / ``k_proj`` outputs (or ``q_norm`` / ``k_norm``, which Qwen3 applies per
head before the rotation) and the ``position_embeddings`` (cos, sin) the decoder layer passed to the
attention module, i.e. the rotary angles of the positions the model actually used. After the forward the
adapter rotates q and k with the model's own ``apply_rotary_pos_emb`` (looked up in the module that
defines the attention class) and repeats each key head ``num_key_value_groups`` times, as ``repeat_kv``
does for grouped-query attention.

Sliding windows (Mistral, Qwen2/Qwen3 with ``use_sliding_window``, and the Phi-3 and Gemma adapters that
build on this one): a layer with a window of ``w`` lets query ``i`` see key ``j`` only when
``i - w < j <= i`` (transformers' ``sliding_window_overlay``). The part beyond the causal mask is an
additive bias of ``-inf`` on the keys that fell out of the window, ``[1, 1, rows, cols]`` (the same for
every head and text), one tensor shared by every layer with the same window, so a record stores it once.
Texts no longer than the window get no bias at all: the window hides nothing there. Each site also keeps
its window's width (``Site.window``), which the record keeps per layer, so the page can say what each layer
masks and build the mask itself instead of shipping the bias.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .base import Site, Source, Unsupported, default_scale, find_modules, model_rotation, rotate_as_called

ATTENTION_CLASSES = frozenset({"LlamaAttention", "MistralAttention", "Qwen2Attention", "Qwen3Attention"})


def sites(model: Any) -> list[Site]:
    return rotary_sites(model, ATTENTION_CLASSES)


def rotary_sites(
    model: Any, classes: Iterable[str], *, fused: bool = False, norm_heads_first: bool = False
) -> list[Site]:
    """One decoder site per attention module of ``classes``: rotary q and k, grouped key heads, and the
    sliding window (if any) as a bias. ``fused``: q, k and v come out of one ``qkv_proj`` (Phi-3).
    ``norm_heads_first``: ``q_norm`` / ``k_norm`` run on ``[B, H, n, d]`` (Gemma 3), not ``[B, n, H, d]``."""
    found = []
    windows = WindowBiases()
    for _, module in find_modules(model, frozenset(classes)):
        rotate = model_rotation(module)
        head_dim = int(module.head_dim)
        window = sliding_window(module)
        if fused:
            config = module.config
            query_width = int(config.num_attention_heads) * head_dim
            key_width = int(config.num_key_value_heads) * head_dim
            query_source = Source(module.qkv_proj, slice(0, query_width))
            key_source = Source(module.qkv_proj, slice(query_width, query_width + key_width))
        else:
            normed = hasattr(module, "q_norm") and hasattr(module, "k_norm")
            query_source = Source(module.q_norm if normed else module.q_proj)
            key_source = Source(module.k_norm if normed else module.k_proj)
        found.append(
            Site(
                section="decoder",
                module=module,
                query_source=query_source,
                key_source=key_source,
                head_dim=head_dim,
                scale=default_scale(module, head_dim),
                kv_groups=int(getattr(module, "num_key_value_groups", 1)),
                transform=_rotary(rotate, window, windows, norm_heads_first),
                kwarg_names=("position_embeddings",),
                window=window,
            )
        )
    return found


def sliding_window(module: Any) -> int | None:
    """The window of this attention layer's mask, or None for full causal attention.

    Qwen2/Qwen3 and Gemma decide per layer (``layer_types``) and keep the answer on the module; Mistral
    and Phi-3 mask every layer with ``config.sliding_window`` when it is set.
    """
    if "sliding_window" in vars(module):
        window = module.sliding_window
    else:
        window = getattr(getattr(module, "config", None), "sliding_window", None)
    if window is None:
        return None
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise Unsupported(
            f"{type(module).__name__} has a sliding window of {window!r}, not a positive number of tokens"
        )
    return window


class WindowBiases:
    """The -inf bias of each (window, rows, cols, device), made once per capture and shared by its layers."""

    def __init__(self) -> None:
        self._made: dict[tuple[Any, ...], Any] = {}

    def get(self, window: int, rows: int, cols: int, device: Any) -> Any:
        """``[1, 1, rows, cols]`` float32: -inf where key j lies beyond the window of query i, else 0; None when
        the window hides nothing. The last query aligns with the last key (as the causal mask does)."""
        import torch

        offset = cols - rows
        if rows == 0 or cols == 0 or rows - 1 + offset - window < 0:
            return None  # even the last query sees back to key 0
        key = (window, rows, cols, str(device))
        if key not in self._made:
            query_pos = torch.arange(rows, device=device)[:, None] + offset
            key_pos = torch.arange(cols, device=device)[None, :]
            bias = torch.zeros((1, 1, rows, cols), dtype=torch.float32, device=device)
            bias[0, 0].masked_fill_(key_pos <= query_pos - window, -torch.inf)
            self._made = {key: bias}  # one text length per forward pass: keep only the latest
        return self._made[key]


def _rotary(rotate: Any, window: int | None, windows: WindowBiases, heads_first: bool = False) -> Any:
    def transform(site: Site, query: Any, key: Any, kwargs: dict[str, Any]) -> tuple[Any, Any]:
        if heads_first:
            # The hooked norm output already was [B, H, n, d]; base's split read it as [B, n, H, d].
            query, key = query.transpose(1, 2), key.transpose(1, 2)
        # The window's bias goes on the site as a position bias would (NeuronCapture reads site.bias).
        site.own_bias = None if window is None else windows.get(window, query.shape[2], key.shape[2], query.device)
        return rotate_as_called(rotate, query, key, kwargs)

    return transform
