"""JupyterLab: a notebook cell showing attndocs.widget(...) draws through anywidget's lab extension, offline.

A real JupyterLab server (jupyterlab from the registry; its frontend and anywidget's lab
extension are in their wheels) runs on 127.0.0.1 with a fresh config, settings and
workspace folder; Chromium opens the notebook, the kernel runs the cell, and every
request other than to that server is refused. The kernel is ipykernel from this
environment, so the widget's Python side is this checkout.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).parents[2]
TOKEN = "attndocs-test"

CELL = """import sys
sys.path[:0] = [{root!r}, {browser!r}]
import attndocs
from synthetic import synthetic_record
w = attndocs.widget(record=synthetic_record("pair", n=9, layers=3, heads=2), view="head", caption="From JupyterLab")
display(w)
display(w)
"""

# Lab settings for a test: start the notebook's kernel without asking, and no news pop-up.
SETTINGS = {
    "notebook-extension/tracker": {"autoStartDefaultKernel": True},
    "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A JupyterLab server over a folder holding nb.ipynb; yields its origin."""
    base = tmp_path_factory.mktemp("jupyterlab")
    notebooks = base / "notebooks"
    notebooks.mkdir()
    cell = CELL.format(root=str(ROOT), browser=str(ROOT / "tests" / "browser"))
    notebook = {
        "cells": [{"cell_type": "code", "execution_count": None, "id": "widget", "metadata": {}, "outputs": [], "source": cell}],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (notebooks / "nb.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    for name, values in SETTINGS.items():
        path = base / "settings" / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
    }
    port = _free_port()
    log = (base / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={notebooks}",
         "--LabApp.expose_app_in_browser=True", "--allow-root"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    origin = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{origin}api?token={TOKEN}", timeout=1)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n" + (base / "server.log").read_text(), pytrace=False)
                time.sleep(0.1)
        yield origin
    finally:
        server.terminate()  # the server shuts its kernels down as it stops
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_widget_draws_in_jupyterlab_and_follows_its_theme(chromium: Any, lab: str) -> None:
    blocked: list[str] = []
    errors: list[str] = []
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, color_scheme="light")

    def route(r: Any) -> None:
        if r.request.url.startswith(lab):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{lab}lab/tree/nb.ipynb?token={TOKEN}")
        page.wait_for_function(
            """() => { const w = window.jupyterapp && jupyterapp.shell.currentWidget;
                       const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
                       return !!k && k.status === 'idle'; }""",
            timeout=60000,
        )
        page.evaluate("() => { jupyterapp.commands.execute('notebook:run-all-cells'); }")
        ready = page.locator(".jp-OutputArea .attndocs-figure[data-attndocs-status=ready]")
        ready.nth(1).wait_for(timeout=60000)
        figures = page.locator(".jp-OutputArea .attndocs-figure")
        assert figures.count() == 2, "one widget displayed twice is two outputs"
        ids = figures.evaluate_all("nodes => nodes.map(n => n.id)")
        assert len(set(ids)) == 2
        assert figures.first.locator("figcaption").inner_text() == "From JupyterLab"
        painted = """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                      let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"""
        assert figures.nth(1).locator(".attndocs-lines > canvas").evaluate(painted) > 300
        figures.first.locator("select.attndocs-select").first.select_option("2")
        assert figures.evaluate_all("nodes => nodes.map(n => attndocs.figure(n).state.layer)") == [2, 0]
        # display="auto" follows JupyterLab's theme, live.
        assert figures.evaluate_all("nodes => nodes.map(n => n.getAttribute('data-attndocs-theme'))") == ["light", "light"]
        page.evaluate("() => { jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'}); }")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.jp-OutputArea .attndocs-figure')]"
            ".every(n => n.getAttribute('data-attndocs-theme') === 'dark')",
            timeout=20000,
        )
        page.evaluate("() => { jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'}); }")
        page.wait_for_function("() => document.body.getAttribute('data-jp-theme-light') === 'true'", timeout=20000)
        # A trait set in the kernel reaches both outputs through the widget model.
        page.evaluate(
            "() => { jupyterapp.shell.currentWidget.sessionContext.session.kernel.requestExecute({code: 'w.display = \"dark\"'}); }"
        )
        page.wait_for_function(
            "() => [...document.querySelectorAll('.jp-OutputArea .attndocs-figure')]"
            ".every(n => n.getAttribute('data-attndocs-theme') === 'dark')",
            timeout=20000,
        )
    finally:
        context.close()
    assert not blocked, f"requests left JupyterLab: {blocked}"
    assert not errors, f"console or page errors: {errors}"
