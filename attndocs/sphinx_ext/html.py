"""Placing figures in HTML builds (html, dirhtml, singlehtml and their subclasses).

The HTML comes from :mod:`attndocs.render`; this module only decides what to render for
each node (a figure, or a placeholder for a failed one), adds Sphinx's figure number to
the caption, writes payload side files when ``attention_embed = "file"``, and adds the
shared attndocs.<hash>.js / .css only to pages that contain a figure.

Rendering happens in the translator, so with ``-j N`` it runs in the forked write
workers; they find records in the memory they inherited, or in the cache.
"""

from __future__ import annotations

import html
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docutils import nodes
from sphinx.builders.html import StandaloneHTMLBuilder
from sphinx.util.osutil import relative_uri

from ..errors import AttndocsError, CacheError
from ..render import asset_files, over_budget, render_figure, render_placeholder
from .build import entry_of, figures_of, state_of, warn
from .nodes import attention_figure

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.builders import Builder

SIDE_FILES = "_static/attndocs"


def is_interactive(builder: Builder) -> bool:
    """HTML builders whose pages run the figures' JavaScript (not epub: readers do not)."""
    return isinstance(builder, StandaloneHTMLBuilder) and not builder.name.startswith("epub")


# -- the translator ----------------------------------------------------------------------------
def visit_attention_html(translator: Any, node: attention_figure) -> None:
    translator.body.append(figure_html(translator, node))
    raise nodes.SkipNode


def figure_html(translator: Any, node: attention_figure) -> str:
    builder = translator.builder
    state = state_of(builder.env)
    entry = entry_of(builder.env, node)
    options = node["options"]
    changes: dict[str, Any] = {}
    if node["ids"]:
        # Sphinx's label is the figure's name (links: #<label>/layer=2); its element id is
        # attndocs-<label>, and the label itself goes on an empty anchor just before it.
        changes["name"] = node["ids"][0]
    if options.caption and node["ids"]:
        changes["caption"] = _figure_number(translator, node) + options.caption
    if changes:
        options = options.replace(**changes)
    # Sphinx's ids become empty anchors, as Sphinx does for a label just before a directive:
    # :ref:, :numref: and permalinks land on the figure, JavaScript or not.
    anchors = "".join(f'<span id="{html.escape(i)}"></span>' for i in node["ids"])
    used = _used_ids(translator)

    def placeholder(message: str) -> str:
        return anchors + render_placeholder(message, options, used_ids=used)

    if entry is None:
        return placeholder("this figure was not collected; rebuild with sphinx-build -E")
    if entry.failed:
        return placeholder(entry.error or "unknown error")
    if entry.state == "off":
        return placeholder("not computed: attention_execution_mode is 'off'")
    try:
        record = state.record(entry.key) if entry.key else None
        if record is None:
            raise _missing(entry.key)
        compare_key = getattr(entry, "compare_key", None)  # entries pickled before comparisons have none
        compare = state.record(compare_key) if compare_key else None
        if compare_key and compare is None:
            raise _missing(compare_key)
        rendered = render_figure(
            record, options, embed=state.settings.embed, file_prefix=_side_file_prefix(builder), used_ids=used, compare=compare
        )
    except AttndocsError as exc:
        warn(str(exc), exc.category, node)
        state.write_failures.append(f"{entry.location}: {exc}")
        return placeholder(str(exc))
    if rendered.files:
        write_side_files(Path(builder.outdir) / SIDE_FILES, rendered.files)
    heavy = over_budget(rendered, state.settings.page_budget, "attention_page_budget")
    if heavy:
        warn(heavy, "budget", node)
    return anchors + rendered.html


def _missing(key: str | None) -> AttndocsError:
    return CacheError(
        f"the cached record {str(key)[:12]} of this figure is missing",
        "the cache was changed during the build; build again",
    )


def _figure_number(translator: Any, node: attention_figure) -> str:
    """"Fig. 3 " as Sphinx numbers this figure (numfig), or "" when it is not numbered.

    Sphinx's own translator method writes it (it knows singlehtml's per-document
    numbering and numfig_format); the markup it writes is taken back as text.
    """
    start = len(translator.body)
    translator.add_fignumber(node)
    written = "".join(translator.body[start:])
    del translator.body[start:]
    return html.unescape(re.sub(r"<[^>]*>", "", written))


def _used_ids(translator: Any) -> set[str]:
    """Ids given to figures on the page being written (one set per translator, i.e. per page)."""
    used = getattr(translator, "_attndocs_used_ids", None)
    if used is None:
        used = set()
        translator._attndocs_used_ids = used
    return used


def _side_file_prefix(builder: Any) -> str:
    """The URL of _static/attndocs/ from the page being written (html, dirhtml, singlehtml)."""
    return relative_uri(builder.get_target_uri(builder.current_docname), SIDE_FILES) + "/"


def write_side_files(folder: Path, files: dict[str, bytes]) -> None:
    """Write content-named files once; a temporary name and a rename keep parallel writers safe."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        target = folder / name
        if target.is_file() and target.stat().st_size == len(data):
            continue
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temp, 0o644)
        os.replace(temp, target)


# -- assets ------------------------------------------------------------------------------------
def on_write_started(app: Sphinx, builder: Builder) -> None:
    """Copy attndocs.<hash>.js and .css into _static once, before any page is written.

    Before, not after: Sphinx adds a checksum of each local asset to its URL when the file
    exists as a page is written, so writing them first keeps every page byte-identical.
    """
    if not is_interactive(builder) or not any(figures_of(builder.env).values()):
        return
    write_side_files(Path(builder.outdir) / "_static", asset_files())


def on_html_page_context(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: nodes.document | None) -> None:
    """Load the assets on pages that show a figure, and only there."""
    if doctree is None or not is_interactive(app.builder):
        return
    if next(iter(doctree.findall(attention_figure)), None) is None:
        return
    for name in asset_files():
        if name.endswith(".css"):
            app.add_css_file(name)
        else:
            app.add_js_file(name, loading_method="defer")
