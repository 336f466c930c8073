"""Extraction on the bundled real models: attention equal to calling the model directly."""

from __future__ import annotations

import numpy as np
import pytest

from attndocs.errors import InputError
from attndocs.extract import ExtractRequest, extract, extract_from_model
from attndocs.models import load_model, resolve_model
from attndocs.models.load import loaded_count

pytestmark = pytest.mark.real
torch = pytest.importorskip("torch", reason="the models extra is part of `make setup`")


@pytest.fixture(scope="module")
def minilm():
    return load_model(resolve_model("minilm"))


@pytest.fixture(scope="module")
def smollm2():
    return load_model(resolve_model("smollm2"))


@pytest.fixture(scope="module")
def bert2bert():
    return load_model(resolve_model("bert2bert-minilm"))


def _direct(atts) -> np.ndarray:
    return torch.stack([a[0] for a in atts]).detach().numpy()


def _one(loaded, **kwargs):
    result = extract(loaded, [ExtractRequest(**kwargs)])[0]
    assert not isinstance(result, Exception), result
    return result


def test_minilm_single_text_equals_the_model(minilm):
    text = "The animal didn't cross the street because it was too tired."
    record = _one(minilm, text=text)
    with torch.inference_mode():
        direct = _direct(minilm.model(**minilm.tokenizer(text, return_tensors="pt"), output_attentions=True).attentions)
    assert record.sections["encoder"].attention.shape == (6, 12, direct.shape[-1], direct.shape[-1])
    assert np.abs(record.sections["encoder"].attention - direct).max() <= 1e-6
    side = record.sides["encoder"]
    assert side.tokens[0] == "[CLS]" and side.tokens[-1] == "[SEP]"
    assert side.special[0] and side.special[-1] and not any(side.special[1:-1])


def test_minilm_pair_marks_where_text_b_starts(minilm):
    record = _one(minilm, text="The cat sat on the mat.", text_b="It was tired.")
    enc = minilm.tokenizer("The cat sat on the mat.", "It was tired.", return_tensors="pt")
    with torch.inference_mode():
        direct = _direct(minilm.model(**enc, output_attentions=True).attentions)
    assert np.abs(record.sections["encoder"].attention - direct).max() <= 1e-6
    side = record.sides["encoder"]
    start = side.text_b_start
    assert side.tokens[start - 1] == "[SEP]" and side.tokens[start] == "it"
    assert enc["token_type_ids"][0].tolist().index(1) == start


def test_smollm2_is_causal_and_equals_the_model(smollm2):
    text = "The cat sat on the mat. Café 你好"
    record = _one(smollm2, text=text)
    with torch.inference_mode():
        direct = _direct(smollm2.model(**smollm2.tokenizer(text, return_tensors="pt"), output_attentions=True).attentions)
    section = record.sections["decoder"]
    assert section.causal and section.attention.shape[:2] == (30, 9)
    assert np.abs(section.attention - direct).max() <= 1e-6
    assert np.all(np.triu(section.attention, k=1) == 0)
    display = record.sides["decoder"].display
    assert " Caf" in display and "é" in display and "你" in display and "好" in display


def test_bert2bert_has_encoder_decoder_and_cross_sections(bert2bert):
    record = _one(bert2bert, text="The cat sat on the mat.", target="A cat was sitting.")
    assert set(record.sections) == {"encoder", "decoder", "cross"}
    n, m = len(record.sides["encoder"]), len(record.sides["decoder"])
    assert record.sections["cross"].attention.shape == (6, 12, m, n)
    tok = bert2bert.tokenizer
    enc = tok("The cat sat on the mat.", return_tensors="pt")
    dec = tok("A cat was sitting.", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = bert2bert.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], decoder_input_ids=dec, output_attentions=True)
    for name, atts in (("encoder", out.encoder_attentions), ("decoder", out.decoder_attentions), ("cross", out.cross_attentions)):
        assert np.abs(record.sections[name].attention - _direct(atts)).max() <= 1e-6


def test_bert2bert_weights_are_the_same_in_every_process(bert2bert, tmp_path):
    import subprocess
    import sys

    code = (
        "from attndocs.models import load_model, resolve_model\n"
        "m = load_model(resolve_model('bert2bert-minilm')).model\n"
        "print(float(m.decoder.bert.encoder.layer[0].crossattention.self.query.weight.sum()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    here = float(bert2bert.model.decoder.bert.encoder.layer[0].crossattention.self.query.weight.detach().sum())
    assert float(out.stdout.strip()) == here


TEXTS = ["The cat sat on the mat.", "The dog lay on the rug.", "A much longer sentence about nothing in particular."]


@pytest.fixture
def forward_sizes(minilm):
    """Batch size of every forward pass of minilm during the test."""
    sizes: list[int] = []
    handle = minilm.model.register_forward_pre_hook(
        lambda module, args, kwargs: sizes.append(int(kwargs["input_ids"].shape[0])), with_kwargs=True
    )
    yield sizes
    handle.remove()


def test_cpu_default_runs_each_text_alone_so_records_never_depend_on_batch_mates(minilm, forward_sizes):
    together = extract(minilm, [ExtractRequest(t) for t in TEXTS])
    assert forward_sizes == [1, 1, 1]
    for text, record in zip(TEXTS, together):
        assert np.array_equal(record.sections["encoder"].attention, _one(minilm, text=text).sections["encoder"].attention)


def test_batches_group_equal_lengths_and_match_single_runs_closely(minilm, forward_sizes):
    together = extract(minilm, [ExtractRequest(t) for t in TEXTS], batch_size=8)
    assert sorted(forward_sizes) == [1, 2]  # the two 9-token texts share one forward pass
    for text, record in zip(TEXTS, together):
        alone = _one(minilm, text=text)
        # Batched matrix products round differently: a few float32 ulps, never more.
        assert np.abs(record.sections["encoder"].attention - alone.sections["encoder"].attention).max() <= 1e-5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": "   "}, "text is empty"),
        ({"text": "word " * 50, "max_tokens": 10}, "more than max-tokens (10)"),
        ({"text": "Hello", "target": "Hallo"}, "target needs an encoder-decoder model"),
    ],
)
def test_bad_input_on_an_encoder_is_one_clear_error(minilm, kwargs, message):
    result = extract(minilm, [ExtractRequest(**kwargs)])[0]
    assert isinstance(result, InputError)
    assert message in str(result) and "\n" not in str(result)


def test_text_b_with_a_decoder_only_model_is_refused(smollm2):
    result = extract(smollm2, [ExtractRequest("Hello there", text_b="General Kenobi")])[0]
    assert isinstance(result, InputError) and "decoder-only" in str(result)


def test_encoder_decoder_without_target_is_refused(bert2bert):
    result = extract(bert2bert, [ExtractRequest("Hello there")])[0]
    assert isinstance(result, InputError) and "target" in str(result)


def test_one_bad_request_does_not_spoil_the_batch(minilm):
    results = extract(minilm, [ExtractRequest(""), ExtractRequest("Fine text.")])
    assert isinstance(results[0], InputError)
    assert results[1].sections["encoder"].attention.shape[0] == 6


def test_each_model_loads_once_per_process(minilm):
    before = loaded_count()
    assert load_model(resolve_model("minilm")) is minilm
    assert loaded_count() == before


def test_extract_from_a_model_object(minilm):
    record = extract_from_model(minilm.model, minilm.tokenizer, "The cat sat.")
    assert record.kind == "encoder" and record.sections["encoder"].attention.shape[0] == 6
