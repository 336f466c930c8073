"""The example course builds three ways with the real bundled models, and every figure draws.

The builds use the course's own configuration and cache (example_site/.cache/attndocs,
shared with `make site`), so after the first run they read records instead of running
models. The outputs go to a temporary folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from attndocs.fence import find_blocks
from attndocs.site import build_site

pytestmark = [pytest.mark.real, pytest.mark.browser]

EXAMPLE = Path(__file__).parents[2] / "example_site"
PAGES = sorted((EXAMPLE / "docs").glob("*.md"))


def expected_figures(page: Path) -> int:
    return len(find_blocks(page.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    report = build_site(EXAMPLE, tmp_path_factory.mktemp("course") / "out")
    assert report.problems == [], [str(p) for p in report.problems]
    assert report.batch is not None and report.batch.failed == 0
    assert report.pages == len(PAGES) and len(report.batch.html) == sum(map(expected_figures, PAGES))
    return report.out


def test_attndocs_build_every_page_draws_from_disk_offline(course, open_site):
    for page in PAGES:
        name = "index.html" if page.stem == "index" else page.stem + ".html"
        probe = open_site(course, name, via="file")
        assert probe.figures.count() == expected_figures(page), name
        assert probe.undrawn() == [], name


def test_mkdocs_strict_build_with_material(tmp_path, open_site):
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    site = tmp_path / "mkdocs"
    config = load_config(str(EXAMPLE / "mkdocs.yml"), strict=True, site_dir=str(site), site_url="http://attndocs.test/")
    build(config)  # raises on any warning (strict)
    plugin = config.plugins["attndocs"]
    assert plugin.last.failed == 0 and len(plugin.last.html) == sum(map(expected_figures, PAGES))
    for page in PAGES:
        name = "index.html" if page.stem == "index" else f"{page.stem}/index.html"
        html = (site / name).read_text(encoding="utf-8")
        assert len(re.findall(r'class="attndocs-figure[^"]*" id=', html)) == expected_figures(page), name
    probe = open_site(site, "02-decoder/index.html", via="http")
    assert probe.undrawn() == []


def test_sphinx_edition_builds_with_warnings_as_errors(tmp_path, open_site):
    from sphinx.cmd.build import build_main

    out = tmp_path / "sphinx"
    assert build_main(["-W", "-q", "-b", "html", "-d", str(tmp_path / "doctrees"), str(EXAMPLE / "sphinx"), str(out)]) == 0
    for name, count in (("index.html", 1), ("encoder.html", 4), ("decoder.html", 3)):
        probe = open_site(out, name, via="file")
        assert probe.figures.count() == count and probe.undrawn() == [], name
