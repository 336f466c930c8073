"""Keyboard and export in headless Chromium: the visible help control, one Tab stop per
control group, Escape closing one thing per press, and exports that carry the column
headers, the colour key, the model, layer and head, under a name that says what they are."""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

SVG = "{http://www.w3.org/2000/svg}"

# Stops per view for one sentence: heads, tokens, thumbnails, cells and buttons of a group
# each count once, whatever their number.
STOPS = {
    "head": ["layer", "role", "export", "help", "heads", "tokens"],
    "model": ["role", "export", "help", "thumbnails"],
    "neuron": ["layer", "head", "export", "help", "query tokens"],
    "matrix": ["mode", "layer", "head", "lines", "export", "help", "key tokens", "query tokens", "cells"],
    "summary": ["statistic", "layout", "role", "export", "help", "cells"],
}


def _tab_stops(probe, fig: int = 0) -> list[str]:
    """Focus a button just before figure ``fig``, press Tab until focus leaves the figure."""
    probe.page.evaluate(
        """i => { const f = document.querySelectorAll('.attndocs-figure')[i];
                  const b = document.createElement('button'); b.textContent = 'before';
                  f.before(b); b.focus(); }""",
        fig,
    )
    stops: list[str] = []
    for _ in range(40):
        probe.page.keyboard.press("Tab")
        where = probe.page.evaluate(
            """i => { const f = document.querySelectorAll('.attndocs-figure')[i], a = document.activeElement;
                      return f.contains(a) ? a.tagName + ' ' + (a.getAttribute('aria-label') || a.textContent) : null; }""",
            fig,
        )
        if where is None:
            break
        stops.append(where)
    return stops


@pytest.mark.parametrize("view", list(STOPS))
def test_one_tab_stop_per_control_group(figure_page, synthetic_record, view):
    few = synthetic_record("encoder", n=6, layers=2, heads=3, qk=True, seed=1)
    many = synthetic_record("encoder", n=14, layers=3, heads=12, qk=True, seed=2)
    probe = figure_page([(few, {"view": view}), (many, {"view": view})])
    for fig in (0, 1):
        stops = _tab_stops(probe, fig)
        assert len(stops) == len(STOPS[view]), stops
    # Arrow keys then move within a group: from the last stop (tokens, thumbnails, cells).
    # (the matrix's cells move a cursor, and with it the selected token, not the focus).
    where = "() => document.activeElement.outerHTML + JSON.stringify(attndocs.figures()[1].state.token)"
    probe.page.keyboard.press("Shift+Tab")
    first = probe.page.evaluate(where)
    probe.page.keyboard.press("ArrowDown" if view in ("head", "neuron") else "ArrowRight")
    assert probe.page.evaluate(where) != first


def test_head_view_tokens_are_one_stop_and_arrows_cross_the_columns(figure_page, synthetic_record):
    probe = figure_page([(synthetic_record("encoder", n=8, heads=4), {"view": "head"})])
    stops = _tab_stops(probe)
    assert sum("query token" in s or "key token" in s for s in stops) == 1
    probe.figures.first.locator('.attndocs-left .attndocs-token[data-index="2"]').focus()
    probe.page.keyboard.press("ArrowRight")
    assert probe.page.evaluate("() => document.activeElement.getAttribute('aria-label')").startswith("key token 3")
    tabbable = probe.figures.first.locator(".attndocs-tokcol .attndocs-token[tabindex='0']")
    assert tabbable.count() == 1 and tabbable.get_attribute("data-side") == "k"


def test_help_control_lists_the_keys_and_escape_closes_it(figure_page, synthetic_record):
    probe = figure_page([(synthetic_record("encoder", n=8, heads=4), {"view": "head"})])
    fig = probe.figures.first
    button = fig.get_by_role("button", name="Keyboard and mouse help")
    box = button.bounding_box()
    assert button.is_visible() and box["width"] >= 16 and box["height"] >= 16 and button.inner_text() == "?"
    panel = fig.locator(".attndocs-helppanel")
    assert panel.is_hidden()
    button.click()
    assert panel.is_visible() and button.get_attribute("aria-expanded") == "true"
    keys = panel.locator("dt").all_inner_texts()
    for key in ("Tab", "Enter", "Shift+Enter", "Escape"):
        assert key in keys
    # The panel sits inside the figure, below the controls, and pushes the drawing down.
    frame = fig.bounding_box()
    pbox = panel.bounding_box()
    assert pbox["y"] >= box["y"] + box["height"] and pbox["x"] + pbox["width"] <= frame["x"] + frame["width"]
    assert fig.locator(".attndocs-heads").bounding_box()["y"] >= pbox["y"] + pbox["height"]
    # The frame is still described by the screen-reader help text.
    described = fig.locator(".attndocs-frame").get_attribute("aria-describedby")
    assert "Escape" in fig.locator(f"#{described}").text_content()
    # Escape closes the help (and nothing else), focus back on its button.
    fig.locator('.attndocs-left .attndocs-token[data-index="3"]').click()
    button.focus()
    probe.page.keyboard.press("Escape")
    assert panel.is_hidden() and button.get_attribute("aria-expanded") == "false"
    assert probe.fig_eval(0, "fig => fig.state.locked") is True
    assert probe.page.evaluate("() => document.activeElement.getAttribute('aria-label')") == "Keyboard and mouse help"
    probe.page.keyboard.press("Escape")
    assert probe.fig_eval(0, "fig => [fig.state.locked, fig.state.token]") == [False, None]


def test_escape_closes_the_model_detail_then_clears_the_selection(figure_page, synthetic_record):
    probe = figure_page([(synthetic_record("encoder", n=9, layers=2, heads=3), {"view": "model"})])
    fig = probe.figures.first
    fig.locator('.attndocs-thumb[data-layer="1"][data-head="2"]').click()
    detail = fig.locator(".attndocs-detail")
    assert detail.is_visible()
    detail.locator('.attndocs-token[data-side="q"][data-index="4"]').click()
    assert probe.fig_eval(0, "fig => [fig.state.locked, fig.state.token]") == [True, {"side": "q", "index": 4}]
    probe.page.keyboard.press("Escape")
    assert detail.is_hidden()
    assert probe.fig_eval(0, "fig => [fig.state.open, fig.state.locked]") == [False, True]
    # Focus went back to the thumbnail, so the next Escape still reaches the figure.
    assert probe.page.evaluate("() => document.activeElement.getAttribute('aria-label')") == "Layer 1, head 2"
    probe.page.keyboard.press("Escape")
    assert probe.fig_eval(0, "fig => [fig.state.open, fig.state.locked, fig.state.token]") == [False, False, None]


def _svg(text: str) -> tuple[ET.Element, list[str]]:
    root = ET.fromstring(text.encode("utf-8"))
    return root, ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def _download(probe, fig: int, kind: str):
    with probe.page.expect_download() as info:
        probe.figures.nth(fig).locator(f'[data-export="{kind}"]').click()
    return info.value


def test_svg_export_carries_headers_key_model_layer_and_head(figure_page, synthetic_record, tmp_path):
    record = synthetic_record("encoder", n=7, layers=3, heads=2, qk=True, bias=True, seed=3, model_id="org/tiny-bert")
    probe = figure_page([(record, {"view": "neuron", "name": "cats", "layer": 1, "heads": "1"})])
    download = _download(probe, 0, "svg")
    assert download.suggested_filename == "cats-neuron-layer1.svg"
    path = tmp_path / "out.svg"
    download.save_as(path)
    root, texts = _svg(path.read_text(encoding="utf-8"))
    assert "org/tiny-bert" in texts
    assert any("layer 1" in t and "head 1" in t for t in texts)
    for header in ("key", "k", "q \u00d7 k", "q\u00b7k \u00d7 s", "bias", "softmax"):
        assert header in texts, header
    keys = [g for g in root.iter(f"{SVG}g") if g.get("class") == "attndocs-export-key"]
    assert keys, "no colour key in the export"
    key_text = " ".join("".join(g.itertext()) for g in keys)
    assert "positive" in key_text and "negative" in key_text and "s = 0.250" in key_text
    # Drawn by the browser, every text (title, headers, key) lies inside the picture.
    outside = probe.page.evaluate(
        """svg => {
          const doc = new DOMParser().parseFromString(svg, 'image/svg+xml').documentElement;
          document.body.appendChild(doc);
          const box = doc.getBoundingClientRect();
          const out = Array.from(doc.querySelectorAll('text')).filter(t => {
            const r = t.getBoundingClientRect();
            return r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1;
          }).map(t => t.textContent);
          doc.remove();
          return out;
        }""",
        path.read_text(encoding="utf-8"),
    )
    assert not outside, outside


@pytest.mark.parametrize("view", ["head", "model", "matrix", "summary"])
def test_every_view_exports_model_layer_and_key(figure_page, synthetic_record, view):
    record = synthetic_record("encoder", n=7, layers=3, heads=2, seed=4, model_id="org/tiny-bert")
    probe = figure_page([(record, {"view": view, "layer": 2, "heads": "1"})])
    root, texts = _svg(probe.fig_eval(0, "fig => fig.exportSVG()"))
    assert texts[0] == "org/tiny-bert"
    label = texts[1]
    if view == "model":
        assert label == "all layers and heads"
    else:
        assert "layer 2" in label and "head 1" in label, label
    keys = [g for g in root.iter(f"{SVG}g") if g.get("class") == "attndocs-export-key"]
    assert len(keys) >= 1
    ramp = keys[0].find(f"{SVG}rect")
    stops = [s.get("stop-color") for s in root.iter(f"{SVG}stop")]
    assert ramp is not None and len(stops) >= 2
    colors = probe.fig_eval(0, "fig => fig.colors()")
    assert stops[0] == colors["bg"]
    if view == "matrix":
        assert "query \u2193  key \u2192" in texts
        lo = [t for t in root.iter(f"{SVG}text") if t.get("class") == "attndocs-export-lo"]
        hi = [t for t in root.iter(f"{SVG}text") if t.get("class") == "attndocs-export-hi"]
        assert lo[0].text == "0" and hi[0].text == "1"
    # File names say figure, view and layer, never a hash.
    name = probe.fig_eval(0, "fig => fig.exportName('svg')")
    assert not re.search(r"[0-9a-f]{12}", name), name
    expected = "attention-tiny-bert-" + view + ("" if view == "model" else "-layer2") + ".svg"
    assert name == expected


def test_png_export_is_the_svg_export_rasterised(figure_page, synthetic_record, tmp_path):
    record = synthetic_record("encoder", n=7, layers=2, heads=2, seed=5)
    probe = figure_page([(record, {"view": "matrix", "name": "grid", "layer": 1})])
    download = _download(probe, 0, "png")
    assert download.suggested_filename == "grid-matrix-layer1.png"
    path = Path(tmp_path / "out.png")
    download.save_as(path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    root, _ = _svg(probe.fig_eval(0, "fig => fig.exportSVG()"))
    # Twice the SVG's size: the title above and the key below are in the picture too.
    assert (width, height) == (2 * int(root.get("width")), 2 * int(root.get("height")))
    inner = [s for s in root.iter(f"{SVG}svg") if s is not root]
    assert len(inner) == 1 and int(inner[0].get("height")) + 44 < int(root.get("height"))
