"""Figures fit narrow and wide columns, and follow the column when it changes width.

The host themes are in tests/sphinx/test_theme_fit.py and tests/mkdocs/test_mkdocs_fit.py;
here plain pages of synthetic records check what does not need a host: every head of a
12- or 32-head model in view at 320 px, drawings that take the width they are given, scroll
cues that follow the scroll position, and layouts that follow a resize.
"""

from __future__ import annotations

import pytest
from fit import VIEWS, fit_problems

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("heads", [12, 32])
def test_model_view_shows_every_head_at_320_px(figure_page, synthetic_record, heads):
    record = synthetic_record("encoder", n=13, layers=6, heads=heads)
    probe = figure_page([(record, {"view": "model"})], viewport={"width": 320, "height": 800})
    assert fit_problems(probe.page, reserved=False) == []
    thumbs = probe.page.locator(".attndocs-thumb")
    assert thumbs.count() == 6 * heads
    # The heads wrap onto rows of equal length, every one at least 28 px wide.
    sizes = thumbs.evaluate_all("ts => ts.map(t => Math.round(t.getBoundingClientRect().width))")
    assert min(sizes) >= 28 and len(set(sizes)) == 1, sizes
    rows = probe.page.evaluate(
        "() => new Set(Array.from(document.querySelectorAll('.attndocs-thumb[data-layer=\"0\"]')).map(t => Math.round(t.getBoundingClientRect().top))).size"
    )
    assert 1 < rows <= 6


def test_every_view_follows_its_column_as_it_changes_width(figure_page, synthetic_record):
    record = synthetic_record("encoder", n=26, layers=2, heads=12, qk=True)
    probe = figure_page([(record, {"view": view}) for view in VIEWS], viewport={"width": 1280, "height": 800})
    page = probe.page
    widths = {}
    for width in (1280, 320, 390, 1400):
        page.set_viewport_size({"width": width, "height": 800})
        page.wait_for_timeout(150)  # resize observers, then the cues marked in the next frame
        problems = fit_problems(page, reserved=False)
        assert problems == [], f"{width} px: {problems}"
        widths[width] = page.evaluate("() => document.querySelector('.attndocs-view-matrix .attndocs-mcanvas').getBoundingClientRect().width")
    # Narrow columns keep readable 10 px cells (and scroll, with a cue); wider ones fill.
    assert widths[320] <= widths[390] < widths[1280] <= widths[1400], widths


def test_a_scroll_cue_marks_the_edges_that_hide_columns(figure_page, synthetic_record):
    record = synthetic_record("encoder", n=13, layers=6, heads=12)
    probe = figure_page([(record, {"view": "summary"})], viewport={"width": 320, "height": 800})
    page = probe.page
    assert fit_problems(page, reserved=False) == []
    box = page.locator(".attndocs-smain")
    state = "b => [b.scrollWidth > b.clientWidth, b.getAttribute('data-attndocs-more'), getComputedStyle(b).maskImage]"
    hides, more, mask = box.evaluate(state)
    assert hides and more == "right" and "gradient" in mask
    box.evaluate("b => { b.scrollLeft = b.scrollWidth; }")
    page.wait_for_function("() => document.querySelector('.attndocs-smain').getAttribute('data-attndocs-more') === 'left'")
    box.evaluate("b => { b.scrollLeft = 40; }")
    page.wait_for_function("() => document.querySelector('.attndocs-smain').getAttribute('data-attndocs-more') === 'left right'")
    # Wide enough for every column: no cue at all.
    page.set_viewport_size({"width": 1400, "height": 800})
    page.wait_for_function("() => !document.querySelector('.attndocs-smain').hasAttribute('data-attndocs-more')")
    assert box.evaluate("b => b.scrollWidth <= b.clientWidth")
