"""Every model family end to end through the pipeline, from a local folder of a tiny model."""

from __future__ import annotations

import numpy as np
import pytest

from attndocs.options import FigureOptions, SiteSettings
from attndocs.pipeline import Pipeline
from tests.tiny_models import FAMILIES

ENCODERS = ("bert", "roberta", "distilbert", "electra")
DECODERS = ("gpt2", "llama")
SEQ2SEQ = ("t5", "bart", "marian", "bert2bert")
assert set(ENCODERS + DECODERS + SEQ2SEQ) == set(FAMILIES)


def _run(tmp_path, model_dir, **options):
    settings = SiteSettings.from_mapping({"cache_dir": str(tmp_path / "cache")})
    result = Pipeline(settings).run([FigureOptions.from_mapping({"model": str(model_dir), **options})])[0]
    assert result.error is None, result.error
    return result.record


def _assert_rows_are_distributions(attention: np.ndarray) -> None:
    assert attention.dtype == np.float32
    assert np.allclose(attention.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("family", ENCODERS)
def test_encoder_families_single_and_pair(tmp_path, tiny_model_dir, family):
    single = _run(tmp_path, tiny_model_dir(family), text="the cat sat on the mat")
    assert single.kind == "encoder" and list(single.sections) == ["encoder"]
    section = single.sections["encoder"]
    n = len(single.sides["encoder"])
    assert section.attention.shape[2:] == (n, n) and not section.causal
    _assert_rows_are_distributions(section.attention)
    pair = _run(tmp_path, tiny_model_dir(family), text="the cat sat", **{"text-b": "the dog ran"})
    side = pair.sides["encoder"]
    start = side.text_b_start
    assert start is not None and side.special[start - 1] and not side.special[start]
    assert "".join(side.display[start:]).replace(" ", "").startswith("the")


@pytest.mark.parametrize("family", DECODERS)
def test_decoder_families_are_causal(tmp_path, tiny_model_dir, family):
    record = _run(tmp_path, tiny_model_dir(family), text="the cat sat on the mat")
    assert record.kind == "decoder" and list(record.sections) == ["decoder"]
    attention = record.sections["decoder"].attention
    assert record.sections["decoder"].causal
    assert np.all(np.triu(attention, k=1) == 0)
    _assert_rows_are_distributions(attention)


@pytest.mark.parametrize("family", SEQ2SEQ)
def test_encoder_decoder_families_have_three_sections(tmp_path, tiny_model_dir, family):
    record = _run(tmp_path, tiny_model_dir(family), text="the cat sat on the mat", target="the dog ran")
    assert record.kind == "encoder-decoder"
    n, m = len(record.sides["encoder"]), len(record.sides["decoder"])
    assert record.sections["encoder"].attention.shape[2:] == (n, n)
    assert record.sections["decoder"].attention.shape[2:] == (m, m)
    assert record.sections["cross"].attention.shape[2:] == (m, n)
    assert np.all(np.triu(record.sections["decoder"].attention, k=1) == 0)
    for section in record.sections.values():
        _assert_rows_are_distributions(section.attention)
    if family != "bert2bert":
        # Teacher forcing: the decoder reads its start token, then the target shifted right.
        assert record.sides["decoder"].special[0]


def test_byte_level_display_reads_as_characters(tmp_path, tiny_model_dir):
    import re

    record = _run(tmp_path, tiny_model_dir("gpt2"), text="Café 你好 🙂")
    display = record.sides["decoder"].display
    # The tiny vocabulary splits characters into bytes: the token that completes a character
    # shows it, the ones before show their bytes as \xNN escapes.
    assert re.sub(r"(\\x[0-9a-f]{2})+", "", "".join(display)) == "Café 你好 🙂"
    assert "你" in display and "🙂" in display


def test_a_local_model_changed_on_disk_is_recomputed(tmp_path, tiny_model_dir):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(tiny_model_dir("bert"), folder)
    first = _run(tmp_path, folder, text="the cat")
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    settings = SiteSettings.from_mapping({"cache_dir": str(tmp_path / "cache")})
    again = Pipeline(settings).run([FigureOptions.from_mapping({"model": str(folder), "text": "the cat"})])[0]
    assert again.source == "computed" and again.record.revision != first.revision


def test_a_model_that_returns_no_attention_weights_is_a_clear_model_error(tiny_model_dir):
    from types import SimpleNamespace

    from attndocs.errors import ModelError
    from attndocs.extract import ExtractRequest, extract
    from attndocs.models import load_model, resolve_model

    loaded = load_model(resolve_model(str(tiny_model_dir("bert"))))

    class NoAttention:
        """Like a model whose attention implementation cannot return weights."""

        config = loaded.model.config
        forward = staticmethod(loaded.model.forward)

        def __call__(self, **inputs):
            return SimpleNamespace(attentions=None, last_hidden_state=self.forward(**inputs).last_hidden_state)

    fake = SimpleNamespace(ref=loaded.ref, tokenizer=loaded.tokenizer, device="cpu", model=NoAttention())
    (result,) = extract(fake, [ExtractRequest("the cat")])
    assert isinstance(result, ModelError)
    assert "returned no encoder attention weights" in str(result) and "\n" not in str(result)
