"""The attention directive in rst and MyST: figures, numbering, references, assets, the alias."""

from __future__ import annotations

import re

import pytest
from site_helpers import summary_of, warnings_of

from attndocs.options import figure_fields, option_name
from attndocs.render import asset_files, figure_payloads

pytestmark = pytest.mark.real


def figures(html: str) -> list[str]:
    return re.findall(r'<figure class="attndocs-figure[^"]*"[^>]*>', html)


def headers(html: str) -> list[dict]:
    return [payload["header"] for payload in figure_payloads(html)]


def test_rst_figures_are_rendered_numbered_and_referencable(build):
    app = build("basic")
    assert warnings_of(app) == []
    index = (app.outdir / "index.html").read_text()
    page = (app.outdir / "sub" / "page.html").read_text()
    assert len(figures(index)) == 2 and len(figures(page)) == 1
    # The named figure carries its label as its id, so :ref: and :numref: links land on it.
    assert 'id="attndocs-fig-cat"' in figures(index)[0] and '<span id="fig-cat"></span><figure' in index
    assert 'data-attndocs-view="model"' in figures(index)[1]
    # Numbered like Sphinx figures (toctree order: the sub page's figure comes first).
    assert re.search(r'class="attndocs-caption">Fig\. 2 Heads of MiniLM reading one sentence\.<', index)
    assert re.search(r'class="attndocs-caption">Fig\. 1 A sentence pair\.<', page)
    assert re.search(r'href="#fig-cat"><span class="std std-numref">Fig\. 2</span>', index)
    assert re.search(r'href="#fig-cat"><span class="std std-ref">Heads of MiniLM reading one sentence\.</span>', index)
    assert re.search(r'href="\.\./index\.html#fig-cat"><span class="std std-numref">Fig\. 2</span>', page)
    first, second = headers(index)
    assert first["model"]["id"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert first["sides"]["encoder"]["tokens"][:3] == ["[CLS]", "the", "cat"]
    assert second["options"]["layer"] == 2
    (pair,) = headers(page)
    assert pair["textB"] == "It was tired."


def test_assets_are_content_hashed_and_loaded_only_by_pages_with_figures(build):
    app = build("basic")
    names = list(asset_files())
    for name in names:
        assert (app.outdir / "_static" / name).read_bytes() == asset_files()[name]
    index = (app.outdir / "index.html").read_text()
    page = (app.outdir / "sub" / "page.html").read_text()
    plain = (app.outdir / "plain.html").read_text()
    for name in names:
        assert f'_static/{name}' in index
        assert f'../_static/{name}' in page
        assert name not in plain
    assert "attndocs" not in plain
    assert "attndocs" not in (app.outdir / "genindex.html").read_text()
    # Loaded once per page, deferred so the figures boot after the page is parsed.
    js = next(n for n in names if n.endswith(".js"))
    assert len(re.findall(re.escape(js), index)) == 1
    assert re.search(rf'<script defer="defer" src="_static/{re.escape(js)}[^"]*"></script>', index)


def test_the_summary_line_counts_the_figures(build, tmp_path):
    cold = build("basic", confoverrides={"attention_cache_dir": str(tmp_path / "cache")})
    # (The model may already be loaded by an earlier test in this process: loads are not compared.)
    assert summary_of(cold) | {"models_loaded": None} == {"figures": 3, "cached": 0, "computed": 3, "failed": 0, "models_loaded": None}
    warm = build("basic", confoverrides={"attention_cache_dir": str(tmp_path / "cache")})
    assert summary_of(warm) == {"figures": 3, "cached": 3, "computed": 0, "failed": 0, "models_loaded": 0}


def test_myst_fences_make_the_same_figures(build):
    app = build("myst")
    assert warnings_of(app) == []
    html = (app.outdir / "index.html").read_text()
    assert len(figures(html)) == 3
    head, pair, model = headers(html)
    assert head["sides"]["encoder"]["tokens"][1:4] == ["the", "cat", "sat"]
    assert pair["textB"] == "It was tired."
    assert model["view"] == "model" and model["options"]["heads"] == [0, 3]
    assert '<span id="fig-myst"></span><figure' in html
    assert re.search(r'href="#fig-myst"><span class="std std-numref">Fig\. 1</span>', html)


def test_every_figure_option_is_a_directive_option(build):
    from attndocs.sphinx_ext.directive import AttentionDirective

    assert {option_name(f) for f in figure_fields()} <= set(AttentionDirective.option_spec)


def test_with_the_override_off_attention_stays_the_admonition(build):
    app = build("admonition", confoverrides={"attention_override_admonition": False})
    assert warnings_of(app) == []
    html = (app.outdir / "index.html").read_text()
    assert re.search(r'<div class="admonition attention">\s*<p class="admonition-title">Attention</p>\s*<p>Mind the gap\.</p>', html)
    assert len(figures(html)) == 1  # the attention-figure block


def test_by_default_attention_is_the_figure_and_says_so_for_admonition_style_text(build):
    app = build("admonition")
    html = (app.outdir / "index.html").read_text()
    assert "admonition attention" not in html
    # The body of the old admonition became a figure of its text; the figure block too.
    assert len(figures(html)) == 2
    assert headers(html)[0]["text"] == "Mind the gap."


def test_relative_model_folders_are_found_beside_conf_py(build, tiny_model_dir, tmp_path):
    srcdir = tmp_path / "relative-src"
    srcdir.mkdir()
    (srcdir / "conf.py").write_text('extensions = ["attndocs.sphinx_ext"]\n')
    (srcdir / "models").mkdir()
    (srcdir / "models" / "tiny-gpt2").symlink_to(tiny_model_dir("gpt2"), target_is_directory=True)
    (srcdir / "index.rst").write_text("Relative\n========\n\n.. attention::\n   :model: models/tiny-gpt2\n\n   The cat sat.\n")
    app = build(srcdir=srcdir)
    assert warnings_of(app) == []
    (header,) = headers((app.outdir / "index.html").read_text())
    # Named by the folder the author wrote, never by a path of the build machine.
    assert header["model"]["id"] == "tiny-gpt2"
    assert str(tmp_path) not in (app.outdir / "index.html").read_text()
    assert header["kind"] == "decoder"
