"""The executed notebook in a MyST-NB Sphinx build: its text/html outputs, scripts included, draw offline."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONF = """
extensions = ["myst_nb"]
nb_execution_mode = "off"
project = "notebook host"
html_theme = "alabaster"
"""

INDEX = """# Notebook host

```{toctree}
notebook
```
"""


@pytest.fixture(scope="module")
def site(executed_notebook, tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("myst-nb")
    (src / "conf.py").write_text(CONF, encoding="utf-8")
    (src / "index.md").write_text(INDEX, encoding="utf-8")
    shutil.copy(executed_notebook.path, src / "notebook.ipynb")
    out = src / "_build" / "html"
    # In its own process: MyST-NB changes Sphinx's process-wide source-parser registry, and
    # the Sphinx builds of later tests in this process would then look for its parser.
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-E", "-b", "html", str(src), str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return out


def test_myst_nb_keeps_the_html_output_with_its_script(site):
    page = (site / "notebook.html").read_text(encoding="utf-8")
    # MyST-NB picks text/html over image/png (its default priority for HTML builders), and
    # places it unescaped: the figures, their stills and the script that replaces them.
    assert page.count('<figure class="attndocs-figure attndocs-view-') == 3
    assert len(re.findall(r'<img [^>]*class="attndocs-still"', page)) == 3
    assert page.count("window.attndocs") >= 3
    assert "&lt;figure" not in page


def test_myst_nb_page_draws_the_figures_offline(site, open_offline, executed_notebook):
    probe = open_offline(site / "notebook.html")
    painted = probe.wait_drawn(3)
    assert probe.page.locator("img.attndocs-still").count() == 0
    assert len(painted) >= 3 and sum(n > 500 for n in painted) >= 3, painted
    assert probe.page_errors == [] and probe.blocked == []
    probe.page.screenshot(path=str(executed_notebook.folder / "myst-nb.png"), full_page=True)
