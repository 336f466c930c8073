"""Opening-state options in a real Sphinx build with a real model: drawn at first paint, or an error on their line."""

from __future__ import annotations

import re

import pytest
from site_helpers import warnings_of

pytestmark = pytest.mark.real


def test_options_open_the_figure_on_its_point_and_bad_ones_name_their_line(build, open_site):
    app = build("opening")
    found = []
    for line in warnings_of(app):
        match = re.fullmatch(r".*index\.rst:(\d+): WARNING: attention figure: (.*) \[attndocs\.options\]", line)
        assert match, f"unexpected warning: {line}"
        found.append((int(match.group(1)), match.group(2)))
    assert [line for line, _ in found] == [22, 28, 34]
    assert "option 'stat' does nothing in the head view (it applies to the summary view: set view: summary" in found[0][1]
    assert "option 'token' is 'tyred'" in found[1][1] and "closest: tired" in found[1][1]
    assert "option 'token' is 'the#3', but 'the' is shown only 2 times" in found[2][1]

    probe = open_site(app.outdir)
    figs = probe.figures
    # No interaction: the rollout figure shows rollout through layer 5 ...
    assert probe.fig_eval(0, "fig => [fig.state.mode, fig.state.layer]") == ["rollout", 5]
    assert "rollout through layer 5" in figs.nth(0).locator(".attndocs-minfo").inner_text()
    # ... and the head view holds "it" ([CLS] the animal didn ' t cross the street because it) locked.
    token = probe.fig_eval(1, "fig => [fig.state.token, fig.state.locked, fig.state.layer, fig.state.heads]")
    assert token == [{"side": "q", "index": 10}, True, 2, [3]]
    it = figs.nth(1).locator('.attndocs-token[data-side="q"][data-index="10"]')
    assert it.inner_text().strip() == "it" and "attndocs-locked" in (it.get_attribute("class") or "")
