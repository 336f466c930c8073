"""The summary view in headless Chromium: statistic grid, sortable table, opening a head."""

from __future__ import annotations

import numpy as np

from attndocs.analysis import record_statistics

HOSTILE = ["[CLS]", "</script><img src=x onerror=alert(1)>", "שלום", "🙂", "猫が", "<b>bold</b>", "[SEP]"]


def _number(text: str) -> float:
    return float(text.replace("\u2212", "-"))


def _grid_values(probe, fig: int = 0) -> np.ndarray:
    cells = probe.figures.nth(fig).locator(".attndocs-scell")
    layers = cells.evaluate_all("ns => ns.map(n => +n.dataset.layer)")
    heads = cells.evaluate_all("ns => ns.map(n => +n.dataset.head)")
    values = [_number(t) for t in cells.all_inner_texts()]
    out = np.zeros((max(layers) + 1, max(heads) + 1))
    out[layers, heads] = values
    return out


def _table_rows(probe, fig: int = 0) -> list[list[str]]:
    return probe.figures.nth(fig).locator(".attndocs-stable tbody tr").evaluate_all(
        "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent))"
    )


def _statistic(probe, fig: int, label: str) -> None:
    probe.figures.nth(fig).locator(".attndocs-control", has_text="Statistic").locator("select").select_option(label=label)


def test_grid_shows_each_heads_statistic_and_switching_recolours_it(figure_page, synthetic_record):
    record = synthetic_record("pair", n=11, layers=4, heads=6, seed=1)
    stats = record_statistics(record, "encoder")
    probe = figure_page([(record, {"view": "summary"})])
    fig = probe.figures.first
    assert fig.locator(".attndocs-scell").count() == 4 * 6
    np.testing.assert_allclose(_grid_values(probe), stats["entropy"], rtol=0.006, atol=0.0006)
    assert probe.canvas_stats(".attndocs-smini")["painted"] > 0

    colours = fig.locator(".attndocs-scell").evaluate_all("ns => ns.map(n => n.style.backgroundColor)")
    assert len(set(colours)) > 6  # a real colour scale, not one flat colour
    for label, key in [("Mean distance", "distance"), ("Previous token", "previous"), ("Special tokens", "special"), ("A \u2194 B", "cross_ab")]:
        _statistic(probe, 0, label)
        np.testing.assert_allclose(_grid_values(probe), stats[key], rtol=0.006, atol=0.0006)
        assert label in fig.locator(".attndocs-shelp").inner_text()
    assert fig.locator(".attndocs-scell").evaluate_all("ns => ns.map(n => n.style.backgroundColor)") != colours
    probe.wait_for_hash("stat=cross_ab")


def test_clicking_a_cell_opens_that_head(figure_page, synthetic_record):
    record = synthetic_record("encoder", n=9, layers=3, heads=4, seed=2)
    probe = figure_page([(record, {"view": "summary"})])
    fig = probe.figures.first
    assert fig.locator(".attndocs-stitle").inner_text() == "Layer 0 \u00b7 head 0"
    before = probe.canvas_stats(".attndocs-smini")["hash"]
    fig.locator(".attndocs-scell[data-layer='2'][data-head='3']").click()
    assert probe.fig_eval(0, "fig => [fig.state.layer, fig.state.heads]") == [2, [3]]
    assert fig.locator(".attndocs-stitle").inner_text() == "Layer 2 \u00b7 head 3"
    assert probe.canvas_stats(".attndocs-smini")["hash"] != before
    assert fig.locator(".attndocs-scell.attndocs-selected").evaluate_all("ns => ns.map(n => [n.dataset.layer, n.dataset.head])") == [["2", "3"]]
    entropy = record_statistics(record, "encoder")["entropy"][2, 3]
    listed = dict(zip(fig.locator(".attndocs-sstats dt").all_inner_texts(), fig.locator(".attndocs-sstats dd").all_inner_texts()))
    assert abs(_number(listed["Entropy"].split()[0]) - entropy) < 0.006
    probe.wait_for_hash("layer=2", "heads=3")


def test_table_sorts_by_any_column_and_rows_open_their_head(figure_page, synthetic_record):
    record = synthetic_record("encoder", n=10, layers=3, heads=4, seed=3)
    stats = record_statistics(record, "encoder")
    probe = figure_page([(record, {"view": "summary"})])
    fig = probe.figures.first
    fig.get_by_role("button", name="Table").click()
    rows = _table_rows(probe)
    assert [(int(r[0]), int(r[1])) for r in rows] == [(layer, head) for layer in range(3) for head in range(4)]

    header = fig.locator(".attndocs-stable th", has_text="Distance")
    header.locator("button").click()
    assert header.get_attribute("aria-sort") == "descending"
    order = [(int(r[0]), int(r[1])) for r in _table_rows(probe)]
    assert order == sorted(order, key=lambda lh: -stats["distance"][lh])
    header.locator("button").click()
    assert header.get_attribute("aria-sort") == "ascending"
    order = [(int(r[0]), int(r[1])) for r in _table_rows(probe)]
    assert order == sorted(order, key=lambda lh: stats["distance"][lh])

    layer, head = order[0]
    fig.locator(".attndocs-stable tbody tr").first.click()
    assert probe.fig_eval(0, "fig => [fig.state.layer, fig.state.heads]") == [layer, [head]]
    assert fig.locator(".attndocs-stitle").inner_text() == f"Layer {layer} \u00b7 head {head}"
    assert fig.locator(".attndocs-stable tbody tr").first.get_attribute("aria-selected") == "true"


def test_keyboard_walks_the_grid_and_opens_a_head(figure_page, synthetic_record):
    record = synthetic_record("encoder", n=6, layers=3, heads=4, seed=4)
    probe = figure_page([(record, {"view": "summary"})])
    fig = probe.figures.first
    fig.locator(".attndocs-scell[data-layer='0'][data-head='0']").focus()
    for key in ["ArrowRight", "ArrowDown", "ArrowDown", "Enter"]:
        probe.page.keyboard.press(key)
    assert probe.fig_eval(0, "fig => [fig.state.layer, fig.state.heads]") == [2, [1]]
    probe.page.wait_for_function("() => document.querySelector('.attndocs-figure [aria-live]').textContent.includes('layer 2, head 1')")


def test_sections_offer_only_the_statistics_that_apply(figure_page, synthetic_record):
    record = synthetic_record("encoder-decoder", n=7, layers=2, heads=2, seed=5)
    probe = figure_page([(record, {"view": "summary", "include-layers": "1"})])
    fig = probe.figures.first
    options = fig.locator(".attndocs-control", has_text="Statistic").locator("option")
    assert "Mean distance" in options.all_inner_texts()
    fig.get_by_role("button", name="Cross", exact=True).click()
    assert options.all_inner_texts() == ["Entropy", "Entropy (normalised)", "Special tokens"]
    assert fig.locator(".attndocs-scell").count() == 2  # only the included layer
    cross = record_statistics(record, "cross")
    np.testing.assert_allclose(_grid_values(probe)[1], cross["entropy"][1], rtol=0.006, atol=0.0006)
    stats = probe.canvas_stats(".attndocs-smini")
    assert stats["width"] / stats["height"] == len(record.sides["encoder"]) / len(record.sides["decoder"])


def test_export_and_hostile_text(figure_page, synthetic_record):
    record = synthetic_record("encoder", tokens=HOSTILE, layers=2, heads=2, seed=6)
    probe = figure_page([(record, {"view": "summary", "caption": "</script><b>caption</b>"})])
    fig = probe.figures.first
    assert fig.locator("img, b").count() == 0
    svg = probe.fig_eval(0, "fig => fig.exportSVG()")
    assert svg.startswith("<?xml") and svg.count("<rect") >= 1 + 2 * 2 and "<image" in svg


def test_two_summaries_on_one_page_open_heads_independently(figure_page, synthetic_record):
    a = synthetic_record("encoder", n=6, layers=2, heads=3, seed=7)
    b = synthetic_record("decoder", n=6, layers=2, heads=3, seed=8)
    probe = figure_page([(a, {"view": "summary"}), (b, {"view": "summary"})])
    probe.figures.nth(1).locator(".attndocs-scell[data-layer='1'][data-head='2']").click()
    titles = probe.page.locator(".attndocs-stitle").all_inner_texts()
    assert titles == ["Layer 0 \u00b7 head 0", "Layer 1 \u00b7 head 2"]
    np.testing.assert_allclose(_grid_values(probe, 1), record_statistics(b, "decoder")["entropy"], rtol=0.006, atol=0.0006)
