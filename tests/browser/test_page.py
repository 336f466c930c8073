"""Whole pages in real Chromium: many figures, live themes, hostile text, offline, payload decoding."""

from __future__ import annotations

import re

import numpy as np
import pytest

from attndocs.options import FigureOptions
from attndocs.payload import build_payload, decode_attention, decode_body, decode_extra, decode_qk
from attndocs.render import render_figure, render_page, render_placeholder

LINES = ".attndocs-lines > canvas"
HOSTILE = "</script><img src=x onerror=alert(1)>"


def fig_canvas(index: int) -> str:
    return f".attndocs-figure:nth-of-type({index + 1}) .attndocs-lines > canvas"


# -- several figures ----------------------------------------------------------------------
def test_two_head_and_two_model_views_work_independently(figure_page, synthetic_record):
    probe = figure_page([
        (synthetic_record("encoder", n=10, seed=1), {"view": "head"}),
        (synthetic_record("encoder", n=10, seed=1), {"view": "head"}),
        (synthetic_record("pair", n=12, seed=2), {"view": "model"}),
        (synthetic_record("pair", n=12, seed=2), {"view": "model"}),
    ])
    ids = [probe.figures.nth(i).get_attribute("id") for i in range(4)]
    assert len(set(ids)) == 4, "identical figures on one page still need distinct ids"
    same = probe.canvas_stats(fig_canvas(0))["hash"]
    assert probe.canvas_stats(fig_canvas(1))["hash"] == same

    probe.figures.nth(1).locator("select.attndocs-select").first.select_option("2")  # Layer (then Role)
    probe.figures.nth(1).locator('.attndocs-token[data-side="q"][data-index="3"]').hover()
    assert probe.fig_eval(0, "fig => [fig.state.layer, fig.state.token]") == [0, None]
    assert probe.fig_eval(1, "fig => [fig.state.layer, fig.state.token]") == [2, {"side": "q", "index": 3}]
    assert probe.canvas_stats(fig_canvas(0))["hash"] == same
    assert probe.canvas_stats(fig_canvas(1))["hash"] != same

    probe.figures.nth(3).locator('.attndocs-thumb[data-layer="1"][data-head="4"]').click()
    assert probe.fig_eval(2, "fig => fig.state.open") is False
    assert probe.fig_eval(3, "fig => fig.state.open") is True
    assert probe.figures.nth(2).locator(".attndocs-detail").is_hidden()
    probe.figures.nth(2).locator('.attndocs-seg[data-value="bb"]').click()
    assert probe.fig_eval(3, "fig => fig.state.filter") == "all"


def test_all_five_views_twice_on_one_page(figure_page, synthetic_record):
    record = synthetic_record("pair", n=12, qk=True, seed=4)
    figures = [(record, {"view": view}) for view in ("head", "model", "neuron", "matrix", "summary") for _ in range(2)]
    probe = figure_page(figures)
    statuses = [probe.figures.nth(i).get_attribute("data-attndocs-status") for i in range(10)]
    assert statuses == ["ready"] * 10
    for i in range(10):
        canvases = probe.figures.nth(i).locator("canvas")
        painted = [c.evaluate("c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                              " let n = 0; for (let k = 3; k < d.length; k += 4) if (d[k]) n++; return n; }")
                   for c in canvases.all()]
        text = probe.figures.nth(i).inner_text()
        assert any(painted) or len(text) > 40, f"figure {i} ({figures[i][1]['view']}) shows nothing"


def test_figures_added_after_load_boot_too(figure_page, synthetic_record):
    probe = figure_page([(synthetic_record("encoder", n=6), {"view": "head"})])
    fragment = render_figure(synthetic_record("encoder", n=7, seed=9), FigureOptions(view="model", name="late")).html
    probe.page.evaluate("html => document.querySelector('main').insertAdjacentHTML('beforeend', html)", fragment)
    probe.page.wait_for_function("() => document.getElementById('attndocs-late').getAttribute('data-attndocs-status') === 'ready'")
    assert probe.page.locator("#attndocs-late .attndocs-thumb").count() == 72


def test_placeholder_is_visible(figure_page, synthetic_record):
    placeholder = render_placeholder("model 'nope' was not found", FigureOptions(caption="Broken figure"))
    probe = figure_page([placeholder, (synthetic_record("encoder", n=6), {"view": "head"})])
    box = probe.page.locator(".attndocs-placeholder")
    assert box.is_visible()
    assert "model 'nope' was not found" in box.inner_text()
    assert probe.page.locator(".attndocs-failed figcaption").inner_text() == "Broken figure"


# -- themes -------------------------------------------------------------------------------
def theme_of(probe, index: int = 0) -> tuple[str, str]:
    return tuple(probe.fig_eval(index, "fig => [fig.el.getAttribute('data-attndocs-theme'), fig.colors().bg]"))


@pytest.mark.parametrize(
    "target, attribute, dark, light",
    [
        ("body", "data-theme", "dark", "light"),  # Furo
        ("html", "data-theme", "dark", "light"),  # pydata-sphinx-theme
        ("body", "data-md-color-scheme", "slate", "default"),  # Material for MkDocs
    ],
)
def test_theme_follows_the_host_switch_live(figure_page, synthetic_record, target, attribute, dark, light):
    probe = figure_page([
        (synthetic_record("encoder", n=8), {"view": "head"}),
        (synthetic_record("encoder", n=8), {"view": "model"}),
        (synthetic_record("encoder", n=8), {"view": "head", "display": "light"}),
    ])
    light_lines = probe.canvas_stats(fig_canvas(0))
    light_thumb = probe.canvas_stats(".attndocs-thumb canvas")
    assert theme_of(probe)[0] == "light"
    set_attr = f"v => document.{'body' if target == 'body' else 'documentElement'}.setAttribute('{attribute}', v)"
    probe.page.evaluate(set_attr, dark)
    probe.page.wait_for_function("() => document.querySelector('.attndocs-figure').getAttribute('data-attndocs-theme') === 'dark'")
    assert theme_of(probe)[1] != "#ffffff"
    dark_lines = probe.canvas_stats(fig_canvas(0))
    assert dark_lines["hash"] != light_lines["hash"], "lines were not redrawn in the dark palette"
    assert probe.canvas_stats(".attndocs-thumb canvas")["hash"] != light_thumb["hash"]
    background = probe.page.evaluate("getComputedStyle(document.querySelector('.attndocs-figure')).backgroundColor")
    assert background == "rgb(13, 17, 23)"
    # A figure with display: light ignores the host.
    assert theme_of(probe, 2)[0] == "light"
    probe.page.evaluate(set_attr, light)
    probe.page.wait_for_function("() => document.querySelector('.attndocs-figure').getAttribute('data-attndocs-theme') === 'light'")
    assert probe.canvas_stats(fig_canvas(0))["hash"] == light_lines["hash"]


def test_theme_follows_prefers_color_scheme_live(figure_page, synthetic_record):
    probe = figure_page([
        (synthetic_record("encoder", n=8), {"view": "head"}),
        (synthetic_record("encoder", n=8), {"view": "head", "display": "dark"}),
    ], body_attrs={"data-theme": "auto"})  # Furo's "auto" defers to the system setting
    assert theme_of(probe, 0)[0] == "light"
    assert theme_of(probe, 1)[0] == "dark"
    before = probe.canvas_stats(fig_canvas(0))
    probe.page.emulate_media(color_scheme="dark")
    probe.page.wait_for_function("() => document.querySelector('.attndocs-figure').getAttribute('data-attndocs-theme') === 'dark'")
    assert probe.canvas_stats(fig_canvas(0))["hash"] != before["hash"]
    probe.page.emulate_media(color_scheme="light")
    probe.page.wait_for_function("() => document.querySelector('.attndocs-figure').getAttribute('data-attndocs-theme') === 'light'")
    assert theme_of(probe, 1)[0] == "dark"


def test_dark_page_on_first_load(figure_page, synthetic_record):
    probe = figure_page([(synthetic_record("encoder", n=8), {"view": "head"})], color_scheme="dark")
    assert theme_of(probe)[0] == "dark"


# -- hostile text -------------------------------------------------------------------------
HOSTILE_TOKENS = [HOSTILE, "שָׁלוֹם", "مرحبا", "👩‍🔬", "猫が座った", "<b>bold</b>", "&amp;", "\u2028", "a\"b'c", "x' onmouseover='alert(2)"]


@pytest.mark.parametrize("csp", [True, False], ids=["with-csp", "escaping-alone"])
def test_hostile_text_shows_literally_and_runs_nothing(figure_page, synthetic_record, csp):
    record = synthetic_record("encoder", tokens=HOSTILE_TOKENS, text=HOSTILE + " text", model_id=HOSTILE)
    options = {"view": "head", "caption": HOSTILE + " caption 猫", "name": HOSTILE, "alt": HOSTILE + " alt", "class": HOSTILE}
    model_opts = {**options, "view": "model", "name": "second " + HOSTILE}
    probe = figure_page([(record, options), (record, model_opts)], title=HOSTILE, csp=csp)
    page = probe.page
    assert page.locator("img").count() == 0, "markup from the text was parsed"
    assert page.locator("b").count() == 0
    assert page.evaluate("window.__injected === undefined")
    tokens = probe.figures.first.locator('.attndocs-token[data-side="q"]').all_inner_texts()
    assert tokens[0] == HOSTILE
    assert tokens[1:5] == HOSTILE_TOKENS[1:5]
    assert tokens[5] == "<b>bold</b>" and tokens[6] == "&amp;"
    assert probe.figures.first.locator("figcaption").inner_text() == HOSTILE + " caption 猫"
    assert page.title() == HOSTILE
    assert probe.figures.first.locator(".attndocs-frame").get_attribute("aria-label") == HOSTILE + " alt"
    # Hover the hostile token: the live region and the SVG export carry it as text only.
    probe.figures.first.locator('.attndocs-token[data-index="0"][data-side="q"]').focus()
    svg = probe.fig_eval(0, "fig => fig.exportSVG()")
    assert "<img" not in svg and "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in svg
    assert probe.page.evaluate("document.querySelectorAll('.attndocs-figure[data-attndocs-status=ready]').length") == 2
    assert probe.dialogs == []


def test_hostile_text_in_the_page_source_is_escaped(synthetic_record):
    record = synthetic_record("encoder", tokens=[HOSTILE, "\u2028", "x"], text=HOSTILE)
    html = render_page([render_figure(record, FigureOptions(caption=HOSTILE, alt=HOSTILE, name=HOSTILE))], HOSTILE)
    assert HOSTILE not in html
    assert html.count("</script>") == 1  # only the bundle; the data sits in attributes
    (header,) = re.findall(r"hidden data-header='([^']*)'", html)
    assert not any(c in header for c in "<>&'\u2028")


# -- offline ------------------------------------------------------------------------------
def test_page_references_nothing_outside_itself(synthetic_record):
    html = render_page([render_figure(synthetic_record("encoder", n=6), FigureOptions(view=v)) for v in ("head", "model")])
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", html)
    assert "connect-src &#39;none&#39;" in html  # the CSP meta, attribute-escaped


def test_side_file_payload_loads_when_scrolled_into_view(open_html, synthetic_record):
    near = render_figure(synthetic_record("encoder", n=8), FigureOptions(view="head", name="near"), embed="file")
    far = render_figure(synthetic_record("encoder", n=9), FigureOptions(view="head", name="far"), embed="file")
    spacer = '<div style="height: 5000px"></div>'
    # A site page has no CSP of ours; this standalone one lets its own origin's scripts in.
    html = render_page([near.html + spacer + far.html]).replace("script-src ", "script-src &#39;self&#39; ", 1)
    served = {**near.files, **far.files}
    probe = open_html(html, served=served, name="side.html")
    page = probe.page
    page.wait_for_function("() => document.getElementById('attndocs-near').getAttribute('data-attndocs-status') === 'ready'")
    assert list(near.files) == [n for n in probe.fetched if n.endswith(".js")]
    assert page.locator("#attndocs-far").get_attribute("data-attndocs-status") == "waiting"
    page.locator("#attndocs-far").scroll_into_view_if_needed()
    page.wait_for_function("() => document.getElementById('attndocs-far').getAttribute('data-attndocs-status') === 'ready'")
    assert sorted(n for n in probe.fetched if n.endswith(".js")) == sorted(served)


# -- the JS decoder matches the Python encoder ----------------------------------------------
def test_js_decoder_matches_python_decoder(figure_page, synthetic_record):
    encdec = synthetic_record("encoder-decoder", n=11, layers=3, heads=4, qk=True, bias=True, seed=5)
    # The neuron view ships query/key vectors (and no attention); the matrix view, attention.
    options = FigureOptions(view="neuron", include_layers=(0, 2), include_heads=(1, 3))
    matrix = FigureOptions(view="matrix", include_layers=(0, 2), include_heads=(1, 3))
    payload = build_payload(encdec, options)
    body = decode_body(payload.header, payload.encoded)
    weights = build_payload(encdec, matrix)
    weights_body = decode_body(weights.header, weights.encoded)
    probe = figure_page([(encdec, options), (encdec, matrix)])
    for name in ("encoder", "decoder", "cross"):
        info = payload.header["sections"][name]
        assert "attn" not in info["blocks"]
        expected = decode_attention(weights.header, weights_body, name)
        qk = decode_qk(payload.header, body, name)
        for li, layer in enumerate(info["layers"]):
            for hi, head in enumerate(info["heads"]):
                got = probe.fig_eval(1, "(fig, a) => Array.from(fig.attn(a[0], a[1], a[2]))", [name, layer, head])
                np.testing.assert_allclose(got, expected[li, hi].ravel(), rtol=0, atol=1e-7)
                js = probe.fig_eval(
                    0,
                    "(fig, a) => { const r = fig.qk(a[0], a[1], a[2]);"
                    " return {q: Array.from(r.q), k: Array.from(r.k), d: r.d, scale: r.scale,"
                    " bias: r.bias ? Array.from(r.bias) : null}; }",
                    [name, layer, head],
                )
                assert js["d"] == 16
                np.testing.assert_allclose(js["q"], qk["query"][li, hi].ravel(), rtol=1e-6, atol=1e-6)
                np.testing.assert_allclose(js["k"], qk["key"][li, hi].ravel(), rtol=1e-6, atol=1e-6)
                if qk["bias"] is None:
                    assert js["bias"] is None
                else:
                    np.testing.assert_allclose(js["bias"], qk["bias"][li, hi].ravel(), rtol=1e-6, atol=1e-6)
    # The decoded attention is the model's, within the quantisation error.
    got = np.array(probe.fig_eval(1, "fig => Array.from(fig.attn('cross', 2, 3))"))
    np.testing.assert_allclose(got, encdec.sections["cross"].attention[2, 3].ravel(), atol=1 / 255 + 1e-6)


def test_js_decodes_extras(figure_page, synthetic_record):
    record = synthetic_record("encoder", n=9, layers=2, heads=3)
    options = FigureOptions(view="matrix")
    payload = build_payload(record, options)
    if not payload.header["extras"]:
        pytest.fail("attndocs.analysis ships no extras for the matrix view: the extras path is untested")
    body = decode_body(payload.header, payload.encoded)
    probe = figure_page([(record, options)])
    for name in payload.header["extras"]:
        expected = decode_extra(payload.header, body, name)
        got = probe.fig_eval(0, "(fig, n) => { const x = fig.extra(n); return {data: Array.from(x.data), shape: x.shape}; }", name)
        assert got["shape"] == list(expected.shape)
        np.testing.assert_allclose(got["data"], expected.ravel(), rtol=0, atol=1e-7)


def test_removed_figures_are_released(figure_page, synthetic_record):
    probe = figure_page([(synthetic_record("encoder", n=6), {"view": "head"}),
                         (synthetic_record("encoder", n=7), {"view": "model", "name": "gone"})])
    assert probe.page.evaluate("attndocs.figures().length") == 2
    probe.page.evaluate("document.getElementById('attndocs-gone').remove()")
    probe.page.wait_for_function("() => attndocs.figures().length === 1")
    assert probe.page.evaluate("attndocs.figure('gone')") is None


@pytest.mark.real
def test_attndocs_render_pages_of_all_five_views_work_offline(open_html, minilm_dir, tmp_path):
    from attndocs import cli

    cache = tmp_path / "cache"
    for view in ("head", "model", "neuron", "matrix", "summary"):
        out = tmp_path / f"{view}.html"
        code = cli.main(["render", "--view", view, "--model", "minilm", "--cache-dir", str(cache),
                         "--text-b", "The dog lay on the rug.", "-o", str(out), "The cat sat on the mat."])
        assert code == 0
        probe = open_html(out.read_text(encoding="utf-8"), name=f"open-{view}.html")
        assert probe.figures.first.get_attribute("data-attndocs-status") == "ready", view
        header = probe.fig_eval(0, "fig => fig.header")
        assert header["model"]["id"].endswith("all-MiniLM-L6-v2") and header["view"] == view
        assert header["sides"]["encoder"]["textBStart"] is not None
        if view == "neuron":
            assert header["neuron"]["available"] is True, header["neuron"]
        painted = probe.figures.first.locator("canvas").evaluate_all(
            "cs => cs.map(c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " let n = 0; for (let k = 3; k < d.length; k += 4) if (d[k]) n++; return n; })")
        assert sum(painted) > 0 or view == "summary", f"{view} drew nothing"
        if view == "head":
            before = probe.canvas_stats(LINES)
            probe.figures.first.locator('.attndocs-token[data-side="q"][data-index="2"]').hover()
            assert probe.canvas_stats(LINES)["hash"] != before["hash"]
