"""`trust_remote_code` is never on unless the site configures it.

A model folder or hub repository can ship Python code (``auto_map`` in config.json) that
transformers runs when asked to trust it. A documentation build must never run such code
because a page named the model: only the site's own setting can allow it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from frontends import FRONTENDS, build_in_process, write_site
from hostile_corpus import Case
from reliability_helpers import PYTHON, REPO, worker_env

from attndocs.cli import build_parser, settings_from_args
from attndocs.errors import ModelError
from attndocs.options import FigureOptions, SiteSettings
from attndocs.pipeline import Pipeline

MODELING = '''\
import os
from pathlib import Path

from transformers import BertModel

# Proof that this file ran: only a site that opted in may get here.
Path(os.environ["ATTNDOCS_REMOTE_CODE_MARKER"]).write_text("remote code ran")


class CustomModel(BertModel):
    pass
'''


def _remote_code_model(tiny_bert: Path, folder: Path) -> Path:
    shutil.copytree(tiny_bert, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_custom.CustomModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_custom.py").write_text(MODELING)
    return folder


def test_a_model_with_its_own_code_is_refused_by_default_and_its_code_never_runs(tmp_path, rel_models, monkeypatch):
    marker = tmp_path / "marker"
    monkeypatch.setenv("ATTNDOCS_REMOTE_CODE_MARKER", str(marker))
    folder = _remote_code_model(rel_models["bert"], tmp_path / "remote-code-model")
    pipeline = Pipeline(SiteSettings.from_mapping({"cache_dir": str(tmp_path / "cache")}))
    result = pipeline.run([FigureOptions(model=str(folder), text="The cat sat on the mat.")])[0]
    assert isinstance(result.error, ModelError)
    assert "trust_remote_code" in str(result.error) and "trust-remote-code" in str(result.error)
    assert pipeline.stats.models_loaded == 0
    assert not marker.exists()


def test_the_site_setting_allows_it(tmp_path, rel_models):
    """With the setting on (here the CLI's --trust-remote-code) the model loads through its own code."""
    marker = tmp_path / "marker"
    folder = _remote_code_model(rel_models["bert"], tmp_path / "remote-code-model")
    env = worker_env({"ATTNDOCS_REMOTE_CODE_MARKER": str(marker), "HF_MODULES_CACHE": str(tmp_path / "hf-modules")})
    base = [PYTHON, "-m", "attndocs.cli", "extract", "--model", str(folder), "--cache-dir", str(tmp_path / "cache"),
            "-o", str(tmp_path / "out.safetensors")]
    refused = subprocess.run([*base, "The cat sat."], capture_output=True, text=True, env=env, cwd=str(REPO), timeout=300)
    assert refused.returncode == 1 and "trust_remote_code" in refused.stderr
    assert not marker.exists()
    allowed = subprocess.run([*base, "--trust-remote-code", "The cat sat."], capture_output=True, text=True, env=env,
                             cwd=str(REPO), timeout=300)
    assert allowed.returncode == 0, allowed.stderr
    assert marker.read_text() == "remote code ran"


@pytest.fixture
def loader_spy(monkeypatch) -> list[tuple[str, dict[str, Any]]]:  # type: ignore[no-untyped-def]
    """Every call into transformers' loaders, with its keyword arguments."""
    import transformers

    calls: list[tuple[str, dict[str, Any]]] = []
    for name in ("AutoConfig", "AutoTokenizer", "AutoModel", "EncoderDecoderModel"):
        cls = getattr(transformers, name)
        original = cls.from_pretrained.__func__

        def spy(klass, *args, __name=name, __original=original, **kwargs):  # type: ignore[no-untyped-def]
            calls.append((__name, dict(kwargs)))
            return __original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    return calls


def test_transformers_is_told_trust_remote_code_false_by_default(tmp_path, fresh_model_copy, loader_spy):
    # Fresh copies: a model this process loaded before would be served without a new load.
    figures = [
        FigureOptions(model=str(fresh_model_copy("bert", tmp_path / "bert")), text="The cat sat."),
        FigureOptions(model=str(fresh_model_copy("bert2bert", tmp_path / "b2b")), text="The cat sat.",
                      target="It was tired."),
    ]
    pipeline = Pipeline(SiteSettings.from_mapping({"cache_dir": str(tmp_path / "cache")}))
    results = pipeline.run(figures)
    assert [r.error for r in results] == [None, None]
    loads = [(name, kwargs) for name, kwargs in loader_spy if name in ("AutoTokenizer", "AutoModel", "EncoderDecoderModel")]
    assert {name for name, _ in loads} >= {"AutoTokenizer", "AutoModel", "EncoderDecoderModel"}
    # Passed explicitly as False, not left to transformers' default (which a config could change).
    assert all(kwargs.get("trust_remote_code") is False for _, kwargs in loads), loads
    assert all(kwargs.get("trust_remote_code", False) is False for _, kwargs in loader_spy)


def test_every_front_end_defaults_to_off():
    assert SiteSettings().trust_remote_code is False
    args = build_parser().parse_args(["extract", "-o", "x.safetensors", "text"])
    assert settings_from_args(args).trust_remote_code is False
    with pytest.raises(Exception, match="trust"):
        FigureOptions.from_mapping({"text": "x", "trust-remote-code": "true"})  # a page cannot turn it on


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_a_page_naming_such_a_model_gets_a_warning_in_every_front_end(frontend, tmp_path, rel_models, monkeypatch):
    """No page can opt in: a figure naming a model with its own code is refused where it stands."""
    marker = tmp_path / "marker"
    monkeypatch.setenv("ATTNDOCS_REMOTE_CODE_MARKER", str(marker))
    folder = _remote_code_model(rel_models["bert"], tmp_path / "remote-code-model")
    case = Case("remote-code", "The cat sat on the mat.", {"model": str(folder)}, error="trust_remote_code")
    site = build_in_process(write_site(frontend, tmp_path / "site", [case]))
    assert site.failed is None, site.failed
    placed = site.placed[0]
    named = [w for w in site.warnings if placed.page in w and "trust_remote_code" in w]
    assert named, f"{frontend}: no warning naming {placed.page} and trust_remote_code: {site.warnings}"
    assert not marker.exists()
