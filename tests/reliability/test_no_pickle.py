"""No cache file can hold a pickle, and reading the cache never unpickles anything.

A committed cache comes from other people (a pull request, a CI artifact). Loading a pickle
from it would run their code on every reader's machine; safetensors plus verified metadata
is the whole format.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import sys

import numpy as np
import pytest
from reliability_helpers import assert_only_plain_safetensors, plain_safetensors_problem

from attndocs.cache import RecordCache
from attndocs.cli import main as cli_main
from attndocs.errors import CacheError, DamagedEntryError
from attndocs.options import SiteSettings
from attndocs.pipeline import Pipeline
from attndocs.record import AttentionRecord

CANARY = "ATTNDOCS_PICKLE_CANARY"


class _Boom:
    """Unpickling this sets a canary: proof that a pickle ran, had one been loaded."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (exec, (f"import os; os.environ[{CANARY!r}] = 'pickle ran'",))


def _forbid_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the cache tried to unpickle something")

    for name in ("load", "loads", "Unpickler", "_load", "_loads", "_Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(np, "load", refuse)
    if "torch" in sys.modules:
        monkeypatch.setattr(sys.modules["torch"], "load", refuse)


@pytest.fixture(scope="module")
def filled_cache(tmp_path_factory, rel_figures, references):  # type: ignore[no-untyped-def]
    """A cache holding every family's records, Q/K and T5's bias included."""
    root = tmp_path_factory.mktemp("pickle-scan")
    pipeline = Pipeline(SiteSettings.from_mapping({"cache_dir": str(root)}))
    results = pipeline.run([f.options() for f in rel_figures], qk=[f.qk for f in rel_figures])
    assert all(r.error is None for r in results)
    return root


def test_every_cache_file_is_a_safetensors_header_and_raw_tensor_bytes(filled_cache, references):
    assert assert_only_plain_safetensors([filled_cache]) == len(references)


def test_reading_the_cache_never_calls_pickle(filled_cache, rel_figures, references, monkeypatch, capsys):
    _forbid_unpickling(monkeypatch)
    cache = RecordCache(filled_cache)
    for key, expected in references.items():
        record = cache.get(key)
        assert record is not None
        assert all(np.array_equal(a, expected.tensors()[name]) for name, a in record.tensors().items())
    assert cache.verify() == []
    assert len(list(cache.entries())) == len(references)
    for args in (["ls"], ["ls", "--json"], ["verify"], ["info", next(iter(references))[:12]]):
        assert cli_main(["cache", *args, "--cache-dir", str(filled_cache)]) == 0
    capsys.readouterr()
    # A warm build reads every figure through the pipeline: still no pickle.
    pipeline = Pipeline(SiteSettings.from_mapping({"cache_dir": str(filled_cache)}))
    results = pipeline.run([f.options() for f in rel_figures], qk=[f.qk for f in rel_figures])
    assert [r.source for r in results] == ["cache"] * len(rel_figures)


@pytest.mark.parametrize("form", ["pickle", "torch-zip", "pickle-in-tensor-bytes", "pickle-after-tensors"])
def test_an_entry_holding_a_pickle_is_refused_and_never_unpickled(tmp_path, references, form, monkeypatch):
    monkeypatch.delenv(CANARY, raising=False)
    key, record = next(iter(references.items()))
    cache = RecordCache(tmp_path / "cache")
    path = cache.put(record)
    evil = pickle.dumps(_Boom(), protocol=4)
    good = path.read_bytes()
    if form == "pickle":
        data = evil
    elif form == "torch-zip":
        buffer = io.BytesIO()
        import zipfile

        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("archive/data.pkl", evil)
        data = buffer.getvalue()
    elif form == "pickle-in-tensor-bytes":
        size = int.from_bytes(good[:8], "little")
        start = 8 + size
        data = good[:start] + evil + good[start + len(evil):]
    else:
        data = good + evil
    path.write_bytes(data)
    if form != "pickle-in-tensor-bytes":
        assert plain_safetensors_problem(path) is not None  # the scan itself catches it
    _forbid_unpickling(monkeypatch)
    with pytest.raises(DamagedEntryError):
        cache.get(key)
    assert cache.get(key) is None  # removed, so the next build recomputes it
    path.write_bytes(data)
    with pytest.raises(CacheError):
        AttentionRecord.load(path)  # what `attndocs extract -o` files are read with
    assert os.environ.get(CANARY) is None


def test_the_scan_and_the_canary_would_catch_what_they_look_for(tmp_path, monkeypatch):
    """The scan used across the suite, and the canary above, are not vacuous."""
    monkeypatch.delenv(CANARY, raising=False)
    pickle.loads(pickle.dumps(_Boom()))
    assert os.environ.get(CANARY) == "pickle ran"
    bad = tmp_path / "entry.safetensors"
    bad.write_bytes(pickle.dumps({"a": 1}))
    assert plain_safetensors_problem(bad)
    from safetensors.numpy import save

    good = save({"x": np.zeros((2, 3), np.float32)}, metadata={"k": "v"})
    bad.write_bytes(good + b"\x80\x04K\x01.")
    assert "after the last tensor" in plain_safetensors_problem(bad)
    bad.write_bytes(good)
    assert plain_safetensors_problem(bad) is None


# -- model weights that hold a pickle ----------------------------------------------------------------
# A model folder whose pytorch_model.bin carries code in its pickle. torch's weights-only
# loader refuses it; its message then suggests weights_only=False, which would run the code.
# attndocs must say it in one line, never pass that suggestion on, and keep building.
REFUSAL = "holds pickled code that is not allowed"


@pytest.fixture(scope="module")
def pickled_model(tmp_path_factory, rel_models):  # type: ignore[no-untyped-def]
    import shutil

    import torch
    from safetensors.torch import load_file

    folder = tmp_path_factory.mktemp("pickled") / "pickled-bert"
    shutil.copytree(rel_models["bert"], folder)
    state: dict = dict(load_file(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    state["boom"] = _Boom()  # an ordinary checkpoint, plus one object whose unpickling runs code
    torch.save(state, folder / "pytorch_model.bin")
    return folder


def _assert_refused_in_one_line(text: str) -> None:
    assert REFUSAL in text, text
    assert "weights_only=False" not in text and "`weights_only` set to `False`" not in text, text
    assert "Traceback" not in text and "UnpicklingError" not in text, text
    assert os.environ.get(CANARY) is None


def test_a_pickled_checkpoint_is_a_one_line_model_error(pickled_model, tmp_path, monkeypatch):
    from attndocs.errors import ModelError
    from attndocs.options import FigureOptions

    monkeypatch.delenv(CANARY, raising=False)
    pipeline = Pipeline(SiteSettings.from_mapping({"cache_dir": str(tmp_path / "cache")}))
    (result,) = pipeline.run([FigureOptions.from_mapping({"model": str(pickled_model), "text": "The cat sat."})])
    assert isinstance(result.error, ModelError)
    message = str(result.error)
    _assert_refused_in_one_line(message)
    assert "\n" not in message and "safetensors" in message and "weights_only=True" in message
    assert str(pickled_model.parent) not in message  # the folder by its name, not the machine's path


def test_extract_and_precompute_refuse_it_without_a_traceback(pickled_model, rel_models, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(CANARY, raising=False)
    out = tmp_path / "record.safetensors"
    code = cli_main(["extract", "The cat sat.", "--model", str(pickled_model), "--cache-dir", str(tmp_path / "c"), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and not out.exists()
    assert err.count("\n") == 1 and err.startswith("attndocs: error: ")
    _assert_refused_in_one_line(err)
    # precompute over a folder of pages: that figure fails by name and line, the other is computed.
    docs = tmp_path / "site"
    docs.mkdir()
    (docs / "index.md").write_text(
        f"# P\n\n```attention\nmodel: {pickled_model}\n\nThe cat sat.\n```\n\n"
        f"```attention\nmodel: {rel_models['bert']}\n\nThe dog barked.\n```\n", encoding="utf-8")
    code = cli_main(["precompute", str(docs), "--cache-dir", str(tmp_path / "c")])
    said = capsys.readouterr()
    assert code == 1  # a figure failed
    failed = [line for line in said.out.splitlines() if "failed" in line and "index.md:3" in line]
    assert len(failed) == 1, said.out
    _assert_refused_in_one_line(said.out + said.err)
    assert "1 computed" in said.out or "computed" in said.out


@pytest.mark.parametrize("frontend", ["sphinx", "mkdocs", "attndocs-build"])
def test_every_front_end_shows_it_as_a_figure_warning_and_builds_the_rest(frontend, pickled_model, rel_models, tmp_path, monkeypatch):
    from frontends import build_in_process, write_site
    from hostile_corpus import Case

    monkeypatch.delenv(CANARY, raising=False)
    cases = [Case("pickled", "The cat sat.", {"model": str(pickled_model)}, error=REFUSAL),
             Case("good", "The dog barked.", {"model": str(rel_models["bert"])})]
    site = build_in_process(write_site(frontend, tmp_path, cases))
    assert site.failed is None, site.failed
    said = "\n".join(site.warnings)
    refused = [w for w in site.warnings if REFUSAL in w]
    assert len(refused) == (2 if frontend == "sphinx" else 1), said  # Sphinx: the rst and the MyST page
    for warning in refused:
        assert re.search(r"(cases\.md|rst\.rst|myst\.md)[:\"]", warning) or "line" in warning, warning
    _assert_refused_in_one_line(said)
    html = "".join(p.read_text(encoding="utf-8") for p in site.pages())
    assert html.count('class="attndocs-figure attndocs-view-') == (2 if frontend == "sphinx" else 1)
    assert REFUSAL in html  # the placeholder says why
