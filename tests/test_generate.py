"""Generation (option generate): the model writes, then its attention over prompt and continuation is shown.

The continuation must be exactly what the model's own ``generate`` writes, and the attention
exactly that of a plain forward pass over the final ids; sampling only with a seed, and then
reproducibly; settings in the cache key; every host builds a figure of it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import attndocs
from attndocs.errors import CacheError, InputError, OptionError
from attndocs.extract import ExtractRequest, extract
from attndocs.models import load_model, resolve_model
from attndocs.options import FigureOptions, SiteSettings
from attndocs.payload import build_payload
from attndocs.pipeline import Pipeline, record_key
from attndocs.record import AttentionRecord
from attndocs.render import describe, figure_payloads

torch = pytest.importorskip("torch", reason="the models extra is part of `make setup`")
transformers = pytest.importorskip("transformers")

PROMPT = "the cat sat on the"


def _loaded(path: Path):
    return load_model(resolve_model(str(path)))


def _one(loaded, **kwargs) -> AttentionRecord:
    result = extract(loaded, [ExtractRequest(**kwargs)])[0]
    assert not isinstance(result, Exception), result
    return result


def _lm(path: Path, kind: str):
    cls = transformers.AutoModelForSeq2SeqLM if kind == "encoder-decoder" else transformers.AutoModelForCausalLM
    return cls.from_pretrained(str(path), attn_implementation="eager").eval()


def _reference_ids(loaded, lm, text: str, new: int, **sampling) -> list[int]:
    """What transformers' own generate writes, called the plain way a user would call it."""
    tok = loaded.tokenizer
    enc = tok(text, return_tensors="pt")
    kwargs = {"max_new_tokens": new, "do_sample": bool(sampling), "num_beams": 1, "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id}
    if sampling:
        kwargs.update(temperature=sampling["temperature"], top_k=0, top_p=1.0)  # plain sampling: nothing cut off
        torch.manual_seed(sampling["seed"])
    else:
        kwargs.update(temperature=None, top_k=None, top_p=None)
    with torch.inference_mode():
        out = lm.generate(**enc, **kwargs)
    return out[0].tolist()


def _direct_attention(loaded, record: AttentionRecord) -> dict[str, np.ndarray]:
    """A plain forward pass over the record's final ids (eager, output_attentions=True)."""
    tok = loaded.tokenizer
    ids = torch.tensor([tok.convert_tokens_to_ids(record.sides["decoder"].tokens)])
    with torch.inference_mode():
        if record.kind == "encoder-decoder":
            enc = tok(record.text, return_tensors="pt")
            out = loaded.model(**enc, decoder_input_ids=ids, output_attentions=True)
            got = {"encoder": out.encoder_attentions, "decoder": out.decoder_attentions, "cross": out.cross_attentions}
        else:
            out = loaded.model(input_ids=ids, output_attentions=True)
            got = {"decoder": out.attentions}
    return {name: torch.stack([a[0] for a in layers]).numpy() for name, layers in got.items()}


# -- the continuation is the model's own, the attention a plain forward pass's -----------------------
@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_decoder_continuation_equals_generate_and_attention_a_forward_pass(tiny_model_dir, family):
    path = tiny_model_dir(family)
    loaded = _loaded(path)
    record = _one(loaded, text=PROMPT, generate=6)
    want = _reference_ids(loaded, _lm(path, "decoder"), PROMPT, 6)
    tokens = record.sides["decoder"].tokens
    assert loaded.tokenizer.convert_tokens_to_ids(tokens) == want
    prompt = len(loaded.tokenizer(PROMPT)["input_ids"])
    gen = record.generation
    assert gen["side"] == "decoder" and gen["prompt_tokens"] == prompt and gen["new_tokens"] == len(want) - prompt
    assert gen["text"] == loaded.tokenizer.decode(want[prompt:], skip_special_tokens=True)
    assert gen["settings"] == {"new_tokens": 6, "sampling": False, "seed": None, "temperature": None}
    direct = _direct_attention(loaded, record)
    np.testing.assert_allclose(record.sections["decoder"].attention, direct["decoder"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", ["t5", "bart"])
def test_encoder_decoder_continuation_equals_generate_and_attention_a_forward_pass(tiny_model_dir, family):
    path = tiny_model_dir(family)
    loaded = _loaded(path)
    record = _one(loaded, text=PROMPT, generate=5)
    want = _reference_ids(loaded, _lm(path, "encoder-decoder"), PROMPT, 5)
    assert loaded.tokenizer.convert_tokens_to_ids(record.sides["decoder"].tokens) == want
    assert record.generation["prompt_tokens"] == 1  # the decoder's start token
    assert record.generation["new_tokens"] == len(want) - 1
    direct = _direct_attention(loaded, record)
    for name in ("encoder", "decoder", "cross"):
        np.testing.assert_allclose(record.sections[name].attention, direct[name], atol=1e-5, rtol=0)


def test_encoder_decoder_target_is_the_decoders_prompt(tiny_model_dir):
    loaded = _loaded(tiny_model_dir("t5"))
    record = _one(loaded, text=PROMPT, target="the dog", generate=3)
    start = loaded.model.config.decoder_start_token_id
    prompt = [start] + loaded.tokenizer("the dog", add_special_tokens=False)["input_ids"]
    ids = loaded.tokenizer.convert_tokens_to_ids(record.sides["decoder"].tokens)
    assert ids[: len(prompt)] == prompt and record.generation["prompt_tokens"] == len(prompt)
    assert len(ids) == len(prompt) + record.generation["new_tokens"]


def test_neuron_vectors_of_a_generated_record_reproduce_its_attention(tiny_model_dir):
    record = _one(_loaded(tiny_model_dir("llama")), text=PROMPT, generate=4, qk=True)
    assert record.neuron["available"] and record.has_qk
    section = record.sections["decoder"]
    n = len(record.sides["decoder"])
    assert section.query.shape[2] == n and section.key.shape[2] == n  # vectors of the written tokens too
    assert record.neuron["max_error"]["decoder"] <= 1e-4


def test_smollm2_writes_what_its_generate_writes():
    loaded = load_model(resolve_model("smollm2"))
    text = "The capital of France is"
    record = _one(loaded, text=text, generate=3)
    lm = transformers.LlamaForCausalLM.from_pretrained(loaded.model.config._name_or_path, attn_implementation="eager").eval()
    want = _reference_ids(loaded, lm, text, 3)
    assert loaded.tokenizer.convert_tokens_to_ids(record.sides["decoder"].tokens) == want
    assert "Paris" in record.generation["text"]
    direct = _direct_attention(loaded, record)
    np.testing.assert_allclose(record.sections["decoder"].attention, direct["decoder"], atol=1e-5, rtol=0)


# -- sampling --------------------------------------------------------------------------------------
def test_sampling_with_a_seed_is_reproducible_and_equals_seeded_generate(tiny_model_dir):
    path = tiny_model_dir("gpt2")
    loaded = _loaded(path)
    before = torch.random.get_rng_state()
    first = _one(loaded, text=PROMPT, generate=8, seed=7, temperature=1.5)
    assert torch.equal(torch.random.get_rng_state(), before)  # the figure's seed leaves torch's generator alone
    again = _one(loaded, text=PROMPT, generate=8, seed=7, temperature=1.5)
    assert first.sides["decoder"].tokens == again.sides["decoder"].tokens
    want = _reference_ids(loaded, _lm(path, "decoder"), PROMPT, 8, seed=7, temperature=1.5)
    assert loaded.tokenizer.convert_tokens_to_ids(first.sides["decoder"].tokens) == want
    assert first.generation["settings"] == {"new_tokens": 8, "sampling": True, "seed": 7, "temperature": 1.5}
    texts = {tuple(_one(loaded, text=PROMPT, generate=8, seed=s, temperature=1.5).sides["decoder"].tokens) for s in range(6)}
    assert len(texts) > 1  # different seeds may differ: on a random model at temperature 1.5 some do


# -- cache, record file, payload, page text ----------------------------------------------------------
def _settings(tmp_path) -> SiteSettings:
    return SiteSettings.from_mapping({"cache_dir": str(tmp_path / "cache")})


def _figure(model: Path, **options) -> FigureOptions:
    return FigureOptions.from_mapping({"model": str(model), "text": PROMPT, **options})


def test_cache_key_holds_every_setting_and_a_warm_run_computes_nothing(tmp_path, tiny_model_dir):
    path = tiny_model_dir("gpt2")
    ref = resolve_model(str(path))
    plain = ExtractRequest(PROMPT)
    keys = {
        record_key(ref, plain),
        record_key(ref, ExtractRequest(PROMPT, generate=4)),
        record_key(ref, ExtractRequest(PROMPT, generate=5)),
        record_key(ref, ExtractRequest(PROMPT, generate=4, seed=1)),
        record_key(ref, ExtractRequest(PROMPT, generate=4, seed=2)),
        record_key(ref, ExtractRequest(PROMPT, generate=4, seed=1, temperature=0.5)),
    }
    assert len(keys) == 6
    from attndocs.pipeline import record_key_parts

    assert "generate" not in record_key_parts(ref, plain)  # figures that do not generate keep their keys
    assert record_key(ref, ExtractRequest(PROMPT, generate=4, seed=1)) == record_key(ref, ExtractRequest(PROMPT, generate=4, seed=1, temperature=1.0))

    figures = [_figure(path, generate=4), _figure(path, generate=4, seed=3, temperature=0.7, view="neuron")]
    cold = Pipeline(_settings(tmp_path))
    first = cold.run(figures, qk=[False, True])
    assert [r.source for r in first] == ["computed", "computed"] and cold.stats.computed == 2
    warm = Pipeline(_settings(tmp_path))
    second = warm.run(figures, qk=[False, True])
    assert [r.source for r in second] == ["cache", "cache"] and warm.stats.computed == 0
    for a, b in zip(first, second):
        assert a.record.generation == b.record.generation
        assert a.record.sides["decoder"].tokens == b.record.sides["decoder"].tokens
    assert second[1].record.generation["settings"]["seed"] == 3 and second[1].record.has_qk


def test_record_file_round_trips_generation_and_plain_records_keep_their_bytes(tmp_path, tiny_model_dir):
    loaded = _loaded(tiny_model_dir("gpt2"))
    record = _one(loaded, text=PROMPT, generate=3)
    back = AttentionRecord.from_bytes(record.to_bytes())
    assert back.generation == record.generation
    meta = json.loads(record.metadata()["generation"])
    assert meta["prompt_tokens"] + meta["new_tokens"] == len(record.sides["decoder"])
    assert record.as_cached().generation == record.generation
    plain = _one(loaded, text=PROMPT)
    assert "generation" not in plain.metadata() and plain.generation is None
    # A file whose generation does not describe its tokens is refused, not shown.
    record.generation = {**record.generation, "new_tokens": record.generation["new_tokens"] + 1}
    with pytest.raises(CacheError, match="its generation says"):
        AttentionRecord.from_bytes(record.to_bytes())


def test_payload_header_and_page_text_carry_the_generation(tmp_path, tiny_model_dir):
    result = Pipeline(_settings(tmp_path)).compute_one(_figure(tiny_model_dir("gpt2"), generate=4, step=2))
    record = result.record
    options = _figure(tiny_model_dir("gpt2"), generate=4, step=2)
    header = build_payload(record, options).header
    gen = header["generation"]
    assert gen["side"] == "decoder" and gen["promptLength"] == record.generation["prompt_tokens"]
    assert gen["generated"] == record.generation["new_tokens"] and gen["text"] == record.generation["text"]
    assert gen["settings"] == {"newTokens": 4, "sampling": False, "seed": None, "temperature": None}
    assert header["options"]["state"]["step"] == 2
    text = " ".join(record.generation["text"].split())
    assert f"“{text}”" in describe(record, options)
    plain = Pipeline(_settings(tmp_path)).compute_one(_figure(tiny_model_dir("gpt2")))
    assert "generation" not in build_payload(plain.record, _figure(tiny_model_dir("gpt2"))).header


def test_max_tokens_counts_the_continuation(tmp_path, tiny_model_dir):
    path = tiny_model_dir("gpt2")
    prompt = len(_loaded(path).tokenizer(PROMPT)["input_ids"])
    ok = Pipeline(_settings(tmp_path)).run([_figure(path, generate=3, max_tokens=prompt + 3)])[0]
    assert ok.error is None
    over = Pipeline(_settings(tmp_path)).run([_figure(path, generate=3, max_tokens=prompt + 2)])[0]
    assert isinstance(over.error, InputError) and "max-tokens" in str(over.error)
    # The same figure served from the cache is refused the same way.
    cached = Pipeline(_settings(tmp_path)).run([_figure(path, generate=3, max_tokens=prompt + 3).replace(max_tokens=prompt + 2)])[0]
    assert isinstance(cached.error, InputError)


# -- bad input -------------------------------------------------------------------------------------
def test_bad_generation_options_are_clear_errors(tmp_path, tiny_model_dir):
    with pytest.raises(OptionError, match="option 'generate' has value '0': expected an integer >= 1"):
        FigureOptions.from_mapping({"text": "Hi", "generate": "0"})
    with pytest.raises(OptionError, match="option 'generate' has value 257"):
        FigureOptions.from_mapping({"text": "Hi", "generate": 257})
    with pytest.raises(OptionError, match="option 'temperature' needs seed"):
        FigureOptions.from_mapping({"text": "Hi", "generate": 3, "temperature": "0.7"})
    with pytest.raises(OptionError, match="option 'seed' samples a generated continuation"):
        FigureOptions.from_mapping({"text": "Hi", "seed": 3})
    with pytest.raises(OptionError, match="option 'temperature' has value '0'"):
        FigureOptions.from_mapping({"text": "Hi", "generate": 3, "seed": 1, "temperature": "0"})
    with pytest.raises(OptionError, match="option 'step' does nothing in the summary view"):
        FigureOptions.from_mapping({"text": "Hi", "generate": 3, "view": "summary", "step": 1})
    encoder = Pipeline(_settings(tmp_path)).run([_figure(tiny_model_dir("bert"), generate=3)])[0]
    assert isinstance(encoder.error, InputError)
    assert "generate needs a model that writes text" in encoder.error.message and encoder.error.hint


def test_step_options_are_checked_against_the_record(tmp_path, tiny_model_dir):
    path = tiny_model_dir("gpt2")
    pipeline = Pipeline(_settings(tmp_path))
    record = pipeline.compute_one(_figure(path, generate=3)).record
    with pytest.raises(OptionError, match="option 'step' is 4, but the model wrote 3 tokens"):
        build_payload(record, _figure(path, generate=3, step=4))
    plain = pipeline.compute_one(_figure(path)).record
    with pytest.raises(OptionError, match="option 'step' replays generation"):
        build_payload(plain, _figure(path, step=1))
    with pytest.raises(OptionError, match="both choose the query token"):
        build_payload(record, _figure(path, generate=3, step=1, token="cat"))
    seq2seq = Pipeline(_settings(tmp_path)).compute_one(_figure(tiny_model_dir("t5"), generate=3, view="matrix"))
    header = build_payload(seq2seq.record, _figure(tiny_model_dir("t5"), generate=3, view="matrix", step=2)).header
    assert header["options"]["state"] == {"section": "decoder", "step": 2}


# -- hosts -----------------------------------------------------------------------------------------
def _generation_of(html: str) -> dict:
    (payload,) = figure_payloads(html)
    header = payload["header"]
    assert header["generation"]["generated"] >= 1
    return header


def _fence(model: Path) -> str:
    return f"```attention\nmodel: {model}\ngenerate: 4\nstep: 2\nname: written\n\n{PROMPT}\n```\n"


def test_attndocs_build_page_with_generation(tmp_path, tiny_model_dir):
    from attndocs.site import build_site

    src = tmp_path / "src"
    src.mkdir()
    (src / "index.md").write_text("# Writing\n\n" + _fence(tiny_model_dir("gpt2")), encoding="utf-8")
    report = build_site(src, tmp_path / "out", overrides={"cache_dir": str(tmp_path / "cache")})
    html = (report.out / "index.html").read_text(encoding="utf-8")
    header = _generation_of(html)
    assert header["options"]["state"]["step"] == 2
    first = (report.out / "index.html").read_bytes()
    again = build_site(src, tmp_path / "out", overrides={"cache_dir": str(tmp_path / "cache")})
    assert again.batch.computed == 0 and (report.out / "index.html").read_bytes() == first


def test_mkdocs_page_with_generation(tmp_path, tiny_model_dir):
    import yaml
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    root = tmp_path / "project"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "index.md").write_text("# Writing\n\n" + _fence(tiny_model_dir("llama")), encoding="utf-8")
    config = {"site_name": "Writing", "markdown_extensions": ["fenced_code"], "plugins": [{"attndocs": {"cache_dir": str(tmp_path / "cache")}}]}
    (root / "mkdocs.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    build(load_config(str(root / "mkdocs.yml")))
    header = _generation_of((root / "site" / "index.html").read_text(encoding="utf-8"))
    assert header["generation"]["promptLength"] + header["generation"]["generated"] == len(header["sides"]["decoder"]["tokens"])


def test_sphinx_page_with_generation(tmp_path, tiny_model_dir):
    from sphinx.cmd.build import build_main

    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text('extensions = ["attndocs.sphinx_ext"]\nproject = "Writing"\n', encoding="utf-8")
    model = tiny_model_dir("t5")
    (src / "index.rst").write_text(
        f"Writing\n=======\n\n.. attention::\n   :model: {model}\n   :generate: 3\n   :view: matrix\n   :step: 1\n\n   {PROMPT}\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    code = build_main(["-q", "-b", "html", "-W", "-D", f"attention_cache_dir={tmp_path / 'cache'}", str(src), str(out)])
    assert code == 0
    header = _generation_of((out / "index.html").read_text(encoding="utf-8"))
    assert header["kind"] == "encoder-decoder" and header["options"]["state"]["section"] == "decoder"


def test_notebook_figure_with_generation(tmp_path, tiny_model_dir):
    shown = attndocs.figure(PROMPT, model=str(tiny_model_dir("gpt2")), generate=3, seed=5, view="neuron", html_action="return", settings={"cache_dir": str(tmp_path / "cache")})
    header = _generation_of(shown.data)
    assert header["generation"]["settings"]["seed"] == 5 and header["neuron"]["available"]


# -- one copy of the weights ------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["gpt2", "llama", "t5", "bart", "marian"])
def test_generating_shares_the_loaded_weights(tiny_model_dir, family):
    from attndocs.extract.generate import generator

    loaded = _loaded(tiny_model_dir(family))
    record = _one(loaded, text=PROMPT, generate=3)
    lm = generator(loaded)
    assert lm is not loaded.model and lm.can_generate() and loaded.generator is lm  # held beside the loaded model
    base = {p.data_ptr() for p in loaded.model.parameters()}
    assert all(p.data_ptr() in base for p in lm.parameters())  # tied head: not one tensor of its own
    assert not any(t.is_meta for t in [*lm.parameters(), *lm.buffers()])
    want = _reference_ids(loaded, _lm(tiny_model_dir(family), loaded.ref.kind), PROMPT, 3)
    assert loaded.tokenizer.convert_tokens_to_ids(record.sides["decoder"].tokens) == want


def _untied_gpt2(folder: Path, tiny: Path, with_head: bool) -> Path:
    """The tiny GPT-2 with an output head of its own (not tied to the embeddings), saved with or without it."""
    import shutil

    shutil.copytree(tiny, folder)
    config = transformers.AutoConfig.from_pretrained(str(tiny))
    config.tie_word_embeddings = False
    config.attndocs_test_copy = str(folder)  # a model of its own for the loader's cache
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        lm = transformers.GPT2LMHeadModel(config)
    (lm if with_head else lm.transformer).save_pretrained(str(folder))
    return folder


def test_an_untied_head_is_read_from_the_checkpoint_and_the_base_still_shared(tmp_path, tiny_model_dir):
    from attndocs.extract.generate import generator

    path = _untied_gpt2(tmp_path / "untied", tiny_model_dir("gpt2"), with_head=True)
    loaded = _loaded(path)
    record = _one(loaded, text=PROMPT, generate=5)
    lm = generator(loaded)
    base = {p.data_ptr() for p in loaded.model.parameters()}
    own = [name for name, p in lm.named_parameters() if p.data_ptr() not in base]
    assert own == ["lm_head.weight"]  # the head alone: every other weight is the loaded model's
    saved = transformers.GPT2LMHeadModel.from_pretrained(str(path)).lm_head.weight
    assert torch.equal(lm.lm_head.weight, saved) and not torch.equal(saved, loaded.model.wte.weight)
    want = _reference_ids(loaded, _lm(path, "decoder"), PROMPT, 5)
    assert loaded.tokenizer.convert_tokens_to_ids(record.sides["decoder"].tokens) == want


def test_a_checkpoint_without_its_untied_head_cannot_generate(tmp_path, tiny_model_dir):
    from attndocs.errors import ModelError

    loaded = _loaded(_untied_gpt2(tmp_path / "headless", tiny_model_dir("gpt2"), with_head=False))
    result = extract(loaded, [ExtractRequest(text=PROMPT, generate=3)])[0]
    assert isinstance(result, ModelError) and "no trained language-model head" in str(result)
    assert "lm_head.weight" in str(result)


def test_a_stored_head_that_differs_from_the_tied_embeddings_is_the_checkpoints(tmp_path, tiny_model_dir):
    # transformers ties only equal weights: a checkpoint whose lm_head differs keeps it, and so does generating.
    from attndocs.extract.generate import generator

    path = _untied_gpt2(tmp_path / "stored", tiny_model_dir("gpt2"), with_head=True)
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    config["tie_word_embeddings"] = True
    (path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    loaded = _loaded(path)
    record = _one(loaded, text=PROMPT, generate=5)
    lm = generator(loaded)
    assert not torch.equal(lm.lm_head.weight, loaded.model.wte.weight)
    want = _reference_ids(loaded, _lm(path, "decoder"), PROMPT, 5)
    assert loaded.tokenizer.convert_tokens_to_ids(record.sides["decoder"].tokens) == want


def test_a_class_that_does_not_take_the_loaded_model_falls_back_to_its_own_copy(monkeypatch, tmp_path, fresh_model_copy):
    from attndocs.extract import generate

    monkeypatch.setattr(generate, "_graft", lambda lm, base: None)
    path = fresh_model_copy("gpt2", tmp_path / "copy")
    loaded = _loaded(path)
    record = _one(loaded, text=PROMPT, generate=4)
    assert loaded.tokenizer.convert_tokens_to_ids(record.sides["decoder"].tokens) == _reference_ids(loaded, _lm(path, "decoder"), PROMPT, 4)
    base = {p.data_ptr() for p in loaded.model.parameters()}
    assert not any(p.data_ptr() in base for p in generate.generator(loaded).parameters())
