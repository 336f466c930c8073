"""Neuron adapter for DeBERTa-v2 and DeBERTa-v3 (model type ``deberta-v2``): plain q.k only.

DeBERTa's disentangled attention scores each pair (i, j) as the sum of three terms, all divided by
``sqrt(d * n)`` (n = 1 + one per position term; 3 in released checkpoints):

* content-to-content: ``q_i . k_j`` (the ``query_proj`` / ``key_proj`` outputs);
* content-to-position (``c2p``): ``q_i . k_pos[delta(i, j)]``, the query against a projected
  relative-position embedding;
* position-to-content (``p2c``): ``k_j . q_pos[-delta(i, j)]``, the key against one.

The two position terms depend on the text (they contain q and k), so they are not an additive bias the
record could store once per model, and the view's q.k score alone is not the score the model used. A model
with ``relative_attention`` and a position term in ``pos_att_type`` (every released DeBERTa-v2/v3) is
therefore refused with that reason: its attention is shown, its neuron view is withheld. Without them
(``relative_attention=False``, or no ``c2p`` / ``p2c``) the score is ``q.k / sqrt(d * n)`` plus the padding
mask, and the hooks keep ``query_proj`` / ``key_proj``; n still counts the listed terms, as the model's
``scale_factor`` does, even where they are switched off.
"""

from __future__ import annotations

from typing import Any

from .base import Site, Source, Unsupported, find_modules

ATTENTION_CLASSES = frozenset({"DisentangledSelfAttention"})
_MODULE = "transformers.models.deberta_v2."

WITHHELD = (
    "DeBERTa-v2 disentangled attention adds {terms} scores to q.k (the query or key against a projected "
    "relative-position embedding, all terms divided by sqrt({factor}d)); they depend on the text, so "
    "the neuron view's q.k score is not the score the model used"
)


def sites(model: Any) -> list[Site]:
    found = []
    for _, module in find_modules(model, ATTENTION_CLASSES):
        if not type(module).__module__.startswith(_MODULE):  # DeBERTa v1 has a class of the same name
            continue
        pos_att_type = list(getattr(module, "pos_att_type", None) or [])
        terms = [name for name in ("c2p", "p2c") if name in pos_att_type]
        factor = 1 + len(terms)
        if getattr(module, "relative_attention", False) and terms:
            names = {"c2p": "content-to-position (c2p)", "p2c": "position-to-content (p2c)"}
            raise Unsupported(WITHHELD.format(terms=" and ".join(names[t] for t in terms), factor=factor))
        head_dim = int(module.attention_head_size)
        found.append(
            Site(
                section="encoder",
                module=module,
                query_source=Source(module.query_proj),
                key_source=Source(module.key_proj),
                head_dim=head_dim,
                scale=float(head_dim * factor) ** -0.5,  # the model divides by sqrt(d * scale_factor)
            )
        )
    return found
