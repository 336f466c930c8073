"""`attndocs build` output in real Chromium: from file:// with the network off, and under a host's sub-path."""

from __future__ import annotations

import pytest

from attndocs.site import build_site

pytestmark = pytest.mark.browser

VIEWS = ("head", "model", "neuron", "matrix", "summary")


def pages(model) -> dict[str, str]:
    block = "```attention\nmodel: {model}\nview: {view}\n{extra}\nThe cat sat on the mat because it was tired.\n```\n\n"
    return {
        "index.md": "# Course\n\nRead [the views](part/views.md) or [the pair](part/pair.md).\n",
        "part/views.md": "# Every view\n\n" + "".join(block.format(model=model, view=v, extra="") for v in VIEWS),
        "part/pair.md": "# A pair\n\n" + block.format(model=model, view="model", extra="text-b: The dog lay on the rug.\n") + "[Home](../index.md)\n",
    }


@pytest.fixture
def site(markdown_site, tiny_bert, tmp_path):
    src = markdown_site(pages(tiny_bert))
    report = build_site(src, tmp_path / "out", overrides={"cache_dir": str(tmp_path / "cache")})
    assert report.problems == []
    return report.out


def test_every_page_works_from_file_urls_with_the_network_off(site, open_site):
    for page, count in (("index.html", 0), ("part/views.html", 5), ("part/pair.html", 1)):
        probe = open_site(site, page, via="file")
        assert probe.figures.count() == count
        assert probe.undrawn() == []
        assert not probe.blocked


def test_links_work_from_disk_and_the_theme_toggle_rethemes_figures(site, open_site):
    probe = open_site(site, "index.html", via="file", color_scheme="light")
    probe.page.click("main >> text=the pair")
    probe.page.wait_for_url("**/part/pair.html")
    probe.wait_ready()
    assert probe.undrawn() == []
    theme = "() => document.querySelector('.attndocs-figure').getAttribute('data-attndocs-theme')"
    assert probe.page.evaluate(theme) == "light"
    light = probe.figure_colours(0)
    probe.page.click(".site-theme")
    probe.page.wait_for_function(f"() => ({theme})() === 'dark'")
    assert probe.figure_colours(0) != light
    # The choice holds on the next page. The page saves it in localStorage, which Chromium
    # hands to its other pages asynchronously: a reader takes longer to follow a link than
    # that, a test does not, so first wait until another page of the site sees the choice.
    saved = "() => localStorage.getItem('attndocs-site-theme')"
    assert probe.page.evaluate(saved) == "dark", "the toggle did not save the choice"
    other = probe.page.context.new_page()
    other.goto(probe.page.url)
    other.wait_for_function(f"() => ({saved})() === 'dark'", timeout=15000)
    other.close()
    probe.page.get_by_role("link", name="Home", exact=True).first.click()
    probe.page.wait_for_url("**/index.html")
    assert probe.page.evaluate("() => document.documentElement.getAttribute('data-theme')") == "dark"


def test_dark_system_preference_is_followed_without_a_choice(site, open_site):
    probe = open_site(site, "part/views.html", via="file", color_scheme="dark")
    themes = probe.page.evaluate("() => Array.from(document.querySelectorAll('.attndocs-figure')).map(f => f.getAttribute('data-attndocs-theme'))")
    assert themes == ["dark"] * 5
    assert probe.page.evaluate("() => getComputedStyle(document.body).backgroundColor") == "rgb(13, 17, 23)"


def test_pages_work_under_any_sub_path_of_a_host(site, open_site):
    probe = open_site(site, "part/views.html", via="http", mount="someone/project/")
    assert probe.undrawn() == []
    assert any(name.startswith("_static/attndocs.") for name in probe.fetched)
