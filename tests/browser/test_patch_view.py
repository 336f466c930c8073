"""The patch view (vision transformers) in headless Chromium, from file:// with the network off."""

from __future__ import annotations

import pytest

from attndocs.options import FigureOptions, SiteSettings
from attndocs.pipeline import Pipeline
from tests.test_vision import draw_scene


@pytest.fixture(scope="module")
def vit_record(tiny_model_dir, tmp_path_factory):
    """The tiny ViT's record of a drawn scene (4 x 4 patches after [CLS]), and a function making options."""
    folder = tmp_path_factory.mktemp("vision")
    picture = draw_scene(folder / "scene.png")
    model = str(tiny_model_dir("vit"))
    record = Pipeline(SiteSettings(cache_dir=str(folder / "cache"))).compute_one(FigureOptions.from_mapping({"model": model, "image": str(picture)})).record

    def options(**values) -> FigureOptions:
        return FigureOptions.from_mapping({"model": model, "image": str(picture), **values})

    return record, options


def _text(probe) -> str:
    return probe.figures.first.locator(".attndocs-pdesc").inner_text()


def test_the_patch_view_draws_the_image_and_a_click_moves_the_overlay(figure_page, vit_record):
    record, options = vit_record
    probe = figure_page([(record, options(view="patch"))])
    fig = probe.figures.first
    canvas = fig.locator(".attndocs-pcanvas")
    probe.page.wait_for_function("() => document.querySelector('.attndocs-pdesc').textContent.length > 0")
    before = probe.canvas_stats(".attndocs-pcanvas")
    assert before["painted"] == before["width"] * before["height"]  # the picture fills the canvas
    assert _text(probe).startswith("Attention from [CLS], layer 0, mean of all heads: most on r")
    box = canvas.bounding_box()
    # Row 3, column 2 of the 4 x 4 grid: token 1 + 2 * 4 + 1 = 10, labelled r3c2.
    canvas.click(position={"x": box["width"] * 1.5 / 4, "y": box["height"] * 2.5 / 4})
    assert probe.fig_eval(0, "fig => fig.state.token") == {"side": "q", "index": 10}
    assert probe.fig_eval(0, "fig => fig.state.locked") is True
    assert _text(probe).startswith("Attention from r3c2, layer 0")
    after = probe.canvas_stats(".attndocs-pcanvas")
    assert after["hash"] != before["hash"]
    # What the text names is what the record holds: the mean over heads of that query row.
    row = record.sections["encoder"].attention[0, :, 10, 1:].mean(axis=0)
    best = int(row.argmax())
    assert f"most on r{best // 4 + 1}c{best % 4 + 1} " in _text(probe)
    # The export carries the picture itself (a data URI), and the PNG export draws it.
    svg = probe.fig_eval(0, "fig => fig.exportSVG()")
    assert "<image " in svg and 'href="data:image/png;base64,' in svg and "Attention from r3c2" in svg
    assert probe.fig_eval(0, "fig => fig.exportPNG().then(blob => blob.size)") > 1000


def test_rollout_mode_and_layer_and_head_selection(figure_page, vit_record):
    record, options = vit_record
    probe = figure_page([(record, options(view="patch"))])
    fig = probe.figures.first
    probe.page.wait_for_function("() => document.querySelector('.attndocs-pdesc').textContent.length > 0")
    attention = probe.canvas_stats(".attndocs-pcanvas")["hash"]
    fig.locator(".attndocs-seg[data-value='rollout']").click()
    assert probe.fig_eval(0, "fig => fig.state.overlay") == "rollout"
    assert _text(probe).startswith("Rollout from [CLS] through layer 0: most on r")
    rollout = probe.canvas_stats(".attndocs-pcanvas")["hash"]
    assert rollout != attention
    flow = record.image["rollout"][0][1:]
    best = max(range(16), key=lambda p: flow[p])
    assert f"most on r{best // 4 + 1}c{best % 4 + 1} " in _text(probe)
    fig.locator(".attndocs-control", has_text="Layer").locator("select").select_option("1")
    assert _text(probe).startswith("Rollout from [CLS] through layer 1")
    assert probe.canvas_stats(".attndocs-pcanvas")["hash"] != rollout
    # Back to attention; one head alone.
    fig.locator(".attndocs-seg[data-value='attention']").click()
    fig.locator(".attndocs-head[data-head='1']").dblclick()
    assert probe.fig_eval(0, "fig => fig.state.heads") == [1]
    assert _text(probe).startswith("Attention from [CLS], layer 1, mean of head 1:")


def test_the_keyboard_walks_the_grid(figure_page, vit_record):
    record, options = vit_record
    probe = figure_page([(record, options(view="patch", overlay="attention"))])
    stage = probe.figures.first.locator(".attndocs-pstage")
    stage.focus()
    for key in ("ArrowRight", "ArrowDown", "Enter"):
        probe.page.keyboard.press(key)
    assert probe.fig_eval(0, "fig => fig.state.token") == {"side": "q", "index": 1 + 4 + 1}  # r2c2
    assert _text(probe).startswith("Attention from r2c2")
    probe.figures.first.locator(".attndocs-pspecial .attndocs-token").click()
    assert _text(probe).startswith("Attention from [CLS]")


@pytest.mark.parametrize("scheme,width", [("dark", 390), ("light", 1280)])
def test_the_image_fits_its_column(figure_page, vit_record, scheme, width):
    record, options = vit_record
    probe = figure_page([(record, options(view="patch"))], color_scheme=scheme, viewport={"width": width, "height": 900})
    fig = probe.figures.first.bounding_box()
    canvas = probe.figures.first.locator(".attndocs-pcanvas").bounding_box()
    assert canvas["x"] >= fig["x"] and canvas["x"] + canvas["width"] <= fig["x"] + fig["width"] + 0.5
    assert 96 <= canvas["width"] <= 448 and abs(canvas["width"] - canvas["height"]) < 1  # a square picture stays square


@pytest.mark.parametrize("view,selector", [("head", "canvas"), ("matrix", ".attndocs-mcanvas"), ("summary", ".attndocs-scell"), ("model", "canvas")])
def test_the_token_views_draw_an_image_record_with_grid_labels(figure_page, vit_record, view, selector):
    record, options = vit_record
    probe = figure_page([(record, options(view=view))])
    fig = probe.figures.first
    assert fig.get_attribute("data-attndocs-status") == "ready"
    assert fig.locator(selector).count() > 0
    if view in ("head", "matrix"):
        labels = fig.locator(".attndocs-token").all_inner_texts()
        assert "[CLS]" in labels and "r1c1" in labels and "r4c4" in labels


def test_the_patch_view_fits_and_keeps_its_reserved_height(open_html, vit_record):
    """At every width of the fit tests: nothing wider than its column, and the height reserved before
    drawing (render.reserved_height, 06-boot.js RESERVE) is the height drawn."""
    from fit import RESERVED_INIT, WIDTHS, fit_problems

    from attndocs.render import render_figure, render_page

    record, options = vit_record
    html = render_page([render_figure(record, options(view="patch", caption="A caption under the picture."))])
    for width in WIDTHS:
        probe = open_html(html, name=f"fit-{width}.html", viewport={"width": width, "height": 900})
        probe.context.add_init_script(RESERVED_INIT)
        probe.page.reload()
        assert fit_problems(probe.page) == [], f"{width} px"
