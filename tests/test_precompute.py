"""`attndocs precompute`: filling the cache ahead of a frozen build, for each kind of site."""

from __future__ import annotations

from pathlib import Path

import pytest

from attndocs.cache import RecordCache
from attndocs.cli import main
from attndocs.errors import OptionError
from attndocs.precompute import Shard, detect, precompute
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


# -- shards: several machines fill one cache ----------------------------------------------------
SHARD_TEXTS = [f"Figure number {n} reads a sentence of its own." for n in range(12)]


def _sharded_site(root: Path, model: Path) -> Path:
    pages = {}
    for n, text in enumerate(SHARD_TEXTS):
        view = "neuron" if n % 4 == 0 else "head"
        pages[f"p{n % 3}/page{n}.md"] = f"# Page {n}\n\n" + BLOCK.format(model=model, view=view, text=text)
    pages["p0/page0.md"] += BLOCK.format(model=model, view="model", text=SHARD_TEXTS[0])  # shares its record
    pages["broken.md"] = BLOCK.format(model="./missing", view="head", text="x")
    return _write(root, pages)


def _keys(cache: Path) -> set[str]:
    return {entry.key for entry in RecordCache(cache).entries()}


def test_shards_split_keys_evenly_and_each_key_has_exactly_one_shard():
    import hashlib

    keys = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(3000)]
    shards = [Shard(k, 3) for k in (1, 2, 3)]
    owners = [[s for s in shards if s.owns(key)] for key in keys]
    assert all(len(o) == 1 for o in owners)
    sizes = [sum(1 for o in owners if o[0] == s) for s in shards]
    assert all(900 < size < 1100 for size in sizes), sizes
    assert all(Shard(1, 1).owns(key) for key in keys[:10])
    assert Shard.parse(" 2 / 3 ") == Shard(2, 3) and str(Shard(2, 3)) == "2/3"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0/3", "K must be from 1 to 3, not 0"),
        ("4/3", "K must be from 1 to 3, not 4"),
        ("1/0", "N must be from 1 to 10,000, not 0"),
        ("1/20000", "N must be from 1 to 10,000, not 20000"),
        ("3", "is not K/N"),
        ("a/b", "is not K/N"),
        ("-1/3", "is not K/N"),
        ("", "is not K/N"),
    ],
)
def test_bad_shards_are_refused_in_words(text, says, tmp_path, capsys):
    with pytest.raises(OptionError, match=says):
        Shard.parse(text)
    assert main(["precompute", str(tmp_path), f"--shard={text}"]) == 1
    assert says in capsys.readouterr().err


def test_three_shards_in_three_caches_merge_by_copying_into_one_that_serves_a_frozen_build(tmp_path, tiny_model_dir):
    import shutil

    src = _sharded_site(tmp_path / "site", tiny_model_dir("bert"))
    whole = precompute(src, {"cache_dir": str(tmp_path / "whole")})
    assert (whole.figures, whole.failed) == (14, 1) and whole.computed == 13
    reports = [precompute(src, {"cache_dir": str(tmp_path / f"shard{k}")}, shard=f"{k}/3") for k in (1, 2, 3)]
    parts = [_keys(tmp_path / f"shard{k}") for k in (1, 2, 3)]
    # Exactly one shard computed each record; together they computed what one run did.
    assert parts[0].isdisjoint(parts[1]) and parts[0].isdisjoint(parts[2]) and parts[1].isdisjoint(parts[2])
    assert parts[0] | parts[1] | parts[2] == _keys(tmp_path / "whole") and len(_keys(tmp_path / "whole")) == 12
    assert sum(1 for p in parts if p) >= 2, "the split put every figure in one shard"
    for report in reports:
        assert report.shard is not None and report.failed == 1  # a figure that cannot run fails in every shard
        assert report.computed + report.elsewhere == 13 and report.cached == 0
        assert f"(shard {report.shard})" in report.summary() and f"{report.elsewhere} left to other shards" in report.summary()
    assert sum(r.computed for r in reports) == 13

    merged = tmp_path / "merged"
    for k in (1, 2, 3):
        shutil.copytree(tmp_path / f"shard{k}", merged, dirs_exist_ok=True)
    built = build_site(src, tmp_path / "out", overrides={"cache_dir": str(merged), "execution_mode": "frozen"})
    assert (built.batch.cached, built.batch.computed, built.batch.failed) == (13, 0, 1)
    # A shard run over the merged cache finds nothing left to compute.
    again = precompute(src, {"cache_dir": str(merged)}, shard="2/3")
    assert (again.computed, again.cached, again.elsewhere) == (0, 13, 0)


def test_shards_do_not_depend_on_page_order_or_the_kind_of_site(tmp_path, tiny_model_dir):
    model = tiny_model_dir("bert")
    texts = SHARD_TEXTS[:6]
    md = _write(tmp_path / "md", {f"{n}.md": BLOCK.format(model=model, view="head", text=t) for n, t in enumerate(texts)})
    backwards = _write(tmp_path / "back", {f"{n}.md": BLOCK.format(model=model, view="head", text=t) for n, t in enumerate(reversed(texts))})
    rst = "".join(f".. attention::\n   :model: {model}\n\n   {t}\n\n" for t in texts)
    sx = _write(tmp_path / "sx", {"conf.py": 'extensions = ["attndocs.sphinx_ext"]\n', "index.rst": "Title\n=====\n\n" + rst})
    found = []
    for name, src in (("md", md), ("back", backwards), ("sx", sx)):
        report = precompute(src, {"cache_dir": str(tmp_path / f"c-{name}")}, shard="1/2")
        assert report.computed + report.elsewhere == 6 and report.failed == 0, report.lines
        found.append(_keys(tmp_path / f"c-{name}"))
    assert found[0] == found[1] == found[2]


def test_cli_precompute_runs_one_shard(tmp_path, tiny_model_dir, capsys):
    src = _sharded_site(tmp_path / "site", tiny_model_dir("bert"))
    assert main(["precompute", str(src), "--cache-dir", str(tmp_path / "c"), "--shard", "3/3"]) == 1  # broken.md fails
    out = capsys.readouterr().out
    assert "(shard 3/3): 14 figure(s)" in out and "left to other shards, 1 failed" in out
