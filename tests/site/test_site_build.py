"""`attndocs build`: pages, navigation, links, configuration, errors and frozen builds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from attndocs.cli import main
from attndocs.errors import OptionError
from attndocs.site import build_site, load_site_config


def fig(view: str = "head", text: str = "The cat sat on the mat.", **options: str) -> str:
    lines = [f"view: {view}"] + [f"{k}: {v}" for k, v in options.items()]
    return "```attention\n" + "\n".join(lines) + f"\n\n{text}\n```\n"


def site_pages(model: Path) -> dict[str, str | bytes]:
    return {
        "index.md": f"# Welcome\n\nStart with [the basics](01-basics/intro.md#the-idea) or [the basics folder](01-basics/).\n\n{fig(model=model)}",
        "01-basics/intro.md": "---\ntitle: Front matter title\n---\n# Ignored heading\n\n## The idea\n\nBack [home](../index.md). ![diagram](img/d.png)\n",
        "01-basics/second-page.md": f"Second page\n===========\n\n{fig('model', model=model)}",
        "01-basics/img/d.png": b"\x89PNG\r\n\x1a\n",
        "02-more/deep/notes.md": "Some notes without any heading.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        ".hidden/secret.md": "# Never published\n",
    }


@pytest.fixture
def built(markdown_site, tiny_bert, tmp_path):
    src = markdown_site(site_pages(tiny_bert))
    report = build_site(src, tmp_path / "out", overrides={"cache_dir": str(tmp_path / "cache")})
    return report


def read(report, page: str) -> str:
    return (report.out / page).read_text(encoding="utf-8")


def test_pages_folders_and_indexes(built):
    out = built.out
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and not p.name.startswith("."))
    pages = [f for f in files if f.endswith(".html")]
    assert pages == [
        "01-basics/index.html", "01-basics/intro.html", "01-basics/second-page.html",
        "02-more/deep/index.html", "02-more/deep/notes.html", "02-more/index.html", "index.html",
    ]
    assert "01-basics/img/d.png" in files
    assert (out / ".nojekyll").is_file()
    assert not any("secret" in f for f in files)
    assert built.pages == 4 and built.batch.computed == 2 and built.problems == []


def test_navigation_follows_folders_and_titles_come_from_headings(built):
    html = read(built, "01-basics/second-page.html")
    nav = html[html.index('<nav class="site-nav"') : html.index("</nav>")]
    titles = re.findall(r">([^<>]+)</a>", nav)
    assert titles == ["Welcome", "Basics", "Front matter title", "Second page", "More", "Deep", "Notes"]
    assert 'href="../01-basics/second-page.html" aria-current="page"' in nav
    assert "<title>Second page · Src</title>" in html


def test_links_point_at_built_pages_and_stay_relative(built):
    index = read(built, "index.html")
    assert 'href="01-basics/intro.html#the-idea"' in index
    assert 'href="01-basics/index.html"' in index, "a folder link names its index.html, so it works from file://"
    intro = read(built, "01-basics/intro.html")
    assert 'href="../index.html"' in intro and 'src="img/d.png"' in intro
    for page in built.out.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        refs = re.findall(r'(?:href|src)="([^"]*)"', html)
        assert not [r for r in refs if r.startswith(("/", "http:", "https:"))], page


def test_assets_only_on_pages_with_figures(built):
    assert re.search(r'<script defer src="_static/attndocs\.[0-9a-f]+\.js">', read(built, "index.html"))
    assert re.search(r'src="\.\./_static/attndocs\.[0-9a-f]+\.js"', read(built, "01-basics/second-page.html"))
    assert "attndocs." not in read(built, "01-basics/intro.html").replace("attndocs build", "")
    for page in ("index.html", "01-basics/second-page.html"):
        html = read(built, page)
        for ref in re.findall(r'(?:href|src)="([^"]*_static/[^"]+)"', html):
            assert (built.out / page).parent.joinpath(ref).resolve().is_file(), ref


def test_rebuild_is_byte_identical_and_clears_its_own_folder(markdown_site, tiny_bert, tmp_path):
    src = markdown_site(site_pages(tiny_bert))
    overrides = {"cache_dir": str(tmp_path / "cache")}
    first = build_site(src, tmp_path / "out", overrides=overrides)
    snapshot = {p.relative_to(first.out): p.read_bytes() for p in first.out.rglob("*") if p.is_file()}
    second = build_site(src, tmp_path / "out", overrides=overrides)
    assert (second.batch.cached, second.batch.computed) == (2, 0)
    assert {p.relative_to(second.out): p.read_bytes() for p in second.out.rglob("*") if p.is_file()} == snapshot
    (src / "02-more" / "deep" / "notes.md").unlink()
    build_site(src, tmp_path / "out", overrides=overrides)
    assert not (tmp_path / "out" / "02-more").exists(), "a page removed from the source is gone from the output"


def test_refuses_to_clear_a_folder_it_did_not_write(markdown_site, tmp_path):
    src = markdown_site({"index.md": "# Hi\n"})
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(OptionError, match="not written by attndocs build"):
        build_site(src, precious)
    assert (precious / "thesis.tex").read_text() == "years of work"
    with pytest.raises(OptionError, match="contains the pages"):
        build_site(src, src.parent)


def test_attndocs_toml_sets_title_docs_dir_and_settings(markdown_site, tmp_path):
    src = markdown_site(
        {"docs/index.md": "# Home\n\n```attention\n\nNot computed.\n```\n", "README.txt": "not a page"},
        toml='title = "My course"\ndocs_dir = "docs"\nexecution_mode = "off"\ndefault_model = "minilm"\n',
    )
    config = load_site_config(src)
    assert config.title == "My course" and config.docs_dir == src / "docs"
    assert config.settings.execution_mode == "off"
    assert config.settings.cache_dir == str(src / ".cache" / "attndocs"), "the cache sits beside attndocs.toml"
    report = build_site(src, tmp_path / "out")
    html = read(report, "index.html")
    assert "<title>Home · My course</title>" in html and "execution mode is off" in html
    assert report.batch.off == 1 and report.problems == []
    assert not (report.out / "README.txt").exists(), "only docs_dir is published"


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ('colour = "red"\n', ["unknown setting 'colour'", "default_model"]),
        ('execution_mode = "sometimes"\n', ["execution-mode", "sometimes", "frozen"]),
        ("title = \n", ["attndocs.toml", "line 1"]),
        ('docs_dir = "nowhere"\n', ["docs_dir", "nowhere"]),
    ],
)
def test_bad_configuration_is_one_clear_error(markdown_site, toml, words):
    src = markdown_site({"index.md": "# Hi\n"}, toml=toml)
    with pytest.raises(OptionError) as info:
        load_site_config(src)
    for word in words:
        assert word in str(info.value)


def test_cli_warns_with_file_and_line_and_strict_fails(markdown_site, tiny_bert, tmp_path, capsys):
    src = markdown_site({"index.md": "# Hi\n", "sub/bad.md": f"# Bad\n\nText.\n\n{fig('sideways', model=tiny_bert)}"})
    args = ["build", str(src), "-o", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "warning: sub/bad.md:6: " in captured.err and "sideways" in captured.err
    assert "1 failed" in captured.out and "open file://" in captured.out
    assert "attndocs-placeholder" in (tmp_path / "out" / "sub" / "bad.html").read_text()
    assert main([*args, "--strict"]) == 1


FROZEN_BUILD = """
import sys
sys.modules["torch"] = None          # any import of torch now fails
sys.modules["transformers"] = None
from attndocs.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_frozen_build_needs_no_torch(markdown_site, tiny_bert, tmp_path):
    src = markdown_site(site_pages(tiny_bert))
    cache = str(tmp_path / "cache")
    build_site(src, tmp_path / "warm", overrides={"cache_dir": cache})
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    command = [sys.executable, "-c", FROZEN_BUILD, "build", str(src), "-o", str(tmp_path / "frozen"), "--cache-dir", cache, "--mode", "frozen", "--strict"]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "2 cached, 0 computed, 0 failed" in done.stdout
    assert (tmp_path / "frozen" / "index.html").read_text() == (tmp_path / "warm" / "index.html").read_text()

    (src / "new.md").write_text("# New\n\n" + fig(model=tiny_bert, text="Never computed."))
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 1
    assert "new.md:3: " in done.stderr and "frozen" in done.stderr


def test_the_default_cache_beside_attndocs_toml_is_never_published(markdown_site, tiny_bert, tmp_path):
    """With attndocs.toml among the pages, the cache (.cache/attndocs) lies inside them: it is skipped."""
    src = markdown_site({"index.md": "# Hi\n\n" + fig(model=tiny_bert)}, toml='title = "T"\n')
    first = build_site(src, tmp_path / "out")
    assert (src / ".cache" / "attndocs").is_dir() and first.batch.computed == 1
    second = build_site(src, tmp_path / "out")
    assert second.batch.cached == 1, "the cache survived the rebuild"
    assert not [p for p in second.out.rglob("*") if p.suffix == ".safetensors" or ".cache" in p.parts]


def test_output_folder_inside_the_pages_is_refused(markdown_site, tmp_path):
    """Each build would otherwise publish the previous one (MkDocs refuses site_dir in docs_dir too)."""
    src = markdown_site({"index.md": "# Hi\n"})
    with pytest.raises(OptionError, match="is inside the pages folder"):
        build_site(src, src / "site")
    assert not (src / "site").exists()
