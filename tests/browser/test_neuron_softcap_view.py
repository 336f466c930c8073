"""The neuron view of soft-capped and windowed attention in headless Chromium, from real tiny random models.

Gemma 2 caps its scores (``c * tanh(s * q.k / c)``) and alternates sliding-window and full layers; ModernBERT
has bidirectional local layers; BLOOM adds ALiBi. Each figure must show the score the model used, say what
masks the selected layer and what its bias is, and print weights that are the softmax of what it prints.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

TEXT = "The cat sat on the mat, and the dog lay on the rug beside the door."
WINDOW = 5
CAP = 2.0  # low enough that tanh bends nearly every score of this peaked random model


def _numbers(probe, cls: str) -> list[str]:
    return probe.figures.first.locator(f".attndocs-ngrid .{cls}").evaluate_all("ns => ns.map(n => n.textContent)")


def _values(probe, cls: str) -> np.ndarray:
    return np.array([float(t.replace("\u2212", "-").replace("-\u221e", "-inf")) for t in _numbers(probe, cls)])


def _weights(probe) -> tuple[np.ndarray, np.ndarray]:
    texts = _numbers(probe, "attndocs-nprob")
    masked = np.array([t == "masked" for t in texts])
    return np.array([0.0 if m else float(t) for t, m in zip(texts, masked)]), masked


def _softmax(logits: np.ndarray, masked: np.ndarray) -> np.ndarray:
    logits = np.where(masked, -np.inf, logits)
    out = np.exp(logits - logits[~masked].max())
    return out / out.sum()


def _query(probe, index: int) -> None:
    probe.figures.first.locator(f".attndocs-nq .attndocs-token[data-index='{index}']").click()


def _select(probe, label: str, value: int) -> None:
    probe.figures.first.locator(".attndocs-control", has_text=label).locator("select").select_option(str(value))


def _header(probe) -> str:
    return probe.figures.first.locator(".attndocs-ninfo").inner_text()


@pytest.fixture(scope="module")
def tokenizers(tiny_model_dir: Callable[[str], Path]) -> dict[str, Any]:
    import transformers

    return {family: transformers.AutoTokenizer.from_pretrained(tiny_model_dir(family)) for family in ("llama", "bert")}


def _decoder(model_type: str, tokenizer: Any, **settings: Any) -> Any:
    import torch
    import transformers

    ids = {"vocab_size": len(tokenizer), "pad_token_id": 0, "bos_token_id": tokenizer.bos_token_id,
           "eos_token_id": tokenizer.eos_token_id}
    config = transformers.AutoConfig.for_model(model_type, **ids, **settings)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()


@pytest.fixture(scope="module")
def gemma2(tokenizers: dict[str, Any]) -> Any:
    from attndocs.extract import extract_from_model

    model = _decoder(
        "gemma2", tokenizers["llama"], hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=24, sliding_window=WINDOW,
        attn_logit_softcapping=CAP, initializer_range=0.2,
    )
    record = extract_from_model(model, tokenizers["llama"], TEXT, qk=True)
    assert record.neuron["available"], record.neuron
    return record


def test_a_soft_capped_figure_shows_the_raw_score_the_capped_score_and_their_softmax(figure_page, gemma2) -> None:
    """Issue 15 item 1: every number agrees with the model and with the others, with the cap in between."""
    section = gemma2.sections["decoder"]  # exact: the model's attention, to compare the page with
    n = section.attention.shape[-1]
    probe = figure_page([(gemma2.as_cached(), {"view": "neuron", "layer": 0, "heads": "1"})])  # what the pipeline renders
    headers = probe.figures.first.locator(".attndocs-ngrid .attndocs-nhead").all_inner_texts()
    assert headers[2:] == ["q\u00b7k \u00d7 s", "capped", "softmax"]  # the window ships as a width: no bias column
    bent = 0.0
    for layer in (0, 1):
        _select(probe, "Layer", layer)
        for query in (2, 9, n - 1):
            _query(probe, query)
            raw = section.scale * section.query[layer, 1, query].astype(np.float64) @ section.key[layer, 1].T.astype(np.float64)
            scores, capped = _values(probe, "attndocs-nscore"), _values(probe, "attndocs-ncapped")
            shown, masked = _weights(probe)
            # What masks this query: later keys, and on the sliding layer the keys WINDOW or more back.
            j = np.arange(n)
            hidden = (j > query) | ((query - j >= WINDOW) if layer == 0 else False)
            np.testing.assert_array_equal(masked, hidden)
            # The raw score is the model's own, the capped one is c * tanh(raw / c) (to the printed decimals) ...
            np.testing.assert_allclose(scores[~masked], raw[~masked], atol=0.0005 + 1e-6)
            np.testing.assert_allclose(capped[~masked], CAP * np.tanh(raw[~masked] / CAP), atol=0.0005 + 1e-6)
            np.testing.assert_allclose(capped[~masked], CAP * np.tanh(scores[~masked] / CAP), atol=0.001 + 1e-6)
            # ... the weights are the softmax of the capped scores printed beside them ...
            again = _softmax(capped, masked)
            assert np.all(np.abs(again - shown) <= again * (np.exp(0.001) - 1) + 0.0005 + 1e-9), (again, shown)
            # ... and the model's attention.
            np.testing.assert_allclose(shown, section.attention[layer, 1, query], atol=0.0005 + 1e-4)
            bent = max(bent, float(np.abs(_softmax(scores, masked) - shown).max()))
        header = _header(probe)
        assert "scores soft-capped: c \u00b7 tanh(q\u00b7k \u00d7 s / c), c = 2" in header and "c = 2.0" not in header
        if layer == 0:
            assert f"causal + sliding window of {WINDOW} tokens" in header
            tip = probe.figures.first.locator(".attndocs-ngrid .attndocs-nprob").nth(0).get_attribute("title")
            assert f"sliding window of {WINDOW} tokens" in tip  # key 0 is outside the last query's window
        else:
            assert "causal: later keys are masked (a full layer: no sliding window)" in header
    # The cap is not cosmetic here: the softmax of the uncapped scores is another distribution.
    assert bent > 0.01
    title = probe.figures.first.locator(".attndocs-nhead", has_text="capped").get_attribute("title")
    assert "soft-capped at c = 2" in title
    assert ">capped<" in probe.fig_eval(0, "fig => fig.exportSVG()")


def test_modernbert_local_and_global_layers_say_what_they_mask(figure_page, tokenizers) -> None:
    import torch
    import transformers

    from attndocs.extract import extract_from_model

    tok = tokenizers["bert"]
    config = transformers.ModernBertConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, global_attn_every_n_layers=3,
        local_attention=2 * WINDOW, vocab_size=len(tok), pad_token_id=tok.pad_token_id, cls_token_id=tok.cls_token_id,
        sep_token_id=tok.sep_token_id, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = transformers.AutoModel.from_config(config, attn_implementation="eager").eval()
    record = extract_from_model(model, tok, TEXT, qk=True)
    section = record.sections["encoder"]
    assert section.windows == [None, WINDOW, WINDOW]
    n = section.attention.shape[-1]
    probe = figure_page([(record.as_cached(), {"view": "neuron", "layer": 1})])
    query = n // 2
    _query(probe, query)
    shown, masked = _weights(probe)
    np.testing.assert_array_equal(masked, np.abs(np.arange(n) - query) > WINDOW)  # both sides, the query's own too
    np.testing.assert_allclose(shown, section.attention[1, 0, query], atol=0.0005 + 1e-4)
    np.testing.assert_allclose(_softmax(_values(probe, "attndocs-nscore"), masked), shown, atol=0.002)
    assert f"bidirectional local window of {WINDOW}: keys more than {WINDOW} tokens away are masked" in _header(probe)
    assert "bias" not in probe.figures.first.locator(".attndocs-ngrid .attndocs-nhead").all_inner_texts()
    tip = probe.figures.first.locator(".attndocs-ngrid .attndocs-nprob").nth(0).get_attribute("title")
    assert "outside this layer's local window" in tip
    _select(probe, "Layer", 0)
    assert "global layer: every key is seen" in _header(probe)
    shown, masked = _weights(probe)
    assert not masked.any()
    np.testing.assert_allclose(shown, section.attention[0, 0, query], atol=0.0005 + 1e-4)


def test_alibi_names_its_slope_in_the_header_and_the_bias_tooltip(figure_page, tokenizers) -> None:
    from attndocs.extract import extract_from_model
    from attndocs.payload import alibi_slopes

    model = _decoder("bloom", tokenizers["llama"], hidden_size=32, n_layer=2, n_head=4)
    record = extract_from_model(model, tokenizers["llama"], TEXT, qk=True).as_cached()
    section = record.sections["decoder"]
    slopes = alibi_slopes(section.bias[0], True)
    assert slopes is not None
    probe = figure_page([(record, {"view": "neuron", "heads": "2"})])
    header = _header(probe)
    slope = probe.fig_eval(0, "fig => fig.header.sections.decoder.blocks.bias.slopes[2]")
    assert slope == pytest.approx(slopes[2])
    assert "causal: later keys are masked \u00b7 ALiBi bias: \u2212" in header and "\u00d7 distance (this head's slope)" in header
    shown_slope = float(header.split("ALiBi bias: \u2212")[1].split(" ")[0])
    assert shown_slope == pytest.approx(slopes[2], rel=1e-3)
    title = probe.figures.first.locator(".attndocs-nhead", has_text="bias").get_attribute("title")
    assert title.startswith("ALiBi: \u2212slope \u00d7 distance") and "for this head" in title
