"""Neuron adapter for ModernBERT: fused ``Wqkv``, rotary embeddings, and local (sliding-window) layers.

Each attention module projects q, k and v with one ``nn.Linear``, ``Wqkv``, whose output holds them side
by side (``view(..., 3, heads, head_dim)``): the query is its first ``heads * head_dim`` columns, the key
the next. The hooks keep those columns and the ``position_embeddings`` (cos, sin) the encoder layer passed
to the attention module (local and global layers use different rotary bases); after the forward the
adapter rotates q and k with the model's own ``apply_rotary_pos_emb``. Scores are ``q.k / sqrt(d)``.

Global layers see every token. Local layers (``config.layer_types[i] == "sliding_attention"``, every layer
but each ``global_attn_every_n_layers``-th) see key j from query i only when ``|i - j| <= sliding_window``
(``config.sliding_window``, half of ``local_attention``). That window is the layer's additive term: 0
inside, ``-inf`` outside. It does not depend on the text, so every local layer of a pass shares one tensor
(a broadcast view over the heads, never a ``[H, n, n]`` copy on the device); global layers have none.
Every local site also keeps the width (``Site.window``): the record keeps it per layer, and the page builds
the window mask from it rather than shipping the bias.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Site, Source, Unsupported, find_modules, model_rotation, rotate_as_called

ATTENTION_CLASSES = frozenset({"ModernBertAttention"})


@dataclass(eq=False)
class WindowSite(Site):
    """A local layer's site: besides q and k, it builds the window term ``[1, H, n, n]`` (0 / -inf)."""

    heads: int = 1

    @property
    def has_bias(self) -> bool:
        return True

    def _finish(self) -> None:
        import torch

        length = self.raw["query"].shape[1] if "query" in self.raw else None
        super()._finish()
        if length is None:  # super() has already refused a layer whose projection did not run
            raise RuntimeError("the query projection did not run inside the attention module")
        device = self.store.query.device if self.store is not None and self.store.query is not None else None
        positions = torch.arange(length, device=device)
        outside = (positions[:, None] - positions[None, :]).abs() > (self.window or 0)
        term = torch.zeros((length, length), dtype=torch.float32, device=device).masked_fill_(outside, -torch.inf)
        self.own_bias = term.expand(1, self.heads, length, length)


def sites(model: Any) -> list[Site]:
    found: list[Site] = []
    first_local: WindowSite | None = None
    for _, module in find_modules(model, ATTENTION_CLASSES):
        rotate = model_rotation(module)
        config = module.config
        head_dim = int(module.head_dim)
        heads = int(config.num_attention_heads)
        width = heads * head_dim
        if module.Wqkv.out_features != 3 * width:
            raise Unsupported(
                f"ModernBERT's Wqkv gives {module.Wqkv.out_features} columns, not 3 x {heads} x {head_dim}"
            )
        common: dict[str, Any] = {
            "section": "encoder",
            "module": module,
            "query_source": Source(module.Wqkv, slice(0, width)),
            "key_source": Source(module.Wqkv, slice(width, 2 * width)),
            "head_dim": head_dim,
            "scale": float(head_dim) ** -0.5,  # the module passes scaling=head_dim**-0.5 to its attention function
            "transform": _rotary(rotate),
            "kwarg_names": ("position_embeddings",),
        }
        layer_type = config.layer_types[module.layer_idx]
        if layer_type == "sliding_attention":
            window = getattr(config, "sliding_window", None)
            if not isinstance(window, int) or window < 0:
                raise Unsupported(f"ModernBERT's local layers have no usable sliding_window (got {window!r})")
            if first_local is None:
                first_local = WindowSite(**common, window=window, heads=heads)
                found.append(first_local)
            else:
                # The same window, computed once per pass; each layer still records its width.
                found.append(Site(**common, bias_from=first_local, window=window))
        elif layer_type == "full_attention":
            found.append(Site(**common))
        else:
            raise Unsupported(f"ModernBERT layer type '{layer_type}' is unknown to the neuron adapter")
    return found


def _rotary(rotate: Any) -> Any:
    def transform(site: Site, query: Any, key: Any, kwargs: dict[str, Any]) -> tuple[Any, Any]:
        return rotate_as_called(rotate, query, key, kwargs)

    return transform
