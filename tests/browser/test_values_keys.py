"""Values on demand and colour keys in headless Chromium: the weight by the pointer (and in
the live region), a key in every view whose ends are the colours drawn, the shared 0-1
scale that keeps a flat head pale, and the neuron view's key and column headers."""

from __future__ import annotations

import math

import pytest

_PIXEL_JS = """
(canvas, points) => {
  const ctx = canvas.getContext('2d'), sx = canvas.width / canvas.getBoundingClientRect().width;
  return points.map(([x, y]) => Array.from(ctx.getImageData(Math.floor(x * sx), Math.floor(y * sx), 1, 1).data));
}
"""

_MEAN_JS = """
(canvas) => {
  const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let r = 0, g = 0, b = 0, a = 0, n = 0;
  for (let i = 0; i < d.length; i += 4) { r += d[i]; g += d[i + 1]; b += d[i + 2]; a += d[i + 3]; n++; }
  return [r / n, g / n, b / n, a / n];
}
"""


def _rgb(probe, css: str) -> list[int]:
    return probe.page.evaluate("c => attndocs.util.parseColor(c).slice(0, 3)", css)


def _close(a, b, tol: float = 12) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b))


def _tip(probe, fig: int = 0):
    return probe.figures.nth(fig).locator(".attndocs-tip")


def _assert_tip_by(probe, x: float, y: float, fig: int = 0) -> str:
    """The tooltip shows, beside (x, y), wholly inside the figure; returns its text."""
    tip = _tip(probe, fig)
    tip.wait_for(state="visible")
    box = tip.bounding_box()
    frame = probe.figures.nth(fig).bounding_box()
    assert box["x"] >= frame["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"] + 0.5
    assert box["y"] >= frame["y"] and box["y"] + box["height"] <= frame["y"] + frame["height"] + 0.5
    # Its nearest edge is a few pixels from the pointer, not somewhere else in the figure.
    dx = max(box["x"] - x, 0, x - box["x"] - box["width"])
    dy = max(box["y"] - y, 0, y - box["y"] - box["height"])
    assert math.hypot(dx, dy) < 30, (box, x, y)
    return tip.inner_text()


def _live_says(probe, text: str, fig: int = 0) -> None:
    probe.page.wait_for_function(
        "([i, t]) => document.querySelectorAll('.attndocs-figure')[i].querySelector('[aria-live]').textContent.includes(t)",
        arg=[fig, text],
    )


def test_hovering_a_line_shows_its_weight_by_the_pointer(figure_page, synthetic_record):
    record = synthetic_record("encoder", n=8, layers=2, heads=3, seed=4, sharp=3.0)
    attention = record.sections["encoder"].attention
    probe = figure_page([(record, {"view": "head", "layer": 1, "heads": "2"})])
    fig = probe.figures.first
    tokens = record.sides["encoder"].display
    for i in (2, 5):
        j = int(attention[1, 2, i].argmax())
        left = fig.locator(f'.attndocs-left .attndocs-token[data-index="{i}"]').bounding_box()
        right = fig.locator(f'.attndocs-right .attndocs-token[data-index="{j}"]').bounding_box()
        canvas = fig.locator(".attndocs-lines > canvas").bounding_box()
        # A quarter of the way along the line, where lines from the same query are far apart.
        x0, x1 = left["x"] + left["width"] + 6, canvas["x"] + canvas["width"] - right["width"] - 6
        y0, y1 = left["y"] + left["height"] / 2, right["y"] + right["height"] / 2
        x, y = x0 + 0.25 * (x1 - x0), y0 + 0.25 * (y1 - y0)
        probe.page.mouse.move(x, y)
        text = _assert_tip_by(probe, x, y)
        assert text.startswith(f"\u201c{tokens[i]}\u201d \u2192 \u201c{tokens[j]}\u201d \u00b7 head 2: ")
        assert abs(float(text.rsplit(": ", 1)[1]) - attention[1, 2, i, j]) < 0.006
        _live_says(probe, text)
    # Off the lines the tooltip goes away.
    probe.page.mouse.move(canvas["x"] + canvas["width"] + 40, canvas["y"] - 30)
    _tip(probe).wait_for(state="hidden")


def test_matrix_shows_the_value_by_the_pointer_and_keeps_the_row_colours(figure_page, synthetic_record):
    record = synthetic_record("encoder", n=8, layers=2, heads=3, seed=5)
    attention = record.sections["encoder"].attention
    probe = figure_page([(record, {"view": "matrix", "layer": 1, "heads": "1"})])
    canvas = probe.figures.first.locator(".attndocs-mcanvas")
    box = canvas.bounding_box()
    cell = box["width"] / 8
    row, col = 3, 6
    # Centres of every other cell of the row being read (away from the hovered cell's outline).
    others = [((c + 0.5) * cell, (row + 0.5) * cell) for c in range(8) if c != col]
    before = canvas.evaluate(_PIXEL_JS, others)
    x, y = box["x"] + (col + 0.5) * cell, box["y"] + (row + 0.5) * cell
    probe.page.mouse.move(x, y)
    text = _assert_tip_by(probe, x, y)
    assert abs(float(text.rsplit(": ", 1)[1]) - attention[1, 1, row, col]) < 0.006
    _live_says(probe, text)
    after = canvas.evaluate(_PIXEL_JS, others)
    assert all(_close(a[:3], b[:3], 2) for a, b in zip(before, after)), "the hovered row changed colour"
    # Keyboard: the cursor (which starts where the pointer was) shows its cell's value there too.
    probe.page.mouse.move(box["x"] - 60, box["y"] - 60)
    _tip(probe).wait_for(state="hidden")
    probe.figures.first.locator(".attndocs-msurface").focus()
    probe.page.keyboard.press("ArrowDown")
    text = _assert_tip_by(probe, box["x"] + (col + 1) * cell, box["y"] + (row + 2) * cell)
    assert abs(float(text.rsplit(": ", 1)[1]) - attention[1, 1, row + 1, col]) < 0.006


def test_thumbnails_and_summary_cells_show_their_value(figure_page, synthetic_record):
    record = synthetic_record("encoder", n=7, layers=2, heads=3, seed=6)
    attention = record.sections["encoder"].attention
    probe = figure_page([(record, {"view": "model"}), (record, {"view": "summary"})])
    thumb = probe.figures.nth(0).locator('.attndocs-thumb[data-layer="1"][data-head="2"]')
    box = thumb.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    probe.page.mouse.move(x, y)
    text = _assert_tip_by(probe, x, y, fig=0)
    assert text.startswith("Layer 1, head 2: strongest weight ")
    assert abs(float(text.split("strongest weight ")[1].split(" ")[0]) - attention[1, 2].max()) < 0.006
    # From the keyboard: the focused thumbnail's value, beside it.
    probe.page.mouse.move(0, 0)
    _tip(probe, 0).wait_for(state="hidden")
    thumb.focus()
    probe.page.keyboard.press("ArrowLeft")
    left = probe.figures.nth(0).locator('.attndocs-thumb[data-layer="1"][data-head="1"]').bounding_box()
    text = _assert_tip_by(probe, left["x"] + min(left["width"], 40), left["y"] + left["height"] / 2, fig=0)
    assert text.startswith("Layer 1, head 1: strongest weight ")
    assert abs(float(text.split("strongest weight ")[1].split(" ")[0]) - attention[1, 1].max()) < 0.006
    cell = probe.figures.nth(1).locator('.attndocs-scell[data-layer="0"][data-head="1"]')
    box = cell.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    probe.page.mouse.move(x, y)
    text = _assert_tip_by(probe, x, y, fig=1)
    assert text.startswith("Layer 0, head 1: Entropy ") and cell.inner_text() in text


@pytest.mark.parametrize(
    ("view", "end"), [("head", "fg"), ("model", "fg"), ("matrix", "accent"), ("summary", "accent")]
)
def test_every_view_has_a_colour_key_whose_ends_are_the_colours_drawn(figure_page, synthetic_record, view, end):
    record = synthetic_record("encoder", n=7, layers=2, heads=3, seed=7)
    probe = figure_page([(record, {"view": view})], color_scheme="dark")
    key = probe.figures.first.locator(".attndocs-key").first
    assert key.is_visible()
    bar = key.locator("canvas")
    w = bar.bounding_box()["width"]
    left, right = bar.evaluate(_PIXEL_JS, [[1, 5], [w - 1.5, 5]])
    colors = probe.fig_eval(0, "fig => fig.colors()")
    assert colors["theme"] == "dark"
    assert _close(left[:3], _rgb(probe, colors["bg"]), 14), (left, colors["bg"])
    assert _close(right[:3], _rgb(probe, colors[end]), 14), (right, colors[end])
    if view != "summary":  # the summary's key is its statistic's range
        assert key.locator(".attndocs-key-lo").inner_text() == "0"
        assert key.locator(".attndocs-key-hi").inner_text() == "1"
    assert key.locator(".attndocs-key-label").inner_text()


def test_a_flat_head_is_pale_on_the_default_scale(figure_page, synthetic_record):
    # Untrained cross-attention spreads evenly: every weight about 1/9.
    record = synthetic_record("encoder-decoder", n=9, layers=1, heads=2, seed=8, sharp=0.05)
    cross = record.sections["cross"].attention
    assert cross.max() < 0.16 and cross.min() > 0.07
    probe = figure_page([(record, {"view": "matrix"})])
    probe.fig_eval(0, "fig => fig.setState({section: 'cross'})")
    canvas = ".attndocs-mcanvas"
    colors = probe.fig_eval(0, "fig => fig.colors()")
    bg, accent = _rgb(probe, colors["bg"]), _rgb(probe, colors["accent"])

    def share() -> float:
        """How far the matrix's mean colour is from the background toward the accent (0..1)."""
        mean = probe.page.locator(canvas).first.evaluate(_MEAN_JS)
        return sum(abs(m - b) for m, b in zip(mean, bg)) / sum(abs(a - b) for a, b in zip(accent, bg))

    fixed = share()
    assert fixed < 0.2, fixed
    key = probe.figures.first.locator(".attndocs-key")
    assert key.locator(".attndocs-key-hi").inner_text() == "1"
    probe.fig_eval(0, "fig => fig.setState({scale: 'head'})")
    per_head = share()
    assert per_head > 0.6, per_head
    assert abs(float(key.locator(".attndocs-key-hi").inner_text()) - cross[0, 0].max()) < 0.006

    # The author can open a figure on the per-head scale.
    probe3 = figure_page([(record, {"view": "matrix", "section": "cross", "scale": "head"})])
    assert probe3.fig_eval(0, "fig => [fig.state.section, fig.state.scale]") == ["cross", "head"]
    mean = probe3.page.locator(canvas).first.evaluate(_MEAN_JS)
    assert sum(abs(m - b) for m, b in zip(mean, bg)) / sum(abs(a - b) for a, b in zip(accent, bg)) > 0.6

    # The head view: a flat head's lines are faint on the default scale.
    probe2 = figure_page([(record, {"view": "head", "heads": "0"})])
    probe2.fig_eval(0, "fig => fig.setState({section: 'cross'})")
    faint = probe2.page.locator(".attndocs-lines > canvas").first.evaluate(_MEAN_JS)[3]
    probe2.fig_eval(0, "fig => fig.setState({scale: 'head'})")
    strong = probe2.page.locator(".attndocs-lines > canvas").first.evaluate(_MEAN_JS)[3]
    assert strong > 3 * faint > 0


def test_neuron_view_has_a_key_and_a_header_over_every_block(figure_page, synthetic_record):
    record = synthetic_record("encoder", n=7, layers=2, heads=2, qk=True, bias=True, seed=9, d=16)
    probe = figure_page([(record, {"view": "neuron"})], viewport={"width": 900, "height": 800})
    fig = probe.figures.first
    colors = probe.fig_eval(0, "fig => fig.colors()")
    swatches = fig.locator(".attndocs-key .attndocs-key-swatch").evaluate_all(
        "ns => ns.map(n => getComputedStyle(n).backgroundColor)"
    )
    assert _close(_rgb(probe, swatches[0]), _rgb(probe, colors["pos"]), 2)
    assert _close(_rgb(probe, swatches[1]), _rgb(probe, colors["neg"]), 2)
    key = fig.locator(".attndocs-key").inner_text()
    assert "positive" in key and "negative" in key and "s = 0.250 = 1/\u221a16" in key
    # Headers: one over each block, each wholly visible and inside the figure.
    figure = fig.bounding_box()
    names = []
    for header in fig.locator(".attndocs-nhead:not(.attndocs-nhead-blocks), .attndocs-nhead-blocks > span").all():
        box = header.bounding_box()
        assert box["x"] >= figure["x"] and box["x"] + box["width"] <= figure["x"] + figure["width"], header.inner_text()
        assert header.evaluate("n => n.scrollWidth <= n.clientWidth + 1"), header.inner_text()
        names.append(header.inner_text())
    assert names == ["query", "key", "k", "q \u00d7 k", "q\u00b7k \u00d7 s", "bias", "softmax"]
    k_header = fig.locator(".attndocs-nhead-blocks > span").nth(1).bounding_box()
    canvas = fig.locator(".attndocs-nvec").bounding_box()
    block = probe.fig_eval(
        0, "fig => fig.body.querySelector('.attndocs-nhead-blocks > span').getBoundingClientRect().width"
    )
    # The "q x k" header starts over the second block.
    assert abs(k_header["x"] - (canvas["x"] + block)) < 2
    # Hovering a vector cell shows its value.
    x, y = canvas["x"] + 3, canvas["y"] + 25
    probe.page.mouse.move(x, y)
    text = _assert_tip_by(probe, x, y)
    assert text.startswith("k[0] of \u201c")
