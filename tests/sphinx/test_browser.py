"""Built Sphinx pages in headless Chromium: every figure draws, in every theme, light and dark."""

from __future__ import annotations

import pytest
from site_helpers import warnings_of

pytestmark = [pytest.mark.real, pytest.mark.browser]

THEMES = ["alabaster", "furo", "sphinx_rtd_theme", "pydata_sphinx_theme", "sphinx_book_theme"]
# pydata-sphinx-theme (and sphinx-book-theme, built on it) logs this on a first visit with
# nothing in localStorage; it is the theme's own message, not a failure of the page.
THEME_CONSOLE_NOISE = {
    "pydata_sphinx_theme": ("Got invalid theme mode",),
    "sphinx_book_theme": ("Got invalid theme mode",),
}
VIEWS = ["head", "model", "neuron", "matrix", "summary"]

# For each figure: its view, status, theme, whether any canvas is painted, the luminance of
# its background, and whether it fits the column the theme gives it.
FIGURES_JS = """() => Array.from(document.querySelectorAll('.attndocs-figure')).map(f => {
  const painted = Array.from(f.querySelectorAll('canvas')).some(c => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 3; i < d.length; i += 4) if (d[i]) return true;
    return false;
  });
  const bg = getComputedStyle(f).backgroundColor.match(/[\\d.]+/g).map(Number);
  const column = f.parentElement.getBoundingClientRect().width;
  return {
    view: f.getAttribute('data-attndocs-view'),
    status: f.getAttribute('data-attndocs-status'),
    theme: f.getAttribute('data-attndocs-theme'),
    painted,
    luminance: 0.2126 * bg[0] + 0.7152 * bg[1] + 0.0722 * bg[2],
    fits: f.getBoundingClientRect().width <= column + 1 && f.scrollWidth <= f.clientWidth + 1,
  };
})"""


def figure_states(probe) -> list[dict]:
    return probe.page.evaluate(FIGURES_JS)


def wait_theme(probe, theme: str) -> None:
    probe.page.wait_for_function(
        "t => Array.from(document.querySelectorAll('.attndocs-figure')).every(f => f.getAttribute('data-attndocs-theme') === t)",
        arg=theme,
    )


@pytest.fixture(scope="module")
def theme_sites(tmp_path_factory, attndocs_cache):
    """test-themes built once per theme with -W, as sphinx-build does (build_main)."""
    from site_helpers import ROOTS
    from sphinx.cmd.build import build_main

    root = tmp_path_factory.mktemp("themes")
    sites = {}
    for theme in THEMES:
        out = root / theme
        status = build_main(
            ["-W", "-q", "-b", "html", "-D", f"html_theme={theme}", "-D", f"attention_cache_dir={attndocs_cache}",
             "-d", str(root / f"{theme}.doctrees"), str(ROOTS / "test-themes"), str(out)]
        )
        assert status == 0, f"{theme}: the build failed"
        sites[theme] = out
    return sites


def test_furo_dark_mode_draws_every_figure_without_errors(build, open_site):
    app = build("themes", confoverrides={"html_theme": "furo"})
    assert warnings_of(app) == []
    # Furo keeps the reader's choice in localStorage and sets body[data-theme] from it.
    probe = open_site(app.outdir, init_script="localStorage.setItem('theme', 'dark')")
    assert probe.page.evaluate("() => document.body.dataset.theme") == "dark"
    states = figure_states(probe)
    assert [s["view"] for s in states] == VIEWS
    for state in states:
        assert state["status"] == "ready", state
        assert state["painted"], f"the {state['view']} view drew nothing"
        assert state["theme"] == "dark" and state["luminance"] < 60, state
        assert state["fits"], state
    # The theme switch re-themes the figures live.
    probe.page.evaluate("() => { document.body.dataset.theme = 'light'; }")
    wait_theme(probe, "light")
    assert all(s["luminance"] > 200 for s in figure_states(probe))


@pytest.mark.parametrize("theme", THEMES)
def test_every_theme_shows_working_figures_offline(theme_sites, open_site, theme):
    probe = open_site(theme_sites[theme], expect_errors=THEME_CONSOLE_NOISE.get(theme, ()))
    states = figure_states(probe)
    assert [s["view"] for s in states] == VIEWS
    for state in states:
        assert state["status"] == "ready" and state["painted"], state
        assert state["theme"] == "light" and state["luminance"] > 200, state
        assert state["fits"], state
    assert probe.external == [], f"{theme} tried to fetch: {probe.external}"


@pytest.mark.parametrize(
    ("theme", "switch"),
    [
        ("furo", "t => { document.body.dataset.theme = t; }"),
        ("pydata_sphinx_theme", "t => { document.documentElement.dataset.theme = t; }"),
        ("sphinx_book_theme", "t => { document.documentElement.dataset.theme = t; }"),
    ],
)
def test_themes_with_a_dark_mode_switch_the_figures_live(theme_sites, open_site, theme, switch):
    probe = open_site(theme_sites[theme], expect_errors=THEME_CONSOLE_NOISE.get(theme, ()))
    probe.page.evaluate(switch, "dark")
    wait_theme(probe, "dark")
    assert all(s["luminance"] < 60 and s["painted"] for s in figure_states(probe))
    probe.page.evaluate(switch, "light")
    wait_theme(probe, "light")
    assert all(s["luminance"] > 200 for s in figure_states(probe))
