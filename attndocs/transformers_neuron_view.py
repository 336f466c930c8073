"""Stand-in for ``bertviz.transformers_neuron_view``: the stock transformers classes, under BertViz's names.

BertViz's neuron view needs forked copies of old BERT, GPT-2 and RoBERTa code that return
query and key vectors. attndocs captures those vectors with hooks from the stock classes,
so here ``BertModel``, ``BertTokenizer``, ``GPT2Model``, ``GPT2Tokenizer``, ``RobertaModel``
and ``RobertaTokenizer`` (and their configs) are simply ``transformers.BertModel`` and so
on: a BertViz notebook runs with only its import lines changed. Loading them here changes
nothing in them (a model loaded with sdpa attention is switched to eager when the view
runs). Any other name BertViz's fork exports is an error that says what to load instead.
transformers is imported on first use of a name, not when this module is imported.
"""

from __future__ import annotations

from typing import Any

from .errors import ModelError

# The names BertViz's neuron-view notebooks and README import, served as stock classes.
STOCK_NAMES: tuple[str, ...] = (
    "BertConfig",
    "BertModel",
    "BertTokenizer",
    "GPT2Config",
    "GPT2Model",
    "GPT2Tokenizer",
    "RobertaConfig",
    "RobertaModel",
    "RobertaTokenizer",
)

__all__ = list(STOCK_NAMES)


class ForkedClassError(ModelError, ImportError):
    """A name of BertViz's forked model code that attndocs does not provide.

    An ImportError, so ``from attndocs.transformers_neuron_view import XLNetModel`` fails
    with this message rather than a bare "cannot import name".
    """


def __getattr__(name: str) -> Any:
    if name in STOCK_NAMES:
        import transformers

        value = getattr(transformers, name)
        globals()[name] = value
        return value
    if name.startswith("_"):
        # Probes for private and dunder names (pickle, doctest, IPython's display hooks) are
        # not a request for a class, and hasattr() must keep answering False for them.
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    raise ForkedClassError(
        f"attndocs.transformers_neuron_view has no {name}: attndocs needs no forked model classes",
        f"use transformers.{name} if it exists (a model loaded with from_pretrained(..., attn_implementation='eager')) "
        f"and its stock tokenizer; here only {', '.join(STOCK_NAMES)} are provided",
    )


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(STOCK_NAMES))
