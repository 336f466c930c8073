"""Every figure of the example course opens on its caption's point, with no interaction.

The course is built once (`attndocs build`, from the course's own cache) and each page is
opened in Chromium from disk. Each figure is scrolled into view and read as a reader sees
it: the controls it shows (the layer, the matrix mode, the section, the statistic), the
token it selected, and the pixels it drew (the lines leave only the selected token; the
rollout's [CLS] column is the darkest; the untrained cross section is pale on the shared
scale). The Sphinx edition is checked the same way, with Furo, numbered captions and a
footer. OPENINGS lists every figure of every page, so a new figure must say what it opens on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from attndocs.fence import find_blocks
from attndocs.site import build_site

pytestmark = [pytest.mark.real, pytest.mark.browser]

EXAMPLE = Path(__file__).parents[2] / "example_site"

# page -> one entry per figure, in page order: what the reader sees before touching it.
#   controls: {a select's label or a button group (section, mode, layout, filter): its value}
#   token:    (side, text) of the selected token; None: no token selected; locked: held as by a click
#   lines_from_token / cls_darkest / pale / rows_cols / detail: pixel and geometry checks
#   difference: (row, bluest column, most orange column) of a comparison's A - B matrix, the row outlined
#   step:     (slider value, the token being written) of a generation figure
#   role_cells: the (layer, head) cells marked for the figure's role
OPENINGS: dict[str, list[dict[str, Any]]] = {
    "index": [
        {"view": "head", "controls": {"layer": "3"}, "heads": [1], "token": ("q", "it"), "lines_from_token": True},
    ],
    "01-encoder": [
        {"view": "head", "controls": {"layer": "3"}, "heads": [1], "token": ("q", "it"), "lines_from_token": True},
        {"view": "head", "controls": {"layer": "3"}, "heads": [1], "token": ("q", "it"), "lines_from_token": True},
        # "tired" minus "wide": the row of "it" is outlined, bluest on "animal", most orange on [CLS].
        {"view": "matrix", "controls": {"layer": "3", "head": "1"}, "difference": ("it", "animal", "[CLS]")},
        {"view": "model", "token": None},
        {"view": "neuron", "controls": {"layer": "3", "head": "1"}, "token": ("q", "it"), "locked": True},
    ],
    "02-decoder": [
        # "is" appears three times; the caption is about the last one.
        {"view": "head", "controls": {"layer": "18"}, "heads": [6], "token": ("q", "is"), "token_index": 18, "lines_from_token": True},
        {"view": "neuron", "controls": {"layer": "18", "head": "6"}, "token": ("q", "is"), "token_index": 18, "locked": True},
    ],
    "03-generation": [
        # Step 1 writes " Berlin": the last " is" (position 11) is the locked query, its lines go out.
        {"view": "head", "controls": {"layer": "16"}, "heads": [4], "token": ("q", "is"), "token_index": 11, "locked": True,
         "lines_from_token": True, "step": ("1", "Berlin")},
        {"view": "summary", "controls": {"statistic": "previous", "role": "induction"}, "detail": "Layer 17 · head 5",
         "role_cells": [(17, 5), (18, 6), (20, 5)]},
    ],
    "04-encoder-decoder": [
        {"view": "head", "controls": {"section": "encoder"}, "token": None},
        {"view": "matrix", "controls": {"section": "cross", "mode": "head"}, "rows_cols": (10, 9), "pale": True},
    ],
    "05-matrix-and-summary": [
        {"view": "matrix", "controls": {"mode": "head", "layer": "3", "head": "1"}, "token": ("q", "it"), "locked": True},
        {"view": "matrix", "controls": {"mode": "rollout", "layer": "5"}, "token": None, "cls_darkest": True},
        {"view": "summary", "controls": {"statistic": "previous"}, "detail": "Layer 0 · head 2", "top_cell": (0, 2)},
    ],
    "06-writing-figures": [
        {"view": "model", "token": None},
    ],
    "07-vision": [
        # The patch view opens on [CLS] (not kept), the matrix on every patch against every patch.
        {"view": "patch", "controls": {"layer": "0"}, "token": ("q", "[CLS]")},
        {"view": "matrix", "controls": {"mode": "head", "layer": "0", "head": "0"}, "rows_cols": (65, 65)},
    ],
}

# What one figure shows: its controls' values, its selected tokens, and geometry of its drawing.
READ_FIGURE_JS = """
(fig) => {
  const controls = {};
  // Selects by their label's text; button groups by the values they offer.
  fig.querySelectorAll('label.attndocs-control').forEach(l => {
    const s = l.querySelector('select'), t = l.querySelector('span');
    if (s && t) controls[t.textContent.trim().toLowerCase()] = s.value;
  });
  const groups = {section: ['encoder', 'decoder', 'cross'], mode: ['rollout', 'mean'], layout: ['grid', 'table'], filter: ['aa', 'ab']};
  fig.querySelectorAll('.attndocs-segmented').forEach(g => {
    const values = Array.from(g.querySelectorAll('[data-value]')).map(b => b.getAttribute('data-value'));
    const name = Object.keys(groups).find(k => groups[k].some(v => values.includes(v)));
    const on = g.querySelector('[aria-pressed=true]');
    if (name && on) controls[name] = on.getAttribute('data-value');
  });
  const picked = Array.from(fig.querySelectorAll(
    '.attndocs-token.attndocs-active, .attndocs-token.attndocs-selected, .attndocs-token.attndocs-hl'
  )).map(t => ({side: t.getAttribute('data-side'), index: +t.getAttribute('data-index'), text: t.textContent.trim(),
                locked: t.classList.contains('attndocs-locked'), box: t.getBoundingClientRect().toJSON()}));
  const heads = Array.from(fig.querySelectorAll('.attndocs-heads [aria-pressed=true]'))
    .map(b => +(b.getAttribute('data-head') || b.getAttribute('data-value') || b.textContent));
  const title = fig.querySelector('.attndocs-stitle');
  const cells = Array.from(fig.querySelectorAll('.attndocs-scell[data-layer]')).map(c => {
    const m = getComputedStyle(c).backgroundColor.match(/[\\d.]+/g).map(Number);
    const a = m.length > 3 ? m[3] : 1;
    const lum = (0.299 * m[0] + 0.587 * m[1] + 0.114 * m[2]) * a + 255 * (1 - a);
    return {layer: +c.getAttribute('data-layer'), head: +c.getAttribute('data-head'), lum};
  });
  return {controls, picked, heads, detail: title ? title.textContent.trim() : null, cells,
          rows: fig.querySelectorAll('.attndocs-mrows .attndocs-token').length,
          cols: fig.querySelectorAll('.attndocs-mcols .attndocs-token').length};
}
"""

# Darkness of a canvas's pixels (0 white .. 1 black, composited on white), summarised in the
# page: the page-y range of the painted pixels in the leftmost painted columns (where a head
# view's lines leave the queries), the mean darkness of each cell of a `rows` x `cols` grid
# laid over it (a matrix view's cells), and the maximum.
CANVAS_JS = """
([canvas, rows, cols]) => {
  const w = canvas.width, h = canvas.height, d = canvas.getContext('2d').getImageData(0, 0, w, h).data;
  const box = canvas.getBoundingClientRect(), scale = box.height / h;
  const dark = (x, y) => {
    const i = 4 * (y * w + x), a = d[i + 3] / 255;
    return 1 - ((0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2]) * a + 255 * (1 - a)) / 255;
  };
  let first = -1, max = 0;
  for (let x = 0; x < w; x++) for (let y = 0; y < h; y++) {
    const v = dark(x, y);
    if (v > max) max = v;
    if (v > 0.03 && first < 0) first = x;
  }
  let top = Infinity, bottom = -Infinity;
  for (let x = Math.max(first, 0); first >= 0 && x < Math.min(w, first + 4); x++) for (let y = 0; y < h; y++) {
    if (dark(x, y) > 0.03) { top = Math.min(top, box.y + y * scale); bottom = Math.max(bottom, box.y + (y + 1) * scale); }
  }
  const cells = [];
  for (let i = 0; i < rows; i++) {
    const row = [], y0 = Math.floor(i * h / rows) + 2, y1 = Math.floor((i + 1) * h / rows) - 2;
    for (let j = 0; j < cols; j++) {
      const x0 = Math.floor(j * w / cols) + 2, x1 = Math.floor((j + 1) * w / cols) - 2;
      let sum = 0, n = 0;
      for (let y = y0; y < y1; y += 2) for (let x = x0; x < x1; x += 2) { sum += dark(x, y); n++; }
      row.push(n ? sum / n : 0);
    }
    cells.push(row);
  }
  return {painted: first >= 0, top, bottom, cells, max};
}
"""


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    report = build_site(EXAMPLE, tmp_path_factory.mktemp("course-opening") / "out")
    assert report.problems == [], [str(p) for p in report.problems]
    assert report.batch is not None and report.batch.failed == 0
    return report.out


# A comparison's difference matrix: the outlined (picked) row's label, and in that row the
# columns whose cells are the most blue (A higher) and the most orange (B higher).
DIFFERENCE_JS = """
(fig) => {
  const rows = Array.from(fig.querySelectorAll('.attndocs-compare-rows .attndocs-compare-tok'));
  const cols = Array.from(fig.querySelectorAll('.attndocs-compare-cols .attndocs-compare-tok'));
  const picked = rows.findIndex(r => r.classList.contains('attndocs-compare-picked'));
  const canvas = fig.querySelector('canvas.attndocs-compare-canvas');
  if (picked < 0 || !canvas) return {picked: null};
  const w = canvas.width, h = canvas.height, d = canvas.getContext('2d').getImageData(0, 0, w, h).data;
  const y0 = Math.floor(picked * h / rows.length) + 4, y1 = Math.floor((picked + 1) * h / rows.length) - 4;
  const lean = cols.map((_, j) => {
    const x0 = Math.floor(j * w / cols.length) + 4, x1 = Math.floor((j + 1) * w / cols.length) - 4;
    let sum = 0, n = 0;
    for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) { const i = 4 * (y * w + x); sum += d[i + 2] - d[i]; n++; }
    return n ? sum / n : 0;
  });
  const most = (sign) => lean.reduce((best, v, j) => (sign * v > sign * lean[best] ? j : best), 0);
  return {picked: rows[picked].textContent.trim(), shown: fig.getAttribute('data-compare-show'),
          blue: cols[most(1)].textContent.trim(), orange: cols[most(-1)].textContent.trim()};
}
"""


def canvas_pixels(figure: Any, selector: str, rows: int = 0, cols: int = 0) -> dict[str, Any]:
    canvas = figure.locator(selector).first.element_handle()
    return figure.page.evaluate(CANVAS_JS, [canvas, rows, cols])


def check_figure(figure: Any, expected: dict[str, Any], where: str) -> None:
    assert figure.get_attribute("data-attndocs-view") == expected["view"], where
    seen = figure.evaluate(READ_FIGURE_JS)
    for label, value in expected.get("controls", {}).items():
        assert seen["controls"].get(label) == value, f"{where}: {label} is {seen['controls'].get(label)!r}, not {value!r}"
    if "heads" in expected:
        assert seen["heads"] == expected["heads"], f"{where}: heads {seen['heads']}"
    if "token" in expected:
        token = expected["token"]
        queries = [p for p in seen["picked"] if p["side"] == "q"]
        if token is None:
            assert queries == [], f"{where}: opened on {queries}"
        else:
            assert queries, f"{where}: no token selected"
            assert {(p["side"], p["text"]) for p in queries} == {token}, f"{where}: selected {queries}"
            if "token_index" in expected:
                assert queries[0]["index"] == expected["token_index"], f"{where}: token {queries[0]}"
            # locked: kept as a click keeps it, so hovering elsewhere does not lose the point.
            assert all(p["locked"] == expected.get("locked", False) for p in queries), f"{where}: locked {queries}"
    if expected.get("lines_from_token"):
        # Every line leaves the selected token: at the left end of the drawing, the painted
        # pixels lie within that token's row.
        box = next((p["box"] for p in seen["picked"] if p["side"] == "q"), None)
        assert box is not None, f"{where}: no query token selected"
        lines = canvas_pixels(figure, ".attndocs-lines canvas")
        assert lines["painted"], f"{where}: no lines drawn"
        assert lines["top"] >= box["y"] - 3 and lines["bottom"] <= box["y"] + box["height"] + 3, (
            f"{where}: lines leave rows {lines['top']:.0f}-{lines['bottom']:.0f}, the token spans {box['y']:.0f}-{box['y'] + box['height']:.0f}"
        )
    if "rows_cols" in expected:
        assert (seen["rows"], seen["cols"]) == expected["rows_cols"], where
    if expected.get("cls_darkest"):
        # Through layer 5 every row traces back mostly to [CLS], by about the same share
        # (0.57 to 0.67): the first cell is the darkest of every row, and evenly dark.
        cells = canvas_pixels(figure, "canvas.attndocs-mcanvas", seen["rows"], seen["cols"])["cells"]
        first = [row[0] for row in cells]
        assert all(row[0] == max(row) for row in cells), f"{where}: rows whose darkest cell is not [CLS]: {cells}"
        assert min(first) > 0.75 * max(first), f"{where}: [CLS] column {first}"
    if expected.get("pale"):
        # On the shared 0-1 scale the flat cross section (weights 0.09-0.14) stays pale: its
        # darkest cell is far lighter than the key's weight of 1.
        cells = canvas_pixels(figure, "canvas.attndocs-mcanvas")
        key = canvas_pixels(figure, ".attndocs-key canvas")
        assert cells["max"] < 0.4 * key["max"], f"{where}: darkest cell {cells['max']:.2f}, key {key['max']:.2f}"
    if "detail" in expected:
        assert seen["detail"] == expected["detail"], where
    if "difference" in expected:
        row, blue, orange = expected["difference"]
        seen_diff = figure.evaluate(DIFFERENCE_JS)
        assert seen_diff == {"picked": row, "shown": "diff", "blue": blue, "orange": orange}, f"{where}: {seen_diff}"
    if "step" in expected:
        value, written = expected["step"]
        assert figure.locator("input.attndocs-step-slider").input_value() == value, where
        writing = figure.locator(".attndocs-token.attndocs-writing").all_inner_texts()
        assert writing and {t.strip() for t in writing} == {written}, f"{where}: writing {writing}"
    if "role_cells" in expected:
        marked = figure.locator(".attndocs-scell.attndocs-role-hit").evaluate_all(
            "cells => cells.map(c => [+c.getAttribute('data-layer'), +c.getAttribute('data-head')])"
        )
        assert sorted(map(tuple, marked)) == sorted(expected["role_cells"]), f"{where}: marked {marked}"
    if "top_cell" in expected:
        darkest = min(seen["cells"], key=lambda c: c["lum"])
        assert (darkest["layer"], darkest["head"]) == expected["top_cell"], f"{where}: darkest cell {darkest}"


def open_page(open_site: Any, root: Path, name: str) -> Any:
    probe = open_site(root, name, via="file")
    figures = probe.page.locator(".attndocs-figure[data-attndocs-view]")
    for i in range(figures.count()):
        figures.nth(i).scroll_into_view_if_needed()
        probe.page.wait_for_function(
            "f => f.getAttribute('data-attndocs-status') === 'ready'", arg=figures.nth(i).element_handle(), timeout=15000
        )
    probe.page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    assert probe.undrawn() == [], name
    return probe, figures


def test_every_course_figure_opens_on_its_caption_point(course, open_site):
    pages = sorted(p.stem for p in (EXAMPLE / "docs").glob("*.md"))
    assert pages == sorted(OPENINGS), "every page of the course needs its figures' openings listed here"
    for page, expected in OPENINGS.items():
        blocks = find_blocks((EXAMPLE / "docs" / f"{page}.md").read_text(encoding="utf-8"))
        assert len(blocks) == len(expected), f"{page}: {len(blocks)} figures, {len(expected)} listed"
        probe, figures = open_page(open_site, course, f"{page}.html")
        assert figures.count() == len(expected), page
        for i, entry in enumerate(expected):
            check_figure(figures.nth(i), entry, f"{page} figure {i}")
        probe.close()


SPHINX_OPENINGS = {
    "index.html": OPENINGS["index"],
    "encoder.html": OPENINGS["01-encoder"][:4],
    "decoder.html": [OPENINGS["02-decoder"][0], OPENINGS["03-generation"][0], OPENINGS["02-decoder"][1]],
    "vision.html": OPENINGS["07-vision"][:1],
}


def test_sphinx_edition_furo_numbered_figures_footer_and_openings(tmp_path, open_site):
    from sphinx.cmd.build import build_main

    out = tmp_path / "sphinx"
    assert build_main(["-W", "-q", "-b", "html", "-d", str(tmp_path / "doctrees"), str(EXAMPLE / "sphinx"), str(out)]) == 0
    numbers = []
    for name, expected in SPHINX_OPENINGS.items():
        probe, figures = open_page(open_site, out, name)
        assert probe.page.locator("link[href*='furo']").count() > 0 and probe.page.locator(".sidebar-drawer").count() == 1, name
        footer = probe.page.locator(".copyright").inner_text()
        assert "2026" in footer and "attndocs" in footer, footer
        assert figures.count() == len(expected), name
        for i, entry in enumerate(expected):
            check_figure(figures.nth(i), entry, f"sphinx {name} figure {i}")
            caption = figures.nth(i).locator("figcaption")
            assert caption.count() == 1, f"sphinx {name} figure {i} has no caption"
            match = re.match(r"Fig\. (\d+) ", caption.inner_text())
            numbers.append(match.group(1) if match else caption.inner_text())
        probe.close()
    assert numbers == [str(n) for n in range(1, len(numbers) + 1)], f"figure numbers: {numbers}"
