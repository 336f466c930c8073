"""Notebook outputs that always show something: the mime bundle, its still picture, and the
executed notebook exported with nbconvert, in Chromium with JavaScript off and on (network off)."""

from __future__ import annotations

import base64
import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from attndocs import still
from attndocs.notebook import head_view, record_from_attention
from attndocs.options import FigureOptions
from attndocs.render import render_figure

sys.path.insert(0, str(Path(__file__).parents[1] / "browser"))
from synthetic import synthetic_record  # noqa: E402

TOKENS = ["[CLS]", "the", "cat", "sat", "on", "mat", "[SEP]"]


def pixels(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    image.load()
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def near(image: np.ndarray, colour: tuple[int, int, int], tolerance: int = 6) -> int:
    """How many pixels are within ``tolerance`` of ``colour`` in every channel."""
    return int((np.abs(image - np.asarray(colour, dtype=np.int16)).max(axis=-1) <= tolerance).sum())


def tinted(image: np.ndarray, colour: tuple[int, int, int], bg: tuple[int, int, int] = still.LIGHT.bg) -> int:
    """How many pixels are ``colour`` laid over ``bg`` at a quarter opacity or more (lines, faint or not)."""
    towards = np.asarray(colour, np.float64) - bg
    offset = image.astype(np.float64) - bg
    t = offset @ towards / (towards @ towards)
    residual = np.abs(offset - t[..., None] * towards).max(axis=-1)
    return int(((t >= 0.25) & (residual < 12)).sum())


def one_hot_attention(targets: list[int], layers: int = 2, heads: int = 1) -> tuple[np.ndarray, ...]:
    """Every query row i puts all its weight on key targets[i], in every layer and head."""
    n = len(targets)
    matrix = np.zeros((n, n), dtype=np.float32)
    matrix[np.arange(n), targets] = 1.0
    return tuple(np.broadcast_to(matrix, (1, heads, n, n)).copy() for _ in range(layers))


# -- the bundle -------------------------------------------------------------------------------
def test_bundle_has_html_with_the_still_a_png_and_a_description():
    result = head_view(one_hot_attention([1, 2, 3, 4, 5, 6, 0]), TOKENS, html_action="return")
    bundle = result._repr_mimebundle_()
    assert list(bundle) == ["text/html", "image/png", "text/plain"]
    png = base64.b64decode(bundle["image/png"])
    assert png == result.png == result._repr_png_()
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.width == still.WIDTH and 150 < image.height < 900
    assert bundle["text/plain"] == result.description
    assert bundle["text/plain"].startswith("Attention head view of") and "7 encoder tokens" in bundle["text/plain"]
    # The HTML carries the same picture inside the figure's frame, its alt text the description.
    html = bundle["text/html"]
    (img,) = re.findall(r'<img class="attndocs-still"[^>]*>', html)
    assert f'src="data:image/png;base64,{bundle["image/png"]}"' in img
    assert f'alt="{result.description}"' in img and f'width="{image.width}" height="{image.height}"' in img
    assert html.index("attndocs-frame") < html.index("attndocs-still") < html.index("attndocs-data")
    # The standalone page (.data) has it too; its policy allows data: images.
    assert 'class="attndocs-still"' in result.data and "img-src data:" in result.data


def test_pages_without_a_still_are_unchanged():
    record, options = synthetic_record(kind="pair"), FigureOptions()
    plain = render_figure(record, options).html
    assert "attndocs-still" not in plain and '<p class="attndocs-fallback">' in plain
    with_still = render_figure(record, options, still=still.still_png(record, options)).html
    assert '<p class="attndocs-fallback">' not in with_still
    # Everything but the picture is the same fragment.
    assert re.sub(r'<img class="attndocs-still"[^>]*>\n', "", with_still) == plain.replace(
        '<p class="attndocs-fallback">' + re.search(r'<p class="attndocs-fallback">(.*?)</p>', plain).group(1) + "</p>\n", ""
    )
    with pytest.raises(ValueError, match="PNG"):
        render_figure(record, options, still=b"GIF89a")


# -- the picture --------------------------------------------------------------------------------
def test_palette_is_the_stylesheet_s():
    css = (Path(still.__file__).parent / "assets" / "attndocs.css").read_text()
    light, dark = (re.search(r"--attndocs-heads:([^;]+);", block).group(1) for block in css.split('[data-attndocs-theme="dark"]')[:2])
    assert [still._hex(c.strip()) for c in light.split(",")] == list(still.LIGHT.heads)
    assert [still._hex(c.strip()) for c in dark.split(",")] == list(still.DARK.heads)
    for name in ("fg", "bg", "muted", "grid", "accent", "neg"):
        values = re.findall(rf"--attndocs-{name}:\s*(#[0-9a-f]{{6}});", css)
        assert still._hex(values[0]) == getattr(still.LIGHT, name) and still._hex(values[1]) == getattr(still.DARK, name)


def test_strong_attention_is_drawn_in_the_head_colour():
    def picture(attention, **options):
        record = record_from_attention(attention, TOKENS)
        return pixels(still.still_png(record, FigureOptions.from_mapping({"view": "head", **options})))

    head = still.LIGHT.head(0)

    def inked(image):
        return near(image, head, 40)

    strong = picture(one_hot_attention([1, 2, 3, 4, 5, 6, 0]))
    flat = picture(tuple(np.full((1, 1, 7, 7), 1 / 7, dtype=np.float32) for _ in range(2)))
    # Seven full-strength lines in head 0's colour (plus its swatch); flat attention is faint.
    assert inked(strong) > inked(flat) + 7 * 100
    other = picture(one_hot_attention([6, 5, 4, 3, 2, 1, 0]))
    assert strong.shape == other.shape and (strong != other).any(axis=-1).sum() > 1000
    # A selected query token keeps only its own line.
    alone = picture(one_hot_attention([1, 2, 3, 4, 5, 6, 0]), token="cat")
    assert 100 < inked(alone) - inked(flat) < (inked(strong) - inked(flat)) / 2


def test_the_picture_is_the_opening_state():
    record = synthetic_record(kind="pair", n=13, layers=3, heads=4)

    def png(**options):
        return still.still_png(record, FigureOptions.from_mapping(options))

    first = png(view="head")
    assert png(view="head") == first  # deterministic bytes
    assert png(view="head", layer=2) != first
    assert png(view="head", heads=[1]) != first
    assert png(view="head", filter="ab") != first
    dark = pixels(png(view="head", display="dark"))
    assert np.abs(dark[2, 2] - still.DARK.bg).max() <= 3 and np.abs(pixels(first)[2, 2] - still.LIGHT.bg).max() <= 3
    views = {view: png(view=view) for view in ("head", "model", "matrix", "summary")}
    assert len(set(views.values())) == 4
    assert png(view="matrix", mode="mean") != views["matrix"] and png(view="summary", stat="distance") != views["summary"]
    for view, data in views.items():
        image = Image.open(io.BytesIO(data))
        assert image.width == still.WIDTH and 120 < image.height < 1100, view
        assert len(data) < 60_000, (view, len(data))


def test_matrix_cells_follow_the_weights():
    record = record_from_attention(one_hot_attention([1, 2, 3, 4, 5, 6, 0]), TOKENS)
    image = pixels(still.still_png(record, FigureOptions.from_mapping({"view": "matrix"})))
    cell = min(32.0, (still.WIDTH - 140) / 7)
    full = near(image, still.LIGHT.accent, 6)
    assert 7 * (cell - 4) ** 2 < full < 7 * (cell + 2) ** 2  # seven full cells (edges blend), the rest background
    # Every token is labelled: ink left of the cells and above them.
    assert near(image[:, :40], still.LIGHT.fg, 60) > 100


def test_long_texts_show_their_first_tokens():
    long = synthetic_record(kind="decoder", n=200, layers=2, heads=2)
    longer = synthetic_record(kind="decoder", n=300, layers=2, heads=2)
    for view in ("head", "matrix"):
        a = Image.open(io.BytesIO(still.still_png(long, FigureOptions.from_mapping({"view": view}))))
        b = Image.open(io.BytesIO(still.still_png(longer, FigureOptions.from_mapping({"view": view}))))
        assert a.size == b.size and a.height < 1100, view


def test_neuron_and_model_views_have_stills():
    record = synthetic_record(kind="encoder", n=9, layers=2, heads=3, qk=True)
    neuron = still.still_png(record, FigureOptions.from_mapping({"view": "neuron", "heads": [2]}))
    other_query = still.still_png(record, FigureOptions.from_mapping({"view": "neuron", "heads": [2], "token": "@3"}))
    assert neuron != other_query
    assert near(pixels(neuron), still.LIGHT.head(2), 40) > 50 and near(pixels(neuron), still.LIGHT.head(0), 10) == 0
    model = pixels(still.still_png(record, FigureOptions.from_mapping({"view": "model"})))
    for h in range(3):
        assert tinted(model, still.LIGHT.head(h)) > 300


def test_bad_options_are_the_figure_s_errors():
    from attndocs.errors import OptionError

    record = synthetic_record(kind="encoder", n=5, layers=2, heads=2)
    with pytest.raises(OptionError, match="option 'layer'"):
        still.still_png(record, FigureOptions.from_mapping({"layer": 9}))


# -- the executed notebook, exported with nbconvert ---------------------------------------------
@pytest.fixture(scope="module")
def exported(executed_notebook) -> Path:
    from nbconvert import HTMLExporter

    html, _ = HTMLExporter().from_filename(str(executed_notebook.path))
    path = executed_notebook.folder / "exported.html"
    path.write_text(html, encoding="utf-8")
    return path


def test_the_notebook_stores_html_png_and_text(executed_notebook):
    outputs = [o for cell in executed_notebook.notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert [o.output_type for o in outputs] == ["display_data"] * 3
    for output in outputs:
        assert list(output.data) == ["text/html", "image/png", "text/plain"]
        image = Image.open(io.BytesIO(base64.b64decode(output.data["image/png"])))
        assert image.width == still.WIDTH and image.height > 150
        assert "attndocs-still" in output.data["text/html"]
        assert len(base64.b64decode(output.data["image/png"])) < 60_000
    assert "head view of" in outputs[0].data["text/plain"] and "matrix of" in outputs[1].data["text/plain"]


def test_nbconvert_html_without_javascript_shows_the_pictures(exported, open_offline, executed_notebook):
    probe = open_offline(exported, javascript=False)
    stills = probe.page.locator("img.attndocs-still")
    assert stills.count() == 3
    for k in range(3):
        box = stills.nth(k).bounding_box()
        assert box and box["width"] > 300 and box["height"] > 150
        assert stills.nth(k).evaluate("img => img.complete && img.naturalWidth") == still.WIDTH
    probe.page.screenshot(path=str(executed_notebook.folder / "nbconvert-nojs.png"), full_page=True)


def test_nbconvert_html_with_javascript_draws_the_figures(exported, open_offline, executed_notebook):
    probe = open_offline(exported)
    probe.page.wait_for_function(
        """() => { const f = document.querySelectorAll('.attndocs-figure');
                   return f.length === 3 && Array.from(f).every(e => e.getAttribute('data-attndocs-status') === 'ready'); }""",
        timeout=20000,
    )
    assert probe.page.locator("img.attndocs-still").count() == 0  # the script replaced every picture
    drawn = probe.page.evaluate(
        """() => Array.from(document.querySelectorAll('.attndocs-figure .attndocs-body')).map(body => {
                 const c = body.querySelector('canvas');
                 if (!c) return 0;
                 const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                 let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
                 return n; })"""
    )
    assert len(drawn) == 3 and all(n > 500 for n in drawn), drawn
    assert probe.page_errors == []
    assert not [u for u in probe.blocked if "attndocs" in u]  # what nbconvert's template asks for, only
    probe.page.screenshot(path=str(executed_notebook.folder / "nbconvert-js.png"), full_page=True)


def test_patch_view_still_tints_the_image_by_attention(tiny_model_dir, tmp_path):
    import attndocs

    sys.path.insert(0, str(Path(__file__).parents[1]))
    from test_vision import draw_scene

    draw_scene(tmp_path / "scene.png")
    settings = {"cache_dir": str(tmp_path / "cache")}

    def png(**options):
        shown = attndocs.figure(image=str(tmp_path / "scene.png"), model=str(tiny_model_dir("vit")), view="patch",
                                settings=settings, html_action="return", **options)
        return shown.png

    cls, patch, rollout = png(), png(token="@5"), png(overlay="rollout")
    assert len({cls, patch, rollout}) == 3
    image = pixels(cls)
    # The picture itself (grass green, sky blue under the veil) fills a 448 px wide area.
    rows = np.nonzero((np.abs(image - still.LIGHT.bg).max(axis=-1) > 30).any(axis=1))[0]
    cols = np.nonzero((np.abs(image[40:-40] - still.LIGHT.bg).max(axis=-1) > 30).any(axis=0))[0]
    assert cols.max() - cols.min() + 1 >= still.PATCH_SIDE - 2 and rows.size > 300
    assert len(cls) < 60_000


def test_nbconvert_picks_the_picture_when_asked(executed_notebook, open_offline):
    """Exports that sanitize HTML escape the figure's markup; with image/png first they show the stills."""
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    config = Config()
    config.NbConvertBase.display_data_priority = ["image/png", "text/html", "text/plain"]
    html, _ = HTMLExporter(config=config, sanitize_html=True).from_filename(str(executed_notebook.path))
    assert "attndocs-figure" not in html and "&lt;figure" not in html
    path = executed_notebook.folder / "pictures.html"
    path.write_text(html, encoding="utf-8")
    probe = open_offline(path, javascript=False)
    images = probe.page.locator("img[src^='data:image/png']")
    assert images.count() == 3
    assert images.evaluate_all("all => all.map(img => img.naturalWidth)") == [still.WIDTH] * 3
