"""Neuron adapter for BERT-style self and cross attention: BERT, RoBERTa, XLM-RoBERTa, ELECTRA, bert2bert.

Each attention module projects with two ``nn.Linear`` layers, ``query`` and ``key``; the hooks keep their
outputs. A cross-attention module's ``key`` runs on the encoder's hidden states, so the same hooks give
the encoder-side keys. Scores are ``q.k / sqrt(d)`` plus the padding/causal mask only.
"""

from __future__ import annotations

from typing import Any

from .base import Site, Source, Unsupported, default_scale, find_modules, section_of

_FAMILIES = ("Bert", "Roberta", "XLMRoberta", "Electra")
# transformers 5 has separate cross-attention classes; 4.x reused the self-attention class for both.
ATTENTION_CLASSES = frozenset(f"{family}{kind}Attention" for family in _FAMILIES for kind in ("Self", "Cross"))


def sites(model: Any) -> list[Site]:
    found = []
    for name, module in find_modules(model, ATTENTION_CLASSES):
        position_type = getattr(module, "position_embedding_type", "absolute")
        if position_type not in (None, "absolute") or hasattr(module, "distance_embedding"):
            # transformers 4.x added a learned relative-position term inside the scores; q.k alone is not the
            # attention then. (transformers 5 dropped that option: such models compute plain q.k.)
            raise Unsupported(
                f"the neuron view does not support position_embedding_type='{position_type}' "
                "(relative position scores inside the attention)"
            )
        cross = "Cross" in type(module).__name__ or name.split(".")[-2:-1] == ["crossattention"]
        decoder = bool(
            getattr(module, "is_decoder", False) or getattr(getattr(module, "config", None), "is_decoder", False)
        )
        head_dim = int(module.attention_head_size)
        found.append(
            Site(
                section=section_of(cross=cross, decoder=decoder),
                module=module,
                query_source=Source(module.query),
                key_source=Source(module.key),
                head_dim=head_dim,
                scale=default_scale(module, head_dim),
            )
        )
    return found
