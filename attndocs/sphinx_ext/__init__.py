"""Sphinx extension: live attention figures in reStructuredText and MyST pages.

Add ``"attndocs.sphinx_ext"`` to ``extensions`` in conf.py, then write::

    .. attention::
       :model: minilm
       :view: head

       The cat sat on the mat.

or, in MyST Markdown, the same directive in a ```` ```{attention} ```` fence. Every
figure option comes from :class:`attndocs.options.FigureOptions` and every
``attention_*`` setting from :class:`attndocs.options.SiteSettings`.

By default ``.. attention::`` replaces docutils' attention admonition; set
``attention_override_admonition = False`` to keep the admonition and write
``.. attention-figure::`` (always available) for figures. While the setting is not chosen,
each ``attention`` block without options (an admonition, by the look of it) gets an info
line naming its place and the setting.

How a build goes: the directive records each figure's options (directive.py); after
reading, all figures of the pages read are computed or fetched from the cache together,
each model loaded once (build.py); HTML builders render each figure where it stands and
load the assets only on pages with figures (html.py); LaTeX and epub get a heatmap image
and other builders a text summary (fallback.py). A page that is not valid UTF-8 is read
with U+FFFD for its bad bytes rather than stopping Sphinx (encoding.py). Errors are
warnings of type ``attndocs`` with subtypes options, model, cache, exec and source.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import __version__
from .build import (
    FigureCollector,
    on_build_finished,
    on_builder_inited,
    on_env_before_read_docs,
    on_env_get_outdated,
    on_env_updated,
)
from .config import OVERRIDE_ADMONITION, add_config_values
from .directive import AttentionDirective
from .encoding import setup_encoding
from .fallback import on_doctree_resolved
from .html import on_html_page_context, on_write_started, visit_attention_html
from .nodes import attention_figure, figure_title

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.config import Config

ALIAS = "attention-figure"


def _skip(translator: Any, node: Any) -> None:
    """Non-HTML writers never see a figure (doctree-resolved replaced it); skip if one does."""
    from docutils import nodes

    raise nodes.SkipNode


def _register_directives(app: Sphinx, config: Config) -> None:
    # The choice is read from conf.py, which is loaded after setup() ran.
    if config[OVERRIDE_ADMONITION] is not False:
        app.add_directive("attention", AttentionDirective, override=True)


def setup(app: Sphinx) -> dict[str, Any]:
    app.require_sphinx("7.3")  # the write-started event
    add_config_values(app)
    skip = (_skip, None)
    app.add_enumerable_node(
        attention_figure,
        "figure",
        figure_title,
        html=(visit_attention_html, None),
        latex=skip,
        text=skip,
        man=skip,
        texinfo=skip,
    )
    app.add_directive(ALIAS, AttentionDirective)
    app.connect("config-inited", _register_directives)
    app.connect("builder-inited", on_builder_inited)
    app.connect("env-get-outdated", on_env_get_outdated)
    app.connect("env-before-read-docs", on_env_before_read_docs)
    setup_encoding(app)
    app.add_env_collector(FigureCollector)
    app.connect("env-updated", on_env_updated)
    app.connect("write-started", on_write_started)
    app.connect("doctree-resolved", on_doctree_resolved)
    app.connect("html-page-context", on_html_page_context)
    app.connect("build-finished", on_build_finished)
    return {"version": __version__, "parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
