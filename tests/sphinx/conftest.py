"""Fixtures for the Sphinx extension's tests: sphinx.testing apps over tests/roots/test-*.

``build(root, builder="html", **kwargs)`` copies ``tests/roots/test-<root>`` to a fresh
folder (or reuses ``srcdir``), builds it with sphinx.testing's ``make_app`` and returns
the app. Every build shares one record cache per session (``attndocs_cache``), so a
figure computed by one test is a cache hit for the next; a test that needs misses passes
its own ``attention_cache_dir``.

``open_site(outdir, page)`` opens a built page in the session's headless Chromium
(``chromium`` and ``PageProbe`` from tests/browser/conftest.py) with the page's own files
allowed and every other request refused; console errors, page errors and requests that
leave the site fail the test.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from site_helpers import ROOTS
from sphinx.testing.fixtures import make_app, test_params  # noqa: F401 (fixtures used by name)
from sphinx.testing.util import SphinxTestApp

BROWSER_CONFTEST = Path(__file__).resolve().parent.parent / "browser" / "conftest.py"


def _load_browser_fixtures() -> Any:
    """tests/browser/conftest.py as a module: its Chromium fixture and PageProbe, reused as they are."""
    name = "attndocs_browser_fixtures"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BROWSER_CONFTEST)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return sys.modules[name]


_browser = _load_browser_fixtures()
PageProbe = _browser.PageProbe


# -- builds ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def attndocs_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One record cache for every Sphinx build of the session."""
    return tmp_path_factory.mktemp("attndocs-cache")


@pytest.fixture
def build(make_app: Callable[..., SphinxTestApp], tmp_path: Path, attndocs_cache: Path) -> Callable[..., SphinxTestApp]:  # noqa: F811
    counter = {"n": 0}
    previous: list[SphinxTestApp] = []

    def run(
        root: str | None = None,
        builder: str = "html",
        *,
        srcdir: Path | None = None,
        builddir: Path | None = None,
        confoverrides: dict[str, Any] | None = None,
        do_build: bool = True,
        **kwargs: Any,
    ) -> SphinxTestApp:
        counter["n"] += 1
        if srcdir is None:
            assert root is not None, "give a test root or a srcdir"
            srcdir = tmp_path / f"{root}-src"
            if not srcdir.exists():
                shutil.copytree(ROOTS / f"test-{root}", srcdir)
        if builddir is None:
            builddir = tmp_path / f"build-{counter['n']}-{builder}"
        overrides = {"attention_cache_dir": str(attndocs_cache), **(confoverrides or {})}
        # SphinxTestApp swaps alabaster for "basic" after the environment is pickled, so an
        # incremental rebuild would see a changed theme and re-read every page. As an
        # override the theme is left alone, as in a real build.
        if "html_theme" not in overrides and "html_theme" not in (srcdir / "conf.py").read_text():
            overrides["html_theme"] = "alabaster"
        # Sphinx registers nodes and directives in docutils' global tables; the previous
        # app's must go before the next app registers its own (make_app cleans up only
        # at the end of the test). Cleaning twice is harmless.
        while previous:
            previous.pop().cleanup()
        app = make_app(builder, srcdir=srcdir, builddir=builddir, confoverrides=overrides, **kwargs)
        previous.append(app)
        if do_build:
            app.build()
        return app

    return run


# -- the browser -----------------------------------------------------------------------------
class SitePageProbe(PageProbe):
    """A PageProbe that lets a built page load the site's own files (file:// under the site).

    Requests anywhere else are refused. They are recorded in ``external`` rather than in
    ``blocked``: a theme may try to fetch a font or an analytics script, which a site must
    survive offline; the tests then check that the figures still draw.
    """

    def __init__(self, browser: Any, path: Path, site: Path, **kwargs: Any) -> None:
        self.site_prefix = site.resolve().as_uri() + "/"
        self.external: list[str] = []
        super().__init__(browser, path, **kwargs)

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(self.site_prefix):
            route.continue_()
        else:
            # Refused, and its "Failed to load resource" console message is expected.
            self.external.append(url)
            self.expect_console_error("net::ERR_FAILED")
            route.abort()


@pytest.fixture
def open_site(chromium: Any) -> Iterator[Callable[..., SitePageProbe]]:
    probes: list[SitePageProbe] = []

    def open_(
        site: Path,
        page: str = "index.html",
        *,
        color_scheme: str = "light",
        expect_errors: tuple[str, ...] = (),
        init_script: str | None = None,
    ) -> SitePageProbe:
        """Open ``site/page``; ``init_script`` runs before the page's own scripts (e.g. to set localStorage)."""
        probe = SitePageProbe(chromium, site / page, site, color_scheme=color_scheme)
        for text in expect_errors:
            probe.expect_console_error(text)
        if init_script:
            probe.context.add_init_script(init_script)
        probes.append(probe)
        return probe.goto()

    yield open_
    problems = [p for probe in probes for p in probe.problems()]
    for probe in probes:
        probe.close()
    assert not problems, "the page misbehaved:\n" + "\n".join(problems)
