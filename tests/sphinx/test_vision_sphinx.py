"""Sphinx with image figures: paths relative to the document, a warning with file and line, the patch view offline."""

from __future__ import annotations

import re
import shutil

from site_helpers import ROOTS, warnings_of

from tests.test_vision import draw_scene


def test_an_image_figure_in_sphinx(build, tiny_model_dir, tmp_path, open_site):
    srcdir = tmp_path / "vision-src"
    shutil.copytree(ROOTS / "test-vision", srcdir)
    (srcdir / "guide/pics").mkdir()
    draw_scene(srcdir / "guide/pics/scene.png")
    overrides = {"attention_model_aliases": {"tinyvit": str(tiny_model_dir("vit"))}, "attention_cache_dir": str(tmp_path / "cache")}
    app = build(srcdir=srcdir, confoverrides=overrides)
    warnings = warnings_of(app)
    assert len(warnings) == 1, warnings
    assert re.search(r"guide[/\\]seeing\.rst:\d+: WARNING: .*nope\.png' not found", warnings[0]), warnings[0]
    line = int(re.search(r"seeing\.rst:(\d+):", warnings[0]).group(1))
    assert (srcdir / "guide/seeing.rst").read_text().splitlines()[line - 1].startswith(".. attention::")

    probe = open_site(app.outdir, "guide/seeing.html")
    fig = probe.figures.first
    assert fig.get_attribute("data-attndocs-view") == "patch"
    probe.page.wait_for_function("() => document.querySelector('.attndocs-pdesc').textContent.length > 0")
    stats = probe.canvas_stats(".attndocs-pcanvas")
    assert stats["painted"] == stats["width"] * stats["height"]
    fig.locator(".attndocs-seg[data-value='rollout']").click()
    assert fig.locator(".attndocs-pdesc").inner_text().startswith("Rollout from [CLS] through layer 0")
