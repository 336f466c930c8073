"""Every view fits its column in each Sphinx theme, from a phone to a wide screen, and a
link from another page lands on its figure.

One site per theme (a 12-head tiny BERT, one figure of each view), one page load per theme
and width; see tests/browser/fit.py for what "fits" means.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "site"))

from fit import landing_error, links_page, problems_at_widths, views_page, wide_bert  # noqa: E402
from site_probe import SiteProbe  # noqa: E402

pytestmark = pytest.mark.browser

THEMES = ["alabaster", "furo", "sphinx_rtd_theme", "pydata_sphinx_theme", "sphinx_book_theme"]


@pytest.fixture(scope="module")
def fit_sites(tmp_path_factory, tiny_model_dir, attndocs_cache):
    from sphinx.cmd.build import build_main

    root = tmp_path_factory.mktemp("theme-fit")
    model = wide_bert(tiny_model_dir("bert"), root / "wide-bert")
    src = root / "src"
    src.mkdir()
    (src / "conf.py").write_text(
        'extensions = ["myst_parser", "attndocs.sphinx_ext"]\nproject = "Fit"\n'
        f"attention_default_model = {str(model)!r}\n",
        encoding="utf-8",
    )
    (src / "index.md").write_text(links_page("views.md") + "\n```{toctree}\nviews\n```\n", encoding="utf-8")
    (src / "views.md").write_text(views_page("myst"), encoding="utf-8")
    sites = {}
    for theme in THEMES:
        out = root / theme
        status = build_main(
            ["-W", "-q", "-b", "html", "-D", f"html_theme={theme}", "-D", f"attention_cache_dir={attndocs_cache}",
             "-d", str(root / f"{theme}.doctrees"), str(src), str(out)]
        )
        assert status == 0, f"{theme}: the build failed"
        sites[theme] = out
    return sites


def _probe(chromium, site: Path, page: str, width: int) -> SiteProbe:
    """A page of ``site`` served from the made-up origin, nothing else reachable."""
    probe = SiteProbe(chromium, site, page, via="http", viewport={"width": width, "height": 800})
    probe.expect_console_error("Got invalid theme mode")  # pydata's own message on a first visit
    return probe


@pytest.mark.parametrize("theme", THEMES)
def test_every_view_fits_the_theme_column_at_every_width(fit_sites, chromium, theme):
    problems = problems_at_widths(lambda page, width: _probe(chromium, fit_sites[theme], page, width), "views.html")
    assert not problems, f"{theme}:\n" + "\n".join(problems)


@pytest.mark.parametrize("theme", ["alabaster", "furo", "pydata_sphinx_theme"])
def test_a_link_from_another_page_lands_on_the_figure(fit_sites, chromium, theme):
    probe = _probe(chromium, fit_sites[theme], "index.html", 390)
    try:
        probe.goto()
        probe.page.click("a[href$='#fig-summary']")
        probe.page.wait_for_url("**/views.html#fig-summary")
        assert landing_error(probe.page, "fig-summary") <= 10
        assert not probe.problems(), probe.problems()
    finally:
        probe.close()
