"""The neuron view's sentence filter and its softmax bars, in headless Chromium (issue 15, item 3).

The filter (all, aa, bb, ab, ba) is the head view's: it is offered only for sentence pairs,
limits the queries offered and the keys shown, opens from an option or a link, and works
from the keyboard. The softmax weights shown stay the model's (over every key). No bar
covers a number: each number's box is clear of every bar and every canvas, at 390 and 1280
px, light and dark.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from attndocs.errors import OptionError
from attndocs.options import FigureOptions
from attndocs.payload import build_payload

pytestmark = pytest.mark.browser

# [CLS] w w w [SEP] | w w w w [SEP]: sentence A is tokens 0-4, sentence B 5-9.
A, B = list(range(0, 5)), list(range(5, 10))
EXPECTED = {"all": (A + B, A + B), "aa": (A, A), "bb": (B, B), "ab": (A, B), "ba": (B, A)}
LABELS = {"all": "All", "aa": "A→A", "bb": "B→B", "ab": "A→B", "ba": "B→A"}


def _pair(synthetic_record, **kw):
    record = synthetic_record("pair", n=10, layers=2, heads=2, qk=True, seed=11, **kw)
    assert record.sides["encoder"].text_b_start == 5
    return record


def _indices(fig, selector: str) -> list[int]:
    return fig.locator(selector).evaluate_all("ns => ns.map(n => +n.dataset.index)")


def _shown(fig) -> tuple[list[int], list[int]]:
    return _indices(fig, ".attndocs-nq .attndocs-token"), _indices(fig, ".attndocs-ngrid > .attndocs-token")


def _weights(fig) -> np.ndarray:
    texts = fig.locator(".attndocs-ngrid .attndocs-nprob").evaluate_all("ns => ns.map(n => n.textContent)")
    return np.array([float(t) for t in texts])


def _filter_control(fig):
    return fig.locator(".attndocs-controls .attndocs-control", has_text="Sentences")


def test_the_filter_is_offered_only_for_a_sentence_pair(figure_page, synthetic_record):
    single = synthetic_record("encoder", n=8, layers=2, heads=2, qk=True, seed=2)
    probe = figure_page([(single, {"view": "neuron"}), (_pair(synthetic_record), {"view": "neuron"})])
    assert _filter_control(probe.figures.nth(0)).count() == 1
    assert not _filter_control(probe.figures.nth(0)).is_visible()
    control = _filter_control(probe.figures.nth(1))
    assert control.is_visible()
    assert control.locator("button").all_inner_texts() == list(LABELS.values())
    assert control.locator("button[aria-pressed='true']").inner_text() == "All"


@pytest.mark.parametrize("which", list(EXPECTED))
def test_each_filter_shows_exactly_its_queries_and_keys(figure_page, synthetic_record, which):
    record = _pair(synthetic_record)
    attention = record.sections["encoder"].attention
    probe = figure_page([(record, {"view": "neuron"})])
    fig = probe.figures.first
    _filter_control(fig).get_by_role("button", name=LABELS[which], exact=True).click()
    rows, cols = EXPECTED[which]
    assert _shown(fig) == (rows, cols)
    assert probe.fig_eval(0, "fig => fig.state.filter") == which
    assert _filter_control(fig).locator("button[aria-pressed='true']").inner_text() == LABELS[which]
    # The query drawn is one the filter offers; its weights are the model's, over every key.
    selected = _indices(fig, ".attndocs-nq .attndocs-token.attndocs-selected")
    assert len(selected) == 1 and selected[0] in rows
    np.testing.assert_allclose(_weights(fig), attention[0, 0, selected[0], cols], atol=0.0005 + 1e-4)
    # The vector canvas has one row per key shown, and every row is painted.
    height = fig.locator("canvas.attndocs-nvec").evaluate("c => c.getBoundingClientRect().height")
    assert height == pytest.approx(20 * len(cols), abs=0.5)
    stats = probe.canvas_stats(".attndocs-nvec")
    assert stats["painted"] > 0.8 * stats["width"] * stats["height"] * 0.9
    info = fig.locator(".attndocs-ninfo").inner_text()
    if which == "all":
        assert "sentence" not in info
    else:
        assert f"sentence {which[0].upper()} queries, sentence {which[1].upper()} keys" in info
        assert f"({len(cols)} of 10; the softmax is over all 10)" in info
    # Hovering another offered query shows its row of weights, still only the keys kept.
    other = rows[-1]
    fig.locator(f".attndocs-nq .attndocs-token[data-index='{other}']").hover()
    np.testing.assert_allclose(_weights(fig), attention[0, 0, other, cols], atol=0.0005 + 1e-4)


def test_an_option_or_a_link_opens_the_view_filtered(figure_page, synthetic_record):
    record = _pair(synthetic_record)
    probe = figure_page([
        (record, {"view": "neuron", "name": "opt", "filter": "ab", "token": "@3", "locked": "true"}),
        (record, {"view": "neuron", "name": "lnk"}),
    ])
    opened = probe.figures.nth(0)
    assert _shown(opened) == (A, B)
    assert _indices(opened, ".attndocs-nq .attndocs-token.attndocs-locked") == [3]
    assert _filter_control(opened).locator("button[aria-pressed='true']").inner_text() == "A→B"
    assert _shown(probe.figures.nth(1)) == (A + B, A + B)
    # The export shows the keys shown: sentence B's, each with its weight and a bar beside it.
    svg = probe.fig_eval(0, "fig => fig.exportSVG()")
    keys = re.findall(r'text-anchor="end"[^>]*>([^<]*)</text>', svg)
    assert keys[1:] == ["q: sat", "while", "a", "dog", "lay", "[SEP]"]
    assert svg.count('fill-opacity="0.6"') == len(B)

    # A link sets the filter of the figure it names (and a query that the filter keeps).
    probe.goto("#lnk/filter=ba&token=q6&locked=1")
    probe.wait_ready()
    linked = probe.figures.nth(1)
    assert probe.fig_eval(1, "fig => fig.state.filter") == "ba"
    assert _shown(linked) == (B, A)
    assert _indices(linked, ".attndocs-nq .attndocs-token.attndocs-locked") == [6]
    # Changing the filter writes it back into the link.
    _filter_control(linked).get_by_role("button", name="B→B", exact=True).click()
    probe.wait_for_hash("lnk/", "filter=bb")
    assert _shown(linked) == (B, B)


def test_the_filter_and_its_queries_work_from_the_keyboard(figure_page, synthetic_record):
    record = _pair(synthetic_record)
    attention = record.sections["encoder"].attention
    probe = figure_page([(record, {"view": "neuron"})])
    page, fig = probe.page, probe.figures.first
    # The segmented control: arrows move focus, Enter presses.
    _filter_control(fig).locator("button").first.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    assert page.evaluate("() => document.activeElement.textContent") == "A→B"
    page.keyboard.press("Enter")
    assert probe.fig_eval(0, "fig => fig.state.filter") == "ab"
    assert _shown(fig) == (A, B)
    # The query list offers only sentence A: End reaches its last token, not the pair's.
    fig.locator(".attndocs-nq .attndocs-token").first.focus()
    page.keyboard.press("End")
    assert page.evaluate("() => +document.activeElement.dataset.index") == A[-1]
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Enter")
    assert probe.fig_eval(0, "fig => [fig.state.token.index, fig.state.locked]") == [A[-2], True]
    np.testing.assert_allclose(_weights(fig), attention[0, 0, A[-2], B], atol=0.0005 + 1e-4)
    # A query the new filter hides gives way to one it offers.
    _filter_control(fig).get_by_role("button", name="B→A", exact=True).click()
    selected = _indices(fig, ".attndocs-nq .attndocs-token.attndocs-selected")
    assert selected == [B[0]] and _shown(fig) == (B, A)


def test_a_token_the_filter_hides_is_a_build_error_that_says_what_works(synthetic_record):
    record = _pair(synthetic_record)
    options = FigureOptions.from_mapping({"view": "neuron", "filter": "ab", "token": "@7"})
    with pytest.raises(OptionError) as info:
        build_payload(record, options)
    text = str(info.value)
    assert "sentence B query, which filter ab hides" in text and "set filter: bb or all" in text
    # A figure without text-b still refuses the filter, as the head view does.
    single = synthetic_record("encoder", n=6, layers=2, heads=2, qk=True)
    with pytest.raises(OptionError, match="no sentence pair"):
        build_payload(single, FigureOptions.from_mapping({"view": "neuron", "filter": "ab"}))


# -- no bar covers a number ----------------------------------------------------------------------
_OVERLAPS = r"""
fig => {
  const boxes = sel => Array.from(fig.querySelectorAll(sel)).map(n => n.getBoundingClientRect())
    .filter(r => r.width > 0 && r.height > 0);
  const cross = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
  // A number's box is its text's own box (a Range), not its cell's padding.
  const texts = Array.from(fig.querySelectorAll('.attndocs-nval, .attndocs-nscore, .attndocs-nbias')).map(n => {
    const range = document.createRange(); range.selectNodeContents(n); return [n.textContent, range.getBoundingClientRect()];
  });
  const painters = boxes('.attndocs-nbar').concat(boxes('.attndocs-neuron canvas'));
  const bad = [];
  for (const [text, box] of texts) for (const p of painters) if (cross(box, p)) bad.push(text);
  // Each number is whole in its cell (no clipping under a neighbour).
  const clipped = Array.from(fig.querySelectorAll('.attndocs-nnum')).filter(n => n.scrollWidth > n.clientWidth + 1)
    .map(n => n.textContent);
  const widest = Math.max(...boxes('.attndocs-nbar').map(r => r.width));
  // What is behind a number (its cell's tint over the figure) leaves it 4.5:1 contrast.
  const parse = s => s.match(/[\d.]+/g).map(Number);
  const lum = c => c.slice(0, 3).map(v => (v /= 255) <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4))
    .reduce((sum, v, i) => sum + [0.2126, 0.7152, 0.0722][i] * v, 0);
  const page = parse(getComputedStyle(fig.querySelector('.attndocs-nhead')).backgroundColor);
  let contrast = 99;
  for (const n of fig.querySelectorAll('.attndocs-nscore, .attndocs-nbias, .attndocs-nval')) {
    const style = getComputedStyle(n), tint = parse(style.backgroundColor), a = tint.length > 3 ? tint[3] : 1;
    const behind = [0, 1, 2].map(i => tint[i] * a + page[i] * (1 - a));
    const x = lum(parse(style.color)), y = lum(behind);
    contrast = Math.min(contrast, (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05));
  }
  return {numbers: texts.length, bars: fig.querySelectorAll('.attndocs-nbar').length, bad, clipped, widest, contrast};
}
"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [390, 1280])
def test_no_bar_covers_a_number(figure_page, synthetic_record, width, scheme):
    # sharp: one key takes most of the weight, so its bar is as long as a bar gets.
    record = synthetic_record("pair", n=14, layers=2, heads=2, qk=True, bias=True, seed=5, sharp=6.0)
    probe = figure_page([(record, {"view": "neuron"})], viewport={"width": width, "height": 900}, color_scheme=scheme)
    fig = probe.figures.first
    for query in (0, 6, 13):
        fig.locator(f".attndocs-nq .attndocs-token[data-index='{query}']").click()
        found = fig.evaluate(_OVERLAPS)
        assert found["numbers"] == 3 * 14 and found["bars"] == 14
        assert found["bad"] == [], f"{width} px {scheme}, query {query}: bars over {found['bad']}"
        assert found["clipped"] == []
        assert found["contrast"] >= 4.5, f"{width} px {scheme}, query {query}"
        top = float(np.max(_weights(fig)))
        assert found["widest"] >= 10 * top  # the longest bar is drawn, beside its number
    # The same holds when the filter shows fewer keys.
    _filter_control(fig).get_by_role("button", name="A→B", exact=True).click()
    assert fig.evaluate(_OVERLAPS)["bad"] == []
