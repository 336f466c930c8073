"""The plugin beside others: no token of ours reaches another plugin, and figure names are anchors.

A recording plugin registered after attndocs (at the default priority, and at "first" and
"last") keeps what every hook of its gets to see: the Markdown, page.content, every page in
on_env, the page in on_page_context and the output in on_post_page. None of it may hold a
token of attndocs (an llms.txt writer once published ``attndocsslot...`` from them).
MkDocs' own anchor validation, fatal under --strict, must know a figure's name.
"""

from __future__ import annotations

import logging

import pytest
from mkdocs.commands.build import build
from mkdocs.config import load_config
from mkdocs.exceptions import Abort
from mkdocs.plugins import BasePlugin, event_priority

PAGES = {
    "index.md": (
        "# Figures\n\nProse before.\n\n"
        "```attention\nname: fig-cat\ncaption: Where the cat looks\n\nThe cat sat on the mat.\n```\n\n"
        "```attention\nview: model\n\nThe dog ran.\n```\n\nProse after.\n"
    ),
    "other.md": "# Other\n\nSee [the cat figure](index.md#fig-cat) and [its layer 2](index.md#attndocs-fig-cat).\n",
}


def recorder(priority: int) -> BasePlugin:
    """A plugin whose every page hook runs at ``priority`` and records what it was given."""

    class Recorder(BasePlugin):
        def __init__(self) -> None:
            self.seen: list[tuple[str, str, str]] = []  # (hook, page, text)

        @event_priority(priority)
        def on_page_markdown(self, markdown, /, *, page, config, files):
            self.seen.append(("page_markdown", page.file.src_uri, markdown))
            return markdown

        @event_priority(priority)
        def on_page_content(self, html, /, *, page, config, files):
            self.seen.append(("page_content", page.file.src_uri, html))
            return html

        @event_priority(priority)
        def on_env(self, env, /, *, config, files):
            for file in files.documentation_pages():
                self.seen.append(("env", file.src_uri, file.page.content or ""))
            return env

        @event_priority(priority)
        def on_page_context(self, context, /, *, page, config, nav):
            self.seen.append(("page_context", page.file.src_uri, page.content or ""))
            return context

        @event_priority(priority)
        def on_post_page(self, output, /, *, page, config):
            self.seen.append(("post_page", page.file.src_uri, output))
            return output

    return Recorder()


def _build(project, *, strict: bool, plugins: dict[str, BasePlugin] | None = None) -> None:
    config = load_config(str(project.root / "mkdocs.yml"), strict=strict)
    for name, plugin in (plugins or {}).items():
        config.plugins[name] = plugin  # registered after attndocs, as a later plugins: entry is
    handler = _Records()
    logging.getLogger("mkdocs").addHandler(handler)
    try:
        build(config)
    finally:
        logging.getLogger("mkdocs").removeHandler(handler)
        project.log.extend(handler.records)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("superfences", [True, False], ids=["superfences", "fenced_code"])
def test_no_token_reaches_another_plugins_hooks(mkdocs_project, superfences):
    project = mkdocs_project(PAGES, superfences=superfences)
    recorders = {f"recorder{p}": recorder(p) for p in (100, 0, -100)}
    _build(project, strict=True, plugins=recorders)
    for name, plugin in recorders.items():
        hooks = {hook for hook, page, _ in plugin.seen if page == "index.md"}
        assert hooks == {"page_markdown", "page_content", "env", "page_context", "post_page"}, name
        for hook, page, text in plugin.seen:
            assert "attndocsslot" not in text, f"{name} saw a token in {hook} of {page}"
        content = {hook: text for hook, page, text in plugin.seen if page == "index.md"}
        # Before the figures are placed a plugin sees the caption where a figure stands, then the figures.
        assert "Where the cat looks" in content["page_content"] and "Prose after." in content["page_content"]
        assert 'data-attndocs-view="head"' in content["post_page"] and 'data-attndocs-view="model"' in content["post_page"]
        # The Markdown other plugins read is the author's: the blocks as written.
        assert "```attention\nname: fig-cat" in content["page_markdown"]
    html = project.html("index.html")
    assert "attndocs-pending" not in html
    assert html.index("Prose before.") < html.index('id="attndocs-fig-cat"') < html.index('data-attndocs-view="model"') < html.index("Prose after.")


def test_figure_names_are_anchors_that_link_validation_knows(mkdocs_project):
    project = mkdocs_project(PAGES, validation={"anchors": "warn"})
    _build(project, strict=True)  # --strict: an unknown anchor is a warning, and fatal
    assert [r.getMessage() for r in project.log if r.levelno >= logging.WARNING] == []
    assert 'href="../#fig-cat"' in project.html("other/index.html")

    # The check has teeth: a name no figure carries still fails the build.
    (project.docs / "other.md").write_text("# Other\n\nSee [nothing](index.md#fig-dog).\n", encoding="utf-8")
    project.log.clear()
    with pytest.raises(Abort):
        _build(project, strict=True)
    assert any("does not contain an anchor '#fig-dog'" in r.getMessage() for r in project.log)
