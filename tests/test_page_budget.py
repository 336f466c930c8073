"""The page budget: a figure that costs its page too much still builds, with a warning that says why.

Built through all three front-ends (Sphinx with reStructuredText and MyST, MkDocs, `attndocs
build`) with a tiny BERT, whose figures are a few kilobytes: a budget of a few hundred bytes
puts them over it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "reliability"))

from frontends import FRONTENDS, build_in_process, write_site  # noqa: E402
from hostile_corpus import Case  # noqa: E402

from attndocs.options import SiteSettings  # noqa: E402
from attndocs.render import RenderedFigure, over_budget  # noqa: E402

CASES = [Case("heavy", "The cat sat on the mat.", {"view": "head"})]


def _set_budget(site, budget: int) -> None:
    if site.frontend == "sphinx":
        conf = site.src / "conf.py"
        conf.write_text(conf.read_text() + f"attention_page_budget = {budget}\n")
    elif site.frontend == "mkdocs":
        config = site.src / "mkdocs.yml"
        config.write_text(config.read_text() + f"      page_budget: {budget}\n")
    else:
        config = site.src / "attndocs.toml"
        config.write_text(config.read_text() + f"page_budget = {budget}\n")


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_a_figure_over_the_budget_builds_with_a_warning_naming_its_line(frontend, tmp_path, tiny_model_dir: Callable[[str], Path]):
    site = write_site(frontend, tmp_path, CASES, model=str(tiny_model_dir("bert")))
    _set_budget(site, 300)
    build_in_process(site)
    assert site.failed is None, site.warnings
    budget = [w for w in site.warnings if "page budget" in w]
    assert len(budget) == len(site.placed), site.warnings  # Sphinx: one per syntax
    for placed in site.placed:
        line = [w for w in budget if f"{placed.page}:{placed.first}" in w]
        assert line, (placed.page, placed.first, budget)
        text = line[0]
        setting = "attention_page_budget" if frontend == "sphinx" else "page_budget"
        assert setting in text and "300 B" in text
        assert re.search(r"costs its page \d+(\.\d)? kB", text)
        assert "include-layers" in text and "include-heads" in text and "fewer tokens" in text
    # The figure is there all the same.
    pages = "".join(p.read_text(encoding="utf-8") for p in site.pages())
    assert pages.count('class="attndocs-data"') == len(site.placed)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_figures_within_the_default_budget_build_without_a_warning(frontend, tmp_path, tiny_model_dir):
    site = write_site(frontend, tmp_path, CASES, model=str(tiny_model_dir("bert")))
    build_in_process(site)
    assert site.failed is None and not [w for w in site.warnings if "budget" in w], site.warnings


def test_the_default_budget_and_no_limit():
    assert SiteSettings().page_budget == 5_000_000
    assert SiteSettings.from_mapping({"page-budget": "0"}).page_budget == 0
    figure = RenderedFigure(html="", id="x", view="head", page_bytes=10**9, payload_bytes=10**9, shape=(12, 12, 512),
                            first_bytes=300_000)
    assert over_budget(figure, 0) is None
    message = over_budget(figure, 5_000_000)
    assert message and "1.0 GB" in message and "5.0 MB" in message and "512" in message
    assert "embed: file, with which it costs 300.0 kB" in message  # the other layers go beside the page
    one_chunk = RenderedFigure(html="", id="x", view="head", page_bytes=10**7, payload_bytes=10**7, shape=(1, 1, 9),
                               first_bytes=10**7)
    text = over_budget(one_chunk, 5_000_000)
    assert text and "embed" not in text and "include-layers" not in text and "include-heads" not in text
    assert "include-layers (it ships 12 layers)" in message
