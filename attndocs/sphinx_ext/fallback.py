"""Figures for builders that cannot run them: a heatmap image (LaTeX, epub) or a text summary.

At ``doctree-resolved`` each figure node is replaced by plain docutils nodes every builder
knows: a ``figure`` holding a PNG heatmap (the mean over the selected heads of the shown
layer) with the tokens in its legend, or a paragraph with the figure's description and
its strongest attention pairs (text, man, texinfo, xml and any other builder). The
figure keeps its ids, so :numref: and :ref: resolve in LaTeX as they do in HTML.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from docutils import nodes
from sphinx.util.osutil import relative_uri

from ..errors import AttndocsError, CacheError
from ..payload import select_layers_heads
from ..png import heatmap_png
from ..record import AttentionRecord
from ..render import describe, strongest_pairs
from .build import entry_of, state_of, warn
from .html import is_interactive
from .nodes import attention_figure

if TYPE_CHECKING:
    from sphinx.application import Sphinx

# Builders that write nothing per node: leave the doctree as it is.
_UNTOUCHED = frozenset({"dummy", "gettext"})


def builder_mode(builder: Any) -> str:
    """"interactive", "image", "text" or "none" for this builder."""
    if builder.name in _UNTOUCHED:
        return "none"
    if builder.format == "latex" or builder.name.startswith("epub"):
        return "image"
    if is_interactive(builder):
        return "interactive"
    return "text"


def on_doctree_resolved(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    mode = builder_mode(app.builder)
    if mode in ("interactive", "none"):
        return
    for node in list(doctree.findall(attention_figure)):
        node.replace_self(static_figure(app, node, docname, image=(mode == "image")))


def static_figure(app: Sphinx, node: attention_figure, docname: str, *, image: bool) -> nodes.Element:
    env = app.builder.env
    state = state_of(env)
    entry = entry_of(env, node)
    options = node["options"]
    message = None
    record = None
    if entry is None:
        message = "this figure was not collected; rebuild with -E"
    elif entry.failed:
        message = entry.error
    elif entry.state == "off":
        message = "not computed: attention_execution_mode is 'off'"
    else:
        try:
            record = state.record(entry.key) if entry.key else None
            if record is None:
                raise CacheError(f"the cached record {str(entry.key)[:12]} of this figure is missing", "build again")
            selection = select_layers_heads(record, options)
        except AttndocsError as exc:
            warn(str(exc), exc.category, node)
            state.write_failures.append(f"{entry.location}: {exc}")
            message, record = str(exc), None
    if record is None:
        box = nodes.container("", ids=list(node["ids"]), classes=["attndocs-failed"])
        box += nodes.paragraph("", f"[Attention figure unavailable: {message}]")
        if options.caption:
            box += nodes.paragraph("", options.caption)
        return box

    heads = list(selection.selected_heads)
    description = options.alt or describe(record, options)
    pairs = strongest_pairs(record, selection.layer, heads)
    pairs_text = "; ".join(f"“{q}” → “{k}” {w:.2f}" for q, k, w in pairs)
    if not image:
        box = nodes.container("", ids=list(node["ids"]), classes=["attndocs-summary"])
        if options.caption:
            box += nodes.paragraph("", "", nodes.strong("", options.caption))
        box += nodes.paragraph("", description)
        if pairs_text:
            box += nodes.paragraph("", f"Strongest attention in layer {selection.layer} (mean over the selected heads): {pairs_text}.")
        return box

    section, matrix = _mean_attention(record, selection.layer, heads)
    data = heatmap_png(matrix)
    name = f"attndocs-{hashlib.sha256(data).hexdigest()[:16]}.png"
    uri = _write_image(app, docname, name, data)
    figure = nodes.figure("", ids=list(node["ids"]), classes=["attndocs-static"])
    figure += nodes.image(uri=uri, candidates={"*": uri}, alt=description)
    if options.caption:
        figure += nodes.caption(options.caption, options.caption)
    legend = nodes.legend()
    legend += nodes.paragraph(
        "",
        f"{description} Shown: {section.name} attention in layer {selection.layer}, mean over "
        f"head{'s' if len(heads) > 1 else ''} {', '.join(map(str, heads))}; each row is a token "
        "attending to the tokens in the columns (darker is stronger).",
    )
    rows, cols = record.sides[section.rows].display, record.sides[section.cols].display
    if section.rows == section.cols:
        legend += nodes.paragraph("", "Rows and columns: " + _numbered(rows) + ".")
    else:
        legend += nodes.paragraph("", f"Rows ({section.rows}): " + _numbered(rows) + ".")
        legend += nodes.paragraph("", f"Columns ({section.cols}): " + _numbered(cols) + ".")
    if pairs_text:
        legend += nodes.paragraph("", f"Strongest pairs: {pairs_text}.")
    figure += legend
    return figure


def _mean_attention(record: AttentionRecord, layer: int, heads: list[int]) -> tuple[Any, np.ndarray]:
    """The first section's attention in ``layer``, averaged over ``heads`` (as strongest_pairs)."""
    section = next(iter(record.sections.values()))
    layer = min(layer, section.layers - 1)
    usable = [h for h in heads if h < section.heads] or list(range(section.heads))
    return section, np.asarray(section.attention[layer][usable], dtype=np.float32).mean(axis=0)


def _numbered(tokens: list[str]) -> str:
    return " · ".join(f"{i} {t.strip() or repr(t)}" for i, t in enumerate(tokens))


def _write_image(app: Sphinx, docname: str, name: str, data: bytes) -> str:
    """Write the PNG where the builder's output looks for it; the URI to put in the page."""
    builder = app.builder
    outdir = Path(builder.outdir)
    if builder.format == "latex":
        # LaTeX finds graphics beside the .tex files.
        target, uri = outdir / name, name
    else:
        target = outdir / builder.imagedir / name if builder.imagedir else outdir / "_images" / name
        uri = relative_uri(builder.get_target_uri(docname), f"{builder.imagedir or '_images'}/{name}")
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.is_file():
        target.write_bytes(data)
    return uri
