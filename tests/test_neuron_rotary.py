"""Neuron-view adapters for rotary families with more than Llama's attention: Mistral and Qwen2 with a sliding
window shorter than the text, Phi-3 (fused qkv_proj, partial or full rotary), Gemma 2 and Gemma 3 (query
pre-attention scalar, q/k norms, sliding and full layers; Gemma 2's tanh soft-capping: test_neuron_softcap.py). Tiny random
models are built from their configs here; every layer's and head's attention must be reproduced."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attndocs.extract.neuron import ADAPTERS, check_section, neuron_capture, self_check

TOLERANCE = 1e-4
VOCAB = 96
LENGTH = 19  # tokens per text, two texts per batch: longer than every window below
WINDOW = 5

COMMON: dict[str, Any] = {
    "vocab_size": VOCAB,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "initializer_range": 0.2,  # peaked attention: a wrong mask or rotation moves the weights a lot
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
}
GEMMA: dict[str, Any] = {**COMMON, "head_dim": 16, "query_pre_attn_scalar": 24}

# case -> (model_type, config overrides, the window of each layer (None: full causal attention)).
CASES: dict[str, tuple[str, dict[str, Any], list[int | None]]] = {
    "mistral": ("mistral", {"sliding_window": WINDOW}, [WINDOW, WINDOW]),
    # max_window_layers=1: layer 0 attends fully, layer 1 within the window.
    "qwen2": ("qwen2", {"use_sliding_window": True, "sliding_window": WINDOW, "max_window_layers": 1}, [None, WINDOW]),
    "phi3-partial-rotary": (
        "phi3",
        {"sliding_window": WINDOW, "partial_rotary_factor": 0.5},
        [WINDOW, WINDOW],
    ),
    "phi3": ("phi3", {"sliding_window": None}, [None, None]),
    "gemma2-no-softcap": (
        "gemma2",
        {**GEMMA, "sliding_window": WINDOW, "attn_logit_softcapping": None},
        [WINDOW, None],  # Gemma 2 alternates: sliding, full, ...
    ),
    "gemma3": (
        "gemma3_text",
        {**GEMMA, "sliding_window": WINDOW, "layer_types": ["sliding_attention", "full_attention"]},
        [WINDOW, None],
    ),
}


def _model(model_type: str, overrides: dict[str, Any]) -> Any:
    import torch
    import transformers

    settings = {**COMMON, **overrides}
    config = transformers.AutoConfig.for_model(model_type, **settings)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    return model.eval()


def _forward(model: Any, length: int = LENGTH) -> tuple[Any, Any, Any]:
    """(capture, section tensors, the model's attention [B, L, H, n, n]) for two random texts."""
    import torch

    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(3, VOCAB, (2, length), generator=generator)
    capture = neuron_capture(model)
    assert capture.reason is None, capture.reason
    with torch.inference_mode(), capture:
        outputs = model(input_ids=ids, output_attentions=True)
    assert capture.errors == {}
    return capture, capture.tensors()["decoder"], torch.stack(outputs.attentions, dim=1)


def _outside_window(length: int, window: int) -> np.ndarray:
    """True where key j fell out of query i's window (transformers: j > i - window is kept)."""
    i, j = np.arange(length)[:, None], np.arange(length)[None, :]
    return j <= i - window


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_layer_and_head_is_reproduced_with_the_window_as_a_bias(case: str) -> None:
    model_type, overrides, windows = CASES[case]
    assert model_type in ADAPTERS
    model = _model(model_type, overrides)
    _, section, attention = _forward(model)

    # The torch check extraction runs, over every layer, head and text ...
    errors = check_section(attention, section)
    assert len(errors) == 2 and max(errors) <= TOLERANCE, errors
    # ... and numpy's float64 reference, text by text, on the host copy.
    host = section.to_numpy()
    for b in range(2):
        bias = None if host.bias is None else host.bias[b]
        error = self_check(attention[b].numpy(), host.query[b], host.key[b], bias, host.scale, host.causal)
        assert error <= TOLERANCE, (b, error)

    # The bias is exactly the keys outside each layer's window (-inf), nothing on the full layers;
    # layers with the same window share one tensor, so a record stores it once.
    for layer, window in enumerate(windows):
        bias = section.biases[layer]
        if window is None:
            assert bias is None
            continue
        assert tuple(bias.shape) == (1, 1, LENGTH, LENGTH)
        hidden = _outside_window(LENGTH, window)
        values = bias[0, 0].numpy()
        assert np.all(np.isneginf(values[hidden])) and np.all(values[~hidden] == 0)
    windowed = [section.biases[layer] for layer, window in enumerate(windows) if window is not None]
    assert all(bias is windowed[0] for bias in windowed)


@pytest.mark.parametrize("case", [case for case, (_, _, windows) in CASES.items() if any(windows)])
def test_without_the_window_the_vectors_do_not_reproduce_the_attention(case: str) -> None:
    """The window is what the bias adds: with plain causal attention the same vectors fail the check."""
    model_type, overrides, _ = CASES[case]
    _, section, attention = _forward(_model(model_type, overrides))
    section.biases = [None] * len(section.biases)
    assert min(check_section(attention, section)) > 0.01


@pytest.mark.parametrize("case", ["mistral", "gemma3"])
def test_texts_no_longer_than_the_window_carry_no_bias(case: str) -> None:
    model_type, overrides, _ = CASES[case]
    _, section, attention = _forward(_model(model_type, overrides), length=WINDOW)
    assert section.biases == [None, None]
    assert max(check_section(attention, section)) <= TOLERANCE


def test_gemma_multiplies_q_dot_k_by_the_query_pre_attention_scalar_not_the_head_size() -> None:
    for model_type, overrides, _ in (CASES["gemma2-no-softcap"], CASES["gemma3"]):
        capture, section, _ = _forward(_model(model_type, overrides))
        assert section.scale == pytest.approx(GEMMA["query_pre_attn_scalar"] ** -0.5)
        assert section.scale != pytest.approx(GEMMA["head_dim"] ** -0.5)
        assert len(capture.sites) == COMMON["num_hidden_layers"]


def test_gemma3_keeps_the_normalised_vectors_its_rotation_used() -> None:
    """Gemma 3 normalises q and k per head on [B, H, n, d] before rotating them: every captured key vector
    has the RMS the norm gave it (1 with a fresh norm's weight; the rotation keeps lengths). Read with the
    heads and tokens swapped, the vectors would be rotated at the wrong positions and fail the self-check."""
    import torch

    model = _model(*CASES["gemma3"][:2])
    _, section, _ = _forward(model)
    # A fresh Gemma 3 RMSNorm has weight zero and multiplies by (1 + weight): every head vector has RMS 1.
    assert all(float(layer.self_attn.k_norm.weight.detach().abs().max()) == 0.0 for layer in model.model.layers)
    rms = section.key.pow(2).mean(dim=-1).sqrt()
    torch.testing.assert_close(rms, torch.ones_like(rms), atol=1e-3, rtol=0)


def test_bidirectional_gemma3_is_withheld() -> None:
    model = _model("gemma3_text", {**GEMMA, "use_bidirectional_attention": True})
    reason = neuron_capture(model).reason
    assert reason is not None and "bidirectional" in reason


# -- end to end: extraction keeps or withholds the vectors ------------------------------------------
TEXT = "The cat sat on the mat, and the dog lay on the rug beside the door."


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Callable[[str], Path]) -> Any:
    import transformers

    return transformers.AutoTokenizer.from_pretrained(tiny_model_dir("llama"))


def _extract(model_type: str, overrides: dict[str, Any], tokenizer: Any) -> Any:
    from attndocs.extract import extract_from_model

    ids = {"vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    model = _model(model_type, {**overrides, **ids})
    record = extract_from_model(model, tokenizer, TEXT, qk=True)
    assert record.sections["decoder"].attention.shape[-1] > WINDOW + 3  # the window hides keys in this text
    return record


@pytest.mark.parametrize("case", ["mistral", "phi3-partial-rotary", "gemma3"])
def test_extraction_keeps_the_vectors_and_the_window_bias(case: str, tokenizer: Any) -> None:
    model_type, overrides, windows = CASES[case]
    record = _extract(model_type, overrides, tokenizer)
    assert record.neuron["available"], record.neuron
    assert record.neuron["max_error"]["decoder"] <= TOLERANCE
    section = record.sections["decoder"]
    n = section.attention.shape[-1]
    assert section.bias is not None and section.bias.shape == (len(windows), COMMON["num_attention_heads"], n, n)
    for layer, window in enumerate(windows):
        expected = np.where(_outside_window(n, window), -np.inf, 0.0) if window else np.zeros((n, n))
        for head in range(COMMON["num_attention_heads"]):
            np.testing.assert_array_equal(section.bias[layer, head], expected)

