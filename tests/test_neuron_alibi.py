"""Neuron-view adapters for GPT-NeoX, OPT, BLOOM, Falcon and MPT: tiny random models built from their configs,
whose captured query/key vectors (and position bias) reproduce every layer's and head's attention."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from attndocs.extract.neuron import ADAPTERS, check_section, neuron_capture, self_check

TOLERANCE = 1e-4
VOCAB = 96
LENGTH = 21  # tokens per text; two texts per batch

# model_type -> config sizes: hidden 32-64, 2 layers, 4 heads (each family spells them its own way).
CONFIGS: dict[str, dict[str, Any]] = {
    "gpt_neox": {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "rope_parameters": {"rope_theta": 10000.0, "partial_rotary_factor": 0.25, "rope_type": "default"},
        "initializer_range": 0.2,
    },
    "opt": {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "ffn_dim": 64,
        "word_embed_proj_dim": 32,
        "init_std": 0.2,
    },
    "bloom": {"hidden_size": 64, "n_layer": 2, "n_head": 4, "initializer_range": 0.2},
    "falcon": {  # Falcon-7B's layout: multi-query, rotary, parallel attention
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "ffn_hidden_size": 128,
        "initializer_range": 0.2,
    },
    "mpt": {"d_model": 64, "n_layers": 2, "n_heads": 4, "max_seq_len": 64, "initializer_range": 0.2},
}

# The other layouts Falcon's config can select.
FALCON_VARIANTS: dict[str, dict[str, Any]] = {
    "multi-query, rotary": {},
    "grouped (new decoder architecture), rotary": {"new_decoder_architecture": True, "num_kv_heads": 2},
    "one key per head, rotary": {"multi_query": False, "parallel_attn": False},
    "multi-query, alibi": {"alibi": True},
    "one key per head, alibi": {"alibi": True, "multi_query": False},
}


def _model(model_type: str, **overrides: Any) -> Any:
    import torch
    import transformers

    config = transformers.AutoConfig.for_model(model_type, vocab_size=VOCAB, **{**CONFIGS[model_type], **overrides})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = transformers.AutoModel.from_config(config, attn_implementation="eager").eval()
        ids = torch.randint(4, VOCAB, (2, LENGTH))
    return model, ids


def _capture(model: Any, ids: Any) -> tuple[Any, np.ndarray]:
    import torch

    capture = neuron_capture(model)
    assert capture.reason is None, capture.reason
    with torch.inference_mode(), capture:
        outputs = model(input_ids=ids, output_attentions=True)
    assert capture.errors == {}
    tensors = capture.tensors()
    assert list(tensors) == ["decoder"]
    return tensors["decoder"], torch.stack(outputs.attentions, dim=1)


def _worst(section: Any, attention: Any) -> float:
    """The torch check extraction runs (every layer and head) and numpy's float64 reference; they agree."""
    checked = max(check_section(attention, section))
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
    assert checked == pytest.approx(reference, abs=1e-5)
    return max(checked, reference)


@pytest.mark.parametrize("model_type", sorted(CONFIGS))
def test_family_vectors_reproduce_every_layer_and_head(model_type: str) -> None:
    assert model_type in ADAPTERS
    model, ids = _model(model_type)
    section, attention = _capture(model, ids)
    assert section.query.shape[:4] == (2, 2, 4, LENGTH) and section.key.shape[:4] == (2, 2, 4, LENGTH)
    assert section.causal
    assert _worst(section, attention) <= TOLERANCE


def test_gpt_neox_rotates_only_the_rotary_dims_of_each_fused_head() -> None:
    import torch

    model, ids = _model("gpt_neox")
    section, attention = _capture(model, ids)
    head = 64 // 4
    rotary = head // 4
    # Position 0 is not rotated (cos 1, sin 0): its key is the projection's k slice of each head.
    with torch.inference_mode():
        hidden = model.layers[0].input_layernorm(model.embed_in(ids))
        fused = model.layers[0].attention.query_key_value(hidden).view(2, LENGTH, 4, 3 * head).transpose(1, 2)
    assert torch.allclose(section.key[:, 0, :, 0], fused[:, :, 0, head : 2 * head], atol=1e-6)
    # The last dims are not rotated at any position; the first ones are.
    assert torch.allclose(section.key[:, 0, :, :, rotary:], fused[..., head + rotary : 2 * head], atol=1e-6)
    assert not torch.allclose(section.key[:, 0, :, 1:, :rotary], fused[:, :, 1:, head : head + rotary], atol=1e-3)
    # Keys read in GPT-2's side-by-side layout (the second third of the whole output), rotated as the
    # model rotates, fail the check.
    from transformers.models.gpt_neox.modeling_gpt_neox import apply_rotary_pos_emb

    with torch.inference_mode():
        cos, sin = model.rotary_emb(hidden, torch.arange(LENGTH)[None])
        flat = fused.transpose(1, 2).reshape(2, LENGTH, 3 * 64)
        side_by_side = flat[..., 64:128].reshape(2, LENGTH, 4, head).transpose(1, 2)
        _, wrong_key = apply_rotary_pos_emb(side_by_side, side_by_side, cos, sin)
    wrong = section.key.clone()
    wrong[:, 0] = wrong_key
    section.key = wrong
    assert max(check_section(attention, section)) > 1e-2


@pytest.mark.parametrize("variant", sorted(FALCON_VARIANTS))
def test_falcon_layouts_and_position_schemes_reproduce_every_layer_and_head(variant: str) -> None:
    model, ids = _model("falcon", **FALCON_VARIANTS[variant])
    section, attention = _capture(model, ids)
    assert section.query.shape[:4] == (2, 2, 4, LENGTH) and section.key.shape[:4] == (2, 2, 4, LENGTH)
    assert section.has_bias == ("alibi" in variant)
    assert _worst(section, attention) <= TOLERANCE


def test_mpt_clipped_qkv_and_its_own_softmax_scale_reproduce_every_layer_and_head() -> None:
    model, ids = _model("mpt", attn_config={"clip_qkv": 0.3, "softmax_scale": 0.5})
    section, attention = _capture(model, ids)
    assert section.scale == 0.5
    assert float(section.query.abs().max()) <= 0.3 + 1e-6
    assert _worst(section, attention) <= TOLERANCE


def _slopes(model_type: str) -> Any:
    """Per-head ALiBi slopes from transformers' own functions, times the factor each family's score applies."""
    import torch

    if model_type == "mpt":
        from transformers.models.mpt.modeling_mpt import build_mpt_alibi_tensor

        steps = build_mpt_alibi_tensor(4, 2)[:, 0]  # [H, 2]: slope * (-1, 0)
        return steps[:, 1] - steps[:, 0]
    from transformers.models.bloom.modeling_bloom import _get_alibi_slopes

    slopes = _get_alibi_slopes(4, torch.device("cpu"))
    # Falcon's eager attention adds alibi / sqrt(head_dim) twice (in the scores and folded into the mask).
    return slopes if model_type == "bloom" else slopes * 2 / (64 // 4) ** 0.5


@pytest.mark.parametrize(("model_type", "overrides"), [("bloom", {}), ("mpt", {}), ("falcon", {"alibi": True})])
def test_alibi_is_minus_slope_times_distance_one_tensor_for_every_layer(model_type: str, overrides: dict) -> None:
    import torch

    model, ids = _model(model_type, **overrides)
    section, attention = _capture(model, ids)
    first, second = section.biases
    assert first is second  # stored once for the section (and shipped once: the payload's sharedLayers)
    assert first.shape == (1, 4, LENGTH, LENGTH) and first.dtype == torch.float32
    slopes = _slopes(model_type)
    assert bool((slopes > 0).all())
    distance = torch.arange(LENGTH)[:, None] - torch.arange(LENGTH)[None, :]  # i - j
    seen = distance >= 0
    expected = -slopes.view(4, 1, 1) * distance
    assert torch.allclose(first[0][:, seen], expected[:, seen], atol=1e-6)
    assert section.host_bias().shape == (2, 4, LENGTH, LENGTH)
    # The bias is needed: without it the vectors do not reproduce the attention.
    section.biases = [None, None]
    assert max(check_section(attention, section)) > 1e-2


def test_mpt_keys_without_the_models_clipping_fail_the_check() -> None:
    import torch

    model, ids = _model("mpt", attn_config={"clip_qkv": 0.3})
    capture = neuron_capture(model)
    for site in capture.sites:
        assert site.transform is not None
        site.transform = None  # an adapter that forgot the clamp
    with torch.inference_mode(), capture:
        outputs = model(input_ids=ids, output_attentions=True)
    unclipped = capture.tensors()["decoder"]
    assert float(unclipped.query.abs().max()) > 0.3
    assert max(check_section(torch.stack(outputs.attentions, dim=1), unclipped)) > 1e-2


def _record(model_type: str, tiny_model_dir: Any, **overrides: Any) -> Any:
    """An extracted record (qk=True) of a tiny random model of ``model_type``, with the tiny GPT-2 tokenizer."""
    import torch
    import transformers

    from attndocs.extract import extract_from_model

    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_model_dir("gpt2"))
    sizes = {**CONFIGS[model_type], **overrides}
    config = transformers.AutoConfig.for_model(model_type, vocab_size=len(tokenizer), **sizes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = transformers.AutoModel.from_config(config, attn_implementation="eager").eval()
    record = extract_from_model(model, tokenizer, "The cat sat on the mat, and the dog lay on the rug.", qk=True)
    assert record.neuron["available"] is True and record.neuron["max_error"]["decoder"] <= TOLERANCE
    return record


@pytest.mark.parametrize(("model_type", "overrides"), [("bloom", {}), ("mpt", {}), ("falcon", {"alibi": True})])
def test_alibi_ships_as_one_slope_per_head(model_type: str, overrides: dict, tiny_model_dir: Any) -> None:
    from attndocs.options import FigureOptions
    from attndocs.payload import build_payload, decode_body, decode_qk

    record = _record(model_type, tiny_model_dir, **overrides)
    section = record.sections["decoder"]
    payload = build_payload(record, FigureOptions(view="neuron"))
    block = payload.header["sections"]["decoder"]["blocks"]["bias"]
    assert block == {"sharedLayers": True, "slopes": pytest.approx(_slopes(model_type).tolist(), rel=1e-6)}
    # Decoded as the browser decodes it: the record's bias on every cell the queries see.
    bias = decode_qk(payload.header, decode_body(payload.header, payload.encoded), "decoder")["bias"]
    n = section.attention.shape[-1]
    seen = np.tril(np.ones((n, n), bool))
    np.testing.assert_allclose(bias[..., seen], section.bias[..., seen], atol=1e-6)


def test_a_bias_that_is_not_exactly_alibi_ships_as_a_matrix(tiny_model_dir: Any) -> None:
    from attndocs.options import FigureOptions
    from attndocs.payload import alibi_slopes, build_payload

    record = _record("bloom", tiny_model_dir)
    section = record.sections["decoder"]
    assert alibi_slopes(section.bias[0], causal=True) == pytest.approx(_slopes("bloom").tolist())
    # One visible cell off by 1e-3 (a bfloat16 model's rounded slope * position is off by more): not ALiBi.
    rounded = section.bias.copy()
    rounded[:, 2, 9, 3] += 1e-3
    n = rounded.shape[-1]
    assert alibi_slopes(rounded[0], causal=True) is None
    section.bias = rounded
    block = build_payload(record, FigureOptions(view="neuron")).header["sections"]["decoder"]["blocks"]["bias"]
    assert "slopes" not in block and block["encoding"] == "f16" and block["sharedLayers"] is True
    # A window bias (-inf outside) is no ALiBi either.
    window = np.where(np.abs(np.subtract.outer(np.arange(n), np.arange(n))) > 3, -np.inf, 0.0)
    assert alibi_slopes(np.broadcast_to(window, (4, n, n)), causal=True) is None


def test_bloom_record_renders_a_neuron_view_with_the_alibi_bias(
    tmp_path: Any, tiny_model_dir: Any, chromium: Any
) -> None:
    """Extraction end to end for an ALiBi family: the neuron figure (its bias shipped as slopes) shows the
    model's scores, the -slope * distance bias and the model's weights, with no console error."""
    from attndocs.options import FigureOptions
    from attndocs.render import render_figure, render_page

    record = _record("bloom", tiny_model_dir)
    section = record.sections["decoder"]
    n = section.attention.shape[-1]
    assert section.bias.shape == (2, 4, n, n)

    page = tmp_path / "bloom.html"
    figure = render_figure(record, FigureOptions(view="neuron"))
    assert '"slopes":[0.25,0.0625,0.015625,0.00390625]' in figure.html  # the bias ships as four numbers
    page.write_text(render_page([figure], "bloom"), encoding="utf-8")
    tab = chromium.new_page()
    errors: list[str] = []
    tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        tab.goto(page.as_uri())
        tab.wait_for_selector(".attndocs-ngrid .attndocs-nprob")
        row = 8
        tab.locator(f".attndocs-nq .attndocs-token[data-index='{row}']").hover()

        def shown(cls: str) -> list[str]:
            return tab.locator(f".attndocs-ngrid .{cls}").evaluate_all("ns => ns.map(n => n.textContent)")

        def number(text: str) -> float:
            return float(text.replace("\u2212", "-"))

        bias = [number(text) for text in shown("attndocs-nbias")[: row + 1]]
        np.testing.assert_allclose(bias, [-0.25 * (row - j) for j in range(row + 1)], atol=5e-4)  # head 0: slope 1/4
        scores = [number(text) for text in shown("attndocs-nscore")[: row + 1]]
        expected = section.scale * section.query[0, 0, row] @ section.key[0, 0, : row + 1].T
        np.testing.assert_allclose(scores, expected, atol=5e-4 + 1e-6)
        weights = shown("attndocs-nprob")
        assert weights[row + 1 :] == ["masked"] * (n - row - 1)
        np.testing.assert_allclose(
            [float(w) for w in weights[: row + 1]], section.attention[0, 0, row, : row + 1], atol=5e-4 + 1e-6
        )
    finally:
        tab.close()
    assert errors == []


def test_an_mpt_config_without_architectures_is_a_decoder() -> None:
    from attndocs.models.resolve import family_of

    # AutoModel.from_config names no architecture: the model type alone must make it causal.
    assert family_of({"model_type": "mpt"}) == ("decoder", "mpt")
