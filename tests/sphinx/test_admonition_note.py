"""A site that has not chosen attention_override_admonition hears about each bare `attention` block.

Adding the extension to a site with docutils' attention admonitions turns them into figures.
An info line (never a warning, so ``-W`` still passes) names each such block's file and
line and the setting that decides; choosing the setting either way silences it.
"""

from __future__ import annotations

import re

import pytest
from site_helpers import plain, warnings_of

NOTE = re.compile(r"^(?P<where>\S+):(?P<line>\d+): attndocs: .*no figure options.*attention_override_admonition = False", re.M)


def _notes(app) -> list[tuple[str, int]]:
    return [(m["where"], int(m["line"])) for m in NOTE.finditer(plain(app.status.getvalue()))]


def test_an_unchosen_setting_notes_each_bare_attention_block_and_w_stays_clean(build, tmp_path, monkeypatch):
    # Under CI=true Sphinx redraws its "reading sources" line with ESC[2K and CR, so a note logged
    # while reading shares that line; without colour each message has a line of its own.
    monkeypatch.setenv("NO_COLOR", "1")
    srcdir = tmp_path / "furo-like"
    srcdir.mkdir()
    (srcdir / "conf.py").write_text('extensions = ["attndocs.sphinx_ext", "myst_parser"]\nexclude_patterns = ["_build"]\n')
    (srcdir / "index.rst").write_text(
        "Admonitions\n===========\n\n.. toctree::\n\n   myst\n\n"
        ".. attention::\n\n   Mind the gap.\n\n"  # line 8: an admonition, by the look of it
        ".. attention::\n   :view: model\n\n   The cat sat.\n\n"  # has an option: a figure for sure
        ".. attention-figure::\n\n   The dog ran.\n"  # the alias never collides
    )
    (srcdir / "myst.md").write_text("# MyST\n\nText.\n\n```{attention}\nThis is an attention admonition.\n```\n")
    # -W: a warning would raise; execution mode off: what is noted does not depend on computing.
    app = build(srcdir=srcdir, warningiserror=True, confoverrides={"attention_execution_mode": "off"})
    assert warnings_of(app) == []
    notes = sorted(_notes(app))
    assert [(where.rsplit("/", 1)[-1], line) for where, line in notes] == [("index.rst", 8), ("myst.md", 5)]
    assert all(where.startswith(str(srcdir)) for where, _ in notes)


@pytest.mark.parametrize("choice", [True, False])
def test_choosing_the_setting_silences_the_note(build, choice):
    app = build("admonition", warningiserror=True, confoverrides={"attention_execution_mode": "off", "attention_override_admonition": choice})
    assert warnings_of(app) == []
    assert _notes(app) == []
    html = (app.outdir / "index.html").read_text()
    # The choice still decides: True keeps the bare block a figure, False the admonition.
    assert ('class="admonition attention"' in html) is (not choice)
