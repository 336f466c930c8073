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


def _assert_rows_are_distributions(attention: np.ndarray, precision: str = "exact") -> None:
    assert attention.dtype == np.float32
    if precision == "exact":
        assert np.allclose(attention.sum(-1), 1.0, atol=1e-5)
    else:
        # A record at the cache's precision (what the pipeline renders): each row within its companding bound.
        from attndocs.compact import attention_error_bound

        assert np.all(np.abs(attention.sum(-1) - 1.0) <= attention_error_bound(attention) + 1e-5)


@pytest.mark.parametrize("family", ENCODERS)
def test_encoder_families_single_and_pair(tmp_path, tiny_model_dir, family):
    single = _run(tmp_path, tiny_model_dir(family), text="the cat sat on the mat")
    assert single.kind == "encoder" and list(single.sections) == ["encoder"]
    section = single.sections["encoder"]
    n = len(single.sides["encoder"])
    assert section.attention.shape[2:] == (n, n) and not section.causal
    _assert_rows_are_distributions(section.attention, getattr(single, "precision", "exact"))
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
    _assert_rows_are_distributions(attention, getattr(record, "precision", "exact"))


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
        _assert_rows_are_distributions(section.attention, getattr(record, "precision", "exact"))
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


@pytest.mark.parametrize("family", FAMILIES)
def test_extraction_with_qk_equals_a_direct_model_call_exactly(tiny_model_dir, family):
    """Stacking and checking on the device changes no number: every array equals the model's own (error 0.0)."""
    import torch

    from attndocs.extract import ExtractRequest, extract
    from attndocs.extract.neuron import neuron_capture
    from attndocs.extract.run import _encode
    from attndocs.models import load_model, resolve_model

    loaded = load_model(resolve_model(str(tiny_model_dir(family))))
    target = "the dog ran" if loaded.ref.kind == "encoder-decoder" else None
    request = ExtractRequest("the cat sat on the mat", target=target, qk=True)
    (record,) = extract(loaded, [request])
    assert record.neuron["available"], record.neuron
    capture = neuron_capture(loaded.model)
    with torch.inference_mode(), capture:
        outputs = loaded.model(**_encode(loaded, request).inputs, output_attentions=True)
    direct = {
        "encoder": getattr(outputs, "encoder_attentions", None),
        "decoder": getattr(outputs, "decoder_attentions", None),
        "cross": getattr(outputs, "cross_attentions", None),
    }
    if loaded.ref.kind != "encoder-decoder":
        direct = {loaded.ref.kind: outputs.attentions}
    vectors = capture.sections()
    assert list(record.sections) == list(direct)
    for name, section in record.sections.items():
        expected = torch.stack(direct[name], dim=1)[0].numpy()
        assert section.attention.dtype == section.query.dtype == section.key.dtype == np.float32
        assert np.abs(section.attention - expected).max() == 0.0, name
        assert np.array_equal(section.query, vectors[name].query[0]) and np.array_equal(
            section.key, vectors[name].key[0]
        )
        if vectors[name].bias is None:
            assert section.bias is None
        else:
            assert section.bias.dtype == np.float32 and np.array_equal(section.bias, vectors[name].bias[0])


_PEAK_MEMORY = """
import json, resource, sys
import torch, transformers
from attndocs.extract import extract_from_model

folder, n = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
tok = transformers.AutoTokenizer.from_pretrained(folder)
# Narrow and many-headed: at n tokens the attention is most of what the extraction allocates.
config = transformers.BertConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=16,
                                 intermediate_size=64, max_position_embeddings=n, attn_implementation="eager")
model = transformers.BertModel(config).eval()
extract_from_model(model, tok, "the cat sat on the mat", qk=True)  # every import and code path warm
text = tok.decode(tok(" ".join(["the cat sat on the mat"] * n))["input_ids"][1 : n - 1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
record = extract_from_model(model, tok, text, qk=True)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
section = record.sections["encoder"]
print(json.dumps({"tokens": section.attention.shape[-1], "neuron": record.neuron["available"],
                  "copies": (after - before) * 1024 / section.attention.nbytes}))
"""


def test_extraction_never_holds_more_than_two_copies_of_the_attention(tiny_model_dir):
    """Peak host memory of one extraction with Q/K, in attention-sized copies (the model's own output and the
    record's array; the self-check adds one layer's scores). Before the check moved to torch it was 7."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _PEAK_MEMORY, str(tiny_model_dir("bert")), "768"],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["tokens"] == 768 and result["neuron"] is True
    assert result["copies"] <= 2.3, result
