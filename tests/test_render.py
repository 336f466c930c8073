"""HTML rendering: figure markup, ids, byte-identical output, side files, pages, assets, CLI."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from attndocs import cli
from attndocs.errors import OptionError
from attndocs.options import FigureOptions
from attndocs.payload import build_payload
from attndocs.render import (
    asset_files,
    asset_tags,
    bundle_css,
    bundle_js,
    figure_payloads,
    render_figure,
    render_page,
    render_placeholder,
)

sys.path.insert(0, str(Path(__file__).parent / "browser"))
from synthetic import synthetic_record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_figure_markup_carries_header_body_caption_and_fallback():
    record = synthetic_record("encoder", n=9)
    fig = render_figure(record, FigureOptions(view="model", caption="All heads", alt="Six layers of lines", class_="wide bad\"class"))
    html = fig.html
    assert html.startswith("<figure class=\"attndocs-figure attndocs-view-model wide\"")
    assert 'data-attndocs-view="model"' in html
    # Data lives in attributes, not <script> blocks (hosts re-run or index script text).
    assert "<script" not in html
    (payload,) = figure_payloads(html)
    expected = build_payload(record, FigureOptions(view="model", caption="All heads", alt="Six layers of lines"))
    assert payload["header"] == expected.header and payload["body"] == expected.shipped[0] and payload["src"] is None
    assert payload["chunks"] == expected.shipped  # a small figure is one chunk
    assert '<figcaption class="attndocs-caption">All heads</figcaption>' in html
    assert 'aria-label="Six layers of lines"' in html
    assert "<noscript>" in html and "Strongest attention in layer 0" in html
    assert fig.files == {} and fig.view == "model"


def test_ids_come_from_the_name_or_the_content():
    record = synthetic_record("encoder", n=6)
    named = render_figure(record, FigureOptions(name="Fig: cat & mat"))
    # Always namespaced (the host page owns the bare names); links use the name.
    assert named.id == "attndocs-Fig:-cat-mat" and named.name == "Fig:-cat-mat"
    assert 'data-attndocs-name="Fig:-cat-mat"' in named.html
    first = render_figure(record, FigureOptions())
    again = render_figure(synthetic_record("encoder", n=6), FigureOptions())
    other = render_figure(synthetic_record("encoder", n=6, seed=1), FigureOptions())
    assert first.id == again.id and first.id.startswith("attndocs-") and first.name is None
    assert "data-attndocs-name" not in first.html
    assert other.id != first.id


def test_rendering_is_byte_identical():
    html = [render_figure(synthetic_record("pair", n=14, seed=2), FigureOptions(view="head", caption="c")).html for _ in range(2)]
    assert html[0] == html[1]
    pages = [render_page([h], "t") for h in html]
    assert pages[0] == pages[1]


def test_used_ids_keep_repeated_figures_distinct():
    used: set[str] = set()
    record = synthetic_record("encoder", n=6)
    ids = [render_figure(record, FigureOptions(name="same"), used_ids=used).id for _ in range(3)]
    assert ids == ["attndocs-same", "attndocs-same-2", "attndocs-same-3"]


def test_figure_ids_never_take_one_of_the_host_pages_ids():
    """A figure named like the host's own elements ("content" is the site builder's <main>) keeps out of their way."""
    record = synthetic_record("encoder", n=6)
    used: set[str] = set()
    for name in ("content", "main", "search", "constructor", "__proto__"):
        fig = render_figure(record, FigureOptions(name=name), used_ids=used)
        assert fig.id == f"attndocs-{name}" and fig.name == name
        assert f'id="{name}"' not in fig.html
    # Ids stay unique however names and content hashes meet on one page.
    unnamed = render_figure(record, FigureOptions(), used_ids=used)
    clash = render_figure(record, FigureOptions(name=unnamed.id.removeprefix("attndocs-")), used_ids=used)
    assert clash.id != unnamed.id and clash.id.startswith("attndocs-")
    placeholder = render_placeholder("broken", FigureOptions(name="content"), used_ids=used)
    assert 'id="attndocs-content-2"' in placeholder and 'data-attndocs-name="content-2"' in placeholder


def test_side_file_embedding():
    record = synthetic_record("encoder", n=6)
    fig = render_figure(record, FigureOptions(), embed="file", file_prefix="../_static/attndocs/")
    (name, data), = fig.files.items()
    payload = build_payload(record, FigureOptions())
    # A script named by its content that hands the chunk to attndocs.js: it loads from
    # file:// as well as from a server, and nothing in it needs escaping.
    assert name == f"attndocs-{payload.chunk_id(0)}.js" and re.fullmatch(r"attndocs-[0-9a-f]{16}\.js", name)
    assert data == f'attndocs.chunk("{payload.chunk_id(0)}","{payload.body_base64(0)}");\n'.encode()
    assert f'data-src="../_static/attndocs/{name}"' in fig.html
    (shipped,) = figure_payloads(fig.html)
    assert shipped["src"] == f"../_static/attndocs/{name}" and shipped["body"] is None and shipped["chunks"] is None
    with pytest.raises(OptionError):
        render_page([fig])
    with pytest.raises(OptionError):
        render_figure(record, FigureOptions(), embed="cdn")


def test_bad_layer_raises_an_option_error_for_the_front_end():
    with pytest.raises(OptionError, match="option 'layer' is 9, out of range"):
        render_figure(synthetic_record("encoder", n=5, layers=2), FigureOptions(layer=9))


def test_placeholder_is_escaped_and_marked_failed():
    html = render_placeholder("model '<x>' not found", FigureOptions(caption="<b>c</b>", name="p1"))
    assert 'class="attndocs-figure attndocs-failed"' in html and 'id="attndocs-p1"' in html
    assert "&lt;x&gt;" in html and "&lt;b&gt;c&lt;/b&gt;" in html
    assert "data-attndocs-view" not in html  # the scripts leave it alone


def test_page_inlines_assets_and_its_csp_allows_exactly_its_script():
    page = render_page([render_figure(synthetic_record("encoder", n=6), FigureOptions())], "A & B")
    assert "<title>A &amp; B</title>" in page
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert scripts == [bundle_js()]
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src &#39;sha256-{digest}&#39;" in page
    assert bundle_css() in page


def test_bundle_wraps_every_source_and_defines_one_global():
    js = bundle_js()
    sources = sorted(p.name for p in (ROOT / "attndocs/assets/js").glob("*.js"))
    positions = [js.index(f"/* ---- {name} ---- */") for name in sources]
    assert positions == sorted(positions)
    assert js.count('(function (attndocs) {\n"use strict";') == len(sources)
    assert re.search(r"</script|<!--", js, re.I) is None
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", js), "the scripts must not reference the network"


def test_node_parses_the_bundle(tmp_path):
    node = subprocess.run(["bash", "-lc", "command -v node"], capture_output=True, text=True).stdout.strip()
    if not node:
        pytest.fail("node is needed to syntax-check attndocs.js")
    path = tmp_path / "attndocs.js"
    path.write_text(bundle_js(), encoding="utf-8")
    result = subprocess.run([node, "--check", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_asset_files_are_content_hashed():
    files = asset_files()
    names = sorted(files, key=lambda n: n.rsplit(".", 1)[1])  # .css before .js
    assert re.fullmatch(r"attndocs\.[0-9a-f]{10}\.css", names[0])
    assert re.fullmatch(r"attndocs\.[0-9a-f]{10}\.js", names[1])
    for name, data in files.items():
        assert name.split(".")[1] == hashlib.sha256(data).hexdigest()[:10]
    tags = asset_tags("_static/")
    assert f'href="_static/{names[0]}"' in tags and f'src="_static/{names[1]}"' in tags


def test_render_and_payload_never_import_torch():
    code = (
        "import sys, attndocs.render, attndocs.payload, attndocs.notebook\n"
        "import attndocs.render as r\n"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_render_writes_a_standalone_page(tmp_path, monkeypatch):
    record = synthetic_record("pair", n=10)

    class Result:
        def __init__(self, rec):
            self.record = rec

        def describe(self):
            return "synthetic"

    calls = []

    class FakePipeline:
        def __init__(self, settings):
            calls.append(settings)

        def compute_one(self, options, qk=False):
            calls.append((options, qk))
            return Result(record)

    import attndocs.pipeline

    monkeypatch.setattr(attndocs.pipeline, "Pipeline", FakePipeline)
    out = tmp_path / "sub" / "page.html"
    code = cli.main(["render", "--view", "neuron", "--layer", "1", "--caption", "Pair", "--mode", "frozen",
                     "--cache-dir", str(tmp_path / "c"), "-o", str(out), "The cat sat."])
    assert code == 0
    settings, (options, qk) = calls
    assert settings.execution_mode == "frozen" and settings.cache_dir == str(tmp_path / "c")
    assert options.view == "neuron" and options.layer == 1 and options.text == "The cat sat." and qk is True
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<title>Pair</title>" in page
    assert 'data-attndocs-view="neuron"' in page


def test_cli_render_reports_option_errors_in_one_line(tmp_path, monkeypatch, capsys):
    class FakePipeline:
        def __init__(self, settings):
            pass

        def compute_one(self, options, qk=False):
            class Result:
                record = synthetic_record("encoder", n=5, layers=2)

            return Result()

    import attndocs.pipeline

    monkeypatch.setattr(attndocs.pipeline, "Pipeline", FakePipeline)
    code = cli.main(["render", "--layer", "7", "-o", str(tmp_path / "p.html"), "x"])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("attndocs: error: option 'layer' is 7, out of range") and "\n" not in err
    assert not (tmp_path / "p.html").exists()


def test_a_large_figure_ships_its_chunks_beside_the_page_or_inside_it(monkeypatch):
    import attndocs.payload as payload_module
    from attndocs.payload import decode_attention, decode_body

    monkeypatch.setattr(payload_module, "SINGLE_CHUNK", 0)
    record = synthetic_record("encoder", n=12, layers=3, heads=2)
    payload = build_payload(record, FigureOptions())
    # Side files: every chunk a script named by its hash; the page names chunk 0's.
    fig = render_figure(record, FigureOptions(), embed="file", file_prefix="s/")
    assert sorted(fig.files) == sorted(payload.chunk_file_name(i) for i in range(len(payload.shipped)))
    for i in range(len(payload.shipped)):
        assert fig.files[payload.chunk_file_name(i)] == payload.chunk_script(i)
    assert f'data-src="s/{payload.chunk_file_name(0)}"' in fig.html and "attndocs-chunk" not in fig.html
    # What the page costs before the first paint: its header and chunk 0, not the layers.
    assert fig.page_bytes == len(payload.header_json().encode()) + len(payload.chunk_script(0))
    assert fig.payload_bytes == len(payload.encoded) > 2 * len(payload.shipped[0])
    # Inline: every chunk in the page (decoded when needed), all of it page weight.
    inline = render_figure(record, FigureOptions())
    assert inline.html.count('class="attndocs-chunk"') == len(payload.shipped) - 1
    (found,) = figure_payloads(inline.html)
    assert found["chunks"] == payload.shipped and found["body"] == payload.shipped[0]
    body = decode_body(found["header"], found["chunks"])
    np.testing.assert_allclose(decode_attention(found["header"], body, "encoder"), record.sections["encoder"].attention, atol=1 / 255)
    assert inline.page_bytes > sum(len(s) for s in payload.shipped)


def test_a_named_figure_keeps_its_name_with_side_files():
    fig = render_figure(synthetic_record("encoder", n=6), FigureOptions(name="kept"), embed="file")
    assert fig.name == "kept" and 'data-attndocs-name="kept"' in fig.html


def test_auto_embed_keeps_small_figures_in_the_page_and_sends_large_ones_to_side_scripts():
    small = render_figure(synthetic_record("encoder", n=9), FigureOptions(), embed="auto")
    assert small.embed == "inline" and small.files == {} and "data-src" not in small.html
    # 6 layers x 12 heads x 300 x 300 one-byte weights: far past one 512 kB chunk.
    large = render_figure(synthetic_record("encoder", n=300), FigureOptions(), embed="auto")
    assert large.embed == "file" and len(large.files) > 1
    assert all(name.startswith("attndocs-") and name.endswith(".js") for name in large.files)
    # The page carries only the header and a reference to the first chunk.
    assert large.page_bytes < large.payload_bytes / 5
