"""Browser test fixtures: one headless Chromium per session, the network off, pages of figures.

Every page a test opens goes through :class:`PageProbe`: each request other than the page
file itself is aborted and recorded, and console errors, uncaught page errors and dialogs
(``alert`` ...) are recorded too. When the test ends, any of these fails it, so each
browser test also proves "works offline, no errors, runs nothing injected".

Fixtures
--------
``chromium``          the session's playwright ``Browser`` (Debian ``chromium``, headless).
``synthetic_record``  ``synthetic_record(kind="encoder"|"pair"|"decoder"|"encoder-decoder",
                      n=13, layers=6, heads=12, *, qk=False, bias=False, seed=0, tokens=None,
                      target_tokens=None)`` -> AttentionRecord (see tests/browser/synthetic.py).
``figure_page``       ``figure_page(figures, *, title="test", csp=True, color_scheme="light",
                      body_attrs=None, html_attrs=None, viewport=None) -> PageProbe``.
                      ``figures`` is a list whose items are ``(record, options)`` (options: a
                      FigureOptions or a dict of option values; the view defaults to "head")
                      or ready HTML strings (placeholders). Builds a standalone page with
                      render_page, opens it from file:// and waits until every figure is
                      ready (or failed). ``csp=False`` drops the page's CSP so a test checks
                      escaping alone.
``open_html``         ``open_html(html, *, name="page.html", color_scheme="light", fragment="")
                      -> PageProbe`` for arbitrary HTML (e.g. a host theme page around
                      fragments); ``fragment`` ("#...") is appended to the URL.
                      ``served={name: bytes}`` opens the page from the made-up origin
                      http://attndocs.test/ instead, where the route answers those files
                      (side-file payloads) and refuses everything else.
``PageProbe(browser, path, local=True)`` also lets a file:// page read the files in its own
                      folder (side files beside it), with the browser offline;
                      ``origin="http://127.0.0.1:PORT/"`` opens ``origin + path.name`` from a
                      real server and lets requests to it through; ``hold=predicate(url)``
                      keeps matching requests waiting in ``.held`` until ``.release()``.

PageProbe
---------
``.page``                     the playwright Page
``.figures``                  locator of ``.attndocs-figure`` elements
``.canvas_stats(selector)``   ``{"painted": int, "hash": str, "width", "height", "mean": [r,g,b]}``
                              of the first canvas matching selector (painted = pixels with
                              alpha > 0; mean = mean colour of painted pixels)
``.all_canvas_stats(selector)`` list of the same for every match
``.fig_eval(index, js)``      evaluate ``js`` (a function of ``fig``) on the index-th figure's
                              fig object, e.g. ``probe.fig_eval(0, "fig => fig.state.layer")``
``.wait_ready()``             wait until every figure is ready, failed, or waiting to scroll into view
``.expect_console_error(text)`` declare an expected console message so it does not fail the test
``.fetched``                   names of served (or local, or origin) files the page requested
``.blocked`` / ``.console_errors`` / ``.page_errors`` / ``.dialogs``  what was recorded
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import synthetic_record as _synthetic_record  # noqa: E402

from attndocs.options import FigureOptions  # noqa: E402
from attndocs.record import AttentionRecord  # noqa: E402
from attndocs.render import RenderedFigure, render_figure, render_page  # noqa: E402

ORIGIN = "http://attndocs.test/"
from tests.chromium import CHROMIUM_ARGS  # noqa: E402,F401  (the chromium fixture lives in tests/conftest.py)

_STATS_JS = """
(canvas) => {
  const ctx = canvas.getContext('2d');
  const w = canvas.width, h = canvas.height;
  const data = ctx.getImageData(0, 0, w, h).data;
  let painted = 0, r = 0, g = 0, b = 0, hash = 2166136261;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] > 0) { painted++; r += data[i]; g += data[i + 1]; b += data[i + 2]; }
  }
  for (let i = 0; i < data.length; i += 7) { hash ^= data[i]; hash = Math.imul(hash, 16777619) >>> 0; }
  const n = Math.max(1, painted);
  return {painted, hash: hash.toString(16), width: w, height: h, mean: [r / n, g / n, b / n]};
}
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


class PageProbe:
    """A page opened from file:// with every other request refused and all errors recorded."""

    def __init__(
        self,
        browser: Any,
        path: Path,
        *,
        color_scheme: str = "light",
        viewport: dict | None = None,
        served: dict[str, bytes] | None = None,
        local: bool = False,
        origin: str | None = None,
        hold: Callable[[str], bool] | None = None,
    ) -> None:
        self.path = path
        self.served = dict(served or {})
        # With files to serve, the page comes from a made-up http origin answered by the route
        # below; nothing reaches a real network.
        self.url = ORIGIN + path.name if served is not None else path.resolve().as_uri()
        if origin is not None:
            self.url = origin + path.name
        if served is not None:
            self.served[path.name] = path.read_bytes()
        self.origin = origin
        # A file:// page may read its own folder (side files beside it), nothing else.
        self.local = path.resolve().parent.as_uri() + "/" if local else None
        self.hold = hold
        self.held: list[Any] = []
        self.fetched: list[str] = []
        self.blocked: list[str] = []
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.dialogs: list[str] = []
        self._expected: list[str] = []
        self.context = browser.new_context(
            color_scheme=color_scheme, viewport=viewport or {"width": 1200, "height": 900}, accept_downloads=True
        )
        self.context.route("**/*", self._route)
        if local:
            self.context.set_offline(True)  # file:// reads still work; any network request fails
        self.page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda err: self.page_errors.append(str(err)))
        self.page.on("dialog", self._dialog)

    def _route(self, route: Any) -> None:
        url = route.request.url.split("#")[0]
        for base in (self.local, self.origin):
            if base and url.startswith(base) and url != self.url:
                self.fetched.append(url[len(base):])
                if self.hold and self.hold(url):
                    self.held.append(route)
                else:
                    route.continue_()
                return
        if url == self.url and self.origin:
            route.continue_()
            return
        name = url[len(ORIGIN):] if url.startswith(ORIGIN) else None
        if name is not None and name in self.served:
            self.fetched.append(name)
            kind = {"html": "text/html", "js": "text/javascript"}.get(name.rsplit(".", 1)[-1], "application/octet-stream")
            route.fulfill(status=200, body=self.served[name], content_type=kind)
        elif url == self.url and name is None:
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def release(self) -> int:
        """Let every held request go on; returns how many there were."""
        held, self.held = self.held, []
        for route in held:
            route.continue_()
        return len(held)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def goto(self, fragment: str = "") -> PageProbe:
        self.page.goto(self.url + fragment)
        self.wait_ready()
        return self

    @property
    def figures(self) -> Any:
        return self.page.locator(".attndocs-figure")

    def wait_ready(self, timeout: float = 15000) -> None:
        self.page.wait_for_function(
            """() => Array.from(document.querySelectorAll('.attndocs-figure[data-attndocs-view]'))
                 .every(f => ['ready', 'error', 'waiting'].includes(f.getAttribute('data-attndocs-status')))""",
            timeout=timeout,
        )

    def wait_for_hash(self, *parts: str, timeout: float = 5000) -> str:
        """Wait until the URL hash holds every one of ``parts``; return it.

        Figures write the hash in idle time after a change is painted, so a test must wait
        for it rather than read it at once.
        """
        self.page.wait_for_function(
            "parts => parts.every(p => location.hash.includes(p))", arg=list(parts), timeout=timeout
        )
        return self.page.evaluate("location.hash")

    def canvas_stats(self, selector: str) -> dict[str, Any]:
        return self.page.locator(selector).first.evaluate(_STATS_JS)

    def all_canvas_stats(self, selector: str) -> list[dict[str, Any]]:
        return self.page.locator(selector).evaluate_all(f"(nodes) => nodes.map({_STATS_JS})")

    def fig_eval(self, index: int, js: str, arg: Any = None) -> Any:
        return self.page.evaluate(
            f"([i, arg]) => ({js})(attndocs.figure(document.querySelectorAll('.attndocs-figure')[i]), arg)",
            [index, arg],
        )

    def expect_console_error(self, text: str) -> None:
        self._expected.append(text)

    def problems(self) -> list[str]:
        errors = [e for e in self.console_errors if not any(x in e for x in self._expected)]
        out = [f"request left the page: {u}" for u in self.blocked]
        out += [f"console error: {e}" for e in errors]
        out += [f"page error: {e}" for e in self.page_errors]
        out += [f"dialog opened: {d}" for d in self.dialogs]
        return out

    def close(self) -> None:
        self.context.close()


def close_probes(probes: Sequence[PageProbe], what: str) -> None:
    """Close every probe, then fail the test with whatever they recorded (``what`` heads the message)."""
    problems = [p for probe in probes for p in probe.problems()]
    for probe in probes:
        probe.close()
    assert not problems, f"{what}:\n" + "\n".join(problems)


@pytest.fixture
def synthetic_record() -> Callable[..., AttentionRecord]:
    return _synthetic_record


def _options(value: FigureOptions | dict | None) -> FigureOptions:
    if isinstance(value, FigureOptions):
        return value
    return FigureOptions.from_mapping({"view": "head", **(value or {})})


def _attrs(values: dict[str, str] | None) -> str:
    import html

    return "".join(f' {k}="{html.escape(v)}"' for k, v in (values or {}).items())


@pytest.fixture
def open_html(chromium: Any, tmp_path: Path) -> Iterator[Callable[..., PageProbe]]:
    probes: list[PageProbe] = []

    def open_(
        html: str,
        *,
        name: str = "page.html",
        color_scheme: str = "light",
        viewport: dict | None = None,
        fragment: str = "",
        served: dict[str, bytes] | None = None,
    ) -> PageProbe:
        path = tmp_path / name
        path.write_text(html, encoding="utf-8")
        probe = PageProbe(chromium, path, color_scheme=color_scheme, viewport=viewport, served=served)
        probes.append(probe)
        return probe.goto(fragment)

    yield open_
    close_probes(probes, "the page misbehaved")


@pytest.fixture
def figure_page(open_html: Callable[..., PageProbe]) -> Callable[..., PageProbe]:
    counter = {"n": 0}

    def build(
        figures: Sequence[tuple[AttentionRecord, FigureOptions | dict | None] | str | RenderedFigure],
        *,
        title: str = "test",
        csp: bool = True,
        color_scheme: str = "light",
        body_attrs: dict[str, str] | None = None,
        html_attrs: dict[str, str] | None = None,
        viewport: dict | None = None,
    ) -> PageProbe:
        used: set[str] = set()
        parts: list[RenderedFigure | str] = []
        for item in figures:
            if isinstance(item, (str, RenderedFigure)):
                parts.append(item)
            else:
                record, options = item
                parts.append(render_figure(record, _options(options), used_ids=used))
        html = render_page(parts, title)
        if not csp:
            html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>\n?', "", html)
        if body_attrs:
            html = html.replace('<body class="attndocs-page">', f'<body class="attndocs-page"{_attrs(body_attrs)}>', 1)
        if html_attrs:
            html = re.sub(r"<html ([^>]*)>", lambda m: f"<html {m.group(1)}{_attrs(html_attrs)}>", html, count=1)
        counter["n"] += 1
        return open_html(html, name=f"page{counter['n']}.html", color_scheme=color_scheme, viewport=viewport)

    return build
