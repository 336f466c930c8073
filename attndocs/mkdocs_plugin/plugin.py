"""The MkDocs plugin: ```attention blocks in pages become interactive attention figures.

How a build goes:

1. ``on_config`` turns the plugin's keys into SiteSettings and, when pymdownx.superfences
   is on, registers ``attention`` as one of its custom fences (next to mermaid and the like).
2. Each page's blocks are found by :mod:`attndocs.fence` and stood in for by tokens: by the
   superfences formatter, or, without superfences, in ``on_page_markdown`` (run last, so
   other plugins see the author's blocks) before Markdown sees the page. Nothing is computed yet.
3. ``on_page_content``, before any other plugin's, swaps each token for a stand-in: the
   figure's caption in an element that carries no token. Other plugins (search indexes,
   llms.txt writers, link checkers) see that caption and never a token. The page's named
   figures become anchors MkDocs' link validation knows.
4. ``on_env`` (after every page is read, before any is written) runs the pipeline once for
   the whole build, so each model loads once and its misses are computed together, renders
   every figure, and logs warnings as ``page:line: message`` (fatal under ``--strict``).
5. ``on_page_context``, after the search plugins have indexed the page (they see each
   figure's caption, not its markup), puts the figures in place of their stand-ins and the
   assets at the top of the pages that have figures.

The plugin writes nothing into docs_dir: the assets are generated files of the build and
the cache lives beside mkdocs.yml. Because it defines ``on_startup``, MkDocs keeps one
plugin object for a whole ``mkdocs serve`` session, and with it the pipeline; loaded
models stay in the process, so a rebuild after an edit computes only what changed.
"""

from __future__ import annotations

import html
import re
import time
from collections import deque
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.plugins import BasePlugin, event_priority, get_plugin_logger
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page
from mkdocs.utils import get_relative_url

from ..fence import (
    FENCE_NAME,
    AttentionBlock,
    FigureBatch,
    RenderedBatch,
    decode_page,
    find_blocks,
    models_in_memory,
    normalise_newlines,
    replace_blocks,
)
from ..options import FigureOptions, SiteSettings
from ..pipeline import Pipeline
from ..render import asset_files, asset_tags, figure_id, link_name
from ..text import terminal_safe
from .config import AttndocsConfig, config_dir, site_settings

log = get_plugin_logger("attndocs")

SUPERFENCES = "pymdownx.superfences"
ASSET_DIR = "assets/attndocs/"

# Above the conventional "first" (100) and below "last" (-100): even a plugin that asks to
# be first or last on a page's Markdown or content never sees one of our tokens.
BEFORE_ALL = 1000
AFTER_ALL = -1000

# A stand-in as written by _standin; other plugins may reorder its attributes or quotes.
_STANDIN = re.compile(r"""<div\b[^>]*\bdata-attndocs-pending=["']?([0-9a-f]+-[0-9]+)["']?[^>]*>.*?</div>""", re.S)


class AttndocsPlugin(BasePlugin[AttndocsConfig]):  # type: ignore[type-var]
    """``plugins: [attndocs]`` in mkdocs.yml."""

    def __init__(self) -> None:
        self._pipeline: Pipeline | None = None
        self.settings: SiteSettings | None = None
        self.last: RenderedBatch | None = None  # the last build's outcome (tests and tools read it)
        self._reset()

    def _reset(self, base_dir: Path | None = None) -> None:
        """Forget the previous build's pages (the pipeline and the loaded models stay)."""
        self._batch = FigureBatch(base_dir=base_dir)
        self._pages: dict[str, Page] = {}
        self._superfences = False
        self._current: Page | None = None
        self._pending: deque[AttentionBlock] = deque()
        self._standins: dict[str, str] = {}  # token -> the key of the stand-in that replaced it
        self._final: dict[str, tuple[str, dict[str, str]]] = {}  # page -> (asset tags, stand-in key -> figure)

    # -- lifecycle ------------------------------------------------------------------------
    def on_startup(self, *, command: str, dirty: bool) -> None:
        """Defined so that MkDocs keeps this object (and its pipeline) across serve rebuilds."""

    def on_config(self, config: MkDocsConfig) -> MkDocsConfig:
        self._reset(config_dir(config.config_file_path))
        self._batch.docs_dir = Path(config.docs_dir)  # images are relative to their page's source
        settings = site_settings(self.config, config.config_file_path)
        _check_cache_dir(Path(settings.cache_dir or ""), config)
        if self._pipeline is None or self.settings != settings:
            self._pipeline = Pipeline(settings, progress=_progress)
        self.settings = settings
        self._superfences = SUPERFENCES in config.markdown_extensions
        if self._superfences:
            fences = config.mdx_configs.setdefault(SUPERFENCES, {}).setdefault("custom_fences", [])
            # Ours replaces any earlier 'attention' entry (a leftover from a previous build or
            # a hand-written one) so that exactly one formatter handles the name.
            fences[:] = [f for f in fences if f.get("name") != FENCE_NAME]
            fences.append({"name": FENCE_NAME, "class": FENCE_NAME, "format": self._format_fence})
        return config

    # -- reading pages --------------------------------------------------------------------
    @event_priority(100)  # first, so that a later plugin's source still wins
    def on_page_read_source(self, /, *, page: Page, config: MkDocsConfig) -> str | None:
        """The page's source, read as MkDocs reads it; one that is not valid UTF-8 with a warning.

        MkDocs alone stops the build on such a page ("Encoding error reading file"). Here it is
        built with U+FFFD for the bad bytes, and the warning names the line of the first one
        (fatal under ``--strict``, as warnings are). Valid pages are read once, here.
        """
        try:
            return page.file.content_string
        except UnicodeDecodeError:
            pass
        except OSError:
            return None  # MkDocs reports a missing file itself
        text, bad = decode_page(page.file.content_bytes)
        if bad is not None:
            log.warning(terminal_safe(f"{page.file.src_uri}:{bad[0]}: {bad[1]}"))
        return normalise_newlines(text)

    @event_priority(AFTER_ALL)  # others see the author's ```attention blocks, never our tokens
    def on_page_markdown(self, markdown: str, /, *, page: Page, config: MkDocsConfig, files: Files) -> str:
        self._pages[page.file.src_uri] = page
        if self._superfences:
            # Superfences hands the formatter only the block's text; the blocks found here
            # give it the page line for messages.
            self._current = page
            self._pending = deque(find_blocks(markdown))
            return markdown
        if "```" not in markdown and "~~~" not in markdown:
            return markdown
        text, _ = replace_blocks(markdown, lambda block: self._batch.add(page.file.src_uri, block))
        return text

    def _format_fence(self, source: str, language: str, class_name: str, options: Any, md: Any, **kwargs: Any) -> str:
        """pymdownx.superfences custom fence: a token now, the figure in ``on_env``."""
        page = self._current
        name = page.file.src_uri if page is not None else "(unknown page)"
        wanted = _comparable(source)
        for block in list(self._pending):
            if _comparable(block.body) == wanted:
                self._pending.remove(block)
                return self._batch.add(name, block)
        return self._batch.add_body(name, source)

    @event_priority(BEFORE_ALL)  # tokens leave the page before any other plugin's hook sees it
    def on_page_content(self, html: str, /, *, page: Page, config: MkDocsConfig, files: Files) -> str:
        self._current = None
        self._pending.clear()
        src_uri = page.file.src_uri
        figures = [f for f in self._batch.figures if f.page == src_uri]
        if not figures:
            return html
        standins = {}
        for figure in figures:
            key = f"{self._batch.slots.nonce}-{len(self._standins) + 1}"
            self._standins[figure.token] = key
            standins[figure.token] = _standin(key, figure.options)
        if page.present_anchor_ids is not None:
            page.present_anchor_ids |= _anchors(figures)
        return self._batch.slots.fill(html, standins)

    # -- placing figures ------------------------------------------------------------------
    def on_env(self, env: Any, /, *, config: MkDocsConfig, files: Files) -> Any:
        batch, pipeline = self._batch, self._pipeline
        if not batch.figures or pipeline is None or self.settings is None:
            self.last = None
            return env
        started = time.perf_counter()
        loads_before = models_in_memory()
        batch.compute(pipeline)

        def prefix(src_uri: str) -> str:
            return get_relative_url(ASSET_DIR, self._pages[src_uri].url)

        out = batch.render(embed=self.settings.embed, file_prefix=prefix, page_budget=self.settings.page_budget)
        for problem in out.problems:
            log.warning(str(problem))  # Problem escapes what it quotes from the page
        # Until the search plugins have indexed the pages (on_page_context), each figure
        # stays a stand-in holding its caption: a figure's markup (its text fallback for
        # readers without JavaScript, its token lists) is not prose anyone searches for.
        for src_uri in sorted(out.pages):
            figures = {self._standins[f.token]: out.html[f.token] for f in batch.figures if f.page == src_uri and f.token in self._standins}
            self._final[src_uri] = (asset_tags(prefix(src_uri)), figures)
        for name, data in {**asset_files(), **out.files}.items():
            files.append(File.generated(config, ASSET_DIR + name, content=data))
        loads = models_in_memory() - loads_before
        log.info(f"{out.summary()}; {loads} model load(s); {time.perf_counter() - started:.1f} s")
        self.last = out
        return env

    @event_priority(-100)  # after every search plugin (default priority 0) has indexed the page
    def on_page_context(self, context: Any, /, *, page: Page, config: MkDocsConfig, nav: Any) -> Any:
        final = self._final.pop(page.file.src_uri, None)
        if final is None:
            return context
        tags, figures = final
        placed: set[str] = set()

        def place(match: re.Match[str]) -> str:
            if match.group(1) not in figures:
                return match.group(0)
            placed.add(match.group(1))
            return figures[match.group(1)]

        content = _STANDIN.sub(place, page.content or "")
        if len(placed) < len(figures):
            log.warning(
                f"{page.file.src_uri}: {len(figures) - len(placed)} figure(s) not placed: another plugin removed "
                "or rewrote where they stood before attndocs could put them in"
            )
        page.content = tags + "\n" + content
        return context

    def on_post_build(self, *, config: MkDocsConfig) -> None:
        if self.last is not None and self.last.failed and self.settings is not None and self.settings.raise_on_error:
            raise PluginError(f"attndocs: {self.last.failed} figure(s) failed and raise_on_error is on")


def _standin(key: str, options: FigureOptions | None) -> str:
    """What other plugins see of a figure until it is placed: its caption, in an element attndocs finds again."""
    caption = f"<p>{html.escape(options.caption)}</p>" if options is not None and options.caption else ""
    return f'<div class="attndocs-pending" data-attndocs-pending="{key}">{caption}</div>'


def _anchors(figures: list[Any]) -> set[str]:
    """What links to a page's named figures may say after ``#``: the name, and the figure's id.

    Counted as render counts them (a repeated name gets ``-2``), so each anchor is one a
    figure of the built page carries.
    """
    used: set[str] = set()
    anchors: set[str] = set()
    for figure in figures:
        if figure.options is not None and figure.options.name:
            fig_id = figure_id(figure.options, "", used)
            anchors |= {fig_id, link_name(figure.options, fig_id) or fig_id}
    return anchors


def _comparable(text: str) -> str:
    lines = normalise_newlines(text).strip("\n").split("\n")
    return "\n".join(line.rstrip() for line in lines)


def _progress(done: int, total: int, message: str) -> None:
    log.info(terminal_safe(f"[{done}/{total}] {message}"))  # messages name models a page chose


def _check_cache_dir(cache_dir: Path, config: MkDocsConfig) -> None:
    """The cache may not live in docs_dir (it would be published, and serve would loop) or site_dir."""
    for key in ("docs_dir", "site_dir"):
        folder = Path(config[key]).resolve()
        if cache_dir == folder or folder in cache_dir.parents:
            raise PluginError(
                f"attndocs: cache_dir ({cache_dir}) is inside {key} ({folder}); "
                "keep the cache beside mkdocs.yml (the default is .cache/attndocs)"
            )
