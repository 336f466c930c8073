"""The ``attention`` directive (and its alias ``attention-figure``) for rst and MyST.

The directive does one thing: it turns the block into FigureOptions and leaves an
:class:`~.nodes.attention_figure` node holding them. Nothing is computed or rendered
here; the build collects every figure after reading and computes the misses together.
"""

from __future__ import annotations

import os
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from ..errors import OptionError
from ..options import MAX_FIGURES_PER_PAGE, FigureOptions, figure_fields, option_name, too_many_figures
from ..vision import resolved_options
from .config import OVERRIDE_ADMONITION
from .nodes import attention_figure

logger = logging.getLogger(__name__)


class _OptionSpec(dict):
    """Every FigureOptions option, taken as text and parsed by FigureOptions itself.

    An unknown name is accepted here too (``__missing__``), so that
    FigureOptions.from_mapping reports it as a typed ``attndocs.options`` warning that
    lists the known options and can be silenced, instead of a docutils error.
    """

    def __missing__(self, key: str) -> Any:
        return directives.unchanged


def option_spec() -> _OptionSpec:
    """The directive's option spec, generated from FigureOptions (one entry per option)."""
    return _OptionSpec({option_name(f): directives.unchanged for f in figure_fields()})


class AttentionDirective(SphinxDirective):
    """``.. attention::`` with options; the content is the text the model reads."""

    has_content = True
    required_arguments = 0
    # Text on the directive line is accepted only to explain that it belongs in the
    # content: `.. attention:: Beware!` is how docutils' admonition is often written.
    optional_arguments = 1
    final_argument_whitespace = True
    option_spec = option_spec()

    def run(self) -> list[nodes.Node]:
        node = attention_figure()
        self.set_source_info(node)
        node["docname"] = self.env.docname
        node["line"] = self.lineno
        raw = {name: value for name, value in self.options.items()}
        text = "\n".join(self.content).strip()
        # temp_data lives for the reading of one document: a per-page count.
        count = self.env.temp_data.get("attndocs_figures", 0) + 1
        self.env.temp_data["attndocs_figures"] = count
        try:
            if self.arguments:
                raise OptionError(
                    f"the {self.name} directive takes its text as content, not on the directive line",
                    "indent the text below the options; for docutils' attention admonition set "
                    "attention_override_admonition = False in conf.py",
                )
            if count > MAX_FIGURES_PER_PAGE:
                raise too_many_figures(MAX_FIGURES_PER_PAGE)
            options = FigureOptions.from_mapping({**raw, "text": text})
            if options.image is not None:
                # Relative to the document's folder; a changed image re-reads the document.
                options = resolved_options(options, os.path.dirname(self.env.doc2path(self.env.docname)))
                self.env.note_dependency(options.image)
            node["error"] = None
            node["category"] = None
        except OptionError as exc:
            options = _fallback_options(raw, text)
            node["error"] = str(exc)
            node["category"] = exc.category
            logger.warning(
                "attention figure: %s", exc, type="attndocs", subtype=exc.category, location=node
            )
        node["options"] = options
        if self.name == "attention" and not raw and not self.arguments and self.config[OVERRIDE_ADMONITION] is None:
            _note_possible_admonition(node)
        if options.name:
            self.options["name"] = options.name
            self.add_name(node)
        return [node]


def _note_possible_admonition(node: attention_figure) -> None:
    """An info line, not a warning: the block may well be a figure, and ``-W`` must stay clean.

    A bare ``attention`` block is how docutils' admonition is written, so a site that added
    the extension without choosing may be turning its admonitions into figures unawares.
    """
    logger.info(
        "attndocs: this `attention` block has no figure options and is drawn as an attention figure; "
        "if it is docutils' attention admonition, set %s = False in conf.py "
        "(True keeps figures and silences this note)",
        OVERRIDE_ADMONITION,
        location=node,
    )


def _fallback_options(raw: dict[str, str], text: str) -> FigureOptions:
    """What a failed figure keeps for its placeholder: caption, name and alt, as written."""
    kept: dict[str, Any] = {"text": text}
    for name in ("caption", "name", "alt"):
        if raw.get(name) is None:
            continue
        try:
            kept[name] = getattr(FigureOptions.from_mapping({name: raw[name]}), name)
        except OptionError:
            continue
    return FigureOptions(**kept)
