"""The head view in real Chromium: it draws, and clicks, hovers, keys and selectors change it."""

from __future__ import annotations

CANVAS = ".attndocs-lines > canvas"


def head_button(probe, figure: int, head: int):
    return probe.figures.nth(figure).locator(f'.attndocs-head[data-head="{head}"]')


def token(probe, figure: int, side: str, index: int):
    return probe.figures.nth(figure).locator(f'.attndocs-token[data-side="{side}"][data-index="{index}"]')


def test_head_view_draws_lines_and_real_text_tokens(figure_page, synthetic_record):
    probe = figure_page([(synthetic_record("encoder", n=13), {"view": "head"})])
    stats = probe.canvas_stats(CANVAS)
    assert stats["painted"] > 500, "the line canvas is blank"
    # Tokens are real text a reader can select and a screen reader can read.
    texts = probe.figures.first.locator('.attndocs-token[data-side="q"]').all_inner_texts()
    assert texts[:3] == ["[CLS]", "the", "cat"]
    assert probe.figures.first.locator(".attndocs-head").count() == 12


def test_clicking_a_head_toggles_it_and_double_click_isolates(figure_page, synthetic_record):
    probe = figure_page([(synthetic_record("encoder", n=13), {"view": "head"})])
    before = probe.canvas_stats(CANVAS)
    head_button(probe, 0, 3).click()
    after_toggle = probe.canvas_stats(CANVAS)
    assert after_toggle["hash"] != before["hash"]
    assert head_button(probe, 0, 3).get_attribute("aria-pressed") == "false"
    assert 3 not in probe.fig_eval(0, "fig => fig.state.heads")

    head_button(probe, 0, 5).dblclick()
    assert probe.fig_eval(0, "fig => fig.state.heads") == [5]
    isolated = probe.canvas_stats(CANVAS)
    assert 0 < isolated["painted"] < before["painted"]
    pressed = probe.figures.first.locator('.attndocs-head[aria-pressed="true"]').count()
    assert pressed == 1

    head_button(probe, 0, 3).click()
    assert probe.fig_eval(0, "fig => fig.state.heads") == [3, 5]


def test_no_head_selected_draws_no_lines(figure_page, synthetic_record):
    probe = figure_page([(synthetic_record("encoder", n=9, heads=2), {"view": "head", "heads": "0"})])
    head_button(probe, 0, 0).click()
    assert probe.fig_eval(0, "fig => fig.state.heads") == []
    assert probe.canvas_stats(CANVAS)["painted"] == 0


def test_hovering_a_token_shows_only_its_lines_in_both_directions(figure_page, synthetic_record):
    probe = figure_page([(synthetic_record("encoder", n=13), {"view": "head"})])
    full = probe.canvas_stats(CANVAS)
    token(probe, 0, "q", 2).hover()
    left = probe.canvas_stats(CANVAS)
    assert probe.fig_eval(0, "fig => fig.state.token") == {"side": "q", "index": 2}
    assert left["hash"] != full["hash"] and left["painted"] < full["painted"]
    assert "attndocs-active" in (token(probe, 0, "q", 2).get_attribute("class") or "")

    token(probe, 0, "k", 4).hover()
    right = probe.canvas_stats(CANVAS)
    assert probe.fig_eval(0, "fig => fig.state.token") == {"side": "k", "index": 4}
    assert right["hash"] not in (left["hash"], full["hash"])

    probe.page.mouse.move(5, 5)
    assert probe.fig_eval(0, "fig => fig.state.token") is None
    assert probe.canvas_stats(CANVAS)["hash"] == full["hash"]


def test_hovered_token_lines_match_its_attention_row(figure_page, synthetic_record):
    # Only head 0, one query token: the line ends (right side) light up where the row has weight.
    record = synthetic_record("encoder", n=8, heads=1, sharp=4.0, seed=3)
    probe = figure_page([(record, {"view": "head"})])
    token(probe, 0, "q", 1).hover()
    row = record.sections["encoder"].attention[0, 0, 1]
    strongest = int(row.argmax())
    weakest = int(row.argmin())
    # Sample the canvas just left of the key column, at the strongest and weakest key rows.
    alpha = probe.page.evaluate(
        """([s, w]) => {
          const canvas = document.querySelector('.attndocs-lines > canvas');
          const right = document.querySelector('.attndocs-tokcol.attndocs-right');
          const r = canvas.getBoundingClientRect(), k = right.getBoundingClientRect();
          const ratio = canvas.width / r.width;
          const ctx = canvas.getContext('2d');
          const at = (i) => {
            const tok = right.children[i].getBoundingClientRect();
            const x = Math.round((k.left - r.left - 10) * ratio), y = Math.round((tok.top + tok.height / 2 - r.top) * ratio);
            let best = 0;
            for (let dy = -3; dy <= 3; dy++) best = Math.max(best, ctx.getImageData(x, y + dy, 1, 1).data[3]);
            return best;
          };
          return [at(s), at(w)];
        }""",
        [strongest, weakest],
    )
    assert alpha[0] > 100, "the strongest attention should be drawn almost opaque"
    assert alpha[0] > alpha[1]


def test_layer_selector_changes_the_drawing_and_the_hash(figure_page, synthetic_record):
    probe = figure_page([(synthetic_record("encoder", n=13), {"view": "head", "name": "fig-layers"})])
    before = probe.canvas_stats(CANVAS)
    probe.figures.first.locator("select.attndocs-select").first.select_option("4")  # Layer (then Role)
    assert probe.fig_eval(0, "fig => fig.state.layer") == 4
    assert probe.canvas_stats(CANVAS)["hash"] != before["hash"]
    probe.page.wait_for_function("() => location.hash === '#fig-layers/layer=4'")


def test_include_layers_and_heads_limit_what_is_offered(figure_page, synthetic_record):
    options = {"view": "head", "include-layers": "1,3", "include-heads": "2-4", "layer": 3, "heads": "4"}
    probe = figure_page([(synthetic_record("encoder", n=10), options)])
    layers = probe.figures.first.locator("select.attndocs-select").first.locator("option").all_inner_texts()
    assert layers == ["1", "3"]
    assert probe.figures.first.locator(".attndocs-head").count() == 3
    assert probe.fig_eval(0, "fig => [fig.state.layer, fig.state.heads]") == [3, [4]]


def test_sentence_pair_filters_switch(figure_page, synthetic_record):
    probe = figure_page([(synthetic_record("pair", n=14), {"view": "head"})])
    fig = probe.figures.first
    filters = fig.locator('.attndocs-seg[data-value]')
    assert filters.all_inner_texts() == ["All", "A→A", "B→B", "A→B", "B→A"]
    seen = {}
    for value in ("all", "aa", "bb", "ab", "ba"):
        fig.locator(f'.attndocs-seg[data-value="{value}"]').click()
        assert probe.fig_eval(0, "fig => fig.state.filter") == value
        seen[value] = probe.canvas_stats(CANVAS)
    assert len({s["hash"] for s in seen.values()}) == 5
    assert all(seen[v]["painted"] < seen["all"]["painted"] for v in ("aa", "bb", "ab", "ba"))
    # Under A->B the sentence-A keys are dimmed (not a target) and B keys are not.
    fig.locator('.attndocs-seg[data-value="ab"]').click()
    assert "attndocs-dim" in (token(probe, 0, "k", 1).get_attribute("class") or "")
    assert "attndocs-dim" not in (token(probe, 0, "k", 12).get_attribute("class") or "")


def test_single_sentence_has_no_pair_filter(figure_page, synthetic_record):
    probe = figure_page([(synthetic_record("encoder", n=8), {"view": "head"})])
    assert probe.figures.first.locator('.attndocs-seg[data-value="aa"]').is_hidden()


def test_encoder_decoder_sections_switch(figure_page, synthetic_record):
    record = synthetic_record("encoder-decoder", n=9)
    probe = figure_page([(record, {"view": "head"})])
    fig = probe.figures.first
    assert fig.locator(".attndocs-seg[data-value]").all_inner_texts()[:3] == ["Encoder", "Decoder", "Cross"]
    hashes = {}
    for name in ("encoder", "decoder", "cross"):
        fig.locator(f'.attndocs-seg[data-value="{name}"]').click()
        assert probe.fig_eval(0, "fig => fig.state.section") == name
        hashes[name] = probe.canvas_stats(CANVAS)["hash"]
        left = fig.locator('.attndocs-token[data-side="q"]').all_inner_texts()
        right = fig.locator('.attndocs-token[data-side="k"]').all_inner_texts()
        rows = record.sides[record.sections[name].rows].display
        cols = record.sides[record.sections[name].cols].display
        assert (left, right) == (rows, cols)
    assert len(set(hashes.values())) == 3


def test_decoder_lines_never_point_to_the_future(figure_page, synthetic_record):
    record = synthetic_record("decoder", n=10, heads=1)
    probe = figure_page([(record, {"view": "head"})])
    attn = probe.fig_eval(0, "fig => Array.from(fig.attn('decoder', 0, 0))")
    n = 10
    assert all(attn[i * n + j] == 0 for i in range(n) for j in range(i + 1, n))
    # Hovering the first token (which may only attend to itself) lights exactly one key box.
    token(probe, 0, "q", 0).hover()
    assert probe.canvas_stats(CANVAS)["painted"] > 0


def test_keyboard_moves_locks_and_clears(figure_page, synthetic_record):
    probe = figure_page([(synthetic_record("encoder", n=10), {"view": "head", "name": "kbd"})])
    token(probe, 0, "q", 0).focus()
    assert probe.fig_eval(0, "fig => fig.state.token") == {"side": "q", "index": 0}
    probe.page.keyboard.press("ArrowDown")
    probe.page.keyboard.press("ArrowDown")
    assert probe.fig_eval(0, "fig => fig.state.token") == {"side": "q", "index": 2}
    probe.page.keyboard.press("ArrowRight")
    assert probe.fig_eval(0, "fig => fig.state.token") == {"side": "k", "index": 2}
    probe.page.keyboard.press("Enter")
    assert probe.fig_eval(0, "fig => [fig.state.locked, fig.state.token]") == [True, {"side": "k", "index": 2}]
    probe.page.wait_for_function("() => location.hash.includes('token=k2')")
    # A locked token ignores the mouse.
    token(probe, 0, "q", 5).hover()
    assert probe.fig_eval(0, "fig => fig.state.token") == {"side": "k", "index": 2}
    # The live region reads the top attended tokens.
    probe.page.wait_for_function("() => document.querySelector('.attndocs-sr[aria-live]').textContent.includes('attended most by')")
    probe.page.keyboard.press("Escape")
    assert probe.fig_eval(0, "fig => [fig.state.locked, fig.state.token]") == [False, None]


def test_heads_are_keyboard_operable(figure_page, synthetic_record):
    probe = figure_page([(synthetic_record("encoder", n=8, heads=4), {"view": "head"})])
    head_button(probe, 0, 0).focus()
    probe.page.keyboard.press("ArrowRight")
    probe.page.keyboard.press("Enter")
    assert probe.fig_eval(0, "fig => fig.state.heads") == [0, 2, 3]
    probe.page.keyboard.press("ArrowRight")
    probe.page.keyboard.press("Shift+Enter")
    assert probe.fig_eval(0, "fig => fig.state.heads") == [2]


def test_clicking_a_token_locks_it_and_clicking_again_releases(figure_page, synthetic_record):
    probe = figure_page([(synthetic_record("encoder", n=8), {"view": "head"})])
    token(probe, 0, "q", 3).click()
    assert probe.fig_eval(0, "fig => fig.state.locked") is True
    token(probe, 0, "q", 3).click()
    assert probe.fig_eval(0, "fig => fig.state.locked") is False


def test_state_in_the_url_hash_restores_the_view(figure_page, synthetic_record, open_html):
    first = figure_page([(synthetic_record("encoder", n=10), {"view": "head", "name": "linked"})])
    # The same page opened with a hash naming layer, heads and a locked token.
    probe = open_html(first.path.read_text(encoding="utf-8"), name="linked.html",
                      fragment="#linked/layer=2&heads=1,4&token=q3&locked=1")
    page = probe.page
    assert probe.fig_eval(0, "fig => [fig.state.layer, fig.state.heads, fig.state.token, fig.state.locked]") == [
        2, [1, 4], {"side": "q", "index": 3}, True,
    ]
    assert "attndocs-locked" in (token(probe, 0, "q", 3).get_attribute("class") or "")
    # A link in the prose changes the live figure.
    page.evaluate("location.hash = '#linked/layer=5'")
    page.wait_for_function("() => attndocs.figure('linked').state.layer === 5")
    # Values that do not fit the figure are ignored rather than breaking it.
    page.evaluate("location.hash = '#linked/layer=99&heads=0,77&token=q400'")
    page.wait_for_timeout(50)
    assert probe.fig_eval(0, "fig => fig.state.layer") == 5
    # The hash is written after the change is painted; a link followed meanwhile wins.
    page.evaluate("() => { attndocs.figure('linked').setState({layer: 1}); location.hash = '#linked/layer=3'; }")
    page.wait_for_function("() => attndocs.figure('linked').state.layer === 3")
    page.wait_for_timeout(500)
    assert page.evaluate("location.hash") == "#linked/layer=3"


def test_export_svg_and_png(figure_page, synthetic_record):
    probe = figure_page([(synthetic_record("encoder", n=8), {"view": "head"})])
    svg = probe.fig_eval(0, "fig => fig.exportSVG()")
    assert svg.startswith("<?xml") and "<svg" in svg and "<path" in svg and ">cat</text>" in svg
    png = probe.fig_eval(0, "fig => fig.exportPNG().then(b => b.arrayBuffer()).then(a => Array.from(new Uint8Array(a).slice(0, 8)))")
    assert png == [137, 80, 78, 71, 13, 10, 26, 10]
    with probe.page.expect_download() as info:
        probe.figures.first.locator('[data-export="svg"]').click()
    assert info.value.suggested_filename.endswith(".svg")
    with probe.page.expect_download() as info:
        probe.figures.first.locator('[data-export="png"]').click()
    assert info.value.suggested_filename.endswith(".png")


def test_many_heads_get_distinct_colours(figure_page, synthetic_record):
    probe = figure_page([(synthetic_record("encoder", n=6, heads=16, layers=1), {"view": "head"})])
    colours = probe.fig_eval(0, "fig => Array.from({length: 16}, (_, h) => fig.headColor(h))")
    assert len(set(colours)) == 16


def test_long_input_stays_usable(figure_page, synthetic_record):
    probe = figure_page([(synthetic_record("encoder", n=512, layers=2, heads=4), {"view": "head"})])
    assert probe.canvas_stats(CANVAS)["painted"] > 0
    token(probe, 0, "q", 400).scroll_into_view_if_needed()
    token(probe, 0, "q", 400).hover()
    assert probe.fig_eval(0, "fig => fig.state.token") == {"side": "q", "index": 400}


def test_a_burst_of_changes_ends_with_the_last_state_in_the_hash(figure_page, synthetic_record):
    probe = figure_page([(synthetic_record("encoder", n=8), {"view": "head", "name": "burst"})])
    # Like holding an arrow key on the layer selector: far more changes than browsers let
    # history.replaceState run; the hash must still end on the final state.
    probe.fig_eval(0, "fig => { for (let i = 0; i < 120; i++) fig.setState({layer: i % 6}); fig.setState({layer: 3}); }")
    probe.page.wait_for_function("() => location.hash === '#burst/layer=3'")
    assert probe.fig_eval(0, "fig => fig.state.layer") == 3


def _one_head_record(synthetic_record, attention):
    """A one-layer, one-head encoder record carrying exactly ``attention`` (n x n)."""
    import numpy as np

    n = attention.shape[0]
    record = synthetic_record("encoder", n=n, layers=1, heads=1)
    record.sections["encoder"].attention = np.asarray(attention, dtype=np.float32)[None, None]
    return record


def _alpha_between(probe, row_a: int, row_b: int) -> int:
    """Strongest canvas alpha on the vertical midline, halfway between two token rows."""
    return probe.page.evaluate(
        """([a, b]) => {
          const canvas = document.querySelector('.attndocs-lines > canvas');
          const left = document.querySelector('.attndocs-tokcol.attndocs-left');
          const r = canvas.getBoundingClientRect(), ratio = canvas.width / r.width;
          const mid = (i) => { const t = left.children[i].getBoundingClientRect(); return t.top + t.height / 2 - r.top; };
          const x = Math.round(r.width / 2 * ratio), y = Math.round((mid(a) + mid(b)) / 2 * ratio);
          const data = canvas.getContext('2d').getImageData(x - 2, y - 2, 5, 5).data;
          let best = 0;
          for (let k = 3; k < data.length; k += 4) best = Math.max(best, data[k]);
          return best;
        }""",
        [row_a, row_b],
    )


def test_all_tokens_lines_take_their_weight_as_opacity_and_hover_reveals_faint_ones(figure_page, synthetic_record):
    import numpy as np

    # Every token attends to itself (horizontal lines), except two lines that cross the
    # middle of the drawing: 0 -> 5 at 0.02 (rounds to no opacity) and 5 -> 0 at 0.5.
    a = np.eye(6, dtype=np.float32)
    a[0, 0], a[0, 5] = 0.98, 0.02
    a[5, 5], a[5, 0] = 0.5, 0.5
    probe = figure_page([(_one_head_record(synthetic_record, a), {"view": "head"})])
    # Both crossing lines pass the midline halfway between rows 2 and 3, far from any
    # horizontal line; only the 0.5 one is drawn.
    with_strong = _alpha_between(probe, 2, 3)
    assert with_strong > 40, "a line of weight 0.5 should be clearly visible"
    probe.fig_eval(0, "fig => fig.setState({token: {side: 'q', index: 0}})")
    assert _alpha_between(probe, 2, 3) > 0, "a hovered token shows even its faintest weights"
    probe.fig_eval(0, "fig => fig.setState({token: {side: 'q', index: 5}})")
    assert _alpha_between(probe, 2, 3) > 40

    b = a.copy()
    b[5, 5], b[5, 0] = 1.0, 0.0
    probe = figure_page([(_one_head_record(synthetic_record, b), {"view": "head"})])
    assert _alpha_between(probe, 2, 3) == 0, "a weight that rounds to zero opacity is not drawn"


def test_a_head_spread_evenly_over_a_long_input_still_draws(figure_page, synthetic_record):
    import numpy as np

    n = 120  # 1/120 rounds to no opacity: every row keeps its strongest line
    probe = figure_page([(_one_head_record(synthetic_record, np.full((n, n), 1 / n)), {"view": "head"}),
                         (_one_head_record(synthetic_record, np.full((n, n), 1 / n)), {"view": "model"})])
    assert probe.canvas_stats(CANVAS)["painted"] > 0
    assert probe.canvas_stats(".attndocs-thumb canvas")["painted"] > 0
