"""Figures of every model family in a Sphinx build: decoders, encoder-decoders, neuron views.

Tiny random models (tests/tiny_models.py) stand in for real ones; conf.py reaches them
through attention_model_aliases pointing at their folders.
"""

from __future__ import annotations

import pytest
from site_helpers import read_output, summary_of, warnings_of

from attndocs.payload import decode_attention, decode_body, decode_qk
from attndocs.render import figure_payloads

FAMILIES = ("gpt2", "llama", "bart", "t5", "bert")


@pytest.fixture
def models_app(build, tiny_model_dir):
    aliases = {f"tiny-{family}": str(tiny_model_dir(family)) for family in FAMILIES}
    return build("models", confoverrides={"attention_model_aliases": aliases})


def figures_of(html: str) -> list[tuple[dict, bytes]]:
    """(header, decoded body) of each figure on a page."""
    return [(p["header"], decode_body(p["header"], p["body"])) for p in figure_payloads(html)]


def test_every_family_builds_without_a_warning(models_app):
    assert warnings_of(models_app) == []
    assert summary_of(models_app)["failed"] == 0


def test_decoders_show_causal_attention(models_app):
    (gpt2, _), (llama, body) = figures_of((models_app.outdir / "decoder.html").read_text())
    assert gpt2["kind"] == llama["kind"] == "decoder"
    assert llama["view"] == "model"
    attention = decode_attention(llama, body, "decoder")
    assert attention.shape[-1] == attention.shape[-2] > 3
    upper = attention[..., 0, 1:]  # the first token sees nothing after it
    assert float(abs(upper).max()) == 0.0


def test_encoder_decoders_carry_encoder_decoder_and_cross_attention(models_app):
    (bart, bart_body), (t5, _) = figures_of((models_app.outdir / "encoder-decoder.html").read_text())
    for header in (bart, t5):
        assert header["kind"] == "encoder-decoder"
        assert set(header["sections"]) == {"encoder", "decoder", "cross"}
    assert bart["target"] == "The dog lay on the rug."
    cross = decode_attention(bart, bart_body, "cross")
    assert cross.shape[-2] == len(bart["sides"]["decoder"]["tokens"])
    assert cross.shape[-1] == len(bart["sides"]["encoder"]["tokens"])


def test_neuron_views_ship_query_and_key_vectors(models_app):
    (bert, bert_body), (llama, llama_body) = figures_of((models_app.outdir / "neuron.html").read_text())
    for header, body, section in ((bert, bert_body, "encoder"), (llama, llama_body, "decoder")):
        assert header["view"] == "neuron"
        assert header["neuron"]["available"] is True, header["neuron"]
        qk = decode_qk(header, body, section)
        assert qk["query"] is not None and qk["key"] is not None
    assert bert["options"]["layer"] == 1


def test_pages_of_every_family_are_identical_cold_and_warm(build, tiny_model_dir, tmp_path):
    # A record read back from the cache must render exactly like the freshly computed one,
    # also for encoder-decoder records with three sections and two sides.
    overrides = {
        "attention_model_aliases": {f"tiny-{family}": str(tiny_model_dir(family)) for family in FAMILIES},
        "attention_cache_dir": str(tmp_path / "cache"),
    }
    cold = build("models", confoverrides=overrides)
    warm = build("models", confoverrides=overrides)
    assert summary_of(cold)["computed"] == 6 and summary_of(warm)["cached"] == 6
    before, after = read_output(cold.outdir), read_output(warm.outdir)
    assert [name for name in before if before[name] != after.get(name)] == []


def test_a_cold_build_loads_each_model_once_for_all_its_pages(build, fresh_model_copy, tmp_path):
    # Fresh copies of two tiny models: no earlier test of this process has loaded them.
    bert, gpt2 = fresh_model_copy("bert", tmp_path / "bert"), fresh_model_copy("gpt2", tmp_path / "gpt2")
    srcdir = tmp_path / "src"
    srcdir.mkdir()
    (srcdir / "conf.py").write_text('extensions = ["attndocs.sphinx_ext"]\n')
    (srcdir / "index.rst").write_text("Index\n=====\n\n.. toctree::\n\n   a\n   b\n")
    for name, texts in {"a": ["One cat.", "Two cats."], "b": ["Three cats.", "Four cats."]}.items():
        blocks = "".join(f".. attention::\n   :model: {model}\n\n   {text}\n\n" for text in texts for model in ("bert", "gpt2"))
        (srcdir / f"{name}.rst").write_text(f"{name.upper()}\n=\n\n{blocks}")
    app = build(srcdir=srcdir, confoverrides={"attention_model_aliases": {"bert": str(bert), "gpt2": str(gpt2)}, "attention_cache_dir": str(tmp_path / "cache")})
    assert warnings_of(app) == []
    assert summary_of(app) == {"figures": 8, "cached": 0, "computed": 8, "failed": 0, "models_loaded": 2}
