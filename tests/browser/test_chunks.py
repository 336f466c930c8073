"""Progressive payloads in Chromium: a figure loads its first view, then the rest as the reader asks.

Figures here are small, with the payload's size limits lowered (monkeypatched) so that they
split into chunks as a large figure does: the head view's first layer as top weights, the
model view's thumbnails from a pooled overview, one chunk per layer or head. Side files
(embed="file") are opened from file:// with the browser offline and from a real web server
on 127.0.0.1; inline figures decode their chunks on demand. Every view keeps working, and a
part still loading shows a loading state, never a picture of another layer.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import PageProbe, close_probes

from attndocs import payload as payload_module
from attndocs.options import FigureOptions
from attndocs.payload import build_payload
from attndocs.render import asset_files, asset_tags, render_figure, render_page

STATIC = "static/"


@pytest.fixture
def chunked(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Make every figure split as a large one does (``whole_first``: the head view's first
    layer ships whole rather than as top weights; ``overview``: bins a side of thumbnails)."""

    def apply(*, whole_first: bool = False, overview: int = 48) -> None:
        monkeypatch.setattr(payload_module, "SINGLE_CHUNK", 0)
        monkeypatch.setattr(payload_module, "FIRST_LAYER_WHOLE", 10**9 if whole_first else 0)
        monkeypatch.setattr(payload_module, "OVERVIEW_SIDE", overview)

    apply()
    return apply


def site_page(root: Path, figures: list[tuple[Any, FigureOptions]], name: str = "page.html") -> dict[str, bytes]:
    """A page of side-file figures with its assets and chunk scripts under static/; returns the side files."""
    root.mkdir(parents=True, exist_ok=True)
    (root / STATIC).mkdir(exist_ok=True)
    used: set[str] = set()
    parts, files = [], {}
    for record, options in figures:
        fig = render_figure(record, options, embed="file", file_prefix=STATIC, used_ids=used)
        parts.append(fig.html)
        files.update(fig.files)
    for file_name, data in {**asset_files(), **files}.items():
        (root / STATIC / file_name).write_bytes(data)
    html = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>chunks</title>\n'
        f"{asset_tags(STATIC)}\n</head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    (root / name).write_text(html, encoding="utf-8")
    return files


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A web server on 127.0.0.1 serving tmp_path/site: (origin, folder)."""
    folder = tmp_path / "site"
    folder.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", folder
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def open_site(chromium: Any, server: tuple[str, Path]) -> Iterator[Callable[..., PageProbe]]:
    """``open_site(transport, figures, hold=None)``: the page built from file:// (offline) or the server."""
    probes: list[PageProbe] = []
    origin, folder = server

    def open_(transport: str, figures: list[tuple[Any, FigureOptions]], *, hold: Callable[[str], bool] | None = None) -> PageProbe:
        site_page(folder, figures)
        if transport == "file":
            probe = PageProbe(chromium, folder / "page.html", local=True, hold=hold)
        else:
            probe = PageProbe(chromium, folder / "page.html", origin=origin, hold=hold)
        probes.append(probe)
        probe.goto()
        probe.page.wait_for_function("() => document.querySelector('.attndocs-figure').getAttribute('data-attndocs-status') === 'ready'")
        return probe

    yield open_
    close_probes(probes, "the page misbehaved")


def loaded_chunks(probe: PageProbe, index: int = 0) -> list[bool]:
    return probe.fig_eval(index, "fig => fig._store.data.map(d => !!d)")


def wait_drawn(probe: PageProbe) -> None:
    """Until no figure is loading anything."""
    probe.page.wait_for_function("() => !document.querySelector('[data-attndocs-loading]')")


def select_layer(probe: PageProbe, layer: int) -> None:
    probe.page.locator(".attndocs-controls select").first.select_option(str(layer))


TRANSPORTS = ["file", "http"]


# -- the head view ------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_head_view_draws_from_top_weights_then_loads_layers(open_site, synthetic_record, chunked, transport):
    record = synthetic_record("encoder", n=14, layers=3, heads=4, seed=2)
    probe = open_site(transport, [(record, FigureOptions(view="head"))])
    # First paint: chunk 0 (the top weights of layer 0) only, and lines drawn.
    loaded = loaded_chunks(probe)
    assert loaded[0] and not any(loaded[1:]), loaded
    first = probe.canvas_stats(".attndocs-lines canvas")
    assert first["painted"] > 0
    # Another layer: its chunk loads and draws something else.
    select_layer(probe, 2)
    wait_drawn(probe)
    assert probe.fig_eval(0, "fig => fig.state.layer") == 2
    other = probe.canvas_stats(".attndocs-lines canvas")
    assert other["painted"] > 0 and other["hash"] != first["hash"]
    # Hovering a token needs every weight of the layer: loaded, then its lines drawn.
    probe.page.locator(".attndocs-lines .attndocs-token[data-side='q']").nth(3).hover()
    wait_drawn(probe)
    assert probe.fig_eval(0, "fig => fig.state.token && fig.state.token.index") == 3
    hovered = probe.canvas_stats(".attndocs-lines canvas")
    assert hovered["painted"] > 0 and hovered["hash"] != other["hash"]
    names = [n for n in probe.fetched if n.endswith(".js") and "attndocs-" in n and not n.startswith(STATIC + "attndocs.")]
    assert len(names) >= 2  # chunk 0, then layer 2's chunk, each as a script


def test_top_weights_draw_exactly_what_the_full_layer_draws(open_site, synthetic_record, chunked):
    """The first paint (top weights) and the same state drawn from the whole layer are the same pixels,
    for every sentence filter: each row's strongest key within a sentence ships too."""
    record = synthetic_record("pair", n=21, layers=2, heads=3, seed=4, sharp=1.2)
    probe = open_site("file", [(record, FigureOptions(view="head"))])
    assert probe.fig_eval(0, "fig => fig.missing('attn', 'encoder', 0, fig.state.heads).length") > 0
    pictures = {}
    for flt in ("all", "aa", "ab", "ba", "bb"):
        probe.fig_eval(0, "(fig, f) => fig.setState({filter: f})", flt)
        pictures[flt] = probe.canvas_stats(".attndocs-lines canvas")["hash"]
    probe.fig_eval(0, "fig => fig.load(fig.missing('attn', 'encoder', 0, fig.state.heads))")
    assert not probe.fig_eval(0, "fig => fig.missing('attn', 'encoder', 0, fig.state.heads).length")
    for flt in ("all", "aa", "ab", "ba", "bb"):
        probe.fig_eval(0, "(fig, f) => { fig.setState({filter: f}); fig.view.update({heads: fig.state.heads}); }", flt)
        assert probe.canvas_stats(".attndocs-lines canvas")["hash"] == pictures[flt], flt


def test_the_loading_state_shows_until_the_layer_arrives(open_site, synthetic_record, chunked):
    record = synthetic_record("decoder", n=12, layers=3, heads=2, seed=1)
    first = build_payload(record, FigureOptions(view="head")).chunk_file_name(0)
    probe = open_site("file", [(record, FigureOptions(view="head"))],
                      hold=lambda url: "/static/attndocs-" in url and url.endswith(".js") and first not in url)
    select_layer(probe, 1)
    probe.page.wait_for_function("() => document.querySelector('[data-attndocs-loading]')")
    note = probe.page.locator(".attndocs-loading")
    assert note.is_visible() and "Loading layer 1" in note.inner_text()
    # The old layer's lines are gone: no wrong picture under the new label.
    assert probe.canvas_stats(".attndocs-lines canvas")["painted"] == 0
    assert probe.release() >= 1
    wait_drawn(probe)
    assert not note.is_visible()
    assert probe.canvas_stats(".attndocs-lines canvas")["painted"] > 0


def test_a_missing_part_says_so_and_draws_nothing_wrong(open_site, synthetic_record, chunked, server):
    record = synthetic_record("encoder", n=10, layers=2, heads=2, seed=6)
    payload = build_payload(record, FigureOptions(view="head"))
    origin, folder = server
    probe = open_site("http", [(record, FigureOptions(view="head"))])
    (folder / STATIC / payload.chunk_file_name(2)).unlink()  # layer 1's chunk (chunk 1 is layer 0) is gone
    probe.expect_console_error("404")
    select_layer(probe, 1)
    probe.page.wait_for_function("() => document.querySelector('.attndocs-load-error')")
    text = probe.page.locator(".attndocs-loading").inner_text()
    assert "Could not load layer 1" in text and payload.chunk_file_name(2) in text
    assert probe.canvas_stats(".attndocs-lines canvas")["painted"] == 0
    # Back to a layer that is there: drawn again, the message gone.
    select_layer(probe, 0)
    wait_drawn(probe)
    assert not probe.page.locator(".attndocs-loading").is_visible()
    assert probe.canvas_stats(".attndocs-lines canvas")["painted"] > 0


# -- the other views ------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_model_view_thumbnails_from_the_overview_and_details_on_demand(open_site, synthetic_record, chunked, transport):
    chunked(overview=6)  # 14 tokens pooled into 6 x 6 bins
    record = synthetic_record("pair", n=14, layers=3, heads=3, seed=3)
    probe = open_site(transport, [(record, FigureOptions(view="model"))])
    loaded = loaded_chunks(probe)
    assert loaded[0] and not any(loaded[1:])  # chunk 0 is the overview
    thumbs = probe.all_canvas_stats(".attndocs-thumb canvas")
    assert len(thumbs) == 9 and all(t["painted"] > 0 for t in thumbs)
    probe.fig_eval(0, "fig => fig.setState({filter: 'ab'})")
    filtered = probe.all_canvas_stats(".attndocs-thumb canvas")
    assert [t["hash"] for t in filtered] != [t["hash"] for t in thumbs]
    probe.page.locator(".attndocs-thumb[data-layer='2'][data-head='1']").click()
    wait_drawn(probe)
    assert probe.page.locator(".attndocs-detail").is_visible()
    assert probe.canvas_stats(".attndocs-detail canvas")["painted"] > 0
    assert sum(loaded_chunks(probe)) == 2  # the overview and that one head


def test_overview_thumbnails_equal_full_ones_when_every_token_has_a_bin(figure_page, synthetic_record, chunked):
    record = synthetic_record("pair", n=13, layers=2, heads=3, seed=8)
    chunked_html = render_figure(record, FigureOptions(view="model"))
    chunked(whole_first=True, overview=48)
    payload_module.SINGLE_CHUNK = 10**9  # the same figure in one chunk, thumbnails from the full matrices
    whole_html = render_figure(record, FigureOptions(view="model"))
    assert '"overview"' in chunked_html.html and '"overview"' not in whole_html.html
    probe = figure_page([chunked_html, whole_html])
    a = probe.page.locator(".attndocs-figure").nth(0).locator(".attndocs-thumb canvas").evaluate_all(
        "ns => ns.map(c => c.toDataURL())")
    b = probe.page.locator(".attndocs-figure").nth(1).locator(".attndocs-thumb canvas").evaluate_all(
        "ns => ns.map(c => c.toDataURL())")
    assert a == b


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_neuron_view_loads_each_head_it_shows(open_site, synthetic_record, chunked, transport):
    record = synthetic_record("encoder", n=9, layers=2, heads=3, qk=True, seed=5)
    probe = open_site(transport, [(record, FigureOptions(view="neuron"))])
    # The first paint needs chunk 0 alone: the keys and the one query row it opens on. The rest of
    # that head's queries load right after it, so hovering another query seldom waits.
    assert probe.fig_eval(0, "fig => attndocs._chunksFor(fig, 'qk', 'encoder', 0, 0, 0)") == [0]
    assert probe.fig_eval(0, "fig => attndocs._chunksFor(fig, 'qk', 'encoder', 0, 0, 4)") not in ([0], [])
    probe.page.wait_for_function("() => attndocs.figure(document.querySelector('.attndocs-figure'))._store.data.filter(d => d).length === 2")
    # The weights shown are the softmax of the model's own scores (float32 vectors): the model's
    # attention to the three decimals printed, not the 8-bit codes the other views draw.
    want = record.sections["encoder"].attention

    def shown() -> list[float]:
        return [float(t) for t in probe.page.locator(".attndocs-nprob .attndocs-nval").all_inner_texts()]

    np.testing.assert_allclose(shown(), want[0, 0, 0], atol=6e-4)
    probe.page.locator(".attndocs-controls select").nth(1).select_option("2")  # head 2
    wait_drawn(probe)
    np.testing.assert_allclose(shown(), want[0, 2, 0], atol=6e-4)
    probe.page.locator(".attndocs-controls select").nth(0).select_option("1")  # layer 1
    wait_drawn(probe)
    np.testing.assert_allclose(shown(), want[1, 2, 0], atol=6e-4)
    probe.page.locator(".attndocs-nq .attndocs-token").nth(4).hover()
    np.testing.assert_allclose(shown(), want[1, 2, 4], atol=6e-4)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_matrix_view_loads_heads_layers_and_aggregates(open_site, synthetic_record, chunked, transport):
    record = synthetic_record("encoder", n=10, layers=3, heads=3, seed=7)
    probe = open_site(transport, [(record, FigureOptions(view="matrix"))])
    assert sum(loaded_chunks(probe)) == 1
    pictures = {}
    for step in ("head", "layer", "mean", "rollout", "mean-all"):
        if step == "layer":
            probe.page.locator(".attndocs-controls select").nth(0).select_option("2")
        else:
            probe.page.locator(f".attndocs-seg[data-value='{step}']").click()
        wait_drawn(probe)
        stats = probe.canvas_stats(".attndocs-mcanvas")
        assert stats["painted"] > 0, step
        pictures[step] = stats["hash"]
    assert len(set(pictures.values())) == len(pictures)
    # Hover reads the loaded matrix.
    probe.page.locator(".attndocs-mcanvas").hover(position={"x": 5, "y": 5})
    assert "\u2192" in probe.page.locator(".attndocs-mreadout").inner_text()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_summary_view_loads_the_head_it_opens(open_site, synthetic_record, chunked, transport):
    record = synthetic_record("decoder", n=10, layers=2, heads=3, seed=9)
    probe = open_site(transport, [(record, FigureOptions(view="summary"))])
    first = probe.canvas_stats(".attndocs-smini")
    assert first["painted"] > 0
    probe.page.locator(".attndocs-scell[data-layer='1'][data-head='2']").click()
    wait_drawn(probe)
    assert probe.page.locator(".attndocs-stitle").inner_text() == "Layer 1 \u00b7 head 2"
    other = probe.canvas_stats(".attndocs-smini")
    assert other["painted"] > 0 and other["hash"] != first["hash"]


# -- inline figures and pages of several -----------------------------------------------------------
def test_inline_chunks_decode_only_when_needed(figure_page, synthetic_record, chunked):
    record = synthetic_record("encoder", n=12, layers=4, heads=2, seed=11)
    probe = figure_page([(record, {"view": "head"})])  # a standalone page: CSP, everything inline
    assert probe.page.locator(".attndocs-chunk").count() == 4
    assert loaded_chunks(probe) == [True, False, False, False, False]
    select_layer(probe, 3)
    wait_drawn(probe)
    assert loaded_chunks(probe) == [True, False, False, False, True]
    assert probe.canvas_stats(".attndocs-lines canvas")["painted"] > 0


def test_figures_sharing_chunk_files_load_them_once(open_site, synthetic_record, chunked):
    record = synthetic_record("encoder", n=11, layers=3, heads=2, seed=12)
    probe = open_site("http", [(record, FigureOptions(view="head")), (record, FigureOptions(view="head", name="again"))])
    probe.page.wait_for_function("() => [...document.querySelectorAll('.attndocs-figure')].every(f => f.dataset.attndocsStatus === 'ready')")
    probe.page.evaluate("""() => {
        const figs = attndocs.figures();
        figs.forEach(f => f.setState({layer: 2}));
    }""")
    wait_drawn(probe)
    assert all(s["painted"] > 0 for s in probe.all_canvas_stats(".attndocs-lines canvas"))
    layer2 = build_payload(record, FigureOptions(view="head")).chunk_file_name(3)
    assert probe.fetched.count(STATIC + layer2) == 1


def test_inline_page_of_a_large_figure_keeps_its_csp(synthetic_record, chunked):
    record = synthetic_record("encoder", n=8, layers=2, heads=2)
    html = render_page([render_figure(record, FigureOptions(view="head"))])
    assert "script-src 'sha256-" in html.replace("&#39;", "'") and "<script src" not in html
    assert html.count('class="attndocs-chunk"') == 2


def test_a_link_to_a_layer_not_loaded_yet_opens_on_it(open_site, synthetic_record, chunked, server):
    record = synthetic_record("encoder", n=12, layers=4, heads=2, seed=13)
    probe = open_site("file", [(record, FigureOptions(view="head", name="fig"))])
    probe.page.goto(probe.url + "#fig/layer=3")
    probe.page.reload()
    probe.page.wait_for_function("() => document.querySelector('.attndocs-figure').dataset.attndocsStatus === 'ready'")
    wait_drawn(probe)
    assert probe.fig_eval(0, "fig => fig.state.layer") == 3
    assert probe.page.locator(".attndocs-controls select").first.input_value() == "3"
    assert probe.canvas_stats(".attndocs-lines canvas")["painted"] > 0


# -- real sizes --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bert_base_shaped() -> Any:
    """12 layers x 12 heads at 512 tokens, with query/key vectors (d 64): BERT-base's shape."""
    from synthetic import synthetic_record as make

    return make("pair", n=512, layers=12, heads=12, qk=True, d=64, sharp=1.0, seed=21)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_view_of_a_bert_base_sized_figure_works(open_site, bert_base_shaped, transport):
    """At full size (no lowered limits): each view draws its first view from chunk 0, loads
    another layer (or head) when asked, and draws it, from file:// offline and from a server."""
    record = bert_base_shaped
    checks = {
        "head": ".attndocs-lines canvas",
        "model": ".attndocs-thumb canvas",
        "neuron": ".attndocs-nvec",
        "matrix": ".attndocs-mcanvas",
        "summary": ".attndocs-smini",
    }
    for view, canvas in checks.items():
        probe = open_site(transport, [(record, FigureOptions(view=view))])
        loaded = loaded_chunks(probe)
        # The first view draws from chunk 0; the neuron view then loads the rest of its first
        # head's queries (chunk 0 holds the one query row it opens on), which may already be in.
        assert loaded[0] and sum(loaded) == 1 or (view == "neuron" and sum(loaded) == 2), (view, sum(loaded))
        if view == "neuron":
            assert probe.fig_eval(0, "fig => attndocs._chunksFor(fig, 'qk', fig.state.section, 0, 0, 0)") == [0]
        assert probe.canvas_stats(canvas)["painted"] > 0, view
        if view == "model":
            probe.page.locator(".attndocs-thumb[data-layer='11'][data-head='5']").click()
            canvas = ".attndocs-detail canvas"
        elif view == "summary":
            probe.page.locator(".attndocs-scell[data-layer='11'][data-head='5']").click()
        else:
            select_layer(probe, 11)
        wait_drawn(probe)
        assert sum(loaded_chunks(probe)) > 1, view
        assert probe.canvas_stats(canvas)["painted"] > 0, view
        if view == "head":  # a hovered token: every weight of layer 11, already loaded
            probe.page.locator(".attndocs-lines .attndocs-token[data-side='k']").nth(7).hover()
            assert probe.canvas_stats(canvas)["painted"] > 0
