"""Every view fits its column in MkDocs' own theme and in Material, from a phone to a wide
screen, and a link from another page lands on its figure, with and without Material's
instant navigation.

One site per theme (a 12-head tiny BERT, one figure of each view); see
tests/browser/fit.py for what "fits" means. Pages are served from the made-up origin
(instant navigation needs http), with nothing else reachable.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))

from fit import landing_error, links_page, problems_at_widths, views_page, wide_bert  # noqa: E402
from site_probe import SiteProbe  # noqa: E402

pytestmark = pytest.mark.browser

MATERIAL = {"name": "material", "font": False}
THEMES = {
    "mkdocs": {"name": "mkdocs", "highlightjs": False},
    "material": MATERIAL,
    "instant": {**MATERIAL, "features": ["navigation.instant"]},
}


@pytest.fixture(scope="module")
def fit_sites(tmp_path_factory, tiny_model_dir):
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    root = tmp_path_factory.mktemp("mkdocs-fit")
    model = wide_bert(tiny_model_dir("bert"), root / "wide-bert")
    sites = {}
    for name, theme in THEMES.items():
        project = root / name
        (project / "docs").mkdir(parents=True)
        (project / "docs" / "index.md").write_text(links_page("views.md"), encoding="utf-8")
        (project / "docs" / "views.md").write_text(views_page("mkdocs"), encoding="utf-8")
        config = {
            "site_name": "Fit", "theme": theme, "site_url": "http://attndocs.test/",
            "markdown_extensions": ["pymdownx.superfences"],
            "plugins": ["search", {"attndocs": {"default_model": str(model), "cache_dir": str(root / "cache")}}],
        }
        (project / "mkdocs.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        logging.getLogger("mkdocs").setLevel(logging.WARNING)
        build(load_config(str(project / "mkdocs.yml")))
        sites[name] = project / "site"
    return sites


def _probe(chromium, site: Path, page: str, width: int) -> SiteProbe:
    return SiteProbe(chromium, site, page, via="http", viewport={"width": width, "height": 800})


@pytest.mark.parametrize("theme", ["mkdocs", "material"])
def test_every_view_fits_the_theme_column_at_every_width(fit_sites, chromium, theme):
    problems = problems_at_widths(lambda page, width: _probe(chromium, fit_sites[theme], page, width), "views/index.html")
    assert not problems, f"{theme}:\n" + "\n".join(problems)


@pytest.mark.parametrize("theme", list(THEMES))
def test_a_link_from_another_page_lands_on_the_figure(fit_sites, chromium, theme):
    probe = _probe(chromium, fit_sites[theme], "index.html", 390)
    try:
        probe.goto()
        loads = []
        probe.page.on("load", lambda: loads.append(1))
        probe.page.click("a[href$='#fig-summary']")
        probe.page.wait_for_url("**/views/#fig-summary")
        assert landing_error(probe.page, "fig-summary") <= 10
        # Material's instant navigation really swapped the page in (no new document).
        assert (loads == []) == (theme == "instant"), loads
        assert not probe.problems(), probe.problems()
    finally:
        probe.close()
