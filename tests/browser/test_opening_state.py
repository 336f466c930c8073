"""Figures open on the state their options set, drawn at first paint with no interaction.

Each opening-state option (attndocs/state.py) is set on a figure; the drawing it opens on
is compared, pixel for pixel, with the drawing a twin figure without the option shows
once a reader has clicked its way there. A link to the figure still wins over its
options, and the link a figure writes opens the same state again.
"""

from __future__ import annotations

from typing import Any

from attndocs.state import MATRIX_MODES, SUMMARY_STATS

LINES = ".attndocs-lines > canvas"
MATRIX = "canvas.attndocs-mcanvas"
STATE = "fig => ({layer: fig.state.layer, heads: fig.state.heads, section: fig.state.section, filter: fig.state.filter, " \
    "mode: fig.state.mode, lines: fig.state.lines, stat: fig.state.stat, layout: fig.state.layout, open: fig.state.open, " \
    "scale: fig.state.scale, locked: fig.state.locked, token: fig.state.token && fig.state.token.side + fig.state.token.index})"


def _figures(synthetic_record: Any) -> list[tuple[Any, dict]]:
    # [CLS] the cat sat [SEP] while a dog lay [SEP]
    pair = synthetic_record("pair", n=10, layers=4, heads=4, seed=1)
    seq = synthetic_record("encoder-decoder", n=8, layers=3, heads=4, seed=2)
    dec = synthetic_record("decoder", n=9, layers=3, heads=4, qk=True, seed=3)
    return [
        (pair, {"view": "head", "name": "tok", "layer": "2", "heads": "1", "token": "dog", "locked": "true"}),
        (pair, {"view": "head", "name": "tokref", "layer": "2", "heads": "1"}),
        (pair, {"view": "matrix", "name": "mat", "layer": "2", "mode": "rollout", "lines": "true"}),
        (pair, {"view": "matrix", "name": "matref", "layer": "2"}),
        (pair, {"view": "model", "name": "grid", "layer": "2", "heads": "3", "open": "true", "scale": "head",
                "token": "key:lay", "locked": "true"}),
        (pair, {"view": "summary", "name": "sum", "stat": "distance", "layout": "table"}),
        (dec, {"view": "neuron", "name": "nrn", "layer": "1", "heads": "2", "token": "cat", "locked": "true"}),
        (seq, {"view": "head", "name": "seq", "section": "cross", "token": "key:sat#1", "locked": "yes"}),
        (pair, {"view": "head", "name": "flt", "filter": "ab", "token": "[SEP]#2"}),
        (pair, {"view": "head", "name": "fltref"}),
    ]


def _state(probe: Any, index: int) -> dict:
    return probe.fig_eval(index, STATE)


def _canvas(probe: Any, index: int, selector: str) -> dict:
    return probe.figures.nth(index).locator(selector).first.evaluate(
        """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  let painted = 0, h = 0;
                  for (let i = 0; i < d.length; i += 4) { if (d[i + 3]) painted++; h = (h * 31 + d[i] + 7 * d[i + 1] + 13 * d[i + 2] + 17 * d[i + 3]) | 0; }
                  return {painted, hash: h, w: c.width, h: c.height}; }"""
    )


def test_each_option_is_drawn_at_first_paint(figure_page, synthetic_record):
    probe = figure_page(_figures(synthetic_record))
    figs = probe.figures
    # Measured before anything is touched: what a reader sees when the page opens.
    opened = {i: _state(probe, i) for i in range(10)}
    locked_lines = _canvas(probe, 0, LINES)
    rollout = _canvas(probe, 2, MATRIX)
    filtered = _canvas(probe, 8, LINES)

    # Head view, token "dog" (index 7) locked: only its lines, and the token marked locked.
    assert opened[0]["token"] == "q7" and opened[0]["locked"] is True
    assert "attndocs-locked" in (figs.nth(0).locator('.attndocs-token[data-side="q"][data-index="7"]').get_attribute("class") or "")
    everything = _canvas(probe, 1, LINES)
    figs.nth(1).locator('.attndocs-token[data-side="q"][data-index="7"]').hover()
    hovered = _canvas(probe, 1, LINES)
    assert 0 < locked_lines["painted"] < everything["painted"]
    assert locked_lines["hash"] == hovered["hash"], "the locked token's lines differ from that token's own lines"
    probe.page.mouse.move(1, 1)
    # The mouse does not move a locked token away.
    figs.nth(0).locator('.attndocs-token[data-side="q"][data-index="2"]').hover()
    assert _state(probe, 0)["token"] == "q7"

    # Matrix view in rollout mode with lines, as the twin shows it after two clicks.
    assert (opened[2]["mode"], opened[2]["lines"], opened[2]["layer"]) == ("rollout", True, 2)
    assert "rollout through layer 2" in figs.nth(2).locator(".attndocs-minfo").inner_text()
    assert figs.nth(2).locator(".attndocs-mlines canvas").count() >= 1
    head_mode = _canvas(probe, 3, MATRIX)
    figs.nth(3).locator('.attndocs-segmented[aria-label="Matrix"] [data-value="rollout"]').click()
    assert _state(probe, 3)["mode"] == "rollout"
    assert rollout["hash"] == _canvas(probe, 3, MATRIX)["hash"] != head_mode["hash"]

    # Model view with layer 2, head 3 open.
    assert opened[4]["open"] is True and opened[4]["scale"] == "head"
    detail = figs.nth(4).locator(".attndocs-detail")
    assert detail.is_visible() and "layer 2, head 3" in detail.inner_text()
    assert _canvas(probe, 4, ".attndocs-detail canvas")["painted"] > 0
    assert opened[4]["token"] == "k8"
    assert "attndocs-locked" in (detail.locator('.attndocs-token[data-side="k"][data-index="8"]').get_attribute("class") or "")

    # Summary view as a table of mean distances.
    assert (opened[5]["stat"], opened[5]["layout"]) == ("distance", "table")
    assert figs.nth(5).locator("table").count() == 1 and figs.nth(5).locator(".attndocs-sgrid").count() == 0

    # Neuron view on the query "cat" (index 2 of the decoder), locked.
    assert (opened[6]["token"], opened[6]["locked"], opened[6]["layer"], opened[6]["heads"]) == ("q2", True, 1, [2])
    selected = figs.nth(6).locator(".attndocs-nq .attndocs-selected")
    assert selected.count() == 1 and selected.inner_text().strip() == "cat"
    assert "query \u201ccat\u201d" in figs.nth(6).locator(".attndocs-ninfo").inner_text()

    # Cross attention, a key token (encoder side) locked: the decoder attending to "sat".
    assert (opened[7]["section"], opened[7]["token"]) == ("cross", "k2")
    assert "attndocs-locked" in (figs.nth(7).locator('.attndocs-token[data-side="k"][data-index="2"]').get_attribute("class") or "")

    # Sentence filter A -> B and an unlocked token; the filter draws what the twin draws after a click.
    assert (opened[8]["filter"], opened[8]["token"], opened[8]["locked"]) == ("ab", "q9", False)
    assert opened[9]["scale"] == "fixed", "the default scale is one fixed 0-1 scale"
    # The unlocked token follows the mouse, and comes back when the mouse leaves: the figure rests
    # on its caption's point, not on every line.
    figs.nth(8).locator('.attndocs-token[data-side="q"][data-index="2"]').hover()
    assert _state(probe, 8)["token"] == "q2"
    assert _canvas(probe, 8, LINES)["hash"] != filtered["hash"]
    probe.page.mouse.move(1, 1)
    assert _state(probe, 8)["token"] == "q9" and _state(probe, 8)["filter"] == "ab"
    assert _canvas(probe, 8, LINES)["hash"] == filtered["hash"]
    assert 0 < filtered["painted"]
    figs.nth(9).locator('.attndocs-seg[data-value="ab"]').click()
    figs.nth(9).locator('.attndocs-token[data-side="q"][data-index="9"]').hover()
    assert _canvas(probe, 9, LINES)["hash"] == filtered["hash"]


def test_the_views_offer_exactly_the_declared_values(figure_page, synthetic_record):
    """The matrix modes and summary statistics the browser offers are the ones state.py declares."""
    pair = synthetic_record("pair", n=10, layers=4, heads=4, seed=1)
    probe = figure_page([(pair, {"view": "matrix"}), (pair, {"view": "summary"})])
    offered = probe.figures.nth(0).locator('.attndocs-segmented[aria-label="Matrix"] .attndocs-seg')
    assert offered.evaluate_all("bs => bs.map(b => b.dataset.value)") == list(MATRIX_MODES) == probe.fig_eval(0, "fig => fig._allowed.mode")
    stats = probe.figures.nth(1).locator(".attndocs-control", has_text="Statistic").locator("select option").evaluate_all("os => os.map(o => o.value)")
    assert stats == list(SUMMARY_STATS) == probe.fig_eval(1, "fig => fig._allowed.stat")


def test_a_link_overrides_the_options_and_the_written_link_opens_the_same_state(figure_page, open_html, synthetic_record):
    probe = figure_page(_figures(synthetic_record))
    html = probe.path.read_text(encoding="utf-8")

    # A link wins over the options; the other figures keep theirs.
    linked = open_html(html, name="linked.html", fragment="#mat/mode=head&lines=0&layer=1")
    assert (_state(linked, 2)["mode"], _state(linked, 2)["lines"], _state(linked, 2)["layer"]) == ("head", False, 1)
    assert _state(linked, 0)["token"] == "q7" and _state(linked, 8)["filter"] == "ab"
    # A link's token may be written as an option writes it.
    linked = open_html(html, name="linked2.html", fragment="#tok/token=key:a&locked=1")
    assert (_state(linked, 0)["token"], _state(linked, 0)["locked"]) == ("k6", True)

    # The reader changes the opened figures; the link they write says only what changed ...
    probe.figures.nth(2).locator("select.attndocs-select").first.select_option("3")
    written = probe.wait_for_hash("#mat/layer=3")
    assert written == "#mat/layer=3", "keys left at the figure's opening state are not written"
    again = open_html(html, name="again.html", fragment=written)
    assert _state(again, 2) == _state(probe, 2)
    assert "rollout through layer 3" in again.figures.nth(2).locator(".attndocs-minfo").inner_text()

    # ... and clearing a token the figure opens on locked is part of the link too.
    probe.figures.nth(0).locator('.attndocs-token[data-side="q"][data-index="7"]').focus()
    probe.page.keyboard.press("Escape")
    assert _state(probe, 0)["token"] is None
    written = probe.wait_for_hash("#tok/")
    again = open_html(html, name="cleared.html", fragment=written)
    assert (_state(again, 0)["token"], _state(again, 0)["locked"]) == (None, False)
    assert _canvas(again, 0, LINES)["hash"] == _canvas(again, 1, LINES)["hash"]
