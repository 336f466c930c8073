"""The pipeline: cache hits and misses, execution modes, damaged entries, per-figure errors."""

from __future__ import annotations

import numpy as np
import pytest

from attndocs.errors import CacheError, InputError, ModelError
from attndocs.options import FigureOptions, SiteSettings
from attndocs.pipeline import Pipeline

pytestmark = pytest.mark.real


def _settings(tmp_path, **changes) -> SiteSettings:
    return SiteSettings.from_mapping({"cache_dir": str(tmp_path / "cache"), **changes})


def _fig(text: str, **options) -> FigureOptions:
    return FigureOptions.from_mapping({"text": text, **options})


FIGS = [_fig("The cat sat on the mat."), _fig("The cat sat on the mat.", **{"text-b": "It was tired."})]


def test_cold_then_warm_serves_everything_from_the_cache(tmp_path):
    from attndocs.models import resolve_model
    from attndocs.models.load import is_loaded

    cold = Pipeline(_settings(tmp_path))
    held = is_loaded(resolve_model("minilm"))  # an earlier test in this process may hold it
    first = cold.run(FIGS)
    assert [r.source for r in first] == ["computed", "computed"]
    assert cold.stats.computed == 2 and cold.stats.models_loaded == (0 if held else 1)
    warm = Pipeline(_settings(tmp_path))
    second = warm.run(FIGS)
    assert [r.source for r in second] == ["cache", "cache"]
    assert warm.stats.computed == 0 and warm.stats.models_loaded == 0
    for a, b in zip(first, second):
        assert np.array_equal(a.record.sections["encoder"].attention, b.record.sections["encoder"].attention)
        assert a.record.sides["encoder"].tokens == b.record.sides["encoder"].tokens
    assert second[1].record.sides["encoder"].text_b_start == first[1].record.sides["encoder"].text_b_start


def test_a_change_of_text_is_a_miss(tmp_path):
    Pipeline(_settings(tmp_path)).run(FIGS[:1])
    again = Pipeline(_settings(tmp_path)).run([_fig("The cat sat on the rug.")])
    assert again[0].source == "computed"


def test_frozen_mode_serves_hits_and_fails_misses_clearly(tmp_path):
    Pipeline(_settings(tmp_path)).run(FIGS[:1])
    frozen = Pipeline(_settings(tmp_path, execution_mode="frozen"))
    hit, miss = frozen.run([FIGS[0], _fig("Never computed before.")])
    assert hit.source == "cache"
    assert isinstance(miss.error, CacheError) and "frozen" in str(miss.error)
    assert frozen.stats.models_loaded == 0 and frozen.stats.failed == 1


def test_force_mode_recomputes_hits(tmp_path):
    Pipeline(_settings(tmp_path)).run(FIGS[:1])
    forced = Pipeline(_settings(tmp_path, execution_mode="force")).run(FIGS[:1])
    assert forced[0].source == "computed"


def test_off_mode_computes_nothing(tmp_path):
    pipeline = Pipeline(_settings(tmp_path, execution_mode="off"))
    result = pipeline.run(FIGS[:1])[0]
    assert result.source == "off" and result.record is None and result.error is None
    assert not (tmp_path / "cache").exists()


def test_a_damaged_entry_is_reported_removed_and_recomputed(tmp_path):
    first = Pipeline(_settings(tmp_path)).run(FIGS[:1])[0]
    pipeline = Pipeline(_settings(tmp_path))
    path = pipeline.cache.path_for(first.record.key)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # flip a byte in the tensor body
    path.write_bytes(bytes(data))
    again = pipeline.run(FIGS[:1])[0]
    assert again.source == "computed"
    assert any("damaged cache entry" in w and "recomputed" in w for w in again.warnings)
    assert np.array_equal(again.record.sections["encoder"].attention, first.record.sections["encoder"].attention)
    assert Pipeline(_settings(tmp_path)).run(FIGS[:1])[0].source == "cache"


def test_one_bad_figure_does_not_stop_the_others(tmp_path):
    results = Pipeline(_settings(tmp_path)).run(
        [_fig(""), _fig("Fine.", model="no such model!"), _fig("word " * 40, **{"max-tokens": "5"}), FIGS[0]]
    )
    assert isinstance(results[0].error, InputError)
    assert isinstance(results[1].error, ModelError)
    assert isinstance(results[2].error, InputError) and "max-tokens" in str(results[2].error)
    assert results[3].ok


def test_max_tokens_applies_to_cache_hits_too(tmp_path):
    Pipeline(_settings(tmp_path)).run(FIGS[:1])
    result = Pipeline(_settings(tmp_path, max_tokens=3)).run(FIGS[:1])[0]
    assert isinstance(result.error, InputError)


def test_misses_of_several_models_load_each_model_once(tmp_path):
    from attndocs.models import resolve_model
    from attndocs.models.load import is_loaded, loaded_count

    figs = [_fig("One."), _fig("Two words."), _fig("Three words here.", model="bert2bert-minilm", target="Drei.")]
    new_models = sum(not is_loaded(resolve_model(name)) for name in ("minilm", "bert2bert-minilm"))
    before = loaded_count()
    pipeline = Pipeline(_settings(tmp_path))
    progress: list[str] = []
    pipeline.progress = lambda done, total, message: progress.append(message)
    results = pipeline.run(figs)
    assert all(r.ok for r in results)
    assert pipeline.stats.models_loaded == new_models == loaded_count() - before
    assert any("minilm" in m for m in progress)


def test_unreadable_cache_folder_is_an_error_not_a_silent_recompute(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    settings = SiteSettings.from_mapping({"cache_dir": str(blocker / "cache")})
    result = Pipeline(settings).run(FIGS[:1])[0]
    assert isinstance(result.error, CacheError)


def test_a_model_already_in_memory_is_not_counted_as_a_load(tmp_path):
    Pipeline(_settings(tmp_path)).run(FIGS[:1])  # minilm is now held by this process
    again = Pipeline(_settings(tmp_path / "other"))
    messages: list[str] = []
    again.progress = lambda done, total, message: messages.append(message)
    assert again.run(FIGS[:1])[0].source == "computed"
    assert again.stats.models_loaded == 0
    assert not any(m.startswith("loading") for m in messages)
