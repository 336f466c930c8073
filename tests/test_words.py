"""Option words: word pieces merged into words (attndocs/words.py, docs/words.md).

The grouping for each tokenizer family, the merge rule (attention to a word: sum over its
pieces; from a word: mean over its pieces) on hand-made records, the pipeline merging the
exact float32 record and caching that merge, cache keys, the neuron view's exception, errors,
and one figure through each host: ``attndocs build``, MkDocs, Sphinx and ``attndocs.figure``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import attndocs
from attndocs.errors import OptionError
from attndocs.options import FigureOptions, SiteSettings, record_identity
from attndocs.payload import build_payload
from attndocs.pipeline import Pipeline
from attndocs.record import AttentionRecord, Section, Side
from attndocs.render import figure_payloads
from attndocs.words import Grouping, group_words, infer_style, merge_attention, merge_words

ROOTS = Path(__file__).parent / "roots"
SENTENCE = "The photosynthesis was unbelievably fast."


# -- grouping, per tokenizer family --------------------------------------------------------------
def _side_of(tokenizer, text: str, text_b: str | None = None) -> tuple[Side, str]:
    from attndocs.extract.tokens import display_tokens, token_style

    enc = tokenizer(text, text_b) if text_b is not None else tokenizer(text)
    ids = enc["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    special_ids = set(tokenizer.all_special_ids)
    special = [i in special_ids for i in ids]
    style = token_style(tokenizer)
    start = None
    if text_b is not None:
        start = next(i for i, s in enumerate(enc.sequence_ids(0)) if s == 1)
    return Side(tokens, display_tokens(tokens, style, special), special, start), style


def _words(side: Side, style: str) -> list[str]:
    """Each word as its raw pieces joined by '|' (what the grouping decided, markers and all)."""
    return ["|".join(side.tokens[a:b]) for a, b in group_words(side, style).spans()]


def _tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def test_wordpiece_continuations_join_and_punctuation_and_specials_stand_alone(minilm_dir):
    side, style = _side_of(_tokenizer(minilm_dir), SENTENCE)
    assert style == "wordpiece" and infer_style(side.tokens, side.special) == "wordpiece"
    assert _words(side, style) == [
        "[CLS]", "the", "photos|##yn|##thesis", "was", "un|##bel|##ie|##va|##bly", "fast", ".", "[SEP]"
    ]


def test_wordpiece_sentence_pair_starts_text_b_at_its_word(minilm_dir):
    side, style = _side_of(_tokenizer(minilm_dir), "Photosynthesis.", "Unbelievably fast.")
    groups = group_words(side, style)
    words = merge_words(_record_of({"encoder": side}, {"encoder": None}), style).sides["encoder"]
    assert words.display == ["[CLS]", "photosynthesis", ".", "[SEP]", "unbelievably", "fast", ".", "[SEP]"]
    assert words.text_b_start == 4 == groups.word_of(side.text_b_start)


@pytest.mark.parametrize("family", ["gpt2", "roberta", "llama"])
def test_byte_level_bpe_words_start_at_a_space_or_newline(tiny_model_dir, family):
    text = "The cat sat, unbelievably!\n\nNew  line."
    side, style = _side_of(_tokenizer(tiny_model_dir(family)), text)
    assert style == "byte-level" and infer_style(side.tokens, side.special) == "byte-level"
    words = merge_words(_record_of({"decoder": side}, {"decoder": None}), style).sides["decoder"]
    plain = [w for w, s in zip(words.display, words.special) if not s]
    # Words are what the text has between spaces, with punctuation on its own; a newline is a
    # word of its own, and the double space before "line" joins that word.
    assert [w.strip(" ") for w in plain] == ["The", "cat", "sat", ",", "unbelievably", "!", "\n", "\n", "New", "line", "."]
    assert "".join(words.display[i] for i, s in enumerate(words.special) if not s) == text
    specials = [w for w, s in zip(words.tokens, words.special) if s]
    assert specials == [t for t, s in zip(side.tokens, side.special) if s]  # each special token is a word of its own


def test_smollm2_tokenizer_groups_bytes_into_words():
    from attndocs.models import load_model, resolve_model

    tokenizer = load_model(resolve_model("smollm2"), "cpu").tokenizer
    side, style = _side_of(tokenizer, "Photosynthesis is unbelievably fast.\nCafé 你好")
    assert style == "byte-level"
    words = merge_words(_record_of({"decoder": side}, {"decoder": None}), style).sides["decoder"]
    # "你好" is several byte pieces: the word decodes to the characters, not to byte escapes.
    assert [w.strip() for w in words.display] == ["Photosynthesis", "is", "unbelievably", "fast", ".", "", "Café", "你好"]
    assert len(words) < len(side)


@pytest.mark.parametrize("family", ["t5", "marian"])
def test_sentencepiece_words_start_at_the_metaspace(tiny_model_dir, family):
    side, style = _side_of(_tokenizer(tiny_model_dir(family)), "The cat sat, unbelievably fast.")
    assert style == "metaspace" and infer_style(side.tokens, side.special) == "metaspace"
    words = merge_words(_record_of({"encoder": side}, {"encoder": None}), style).sides["encoder"]
    assert [w.strip() for w in words.display] == ["The", "cat", "sat", ",", "unbelievably", "fast", ".", "</s>"]
    assert words.special == [False] * 7 + [True]


def test_grouping_rules_on_hand_written_pieces():
    def words(tokens, style, special=None):
        side = Side(tokens, list(tokens), special or [False] * len(tokens))
        return _words(side, style)

    # A bare space marker joins the piece after it; punctuation stands alone after it too.
    assert words(["▁", "X", "▁", "(", "a", ")"], "metaspace") == ["▁|X", "▁|(", "a", ")"]
    assert words(["Ġ", "Ġcat", "Ċ", "dog", "ĉ", "Ġ"], "byte-level") == ["Ġ|Ġcat", "Ċ", "dog", "ĉ", "Ġ"]
    assert words(["[CLS]", "##x", "a", "##b", "[SEP]"], "wordpiece", [True, False, False, False, True]) == ["[CLS]", "##x", "a|##b", "[SEP]"]
    assert words(["a", "b"], "plain") == ["a", "b"]  # no markers to read: every piece is a word
    with pytest.raises(ValueError, match="unknown tokenizer style"):
        group_words(Side(["a"], ["a"], [False]), "bytes")


# -- the merge rule --------------------------------------------------------------------------------
def _record_of(sides: dict[str, Side], attention: dict[str, np.ndarray | None], kind: str | None = None) -> AttentionRecord:
    """A record over ``sides``; a section given None gets uniform attention (rows sum to 1)."""
    names = {"encoder": ("encoder", "encoder", False), "decoder": ("decoder", "decoder", True), "cross": ("decoder", "encoder", False)}
    sections = {}
    for name, array in attention.items():
        rows, cols, causal = names[name]
        if array is None:
            n, m = len(sides[rows]), len(sides[cols])
            array = np.tril(np.ones((n, m))) if causal else np.ones((n, m))
            array = (array / array.sum(-1, keepdims=True))[None, None].astype(np.float32)
        sections[name] = Section(name, array, rows, cols, causal)
    kind = kind or ("encoder-decoder" if "cross" in sections else next(iter(sections)))
    return AttentionRecord("hand-made", "0" * 40, "test", kind, "text", sides, sections)


def _random_rows(rng: np.random.Generator, shape: tuple[int, ...], causal: bool = False) -> np.ndarray:
    a = rng.random(shape) ** 4
    if causal:
        a = np.tril(a)
    return (a / a.sum(-1, keepdims=True)).astype(np.float32)


def test_attention_to_a_word_is_the_sum_and_from_a_word_the_mean():
    side = Side(["[CLS]", "un", "##believ", "##able", "cat", "[SEP]"], ["[CLS]", "un", "believ", "able", "cat", "[SEP]"], [True, False, False, False, False, True])
    a = _random_rows(np.random.default_rng(1), (2, 3, 6, 6))
    merged = merge_words(_record_of({"encoder": side}, {"encoder": a}), "wordpiece")
    m = merged.sections["encoder"].attention
    assert merged.sides["encoder"].tokens == ["[CLS]", "unbelievable", "cat", "[SEP]"]
    assert merged.sides["encoder"].display == ["[CLS]", "unbelievable", "cat", "[SEP]"]
    assert m.shape == (2, 3, 4, 4) and m.dtype == np.float32
    # To the word: the sum of its columns. From the word: the mean of its rows.
    np.testing.assert_allclose(m[1, 2, 0, 1], a[1, 2, 0, 1:4].sum(), rtol=1e-6)
    np.testing.assert_allclose(m[1, 2, 1, 2], a[1, 2, 1:4, 4].mean(), rtol=1e-6)
    np.testing.assert_allclose(m[0, 1, 1, 1], a[0, 1, 1:4, 1:4].sum(-1).mean(), rtol=1e-6)
    np.testing.assert_allclose(m[..., 2, :], np.concatenate([a[..., 4, :1], a[..., 4, 1:4].sum(-1, keepdims=True), a[..., 4, 4:]], -1), rtol=1e-6)
    np.testing.assert_allclose(m.sum(-1), 1.0, atol=1e-6)  # rows still sum to 1
    merged.check()
    # The record says how words map to pieces, and carries no query/key vectors.
    assert merged.extraction["words"]["pieces"]["encoder"][1] == ["un", "##believ", "##able"]
    assert merged.extraction["words"]["style"] == "wordpiece" and not merged.has_qk
    assert not merged.neuron["available"] and "per piece" in merged.neuron["reason"]
    with pytest.raises(ValueError, match="already merged"):
        merge_words(merged, "wordpiece")


def test_cross_sections_merge_rows_by_decoder_words_and_columns_by_encoder_words():
    enc = Side(["▁un", "believ", "able", "▁cat", "</s>"], ["un", "believ", "able", " cat", "</s>"], [False] * 4 + [True])
    dec = Side(["<pad>", "▁Kat", "ze", "▁ist"], ["<pad>", " Kat", "ze", " ist"], [True, False, False, False])
    rng = np.random.default_rng(2)
    attention = {
        "encoder": _random_rows(rng, (2, 2, 5, 5)),
        "decoder": _random_rows(rng, (2, 2, 4, 4), causal=True),
        "cross": _random_rows(rng, (2, 2, 4, 5)),
    }
    record = _record_of({"encoder": enc, "decoder": dec}, attention)
    merged = merge_words(record, "metaspace")
    merged.check()
    cross = merged.sections["cross"].attention
    assert cross.shape == (2, 2, 3, 3)  # decoder words x encoder words
    a = attention["cross"]
    np.testing.assert_allclose(cross[:, :, 1, 0], a[:, :, 1:3, 0:3].sum(-1).mean(-1), rtol=1e-6)
    np.testing.assert_allclose(cross.sum(-1), 1.0, atol=1e-6)
    decoder = merged.sections["decoder"]
    assert decoder.causal and decoder.attention.shape == (2, 2, 3, 3)
    assert np.all(np.triu(decoder.attention, 1) == 0)  # no word attends to a later word
    np.testing.assert_allclose(decoder.attention.sum(-1), 1.0, atol=1e-6)
    assert merged.sides["decoder"].display == ["<pad>", " Katze", " ist"]


def test_merge_attention_keeps_float32_precision_for_long_rows():
    rows = Grouping((0, 3, 4), 9)
    cols = Grouping(tuple(range(0, 600, 7)), 600)
    a = _random_rows(np.random.default_rng(3), (1, 2, 9, 600))
    m = merge_attention(a, rows, cols)
    exact = np.add.reduceat(a.astype(np.float64), list(cols.starts), axis=-1)
    np.testing.assert_allclose(m[0, 1, 2], exact[0, 1, 4:].mean(0), rtol=1e-6)


# -- the pipeline --------------------------------------------------------------------------------
def _options(**values) -> FigureOptions:
    return FigureOptions.from_mapping({"text": SENTENCE, "model": "minilm", **values})


def test_the_merge_is_computed_from_the_exact_record_and_cached_at_cache_precision(tmp_path):
    settings = SiteSettings.from_mapping({"cache_dir": str(tmp_path / "cache")})
    plain = Pipeline(settings, exact=True).compute_one(_options())
    exact = Pipeline(settings, exact=True).compute_one(_options(words=True))
    assert exact.source == "computed" and plain.record.precision == exact.record.precision == "exact"
    expected = merge_words(plain.record, "wordpiece")
    for name, section in expected.sections.items():
        np.testing.assert_allclose(exact.record.sections[name].attention, section.attention, atol=1e-6)
    assert exact.record.sides["encoder"].display == ["[CLS]", "the", "photosynthesis", "was", "unbelievably", "fast", ".", "[SEP]"]
    # A build's figure is that merge at the cache's precision (never a merge of companded pieces).
    built = Pipeline(settings).compute_one(_options(words=True))
    assert built.source == "cache" and built.record.precision == "cache"
    stored = exact.record.as_cached()
    np.testing.assert_array_equal(built.record.sections["encoder"].attention, stored.sections["encoder"].attention)
    assert built.record.extraction["words"] == exact.record.extraction["words"]


def test_cache_keys_differ_with_words_and_a_warm_build_computes_nothing(tmp_path):
    settings = SiteSettings.from_mapping({"cache_dir": str(tmp_path / "cache")})
    cold = Pipeline(settings)
    pieces, words = cold.run([_options(), _options(words=True)])
    assert (pieces.source, words.source) == ("computed", "computed") and cold.stats.computed == 2
    assert pieces.record.key != words.record.key
    assert "words" in words.record.key_parts and "words" not in pieces.record.key_parts
    assert len(words.record.sides["encoder"]) < len(pieces.record.sides["encoder"])
    warm = Pipeline(settings)
    again = warm.run([_options(words=True, view="matrix"), _options(words=True, view="summary")])
    assert [r.source for r in again] == ["cache", "cache"] and warm.stats.computed == 0
    assert again[0].record.key == words.record.key


def test_the_neuron_view_stays_per_piece_and_says_so(tmp_path):
    settings = SiteSettings.from_mapping({"cache_dir": str(tmp_path / "cache")})
    neuron = _options(words=True, view="neuron")
    head = _options(words=True)
    # Figures are grouped by record: a neuron figure with words is not a words figure's record.
    assert record_identity(neuron) != record_identity(head)
    assert record_identity(_options(view="neuron")) == record_identity(_options(view="head"))
    result = Pipeline(settings).compute_one(neuron, qk=True)
    assert result.record.has_qk and "words" not in result.record.extraction
    assert "words" not in (result.record.key_parts or {})
    without = Pipeline(settings).compute_one(_options(view="neuron"), qk=True)
    assert without.source == "cache" and without.record.key == result.record.key  # the very record, one cache entry
    header = build_payload(result.record, neuron).header
    assert header["wordPieces"] is True and "words" not in header
    assert header["sides"]["encoder"]["display"].count("bel") == 1  # pieces, drawn as pieces
    plain = build_payload(result.record, _options(view="neuron")).header
    assert "wordPieces" not in plain and "words" not in plain  # figures without words keep their bytes


def test_a_words_figure_ships_each_words_pieces(tmp_path):
    settings = SiteSettings.from_mapping({"cache_dir": str(tmp_path / "cache")})
    for view in ("head", "model", "matrix", "summary"):
        options = _options(words=True, view=view)
        record = Pipeline(settings).compute_one(options).record
        header = build_payload(record, options).header
        assert header["words"]["style"] == "wordpiece"
        assert header["words"]["sides"]["encoder"][4] == ["un", "bel", "ie", "va", "bly"]
        assert header["sides"]["encoder"]["display"][4] == "unbelievably"


def test_summary_statistics_still_mean_something_on_words(tmp_path):
    from attndocs.analysis import record_statistics

    settings = SiteSettings.from_mapping({"cache_dir": str(tmp_path / "cache")})
    pieces = Pipeline(settings, exact=True).compute_one(_options()).record
    words = Pipeline(settings, exact=True).compute_one(_options(words=True)).record
    p, w = record_statistics(pieces, "encoder"), record_statistics(words, "encoder")
    # Special tokens are words of their own, and a sum over a word's pieces never mixes a
    # special column with another: each word row's share is its pieces' mean share, so the
    # share over words, weighted by each word's pieces, is the share over pieces exactly.
    counts = np.array([len(p) for p in words.extraction["words"]["pieces"]["encoder"]])
    special = np.array(words.sides["encoder"].special)
    share = words.sections["encoder"].attention[..., special].sum(-1)
    np.testing.assert_allclose(w["special"], share.mean(-1), atol=1e-6)
    np.testing.assert_allclose((share * counts).sum(-1) / counts.sum(), p["special"], atol=1e-6)
    assert np.all((w["previous"] >= 0) & (w["previous"] <= 1)) and np.all((w["self"] >= 0) & (w["self"] <= 1))
    # A word's attention to itself includes what its pieces paid each other: "self" grows.
    assert float(w["self"].mean()) > float(p["self"].mean())


def test_bad_values_and_words_with_generate_are_clear_option_errors():
    with pytest.raises(OptionError, match="option 'words' has value 'sometimes'") as caught:
        _options(words="sometimes")
    assert "true or false" in str(caught.value)
    with pytest.raises(OptionError, match="words and generate cannot be combined yet"):
        FigureOptions.from_mapping({"text": "Hi", "model": "smollm2", "words": True, "generate": 3})
    assert _options(words="yes").words is True and _options(words="").words is True  # `:words:` alone in a directive


# -- hosts ---------------------------------------------------------------------------------------
WORDS_FENCE = "```attention\nmodel: minilm\nwords: true\nname: words-figure\n\n" + SENTENCE + "\n```\n"


def _words_of(html: str) -> list[str]:
    (payload,) = figure_payloads(html)
    header = payload["header"]
    assert header["words"]["sides"]["encoder"][4] == ["un", "bel", "ie", "va", "bly"]
    return header["sides"]["encoder"]["display"]


def test_attndocs_build_page_with_words(tmp_path):
    from attndocs.site import build_site

    src = tmp_path / "src"
    src.mkdir()
    neuron = WORDS_FENCE.replace("name: words-figure", "view: neuron")
    (src / "index.md").write_text("# Words\n\n" + WORDS_FENCE + "\n" + neuron, encoding="utf-8")
    report = build_site(src, tmp_path / "out", overrides={"cache_dir": str(tmp_path / "cache")})
    html = (report.out / "index.html").read_text(encoding="utf-8")
    words, pieces = (p["header"] for p in figure_payloads(html))
    # One page, two records: a neuron figure with words is drawn from the pieces.
    assert "unbelievably" in words["sides"]["encoder"]["display"] and words["words"]["style"] == "wordpiece"
    assert pieces["wordPieces"] is True and "bel" in pieces["sides"]["encoder"]["display"]
    first = (report.out / "index.html").read_bytes()
    build_site(src, tmp_path / "out", overrides={"cache_dir": str(tmp_path / "cache")})
    assert (report.out / "index.html").read_bytes() == first  # a warm rebuild is byte-identical


def test_mkdocs_page_with_words(tmp_path):
    import yaml
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    root = tmp_path / "project"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "index.md").write_text("# Words\n\n" + WORDS_FENCE, encoding="utf-8")
    config = {
        "site_name": "Words",
        "markdown_extensions": ["fenced_code"],
        "plugins": [{"attndocs": {"cache_dir": str(tmp_path / "cache")}}],
    }
    (root / "mkdocs.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    build(load_config(str(root / "mkdocs.yml")))
    assert "unbelievably" in _words_of((root / "site" / "index.html").read_text(encoding="utf-8"))


def test_sphinx_page_with_words(tmp_path):
    from sphinx.cmd.build import build_main

    src = tmp_path / "src"
    shutil.copytree(ROOTS / "test-words", src)
    out = tmp_path / "out"
    code = build_main(["-q", "-b", "html", "-W", "-D", f"attention_cache_dir={tmp_path / 'cache'}", str(src), str(out)])
    assert code == 0
    html = (out / "index.html").read_text(encoding="utf-8")
    payloads = figure_payloads(html)
    assert len(payloads) == 2
    words, neuron = (p["header"] for p in payloads)
    assert "unbelievably" in words["sides"]["encoder"]["display"] and words["view"] == "head"
    assert neuron["view"] == "neuron" and neuron["wordPieces"] is True
    assert "bel" in neuron["sides"]["encoder"]["display"]


def test_notebook_figure_with_words(tmp_path):
    shown = attndocs.figure(SENTENCE, model="minilm", words=True, view="matrix", html_action="return", settings={"cache_dir": str(tmp_path / "cache")})
    assert "unbelievably" in _words_of(shown.data)
    entry = json.loads(json.dumps(figure_payloads(shown.data)[0]["header"]["words"]))
    assert entry["style"] == "wordpiece"
