"""Neuron view for ModernBERT (local and global layers) and DeBERTa-v2 (disentangled attention withheld).

Each family is a tiny random model built here from its config (hidden 32, 4 heads, eager attention), with
the vocabulary of the tiny BERT tokenizer from tests/tiny_models.py so that the extraction runs end to end.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from attndocs.extract import extract_from_model
from attndocs.extract.neuron import check_section, neuron_capture, self_check

TOLERANCE = 1e-4
WINDOW = 2  # ModernBERT local_attention=4: a local layer's query i sees keys j with |i - j| <= 2
# Longer than the window many times over, in the tiny WordPiece vocabulary.
LONG_TEXT = "The cat sat on the mat, and the dog lay on the rug while a small bird sang in the old tree outside."


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Any) -> Any:
    import transformers

    return transformers.AutoTokenizer.from_pretrained(tiny_model_dir("bert"))


def _special(tokenizer: Any) -> dict[str, int]:
    return {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.cls_token_id,
        "eos_token_id": tokenizer.sep_token_id,
    }


def _modernbert(tokenizer: Any, layers: int = 4) -> Any:
    import torch
    import transformers

    config = transformers.ModernBertConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        global_attn_every_n_layers=3,  # layers 0 and 3 global, 1 and 2 local
        local_attention=2 * WINDOW,
        cls_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id,
        **_special(tokenizer),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return transformers.AutoModel.from_config(config, attn_implementation="eager").eval()


def _deberta(tokenizer: Any, **options: Any) -> Any:
    import torch
    import transformers

    config = transformers.DebertaV2Config(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        **_special(tokenizer),
        **options,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return transformers.AutoModel.from_config(config, attn_implementation="eager").eval()


def _batch(tokenizer: Any) -> Any:
    """Two unpadded texts of equal length, both longer than the window."""
    import torch

    rows = [tokenizer(text)["input_ids"] for text in (LONG_TEXT, LONG_TEXT[::-1])]
    length = min(len(row) for row in rows)
    assert length > 4 * WINDOW
    return torch.tensor([row[:length] for row in rows])


def _capture(model: Any, ids: Any) -> tuple[Any, Any]:
    import torch

    capture = neuron_capture(model)
    assert capture.reason is None, capture.reason
    with torch.inference_mode(), capture:
        outputs = model(input_ids=ids, output_attentions=True)
    assert capture.errors == {}
    sections = capture.tensors()
    assert list(sections) == ["encoder"]
    return sections["encoder"], torch.stack(outputs.attentions, dim=1)


def _worst(section: Any, attention: Any) -> float:
    """The float32 check extraction runs and numpy's float64 reference, text by text; they must agree."""
    host = section.to_numpy()
    reference = max(
        self_check(
            attention[b].numpy(),
            host.query[b],
            host.key[b],
            None if host.bias is None else host.bias[b],
            host.scale,
            host.causal,
        )
        for b in range(attention.shape[0])
    )
    checked = check_section(attention, section)
    assert max(checked) == pytest.approx(reference, abs=1e-5), (checked, reference)
    return max(reference, *checked)


# -- ModernBERT -----------------------------------------------------------------------------------------
def test_modernbert_local_and_global_layers_reproduce_every_layer_and_head(tokenizer: Any) -> None:
    model = _modernbert(tokenizer)
    assert model.config.layer_types == ["full_attention", "sliding_attention", "sliding_attention", "full_attention"]
    ids = _batch(tokenizer)
    section, attention = _capture(model, ids)
    length = ids.shape[1]
    assert tuple(section.query.shape) == (2, 4, 4, length, 8) and tuple(section.key.shape) == (2, 4, 4, length, 8)
    assert section.scale == pytest.approx(8**-0.5) and not section.causal
    assert _worst(section, attention) <= TOLERANCE

    # The window is the local layers' additive term, one tensor for both; global layers have none.
    biases = section.biases
    assert biases[0] is None and biases[3] is None
    assert biases[1] is biases[2]
    distance = np.abs(np.arange(length)[:, None] - np.arange(length)[None, :])
    host = section.host_bias()
    assert host.shape == (4, 4, length, length)
    for layer in (1, 2):
        assert np.all(host[layer][:, distance <= WINDOW] == 0)
        assert np.all(np.isneginf(host[layer][:, distance > WINDOW]))
    assert not host[0].any() and not host[3].any()
    # The model itself attends nowhere outside the window in a local layer, and somewhere outside in a global one.
    outside = attention.numpy()[:, :, :, distance > WINDOW]
    assert np.all(outside[:, 1:3] == 0) and outside[:, 0].max() > 0


def test_modernbert_without_the_window_or_the_rotation_fails_the_check(tokenizer: Any) -> None:
    import dataclasses

    model = _modernbert(tokenizer)
    section, attention = _capture(model, _batch(tokenizer))
    no_window = dataclasses.replace(section, biases=[None] * len(section.biases))
    assert min(check_section(attention, no_window)) > 1e-2

    # q and k taken straight from Wqkv (no rotary embedding) do not give the model's attention either.
    capture = neuron_capture(model)
    for site in capture.sites:
        site.transform = None
    import torch

    with torch.inference_mode(), capture:
        model(input_ids=_batch(tokenizer), output_attentions=True)
    assert max(check_section(attention, capture.tensors()["encoder"])) > 1e-3


def test_modernbert_extraction_keeps_the_neuron_view_with_its_window(tokenizer: Any) -> None:
    model = _modernbert(tokenizer)
    record = extract_from_model(model, tokenizer, LONG_TEXT, qk=True)
    assert record.model_type == "modernbert" and record.kind == "encoder"
    assert record.neuron["available"] is True, record.neuron
    assert max(record.neuron["max_error"].values()) <= TOLERANCE
    section = record.sections["encoder"]
    length = len(tokenizer(LONG_TEXT)["input_ids"])
    assert section.attention.shape == (4, 4, length, length)
    assert section.bias is not None and np.isneginf(section.bias[1, 0, 0, -1]) and section.bias[0, 0, 0, -1] == 0


# -- DeBERTa-v2 -----------------------------------------------------------------------------------------
def test_deberta_v2_disentangled_attention_withholds_the_neuron_view_and_says_why(tokenizer: Any) -> None:
    # As released DeBERTa-v3 checkpoints are configured: both position terms, log buckets, shared keys.
    model = _deberta(
        tokenizer, relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=16, share_att_key=True
    )
    capture = neuron_capture(model)
    assert capture.sites == []
    reason = capture.reason or ""
    for words in (
        "disentangled",
        "content-to-position (c2p)",
        "position-to-content (p2c)",
        "sqrt(3d)",
        "not the score",
    ):
        assert words in reason, reason

    record = extract_from_model(model, tokenizer, LONG_TEXT, qk=True)
    assert record.neuron == {"available": False, "reason": reason}
    assert not record.has_qk
    # The attention itself is still there, as the model gave it.
    import torch

    ids = torch.tensor([tokenizer(LONG_TEXT)["input_ids"]])
    with torch.inference_mode():
        expected = torch.stack(model(input_ids=ids, output_attentions=True).attentions, dim=1)[0].numpy()
    attention = record.sections["encoder"].attention
    assert attention.shape == expected.shape == (2, 4, ids.shape[1], ids.shape[1])
    np.testing.assert_allclose(attention, expected, atol=1e-6)


def test_deberta_v2_with_one_position_term_names_it_and_its_scale(tokenizer: Any) -> None:
    model = _deberta(tokenizer, relative_attention=True, pos_att_type=["c2p"])
    reason = neuron_capture(model).reason or ""
    assert "content-to-position (c2p)" in reason and "p2c" not in reason and "sqrt(2d)" in reason


@pytest.mark.parametrize(
    ("options", "scale"),
    [
        # No position terms: the score is q.k / sqrt(d * n), n counting the listed terms as the model does.
        ({"relative_attention": False, "pos_att_type": ["p2c", "c2p"]}, (8 * 3) ** -0.5),
        ({"relative_attention": True, "pos_att_type": []}, 8**-0.5),
    ],
)
def test_deberta_v2_without_position_terms_reproduces_its_attention(
    tokenizer: Any, options: dict[str, Any], scale: float
) -> None:
    model = _deberta(tokenizer, **options)
    section, attention = _capture(model, _batch(tokenizer))
    assert section.scale == pytest.approx(scale)
    assert not section.has_bias
    assert _worst(section, attention) <= TOLERANCE
    record = extract_from_model(model, tokenizer, LONG_TEXT, qk=True)
    assert record.neuron["available"] is True, record.neuron
