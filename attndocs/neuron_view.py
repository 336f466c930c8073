"""BertViz's ``bertviz.neuron_view`` as a drop-in: ``from attndocs.neuron_view import show``.

This module is also the neuron view itself: ``attndocs.neuron_view`` is callable exactly as
:func:`attndocs.notebook.neuron_view` (``attndocs.neuron_view(model, tokenizer, text)``), so
``from attndocs import neuron_view`` and ``from attndocs.neuron_view import show`` both work,
in one process, in either order. (Importing a submodule always rebinds the package's
attribute of that name to the module; making the module callable is what lets one name
serve both uses, instead of one silently replacing the other.)
"""

from __future__ import annotations

import inspect
import sys
import types
from typing import Any

from .errors import InputError, ModelError, OptionError
from .notebook import AttentionHTML

# BertViz's model_type values, and the config.model_type each one names.
MODEL_TYPES: tuple[str, ...] = ("bert", "gpt2", "roberta")


def show(
    model: Any,
    model_type: str,
    tokenizer: Any,
    sentence_a: str,
    sentence_b: str | None = None,
    display_mode: str = "dark",
    layer: int | None = None,
    head: int | None = None,
    html_action: str = "view",
) -> AttentionHTML | None:
    """BertViz's ``neuron_view.show``, same arguments in the same order, with stock transformers classes.

    ``model`` is a transformers model (``BertModel``, ``GPT2Model``, ``RobertaModel``, or any
    family attndocs supports, loaded however you like: a model loaded with sdpa attention is
    switched to eager), ``tokenizer`` its stock tokenizer. ``model_type`` ('bert', 'gpt2' or
    'roberta', or the model's own ``config.model_type``) is checked against the model and
    otherwise unused: query and key vectors are captured with hooks for every family, so
    BertViz's forked model classes are not needed (passing one is an error that says what
    to load instead). ``sentence_b`` adds a second sentence; ``layer`` and ``head`` choose
    what opens first; ``display_mode`` is 'dark' (BertViz's default), 'light' or 'auto';
    ``html_action`` is 'view' (display in Jupyter) or 'return' (an object whose ``.data``
    is one self-contained HTML page).
    """
    from .notebook import neuron_view as draw

    _check_not_forked(model, "model")
    _check_not_forked(tokenizer, "tokenizer")
    _check_model_type(model, model_type)
    if not isinstance(sentence_a, str) or not sentence_a.strip():
        raise InputError("sentence_a is required", "pass the text to show, e.g. show(model, 'bert', tokenizer, 'The cat sat on the mat')")
    if sentence_b is not None and not isinstance(sentence_b, str):
        raise InputError(f"sentence_b must be a string or None, not {type(sentence_b).__name__}")
    if sentence_b:
        _check_pair(model)
    return draw(model, tokenizer, sentence_a, sentence_b or None, layer, head, display_mode=display_mode, html_action=html_action)


def _check_not_forked(obj: Any, what: str) -> None:
    module = type(obj).__module__ or ""
    if module == "bertviz" or module.startswith("bertviz."):
        name = type(obj).__name__
        raise ModelError(
            f"the {what} is BertViz's forked {name}; attndocs needs no forked classes",
            f"load transformers.{name}.from_pretrained(...) instead (or attndocs.transformers_neuron_view.{name})",
        )


def _check_model_type(model: Any, model_type: Any) -> None:
    config = getattr(model, "config", None)
    actual = getattr(config, "model_type", None)
    accepted = list(MODEL_TYPES) + ([actual] if isinstance(actual, str) and actual not in MODEL_TYPES else [])
    listed = ", ".join(repr(t) for t in accepted)
    if not isinstance(model_type, str) or model_type not in accepted:
        raise OptionError(f"model_type must be one of {listed}, not {model_type!r}", f"this model's config says {actual!r}")
    if actual is not None and model_type != actual:
        raise OptionError(
            f"model_type is {model_type!r} but the model is a {actual!r} model",
            f"pass model_type={actual!r} (attndocs reads query and key vectors from any model; model_type is only checked)",
        )


def _check_pair(model: Any) -> None:
    config = getattr(model, "config", None)
    if not hasattr(config, "to_dict"):
        return  # not a transformers model: the extractor says what is wrong with it
    from .models.resolve import family_of

    kind, model_type = family_of(config.to_dict())
    if kind != "encoder":
        raise InputError(
            f"sentence_b needs an encoder model such as BERT or RoBERTa, but this {model_type!r} model is {kind}",
            "leave sentence_b out (BertViz refuses sentence pairs for GPT-2 too)",
        )


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`attndocs.notebook.neuron_view`."""

    def __call__(self, *args: Any, **kwargs: Any) -> AttentionHTML | None:
        from .notebook import neuron_view

        return neuron_view(*args, **kwargs)


def _signature() -> inspect.Signature:
    from .notebook import neuron_view

    return inspect.signature(neuron_view)


sys.modules[__name__].__class__ = _CallableModule
__signature__ = _signature()
__all__ = ["show", "MODEL_TYPES"]
