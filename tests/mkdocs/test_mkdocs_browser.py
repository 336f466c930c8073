"""MkDocs sites in real Chromium: the mkdocs theme, and Material with its palette switch and instant navigation.

Pages are served from a made-up origin with nothing else reachable; any console error,
page error or request leaving the site fails the test (tests/site/site_probe.py).
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

MATERIAL_THEME = {
    "name": "material",
    "font": False,  # Material would fetch Google fonts: the tests run offline
    "features": ["navigation.instant"],
    "palette": [
        {"scheme": "default", "toggle": {"icon": "material/brightness-7", "name": "Switch to dark mode"}},
        {"scheme": "slate", "toggle": {"icon": "material/brightness-4", "name": "Switch to light mode"}},
    ],
}


ALL_VIEWS = "# All views\n\n" + "".join(
    f"```attention\nview: {view}\ncaption: The {view} view\n\nThe cat sat on the mat because it was tired.\n```\n\n"
    for view in ("head", "model", "neuron", "matrix", "summary")
)
SITE = {
    "index.md": "# Home\n\nNo figures here: [all views](views.md), [another page](more.md).\n",
    "views.md": ALL_VIEWS + "[Another page](more.md)\n",
    "more.md": "# More\n\n```attention\nview: model\n\nThe dog ran home.\n```\n\n[All views](views.md)\n",
}


def test_mkdocs_theme_every_figure_draws(mkdocs_project, open_site):
    project = mkdocs_project(SITE, theme={"name": "mkdocs", "highlightjs": False})
    project.build(strict=True)
    probe = open_site(project.site, "views/index.html", via="http")
    assert probe.figures.count() == 5
    assert probe.undrawn() == []


def _material(mkdocs_project):
    project = mkdocs_project(SITE, theme=MATERIAL_THEME, superfences=True, site_url="http://attndocs.test/")
    project.build(strict=True)
    return project


def test_material_palette_switch_rethemes_figures_live(mkdocs_project, open_site):
    project = _material(mkdocs_project)
    probe = open_site(project.site, "views/index.html", via="http")
    assert probe.undrawn() == []
    themes = "() => Array.from(document.querySelectorAll('.attndocs-figure')).map(f => f.getAttribute('data-attndocs-theme'))"
    assert probe.page.evaluate(themes) == ["light"] * 5
    light = probe.figure_colours(0)
    probe.page.click("label[for=__palette_1]")  # Material's toggle: to the dark ("slate") scheme
    probe.page.wait_for_function("() => document.body.getAttribute('data-md-color-scheme') === 'slate'")
    probe.page.wait_for_function(f"() => ({themes})().every(t => t === 'dark')")
    assert probe.figure_colours(0) != light
    assert probe.undrawn() == []


def test_material_instant_navigation_reinitialises_figures(mkdocs_project, open_site):
    project = _material(mkdocs_project)
    probe = open_site(project.site, "index.html", via="http")
    probe.page.click("article >> text=all views")
    probe.page.wait_for_selector(".attndocs-view-summary")
    probe.wait_ready()
    assert probe.undrawn() == []
    probe.page.click("article >> text=Another page")
    probe.page.wait_for_selector(".attndocs-view-model")
    probe.wait_ready()
    assert probe.figures.count() == 1 and probe.undrawn() == []
    # It really was instant navigation: one document load for the whole visit.
    assert probe.page.evaluate("() => performance.getEntriesByType('navigation').length") == 1
    assert probe.page.evaluate("() => attndocs.figures().filter(f => f.el.isConnected).length") == 1
    assert probe.problems() == []
