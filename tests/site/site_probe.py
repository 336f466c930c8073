"""Opening a whole built site in Chromium, on top of the browser fixtures of tests/browser.

:class:`SiteProbe` is the browser tests' PageProbe (console errors, page errors, dialogs
and any request that leaves the site fail the test) for a folder of pages instead of one
file: either opened from ``file://`` with every non-file request refused (the network is
off), or served from the made-up origin ``http://attndocs.test/`` with real content types
(what MkDocs' Material needs for instant navigation, which is off on file://).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from tests.browser.conftest import ORIGIN, PageProbe, close_probes

# Every figure on the page has a canvas with painted pixels, or else the figure's index.
UNDRAWN_JS = """
() => Array.from(document.querySelectorAll('.attndocs-figure[data-attndocs-view]')).map((fig, i) => {
  const painted = Array.from(fig.querySelectorAll('canvas')).some(c => {
    if (!c.width || !c.height) return false;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let k = 3; k < d.length; k += 4) if (d[k]) return true;
    return false;
  });
  return fig.getAttribute('data-attndocs-status') === 'ready' && painted ? null : i;
}).filter(i => i !== null)
"""


class SiteProbe(PageProbe):
    """One page of a built site; ``via`` is "file" (network off) or "http" (made-up origin)."""

    def __init__(self, browser: Any, root: Path, page: str, *, via: str = "file", mount: str = "", **kwargs: Any) -> None:
        """``mount`` ("project/docs/") serves the site under that sub-path of the origin."""
        self.root = root.resolve()
        self.via = via
        self.mount = mount
        super().__init__(browser, self.root / page, served={} if via == "http" else None, **kwargs)
        if via == "http":
            self.url = ORIGIN + mount + page

    def _local(self, url: str) -> Path | None:
        """The site file a URL names, or None when it is outside the site or missing."""
        parts = urlsplit(url)
        if self.via == "http":
            if not url.startswith(ORIGIN + self.mount):
                return None
            rel = unquote(parts.path).lstrip("/")[len(self.mount) :]
            path = (self.root / rel).resolve()
        else:
            if parts.scheme != "file":
                return None
            path = Path(unquote(parts.path)).resolve()
        if path.is_dir():
            path = path / "index.html"
        if self.root not in path.parents or not path.is_file():
            return None
        return path

    def _route(self, route: Any) -> None:
        path = self._local(route.request.url.split("#")[0])
        if path is None:
            self.blocked.append(route.request.url)
            route.abort()
        elif self.via == "http":
            self.fetched.append(path.relative_to(self.root).as_posix())
            route.fulfill(path=str(path))  # the content type follows the file's extension
        else:
            self.fetched.append(path.relative_to(self.root).as_posix())
            route.continue_()

    def undrawn(self) -> list[int]:
        """Indices of figures that are not ready or whose canvases are all blank."""
        return self.page.evaluate(UNDRAWN_JS)

    def figure_colours(self, index: int = 0) -> list[list[float]]:
        """Mean painted colour of each canvas of one figure (changes with the theme)."""
        return self.page.locator(".attndocs-figure[data-attndocs-view]").nth(index).locator("canvas").evaluate_all(
            """(nodes) => nodes.filter(c => c.width && c.height).map(c => {
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0, r = 0, g = 0, b = 0;
                for (let k = 0; k < d.length; k += 4) if (d[k + 3]) { n++; r += d[k]; g += d[k + 1]; b += d[k + 2]; }
                return n ? [r / n, g / n, b / n] : [0, 0, 0];
            })"""
        )


@pytest.fixture(scope="session")
def site_browser(chromium: Any) -> Any:
    """The suite's one Chromium (tests/conftest.py)."""
    return chromium


@pytest.fixture
def open_site(site_browser: Any) -> Iterator[Callable[..., SiteProbe]]:
    """``open_site(root, page, via="file"|"http", color_scheme=...)`` -> a ready SiteProbe.

    Import it and ``site_browser`` into a conftest to use it. When the test ends, anything
    a probe recorded fails it.
    """
    probes: list[SiteProbe] = []

    def open_(root: Path, page: str, *, via: str = "file", fragment: str = "", **kwargs: Any) -> SiteProbe:
        probe = SiteProbe(site_browser, root, page, via=via, **kwargs)
        probes.append(probe)
        return probe.goto(fragment)

    yield open_
    close_probes(probes, "the site misbehaved in the browser")
