"""The project's own documentation builds with -W, with its tables generated from the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from site_helpers import plain
from sphinx.cmd.build import build_main

from attndocs.options import figure_fields, option_name, settings_fields
from attndocs.render import figure_payloads

pytestmark = pytest.mark.real

DOCS = Path(__file__).resolve().parent.parent.parent / "docs"


def test_the_docs_build_with_W_and_show_live_figures(tmp_path, attndocs_cache, capsys):
    out = tmp_path / "html"
    status = build_main(
        ["-W", "-q", "-b", "html", "-D", f"attention_cache_dir={attndocs_cache}", "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)]
    )
    assert status == 0, plain(capsys.readouterr().err)
    options = (out / "options.html").read_text()
    for f in figure_fields():
        assert f"<code class=\"docutils literal notranslate\"><span class=\"pre\">{option_name(f)}</span></code>" in options, option_name(f)
    settings = (out / "settings.html").read_text()
    for f in settings_fields():
        assert f"attention_{f.name}" in settings
    index = (out / "index.html").read_text()
    assert len(re.findall(r'<figure class="attndocs-figure attndocs-view-head"', index)) == 1
    pages_with_figures = [p.name for p in sorted(out.glob("*.html")) if figure_payloads(p.read_text())]
    assert pages_with_figures == ["comparisons.html", "head-roles.html", "index.html", "quickstart.html", "syntax.html"]
    assert "Neuron adapters" in (out / "developer" / "neuron-adapters.html").read_text()
    assert "<code class=\"docutils literal notranslate\"><span class=\"pre\">&lt;section&gt;.attention</span></code>" in (out / "record-format.html").read_text()
