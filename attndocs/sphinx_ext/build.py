"""What a Sphinx build does with the figures: collect them, compute the misses once, report.

Reading a page only records its figures (the directive). After all pages are read, in
the main process, ``env-updated`` hands every figure of the pages read in this build to
the one :class:`~attndocs.pipeline.Pipeline`: hits come from the cache, misses are
computed together per model (each model loaded once), with one progress counter over them all.
Records stay in memory for writing; parallel write workers are forked after this point
and inherit them, and anything not in memory is read back from the cache by its key.

Per-page state lives in the environment (``env.attndocs_figures``), so incremental builds
know each page's figures without reading it again, and parallel reads merge it.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sphinx.environment.collectors import EnvironmentCollector
from sphinx.errors import ExtensionError
from sphinx.util import logging
from sphinx.util.console import bold, darkgreen

from ..cache import RecordCache
from ..errors import AttndocsError, CacheError, ExecError, ModelError, OptionError
from ..options import FigureOptions, SiteSettings
from ..payload import select_layers_heads
from ..pipeline import Pipeline, PipelineStats
from ..record import SECTION_NAMES, AttentionRecord
from ..text import terminal_safe
from .config import model_path, site_settings
from .nodes import attention_figure

if TYPE_CHECKING:
    from docutils import nodes
    from sphinx.application import Sphinx
    from sphinx.environment import BuildEnvironment

logger = logging.getLogger(__name__)

ENV_ATTR = "attndocs_figures"


@dataclass
class FigureEntry:
    """One figure of one page, as the environment keeps it between builds."""

    docname: str
    source: str
    line: int
    index: int
    options: FigureOptions
    error: str | None = None
    category: str | None = None
    key: str | None = None  # the cache key of its record, once known
    state: str = "pending"  # pending | cache | computed | off | error
    compare_key: str | None = None  # a compare-text / compare-model figure's second record

    @property
    def location(self) -> str:
        return f"{self.source}:{self.line}" if self.source else self.docname

    @property
    def failed(self) -> bool:
        return self.error is not None

    def fail(self, error: AttndocsError) -> None:
        self.error, self.category, self.state, self.key = str(error), error.category, "error", None


def figures_of(env: BuildEnvironment) -> dict[str, list[FigureEntry]]:
    """``{docname: [FigureEntry, ...]}`` kept in the environment (created on first use)."""
    figures = getattr(env, ENV_ATTR, None)
    if figures is None:
        figures = {}
        setattr(env, ENV_ATTR, figures)
    return figures


def entry_of(env: BuildEnvironment, node: attention_figure) -> FigureEntry | None:
    entries = figures_of(env).get(node.get("docname"), [])
    index = node.get("index", -1)
    return entries[index] if 0 <= index < len(entries) else None


@dataclass
class BuildState:
    """What one Sphinx application knows beyond the environment: settings, records, counts.

    Never pickled: records can be large, and the environment is saved after every build.
    """

    settings: SiteSettings
    confdir: Path
    records: dict[str, AttentionRecord] = field(default_factory=dict)
    read_docnames: set[str] = field(default_factory=set)
    stats: PipelineStats = field(default_factory=PipelineStats)
    write_failures: list[str] = field(default_factory=list)

    @property
    def cache(self) -> RecordCache:
        return RecordCache(self.settings.cache_dir)  # type: ignore[arg-type]

    def record(self, key: str) -> AttentionRecord | None:
        """The record for ``key``: from memory, else read back (and verified) from the cache."""
        record = self.records.get(key)
        if record is None:
            record = self.cache.get(key)
        return canonical_order(record) if record is not None else None

    def pipeline_options(self, options: FigureOptions) -> FigureOptions:
        """The options the pipeline gets: a model folder named relative to conf.py made absolute."""
        if options.model:
            resolved = model_path(options.model, self.confdir)
            if resolved != options.model:
                return options.replace(model=resolved)
        return options


def canonical_order(record: AttentionRecord) -> AttentionRecord:
    """The record with its sides and sections in the one order (encoder, decoder, cross).

    A record read from the cache lists them alphabetically, a freshly computed one in
    extraction order, and the text summaries (describe, strongest pairs) follow that order:
    without this, an encoder-decoder figure's page would differ between a cold and a warm
    build. Costs nothing when the order is already right.
    """
    rank = {name: i for i, name in enumerate(SECTION_NAMES)}

    def ordered(items: dict) -> dict:
        return dict(sorted(items.items(), key=lambda item: rank.get(item[0], len(rank))))

    sides, sections = ordered(record.sides), ordered(record.sections)
    if list(sides) == list(record.sides) and list(sections) == list(record.sections):
        return record
    return dataclasses.replace(record, sides=sides, sections=sections)


_STATES: weakref.WeakKeyDictionary[Any, BuildState] = weakref.WeakKeyDictionary()


def state_of(env: BuildEnvironment) -> BuildState:
    state = _STATES.get(env)
    if state is None:
        raise ExtensionError("attndocs: the build state is missing (was the builder-inited event skipped?)")
    return state


def warn(message: str, category: str | None, location: Any) -> None:
    """A figure warning; page text it quotes (and a page path) reaches the log escaped."""
    if isinstance(location, str):
        location = terminal_safe(location)
    logger.warning("attention figure: %s", terminal_safe(message), type="attndocs", subtype=category or "exec", location=location)


# -- events ----------------------------------------------------------------------------------
def on_builder_inited(app: Sphinx) -> None:
    """Validate the attention_* settings and start this build's state."""
    _STATES[app.env] = BuildState(settings=site_settings(app), confdir=Path(app.confdir))
    figures_of(app.env)


class FigureCollector(EnvironmentCollector):
    """Keeps ``env.attndocs_figures`` in step with the pages: read, removed, merged (-j N)."""

    def clear_doc(self, app: Sphinx, env: BuildEnvironment, docname: str) -> None:
        figures_of(env).pop(docname, None)

    def merge_other(self, app: Sphinx, env: BuildEnvironment, docnames: set[str], other: BuildEnvironment) -> None:
        mine, theirs = figures_of(env), figures_of(other)
        for docname in docnames:
            if docname in theirs:
                mine[docname] = theirs[docname]

    def process_doc(self, app: Sphinx, doctree: nodes.document) -> None:
        docname = app.env.docname
        entries = []
        for index, node in enumerate(doctree.findall(attention_figure)):
            node["index"] = index
            entry = FigureEntry(
                docname=docname,
                source=node.source or "",
                line=node.get("line") or node.line or 0,
                index=index,
                options=node["options"],
                error=node.get("error"),
                category=node.get("category"),
            )
            if entry.error:
                entry.state = "error"
            entries.append(entry)
        if entries:
            figures_of(app.env)[docname] = entries
        else:
            figures_of(app.env).pop(docname, None)


def on_env_get_outdated(app: Sphinx, env: BuildEnvironment, added: set[str], changed: set[str], removed: set[str]) -> list[str]:
    """Pages to read again although unchanged: a figure failed or its cache entry is gone.

    Without this a page whose figure failed (model not installed yet, frozen cache miss)
    would keep its placeholder until the page itself is edited.
    """
    state = state_of(env)
    cache = state.cache
    again = []
    for docname, entries in figures_of(env).items():
        if docname in changed or docname in removed or docname not in env.found_docs:
            continue
        for entry in entries:
            if entry.state in ("error", "off", "pending") or any(
                key and not cache.path_for(key).is_file() for key in (entry.key, getattr(entry, "compare_key", None))
            ):
                again.append(docname)
                break
    return sorted(again)


def on_env_before_read_docs(app: Sphinx, env: BuildEnvironment, docnames: list[str]) -> None:
    state_of(env).read_docnames = set(docnames)


def on_env_updated(app: Sphinx, env: BuildEnvironment) -> None:
    """Compute (or fetch) every figure of the pages read in this build, all at once."""
    state = state_of(env)
    todo = [e for e in iter_entries(env, state.read_docnames) if not e.failed]
    if not todo:
        return
    options = [state.pipeline_options(e.options) for e in todo]
    qk = [o.view == "neuron" for o in options]
    pipeline = Pipeline(state.settings, progress=_progress, base_dir=state.confdir)
    try:
        results = pipeline.run(options, qk=qk)
    except Exception as exc:  # the pipeline promised per-figure errors; never let one stop the build
        results, pipeline = _serve_hits_only(state, options, qk, exc)
    for entry, result in zip(todo, results):
        for message in result.warnings:
            warn(message, "cache", entry.location)
        if result.error is not None:
            entry.fail(result.error)
            warn(str(result.error), result.error.category, entry.location)
            continue
        if result.record is None:
            entry.state, entry.key = "off", None
            continue
        try:
            # Layer and head options can only be checked against the record; checking here,
            # in the main process, keeps every failure visible to the end-of-build summary.
            select_layers_heads(result.record, entry.options)
        except OptionError as exc:
            entry.fail(exc)
            warn(str(exc), exc.category, entry.location)
            continue
        entry.key, entry.state = result.record.key, result.source
        state.records[entry.key] = result.record
        entry.compare_key = result.compare.key if result.compare is not None else None
        if result.compare is not None:
            state.records[result.compare.key] = result.compare
    _add_stats(state.stats, pipeline.stats)


def _serve_hits_only(state: BuildState, options: list[FigureOptions], qk: list[bool], exc: Exception) -> tuple[list, Any]:
    """After computing failed as a whole: serve what the cache has; the misses fail with ``exc``."""
    if isinstance(exc, ImportError):
        error: AttndocsError = ModelError(
            f"computing this figure needs torch and transformers, which cannot be imported ({exc})",
            "pip install 'attndocs[models]', or build from a cache filled elsewhere",
        )
    else:
        error = ExecError(f"computing the figures failed: {type(exc).__name__}: {exc}")
    pipeline = Pipeline(dataclasses.replace(state.settings, execution_mode="frozen"), base_dir=state.confdir)
    results = pipeline.run(options, qk=qk)
    for result in results:
        if isinstance(result.error, CacheError):
            result.error = error
    return results, pipeline


def _add_stats(total: PipelineStats, more: PipelineStats) -> None:
    for name in ("cached", "computed", "failed", "off", "models_loaded", "seconds"):
        setattr(total, name, getattr(total, name) + getattr(more, name))


def _progress(done: int, total: int, message: str) -> None:
    # The same "[done/total]" counter as the other front-ends: figures, cached ones included.
    logger.info(bold("attention figures: ") + f"[{done}/{total}] " + darkgreen(message))


def build_summary(env: BuildEnvironment) -> str | None:
    """``"12 figure(s): 10 from the cache, 2 computed, 0 failed, 1 model load(s), 3.1 s"``.

    Counts the figures of the pages read in this build; None when there were none.
    """
    state = state_of(env)
    entries = list(iter_entries(env, state.read_docnames))
    if not entries:
        return None
    count = {name: sum(1 for e in entries if e.state == name) for name in ("cache", "computed", "error", "off")}
    parts = [
        f"{len(entries)} figure(s): {count['cache']} from the cache",
        f"{count['computed']} computed",
        f"{count['error']} failed",
    ]
    if count["off"]:
        parts.append(f"{count['off']} not computed (execution mode off)")
    parts += [f"{state.stats.models_loaded} model load(s)", f"{state.stats.seconds:.1f} s"]
    return ", ".join(parts)


def on_build_finished(app: Sphinx, exception: BaseException | None) -> None:
    """The end-of-build summary line; with attention_raise_on_error, fail on failed figures."""
    state = _STATES.get(app.env)
    if state is None or exception is not None:
        return
    summary = build_summary(app.env)
    if summary:
        logger.info(bold("attndocs: ") + summary)
    failed = [f"{e.location}: {e.error}" for e in iter_entries(app.env) if e.failed] + state.write_failures
    if state.settings.raise_on_error and failed:
        raise ExtensionError(
            f"attndocs: {len(failed)} attention figure(s) failed (attention_raise_on_error is on):\n"
            + "\n".join(f"  {line}" for line in failed)
        )


def iter_entries(env: BuildEnvironment, docnames: Iterable[str] | None = None) -> Iterable[FigureEntry]:
    """Figures in document order, documents sorted by name (all documents by default)."""
    figures = figures_of(env)
    for docname in sorted(figures if docnames is None else docnames):
        yield from figures.get(docname, [])
