"""The doctree node an ``attention`` directive leaves behind, and its numbering title.

The node holds only what the page said (the parsed FigureOptions, or the option error),
where it was said (document, source file, line) and its position among the document's
figures. Records and HTML are attached later, by the build (see build.py and html.py).
"""

from __future__ import annotations

from docutils import nodes


class attention_figure(nodes.General, nodes.Element):  # noqa: N801 (docutils names node classes in lower case)
    """One attention figure.

    Attributes: ``options`` (FigureOptions), ``error`` (str or None) and ``category``
    (the error's warning subtype), ``docname``, ``source``, ``line``, and ``index`` (its
    position among the figures of its document, set when the document is read).
    """


def figure_title(node: attention_figure) -> str | None:
    """The caption, which makes the figure numbered (numfig) and gives :ref: its text.

    None for a figure without a caption: Sphinx then gives it no number and no title,
    as it does for an uncaptioned ``figure``.
    """
    options = node.get("options")
    caption = getattr(options, "caption", None)
    return caption.strip() or None if caption else None
