"""Comparison figures in Chromium: A and B side by side with their selection synced, the matrix
difference on a diverging scale (pixels), the switch to side by side, unaligned tokens and
their note, both themes, 390 and 1280 px."""

from __future__ import annotations

import numpy as np
import pytest

from attndocs.options import FigureOptions
from attndocs.render import render_figure

TOKENS_A = ["[CLS]", "the", "dog", "was", "too", "tired", ".", "[SEP]"]
TOKENS_B = ["[CLS]", "the", "dog", "was", "too", "wide", ".", "[SEP]"]
CHANGED = 5  # the one token that does not align


@pytest.fixture
def pair(synthetic_record):
    a = synthetic_record(n=8, layers=3, heads=4, seed=1, tokens=TOKENS_A, text="the dog was too tired.")
    b = synthetic_record(n=8, layers=3, heads=4, seed=2, tokens=TOKENS_B, text="the dog was too wide.")
    return a, b


def comparison(a, b, **values):
    options = FigureOptions.from_mapping({"text": a.text, "compare-text": b.text, **values})
    return render_figure(a, options, compare=b)


def cell_rgb(probe, index: int, row: int, col: int) -> list[int]:
    """The colour at the centre of cell (row, col) of figure ``index``'s difference canvas."""
    return probe.page.evaluate(
        """([i, r, c]) => {
          const fig = document.querySelectorAll('.attndocs-figure')[i];
          const canvas = fig.querySelector('.attndocs-compare-canvas');
          const size = parseFloat(getComputedStyle(canvas.parentNode).getPropertyValue('--attndocs-cell'));
          const scale = canvas.width / canvas.getBoundingClientRect().width;
          const px = canvas.getContext('2d').getImageData(Math.floor((c + 0.5) * size * scale), Math.floor((r + 0.5) * size * scale), 1, 1).data;
          return [px[0], px[1], px[2]];
        }""",
        [index, row, col],
    )


def cell_colours(probe, row: int, col: int) -> int:
    """How many colours the inside of cell (row, col) of the first difference canvas has."""
    return probe.page.evaluate(
        """([r, c]) => {
          const canvas = document.querySelector('.attndocs-compare-canvas');
          const size = parseFloat(getComputedStyle(canvas.parentNode).getPropertyValue('--attndocs-cell'));
          const scale = canvas.width / canvas.getBoundingClientRect().width;
          const x = Math.ceil(c * size * scale) + 1, y = Math.ceil(r * size * scale) + 1, w = Math.floor(size * scale) - 2;
          const px = canvas.getContext('2d').getImageData(x, y, w, w).data, seen = new Set();
          for (let k = 0; k < px.length; k += 4) seen.add(px[k] + ',' + px[k + 1] + ',' + px[k + 2]);
          return seen.size;
        }""",
        [row, col],
    )


def merged_axis() -> list[tuple[int, int]]:
    return [(i, i) for i in range(CHANGED)] + [(CHANGED, -1), (-1, CHANGED)] + [(i, i) for i in range(CHANGED + 1, 8)]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_matrix_difference_is_drawn_on_a_diverging_scale_centred_on_zero(figure_page, pair, scheme):
    a, b = pair
    probe = figure_page([comparison(a, b, view="matrix", layer=1, heads=[2], display=scheme)], color_scheme=scheme)
    diff = a.sections["encoder"].attention[1][2] - b.sections["encoder"].attention[1][2]
    axis = merged_axis()
    aligned = [k for k, (ia, ib) in enumerate(axis) if ia >= 0 and ib >= 0]
    values = {(r, c): float(diff[axis[r][0], axis[c][0]]) for r in aligned for c in aligned}
    high = max(values, key=values.get)
    low = min(values, key=values.get)
    assert values[high] > 0.05 and values[low] < -0.05
    blue = cell_rgb(probe, 0, *high)  # A higher: the --attndocs-pos colour (blue in both themes)
    orange = cell_rgb(probe, 0, *low)  # B higher: --attndocs-neg (orange)
    assert blue[2] > blue[0] + 40, blue
    assert orange[0] > orange[2] + 40, orange
    zero = min(values, key=lambda k: abs(values[k]))
    background = (255, 255, 255) if scheme == "light" else (13, 17, 23)
    assert max(abs(x - y) for x, y in zip(cell_rgb(probe, 0, *zero), background)) < 60  # near zero: near the background
    key = probe.page.locator(".attndocs-compare-key").inner_text()
    assert key.startswith("B higher \u2212") and "A higher" in key
    shown = float(key.split("\u2212")[1].split()[0])  # the scale's end: the largest |A - B| shown
    assert shown == pytest.approx(max(abs(v) for v in values.values()), abs=0.005)  # weights ship as 8-bit codes
    title = probe.page.locator(".attndocs-compare-title").inner_text()
    assert title == "Layer 1, head 2: A \u2212 B"


def test_unaligned_tokens_are_hatched_shown_and_noted(figure_page, pair):
    a, b = pair
    probe = figure_page([comparison(a, b, view="matrix")])
    note = probe.page.locator(".attndocs-compare-unaligned")
    assert note.is_visible() and "1 token of A and 1 of B have no counterpart" in note.inner_text()
    rows = probe.page.locator(".attndocs-compare-rows .attndocs-compare-tok").all_inner_texts()
    assert rows == TOKENS_A[:CHANGED] + ["tired (A)", "wide (B)"] + TOKENS_A[CHANGED + 1:]
    # A hatched cell is not one colour: background with grid-coloured stripes; an aligned one is.
    assert cell_colours(probe, CHANGED, 0) >= 2 and cell_colours(probe, 0, CHANGED + 1) >= 2
    assert cell_colours(probe, 1, 2) == 1
    # Hover says both values and the difference, or why there is none.
    canvas = probe.page.locator(".attndocs-compare-canvas")
    size = float(probe.page.evaluate("() => parseFloat(getComputedStyle(document.querySelector('.attndocs-compare-grid')).getPropertyValue('--attndocs-cell'))"))
    canvas.hover(position={"x": size * 2.5, "y": size * 1.5})
    tip = probe.page.locator(".attndocs-compare-tip").inner_text()
    want = a.sections["encoder"].attention[0][0][1, 2] - b.sections["encoder"].attention[0][0][1, 2]
    assert tip.startswith("the \u2192 dog: A ") and "A \u2212 B" in tip
    shown = float(tip.split("A \u2212 B ")[1].replace("\u2212", "-"))
    assert shown == pytest.approx(want, abs=0.005)
    canvas.hover(position={"x": size * 1.5, "y": size * (CHANGED + 0.5)})
    assert "no difference (the token is only in A)" in probe.page.locator(".attndocs-compare-tip").inner_text()


def test_switch_to_side_by_side_and_back(figure_page, pair):
    a, b = pair
    probe = figure_page([comparison(a, b, view="matrix")])
    page = probe.page
    assert page.locator(".attndocs-compare-diff").is_visible() and not page.locator(".attndocs-compare-pair").is_visible()
    page.get_by_role("button", name="Side by side").click()
    assert page.get_by_role("button", name="Side by side").get_attribute("aria-pressed") == "true"
    assert page.locator(".attndocs-compare-pair").is_visible() and not page.locator(".attndocs-compare-diff").is_visible()
    panes = page.locator(".attndocs-compare-pane")
    assert panes.count() == 2
    for k in range(2):
        stats = probe.all_canvas_stats(f".attndocs-compare-pane >> nth={k} >> canvas")
        assert stats and stats[0]["painted"] > 0
    assert probe.fig_eval(0, "fig => fig.state.difference") is False
    page.get_by_role("button", name="A \u2212 B").click()
    assert page.locator(".attndocs-compare-diff").is_visible()
    assert probe.fig_eval(0, "fig => fig.state.difference") is True


def test_the_author_and_links_choose_what_a_comparison_opens_on(figure_page, open_html, pair, tmp_path):
    a, b = pair
    probe = figure_page([comparison(a, b, view="summary", difference=False)])
    assert probe.page.locator(".attndocs-compare-pair").is_visible()
    assert not probe.page.locator(".attndocs-compare-diff").is_visible()
    assert probe.page.get_by_role("button", name="Side by side").get_attribute("aria-pressed") == "true"
    # A link opens a figure the other way.
    from attndocs.render import render_page

    html = render_page([comparison(a, b, view="matrix", name="cmp")])
    linked = open_html(html, fragment="#cmp/difference=0")
    assert linked.page.locator(".attndocs-compare-pair").is_visible()
    assert not linked.page.locator(".attndocs-compare-diff").is_visible()


def test_head_view_shows_both_with_selection_synced(figure_page, pair):
    a, b = pair
    probe = figure_page([comparison(a, b, view="head")], viewport={"width": 1280, "height": 900})
    labels = probe.page.locator(".attndocs-compare-label").all_inner_texts()
    assert labels == ["A the dog was too tired.", "B the dog was too wide."]
    probe.fig_eval(0, "fig => fig.setState({layer: 2, heads: [1, 3], token: {side: 'q', index: 6}, locked: true})")
    state = probe.fig_eval(0, "fig => { const s = fig.compareSide.state; return [s.layer, s.heads, s.token]; }")
    assert state == [2, [1, 3], {"side": "q", "index": 6}]
    # The token that differs has no counterpart: B selects nothing.
    probe.fig_eval(0, f"fig => fig.setState({{token: {{side: 'q', index: {CHANGED}}}}})")
    assert probe.fig_eval(0, "fig => fig.compareSide.state.token") is None
    # A token chosen in B's drawing is A's token too.
    probe.fig_eval(0, "fig => fig.compareSide.setState({token: {side: 'k', index: 2}})")
    assert probe.fig_eval(0, "fig => fig.state.token") == {"side": "k", "index": 2}
    b_tokens = probe.page.locator("[data-compare-side='b'] .attndocs-token").all_inner_texts()
    assert "wide" in b_tokens and "tired" not in b_tokens


@pytest.mark.parametrize("width", [390, 1280])
def test_panes_sit_side_by_side_on_a_desktop_and_stack_on_a_phone(figure_page, pair, width):
    a, b = pair
    probe = figure_page([comparison(a, b, view="head")], viewport={"width": width, "height": 900})
    boxes = probe.page.evaluate(
        """() => [...document.querySelectorAll('.attndocs-compare-pane')].map(e => {
             const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })"""
    )
    figure = probe.page.locator(".attndocs-figure").bounding_box()
    first, second = boxes
    if width == 1280:
        assert second[0] >= first[2] and abs(second[1] - first[1]) < 2
    else:
        assert second[1] >= first[3] - 1
    for box in boxes:
        assert box[0] >= figure["x"] - 1 and box[2] <= figure["x"] + figure["width"] + 1


def test_summary_difference_and_nothing_aligned(figure_page, synthetic_record):
    a = synthetic_record(n=6, layers=2, heads=3, seed=1, tokens=["a", "b", "c", "d", "e", "f"], text="abcdef")
    b = synthetic_record(n=6, layers=2, heads=3, seed=2, tokens=["u", "v", "w", "x", "y", "z"], text="uvwxyz")
    probe = figure_page([comparison(a, b, view="summary"), comparison(a, b, view="matrix")])
    page = probe.page
    summary = page.locator(".attndocs-figure").nth(0)
    assert summary.locator(".attndocs-compare-title").inner_text().startswith("Head statistic")
    rows = summary.locator(".attndocs-compare-rows .attndocs-compare-tok").all_inner_texts()
    assert rows == ["layer 0", "layer 1"]
    # Nothing aligns: the matrix opens side by side, and the difference says why there is none.
    matrix = page.locator(".attndocs-figure").nth(1)
    assert matrix.locator(".attndocs-compare-pair").is_visible()
    matrix.get_by_role("button", name="A \u2212 B").click()
    assert "6 tokens of A and 6 of B have no counterpart" in matrix.locator(".attndocs-compare-unaligned").inner_text()
    assert np.all([t.endswith(("(A)", "(B)")) for t in matrix.locator(".attndocs-compare-rows .attndocs-compare-tok").all_inner_texts()])


def test_a_layer_only_a_has_leaves_b_out_with_a_note(figure_page, synthetic_record):
    a = synthetic_record(n=8, layers=3, heads=4, seed=1, tokens=TOKENS_A, text="the dog was too tired.")
    b = synthetic_record(n=8, layers=2, heads=2, seed=2, tokens=TOKENS_B, text="the dog was too wide.")
    probe = figure_page([comparison(a, b, view="head")])
    note = probe.page.locator("[data-compare-side='b'] .attndocs-compare-note")
    assert not note.is_visible()
    probe.fig_eval(0, "fig => fig.setState({layer: 2, heads: [0, 3]})")
    assert note.is_visible() and "has no layer 2" in note.inner_text()
    assert not probe.page.locator("[data-compare-side='b'] .attndocs-body").is_visible()
    probe.fig_eval(0, "fig => fig.setState({layer: 1})")
    assert not note.is_visible() and probe.page.locator("[data-compare-side='b'] .attndocs-body").is_visible()
    assert probe.fig_eval(0, "fig => [fig.compareSide.state.layer, fig.compareSide.state.heads]") == [1, [0]]


def test_a_large_comparison_loads_b_with_a_layer_by_layer(figure_page, synthetic_record):
    from attndocs.payload import part_locations

    a = synthetic_record(n=120, layers=4, heads=12, seed=1)
    b = synthetic_record(n=120, layers=4, heads=12, seed=2, tokens=[f"t{i}" for i in range(120)])
    figure = comparison(a, b, view="head")
    from attndocs.render import figure_payloads

    header = figure_payloads(figure.html)[0]["header"]
    assert len(header["chunks"]) > 2  # chunked: the first view first, the other layers later
    where_a = {c for c, _ in part_locations(header["sections"]["encoder"]["blocks"]["attn"])}
    where_b = {c for c, _ in part_locations(header["compare"]["sections"]["encoder"]["blocks"]["attn"])}
    assert where_a == where_b  # B's layer k lies in the chunk of A's layer k
    probe = figure_page([figure])
    loaded = "fig => fig._store.data.map(d => d !== null)"
    assert probe.fig_eval(0, loaded).count(True) == 1
    probe.fig_eval(0, "fig => fig.setState({layer: 3})")
    probe.page.wait_for_function("() => !document.querySelector('.attndocs-figure').hasAttribute('data-attndocs-loading')")
    assert probe.fig_eval(0, loaded).count(True) == 2
    assert probe.fig_eval(0, "fig => fig.compareSide.attn('encoder', 3, 5) !== null")
    stats = probe.all_canvas_stats("[data-compare-side='b'] canvas")
    assert stats and stats[0]["painted"] > 0
