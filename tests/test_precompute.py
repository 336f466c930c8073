"""`attndocs precompute`: filling the cache ahead of a frozen build, for each kind of site."""

from __future__ import annotations

from pathlib import Path

import pytest

from attndocs.cache import RecordCache
from attndocs.cli import main
from attndocs.errors import OptionError
from attndocs.precompute import detect, precompute
from attndocs.site import build_site

BLOCK = "```attention\nmodel: {model}\nview: {view}\n\n{text}\n```\n\n"


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def _pages(model: Path) -> dict[str, str]:
    return {
        "a.md": "# A\n\n" + BLOCK.format(model=model, view="head", text="The cat sat.") + BLOCK.format(model=model, view="neuron", text="The cat sat."),
        "sub/b.md": "# B\n\n" + BLOCK.format(model=model, view="model", text="A dog ran.") + BLOCK.format(model="./missing", view="head", text="x"),
    }


def test_detects_each_kind_of_site(tmp_path):
    _write(tmp_path / "mk", {"mkdocs.yml": "site_name: x\n", "docs/index.md": "# x\n"})
    _write(tmp_path / "sx", {"docs/source/conf.py": "", "docs/source/index.rst": "x\n"})
    _write(tmp_path / "md", {"index.md": "# x\n"})
    assert detect(tmp_path / "mk") == ("mkdocs", (tmp_path / "mk" / "mkdocs.yml").resolve())
    assert detect(tmp_path / "sx" / "docs") == ("sphinx", (tmp_path / "sx" / "docs" / "source" / "conf.py").resolve())
    assert detect(tmp_path / "md") == ("markdown", (tmp_path / "md").resolve())
    with pytest.raises(OptionError):
        detect(tmp_path / "nowhere")


def test_markdown_folder_fills_the_cache_that_a_frozen_build_then_uses(tmp_path, tiny_model_dir):
    model = tiny_model_dir("bert")
    src = _write(tmp_path / "site", _pages(model))
    cache = tmp_path / "cache"
    report = precompute(src, {"cache_dir": str(cache)})
    assert (report.kind, report.figures, report.computed, report.failed) == ("markdown", 4, 3, 1)
    assert any(line.startswith("sub/b.md:10: failed:") for line in report.lines), report.lines
    assert any(line.startswith("a.md:3: computed") for line in report.lines), report.lines
    # One record with query/key vectors serves both figures of "The cat sat.", one more for "A dog ran."
    assert len(list(RecordCache(cache).entries())) == 2

    again = precompute(src, {"cache_dir": str(cache)})
    assert (again.computed, again.cached, again.failed) == (0, 3, 1)
    built = build_site(src, tmp_path / "out", overrides={"cache_dir": str(cache), "execution_mode": "frozen"})
    assert (built.batch.cached, built.batch.computed) == (3, 0)


def test_mkdocs_project_uses_the_plugin_settings_and_docs_dir(tmp_path, tiny_model_dir):
    model = tiny_model_dir("bert")
    root = _write(tmp_path / "proj", {f"content/{k}": v for k, v in _pages(model).items()})
    _write(root, {"mkdocs.yml": "site_name: P\ndocs_dir: content\nplugins:\n  - attndocs:\n      cache_dir: figures-cache\n"})
    report = precompute(root)
    assert report.kind == "mkdocs" and report.cache_dir == root / "figures-cache"
    assert (report.figures, report.computed, report.failed) == (4, 3, 1)
    assert len(list(RecordCache(root / "figures-cache").entries())) == 2


def test_cli_reports_and_frozen_mode_checks_that_everything_is_cached(tmp_path, tiny_model_dir, capsys):
    model = tiny_model_dir("bert")
    src = _write(tmp_path / "site", {"a.md": "# A\n\n" + BLOCK.format(model=model, view="head", text="Cached soon.")})
    cache = str(tmp_path / "cache")
    assert main(["precompute", str(src), "--cache-dir", cache, "--mode", "frozen"]) == 1
    assert "a.md:3: failed:" in capsys.readouterr().out
    assert main(["precompute", str(src), "--cache-dir", cache]) == 0
    out = capsys.readouterr().out
    assert "a.md:3: computed" in out and "1 computed, 0 already cached, 0 failed" in out
    assert main(["precompute", str(src), "--cache-dir", cache, "--mode", "frozen"]) == 0


def test_sphinx_project_is_read_by_sphinx_itself(tmp_path, tiny_model_dir):
    model = tiny_model_dir("bert")
    root = _write(
        tmp_path / "docs",
        {
            "conf.py": f'extensions = ["attndocs.sphinx_ext"]\nattention_default_model = "{model}"\n',
            "index.rst": (
                "Title\n=====\n\n.. attention::\n   :view: neuron\n\n   The cat sat.\n\n"
                ".. attention::\n   :model: ./missing\n\n   x\n\n.. toctree::\n\n   page\n"
            ),
            "page.rst": "Page\n====\n\n.. attention::\n   :view: head\n\n   The cat sat.\n",
        },
    )
    before = sorted(root.rglob("*"))
    report = precompute(root / "conf.py")
    assert (report.kind, report.figures, report.failed) == ("sphinx", 3, 1)
    assert report.computed + report.cached == 2 and report.computed >= 1
    assert report.cache_dir == root / ".cache" / "attndocs"
    assert any(line.startswith(str(root / "index.rst")) and "failed" in line for line in report.lines), report.lines
    assert sorted(p for p in root.rglob("*") if ".cache" not in p.parts) == before, "no build folder left in the project"

    frozen = precompute(root, {"execution_mode": "frozen"})
    assert (frozen.computed, frozen.cached, frozen.failed) == (0, 2, 1)
