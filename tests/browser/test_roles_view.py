"""Named head roles in headless Chromium: the role select, the marks on the heads, the names, links."""

from __future__ import annotations

import numpy as np
import pytest

from attndocs.options import FigureOptions
from attndocs.render import render_figure, render_page
from attndocs.roles import named, percent, record_role_scores
from tests.site.site_probe import open_site, site_browser  # noqa: F401  (fixtures: a built site in Chromium)
from tests.test_roles import SPECIAL, TOKENS, _layered, _record


@pytest.fixture
def planted():
    """3 layers x 4 heads over repeated text: a previous-token head at (0, 1), a sink head at (1, 2)."""
    return _record(TOKENS, _layered(np.random.default_rng(21), 3, 4, len(TOKENS)), special=SPECIAL)


def _named_heads(record, role: str, layer: int) -> list[int]:
    values = record_role_scores(record, "encoder")[role]
    return [h for h in range(values.shape[1]) if named(role, values)[layer, h]]


def _marked(fig, selector: str) -> list[int]:
    return fig.locator(selector + ".attndocs-role-hit").evaluate_all("ns => ns.map(n => +n.dataset.head)")


def _pick_role(fig, label: str) -> None:
    fig.locator(".attndocs-rolectl select").select_option(label=label)


def test_head_view_role_select_marks_and_selects_that_roles_heads(figure_page, planted):
    probe = figure_page([(planted, {"view": "head", "layer": 1})])
    fig = probe.figures.first
    assert _marked(fig, ".attndocs-head") == []  # nothing highlighted until a role is picked
    sinks = _named_heads(planted, "sink", 1)
    assert 2 in sinks
    _pick_role(fig, "attention sink")
    assert _marked(fig, ".attndocs-head") == sinks
    assert probe.fig_eval(0, "fig => [fig.state.role, fig.state.heads]") == ["sink", sinks]
    probe.wait_for_hash("role=sink")
    line = fig.locator(".attndocs-roleline").inner_text()
    score = percent(record_role_scores(planted, "encoder")["sink"])[1, 2] / 100
    assert f"head 2: attention sink ({score:.2f})" in line and "score \u2265 0.70" in line
    # Another layer: the marks follow it, the selection stays the reader's.
    fig.locator(".attndocs-control", has_text="Layer").locator("select").select_option("0")
    assert _marked(fig, ".attndocs-head") == _named_heads(planted, "sink", 0)
    _pick_role(fig, "previous token")
    assert _marked(fig, ".attndocs-head") == [1] and probe.fig_eval(0, "fig => fig.state.heads") == [1]
    assert "head 1: previous token (1.00)" in fig.locator(".attndocs-roleline").inner_text()
    _pick_role(fig, "none")
    assert _marked(fig, ".attndocs-head") == []
    # The help says what the roles mean, the sink's why included.
    fig.locator(".attndocs-helpbutton").click()
    help_text = fig.locator(".attndocs-helppanel").inner_text()
    assert "Why does every token attend to the first one?" in help_text and "named from 0.70" in help_text


def test_a_link_with_role_sink_opens_highlighted(open_html, planted):
    html = render_page([render_figure(planted, FigureOptions(view="head", layer=1, name="roles"))], "roles")
    probe = open_html(html, name="linked.html", fragment="#roles/role=sink")
    fig = probe.figures.first
    assert probe.fig_eval(0, "fig => fig.state.role") == "sink"
    assert fig.locator(".attndocs-rolectl select").input_value() == "sink"
    assert _marked(fig, ".attndocs-head") == _named_heads(planted, "sink", 1)


def test_an_author_role_opens_the_summary_highlighted_with_names_in_tooltips_and_table(figure_page, planted):
    probe = figure_page([(planted, {"view": "summary", "role": "previous"})])
    fig = probe.figures.first
    cells = fig.locator(".attndocs-scell.attndocs-role-hit")
    assert cells.evaluate_all("ns => ns.map(n => [+n.dataset.layer, +n.dataset.head])") == [[0, 1]]
    assert "previous 1.00" in cells.first.get_attribute("title")
    cells.first.hover()
    assert "previous 1.00 (named from 0.60)" in fig.locator(".attndocs-tip").inner_text()
    cells.first.click()
    assert "previous token 1.00" in fig.locator(".attndocs-sstats .attndocs-roles").inner_text()
    _pick_role(fig, "attention sink")
    hits = fig.locator(".attndocs-scell.attndocs-role-hit").evaluate_all("ns => ns.map(n => [+n.dataset.layer, +n.dataset.head])")
    scores = record_role_scores(planted, "encoder")["sink"]
    assert hits == [[int(layer), int(head)] for layer, head in zip(*np.nonzero(named("sink", scores)))]
    fig.locator(".attndocs-seg", has_text="Table").click()
    header = fig.locator(".attndocs-stable thead").inner_text()
    assert "Roles" in header
    row = fig.locator('.attndocs-srow[data-layer="1"][data-head="2"]')
    assert "attndocs-role-hit" in row.get_attribute("class") and "sink 1.00" in row.inner_text()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_names_fit_a_phone_width(figure_page, planted, scheme):
    probe = figure_page([(planted, {"view": "head", "role": "sink", "layer": 1})], viewport={"width": 390, "height": 800}, color_scheme=scheme)
    fig = probe.figures.first
    box = fig.bounding_box()
    for selector in (".attndocs-roleline", ".attndocs-rolectl", ".attndocs-heads"):
        part = fig.locator(selector).bounding_box()
        assert part["x"] >= box["x"] - 0.5 and part["x"] + part["width"] <= box["x"] + box["width"] + 0.5, selector
    # The marked swatch is drawn differently from an unmarked one.
    outline = fig.locator(".attndocs-head.attndocs-role-hit .attndocs-swatch").first.evaluate("n => getComputedStyle(n).outlineStyle")
    plain = fig.locator(".attndocs-head:not(.attndocs-role-hit) .attndocs-swatch").first.evaluate("n => getComputedStyle(n).outlineStyle")
    assert outline == "solid" and plain == "none"


@pytest.mark.real
def test_a_sphinx_page_opens_with_its_roles_highlighted(open_site, tmp_path):  # noqa: F811 (the fixture)
    """tests/roots/test-roles through sphinx-build, opened from file:// with the network off."""
    import shutil
    from pathlib import Path

    from sphinx.cmd.build import build_main

    src = tmp_path / "src"
    shutil.copytree(Path(__file__).parents[1] / "roots" / "test-roles", src)
    out = tmp_path / "html"
    assert build_main([str(src), str(out), "-b", "html", "-q", "-W", "-D", f"attention_cache_dir={tmp_path / 'cache'}"]) == 0
    probe = open_site(out, "index.html", via="file")
    head, summary = probe.figures.nth(0), probe.figures.nth(1)
    named_sinks = probe.fig_eval(0, "fig => fig.header.analysis.sections.encoder.named.sink.filter(t => t[0] === 2).map(t => t[1])")
    assert named_sinks, "MiniLM has attention-sink heads in layer 2"
    assert _marked(head, ".attndocs-head") == named_sinks
    assert "attention sink: head" in head.locator(".attndocs-roleline").inner_text()
    assert summary.locator(".attndocs-rolectl select").input_value() == "previous"
    assert summary.locator(".attndocs-scell.attndocs-role-hit").count() >= 1


def test_each_section_offers_the_roles_it_has(figure_page, synthetic_record):
    record = synthetic_record("encoder-decoder", n=9, layers=2, heads=3, seed=3)
    probe = figure_page([(record, {"view": "summary"}), (record, {"view": "head"})])
    for k in (0, 1):
        fig = probe.figures.nth(k)
        options = fig.locator(".attndocs-rolectl select option")
        assert "previous" in options.evaluate_all("os => os.map(o => o.value)")
        fig.locator(".attndocs-seg", has_text="Cross").click()
        assert options.evaluate_all("os => os.map(o => o.value)") == ["none", "sink", "broad"]  # two sequences: no positions to compare
        _pick_role(fig, "broad")
        assert probe.fig_eval(k, "fig => fig.state.role") == "broad"


def test_model_view_outlines_the_thumbnails_of_the_role_in_every_layer(figure_page, planted):
    probe = figure_page([(planted, {"view": "model", "role": "sink"})])
    fig = probe.figures.first
    hits = fig.locator(".attndocs-thumb.attndocs-role-hit").evaluate_all("ns => ns.map(n => [+n.dataset.layer, +n.dataset.head])")
    scores = record_role_scores(planted, "encoder")["sink"]
    assert hits == [[int(layer), int(head)] for layer, head in zip(*np.nonzero(named("sink", scores)))] and [1, 2] in hits
    assert "sink 1.00" in fig.locator('.attndocs-thumb[data-layer="1"][data-head="2"]').get_attribute("title")
    outline = fig.locator(".attndocs-thumb.attndocs-role-hit").first.evaluate("n => getComputedStyle(n).outlineStyle")
    assert outline == "dashed"
    _pick_role(fig, "previous token")
    assert fig.locator(".attndocs-thumb.attndocs-role-hit").evaluate_all("ns => ns.map(n => [+n.dataset.layer, +n.dataset.head])") == [[0, 1]]
    _pick_role(fig, "none")
    assert fig.locator(".attndocs-thumb.attndocs-role-hit").count() == 0
