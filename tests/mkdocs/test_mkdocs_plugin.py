"""The MkDocs plugin in real `mkdocs build` runs: placement, assets, errors, strict, serve-style rebuilds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from posixpath import normpath

import pytest
from mkdocs.exceptions import Abort

from attndocs.models import load as model_load

FIGURE = "```attention\nview: {view}\n\n{text}\n```\n"
PAGES = {
    "index.md": "# Home\n\nNo figures on this page. See [figures](guide/figures.md).\n",
    "guide/figures.md": (
        "# Figures\n\nA head view:\n\n"
        + FIGURE.format(view="head", text="The cat sat on the mat.")
        + '\n!!! note "Inside an admonition"\n\n    ```attention\n    view: model\n\n    The dog ran.\n    ```\n'
        + "\nAfter the figures.\n"
    ),
}


def _figures(html: str) -> list[str]:
    return re.findall(r'<figure class="attndocs-figure[^"]*" id="([^"]+)" data-attndocs-view="([^"]+)"', html)


def _asset_refs(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="([^"]*attndocs\.[0-9a-f]+\.(?:js|css))"', html)


@pytest.mark.parametrize("superfences", [True, False], ids=["superfences", "fenced_code"])
@pytest.mark.parametrize("directory_urls", [True, False], ids=["directory-urls", "file-urls"])
def test_blocks_become_figures_and_only_figure_pages_load_the_assets(mkdocs_project, superfences, directory_urls):
    project = mkdocs_project(PAGES, superfences=superfences, use_directory_urls=directory_urls)
    plugin = project.build(strict=True)
    page = "guide/figures/index.html" if directory_urls else "guide/figures.html"
    html = project.html(page)
    assert [view for _, view in _figures(html)] == ["head", "model"]
    assert "```" not in html and "attndocsslot" not in html
    assert html.index("A head view") < html.index('data-attndocs-view="head"') < html.index("After the figures")
    # The admonition's figure stays inside the admonition.
    admonition = html[html.index('class="admonition note"') :]
    assert admonition.index('data-attndocs-view="model"') < admonition.index("</div>")
    refs = _asset_refs(html)
    assert sorted(r.rsplit(".", 1)[1] for r in refs) == ["css", "js"]
    for ref in refs:
        assert not ref.startswith("/"), "asset URLs are relative, so the site works under any sub-path"
        assert (project.site / normpath(str(Path(page).parent / ref))).is_file(), ref
    assert _asset_refs(project.html("index.html")) == [] and "attndocs" not in project.html("index.html")
    assert plugin.last.computed == 2 and plugin.last.failed == 0


def test_next_to_materials_mermaid_fence(mkdocs_project, tiny_bert):
    project = mkdocs_project({"index.md": "# M\n\n```mermaid\ngraph LR; A-->B\n```\n\n" + FIGURE.format(view="head", text="Hi there.")})
    project.write_config(
        f"""site_name: M
markdown_extensions:
  - pymdownx.superfences:
      custom_fences:
        - name: mermaid
          class: mermaid
          format: !!python/name:pymdownx.superfences.fence_code_format
plugins:
  - attndocs:
      default_model: {tiny_bert}
"""
    )
    project.build(strict=True)
    html = project.html("index.html")
    assert '<pre class="mermaid"><code>graph LR; A--&gt;B</code></pre>' in html
    assert [v for _, v in _figures(html)] == ["head"]


def test_a_bad_block_is_a_warning_with_page_and_line_and_fails_strict(mkdocs_project):
    page = "# Bad\n\nText.\n\n```attention\nview: model\nlayer: 99\n\nThe cat.\n```\n\n```attention\nview: sideways\n\nThe cat.\n```\n"
    project = mkdocs_project({"index.md": "# Home\n", "bad.md": page})
    plugin = project.build()
    warnings = project.warnings()
    assert any(w.startswith("attndocs: bad.md:5: ") and "layer" in w for w in warnings), warnings
    assert any(w.startswith("attndocs: bad.md:13: ") and "sideways" in w for w in warnings), warnings
    html = project.html("bad/index.html")
    assert html.count('class="attndocs-placeholder"') == 2 and "Text." in html
    assert plugin.last.failed == 2
    with pytest.raises(Abort, match="2 warnings in strict mode"):
        project.build(strict=True)


def test_settings_are_validated_by_mkdocs(mkdocs_project, caplog):
    project = mkdocs_project({"index.md": "# Home\n"}, plugin={"execution_mode": "sometimes"})
    with pytest.raises(Abort):
        project.build()
    [error] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "'attndocs' option 'execution_mode': value 'sometimes'" in error
    assert "'sometimes'" in error and "auto, force, frozen, off" in error


def test_the_cache_may_not_live_in_docs_dir(mkdocs_project, caplog):
    project = mkdocs_project({"index.md": "# Home\n"}, plugin={"cache_dir": "docs/cache"})
    with pytest.raises(Abort):
        project.build()
    assert any("is inside docs_dir" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    assert not (project.docs / "cache").exists()


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_nothing_is_written_into_docs_dir_and_the_cache_sits_beside_mkdocs_yml(mkdocs_project):
    project = mkdocs_project(PAGES, superfences=True)
    before = _snapshot(project.docs)
    project.build()
    assert _snapshot(project.docs) == before
    assert list((project.root / ".cache" / "attndocs").rglob("*.safetensors")), "the cache is beside mkdocs.yml"


def test_serve_style_rebuilds_reuse_the_loaded_model_and_the_cache(mkdocs_project, monkeypatch):
    loads = []
    real_load = model_load._load
    monkeypatch.setattr(model_load, "_LOADED", {})
    monkeypatch.setattr(model_load, "_load", lambda ref, *rest: loads.append(ref.model_id) or real_load(ref, *rest))
    project = mkdocs_project(PAGES)
    first = project.build()
    assert (first.last.computed, len(loads)) == (2, 1)
    html = project.html("guide/figures/index.html")

    # An edit, as `mkdocs serve` sees it: one figure changes, the other does not.
    path = project.docs / "guide" / "figures.md"
    path.write_text(path.read_text().replace("The dog ran.", "The dog ran home."))
    second = project.build()
    assert second is first, "MkDocs keeps one plugin object across rebuilds (on_startup)"
    assert (second.last.computed, second.last.cached, len(loads)) == (1, 1, 1)

    path.write_text(path.read_text().replace("The dog ran home.", "The dog ran."))
    third = project.build()
    assert (third.last.computed, third.last.cached, len(loads)) == (0, 2, 1)
    assert project.html("guide/figures/index.html") == html, "a rebuild of unchanged pages is byte-identical"


def test_execution_mode_off_shows_placeholders_without_warnings(mkdocs_project):
    project = mkdocs_project(PAGES, plugin={"execution_mode": "off"})
    plugin = project.build(strict=True)
    html = project.html("guide/figures/index.html")
    assert html.count("attndocs-placeholder") == 2 and "execution mode is off" in html
    assert plugin.last.off == 2 and not (project.root / ".cache").exists()


def test_raise_on_error_fails_the_build(mkdocs_project):
    project = mkdocs_project({"index.md": "# X\n\n```attention\nmodel: ./no/such/model\n\nx\n```\n"}, plugin={"raise_on_error": True})
    with pytest.raises(Abort):
        project.build()
    assert any("index.md:3:" in w and "does not exist" in w for w in project.warnings())


def test_side_file_payloads_are_written_where_the_page_looks(mkdocs_project):
    project = mkdocs_project(PAGES, plugin={"embed": "file"})
    project.build(strict=True)
    html = project.html("guide/figures/index.html")
    sources = re.findall(r'data-src="([^"]+)"', html)
    assert len(sources) == 2
    for src in sources:
        assert (project.site / normpath(f"guide/figures/{src}")).is_file()


FROZEN_BUILD = """
import logging, sys
sys.modules["torch"] = None          # any import of torch now fails
sys.modules["transformers"] = None
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
from mkdocs.commands.build import build
from mkdocs.config import load_config
build(load_config("mkdocs.yml", strict=True))
assert "torch" not in [m for m in sys.modules if sys.modules[m] is not None]
"""


def test_a_frozen_build_needs_no_torch(mkdocs_project, tiny_bert):
    project = mkdocs_project(PAGES)
    project.write_config(
        project.root.joinpath("mkdocs.yml").read_text().replace(
            "default_model:", "execution_mode: !ENV [ATTNDOCS_EXECUTION_MODE, auto]\n    default_model:"
        )
    )
    project.build()  # fills the cache, with torch
    env = {**os.environ, "ATTNDOCS_EXECUTION_MODE": "frozen", "PYTHONPATH": str(Path(__file__).parents[2])}
    done = subprocess.run([sys.executable, "-c", FROZEN_BUILD], cwd=project.root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert [v for _, v in _figures(project.html("guide/figures/index.html"))] == ["head", "model"]

    # A figure nobody computed is an error in frozen mode, named by page and line.
    (project.docs / "new.md").write_text("# New\n\n" + FIGURE.format(view="head", text="Never computed."))
    done = subprocess.run([sys.executable, "-c", FROZEN_BUILD], cwd=project.root, env=env, capture_output=True, text=True)
    assert done.returncode != 0
    assert "new.md:3:" in done.stderr and "frozen" in done.stderr


def test_search_indexes_captions_not_figure_markup(mkdocs_project):
    page = "# Searchable\n\nSome prose.\n\n```attention\nview: head\ncaption: A caption worth finding\n\nThe cat sat on the mat.\n```\n"
    project = mkdocs_project({"index.md": page})
    project.build(strict=True)
    index = (project.site / "search" / "search_index.json").read_text(encoding="utf-8")
    assert "A caption worth finding" in index and "Some prose." in index
    assert "attndocs.payload" not in index and "attndocsslot" not in index
    assert "needs JavaScript" not in index, "the figure's fallback text is not indexed as prose"
    assert len(_figures(project.html("index.html"))) == 1
