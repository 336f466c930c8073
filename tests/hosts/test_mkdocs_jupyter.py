"""The executed notebook in a MkDocs site through mkdocs-jupyter: the figures draw offline."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

MKDOCS_YML = """
site_name: notebook host
theme:
  name: material
  font: false
plugins:
  - mkdocs-jupyter:
      execute: false
nav:
  - Home: index.md
  - Notebook: notebook.ipynb
"""


@pytest.fixture(scope="module")
def site(executed_notebook, tmp_path_factory) -> Path:
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    root = tmp_path_factory.mktemp("mkdocs-jupyter")
    (root / "docs").mkdir()
    (root / "docs" / "index.md").write_text("# Notebook host\n", encoding="utf-8")
    shutil.copy(executed_notebook.path, root / "docs" / "notebook.ipynb")
    (root / "mkdocs.yml").write_text(MKDOCS_YML, encoding="utf-8")
    config = load_config(str(root / "mkdocs.yml"))
    build(config)
    return Path(config["site_dir"])


def test_mkdocs_jupyter_keeps_the_html_output_with_its_script(site):
    page = (site / "notebook" / "index.html").read_text(encoding="utf-8")
    assert page.count('<figure class="attndocs-figure attndocs-view-') == 3
    assert len(re.findall(r'<img [^>]*class="attndocs-still"', page)) == 3
    assert page.count("window.attndocs") >= 3


def test_mkdocs_jupyter_page_draws_the_figures_offline(site, open_offline, executed_notebook):
    probe = open_offline(site / "notebook" / "index.html")
    painted = probe.wait_drawn(3)
    assert probe.page.locator("img.attndocs-still").count() == 0
    assert len(painted) >= 3 and sum(n > 500 for n in painted) >= 3, painted
    assert probe.page_errors == []
    probe.page.screenshot(path=str(executed_notebook.folder / "mkdocs-jupyter.png"), full_page=True)
