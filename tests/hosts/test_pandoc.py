"""The pandoc Lua filter (attndocs/hosts/attndocs.lua) with Debian's pandoc, and the Quarto extension folder.

Each test runs the real ``pandoc`` on a Markdown document with the filter shipped in the package;
the filter finds ``attndocs`` on PATH (this environment's bin folder comes first). Pages are
opened in Chromium from file:// with every other request refused (the network is off).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from attndocs.cli import main
from attndocs.fence import FenceError
from attndocs.pandoc import RequestBlock, filter_path, locate, parse_figure, source_fences
from tests.site import site_probe

# Fixtures: open_site(root, page) opens a file:// page in the session's Chromium, network off.
site_browser = site_probe.site_browser
open_site = site_probe.open_site

TEXT = "The cat sat on the mat because it was tired."


@pytest.fixture(scope="session")
def pandoc() -> str:
    found = shutil.which("pandoc")
    if found is None:
        pytest.fail("pandoc is not installed: run `make setup` (it installs Debian's pandoc)", pytrace=False)
    return found


def run_pandoc(
    pandoc: str, folder: Path, *args: str, lua: Path | None = None, env: dict | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("ATTNDOCS_CACHE_DIR", "ATTNDOCS_COMMAND")}
    environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + environ.get("PATH", "")
    environ.update(env or {})
    command = [pandoc, "--lua-filter", str(lua or filter_path()), *args]
    return subprocess.run(command, cwd=folder, env=environ, input=stdin, capture_output=True, text=True, timeout=180)


def every_view(model: Path) -> str:
    """One figure of every view, options as attributes, as `key: value` lines, and both."""
    return f"""---
title: Every view
attndocs:
  default-model: {model}
---

# Attention

```{{.attention view=head caption="The head view"}}
{TEXT}
```

```attention
view: model

{TEXT}
```

```{{.attention #the-neuron view=neuron}}
layer: 1

{TEXT}
```

Some prose between figures.

~~~ {{.attention}}
view: matrix
layer: 1

{TEXT}
~~~

```{{.attention view=summary}}
{TEXT}
```
"""


def test_every_view_draws_offline_with_one_model_load_then_from_the_cache(pandoc, tmp_path, tiny_model_dir, open_site):
    (tmp_path / "doc.md").write_text(every_view(tiny_model_dir("bert")), encoding="utf-8")
    first = run_pandoc(pandoc, tmp_path, "--verbose", "doc.md", "-s", "-o", "page.html")
    assert first.returncode == 0, first.stderr
    assert "attndocs: 5 figures on 1 page: 0 cached, 5 computed, 0 failed; 1 model load(s)" in first.stderr
    assert "attndocs: warning" not in first.stderr
    assert (tmp_path / ".cache" / "attndocs").is_dir()  # the default cache: beside the document

    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert page.count("<script>/* attndocs.js") == 1  # the assets once
    assert page.index("attndocs.css") < page.index("</head>")  # the stylesheet in the head of a standalone page
    probe = open_site(tmp_path, "page.html")
    views = probe.page.evaluate(
        "() => Array.from(document.querySelectorAll('.attndocs-figure')).map(f => f.dataset.attndocsView)"
    )
    assert views == ["head", "model", "neuron", "matrix", "summary"]
    assert probe.undrawn() == []
    assert probe.page.locator("[data-attndocs-name=the-neuron]").count() == 1  # the block's #id names the figure
    assert "The head view" in probe.page.locator(".attndocs-figure").first.inner_text()

    second = run_pandoc(pandoc, tmp_path, "--verbose", "doc.md", "-s", "-o", "again.html")
    assert second.returncode == 0, second.stderr
    assert "5 cached, 0 computed, 0 failed; 0 model load(s)" in second.stderr
    assert (tmp_path / "again.html").read_bytes() == (tmp_path / "page.html").read_bytes()


BAD = """---
attndocs:
  execution-mode: "off"
---

```{.attention view=sideways}
Text one.
```

```attention
view: head
layer: many

Text two.
```
"""


def test_bad_options_warn_with_file_and_line_and_leave_placeholders(pandoc, tmp_path):
    (tmp_path / "doc.md").write_text(BAD, encoding="utf-8")
    done = run_pandoc(pandoc, tmp_path, "doc.md", "-s", "-o", "page.html")
    assert done.returncode == 0, done.stderr
    assert "attndocs: warning: doc.md:6: " in done.stderr  # the attribute: the fence's line
    assert "'sideways'" in done.stderr
    assert "attndocs: warning: doc.md:12: " in done.stderr  # the option line itself
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert page.count('class="attndocs-figure attndocs-failed"') == 2
    assert "Text one" not in page.split("<body")[1].split("attndocs-failed")[0]  # the code block itself is gone

    # Standard input: no file to find the line in, so the warning names <stdin>.
    piped = run_pandoc(pandoc, tmp_path, "-f", "markdown", "-t", "html", stdin=BAD)
    assert piped.returncode == 0, piped.stderr
    assert "attndocs: warning: <stdin>: " in piped.stderr

    (tmp_path / "strict.md").write_text(BAD.replace('execution-mode: "off"', "strict: true"), encoding="utf-8")
    strict = run_pandoc(pandoc, tmp_path, "strict.md", "-s", "-o", "strict.html")
    assert strict.returncode != 0
    assert "attndocs: warning: strict.md:6: " in strict.stderr
    assert "2 warning(s) and strict is on" in strict.stderr
    assert not (tmp_path / "strict.html").exists()


def test_formats_without_scripts_get_a_still_picture(pandoc, tmp_path, tiny_model_dir):
    doc = f"""```{{.attention model={tiny_model_dir("bert")} view=matrix caption="A matrix"}}\n{TEXT}\n```\n"""
    (tmp_path / "doc.md").write_text(doc, encoding="utf-8")
    done = run_pandoc(pandoc, tmp_path, "doc.md", "-t", "markdown", "--wrap=none")
    assert done.returncode == 0, done.stderr
    stills = list((tmp_path / ".cache" / "attndocs-stills").glob("*.png"))
    assert len(stills) == 1 and stills[0].read_bytes().startswith(b"\x89PNG")
    assert f"![A matrix]({stills[0]})" in done.stdout
    assert "<script" not in done.stdout


def test_an_image_is_read_relative_to_its_document(pandoc, tmp_path, tiny_model_dir):
    from tests.test_vision import draw_scene

    (tmp_path / "course" / "pictures").mkdir(parents=True)
    draw_scene(tmp_path / "course" / "pictures" / "scene.png")
    vit = tiny_model_dir("vit")
    doc = f"```{{.attention model={vit} image=pictures/scene.png view=patch}}\n```\n\n```{{.attention model={vit} image=scene.png}}\n```\n"
    (tmp_path / "course" / "doc.md").write_text(doc, encoding="utf-8")
    done = run_pandoc(pandoc, tmp_path, "course/doc.md", "-s", "-o", "doc.html")
    assert done.returncode == 0, done.stderr
    # The first resolves beside course/doc.md (not pandoc's working folder); the second is not there.
    assert "course/doc.md:4: " in done.stderr and "scene.png" in done.stderr
    assert "course/doc.md:1: " not in done.stderr
    html = (tmp_path / "doc.html").read_text(encoding="utf-8")
    assert html.count('data-attndocs-view="patch"') == 1


def test_settings_and_command_errors_are_one_clear_line(pandoc, tmp_path):
    (tmp_path / "doc.md").write_text(
        "---\nattndocs:\n  cache-size: 3\n---\n\n```attention\nHi.\n```\n", encoding="utf-8"
    )
    bad = run_pandoc(pandoc, tmp_path, "doc.md", "-o", "page.html")
    assert bad.returncode != 0
    assert "unknown setting 'cache_size'" in bad.stderr
    assert "Traceback" not in bad.stderr

    missing = run_pandoc(
        pandoc, tmp_path, "doc.md", "-o", "page.html", env={"ATTNDOCS_COMMAND": str(tmp_path / "no-such-attndocs")}
    )
    assert missing.returncode != 0
    assert "attndocs: error: cannot run" in missing.stderr and "ATTNDOCS_COMMAND" in missing.stderr


def test_quarto_extension_folder_runs_with_pandoc(pandoc, tmp_path, capsys):
    assert main(["pandoc-filter"]) == 0
    assert capsys.readouterr().out.strip() == str(filter_path())
    project = tmp_path / "site"
    assert main(["quarto-extension", str(project)]) == 0
    out = capsys.readouterr().out
    assert "\n  filters:\n    - attndocs\n" in out and "untested" in out
    folder = project / "_extensions" / "attndocs"
    manifest = (folder / "_extension.yml").read_text(encoding="utf-8")
    assert "contributes:\n  filters:\n    - attndocs.lua\n" in manifest
    assert (folder / "attndocs.lua").read_bytes() == filter_path().read_bytes()

    assert main(["quarto-extension", str(project)]) == 0  # unchanged files: nothing to refuse
    (folder / "attndocs.lua").write_text("-- my edits\n", encoding="utf-8")
    assert main(["quarto-extension", str(project)]) == 1
    assert "--force" in capsys.readouterr().err
    assert (folder / "attndocs.lua").read_text(encoding="utf-8") == "-- my edits\n"
    assert main(["quarto-extension", str(project), "--force"]) == 0
    assert (folder / "attndocs.lua").read_bytes() == filter_path().read_bytes()

    (project / "doc.md").write_text(BAD, encoding="utf-8")
    done = run_pandoc(pandoc, project, "doc.md", "-o", "page.html", lua=folder / "attndocs.lua")
    assert done.returncode == 0, done.stderr
    assert "doc.md:6: " in done.stderr
    assert (project / "page.html").read_text(encoding="utf-8").count("attndocs-failed") >= 2


# -- in-process: finding lines and reading options -------------------------------------------
def test_lines_are_found_by_matching_fences_and_skip_examples():
    source = (
        "````markdown\n```attention\nAn example, not a figure.\n```\n````\n\n"  # lines 1-5
        "```{.attention view=model}\nFirst.\n```\n\n"  # line 7
        "- item\n\n  ```attention\n  Second.\n  ```\n"  # line 13, indented in a list
    )
    fences = source_fences("a.md", source)
    assert [f.line for f in fences] == [7, 13]
    blocks = [RequestBlock("Second."), RequestBlock("First."), RequestBlock("Made by another filter.")]
    assert locate(blocks, []) == [("<stdin>", 0)] * 3


def test_attributes_and_lines_make_one_set_of_options(tmp_path):
    parsed = parse_figure(
        RequestBlock("layer: 1\n\nHello.", "fig-a", ("wide",), {"view": "matrix", "text-b": "Bye."}), 10
    )
    options = parsed.options
    assert (options.view, options.layer, options.text_b, options.name, options.class_, options.text) == (
        "matrix",
        1,
        "Bye.",
        "fig-a",
        "wide",
        "Hello.",
    )
    with pytest.raises(FenceError, match="given twice") as twice:
        parse_figure(RequestBlock("view: head\n\nHello.", attributes={"view": "model"}), 10)
    assert twice.value.line == 10
    with pytest.raises(FenceError, match="unknown option 'colour'") as unknown:
        parse_figure(RequestBlock("Hello.", attributes={"colour": "red"}), 4)
    assert unknown.value.line == 4
    with pytest.raises(FenceError) as bad_line:
        parse_figure(RequestBlock("layer: x\n\nHello."), 4)
    assert bad_line.value.line == 5
