"""Fixtures for tests of attndocs inside other hosts (notebooks, MyST-NB, mkdocs-jupyter, widgets ...).

``executed_notebook``  (session) an :class:`ExecutedNotebook`: a notebook of attndocs figures run
                  once with nbclient on the tiny BERT, written to ``.path``.
``open_offline``  ``open_offline(path, *, javascript=True, color_scheme="light", viewport=None)``
                  -> ``OfflinePage``: the file opened in the session's Chromium (the ``chromium``
                  fixture of tests/conftest.py) in a context of its own, every request that is
                  not a file:// URL aborted and recorded. ``.page``, ``.blocked``,
                  ``.page_errors``, ``.console_errors``; the context closes when the test ends.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest


@dataclass
class OfflinePage:
    page: Any
    blocked: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def wait_drawn(self, count: int) -> list[int]:
        """Wait until the page's ``count`` figures are ready; the painted pixels of each of their canvases."""
        self.page.wait_for_function(
            """n => { const f = document.querySelectorAll('.attndocs-figure');
                     return f.length === n && Array.from(f).every(e => e.getAttribute('data-attndocs-status') === 'ready'); }""",
            arg=count,
            timeout=20000,
        )
        return self.page.evaluate(
            """() => Array.from(document.querySelectorAll('.attndocs-figure .attndocs-body canvas')).map(c => {
                     const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                     let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
                     return n; })"""
        )


@pytest.fixture
def open_offline(chromium: Any) -> Iterator[Callable[..., OfflinePage]]:
    contexts: list[Any] = []

    def open_(path: Path, *, javascript: bool = True, color_scheme: str = "light", viewport: dict | None = None) -> OfflinePage:
        context = chromium.new_context(
            java_script_enabled=javascript, color_scheme=color_scheme, viewport=viewport or {"width": 1200, "height": 900}
        )
        contexts.append(context)
        page = context.new_page()
        probe = OfflinePage(page)

        def route(request_route: Any) -> None:
            if request_route.request.url.startswith("file://"):
                request_route.continue_()
            else:
                probe.blocked.append(request_route.request.url)
                request_route.abort()

        context.route("**/*", route)
        page.on("pageerror", lambda err: probe.page_errors.append(str(err)))
        page.on("console", lambda msg: probe.console_errors.append(msg.text) if msg.type == "error" else None)
        page.goto(Path(path).resolve().as_uri())
        return probe

    yield open_
    for context in contexts:
        context.close()


# -- one executed notebook for the whole session ------------------------------------------------
NOTEBOOK_TEXT = "The cat sat on the mat because it was warm."


@dataclass
class ExecutedNotebook:
    """``notebook.ipynb`` run with nbclient (one kernel start a session) in ``folder``.

    Cell outputs, in order: a head-view figure of the tiny BERT (layer 1, via
    ``attndocs.figure``; the record comes from ``cache``, filled before the kernel starts,
    so the kernel never imports torch), a matrix figure of the same text, and a BertViz-style
    ``head_view`` of numpy attention.
    """

    folder: Path
    path: Path
    notebook: Any  # the nbformat NotebookNode, outputs included
    model: Path
    cache: Path


def _notebook_cells(model: Path, cache: Path) -> list[tuple[str, str]]:
    setup = (
        "import numpy as np\n"
        "import attndocs\n"
        f"settings = {{'cache_dir': {str(cache)!r}}}\n"
        f"model = {str(model)!r}"
    )
    bertviz = (
        "rng = np.random.default_rng(0)\n"
        "logits = rng.normal(size=(2, 1, 3, 5, 5)) * 3\n"
        "weights = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)\n"
        "attndocs.head_view(tuple(weights), ['the', 'dog', 'ran', 'far', 'away'])"
    )
    return [
        ("markdown", "# Attention in a notebook\n\nThe figures below come from attndocs."),
        ("code", setup),
        ("code", f"attndocs.figure({NOTEBOOK_TEXT!r}, model=model, view='head', layer=1, settings=settings)"),
        ("code", f"attndocs.figure({NOTEBOOK_TEXT!r}, model=model, view='matrix', settings=settings)"),
        ("code", bertviz),
    ]


@pytest.fixture(scope="session")
def executed_notebook(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> ExecutedNotebook:
    import nbformat
    from nbclient import NotebookClient

    import attndocs

    folder = tmp_path_factory.mktemp("notebook")
    model, cache = tiny_model_dir("bert"), folder / "cache"
    # Fill the cache here (this process has torch loaded already for other tests); the kernel reads it.
    for view in ("head", "matrix"):
        attndocs.figure(NOTEBOOK_TEXT, model=str(model), view=view, settings={"cache_dir": str(cache)}, html_action="return")
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [
        nbformat.v4.new_markdown_cell(src) if kind == "markdown" else nbformat.v4.new_code_cell(src)
        for kind, src in _notebook_cells(model, cache)
    ]
    client = NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(folder)}},
        allow_errors=False,
    )
    client.execute(env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    path = folder / "notebook.ipynb"
    nbformat.write(notebook, path)
    return ExecutedNotebook(folder=folder, path=path, notebook=notebook, model=model, cache=cache)
