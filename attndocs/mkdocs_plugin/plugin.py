"""The MkDocs plugin: ```attention blocks in pages become interactive attention figures.

How a build goes:

1. ``on_config`` turns the plugin's keys into SiteSettings and, when pymdownx.superfences
   is on, registers ``attention`` as one of its custom fences (next to mermaid and the like).
2. Each page's blocks are found by :mod:`attndocs.fence` and stood in for by tokens: by the
   superfences formatter, or, without superfences, in ``on_page_markdown`` before Markdown
   sees the page. Nothing is computed yet.
3. ``on_env`` (after every page is read, before any is written) runs the pipeline once for
   the whole build, so each model loads once and its misses are computed together, renders
   every figure, and logs warnings as ``page:line: message`` (fatal under ``--strict``).
4. ``on_page_context``, after the search plugins have indexed the page (they see each
   figure's caption, not its markup), puts the figures in place of their tokens and the
   assets at the top of the pages that have figures.

The plugin writes nothing into docs_dir: the assets are generated files of the build and
the cache lives beside mkdocs.yml. Because it defines ``on_startup``, MkDocs keeps one
plugin object for a whole ``mkdocs serve`` session, and with it the pipeline; loaded
models stay in the process, so a rebuild after an edit computes only what changed.
"""

from __future__ import annotations

import html
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
from ..render import asset_files, asset_tags
from ..text import terminal_safe
from .config import AttndocsConfig, config_dir, site_settings

log = get_plugin_logger("attndocs")

SUPERFENCES = "pymdownx.superfences"
ASSET_DIR = "assets/attndocs/"


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
        self._final: dict[str, str] = {}  # page -> its content with figures and assets

    # -- lifecycle ------------------------------------------------------------------------
    def on_startup(self, *, command: str, dirty: bool) -> None:
        """Defined so that MkDocs keeps this object (and its pipeline) across serve rebuilds."""

    def on_config(self, config: MkDocsConfig) -> MkDocsConfig:
        self._reset(config_dir(config.config_file_path))
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

    def on_page_content(self, html: str, /, *, page: Page, config: MkDocsConfig, files: Files) -> str:
        self._current = None
        self._pending.clear()
        return html

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
        # Search plugins index page.content in on_page_context, and a figure's markup (its
        # text fallback for readers without JavaScript, its token lists) is not prose anyone
        # searches for. So until they have run, a page holds each figure's caption only;
        # the figures go in after them.
        captions = {f.token: _search_text(f.options) for f in batch.figures}
        for src_uri in sorted(out.pages):
            page = self._pages[src_uri]
            self._final[src_uri] = asset_tags(prefix(src_uri)) + "\n" + batch.slots.fill(page.content or "", out.html)
            page.content = batch.slots.fill(page.content or "", captions)
        for name, data in {**asset_files(), **out.files}.items():
            files.append(File.generated(config, ASSET_DIR + name, content=data))
        loads = models_in_memory() - loads_before
        log.info(f"{out.summary()}; {loads} model load(s); {time.perf_counter() - started:.1f} s")
        self.last = out
        return env

    @event_priority(-100)  # after every search plugin (default priority 0) has indexed the page
    def on_page_context(self, context: Any, /, *, page: Page, config: MkDocsConfig, nav: Any) -> Any:
        final = self._final.pop(page.file.src_uri, None)
        if final is not None:
            page.content = final
        return context

    def on_post_build(self, *, config: MkDocsConfig) -> None:
        if self.last is not None and self.last.failed and self.settings is not None and self.settings.raise_on_error:
            raise PluginError(f"attndocs: {self.last.failed} figure(s) failed and raise_on_error is on")


def _search_text(options: FigureOptions | None) -> str:
    return f"<p>{html.escape(options.caption)}</p>" if options is not None and options.caption else ""


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
