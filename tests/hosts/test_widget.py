"""The anywidget host: widget_esm() mounted as anywidget mounts it, in the page and in a shadow root, offline.

anywidget's front-end (JupyterLab, Notebook, VS Code, Colab, marimo) imports the widget's
``_esm`` source from a blob: URL and calls its default export's ``render({ model, el })``
with the widget model (get / set / on / off / save_changes). The harness page here does
the same with a small model of its own, so the module is tested as every host runs it; the
page comes from a made-up origin answered by playwright and every other request is refused.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import attndocs
from attndocs.errors import AttndocsError, OptionError
from attndocs.options import FigureOptions
from attndocs.render import figure_payloads
from attndocs.widgets import STATE_VERSION, widget_esm, widget_state

sys.path.insert(0, str(Path(__file__).parents[1] / "browser"))
from synthetic import synthetic_record  # noqa: E402

ORIGIN = "http://widget.test/"

# What anywidget does with a widget: import its _esm from a blob: URL, call render with the
# model and an element, keep the cleanup it returns.
HARNESS = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>anywidget harness</title></head>
<body style="margin:16px; width:900px">
<div id="plain"></div>
<div id="shadow-host"></div>
<script type="module">
class Model {
  constructor(state) { this.state = Object.assign({}, state); this.handlers = {}; this.saved = 0; }
  get(key) { return this.state[key]; }
  set(key, value) {
    this.state[key] = value;
    (this.handlers["change:" + key] || []).slice().forEach((cb) => cb({ new: value }));
  }
  on(name, cb) { (this.handlers[name] = this.handlers[name] || []).push(cb); }
  off(name, cb) {
    const list = this.handlers[name] || [];
    this.handlers[name] = cb ? list.filter((f) => f !== cb) : [];
  }
  listeners() { return Object.values(this.handlers).reduce((n, list) => n + list.length, 0); }
  save_changes() { this.saved += 1; }
}
const source = await (await fetch("widget.mjs")).text();
const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
const widget = (await import(url)).default;
window.harness = {
  Model,
  models: [],
  mounts: [],
  // where: "plain" | "shadow" | "detached" (rendered before el is in the page, as Jupyter does).
  mount(state, where) {
    const model = new Model(state);
    const el = document.createElement("div");
    let host = document.getElementById("plain");
    if (where === "shadow") {
      const outer = document.createElement("div");
      document.getElementById("shadow-host").appendChild(outer);
      host = outer.attachShadow({ mode: "open" });
    }
    if (where !== "detached") host.appendChild(el);
    const cleanup = widget.render({ model, el });
    this.models.push(model);
    this.mounts.push({ el, cleanup, host });
    return this.mounts.length - 1;
  },
  mountAgain(index) {
    const el = document.createElement("div");
    document.getElementById("plain").appendChild(el);
    const cleanup = widget.render({ model: this.models[index], el });
    this.models.push(this.models[index]);
    this.mounts.push({ el, cleanup, host: document.getElementById("plain") });
    return this.mounts.length - 1;
  },
  attach(index) { document.getElementById("plain").appendChild(this.mounts[index].el); },
  unmount(index) { const m = this.mounts[index]; m.cleanup(); m.el.remove(); },
  // myst-theme's model: off and save_changes throw "not implemented yet".
  mountMyst(state) {
    const model = new Model(state);
    model.off = () => { throw new Error("MystAnyModel.off not implemented yet."); };
    model.save_changes = () => { throw new Error("MystAnyModel.save_changes not implemented yet."); };
    const el = document.createElement("div");
    document.getElementById("plain").appendChild(el);
    this.models.push(model);
    this.mounts.push({ el, cleanup: widget.render({ model, el }), host: document.getElementById("plain") });
    return this.mounts.length - 1;
  },
  figure(index) { return this.mounts[index].el.querySelector(".attndocs-figure"); },
  fig(index) { return window.attndocs.figure(this.figure(index)); },
};
window.harnessReady = true;
</script>
</body></html>
"""

CANVAS = ".attndocs-lines > canvas"


class WidgetPage:
    """The harness page in a fresh context: served files only, every other request refused and recorded."""

    def __init__(self, browser: Any, color_scheme: str = "light") -> None:
        self.files = {"index.html": HARNESS.encode(), "widget.mjs": widget_esm().encode()}
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(color_scheme=color_scheme, viewport={"width": 1000, "height": 900})
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(ORIGIN + "index.html")
        self.page.wait_for_function("() => window.harnessReady === true")

    def _route(self, route: Any) -> None:
        url = route.request.url
        name = url[len(ORIGIN):] if url.startswith(ORIGIN) else None
        if name in self.files:
            kind = "text/html" if name.endswith(".html") else "text/javascript"
            route.fulfill(status=200, body=self.files[name], content_type=kind)
        else:
            self.blocked.append(url)
            route.abort()

    def mount(self, state: dict[str, Any], where: str = "plain") -> int:
        return self.page.evaluate("([s, w]) => harness.mount(s, w)", [state, where])

    def wait_ready(self, index: int) -> None:
        self.page.wait_for_function(
            "i => { const f = harness.figure(i); return f && f.getAttribute('data-attndocs-status') === 'ready'; }",
            arg=index, timeout=15000,
        )

    def eval(self, js: str, arg: Any = None) -> Any:
        return self.page.evaluate(js, arg)

    def canvas_painted(self, index: int) -> tuple[int, str]:
        return self.eval(
            """i => {
              const canvas = harness.mounts[i].el.querySelector('.attndocs-lines > canvas');
              const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
              let painted = 0, hash = 2166136261;
              for (let k = 3; k < data.length; k += 4) if (data[k] > 0) painted++;
              for (let k = 0; k < data.length; k += 7) { hash ^= data[k]; hash = Math.imul(hash, 16777619) >>> 0; }
              return [painted, hash.toString(16)];
            }""",
            index,
        )


@pytest.fixture
def widget_page(chromium: Any) -> Iterator[Callable[..., WidgetPage]]:
    pages: list[WidgetPage] = []

    def open_(color_scheme: str = "light") -> WidgetPage:
        pages.append(WidgetPage(chromium, color_scheme))
        return pages[-1]

    yield open_
    problems = [f"request left the page: {u}" for p in pages for u in p.blocked]
    problems += [f"console or page error: {e}" for p in pages for e in p.errors]
    for page in pages:
        page.context.close()
    assert not problems, "\n".join(problems)


def head_state(**options: Any) -> dict[str, Any]:
    record = synthetic_record("encoder", n=9, layers=4, heads=3)
    return widget_state(record, FigureOptions.from_mapping({"view": "head", **options}))


@pytest.mark.browser
def test_module_draws_in_the_page_and_its_controls_work(widget_page):
    page = widget_page()
    index = page.mount(head_state())
    page.wait_ready(index)
    painted, before = page.canvas_painted(index)
    assert painted > 300, "the head view's line canvas is blank"
    # The layer select redraws, through the same figure the host's model holds.
    page.page.locator("#plain select.attndocs-select").first.select_option("2")
    assert page.eval("i => harness.fig(i).state.layer", index) == 2
    assert page.canvas_painted(index)[1] != before
    # The figure keeps its state to itself: the notebook's address is not the figure's.
    assert page.eval("() => location.hash") == ""
    # CSS reached the figure (the control bar is laid out by attndocs.css).
    assert page.eval("i => getComputedStyle(harness.figure(i).querySelector('.attndocs-controls')).display", index) == "flex"


@pytest.mark.browser
def test_module_draws_in_a_shadow_root_and_unmounts_cleanly(widget_page):
    page = widget_page()
    index = page.mount(head_state(), "shadow")
    page.wait_ready(index)
    assert page.eval("i => harness.mounts[i].el.getRootNode() instanceof ShadowRoot", index)
    assert page.canvas_painted(index)[0] > 300
    # Document styles do not reach into a shadow root: the module put its CSS inside.
    assert page.eval("i => harness.mounts[i].host.querySelectorAll('style[data-attndocs-widget-style]').length", index) == 1
    assert page.eval("() => document.head.querySelectorAll('style[data-attndocs-widget-style]').length") == 0
    assert page.eval("i => getComputedStyle(harness.figure(i).querySelector('.attndocs-controls')).display", index) == "flex"
    page.page.locator("#shadow-host select.attndocs-select").first.select_option("3")
    assert page.eval("i => harness.fig(i).state.layer", index) == 3
    page.eval("i => harness.unmount(i)", index)
    assert page.eval("() => attndocs.figures().length") == 0
    assert page.eval("i => harness.mounts[i].host.querySelectorAll('style').length", index) == 0
    assert page.eval("i => harness.models[i].listeners()", index) == 0


@pytest.mark.browser
def test_unmount_releases_the_figure_when_the_model_cannot_unsubscribe(widget_page):
    page = widget_page()
    index = page.eval("s => harness.mountMyst(s)", head_state())
    page.wait_ready(index)
    page.eval("i => harness.unmount(i)", index)
    assert page.eval("() => attndocs.figures().length") == 0
    assert page.eval("() => document.head.querySelectorAll('style[data-attndocs-widget-style]').length") == 0
    assert page.errors == []


@pytest.mark.browser
def test_two_outputs_of_one_widget_and_a_late_attach(widget_page):
    page = widget_page()
    first = page.mount(head_state())
    page.wait_ready(first)
    second = page.eval("i => harness.mountAgain(i)", first)
    page.wait_ready(second)
    ids = page.eval("([a, b]) => [harness.figure(a).id, harness.figure(b).id]", [first, second])
    assert ids[0] != ids[1] and ids[1].startswith(ids[0])
    assert page.eval("() => attndocs.figures().length") == 2
    # Each output has its own state: changing one leaves the other.
    page.page.locator("#plain .attndocs-figure").nth(1).locator("select.attndocs-select").first.select_option("1")
    assert page.eval("([a, b]) => [harness.fig(a).state.layer, harness.fig(b).state.layer]", [first, second]) == [0, 1]
    # One output closed: the other still works, and the page's stylesheet stays for it.
    page.eval("i => harness.unmount(i)", first)
    assert page.eval("() => attndocs.figures().length") == 1
    assert page.eval("() => document.querySelectorAll('style[data-attndocs-widget-style]').length") == 1
    page.eval("i => harness.unmount(i)", second)
    assert page.eval("() => attndocs.figures().length") == 0
    assert page.eval("() => document.querySelectorAll('style[data-attndocs-widget-style]').length") == 0
    # Jupyter renders a view before it attaches it: the figure waits to be in the page, then draws.
    late = page.mount(head_state(), "detached")
    page.page.wait_for_timeout(100)
    assert page.eval("i => harness.figure(i)", late) is None
    page.eval("i => harness.attach(i)", late)
    page.wait_ready(late)
    assert page.canvas_painted(late)[0] > 300


@pytest.mark.browser
def test_the_model_changes_the_figure_live(widget_page):
    page = widget_page()
    index = page.mount(head_state(display="auto"))
    page.wait_ready(index)
    assert page.eval("i => harness.figure(i).getAttribute('data-attndocs-theme')", index) == "light"
    page.eval("i => harness.models[i].set('display', 'dark')", index)
    assert page.eval("i => harness.figure(i).getAttribute('data-attndocs-theme')", index) == "dark"
    # A new payload (the Python side set new options) replaces the figure.
    matrix = widget_state(synthetic_record("decoder", n=7, layers=2, heads=2), FigureOptions.from_mapping({"view": "matrix"}))
    page.eval("([i, s]) => harness.models[i].set('html', s.html)", [index, matrix])
    page.page.wait_for_function(
        "i => { const f = harness.figure(i); return f.getAttribute('data-attndocs-view') === 'matrix' &&"
        " f.getAttribute('data-attndocs-status') === 'ready'; }",
        arg=index,
    )
    assert page.eval("() => attndocs.figures().map(f => f.header.view)") == ["matrix"]
    # A state from a newer attndocs than this module says so rather than drawing something wrong.
    newer = page.mount({**matrix, "version": STATE_VERSION + 1})
    assert "newer than its attndocs.js" in page.eval("i => harness.mounts[i].el.textContent", newer)
    assert page.eval("i => harness.figure(i)", newer) is None


def test_module_is_self_contained():
    esm = widget_esm()
    assert "export default" in esm and "render" in esm
    # Nothing to import or fetch (the browser tests above also refuse every request).
    assert not re.search(r"^\s*import\b|\bimport\s*\(|(?<![\w.])fetch\(|https?://(?!www\.w3\.org/)", esm, re.MULTILINE)
    # Safe to inline into a page's <script type="module"> (MyST-MD, a static export).
    assert "</script" not in esm.lower() and "<!--" not in esm


def test_state_is_json_and_carries_the_payload():
    record = synthetic_record("pair", n=10, layers=3, heads=2)
    state = widget_state(record, FigureOptions.from_mapping({"view": "model", "display": "dark", "caption": "<b>x</b>"}))
    assert json.loads(json.dumps(state)) == state
    assert state["display"] == "dark" and state["view"] == "model" and state["version"] == STATE_VERSION
    (payload,) = figure_payloads(state["html"])
    assert payload["header"]["sides"]["encoder"]["display"] == record.sides["encoder"].display
    assert payload["chunks"], "the payload travels in the state, inline"
    assert payload["header"]["options"]["hash"] is False
    assert "<b>x</b>" not in state["html"] and "&lt;b&gt;x&lt;/b&gt;" in state["html"]
    assert state["figure_id"] in state["html"]


def test_widget_from_text_runs_the_pipeline_and_syncs_the_state(tiny_model_dir, tmp_path):
    settings = {"cache_dir": str(tmp_path / "cache")}
    shown = attndocs.widget("The cat sat on the mat.", model=str(tiny_model_dir("bert")), view="matrix",
                            display="light", settings=settings)
    assert shown._esm == widget_esm()
    synced = {name for name, trait in shown.traits(sync=True).items()}
    assert {"html", "display", "view", "figure_id", "version"} <= synced
    assert shown.get_state(["html", "view", "display"]) == {"html": shown.html, "view": "matrix", "display": "light"}
    (payload,) = figure_payloads(shown.html)
    assert payload["header"]["view"] == "matrix"
    assert payload["header"]["sides"]["encoder"]["tokens"] == shown.record.sides["encoder"].tokens
    # Where no widget manager runs (nbconvert, GitHub) the figure and its still picture show instead.
    data, _ = shown._repr_mimebundle_()
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == shown.model_id
    assert figure_payloads(data["text/html"])[0]["header"] == payload["header"]
    assert base64.b64decode(data["image/png"]).startswith(b"\x89PNG")
    assert data["text/plain"].startswith("Attention matrix of ")
    shown.display = "dark"
    with pytest.raises(OptionError, match="display must be"):
        shown.display = "sepia"
    # A comparison's second record comes from the same pipeline run and travels too.
    both = attndocs.widget("The cat sat on the mat.", model=str(tiny_model_dir("bert")), compare_text="A dog lay on the rug.",
                           settings=settings)
    assert figure_payloads(both.html)[0]["header"]["compare"]["labels"][1]
    assert both.compare is not None and both.compare.text == "A dog lay on the rug."


def test_widget_from_a_record_and_bad_calls():
    record = synthetic_record("decoder", n=6, layers=2, heads=2)
    shown = attndocs.widget(record=record, view="head", layer=1)
    assert figure_payloads(shown.html)[0]["header"]["options"]["layer"] == 1
    with pytest.raises(OptionError, match="a text or a record"):
        attndocs.widget()
    with pytest.raises(OptionError, match="not both"):
        attndocs.widget("text", record=record)
    with pytest.raises(OptionError, match="AttentionRecord"):
        attndocs.widget(record={"tokens": []})
    with pytest.raises(OptionError, match="layer"):
        attndocs.widget(record=record, layer=7)
    with pytest.raises(OptionError, match="compare goes with a record"):
        attndocs.widget("text", compare=record)


def test_widget_without_anywidget_says_how_to_install(monkeypatch):
    import attndocs.widgets as widgets

    widgets._widget_class.cache_clear()
    monkeypatch.setitem(sys.modules, "anywidget", None)
    try:
        with pytest.raises(AttndocsError, match=r"pip install 'attndocs\[widget\]'"):
            attndocs.widget(record=synthetic_record("encoder", n=4, layers=1, heads=1))
    finally:
        widgets._widget_class.cache_clear()
