"""Whole builds: warm rebuilds, incremental edits, -j 2, every builder, side-file payloads."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import pytest
from site_helpers import plain, read_output, summary_of, warnings_of

from attndocs.cache import RecordCache
from attndocs.render import asset_files, figure_payloads

pytestmark = pytest.mark.real


def test_a_warm_build_computes_nothing_and_writes_the_same_bytes(build, tmp_path):
    cache = {"attention_cache_dir": str(tmp_path / "cache")}
    cold = build("basic", confoverrides=cache)
    warm = build("basic", confoverrides=cache)
    assert summary_of(cold)["computed"] == 3
    assert summary_of(warm) == {"figures": 3, "cached": 3, "computed": 0, "failed": 0, "models_loaded": 0}
    before, after = read_output(cold.outdir), read_output(warm.outdir)
    assert before.keys() == after.keys()
    assert [name for name in before if before[name] != after[name]] == []


def test_editing_one_page_recomputes_only_its_figures(build, tmp_path):
    cache = {"attention_cache_dir": str(tmp_path / "cache")}
    builddir = tmp_path / "build"
    first = build("basic", builddir=builddir, confoverrides=cache)
    assert summary_of(first)["computed"] == 3
    page = first.srcdir / "sub" / "page.rst"
    page.write_text(page.read_text().replace("The cat sat on the mat.", "The dog sat on the rug."))
    second = build("basic", builddir=builddir, freshenv=False, confoverrides=cache)
    assert re.search(r"reading sources\.\.\. \[100%\] sub/page\n", plain(second.status.getvalue()))
    assert summary_of(second) | {"models_loaded": None} == {"figures": 1, "cached": 0, "computed": 1, "failed": 0, "models_loaded": None}
    html = (second.outdir / "sub" / "page.html").read_text()
    assert '"dog"' in html and '"cat"' not in html
    # The other page was not read again, and is still complete when written.
    index = (second.outdir / "index.html").read_text()
    assert index.count('data-attndocs-view="') == 2


def test_parallel_builds_write_exactly_what_serial_builds_write(build):
    serial = build("parallel")
    parallel = build("parallel", parallel=2)
    assert warnings_of(serial) == [] and warnings_of(parallel) == []
    assert summary_of(parallel)["figures"] == 8 and summary_of(parallel)["failed"] == 0
    one, two = read_output(serial.outdir), read_output(parallel.outdir)
    assert one.keys() == two.keys()
    assert [name for name in one if one[name] != two[name]] == []
    for page in ["index.html", *(f"page-{i}.html" for i in range(1, 8))]:
        assert b'class="attndocs-figure attndocs-view-' in two[page], page
    # Numbered in toctree order: the pages (globbed before the index's own figure) first.
    assert b"Fig. 7 A MyST page among rst pages." in two["page-7.html"]
    assert b"Fig. 8 The first figure." in two["index.html"]


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, after checking that its image data inflates to that size."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    idat = data.index(b"IDAT")
    length = int.from_bytes(data[idat - 4 : idat], "big")
    assert len(zlib.decompress(data[idat + 4 : idat + 4 + length])) == height * (1 + 3 * width)
    return width, height


def test_latex_gets_numbered_heatmap_figures(build):
    app = build("basic", "latex")
    assert warnings_of(app) == []
    tex = next(app.outdir.glob("*.tex")).read_text()
    images = re.findall(r"\\sphinxincludegraphics(?:\[[^\]]*\])?\{\{(attndocs-[0-9a-f]{16})\}\.png\}", tex)
    assert len(images) == 3
    for name in images:
        width, height = png_size((app.outdir / f"{name}.png").read_bytes())
        assert width == height and width >= 400
    assert r"\caption{Heads of MiniLM reading one sentence.}\label{\detokenize{index:fig-cat}}" in tex
    assert r"\ref{\detokenize{index:fig-cat}}" in tex
    # Tokens are listed in the legend, since the image has no text.
    assert "Rows and columns: 0 {[}CLS{]} · 1 the · 2 cat" in tex


def test_epub_gets_heatmap_images_and_no_scripts(build):
    app = build("basic", "epub", confoverrides={"copyright": "2025", "version": "1"})
    assert warnings_of(app) == []
    index = (app.outdir / "index.xhtml").read_text()
    page = (app.outdir / "sub" / "page.xhtml").read_text()
    assert len(re.findall(r'<img alt="Attention head view of [^"]*" src="_images/attndocs-[0-9a-f]{16}\.png"', index)) == 1
    (src,) = re.findall(r'src="(\.\./_images/attndocs-[0-9a-f]{16}\.png)"', page)
    assert (app.outdir / "sub" / src).resolve().is_file()
    assert figure_payloads(index) == [] and "attndocs-data" not in index
    assert not any(name in index for name in asset_files())
    opf = (app.outdir / "content.opf").read_text()
    assert len(re.findall(r'href="_images/attndocs-[0-9a-f]{16}\.png"', opf)) == 3


@pytest.mark.parametrize(("builder", "suffix"), [("text", ".txt"), ("man", ".1")])
def test_text_builders_get_a_summary(build, builder, suffix):
    app = build("basic", builder)
    assert warnings_of(app) == []
    # Text wraps lines and man escapes hyphens; compare the words.
    out = " ".join("\n".join(p.read_text() for p in app.outdir.rglob(f"*{suffix}")).replace("\\-", "-").split())
    assert "Attention head view of sentence-transformers/all-MiniLM-L6-v2 (6 layers × 12 heads, 9 encoder tokens)." in out
    assert "Strongest attention in layer 0 (mean over the selected heads): “" in out
    assert "Heads of MiniLM reading one sentence." in out


def test_dirhtml_and_singlehtml_work_like_html(build):
    dirhtml = build("basic", "dirhtml")
    assert warnings_of(dirhtml) == []
    page = (dirhtml.outdir / "sub" / "page" / "index.html").read_text()
    assert page.count('data-attndocs-view="head"') == 1
    assert all(f'"../../_static/{name}' in page for name in asset_files())
    single = build("basic", "singlehtml")
    assert warnings_of(single) == []
    html = (single.outdir / "index.html").read_text()
    assert html.count('class="attndocs-figure attndocs-view-') == 3
    assert 'class="attndocs-caption">Fig. 1 A sentence pair.<' in html
    assert re.search(r'href="#fig-cat"><span class="std std-numref">Fig\. 2</span>', html)
    assert all(f'"_static/{name}' in html for name in asset_files())


def test_the_dummy_builder_fills_the_cache_for_a_later_frozen_build(build, tmp_path):
    cache = {"attention_cache_dir": str(tmp_path / "cache")}
    dummy = build("basic", "dummy", confoverrides=cache)
    assert warnings_of(dummy) == [] and summary_of(dummy)["computed"] == 3
    # Two of the three figures show the same text with the same model: one record serves both.
    assert len(list(RecordCache(tmp_path / "cache").entries())) == 2
    frozen = build("basic", confoverrides={**cache, "attention_execution_mode": "frozen"})
    assert warnings_of(frozen) == [] and summary_of(frozen)["cached"] == 3


@pytest.mark.parametrize(
    ("builder", "pages"),
    [
        ("html", {"index.html": "", "sub/page.html": "../"}),
        ("dirhtml", {"index.html": "", "sub/page/index.html": "../../"}),
        ("singlehtml", {"index.html": ""}),
    ],
)
def test_side_file_payloads_are_linked_relative_to_each_page(build, builder, pages):
    app = build("basic", builder, confoverrides={"attention_embed": "file"})
    assert warnings_of(app) == []
    found = 0
    for page, up in pages.items():
        html = (app.outdir / page).read_text()
        payloads = figure_payloads(html)
        assert payloads and all(p["body"] is None for p in payloads)  # nothing inline
        sources = [p["src"] for p in payloads]
        assert sources and all(s.startswith(up + "_static/attndocs/attndocs-") for s in sources)
        for src in sources:
            assert (Path(app.outdir / page).parent / src).resolve().is_file()
        found += len(sources)
    assert found == 3


def test_builders_without_figure_support_do_not_crash(build):
    for builder in ("xml", "pseudoxml", "texinfo", "gettext"):
        app = build("basic", builder)
        assert warnings_of(app) == [], builder
