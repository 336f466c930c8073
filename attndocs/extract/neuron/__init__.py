"""Query and key vectors for the neuron view, captured with forward hooks and checked against the attention.

``neuron_capture(model)`` picks the adapter for the model's family (one module in this package per
family) and returns a context manager whose hooks record, during one forward pass, the query and key
vectors each attention layer actually multiplied; ``capture.sections()`` hands them back per section.
``self_check`` recomputes the attention from them with numpy alone, so a caller can refuse vectors that
do not reproduce what the model returned. See docs/developer/neuron-adapters.md.

Importing this package imports numpy only; torch is touched when a capture runs.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from .base import NeuronCapture, SectionQK, Site, Unsupported

__all__ = ["ADAPTERS", "NeuronCapture", "SectionQK", "Site", "Unsupported", "neuron_capture", "self_check"]

# transformers model_type -> adapter module in this package. Each adapter covers the model types whose
# attention classes share one forward (and each has a test in tests/test_neuron.py).
ADAPTERS: dict[str, str] = {
    "bert": "bert",
    "roberta": "bert",
    "xlm-roberta": "bert",
    "electra": "bert",
    "distilbert": "distilbert",
    "gpt2": "gpt2",
    "llama": "llama",
    "mistral": "llama",
    "qwen2": "llama",
    "qwen3": "llama",
    "t5": "t5",
    "mt5": "t5",
    "bart": "bart",
    "mbart": "bart",
    "marian": "bart",
}


def neuron_capture(model: Any) -> NeuronCapture:
    """A capture for ``model`` (a loaded transformers model). Never raises: without an adapter, or when
    the adapter cannot capture this model exactly, ``capture.reason`` says why and it captures nothing."""
    try:
        model_types = _model_types(model)
        for model_type in model_types:
            if model_type not in ADAPTERS:
                return NeuronCapture(reason=f"no neuron adapter for model type '{model_type}'")
        order = {id(module): i for i, (_, module) in enumerate(model.named_modules())}
        sites: list[Site] = []
        for adapter_name in dict.fromkeys(ADAPTERS[t] for t in model_types):
            adapter = importlib.import_module(f"{__name__}.{adapter_name}")
            found = adapter.sites(model)
            if not found:
                return NeuronCapture(
                    reason=f"the {adapter_name} neuron adapter found none of the attention modules it knows in this "
                    f"'{'/'.join(model_types)}' model (custom attention code?)"
                )
            sites.extend(found)
        sites.sort(key=lambda site: order[id(site.module)])
        return NeuronCapture(sites)
    except Unsupported as exc:
        return NeuronCapture(reason=str(exc))
    except Exception as exc:  # an adapter meeting a model it did not expect must not break extraction
        return NeuronCapture(reason=f"the neuron adapter could not read this model: {type(exc).__name__}: {exc}")


def _model_types(model: Any) -> list[str]:
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if not isinstance(model_type, str) or not model_type:
        raise Unsupported(
            f"no neuron adapter for {type(model).__name__}: it has no transformers config with a model type"
        )
    if model_type == "encoder-decoder":
        # EncoderDecoderModel (bert2bert ...): each half is captured by its own family's adapter.
        return list(
            dict.fromkeys(getattr(getattr(config, part, None), "model_type", "?") for part in ("encoder", "decoder"))
        )
    return [model_type]


def self_check(
    attention: np.ndarray,
    query: np.ndarray,
    key: np.ndarray,
    bias: np.ndarray | None,
    scale: float,
    causal: bool,
) -> float:
    """Max abs difference between ``attention`` and softmax(scale * q @ k.T + bias + causal mask), in numpy.

    ``attention`` is ``[L, H, rows, cols]``, ``query`` ``[L, H, rows, d]``, ``key`` ``[L, H, cols, d]`` and
    ``bias`` ``[L, H, rows, cols]`` (or anything that broadcasts to it) or None. With ``causal``, row i sees
    key j only when ``j <= i + cols - rows`` (the usual lower triangle when rows == cols). Returns ``inf``
    when the shapes do not fit together or anything is not finite, so a failed capture can never pass.
    """
    attention = np.asarray(attention)
    query = np.asarray(query)
    key = np.asarray(key)
    if attention.ndim != 4 or query.ndim != 4 or key.ndim != 4:
        return float("inf")
    layers, heads, rows, cols = attention.shape
    if (
        query.shape[:3] != (layers, heads, rows)
        or key.shape[:3] != (layers, heads, cols)
        or query.shape[3] != key.shape[3]
    ):
        return float("inf")
    if bias is not None:
        bias = np.asarray(bias)
        try:
            bias = np.broadcast_to(bias, attention.shape)
        except ValueError:
            return float("inf")
    hidden = None
    if causal:
        hidden = np.arange(cols)[None, :] > np.arange(rows)[:, None] + (cols - rows)
    worst = 0.0
    # One layer at a time in float64: bounded memory, and the check's own rounding stays far below 1e-4.
    for layer in range(layers):
        scores = scale * np.einsum("hrd,hcd->hrc", query[layer].astype(np.float64), key[layer].astype(np.float64))
        if bias is not None:
            scores = scores + bias[layer].astype(np.float64)
        if hidden is not None:
            scores = np.where(hidden, -np.inf, scores)
        scores = scores - scores.max(axis=-1, keepdims=True)
        weights = np.exp(scores)
        weights /= weights.sum(axis=-1, keepdims=True)
        diff = np.abs(weights - attention[layer].astype(np.float64))
        if not np.all(np.isfinite(diff)):
            return float("inf")
        worst = max(worst, float(diff.max()) if diff.size else 0.0)
    return worst
