"""The model view in real Chromium: every thumbnail draws, a click opens that head."""

from __future__ import annotations

THUMBS = ".attndocs-thumb canvas"


def thumb(probe, figure: int, layer: int, head: int):
    return probe.figures.nth(figure).locator(f'.attndocs-thumb[data-layer="{layer}"][data-head="{head}"]')


def test_every_layer_and_head_has_a_drawn_thumbnail(figure_page, synthetic_record):
    probe = figure_page([(synthetic_record("encoder", n=13), {"view": "model"})])
    stats = probe.all_canvas_stats(THUMBS)
    assert len(stats) == 6 * 12
    assert all(s["painted"] > 50 for s in stats), "a thumbnail is blank"
    # Different heads have different patterns.
    assert len({s["hash"] for s in stats}) == 72


def test_thumbnails_follow_include_layers_and_heads(figure_page, synthetic_record):
    options = {"view": "model", "include-layers": "0,5", "include-heads": "1,7,11"}
    probe = figure_page([(synthetic_record("encoder", n=13), options)])
    cells = probe.figures.first.locator(".attndocs-thumb")
    assert cells.count() == 6
    found = {(c.get_attribute("data-layer"), c.get_attribute("data-head")) for c in cells.all()}
    assert found == {(str(layer), str(head)) for layer in (0, 5) for head in (1, 7, 11)}


def test_click_opens_the_detail_and_close_returns(figure_page, synthetic_record):
    probe = figure_page([(synthetic_record("encoder", n=13), {"view": "model", "name": "grid"})])
    fig = probe.figures.first
    detail = fig.locator(".attndocs-detail")
    assert detail.is_hidden()
    thumb(probe, 0, 3, 7).click()
    assert detail.is_visible()
    assert "layer 3, head 7" in detail.inner_text()
    assert probe.fig_eval(0, "fig => [fig.state.open, fig.state.layer, fig.state.heads]") == [True, 3, [7]]
    assert probe.canvas_stats(".attndocs-detail .attndocs-lines > canvas")["painted"] > 100
    probe.page.wait_for_function("() => location.hash === '#grid/layer=3&heads=7&open=1'")
    assert thumb(probe, 0, 3, 7).get_attribute("aria-pressed") == "true"

    # The detail is a full line view: hovering a token there isolates its lines.
    before = probe.canvas_stats(".attndocs-detail .attndocs-lines > canvas")
    detail.locator('.attndocs-token[data-side="q"][data-index="4"]').hover()
    assert probe.canvas_stats(".attndocs-detail .attndocs-lines > canvas")["hash"] != before["hash"]

    # Another thumbnail switches the detail to that head.
    thumb(probe, 0, 0, 2).click()
    assert "layer 0, head 2" in detail.inner_text()

    detail.get_by_role("button", name="Close the head detail").click()
    assert detail.is_hidden()
    assert probe.fig_eval(0, "fig => fig.state.open") is False


def test_detail_shows_the_clicked_heads_attention(figure_page, synthetic_record):
    record = synthetic_record("encoder", n=9, layers=2, heads=3)
    probe = figure_page([(record, {"view": "model"})])
    thumb(probe, 0, 1, 2).click()
    shown = probe.fig_eval(0, "fig => Array.from(fig.attn(fig.state.section, fig.state.layer, fig.state.heads[0]))")
    expected = record.sections["encoder"].attention[1, 2].ravel()
    assert max(abs(a - b) for a, b in zip(shown, expected)) < 0.005


def test_keyboard_walks_the_grid_and_opens_a_head(figure_page, synthetic_record):
    probe = figure_page([(synthetic_record("encoder", n=8, layers=3, heads=4), {"view": "model"})])
    thumb(probe, 0, 0, 0).focus()
    probe.page.keyboard.press("ArrowRight")
    probe.page.keyboard.press("ArrowDown")
    focused = probe.page.evaluate("[document.activeElement.dataset.layer, document.activeElement.dataset.head]")
    assert focused == ["1", "1"]
    probe.page.keyboard.press("Enter")
    assert probe.fig_eval(0, "fig => [fig.state.open, fig.state.layer, fig.state.heads]") == [True, 1, [1]]
    probe.page.keyboard.press("Escape")
    assert probe.fig_eval(0, "fig => fig.state.open") is False


def test_encoder_decoder_sections_and_pair_filter(figure_page, synthetic_record):
    probe = figure_page([
        (synthetic_record("encoder-decoder", n=9), {"view": "model"}),
        (synthetic_record("pair", n=12), {"view": "model"}),
    ])
    enc_dec = probe.figures.nth(0)
    first = probe.all_canvas_stats(".attndocs-figure:nth-of-type(1) .attndocs-thumb canvas")
    enc_dec.locator('.attndocs-seg[data-value="cross"]').click()
    assert probe.fig_eval(0, "fig => fig.state.section") == "cross"
    cross = probe.all_canvas_stats(".attndocs-figure:nth-of-type(1) .attndocs-thumb canvas")
    assert all(s["painted"] > 0 for s in cross)
    assert [s["hash"] for s in cross] != [s["hash"] for s in first]

    pair = probe.figures.nth(1)
    whole = probe.all_canvas_stats(".attndocs-figure:nth-of-type(2) .attndocs-thumb canvas")
    pair.locator('.attndocs-seg[data-value="ab"]').click()
    filtered = probe.all_canvas_stats(".attndocs-figure:nth-of-type(2) .attndocs-thumb canvas")
    assert sum(s["painted"] for s in filtered) < sum(s["painted"] for s in whole)


def test_model_view_exports_the_grid(figure_page, synthetic_record):
    probe = figure_page([(synthetic_record("encoder", n=8, layers=2, heads=2), {"view": "model"})])
    svg = probe.fig_eval(0, "fig => fig.exportSVG()")
    assert svg.count("<image") == 4 and "data:image/png;base64," in svg
