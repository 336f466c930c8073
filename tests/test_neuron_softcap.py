"""Gemma 2's logit soft-capping and every family's window masks, from capture to the page's payload.

Gemma 2 scores ``cap * tanh(s * q.k / cap)`` and then adds its (sliding-window) mask: the capture keeps the
cap, the self-check applies it on every layer and head, the record and the payload carry it as one number.
Window masks (Gemma, Mistral, ModernBERT's local layers) are recorded as one width per layer; the payload
ships those widths, not the ``[L, H, n, n]`` bias they equal. Tiny random models, built from configs here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attndocs.extract.neuron import check_section, neuron_capture, self_check
from attndocs.options import FigureOptions
from attndocs.payload import build_payload, window_hidden
from attndocs.record import AttentionRecord, RecordFormatError

TOLERANCE = 1e-4
VOCAB = 96
LENGTH = 19
WINDOW = 5
# A cap this low bends nearly every score of a peaked random model: tanh is far from linear here.
CAP = 2.0
GEMMA2: dict[str, Any] = {
    "vocab_size": VOCAB,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "query_pre_attn_scalar": 24,
    "sliding_window": WINDOW,
    "initializer_range": 0.2,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
}


def _gemma2(**overrides: Any) -> Any:
    import torch
    import transformers

    config = transformers.AutoConfig.for_model("gemma2", **{**GEMMA2, **overrides})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    return model.eval()


def _forward(model: Any) -> tuple[Any, Any]:
    import torch

    ids = torch.randint(3, VOCAB, (2, LENGTH), generator=torch.Generator().manual_seed(1))
    capture = neuron_capture(model)
    assert capture.reason is None, capture.reason
    with torch.inference_mode(), capture:
        outputs = model(input_ids=ids, output_attentions=True)
    assert capture.errors == {}
    return capture.tensors()["decoder"], torch.stack(outputs.attentions, dim=1)


@pytest.mark.parametrize("cap", [CAP, 50.0])
def test_soft_capped_gemma2_is_reproduced_on_every_layer_and_head(cap: float) -> None:
    section, attention = _forward(_gemma2(attn_logit_softcapping=cap))
    assert section.softcap == cap
    assert section.windows == [WINDOW, None]  # Gemma 2 alternates: sliding, full
    errors = check_section(attention, section)
    assert max(errors) <= TOLERANCE, errors
    host = section.to_numpy()
    assert host.softcap == cap and host.windows == [WINDOW, None]
    for b in range(2):
        bias = None if host.bias is None else host.bias[b]
        error = self_check(attention[b].numpy(), host.query[b], host.key[b], bias, host.scale, True, softcap=cap)
        assert error <= TOLERANCE, (b, error)


def test_without_the_cap_the_same_vectors_do_not_reproduce_the_attention() -> None:
    section, attention = _forward(_gemma2(attn_logit_softcapping=CAP))
    assert min(check_section(attention, dataclasses.replace(section, softcap=None))) > 0.01
    # ... and a cap the model did not use fails too: the check applies exactly the cap it is given.
    assert min(check_section(attention, dataclasses.replace(section, softcap=2 * CAP))) > 0.01


def test_a_gemma2_without_soft_capping_records_no_cap() -> None:
    section, attention = _forward(_gemma2(attn_logit_softcapping=None))
    assert section.softcap is None
    assert max(check_section(attention, section)) <= TOLERANCE


# -- extraction, record, payload ---------------------------------------------------------------
TEXT = "The cat sat on the mat, and the dog lay on the rug beside the door."


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Callable[[str], Path]) -> Any:
    import transformers

    return transformers.AutoTokenizer.from_pretrained(tiny_model_dir("llama"))


@pytest.fixture(scope="module")
def gemma2_record(tokenizer: Any) -> AttentionRecord:
    from attndocs.extract import extract_from_model

    ids = {"vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    return extract_from_model(_gemma2(attn_logit_softcapping=CAP, **ids), tokenizer, TEXT, qk=True)


def test_extraction_keeps_the_cap_and_the_window_widths(gemma2_record: AttentionRecord) -> None:
    record = gemma2_record
    assert record.neuron["available"], record.neuron
    assert record.neuron["max_error"]["decoder"] <= TOLERANCE
    section = record.sections["decoder"]
    n = section.attention.shape[-1]
    assert n > WINDOW + 3  # the window hides keys in this text
    assert section.softcap == CAP and section.windows == [WINDOW, None]
    # The record's own contract, in numpy: softmax(cap * tanh(s * q.k / cap) + bias + causal mask).
    assert self_check(section.attention, section.query, section.key, section.bias, section.scale, True, softcap=CAP) <= TOLERANCE
    # Both forms of the file keep both, and give the same back.
    for again in (AttentionRecord.from_bytes(record.to_bytes()), record.as_cached(),
                  AttentionRecord.from_bytes(record.to_cache_bytes())):
        assert again.sections["decoder"].softcap == CAP
        assert again.sections["decoder"].windows == [WINDOW, None]


def test_payload_ships_the_cap_and_the_widths_not_the_window_bias(gemma2_record: AttentionRecord) -> None:
    record = gemma2_record.as_cached()
    payload = build_payload(record, FigureOptions(view="neuron"))
    info = json.loads(payload.header_json())["sections"]["decoder"]
    assert info["softcap"] == CAP and info["windows"] == [WINDOW, None]
    assert "bias" not in info["blocks"]
    # Without the widths (a record cached before they were kept) the same mask ships as a bias.
    plain = dataclasses.replace(record.sections["decoder"], windows=None)
    older = dataclasses.replace(record, sections={"decoder": plain})
    old_info = json.loads(build_payload(older, FigureOptions(view="neuron")).header_json())["sections"]["decoder"]
    assert "bias" in old_info["blocks"] and "windows" not in old_info


def test_window_hidden_is_the_models_own_mask(gemma2_record: AttentionRecord) -> None:
    """The rule the page masks by (payload.window_hidden, mirrored in 50-neuron.js) is the one the bias the
    model's mask came from holds: -inf exactly where it hides a key."""
    section = gemma2_record.sections["decoder"]
    n = section.attention.shape[-1]
    hidden = window_hidden(n, n, WINDOW, True)
    assert hidden.sum() > 0
    for head in range(section.heads):
        np.testing.assert_array_equal(np.isneginf(section.bias[0, head]), hidden)
        assert np.all(section.bias[1, head] == 0)
    # Bidirectional (ModernBERT): more than `width` away on either side.
    np.testing.assert_array_equal(window_hidden(6, 6, 2, False), np.abs(np.subtract.outer(range(6), range(6))) > 2)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("softcap", -1.0, "soft-capping"), ("softcap", float("nan"), "soft-capping"), ("windows", [5], "windows"),
     ("windows", [5, "x"], "windows"), ("windows", [True, None], "windows")],
)
def test_a_record_with_a_bad_cap_or_windows_is_refused(gemma2_record: AttentionRecord, field: str, value: Any, message: str) -> None:
    section = dataclasses.replace(gemma2_record.sections["decoder"], **{field: value})
    record = dataclasses.replace(gemma2_record, sections={"decoder": section})
    with pytest.raises(RecordFormatError, match=message):
        record.check()


def _decoded_bias(record: AttentionRecord, name: str) -> Any:
    from attndocs.payload import decode_body, decode_qk

    payload = build_payload(record, FigureOptions(view="neuron"))
    return payload, decode_qk(payload.header, decode_body(payload.header, payload.encoded), name)["bias"]


def test_the_shipped_widths_decode_to_the_recorded_window_bias(gemma2_record: AttentionRecord, tokenizer: Any,
                                                               tiny_model_dir: Callable[[str], Path]) -> None:
    import torch
    import transformers

    from attndocs.extract import extract_from_model

    payload, bias = _decoded_bias(gemma2_record.as_cached(), "decoder")
    np.testing.assert_array_equal(bias, gemma2_record.sections["decoder"].bias)
    # ModernBERT: bidirectional local layers between global ones.
    bert = transformers.AutoTokenizer.from_pretrained(tiny_model_dir("bert"))
    config = transformers.ModernBertConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, global_attn_every_n_layers=3,
        local_attention=2 * WINDOW, vocab_size=len(bert), pad_token_id=bert.pad_token_id, cls_token_id=bert.cls_token_id,
        sep_token_id=bert.sep_token_id, bos_token_id=bert.cls_token_id, eos_token_id=bert.sep_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = transformers.AutoModel.from_config(config, attn_implementation="eager").eval()
    record = extract_from_model(model, bert, TEXT, qk=True)
    section = record.sections["encoder"]
    assert record.neuron["available"] and section.windows == [None, WINDOW, WINDOW]
    payload, bias = _decoded_bias(record.as_cached(), "encoder")
    assert "bias" not in payload.header["sections"]["encoder"]["blocks"]
    np.testing.assert_array_equal(bias, section.bias)
    # The same figure with the bias shipped (no widths) is larger: the widths are what replaces it.
    older = dataclasses.replace(record, sections={"encoder": dataclasses.replace(section, windows=None)}).as_cached()
    assert len(build_payload(older, FigureOptions(view="neuron")).encoded) > len(payload.encoded)


def test_a_text_no_longer_than_the_window_keeps_the_widths_and_needs_no_bias(tokenizer: Any) -> None:
    from attndocs.extract import extract_from_model

    ids = {"vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    model = _gemma2(attn_logit_softcapping=CAP, sliding_window=64, **ids)
    record = extract_from_model(model, tokenizer, TEXT, qk=True)
    section = record.sections["decoder"]
    assert record.neuron["available"] and section.bias is None and section.windows == [64, None]
    payload, bias = _decoded_bias(record.as_cached(), "decoder")
    assert bias is None and payload.header["sections"]["decoder"]["windows"] == [64, None]
