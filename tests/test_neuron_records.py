"""Neuron data end to end: stored q and k reproduce the stored attention, checked from the file alone.

The recomputation here is independent of attndocs' own self-check: it reads the record
with safetensors and numpy only, as a user analysing the file would.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file

from attndocs.cli import main
from attndocs.options import FigureOptions, SiteSettings
from attndocs.pipeline import Pipeline
from tests.tiny_models import FAMILIES, FAMILY_KIND


def recompute_from_file(path) -> dict[str, float]:
    """Max abs error per section of softmax(scale * q k^T + bias + causal mask) vs the stored attention."""
    tensors = load_file(str(path))
    with safe_open(str(path), "np") as handle:
        meta = handle.metadata()
    assert json.loads(meta["neuron"])["available"] is True, meta["neuron"]
    errors = {}
    for name, info in json.loads(meta["sections"]).items():
        q = tensors[f"{name}.query"].astype(np.float64)
        k = tensors[f"{name}.key"].astype(np.float64)
        scores = info["scale"] * np.einsum("lhid,lhjd->lhij", q, k)
        if f"{name}.bias" in tensors:
            scores = scores + tensors[f"{name}.bias"]
        if info["causal"]:
            rows, cols = scores.shape[-2:]
            scores = np.where(np.tril(np.ones((rows, cols), bool)), scores, -np.inf)
        scores -= scores.max(-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(-1, keepdims=True)
        errors[name] = float(np.abs(probs - tensors[f"{name}.attention"]).max())
    return errors


def _extract(tmp_path, name: str, *args: str) -> object:
    out = tmp_path / f"{name}.safetensors"
    assert main(["extract", "--qk", "--cache-dir", str(tmp_path / "cache"), "-o", str(out), *args]) == 0
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_every_tiny_family_stores_qk_that_reproduce_its_attention(tmp_path, tiny_model_dir, family):
    args = ["--model", str(tiny_model_dir(family))]
    if FAMILY_KIND[family] == "encoder-decoder":
        args += ["--target", "the dog ran"]
    errors = recompute_from_file(_extract(tmp_path, family, *args, "the cat sat on the mat"))
    expected = {"encoder": ["encoder"], "decoder": ["decoder"], "encoder-decoder": ["encoder", "decoder", "cross"]}
    assert sorted(errors) == sorted(expected[FAMILY_KIND[family]])
    assert max(errors.values()) <= 1e-4, errors


@pytest.mark.real
@pytest.mark.parametrize(
    "args",
    [
        ["--model", "minilm", "The animal didn't cross the street because it was too tired."],
        ["--model", "minilm", "--text-b", "It was tired.", "The cat sat on the mat."],
        ["--model", "smollm2", "The capital of France is Paris, and the capital of Germany is"],
        ["--model", "bert2bert-minilm", "--target", "A cat was sitting.", "The cat sat on the mat."],
    ],
    ids=["minilm", "minilm-pair", "smollm2", "bert2bert"],
)
def test_real_models_store_qk_that_reproduce_their_attention(tmp_path, args):
    errors = recompute_from_file(_extract(tmp_path, "real", *args))
    assert max(errors.values()) <= 1e-4, errors


def test_records_with_and_without_qk_have_different_keys_and_a_qk_record_serves_both(tmp_path, tiny_model_dir):
    settings = SiteSettings.from_mapping({"cache_dir": str(tmp_path / "cache")})
    figure = FigureOptions.from_mapping({"model": str(tiny_model_dir("bert")), "text": "the cat"})
    with_qk = Pipeline(settings).run([figure], qk=True)[0]
    assert with_qk.record.has_qk
    plain = Pipeline(settings).run([figure], qk=False)[0]
    assert plain.source == "cache" and plain.record.key == with_qk.record.key  # served by the Q/K record
    other = Pipeline(SiteSettings.from_mapping({"cache_dir": str(tmp_path / "cache2")}))
    first_plain = other.run([figure], qk=False)[0]
    assert not first_plain.record.has_qk
    assert first_plain.record.key != with_qk.record.key
    upgraded = other.run([figure], qk=True)[0]
    assert upgraded.source == "computed" and upgraded.record.has_qk


def test_an_unsupported_architecture_says_so_instead_of_storing_numbers(tmp_path, tiny_model_dir, monkeypatch):
    from attndocs.extract import neuron

    monkeypatch.setattr(neuron, "ADAPTERS", {k: v for k, v in neuron.ADAPTERS.items() if k != "bert"})
    settings = SiteSettings.from_mapping({"cache_dir": str(tmp_path / "cache")})
    figure = FigureOptions.from_mapping({"model": str(tiny_model_dir("bert")), "text": "the cat"})
    result = Pipeline(settings).run([figure], qk=True)[0]
    record = result.record
    assert not record.has_qk and record.sections["encoder"].query is None
    assert record.neuron["available"] is False and "bert" in record.neuron["reason"]
    path = tmp_path / "r.safetensors"
    record.save(path)
    assert not any(name.endswith((".query", ".key")) for name in load_file(str(path)))


@pytest.mark.parametrize("family", FAMILIES)
def test_a_site_neuron_view_ships_the_models_own_scores(tmp_path, tiny_model_dir, family):
    """The vectors a built page's neuron view computes its scores from are the ones the model computed:
    the page's scores equal the exact `-o` record's to float32 rounding (issue 13: every number agrees)."""
    from attndocs.payload import build_payload, decode_body, decode_qk

    text, target = "the cat sat on the mat", None
    args = ["--model", str(tiny_model_dir(family))]
    if FAMILY_KIND[family] == "encoder-decoder":
        target = "the dog ran"
        args += ["--target", target]
    exact = load_file(str(_extract(tmp_path, family, *args, text)))
    # What a site renders: the pipeline's record, read back at the cache's precision.
    options = FigureOptions(text=text, target=target, model=str(tiny_model_dir(family)), view="neuron")
    result = Pipeline(SiteSettings(cache_dir=str(tmp_path / "cache"))).compute_one(options, qk=True)
    payload = build_payload(result.record, options)
    body = decode_body(payload.header, payload.encoded)
    for name, info in payload.header["sections"].items():
        assert info["hasQK"], name
        shipped = decode_qk(payload.header, body, name)
        scores = info["scale"] * np.einsum("lhid,lhjd->lhij", shipped["query"].astype(np.float64), shipped["key"].astype(np.float64))
        want = info["scale"] * np.einsum(
            "lhid,lhjd->lhij", exact[f"{name}.query"].astype(np.float64), exact[f"{name}.key"].astype(np.float64)
        )
        np.testing.assert_allclose(scores, want, rtol=0, atol=1e-6 * max(1.0, float(np.abs(want).max())))
