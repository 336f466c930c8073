"""Query and key vectors for the neuron view, captured with forward hooks and checked against the attention.

``neuron_capture(model)`` picks the adapter for the model's family (one module in this package per
family) and returns a context manager whose hooks record, during one forward pass, the query and key
vectors each attention layer actually multiplied; ``capture.tensors()`` hands them back per section as
torch tensors on the model's device, ``capture.sections()`` as numpy arrays. ``check_section``
recomputes the attention from the tensors where they are (torch, float32, one layer at a time), so
extraction can refuse vectors that do not reproduce what the model returned before anything is moved to
the host; ``self_check`` does the same for one text with numpy alone, as an independent reference.
See docs/developer/neuron-adapters.md.

Importing this package imports numpy only; torch is touched when a capture runs.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import NeuronCapture, SectionQK, SectionTensors, Site, Unsupported, float32_buffer

if TYPE_CHECKING:
    import torch

__all__ = [
    "ADAPTERS",
    "NeuronCapture",
    "SectionQK",
    "SectionTensors",
    "Site",
    "Unsupported",
    "check_section",
    "neuron_capture",
    "self_check",
]

# transformers model_type -> adapter module in this package. Each adapter covers the model types whose
# attention classes share one forward (and each has a test in tests/test_neuron.py).
ADAPTERS: dict[str, str] = {
    "bert": "bert",
    "roberta": "bert",
    "xlm-roberta": "bert",
    "electra": "bert",
    "distilbert": "distilbert",
    "gpt2": "gpt2",
    "gpt_neox": "gpt_neox",
    "opt": "opt",
    "bloom": "bloom",
    "falcon": "falcon",
    "mpt": "mpt",
    "llama": "llama",
    "mistral": "llama",
    "qwen2": "llama",
    "qwen3": "llama",
    "phi3": "phi3",
    "gemma2": "gemma",
    "gemma3_text": "gemma",
    "t5": "t5",
    "mt5": "t5",
    "bart": "bart",
    "mbart": "bart",
    "marian": "bart",
    "modernbert": "modernbert",
    "deberta-v2": "deberta",
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
    softcap: float | None = None,
) -> float:
    """Max abs difference between ``attention`` and softmax(scale * q @ k.T + bias + causal mask), in numpy.

    With ``softcap`` (Gemma 2) the scores are capped first: softmax(softcap * tanh(scale * q @ k.T / softcap)
    + bias + causal mask), as the model computes them.

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
        if softcap is not None:
            scores = softcap * np.tanh(scores / softcap)
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


# Query rows the self-check compares, at most, per text (see check_section).
CHECK_ROWS = 64


def check_section(attention: torch.Tensor | Sequence[torch.Tensor], section: SectionTensors) -> list[float]:
    """Max abs difference, per text of the batch, between the attention and softmax(scale * q @ k.T + bias + mask).
    A section with a ``softcap`` (Gemma 2) is checked against softmax(cap * tanh(scale * q @ k.T / cap) + bias + mask).

    ``attention`` is ``[B, L, H, rows, cols]`` (or a sequence of L ``[B, H, rows, cols]`` layers) on the device
    of ``section``'s tensors. The check runs there, in float32, one layer at a time over every text and head
    of the batch: its temporaries are two layer-sized buffers, never a float64 copy of the whole section. Results
    are collected on the device and read back in one synchronisation. A text whose check meets a non-finite
    value, and every text when the shapes do not fit together, gets ``inf``, so a failed capture never passes.
    float32 is enough: the model computed the same products in float32 (or less), and the check's own
    rounding (about 1e-7 on a probability) stays far below the 1e-4 tolerance.

    Every layer, head and key is checked; of a text longer than :data:`CHECK_ROWS` tokens, :data:`CHECK_ROWS`
    query rows spread evenly from the first to the last. The query and key vectors are captured by one code
    path for every position (a projection's output, a rotation by position), so an adapter that is wrong is
    wrong at every row, and rows spread over the whole text meet every mask (causal, sliding window) at every
    distance. This keeps the check's cost from growing with the square of the text: at 512 tokens, an eighth
    of the rows (on a CPU the whole check cost about a quarter of MiniLM's forward pass). Every query and key
    vector is still required to be finite.
    """
    import torch

    query, key = section.query, section.key
    batch, layers, heads, rows, _ = query.shape
    cols = key.shape[3]
    stacked = isinstance(attention, torch.Tensor)
    if stacked:
        given = attention.shape[1] if attention.dim() == 5 else -1
    else:
        given = len(attention)
    if given != layers or len(section.biases) != layers or tuple(key.shape[:3]) != (batch, layers, heads):
        return [math.inf] * batch
    if rows == 0 or cols == 0:
        return [0.0] * batch
    with torch.inference_mode():
        picked = None  # the query rows checked: all, or CHECK_ROWS of them, first and last included
        if rows > CHECK_ROWS:
            picked = torch.linspace(0, rows - 1, CHECK_ROWS, device=query.device).round_().long().unique()
        checked = rows if picked is None else len(picked)
        hidden = None
        if section.causal:
            # Row i sees key j only when j <= i + cols - rows (the last query aligns with the last key).
            hidden = torch.ones((rows, cols), dtype=torch.bool, device=query.device).triu_(cols - rows + 1)
            if picked is not None:
                hidden = hidden[picked]
        # Two layer-sized buffers for every layer: a fresh layer-sized tensor per step costs page faults on
        # a CPU (softmax into a fresh tensor took 7 ms a layer inside an extraction, 1.7 ms into a reused one).
        scores = float32_buffer((batch, heads, checked, cols), query.device)
        probs = float32_buffer((batch, heads, checked, cols), query.device)
        worst = []
        if picked is not None:
            # The rows left out are not compared, but a non-finite query vector anywhere fails its text.
            # A sum is finite exactly when every term is (in float64 no sum of float32 values overflows),
            # and takes a fifth of the time isfinite().all() does.
            finite = torch.isfinite(query.reshape(batch, -1).sum(dim=1, dtype=torch.float64))
            worst.extend(torch.where(finite, 0.0, math.inf).to(torch.float32).unbind())  # one per text, as below
        for layer in range(layers):
            expected = attention[:, layer] if stacked else attention[layer]
            if tuple(expected.shape) != (batch, heads, rows, cols):
                return [math.inf] * batch
            queries = query[:, layer]
            if picked is not None:
                expected, queries = expected.index_select(2, picked), queries.index_select(2, picked)
            # The scale goes on the query ([rows, d]), not on the scores ([rows, cols]): a pass over a
            # small tensor instead of a large one, and a rounding difference far below the tolerance.
            torch.matmul(queries * section.scale, key[:, layer].transpose(-1, -2), out=scores)
            if section.softcap is not None:  # Gemma 2: the score the model used is cap * tanh(score / cap)
                scores.div_(section.softcap).tanh_().mul_(section.softcap)
            bias = section.biases[layer]
            if bias is not None:
                bias = bias.to(scores.device)
                if picked is not None and bias.shape[-2] == rows:
                    bias = bias.index_select(-2, picked)
                scores.add_(bias)
            if hidden is not None:
                scores.masked_fill_(hidden, -math.inf)
            torch.softmax(scores, dim=-1, out=probs)
            probs.sub_(expected.to(probs.device))
            # The largest difference of either sign, text by text: aminmax over a text's whole layer reads
            # it once (abs then amax reads it twice and writes once; aminmax along a dim is slower still).
            # NaN propagates through aminmax and maximum, and fails the check.
            for b in range(batch):
                low, high = torch.aminmax(probs[b])
                worst.append(torch.maximum(high, low.neg()))
        if not worst:
            return [0.0] * batch
        errors = torch.stack(worst).view(-1, batch).amax(dim=0).tolist()  # the one synchronisation
    return [error if math.isfinite(error) else math.inf for error in errors]
