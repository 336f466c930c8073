"""Comparisons (compare-text, compare-model, compare-layer): alignment, differences, the pipeline,
the payload, errors, and one figure through each host (attndocs build, MkDocs, Sphinx, notebook)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from attndocs.analysis import record_statistics
from attndocs.compare import align_records, align_tokens, attention_difference
from attndocs.errors import OptionError
from attndocs.options import FigureOptions, SiteSettings
from attndocs.payload import build_payload, decode_attention
from attndocs.pipeline import Pipeline
from attndocs.render import figure_payloads, render_figure

TIRED = "The animal didn't cross the street because it was too tired."
WIDE = "The animal didn't cross the street because it was too wide."
ROOTS = Path(__file__).parent / "roots"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("compare-cache")


@pytest.fixture(scope="module")
def tired_wide(cache_dir: Path):
    """minilm on the two texts: the figure's result (record and compare)."""
    options = FigureOptions.from_mapping({"text": TIRED, "compare-text": WIDE, "view": "matrix"})
    result = Pipeline(SiteSettings(cache_dir=str(cache_dir))).run([options])[0]
    assert result.error is None, result.error
    return options, result


def _run(settings: SiteSettings, **values):
    options = FigureOptions.from_mapping(values)
    return options, Pipeline(settings).run([options])[0]


# -- alignment ----------------------------------------------------------------------------------
def test_identical_token_lists_align_fully():
    tokens = ["[CLS]", "the", "cat", "sat", "[SEP]"]
    alignment = align_tokens(tokens, list(tokens))
    assert alignment.pairs == [(i, i) for i in range(5)]
    assert alignment.merged == alignment.pairs and alignment.complete


def test_tired_and_wide_align_all_but_the_differing_piece(tired_wide):
    _, result = tired_wide
    a, b = result.record.sides["encoder"].display, result.compare.sides["encoder"].display
    alignment = align_records(result.record, result.compare)["encoder"]
    changed_a, changed_b = a.index("tired"), b.index("wide")
    assert len(a) == len(b)
    assert alignment.pairs == [(i, i) for i in range(len(a)) if i != changed_a]
    assert (changed_a, -1) in alignment.merged and (-1, changed_b) in alignment.merged
    assert not alignment.complete


def test_different_tokenizers_align_only_where_the_text_is_the_same(tmp_path, tiny_model_dir):
    settings = SiteSettings(cache_dir=str(tmp_path / "cache"))
    text = "The cat sat on the mat."
    _, result = _run(settings, text=text, model=str(tiny_model_dir("bert")), compare_model=str(tiny_model_dir("roberta")), view="matrix")
    assert result.error is None, result.error
    a, b = result.record.sides["encoder"].display, result.compare.sides["encoder"].display
    assert a != b  # [CLS] ... [SEP] against <s> ... </s>, and other pieces
    alignment = align_records(result.record, result.compare)["encoder"]
    assert alignment.pairs and not alignment.complete
    for i, j in alignment.pairs:  # the same characters (an uncased tokenizer lowercases)
        assert a[i].strip().lower() == b[j].strip().lower()
    # Pieces align by where they lie in the text, not by their letters alone.
    words = {"the", "cat", "sat", "on", "mat", "."}
    assert {a[i].strip().lower() for i, _ in alignment.pairs} <= words
    assert [i for i, _ in alignment.pairs] == sorted(i for i, _ in alignment.pairs)
    unaligned_a = {i for i, j in alignment.merged if j < 0}
    assert {0, len(a) - 1} <= unaligned_a  # the special tokens differ: no difference there
    assert sorted([i for i, _ in alignment.pairs] + list(unaligned_a)) == list(range(len(a)))  # each token once


# -- differences --------------------------------------------------------------------------------
def test_difference_is_a_minus_b_on_aligned_cells(tired_wide):
    _, result = tired_wide
    a, b = result.record, result.compare
    alignment = align_records(a, b)
    rows, cols, diff = attention_difference(a, b, "encoder", 2, 5, alignment)
    att_a, att_b = a.sections["encoder"].attention[2][5], b.sections["encoder"].attention[2][5]
    assert diff.shape == (len(rows), len(cols)) == (len(a.sides["encoder"]) - 1,) * 2
    for k, (ia, ib) in enumerate(rows):
        for m, (ja, jb) in enumerate(cols):
            assert diff[k, m] == pytest.approx(float(att_a[ia, ja]) - float(att_b[ib, jb]), abs=1e-6)
    assert np.abs(diff).max() > 0  # the texts differ: so does some attention


def test_the_payload_ships_b_in_the_same_chunks_and_decodes_to_its_attention(tired_wide):
    options, result = tired_wide
    payload = build_payload(result.record, options, compare=result.compare)
    header = payload.header["compare"]
    assert header["mode"] == "text" and header["labels"] == ["…was too tired.", "…was too wide."]
    fake = {**payload.header, "sections": header["sections"]}
    decoded = decode_attention(fake, payload.chunks, "encoder")
    expected = np.asarray(result.compare.sections["encoder"].attention, np.float32)
    assert np.abs(decoded - expected).max() < 2e-3  # the sqrt8 code of every weight
    pairs = header["alignment"]["encoder"]["pairs"]
    assert [tuple(p) for p in pairs] == align_records(result.record, result.compare)["encoder"].pairs


def test_summary_difference_per_head_is_statistic_a_minus_b(tired_wide):
    options, result = tired_wide
    header = build_payload(result.record, options.replace(view="summary"), compare=result.compare).header["compare"]
    summary = header["summary"]["encoder"]
    stats_a, stats_b = record_statistics(result.record, "encoder"), record_statistics(result.compare, "encoder")
    assert summary["rows"] == [[x, x] for x in range(6)] and summary["heads"] == list(range(12))
    for key in ("entropy", "distance", "special"):
        got = np.asarray(summary["stats"][key])
        want = np.asarray(stats_a[key], np.float64) - np.asarray(stats_b[key], np.float64)
        assert np.abs(got - want).max() < 1e-4, key


def test_models_with_fewer_layers_and_heads_compare_only_what_both_have(tmp_path, tiny_model_dir):
    settings = SiteSettings(cache_dir=str(tmp_path / "cache"))
    _, result = _run(settings, text="The cat sat.", model="minilm", compare_model=str(tiny_model_dir("bert")), view="summary")
    assert result.error is None, result.error
    small = result.compare
    assert small.layers < result.record.layers and small.heads < result.record.heads
    header = build_payload(result.record, FigureOptions.from_mapping({"view": "summary", "compare-model": "x"}), compare=small).header
    summary = header["compare"]["summary"]["encoder"]
    assert summary["rows"] == [[x, x] for x in range(small.layers)] and summary["heads"] == list(range(small.heads))
    assert header["compare"]["sections"]["encoder"]["layers"] == list(range(small.layers))


def test_compare_layer_needs_no_second_record_and_labels_the_layers(tired_wide, cache_dir):
    options = FigureOptions.from_mapping({"text": TIRED, "compare-layer": 4, "layer": 1, "view": "summary"})
    pipeline = Pipeline(SiteSettings(cache_dir=str(cache_dir)))
    result = pipeline.run([options])[0]
    assert result.compare is None and pipeline.stats.cached == 1 and pipeline.stats.computed == 0
    header = build_payload(result.record, options).header["compare"]
    assert header["labels"] == ["layer 1", "layer 4"] and header["layers"] == [1, 4]
    stats = record_statistics(result.record, "encoder")
    got = header["summary"]["encoder"]["stats"]["entropy"][0]
    assert np.allclose(got, np.asarray(stats["entropy"])[1] - np.asarray(stats["entropy"])[4], atol=1e-4)


def test_the_second_record_is_cached_and_a_warm_run_computes_nothing(tired_wide, cache_dir):
    options, _ = tired_wide
    pipeline = Pipeline(SiteSettings(cache_dir=str(cache_dir)))
    result = pipeline.run([options])[0]
    assert result.compare is not None and result.compare.text == WIDE
    assert pipeline.stats.computed == 0 and pipeline.stats.cached == 2 and pipeline.stats.models_loaded == 0


def test_figures_without_a_comparison_carry_no_compare_header(tired_wide):
    _, result = tired_wide
    plain = build_payload(result.record, FigureOptions(text=TIRED, view="matrix"))
    assert "compare" not in plain.header
    # A record handed over for a figure that compares nothing changes nothing.
    assert build_payload(result.record, FigureOptions(text=TIRED, view="matrix"), compare=result.compare).chunks == plain.chunks


# -- errors -------------------------------------------------------------------------------------
def test_one_comparison_a_figure_and_only_in_views_that_show_it():
    with pytest.raises(OptionError, match="compare-text and compare-layer both set"):
        FigureOptions.from_mapping({"compare-text": "x", "compare-layer": 1})
    with pytest.raises(OptionError, match="'compare-model' does nothing in the neuron view"):
        FigureOptions.from_mapping({"compare-model": "minilm", "view": "neuron"})
    with pytest.raises(OptionError, match="option 'compare-text' does not combine with generate"):
        FigureOptions.from_mapping({"compare-text": "x", "generate": 3, "model": "smollm2"})
    with pytest.raises(OptionError, match="compare-layer.*model view"):
        FigureOptions.from_mapping({"compare-layer": 1, "view": "model"})
    with pytest.raises(OptionError, match="option 'difference' needs a comparison"):
        FigureOptions.from_mapping({"difference": "false", "view": "matrix"})
    with pytest.raises(OptionError, match="option 'difference' does nothing in the head view"):
        FigureOptions.from_mapping({"difference": "false", "compare-layer": 2})
    with pytest.raises(OptionError, match="option 'compare-layer' has value '-1': expected an integer >= 0"):
        FigureOptions.from_mapping({"compare-layer": "-1"})


def test_compare_layer_out_of_range_is_an_option_error(tired_wide):
    _, result = tired_wide
    with pytest.raises(OptionError, match="option 'compare-layer' is 9, out of range") as info:
        render_figure(result.record, FigureOptions(text=TIRED, compare_layer=9))
    assert "6 layers: 0-5" in info.value.hint
    with pytest.raises(OptionError, match="include-layers leaves out"):
        render_figure(result.record, FigureOptions(text=TIRED, compare_layer=3, include_layers=(0, 1)))


def test_errors_of_the_second_record_are_the_figures(tmp_path, cache_dir):
    settings = SiteSettings(cache_dir=str(cache_dir))
    _, result = _run(settings, text=TIRED, compare_model="no-such-model-anywhere")
    assert result.record is None and result.compare is None
    assert result.error.message.startswith("compare-model: ") and "no-such-model-anywhere" in result.error.message
    with pytest.raises(OptionError, match="option 'compare-text' has value '   ': expected a non-empty value"):
        FigureOptions.from_mapping({"text": TIRED, "compare-text": "   "})
    _, result = _run(settings, text=TIRED, compare_text="the cat " * 40, max_tokens=50)
    assert result.record is None and result.error.message.startswith("compare-text: the text has 82 tokens")
    frozen = SiteSettings(cache_dir=str(cache_dir), execution_mode="frozen")
    _, result = _run(frozen, text=TIRED, compare_text="A text this cache has never seen.")
    assert result.record is None and "compare-text: no cached record" in str(result.error)
    assert "frozen" in str(result.error)


def test_models_of_different_kinds_are_refused_with_a_clear_message(tmp_path, tiny_model_dir):
    settings = SiteSettings(cache_dir=str(tmp_path / "cache"))
    options, result = _run(settings, text="The cat sat.", model=str(tiny_model_dir("bert")), compare_model=str(tiny_model_dir("gpt2")))
    assert result.error is None
    with pytest.raises(OptionError, match="compares an encoder model .* with a decoder model"):
        render_figure(result.record, options, compare=result.compare)


# -- hosts --------------------------------------------------------------------------------------
FENCE = f"""# Compare

```attention
view: matrix
compare-text: {WIDE}

{TIRED}
```
"""


def _one_comparison(html: str, mode: str = "text") -> dict:
    payloads = figure_payloads(html)
    assert len(payloads) == 1
    header = payloads[0]["header"]
    assert header["compare"]["mode"] == mode
    return header


def test_attndocs_build_shows_a_comparison_and_rebuilds_from_the_cache(tmp_path, cache_dir):
    from attndocs.site import build_site

    src = tmp_path / "src"
    src.mkdir()
    (src / "index.md").write_text(FENCE, encoding="utf-8")
    overrides = {"cache_dir": str(cache_dir)}
    report = build_site(src, tmp_path / "out", overrides=overrides)
    assert report.problems == [] and report.batch.failed == 0
    header = _one_comparison((tmp_path / "out" / "index.html").read_text(encoding="utf-8"))
    assert header["compare"]["text"] == WIDE


def test_attndocs_build_names_the_option_of_a_bad_comparison(tmp_path, cache_dir):
    from attndocs.site import build_site

    src = tmp_path / "src"
    src.mkdir()
    (src / "index.md").write_text(FENCE.replace(f"compare-text: {WIDE}", "compare-model: no-such-model-anywhere"), encoding="utf-8")
    report = build_site(src, tmp_path / "out", overrides={"cache_dir": str(cache_dir)})
    assert len(report.problems) == 1 and "compare-model: " in str(report.problems[0])
    assert "attndocs-placeholder" in (tmp_path / "out" / "index.html").read_text(encoding="utf-8")


def test_mkdocs_shows_a_comparison(tmp_path, cache_dir):
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    root = tmp_path / "project"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "index.md").write_text(FENCE, encoding="utf-8")
    config = {
        "site_name": "Compare",
        "theme": {"name": "mkdocs"},
        "markdown_extensions": ["fenced_code"],
        "plugins": [{"attndocs": {"cache_dir": str(cache_dir)}}],
    }
    (root / "mkdocs.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("mkdocs").addHandler(handler)
    try:
        build(load_config(str(root / "mkdocs.yml")))
    finally:
        logging.getLogger("mkdocs").removeHandler(handler)
    assert not [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    _one_comparison((root / "site" / "index.html").read_text(encoding="utf-8"))


def test_sphinx_shows_a_comparison_and_a_warm_build_computes_nothing(tmp_path, cache_dir):
    from sphinx.testing.util import SphinxTestApp

    src = tmp_path / "src"
    shutil.copytree(ROOTS / "test-compare", src)
    overrides = {"attention_cache_dir": str(tmp_path / "cache")}
    apps = []
    for n in range(2):
        app = SphinxTestApp("html", srcdir=src, builddir=tmp_path / f"build{n}", confoverrides=overrides, freshenv=True)
        apps.append(app)
        app.build()
    try:
        from attndocs.sphinx_ext.build import state_of

        cold, warm = (state_of(app.env).stats for app in apps)
        assert cold.computed == 2 and warm.computed == 0 and warm.cached == 2
        html = (Path(apps[1].outdir) / "index.html").read_text(encoding="utf-8")
        header = _one_comparison(html)
        assert header["compare"]["text"] == WIDE
        warnings = [line for app in apps for line in app._warning.getvalue().splitlines() if "index.rst" in line]
        assert warnings == []
    finally:
        for app in apps:
            app.cleanup()


def test_notebook_figure_shows_a_comparison(cache_dir):
    import attndocs

    shown = attndocs.figure(TIRED, compare_text=WIDE, view="head", settings={"cache_dir": str(cache_dir)}, html_action="return")
    header = _one_comparison(shown.fragment)
    assert header["options"]["hash"] is False


def test_precompute_fills_both_records_for_a_frozen_build(tmp_path, tiny_model_dir):
    from attndocs.cache import RecordCache
    from attndocs.precompute import precompute
    from attndocs.site import build_site

    bert, roberta = tiny_model_dir("bert"), tiny_model_dir("roberta")
    src = tmp_path / "src"
    src.mkdir()
    block = f"```attention\nmodel: {bert}\nview: matrix\ncompare-model: {roberta}\n\nThe cat sat on the mat.\n```\n"
    (src / "index.md").write_text("# P\n\n" + block, encoding="utf-8")
    cache = tmp_path / "cache"
    report = precompute(src, {"cache_dir": str(cache)})
    assert (report.figures, report.failed) == (1, 0)
    assert sorted(e.model_id for e in RecordCache(cache).entries()) == sorted([bert.name, roberta.name])
    built = build_site(src, tmp_path / "out", overrides={"cache_dir": str(cache), "execution_mode": "frozen"})
    assert built.problems == [] and built.batch.failed == 0
    header = _one_comparison((tmp_path / "out" / "index.html").read_text(encoding="utf-8"), "model")
    # Local folders are labelled by their names: a page never shows where the docs were built.
    assert header["compare"]["labels"] == [bert.name, roberta.name]
    assert str(tmp_path) not in (tmp_path / "out" / "index.html").read_text(encoding="utf-8")


def test_progress_counts_the_figure_until_its_second_record_is_computed(tired_wide, cache_dir):
    options, _ = tired_wide  # its first record is cached; a new second text is not
    calls: list[tuple[int, int]] = []
    pipeline = Pipeline(SiteSettings(cache_dir=str(cache_dir)), progress=lambda done, total, _: calls.append((done, total)))
    result = pipeline.run([options.replace(compare_text="The animal crossed the street.")])[0]
    assert result.compare is not None and pipeline.stats.computed == 1 and pipeline.stats.cached == 1
    assert calls[0] == (0, 1) and calls[-1] == (1, 1) and [c for c in calls if c[0] == 1] == [(1, 1)]
