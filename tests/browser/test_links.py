"""Links into figures: every key that docs/syntax.md ("Linking to a view") lists does what it says.

A link is ``#<figure name>/<key>=<value>&...``. It applies when the page opens with it and
when the reader follows it on the page (no reload); values that do not fit are ignored.
"""

from __future__ import annotations

from typing import Any

STATE = "fig => ({layer: fig.state.layer, heads: fig.state.heads, section: fig.state.section, " \
    "filter: fig.state.filter, open: fig.state.open, mode: fig.state.mode, lines: fig.state.lines, " \
    "stat: fig.state.stat, layout: fig.state.layout, locked: fig.state.locked, " \
    "token: fig.state.token && fig.state.token.side + fig.state.token.index})"


def _figures(synthetic_record: Any) -> list[tuple[Any, dict]]:
    pair = synthetic_record("pair", n=10, layers=4, heads=4, seed=1)
    return [
        (synthetic_record("encoder-decoder", n=8, layers=3, heads=4, seed=2), {"view": "head", "name": "seq"}),
        (pair, {"view": "model", "name": "grid", "include-layers": "1-3"}),
        (synthetic_record("decoder", n=9, layers=3, heads=4, qk=True, seed=3), {"view": "neuron", "name": "nrn"}),
        (pair, {"view": "matrix", "name": "mat"}),
        (pair, {"view": "summary", "name": "sum"}),
    ]


def _state(probe: Any, index: int) -> dict:
    return probe.fig_eval(index, STATE)


def _follow(probe: Any, index: int, link: str, **expected: Any) -> dict:
    """Follow ``link`` on the open page and wait until figure ``index`` shows ``expected``."""
    probe.page.evaluate("link => { location.hash = link; }", link)
    probe.page.wait_for_function(
        f"""([i, want]) => {{
            const s = ({STATE})(attndocs.figure(document.querySelectorAll('.attndocs-figure')[i]));
            return Object.keys(want).every(k => JSON.stringify(s[k]) === JSON.stringify(want[k]));
        }}""",
        arg=[index, expected],
        timeout=5000,
    )
    return _state(probe, index)


def test_a_page_opened_with_a_link_shows_that_state(figure_page, open_html, synthetic_record):
    first = figure_page(_figures(synthetic_record))
    html = first.path.read_text(encoding="utf-8")
    probe = open_html(html, name="linked.html", fragment="#mat/layer=3&heads=2&mode=rollout&lines=1")
    state = _state(probe, 3)
    assert (state["layer"], state["heads"], state["mode"], state["lines"]) == (3, [2], "rollout", True)
    assert "through layer 3" in probe.figures.nth(3).locator(".attndocs-minfo").inner_text()
    # The other figures keep their own first state.
    assert _state(probe, 4)["stat"] == "entropy" and _state(probe, 0)["section"] == "encoder"


def test_every_documented_key_applies_when_the_link_is_followed(figure_page, synthetic_record):
    probe = figure_page(_figures(synthetic_record))
    seq, grid, _, mat, summ = (probe.figures.nth(i) for i in range(5))

    # section, layer, heads, token + locked (head view of an encoder-decoder record)
    _follow(probe, 0, "#seq/section=cross&layer=2&heads=1,3&token=q5&locked=1",
            section="cross", layer=2, heads=[1, 3], token="q5", locked=True)
    assert "attndocs-locked" in (seq.locator('.attndocs-token[data-side="q"][data-index="5"]').get_attribute("class") or "")

    # model view: layer numbers are the model's, not positions among included layers; open, filter
    _follow(probe, 1, "#grid/layer=2&heads=3&open=1&filter=ab", layer=2, heads=[3], open=True, filter="ab")
    assert "layer 2, head 3" in grid.locator(".attndocs-detail").inner_text()
    assert grid.locator(".attndocs-detail").is_visible()
    # neuron view: a locked query token of a decoder
    _follow(probe, 2, "#nrn/layer=1&heads=2&token=q7&locked=1", layer=1, heads=[2], token="q7", locked=True)

    # matrix view: every mode by name
    for mode in ("head", "mean", "max", "mean-all", "max-all", "rollout"):
        _follow(probe, 3, f"#mat/mode={mode}", mode=mode)
    # summary view: every statistic and both layouts
    for stat in ("entropy", "entropy_norm", "distance", "special", "previous", "self", "cross_ab"):
        _follow(probe, 4, f"#sum/stat={stat}&layout=table", stat=stat, layout="table")
    assert summ.locator("table").count() == 1
    _follow(probe, 4, "#sum/layout=grid", layout="grid")
    assert summ.locator(".attndocs-scell").count() == 4 * 4
    assert "rollout through layer" in mat.locator(".attndocs-minfo").inner_text()


def test_values_that_do_not_fit_are_ignored_and_the_rest_applies(figure_page, synthetic_record):
    probe = figure_page(_figures(synthetic_record))
    before = _state(probe, 1)
    # Layer 0 is not included in the model view; head 9 does not exist; the filter is unknown.
    _follow(probe, 1, "#grid/layer=0&heads=9&filter=zz&open=1", open=True)
    after = _state(probe, 1)
    assert (after["layer"], after["filter"]) == (before["layer"], before["filter"])
    assert after["heads"] == before["heads"]
    _follow(probe, 3, "#mat/mode=nonsense&layer=2", layer=2)
    assert _state(probe, 3)["mode"] == "head"
    _follow(probe, 4, "#sum/stat=bogus&layout=table", layout="table")
    assert _state(probe, 4)["stat"] == "entropy"
