"""The MyST-MD (Jupyter Book 2) host: `attndocs myst-plugin` in a real `myst build --site`, and its figures mounted as the theme mounts them.

mystmd (npm, pinned by `make setup` into .venv/node) builds a small project whose myst.yml
names the plugin file `attndocs myst-plugin` writes. `myst build --site` writes each page's
document tree (_build/site/content/*.json) and copies the files its nodes name into
_build/site/public. The HTML theme build (`myst build --html`) downloads its theme and
cannot run offline; the project names a local template folder instead, so mystmd asks
the network for nothing. The browser half does what myst-theme's anywidget renderer does
with a node: import the module by its URL, build a model from the node's JSON (myst-theme's
MystAnyModel: get, set, on; off and save_changes throw), mount it in a shadow root, call
``render({ model, el })``.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from attndocs.cli import main as cli_main
from attndocs.myst_plugin import DIRECTIVE, MARKER, _parse_pending, plugin_spec, run_directive
from attndocs.options import FigureOptions, SiteSettings, figure_fields, option_name
from attndocs.pipeline import Pipeline
from attndocs.render import figure_payloads
from attndocs.widgets import widget_esm

MYST = Path(__file__).resolve().parents[2] / ".venv" / "node" / "node_modules" / ".bin" / "myst"
ORIGIN = "http://myst.test/"

FIGURES_PAGE = """\
# Figures

```{{attention-figure}}
:model: {model}
:caption: Heads of a tiny BERT
:name: fig-cat

The cat sat on the mat.
```

Some text between the figures, and a link to [](#fig-cat).

```{{attention-figure}}
model: {model}
view: matrix

The dog ran to the park.
```
"""

BAD_PAGE = """\
# A bad figure

Text before it.

```{{attention-figure}}
:model: {model}
:colour: red

A figure with an option that does not exist.
```
"""
BAD_OPTION_LINE = 7  # the ":colour: red" line of BAD_PAGE

# What myst-theme's anywidget renderer does with an `anywidget` node (packages/anywidget).
HARNESS = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>myst-theme anywidget harness</title></head>
<body style="margin:0; padding:16px">
<main id="article"></main>
<script type="module">
class MystAnyModel {
  #state; #target = new EventTarget();
  constructor(state) { this.#state = state; }
  get(name) { return this.#state[name]; }
  set(key, value) {
    this.#state[key] = value;
    this.#target.dispatchEvent(new CustomEvent(`change:${key}`, { detail: value }));
    this.#target.dispatchEvent(new CustomEvent("change", { detail: value }));
  }
  on(name, cb) { this.#target.addEventListener(name, cb); }
  off() { throw new Error("MystAnyModel.off not implemented yet."); }
  save_changes() { throw new Error("MystAnyModel.save_changes not implemented yet."); }
}
window.mountNode = async function (node) {
  const rootEl = document.createElement("div");
  rootEl.className = "relative w-full";
  document.getElementById("article").appendChild(rootEl);
  const widget = (await import(node.esm)).default;
  const model = new MystAnyModel(node.model);
  await widget.initialize?.({ model });
  rootEl.className = ["myst-anywidget", node.class].filter(Boolean).join(" ");
  const shadowRoot = rootEl.attachShadow({ mode: "open" });
  const widgetRoot = document.createElement("div");
  widgetRoot.className = rootEl.className;
  widgetRoot.style.position = "relative";
  shadowRoot.replaceChildren(widgetRoot);
  await widget.render?.({ model, el: widgetRoot });
  return document.getElementById("article").children.length - 1;
};
window.figureOf = (i) => document.getElementById("article").children[i].shadowRoot.querySelector(".attndocs-figure");
window.harnessReady = true;
</script>
</body></html>
"""


def myst_executable() -> Path:
    if not (MYST.exists() and os.access(MYST, os.X_OK)):
        pytest.fail(f"mystmd is not installed at {MYST}: run `make setup`", pytrace=False)
    return MYST


def myst_build(project: Path) -> subprocess.CompletedProcess[str]:
    """`myst build --site` in ``project``; bounded, so a request that hangs cannot hang the suite."""
    return subprocess.run(
        [str(myst_executable()), "build", "--site"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "NO_COLOR": "1", "CI": "1"},
    )


def page_tree(project: Path, source: str) -> dict[str, Any]:
    """The document tree mystmd wrote for the page ``source`` (the first page's slug is "index")."""
    for path in (project / "_build" / "site" / "content").glob("*.json"):
        page = json.loads(path.read_text(encoding="utf-8"))
        if page.get("location") == f"/{source}":
            return page["mdast"]
    raise AssertionError(f"no document tree for {source} in _build/site/content")


def nodes_of(tree: Any, kind: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(tree, dict):
        if tree.get("type") == kind:
            found.append(tree)
        for child in tree.get("children") or []:
            found.extend(nodes_of(child, kind))
    return found


def text_of(node: Any) -> str:
    if isinstance(node, dict):
        return (
            node.get("value", "")
            if node.get("type") == "text"
            else "".join(text_of(c) for c in node.get("children") or [])
        )
    return ""


def write_project(project: Path, model: Path, settings: str = "") -> None:
    project.mkdir(parents=True, exist_ok=True)
    (project / "theme").mkdir(exist_ok=True)
    # A site template on disk: with one, `myst build --site` asks api.mystmd.org for nothing.
    (project / "theme" / "template.yml").write_text("myst: v1\nkind: site\ntitle: offline\n", encoding="utf-8")
    (project / "myst.yml").write_text(
        "version: 1\nproject:\n  title: attndocs MyST test\n  toc:\n    - file: figures.md\n    - file: bad.md\n"
        "  plugins:\n    - type: executable\n      path: attndocs-plugin.py\nsite:\n  template: ./theme\n",
        encoding="utf-8",
    )
    (project / "figures.md").write_text(FIGURES_PAGE.format(model=model), encoding="utf-8")
    (project / "bad.md").write_text(BAD_PAGE.format(model=model), encoding="utf-8")
    (project / "attndocs.toml").write_text(settings, encoding="utf-8")


@pytest.fixture(scope="module")
def myst_site(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Callable[[str], Path]) -> dict[str, Any]:
    """A MyST project built once: the plugin written by the CLI, two good figures and a bad one."""
    project = tmp_path_factory.mktemp("myst") / "book"
    model = tiny_model_dir("bert")
    write_project(project, model)
    cwd = Path.cwd()
    os.chdir(project)
    try:
        assert cli_main(["myst-plugin"]) == 0
    finally:
        os.chdir(cwd)
    build = myst_build(project)
    return {"project": project, "model": model, "build": build}


def test_the_plugin_file_and_its_specification(tmp_path, capsys):
    out = tmp_path / "book" / "attndocs-plugin.py"
    assert cli_main(["myst-plugin", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "type: executable" in printed and "attndocs-plugin.py" in printed
    assert os.access(out, os.X_OK) and MARKER in out.read_text(encoding="utf-8")
    # mystmd runs the file itself: with no argument it prints the specification.
    spec = json.loads(subprocess.run([str(out)], capture_output=True, text=True, timeout=60, check=True).stdout)
    (directive,) = spec["directives"]
    assert directive["name"] == DIRECTIVE and spec == plugin_spec()
    assert set(directive["options"]) == {option_name(f) for f in figure_fields()}
    assert [t["stage"] for t in spec["transforms"]] == ["document"]
    # A file attndocs did not write is left alone.
    foreign = tmp_path / "mine.py"
    foreign.write_text("print('mine')\n", encoding="utf-8")
    assert cli_main(["myst-plugin", str(foreign)]) == 1
    assert "was not written by `attndocs myst-plugin`" in capsys.readouterr().err
    assert foreign.read_text(encoding="utf-8") == "print('mine')\n"


def test_the_directive_step_only_packs_what_the_author_wrote():
    body = {"type": "mystDirectiveBody", "position": {"start": {"line": 6}}}
    option = {"type": "mystOption", "name": "view", "value": "model", "position": {"start": {"line": 4}}}
    (node,) = run_directive(
        {
            "name": DIRECTIVE,
            "body": "The cat sat.",
            "options": {"view": "model"},
            "node": {"type": "mystDirective", "position": {"start": {"line": 3}}, "children": [option, body]},
        }
    )
    assert node["attndocs"] == {
        "line": 3,
        "arg": None,
        "options": [["view", "model", 4]],
        "body": "The cat sat.",
        "body_line": 6,
    }
    assert node["position"]["start"]["line"] == 3


def test_options_from_the_directive_and_the_body_meet_as_in_every_host():
    def pending(options: list[list[Any]], body: str, arg: str | None = None) -> dict[str, Any]:
        return {"line": 3, "arg": arg, "options": options, "body": body, "body_line": 6}

    both = _parse_pending(pending([["view", "matrix", 4]], "layer: 1\n\nThe cat sat."))
    assert both.error is None and (both.options.view, both.options.layer, both.options.text) == (
        "matrix",
        1,
        "The cat sat.",
    )
    assert both.parsed.option_lines == {"layer": 6, "view": 4}
    twice = _parse_pending(pending([["view", "matrix", 4]], "view: head\n\nThe cat sat."))
    assert twice.error is not None and twice.error.line == 4 and "given twice (lines 6 and 4)" in twice.error.message
    bad_value = _parse_pending(pending([["display", "sepia", 5]], "The cat sat."))
    assert bad_value.error.line == 5 and "display" in bad_value.error.message
    on_the_line = _parse_pending(pending([], "The cat sat.", arg="Beware!"))
    assert on_the_line.error.line == 3 and "not on the directive line" in on_the_line.error.message
    empty = _parse_pending(pending([["view", "head", 4]], ""))
    assert empty.error is not None and "no text" in empty.error.message
    image = _parse_pending(pending([["image", "cat.png", 4]], ""))  # an image figure reads no text
    assert image.error is None and image.options.image == "cat.png" and image.options.text == ""


def test_myst_build_writes_anywidget_nodes_with_the_figures(myst_site):
    build, project, model = myst_site["build"], myst_site["project"], myst_site["model"]
    assert build.returncode == 0, build.stdout + build.stderr
    assert "attndocs attention figures" in build.stdout + build.stderr  # mystmd loaded the plugin
    widgets = nodes_of(page_tree(project, "figures.md"), "anywidget")
    assert len(widgets) == 2
    # The module: written once under the project, copied by mystmd into the site, named by content.
    esm = {w["esm"] for w in widgets}
    assert len(esm) == 1
    (url,) = esm
    copied = project / "_build" / "site" / "public" / url.lstrip("/")
    assert url.startswith("/attndocs-") and copied.is_file()
    assert copied.read_text(encoding="utf-8") == widget_esm()
    # The state is the figure the pipeline makes for these options: same tokens, view and caption.
    pipeline = Pipeline(
        SiteSettings.from_mapping({"cache_dir": str(project / ".cache" / "attndocs"), "execution_mode": "frozen"})
    )
    expected = [("The cat sat on the mat.", "head"), ("The dog ran to the park.", "matrix")]
    for node, (text, view) in zip(widgets, expected):
        state = node["model"]
        assert state["view"] == view and node["id"] == state["figure_id"]
        (payload,) = figure_payloads(state["html"])
        record = pipeline.compute_one(FigureOptions.from_mapping({"model": str(model), "text": text})).record
        assert payload["header"]["sides"]["encoder"]["tokens"] == record.sides["encoder"].tokens
        pieces = "".join(
            t.removeprefix("##") for t in payload["header"]["sides"]["encoder"]["tokens"] if not t.startswith("[")
        )
        assert pieces == text.lower().replace(" ", "")  # this figure's text, in WordPiece pieces
        assert payload["header"]["view"] == view
    assert "Heads of a tiny BERT" in widgets[0]["model"]["html"]
    # Two figures, one page: the text around them is still there, in order. The named one is
    # a figure container, which mystmd numbers and links to.
    tree = page_tree(project, "figures.md")
    assert [n["type"] for n in tree["children"][0]["children"]] == ["container", "paragraph", "anywidget"]
    named = tree["children"][0]["children"][0]
    assert named["kind"] == "figure" and named["identifier"] == "fig-cat"
    assert named["children"][0]["model"] == widgets[0]["model"]
    (link,) = nodes_of(tree, "crossReference")
    assert link["identifier"] == "fig-cat" and link["resolved"] is True and text_of(link) == "Figure\u00a01"


def test_a_bad_option_is_a_placeholder_with_its_page_and_line(myst_site):
    build, project = myst_site["build"], myst_site["project"]
    tree = page_tree(project, "bad.md")
    assert nodes_of(tree, "anywidget") == []
    (box,) = [n for n in nodes_of(tree, "admonition") if n.get("class") == "attndocs-placeholder"]
    assert box["kind"] == "danger"
    assert f"bad.md:{BAD_OPTION_LINE}: unknown option 'colour'" in text_of(box)
    assert "known options:" in text_of(box)
    assert "Text before it." in text_of(tree)  # the page itself built
    # mystmd checks option names against the plugin's specification and says so too.
    assert f"bad.md:{BAD_OPTION_LINE}" in build.stdout + build.stderr and "colour" in build.stdout + build.stderr


def test_frozen_rebuild_serves_the_cache_and_raise_on_error_fails_the_build(myst_site):
    project = myst_site["project"]
    before = [w["model"] for w in nodes_of(page_tree(project, "figures.md"), "anywidget")]
    (project / "attndocs.toml").write_text('execution_mode = "frozen"\nraise_on_error = true\n', encoding="utf-8")
    try:
        build = myst_build(project)
    finally:
        (project / "attndocs.toml").write_text("", encoding="utf-8")
    output = build.stdout + build.stderr
    # mystmd stops on a plugin that exits non-zero and prints what it wrote: page, line, message.
    assert build.returncode != 0
    assert f"bad.md:{BAD_OPTION_LINE}: unknown option 'colour'" in output
    assert "raise_on_error is on" in output
    # The good page came from the cache alone (frozen computes nothing) and is the same figure.
    after = [w["model"] for w in nodes_of(page_tree(project, "figures.md"), "anywidget")]
    assert after == before


def test_a_cache_miss_in_frozen_mode_says_so_in_the_page(tmp_path, tiny_model_dir):
    project = tmp_path / "book"
    write_project(project, tiny_model_dir("bert"), settings='execution_mode = "frozen"\n')
    (project / "bad.md").write_text("# Nothing here\n", encoding="utf-8")
    assert cli_main(["myst-plugin", str(project / "attndocs-plugin.py")]) == 0
    build = myst_build(project)
    assert build.returncode == 0, build.stdout + build.stderr
    boxes = [
        n for n in nodes_of(page_tree(project, "figures.md"), "admonition") if n.get("class") == "attndocs-placeholder"
    ]
    assert len(boxes) == 2
    assert "figures.md:3: no cached record" in text_of(boxes[0]) and "figures.md:13: no cached record" in text_of(
        boxes[1]
    )
    assert all("frozen" in text_of(b) for b in boxes)
    assert "Heads of a tiny BERT" in text_of(boxes[0])  # the caption stays with its placeholder


@pytest.mark.browser
def test_the_theme_mounts_the_nodes_module_offline(myst_site, chromium):
    project = myst_site["project"]
    widgets = nodes_of(page_tree(project, "figures.md"), "anywidget")
    public = project / "_build" / "site" / "public"
    files = {"index.html": HARNESS.encode()}
    files.update({p.name: p.read_bytes() for p in public.iterdir() if p.suffix == ".mjs"})
    blocked: list[str] = []
    errors: list[str] = []

    def route(r: Any) -> None:
        name = r.request.url[len(ORIGIN) :] if r.request.url.startswith(ORIGIN) else None
        if name in files:
            r.fulfill(
                status=200, body=files[name], content_type="text/html" if name.endswith(".html") else "text/javascript"
            )
        else:
            blocked.append(r.request.url)
            r.abort()

    for scheme, width in (("light", 1280), ("dark", 390)):
        context = chromium.new_context(color_scheme=scheme, viewport={"width": width, "height": 900})
        try:
            context.route("**/*", route)
            page = context.new_page()
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(ORIGIN + "index.html")
            page.wait_for_function("() => window.harnessReady === true")
            for node in widgets:
                index = page.evaluate("node => mountNode(node)", node)
                page.wait_for_function(
                    "i => { const f = figureOf(i); return f && f.getAttribute('data-attndocs-status') === 'ready'; }",
                    arg=index,
                    timeout=15000,
                )
                painted = page.evaluate(
                    """i => {
                      let n = 0;
                      for (const canvas of figureOf(i).querySelectorAll('canvas')) {
                        if (!canvas.width || !canvas.height) continue;
                        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
                        for (let k = 3; k < data.length; k += 4) if (data[k] > 0) n++;
                      }
                      return n;
                    }""",
                    index,
                )
                assert painted > 300, f"figure {index} ({node['model']['view']}) drew nothing at {width}px, {scheme}"
                view = page.evaluate("i => figureOf(i).getAttribute('data-attndocs-view')", index)
                assert view == node["model"]["view"]
            # The figure follows the reader's colour scheme inside the theme's shadow root.
            assert page.evaluate("() => figureOf(0).getAttribute('data-attndocs-theme')") == scheme
            # Nothing wider than the column the theme gives it.
            overflow = page.evaluate(
                "() => { const f = figureOf(0); return f.getBoundingClientRect().right - document.body.clientWidth; }"
            )
            assert overflow <= 1, f"the figure overflows its column by {overflow}px at {width}px"
            if os.environ.get("ATTNDOCS_SCREENSHOTS"):
                page.screenshot(
                    path=str(Path(os.environ["ATTNDOCS_SCREENSHOTS"]) / f"myst-{scheme}-{width}.png"), full_page=True
                )
        finally:
            context.close()
    assert not blocked, f"requests left the page: {blocked}"
    assert not errors, f"console or page errors: {errors}"
