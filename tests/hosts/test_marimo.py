"""marimo: a notebook showing attndocs.widget(...), exported with `marimo export html`, draws in Chromium offline.

The exported page loads marimo's own frontend from cdn.jsdelivr.net
(``@marimo-team/frontend@<version>/dist/...``); the same files ship in the marimo wheel
(``marimo/_static``), so the test answers those requests from the installed wheel and
refuses every other one. The attndocs widget itself needs nothing more: its module and its
payload are in the exported page. marimo mounts widgets in a shadow root, which is what
this checks.
"""

from __future__ import annotations

import mimetypes
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import marimo
import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).parents[2]
STATIC = Path(marimo.__file__).parent / "_static"
CDN = f"https://cdn.jsdelivr.net/npm/@marimo-team/frontend@{marimo.__version__}/dist/"
PAGE = "http://marimo.test/notebook.html"

APP = '''import marimo

app = marimo.App()


@app.cell
def _():
    import sys

    sys.path[:0] = [{root!r}, {browser!r}]
    import attndocs
    from synthetic import synthetic_record

    widget = attndocs.widget(record=synthetic_record("pair", n=9, layers=3, heads=2), view="head", caption="From marimo")
    widget
    return


if __name__ == "__main__":
    app.run()
'''


def export(tmp_path: Path, theme: str) -> bytes:
    """The notebook exported by ``marimo export html``, with marimo's display theme set to ``theme``."""
    app = tmp_path / "app.py"
    app.write_text(APP.format(root=str(ROOT), browser=str(ROOT / "tests" / "browser")), encoding="utf-8")
    config = tmp_path / "config" / "marimo"
    config.mkdir(parents=True)
    (config / "marimo.toml").write_text(f'[display]\ntheme = "{theme}"\n', encoding="utf-8")
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    out = tmp_path / "notebook.html"
    done = subprocess.run(
        [sys.executable, "-m", "marimo", "export", "html", str(app), "-o", str(out)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return out.read_bytes()


class ExportedPage:
    """The exported page with marimo's CDN answered from the wheel and every other request refused."""

    def __init__(self, browser: Any, html: bytes, color_scheme: str) -> None:
        self.html = html
        self.from_wheel: list[str] = []
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(color_scheme=color_scheme, viewport={"width": 1280, "height": 900})
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(PAGE)
        self.figure = self.page.locator(".attndocs-figure")  # playwright's CSS locators enter shadow roots
        self.page.locator(".attndocs-figure[data-attndocs-status=ready]").wait_for(timeout=30000)

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url == PAGE:
            route.fulfill(status=200, body=self.html, content_type="text/html")
            return
        if url.startswith(CDN):
            path = STATIC / url[len(CDN):].split("?")[0].split("#")[0]
            if path.is_file() and STATIC in path.resolve().parents:
                self.from_wheel.append(path.name)
                kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                route.fulfill(status=200, body=path.read_bytes(), content_type=kind)
                return
        self.blocked.append(url)
        route.abort()


@pytest.fixture
def exported(chromium: Any, tmp_path: Path) -> Iterator[Any]:
    pages: list[ExportedPage] = []

    def open_(theme: str, color_scheme: str) -> ExportedPage:
        folder = tmp_path / theme
        folder.mkdir()
        pages.append(ExportedPage(chromium, export(folder, theme), color_scheme))
        return pages[-1]

    yield open_
    problems = [f"request refused: {u}" for p in pages for u in p.blocked]
    problems += [f"console or page error: {e}" for p in pages for e in p.errors]
    for page in pages:
        page.context.close()
    assert not problems, "\n".join(problems)


def test_exported_marimo_notebook_draws_the_widget_offline(exported):
    page = exported("light", "light")
    figure = page.figure
    # marimo's frontend came from the wheel: the export does need it, and nothing else.
    assert any(name.startswith("index-") and name.endswith(".js") for name in page.from_wheel)
    assert figure.evaluate("f => f.getRootNode() instanceof ShadowRoot")
    assert figure.get_attribute("data-attndocs-theme") == "light"
    assert figure.locator("figcaption").inner_text() == "From marimo"
    assert [t.strip() for t in figure.locator(".attndocs-token[data-side=q]").all_inner_texts()][:3] == ["[CLS]", "the", "cat"]
    painted = """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"""
    canvas = figure.locator(".attndocs-lines > canvas")
    assert canvas.evaluate(painted) > 300, "the head view's canvas is blank"
    # CSS reached into marimo's shadow root, and the controls work there.
    assert figure.locator(".attndocs-controls").evaluate("n => getComputedStyle(n).display") == "flex"
    figure.locator("select.attndocs-select").first.select_option("2")
    assert figure.evaluate("f => attndocs.figure(f).state.layer") == 2


def test_the_widget_follows_marimos_dark_theme(exported):
    # marimo's own theme wins over the system's: the figure reads the colour behind marimo's shadow root.
    page = exported("dark", "light")
    assert page.figure.get_attribute("data-attndocs-theme") == "dark"
