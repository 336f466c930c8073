"""When figures start: all at once on a short page; on a long one as they come near the screen.

A figure a link targets, a page being printed, or focus moving into a figure starts it at
once, wherever it is.
"""

from __future__ import annotations

from typing import Any

from attndocs.options import FigureOptions
from attndocs.render import render_figure

STATUS = "name => document.getElementById('attndocs-' + name).getAttribute('data-attndocs-status')"
COUNTS = """() => {
  const out = {};
  document.querySelectorAll('.attndocs-figure[data-attndocs-view]').forEach(f => {
    const s = f.getAttribute('data-attndocs-status');
    out[s] = (out[s] || 0) + 1;
  });
  return out;
}"""


def _figures(synthetic_record: Any, n: int) -> list[tuple[Any, dict]]:
    record = synthetic_record("encoder", n=6, layers=2, heads=2)
    return [(record, {"view": "head", "name": f"f{i}"}) for i in range(n)]


def _wait_status(probe: Any, name: str, status: str = "ready") -> None:
    probe.page.wait_for_function(f"([n, s]) => ({STATUS})(n) === s", arg=[name, status], timeout=10_000)


def _top(probe: Any, name: str) -> float:
    return probe.page.evaluate("n => document.getElementById('attndocs-' + n).getBoundingClientRect().top", name)


def test_a_page_of_up_to_32_figures_starts_them_all_at_once(figure_page, synthetic_record):
    probe = figure_page(_figures(synthetic_record, 32))
    assert probe.page.evaluate(COUNTS) == {"ready": 32}
    assert probe.page.evaluate("attndocs.figures().length") == 32


def test_a_long_page_starts_figures_as_they_come_near_the_screen(figure_page, synthetic_record):
    probe = figure_page(_figures(synthetic_record, 60))
    counts = probe.page.evaluate(COUNTS)
    assert 0 < counts.get("ready", 0) < 20 and counts.get("waiting", 0) > 40, counts
    assert probe.page.evaluate(STATUS, "f0") == "ready" and probe.page.evaluate(STATUS, "f59") == "waiting"
    assert probe.page.evaluate("attndocs.figure('f59')") is None
    probe.page.locator("#attndocs-f59").scroll_into_view_if_needed()
    _wait_status(probe, "f59")
    # It works like any other figure once started.
    probe.page.locator('#attndocs-f59 .attndocs-token[data-side="q"][data-index="2"]').click()
    assert probe.page.evaluate("attndocs.figure('f59').state.locked") is True
    # The figures in between that were never near the screen still wait.
    assert probe.page.evaluate(STATUS, "f30") == "waiting"


def test_a_link_to_a_far_figure_starts_it_with_its_state_and_lands_on_it(figure_page, open_html, synthetic_record):
    html = figure_page(_figures(synthetic_record, 60)).path.read_text(encoding="utf-8")
    probe = open_html(html, name="linked.html", fragment="#f45/layer=1&heads=1")
    _wait_status(probe, "f45")
    assert probe.page.evaluate("[attndocs.figure('f45').state.layer, attndocs.figure('f45').state.heads]") == [1, [1]]
    # Figures above it start as they come into view and grow; the reader stays on f45.
    _wait_status(probe, "f44")
    probe.page.wait_for_timeout(300)
    assert abs(_top(probe, "f45")) <= 2, _top(probe, "f45")
    assert probe.page.evaluate(STATUS, "f20") == "waiting"

    # Following a link on the page to a figure that still waits.
    probe.page.evaluate("location.hash = '#f58/layer=1&heads=0'")
    probe.page.wait_for_function("() => attndocs.figure('f58') && attndocs.figure('f58').state.layer === 1")
    assert probe.page.evaluate("attndocs.figure('f58').state.heads") == [0]
    # A plain anchor to a figure's name (no element has that id) lands on the figure too,
    # and one to its id is the browser's own jump.
    for fragment, name in (("#f25", "f25"), ("#attndocs-f12", "f12")):
        probe.page.evaluate("h => { location.hash = h; }", fragment)
        _wait_status(probe, name)
        probe.page.wait_for_timeout(300)
        assert abs(_top(probe, name)) <= 2, (fragment, _top(probe, name))


def test_printing_starts_every_figure(figure_page, synthetic_record):
    probe = figure_page(_figures(synthetic_record, 40))
    assert probe.page.evaluate(COUNTS).get("waiting", 0) > 0
    probe.page.evaluate("window.dispatchEvent(new Event('beforeprint'))")
    probe.page.wait_for_function(f"() => ({COUNTS})().ready === 40", timeout=10_000)


def test_focus_moving_into_a_waiting_figure_starts_it(figure_page, synthetic_record):
    probe = figure_page(_figures(synthetic_record, 40))
    assert probe.page.evaluate(STATUS, "f39") == "waiting"
    probe.page.evaluate("""() => {
      const f = document.getElementById('attndocs-f39');
      f.tabIndex = -1;
      f.focus({preventScroll: true});
    }""")
    _wait_status(probe, "f39")


def test_figures_added_to_a_long_page_wait_for_the_screen_too(figure_page, synthetic_record):
    probe = figure_page(_figures(synthetic_record, 40))
    used: set[str] = set()
    record = synthetic_record("encoder", n=7, layers=2, heads=2, seed=3)
    fragment = "".join(render_figure(record, FigureOptions(view="model", name=f"late{i}"), used_ids=used).html
                       for i in range(3))
    probe.page.evaluate("html => document.querySelector('main').insertAdjacentHTML('beforeend', html)", fragment)
    _wait_status(probe, "late2", "waiting")
    probe.page.locator("#attndocs-late2").scroll_into_view_if_needed()
    _wait_status(probe, "late2")
    assert probe.page.locator("#attndocs-late2 .attndocs-thumb").count() == 4
    # Removing figures, started or waiting, leaves the rest working.
    probe.page.evaluate("() => ['late0', 'late2', 'f39'].forEach(n => document.getElementById('attndocs-' + n).remove())")
    probe.page.wait_for_function("() => attndocs.figure('late2') === null")
    probe.page.locator("#attndocs-late1").scroll_into_view_if_needed()
    _wait_status(probe, "late1")
