"""The matrix view in headless Chromium: heatmap modes, hover read-out, linked lines, keyboard."""

from __future__ import annotations

import re

from attndocs.analysis import rollout

HOSTILE = ["[CLS]", "</script><img src=x onerror=alert(1)>", "שלום", "🙂", "猫が", "<b>bold</b>", "[SEP]"]


def _hover_cell(probe, fig: int, r: int, c: int) -> None:
    canvas = probe.figures.nth(fig).locator(".attndocs-mcanvas")
    box = canvas.bounding_box()
    rows, cols = probe.fig_eval(fig, "fig => fig.header.sections[fig.state.section].shape")
    probe.page.mouse.move(box["x"] + (c + 0.5) * box["width"] / cols, box["y"] + (r + 0.5) * box["height"] / rows)


def _readout(probe, fig: int = 0) -> float:
    text = probe.figures.nth(fig).locator(".attndocs-mreadout").inner_text()
    match = re.search(r": ([0-9.]+)$", text)
    assert match, text
    return float(match.group(1))


def _mode(probe, fig: int, label: str) -> None:
    probe.figures.nth(fig).get_by_role("group", name="Matrix").get_by_role("button", name=label, exact=True).click()


def _highlighted(probe, fig: int, container: str) -> list[int]:
    return probe.figures.nth(fig).locator(f"{container} .attndocs-token.attndocs-hl").evaluate_all(
        "ns => ns.map(n => +n.dataset.index)"
    )


def test_every_mode_draws_its_own_matrix(figure_page, synthetic_record):
    record = synthetic_record("pair", n=9, layers=3, heads=4, seed=1)
    probe = figure_page([(record, {"view": "matrix", "layer": 1})])
    first = probe.canvas_stats(".attndocs-mcanvas")
    assert first["painted"] == first["width"] * first["height"]
    hashes = {first["hash"]}
    info = probe.figures.first.locator(".attndocs-minfo")
    for label, words in [
        ("Layer mean", "mean over heads"),
        ("Layer max", "max over heads"),
        ("All mean", "mean over all layers"),
        ("All max", "max over all layers"),
        ("Rollout", "rollout through layer 1"),
    ]:
        _mode(probe, 0, label)
        assert words in info.inner_text()
        hashes.add(probe.canvas_stats(".attndocs-mcanvas")["hash"])
    assert len(hashes) == 6
    probe.wait_for_hash("mode=rollout")  # the mode is part of the linkable state


def test_hovering_a_cell_reads_out_the_value_each_mode_shows(figure_page, synthetic_record):
    record = synthetic_record("encoder", n=8, layers=3, heads=4, seed=2)
    attention = record.sections["encoder"].attention
    probe = figure_page([(record, {"view": "matrix", "layer": 2, "heads": "3"})])
    expected = {
        "Head": attention[2, 3],
        "Layer mean": attention[2].mean(axis=0),
        "Layer max": attention[2].max(axis=0),
        "All mean": attention.mean(axis=(0, 1)),
        "All max": attention.max(axis=(0, 1)),
        "Rollout": rollout(attention)[2],
    }
    for label, matrix in expected.items():
        _mode(probe, 0, label)
        for r, c in [(1, 6), (5, 0), (7, 7)]:
            _hover_cell(probe, 0, r, c)
            assert abs(_readout(probe) - matrix[r, c]) < 0.005, (label, r, c)
            assert _highlighted(probe, 0, ".attndocs-mrows") == [r]
            assert _highlighted(probe, 0, ".attndocs-mcols") == [c]
    text = probe.figures.first.locator(".attndocs-mreadout").inner_text()
    assert text.startswith(f"\u201c{record.sides['encoder'].display[7]}\u201d \u2192 \u201c{record.sides['encoder'].display[7]}\u201d")


def test_head_aggregates_cover_heads_that_do_not_ship(figure_page, synthetic_record):
    record = synthetic_record("encoder", n=7, layers=2, heads=4, seed=3)
    attention = record.sections["encoder"].attention
    probe = figure_page([(record, {"view": "matrix", "include-heads": "0,1", "heads": "1"})])
    heads = probe.figures.first.locator(".attndocs-control", has_text="Head").locator("option").all_inner_texts()
    assert heads == ["0", "1"]
    _mode(probe, 0, "Layer mean")
    _hover_cell(probe, 0, 3, 2)
    assert abs(_readout(probe) - attention[0, :, 3, 2].mean()) < 0.005
    _mode(probe, 0, "Layer max")
    _hover_cell(probe, 0, 4, 4)
    assert abs(_readout(probe) - attention[0, :, 4, 4].max()) < 0.005


def test_cross_attention_has_no_rollout_and_causal_cells_are_masked(figure_page, synthetic_record):
    record = synthetic_record("encoder-decoder", n=7, layers=2, heads=2, seed=4)
    probe = figure_page([(record, {"view": "matrix"})])
    fig = probe.figures.first
    modes = fig.get_by_role("group", name="Matrix").get_by_role("button")
    assert "Rollout" in modes.all_inner_texts()
    fig.get_by_role("button", name="Cross", exact=True).click()
    assert "Rollout" not in modes.all_inner_texts()
    rows, cols = len(record.sides["decoder"]), len(record.sides["encoder"])
    stats = probe.canvas_stats(".attndocs-mcanvas")
    assert stats["width"] / stats["height"] == cols / rows
    fig.get_by_role("button", name="Decoder", exact=True).click()
    # Above the diagonal a decoder cannot attend: the cells carry the theme's grid tint, not
    # the background colour that a zero weight gets.
    colors = probe.page.evaluate(
        """() => { const c = document.querySelector('.attndocs-mcanvas'); const ctx = c.getContext('2d');
                   const px = (x, y) => Array.from(ctx.getImageData(x, y, 1, 1).data);
                   return [px(c.width - 2, 1), px(1, c.height - 2)]; }"""
    )
    masked, lower = colors
    assert masked != lower and masked[:3] != [255, 255, 255]


def test_lines_show_the_same_selection_and_hover_is_linked(figure_page, synthetic_record):
    record = synthetic_record("encoder", n=8, layers=2, heads=2, seed=5)
    probe = figure_page([(record, {"view": "matrix"})])
    fig = probe.figures.first
    assert fig.locator(".attndocs-mlines canvas").count() == 0
    fig.get_by_role("button", name="Lines").click()
    assert fig.get_by_role("button", name="Lines").get_attribute("aria-pressed") == "true"
    everything = probe.canvas_stats(".attndocs-mlines canvas")
    assert everything["painted"] > 0

    # A query token hovered in the heatmap isolates its lines and is marked in the lines.
    fig.locator(".attndocs-mrows .attndocs-token[data-index='3']").hover()
    one_row = probe.canvas_stats(".attndocs-mlines canvas")
    assert 0 < one_row["painted"] < everything["painted"]
    assert _highlighted(probe, 0, ".attndocs-mlines .attndocs-mlleft") == [3]

    # A key token hovered in the lines highlights its column in the heatmap.
    fig.locator(".attndocs-mlines .attndocs-token[data-side='k'][data-index='5']").hover()
    assert _highlighted(probe, 0, ".attndocs-mcols") == [5]
    assert probe.canvas_stats(".attndocs-mlines canvas")["hash"] not in (one_row["hash"], everything["hash"])

    # Another mode redraws the lines too.
    probe.page.mouse.move(0, 0)
    before = probe.canvas_stats(".attndocs-mlines canvas")["hash"]
    _mode(probe, 0, "All max")
    assert probe.canvas_stats(".attndocs-mlines canvas")["hash"] != before


def test_keyboard_moves_a_cell_cursor_and_locks_the_row(figure_page, synthetic_record):
    record = synthetic_record("encoder", n=6, layers=1, heads=2, seed=6)
    probe = figure_page([(record, {"view": "matrix"})])
    probe.figures.first.locator(".attndocs-msurface").focus()
    for key in ["ArrowRight", "ArrowRight", "ArrowDown"]:
        probe.page.keyboard.press(key)
    assert abs(_readout(probe) - record.sections["encoder"].attention[0, 0, 1, 2]) < 0.005
    probe.page.keyboard.press("Enter")
    assert probe.fig_eval(0, "fig => [fig.state.token.side, fig.state.token.index, fig.state.locked]") == ["q", 1, True]
    probe.page.wait_for_function(
        "() => document.querySelector('.attndocs-figure [aria-live]').textContent.includes('attends most to')"
    )


def test_long_input_keeps_labels_as_text(figure_page, synthetic_record):
    record = synthetic_record("decoder", n=200, layers=1, heads=2, seed=7)
    probe = figure_page([(record, {"view": "matrix"})])
    fig = probe.figures.first
    assert fig.locator(".attndocs-mrows .attndocs-token").count() == 200
    assert probe.canvas_stats(".attndocs-mcanvas")["painted"] > 0
    _hover_cell(probe, 0, 150, 20)
    label = fig.locator(".attndocs-mrows .attndocs-token[data-index='150']")
    assert label.inner_text() == record.sides["decoder"].display[150]
    assert "attndocs-hl" in label.get_attribute("class")


def test_hostile_token_text_shows_literally(figure_page, synthetic_record):
    record = synthetic_record("encoder", tokens=HOSTILE, layers=1, heads=2)
    probe = figure_page([(record, {"view": "matrix"})])
    fig = probe.figures.first
    assert fig.locator(".attndocs-mrows .attndocs-token").all_inner_texts() == HOSTILE
    assert fig.locator(".attndocs-mcols .attndocs-token").all_inner_texts() == HOSTILE
    _hover_cell(probe, 0, 1, 4)
    assert fig.locator(".attndocs-mreadout").inner_text().startswith(f"\u201c{HOSTILE[1]}\u201d \u2192 \u201c{HOSTILE[4]}\u201d")
    assert fig.locator("img, b").count() == 0
    svg = probe.fig_eval(0, "fig => fig.exportSVG()")
    assert "&lt;/script&gt;&lt;img" in svg and "<img" not in svg


def test_two_matrix_figures_keep_their_own_state(figure_page, synthetic_record):
    a = synthetic_record("encoder", n=6, layers=2, heads=2, seed=8)
    b = synthetic_record("encoder", n=6, layers=2, heads=2, seed=9)
    probe = figure_page([(a, {"view": "matrix"}), (b, {"view": "matrix"})])
    stats = probe.all_canvas_stats(".attndocs-mcanvas")
    _mode(probe, 1, "Rollout")
    after = probe.all_canvas_stats(".attndocs-mcanvas")
    assert after[0]["hash"] == stats[0]["hash"] and after[1]["hash"] != stats[1]["hash"]
    assert probe.fig_eval(0, "fig => fig.state.mode") == "head"


def test_heatmap_follows_a_live_theme_switch(figure_page, synthetic_record):
    record = synthetic_record("encoder", n=6, layers=1, heads=2, seed=10)
    probe = figure_page([(record, {"view": "matrix", "display": "auto"})])
    light = probe.canvas_stats(".attndocs-mcanvas")
    probe.page.evaluate("() => document.documentElement.setAttribute('data-theme', 'dark')")
    probe.page.wait_for_function("() => document.querySelector('.attndocs-figure').dataset.attndocsTheme === 'dark'")
    dark = probe.canvas_stats(".attndocs-mcanvas")
    assert sum(dark["mean"]) < sum(light["mean"])  # the zero-weight background went dark with the page
