"""The one orchestrator every front-end calls: figures in, records (or errors) out.

For a list of figures it resolves each model, serves cache hits, groups the misses per
model, loads each model once, computes the misses in batches, stores them, and hands back
one FigureResult per figure in order. Per-figure problems become errors on that figure's
result; nothing a page says can stop the others. torch is imported only when a miss must
be computed.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cache import LOCAL_FOLDER, RecordCache, cache_key
from .compare import second_options
from .errors import AttndocsError, CacheError, DamagedEntryError, ExecError, ModelError
from .extract.run import ExtractRequest, check_request
from .extract.tokens import token_style
from .models import ModelRef, cached_identity, resolve_model
from .models.resolve import CONTENT_HASH, HUB_COMMIT
from .options import FigureOptions, SiteSettings
from .record import CACHED_HALF_VECTORS, AttentionRecord, RecordFormatError
from .text import terminal_safe
from .words import KEY_PART as WORDS_KEY_PART
from .words import merge_words, piece_count
from .words import merges as merges_words

log = logging.getLogger("attndocs")

# The source of a miss left to another pipeline (see Pipeline's ``computes``).
ELSEWHERE = "elsewhere"

# Progress callback: (done, total, message). One run reports one counter over all its
# figures, cached and computed: it only rises, and reaches total exactly once, last.
Progress = Callable[[int, int, str], None]


@dataclass
class FigureResult:
    """What became of one figure."""

    options: FigureOptions
    record: AttentionRecord | None = None
    error: AttndocsError | None = None
    source: str = "error"  # "cache" | "computed" | "off" | "error"
    warnings: list[str] = field(default_factory=list)
    # The second record of a compare-text / compare-model figure (attndocs.compare).
    compare: AttentionRecord | None = None

    @property
    def ok(self) -> bool:
        return self.record is not None

    def describe(self) -> str:
        if self.record is None:
            return f"failed: {self.error}" if self.error else "not computed (execution mode off)"
        rec = self.record
        tokens = ", ".join(f"{len(side)} {name} tokens" for name, side in rec.sides.items())
        sections = ", ".join(rec.sections)
        qk = "; query/key stored" if rec.has_qk else ""
        if self.options and rec.neuron.get("reason") and not rec.has_qk and rec.extraction.get("qk"):
            qk = f"; no neuron data: {rec.neuron['reason']}"
        return f"{rec.model_id} ({rec.kind}), {tokens}, {rec.layers} layers x {rec.heads} heads, sections {sections}{qk}; {self.source}"


@dataclass
class PipelineStats:
    cached: int = 0
    computed: int = 0
    failed: int = 0
    off: int = 0
    models_loaded: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.cached} cached, {self.computed} computed, {self.failed} failed"
            + (f", {self.off} not computed (mode off)" if self.off else "")
            + f"; {self.models_loaded} model load(s); {self.seconds:.1f} s"
        )


@dataclass
class _Pending:
    index: int
    ref: ModelRef
    parts: dict[str, Any]
    request: ExtractRequest
    words: bool = False  # merge the pieces into words (attndocs.words) before it is stored

    @property
    def key(self) -> str:
        return cache_key(self.parts)


class Pipeline:
    """Computes and caches records for figures under one site's settings."""

    def __init__(
        self,
        settings: SiteSettings,
        *,
        progress: Progress | None = None,
        base_dir: str | Path | None = None,
        exact: bool = False,
        computes: Callable[[str], bool] | None = None,
    ) -> None:
        self.settings = settings
        cache_dir = Path(settings.cache_dir) if settings.cache_dir else Path(base_dir or Path.cwd()) / ".cache" / "attndocs"
        self.cache = RecordCache(cache_dir)
        self.progress = progress
        self.stats = PipelineStats()
        # Computed records as the model gave them (float32, exact) instead of at the cache's
        # precision: for `attndocs extract -o`. Cache hits are at the cache's precision
        # (record.precision says which); nothing that renders a page sets this.
        self.exact = exact
        # Which misses this pipeline computes, by cache key (precompute --shard K/N); a miss
        # it leaves to another machine gets the source ELSEWHERE, neither record nor error.
        self.computes = computes
        self._cached_models: dict[str, list[tuple[str, str, str]]] | None = None

    # -- public ------------------------------------------------------------------------------
    def compute_one(self, options: FigureOptions, qk: bool = False) -> FigureResult:
        """One figure; raises its error instead of returning it (for the CLI and the API)."""
        result = self.run([options], qk=qk)[0]
        if result.error is not None:
            raise result.error
        return result

    def run(
        self, figures: Sequence[FigureOptions], qk: bool | Sequence[bool] = False, *, counts: Sequence[int] | None = None
    ) -> list[FigureResult]:
        """One result per figure, in order. ``qk`` may be one flag or one per figure.

        ``counts``: how many of the caller's figures each one stands for (figures that share
        a record are computed once), so that the progress counter counts the caller's figures.
        """
        started = time.perf_counter()
        wants_qk = [qk] * len(figures) if isinstance(qk, bool) else list(qk)
        weights = list(counts) if counts is not None else [1] * len(figures)
        # A comparison's second record (compare-text, compare-model) is one more figure of this
        # run, cached like any other; it adds nothing to the progress count (its figure counts).
        seconds = [(i, s) for i, s in enumerate(second_options(o) for o in figures) if s is not None]
        count = len(figures)
        figures = [*figures, *(s for _, s in seconds)]
        wants_qk += [False] * len(seconds)
        weights += [0] * len(seconds)
        results = [FigureResult(options=o) for o in figures]
        pending: list[_Pending] = []
        for i, options in enumerate(figures):
            try:
                item = self._prepare(i, options, wants_qk[i], results[i])
            except AttndocsError as exc:
                results[i].error = exc
                continue
            if item is not None:
                pending.append(item)
        waiting = {item.index for item in pending}
        for k, (i, _) in enumerate(seconds):
            if count + k in waiting and i not in waiting:  # the figure is done when its second record is
                weights[count + k], weights[i] = weights[i], 0
        counter = _Counter(sum(weights), sum(weights[item.index] for item in pending), self._report)
        if figures:
            counter.start(results, weights)
        if pending:
            self._compute(pending, results, counter, weights)
        for (i, _), second in zip(seconds, results[count:]):
            _attach_second(results[i], second)
        for position, r in enumerate(results):
            if position >= count and r.record is None:
                continue  # a second record's failure is its figure's, counted there
            if r.source == "cache":
                self.stats.cached += 1
            elif r.source == "computed":
                self.stats.computed += 1
            elif r.source == "off":
                self.stats.off += 1
            elif r.source != ELSEWHERE:
                self.stats.failed += 1
        self.stats.seconds += time.perf_counter() - started
        return results[:count]

    # -- steps -------------------------------------------------------------------------------
    def _prepare(self, index: int, options: FigureOptions, qk: bool, result: FigureResult) -> _Pending | None:
        """Resolve, validate and look up one figure; a _Pending if it must be computed."""
        settings = self.settings
        mode = settings.execution_mode
        name = options.model or settings.default_model
        try:
            refs = [
                resolve_model(
                    name,
                    options.revision,
                    aliases=settings.model_aliases,
                    trust_remote_code=settings.trust_remote_code,
                    cached_models=self._hub_models_in_cache,  # asked only for a name that does not resolve
                )
            ]
            unavailable = None
        except ModelError as exc:
            # Not installed or not reachable here: the figures the cache holds for it are
            # still served (a torch-free CI building from a committed cache needs no models).
            refs = self._refs_in_cache(name, options.revision) if mode != "force" else []
            if not refs:
                raise
            unavailable = exc
        max_tokens = options.max_tokens or settings.max_tokens
        request = ExtractRequest(
            options.text or "", options.text_b, options.target, qk, max_tokens,
            generate=options.generate, seed=options.seed, temperature=options.temperature,
            image=_read_image(options.image),
        )
        # words: a record of words, merged from the exact one (attndocs.words); a neuron figure's stays per piece.
        merged = merges_words(options, qk)
        check_request(refs[0].kind, refs[0].short, request)
        if mode == "off":
            result.source = "off"
            return None
        coarse = None  # a cached record whose float16 vectors cannot give this neuron figure its scores
        if mode != "force":
            for ref in refs:
                asked = []
                for dtype in lookup_dtypes(settings.dtype):
                    asked.append(record_key_parts(ref, request, dtype=dtype, words=merged))
                    if not qk and not merged:
                        asked.append(record_key_parts(ref, request, qk=True, dtype=dtype))  # a Q/K record serves both
                for parts in asked:
                    record = self._lookup(parts, result)
                    if record is not None and qk and record.has_qk and record.precision == CACHED_HALF_VECTORS:
                        coarse = cache_key(parts)
                        continue
                    if record is not None:
                        _check_length(record, max_tokens)
                        if ref.source == "local" and record.model_id != ref.model_id:
                            # Entries made before local folders were named by their folder
                            # name hold the build machine's absolute path: never publish it.
                            record = dataclasses.replace(record, model_id=ref.model_id)
                        result.record, result.source = record, "cache"
                        return None
        ref = refs[0]
        if coarse is not None:
            what = (
                f"cache entry {coarse[:12]} ({ref.short}, text {_preview(request.text)}) holds query/key vectors an older "
                "attndocs stored as float16, too coarse for the neuron view's scores"
            )
            if mode == "frozen" or unavailable is not None:
                why = "the execution mode is frozen" if mode == "frozen" else f"the model cannot be loaded here ({unavailable.message})"
                raise CacheError(
                    f"{what}, and {why}",
                    "build once where the model runs, with execution mode auto (or run attndocs precompute), and commit the cache",
                )
            log.info("attndocs: %s; recomputing it", what)
        if mode == "frozen":
            raise CacheError(
                f"no cached record for this figure ({ref.short}, text {_preview(request.text)}) and the execution mode is frozen",
                "build once with execution mode auto, or run attndocs precompute, and keep the cache",
            )
        if unavailable is not None:
            raise unavailable  # a miss must be computed, and the model is not here
        # dtype auto is keyed as float32 until the load says otherwise (see _compute).
        pending = _Pending(index, ref, record_key_parts(ref, request, dtype=lookup_dtypes(settings.dtype)[0], words=merged), request, merged)
        if self.computes is not None and not self.computes(pending.key):
            result.source = ELSEWHERE
            return None
        return pending

    def _refs_in_cache(self, name: str, revision: str | None) -> list[ModelRef]:
        """The revisions of ``name`` that cached records were made from, latest used first."""
        identity = cached_identity(name, revision, self.settings.model_aliases)
        if identity is None:
            return []
        model_id, source, alias = identity
        if self._cached_models is None:
            self._cached_models = self._models_in_cache()
        # A bundled model's revision is a content hash, a hub model's a commit: the bundled
        # SmolLM2 (a quantised conversion) shares its hub id but never serves the hub model.
        form = CONTENT_HASH if source == "bundled" else HUB_COMMIT
        return [
            ModelRef(alias or model_id, model_id, rev, source, kind, model_type, alias=alias)
            for rev, kind, model_type in self._cached_models.get(model_id, [])
            if (revision is None or rev == revision) and form.fullmatch(rev)
        ]

    def _hub_models_in_cache(self) -> list[str]:
        """Hub ids the cache holds figures of (suggested for a misspelt name; a torch-free CI has no other list)."""
        if self._cached_models is None:
            self._cached_models = self._models_in_cache()
        return [model_id for model_id, revisions in self._cached_models.items() if any(HUB_COMMIT.fullmatch(rev) for rev, _, _ in revisions)]

    def _models_in_cache(self) -> dict[str, list[tuple[str, str, str]]]:
        """model id -> ``(revision, kind, model_type)`` of its cached records, latest used first."""
        latest: dict[tuple[str, str], tuple[float, str, str]] = {}
        try:
            entries = list(self.cache.entries())  # headers only
        except CacheError:
            return {}
        for e in entries:
            if e.damaged or not e.revision:
                continue
            seen = latest.get((e.model_id, e.revision))
            if seen is None or e.mtime > seen[0]:
                latest[(e.model_id, e.revision)] = (e.mtime, e.kind, e.model_type)
        out: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        for (model_id, rev), (_, kind, model_type) in sorted(latest.items(), key=lambda item: -item[1][0]):
            out[model_id].append((rev, kind, model_type))
        return out

    def _lookup(self, parts: dict[str, Any], result: FigureResult) -> AttentionRecord | None:
        try:
            # The parts, not only their key: the entry must hold the record of this very
            # request (model, revision, texts), whatever its metadata says its key is.
            return self.cache.get(cache_key(parts), parts)
        except DamagedEntryError as exc:
            message = f"{exc}; it is not used and the figure is recomputed"
            result.warnings.append(message)
            log.warning("attndocs: %s", message)
            return None

    def _compute(self, pending: list[_Pending], results: list[FigureResult], counter: _Counter, weights: list[int]) -> None:
        from .extract.run import extract
        from .models import load_model
        from .models.load import is_loaded

        by_model: dict[tuple[str, str], list[_Pending]] = defaultdict(list)
        for item in pending:
            by_model[(item.ref.model_id, item.ref.revision)].append(item)
        for items in by_model.values():
            ref = items[0].ref
            share = sum(weights[item.index] for item in items)
            placement = {"dtype": self.settings.dtype, "device_map": self.settings.device_map, "max_memory": self.settings.max_memory}
            fresh = not is_loaded(ref, self.settings.device, **placement)
            if fresh:
                counter.report(0, f"loading {ref.short}")
            try:
                loaded = load_model(ref, self.settings.device, **placement)
                self.stats.models_loaded += int(fresh)
            except AttndocsError as exc:
                for item in items:
                    results[item.index].error = exc
                counter.report(share, f"{ref.short} could not be loaded")
                continue
            ran_in = getattr(loaded, "dtype", "float32")
            for item in items:
                if item.parts["dtype"] != ran_in:  # dtype auto became a lower precision on this machine
                    item.parts = record_key_parts(item.ref, item.request, dtype=ran_in, words=item.words)
            counter.report(0, f"computing {share} figure(s) with {ref.short}")
            # Each exact record is dropped as soon as its stored form exists (see below).
            outcomes: list[AttentionRecord | AttndocsError | None] = list(extract(loaded, [item.request for item in items], self.settings.batch_size))
            for position, (item, outcome) in enumerate(zip(items, outcomes)):
                outcomes[position] = None
                result = results[item.index]
                if isinstance(outcome, AttndocsError):
                    result.error = outcome
                    continue
                try:
                    # What a cache read would refuse is not shown fresh either.
                    outcome.check()
                except RecordFormatError as exc:
                    result.error = ExecError(f"model '{ref.short}' gave attention that cannot be shown: {exc}")
                    continue
                if item.words:
                    # From the exact float32 attention, before it is companded for the cache.
                    try:
                        outcome = merge_words(outcome, token_style(loaded.tokenizer))
                    except ValueError as exc:
                        result.error = ExecError(f"the word pieces of model '{ref.short}' cannot be merged into words: {exc}")
                        continue
                outcome.key, outcome.key_parts = item.key, item.parts
                # Shown exactly as the cache gives it back later (attention companded, Q/K
                # float16), even where nothing can be stored: cold and warm builds render
                # byte-identical pages. `exact` callers (extract -o) keep the model's values.
                stored = outcome.as_cached()
                try:
                    self.cache.put(stored)
                except CacheError as exc:
                    result.warnings.append(str(exc))
                    log.warning("attndocs: %s", exc)
                result.record, result.source = (outcome if self.exact else stored), "computed"
            counter.report(share, f"done with {ref.short}")

    def _report(self, done: int, total: int, message: str) -> None:
        if self.progress is not None:
            # Messages name models and texts a page chose: every progress display gets them
            # with control characters escaped.
            self.progress(done, total, terminal_safe(message))


class _Counter:
    """One run's progress: ``done`` of ``total`` figures, starting at those that need no computing."""

    def __init__(self, total: int, to_compute: int, report: Callable[[int, int, str], None]) -> None:
        self.total, self.done, self._report = total, total - to_compute, report

    def start(self, results: Sequence[FigureResult], weights: Sequence[int]) -> None:
        """The first line: what the cache served (and what failed or waits) and what is left to compute."""
        tally: dict[str, int] = defaultdict(int)
        for result, weight in zip(results, weights):
            if result.error is not None:
                tally["failed"] += weight
            elif result.source in ("cache", "off", ELSEWHERE):
                tally[result.source] += weight
        parts = [f"{self.total} figure(s)", f"{tally['cache']} from the cache"]
        if tally["failed"]:
            parts.append(f"{tally['failed']} failed")
        if tally["off"]:
            parts.append(f"{tally['off']} not computed (execution mode off)")
        if tally[ELSEWHERE]:
            parts.append(f"{tally[ELSEWHERE]} left to other shards")
        if self.done < self.total:
            parts.append(f"{self.total - self.done} to compute")
        self._report(self.done, self.total, ", ".join(parts))

    def report(self, finished: int, message: str) -> None:
        self.done += finished
        self._report(self.done, self.total, message)


def _attach_second(result: FigureResult, second: FigureResult) -> None:
    """A comparison figure gets its second record, or that record's error as its own."""
    result.warnings.extend(second.warnings)
    if second.record is not None:
        if result.record is not None:
            result.compare = second.record
        return
    if result.error is not None or result.source == "off":
        return
    what = "compare-text" if result.options.compare_text is not None else "compare-model"
    if second.error is None:  # the execution mode is off: no second record, no figure
        result.record, result.source = None, "off"
        return
    error = copy.copy(second.error)
    error.message = f"{what}: {second.error.message}"
    error.args = (error.message,)
    result.record, result.error, result.source = None, error, "error"


def record_key(ref: ModelRef, request: ExtractRequest, *, qk: bool | None = None, dtype: str = "float32") -> str:
    """The cache key of one extraction (DESIGN.md, Cache)."""
    return cache_key(record_key_parts(ref, request, qk=qk, dtype=dtype))


def lookup_dtypes(setting: str) -> tuple[str, ...]:
    """The precisions whose records serve a figure under the ``dtype`` setting, best first.

    ``auto`` is resolved only when a model loads, by the memory of the machine that loads
    it; a record made in any precision serves it, so a cache filled on a GPU that needed
    bfloat16 still serves a build on a machine without torch.
    """
    return ("float32", "bfloat16", "float16") if setting == "auto" else (setting,)


def record_key_parts(
    ref: ModelRef, request: ExtractRequest, *, qk: bool | None = None, dtype: str = "float32", words: bool = False
) -> dict[str, Any]:
    """What the cache key of one extraction is computed from; stored with the entry.

    A local folder is known by its content hash alone, not by where it lies, so a cache
    committed with the docs serves the same folder checked out anywhere else. ``dtype``
    is the precision the model ran in: float32 keys are what they always were. ``words``:
    the record merges pieces into words (a key part only then; attndocs.words).
    """
    parts = _extraction_parts(ref, request, qk=qk, dtype=dtype)
    if words:
        parts["words"] = dict(WORDS_KEY_PART)
    if request.image is not None:
        # The image's content hash, never its name: a key part only then (attndocs.vision).
        parts["image"] = request.image.key_part()
    if request.generate is not None:
        # Every generation setting, as the record's generation metadata holds them; a key part
        # only then, so figures that generate nothing keep their keys.
        from .extract.generate import settings_of

        parts["generate"] = settings_of(request)
    return parts


def _extraction_parts(ref: ModelRef, request: ExtractRequest, *, qk: bool | None, dtype: str) -> dict[str, Any]:
    return {
        "model": LOCAL_FOLDER if ref.source == "local" else ref.model_id,
        "revision": ref.revision,
        "text": request.text,
        "text_b": request.text_b,
        "target": request.target,
        "tokenizer": {"add_special_tokens": True},
        "dtype": dtype,
        "extraction": {"attn_implementation": "eager", "qk": request.qk if qk is None else qk},
    }


def _check_length(record: AttentionRecord, max_tokens: int) -> None:
    from .errors import InputError

    for name in record.sides:
        count = piece_count(record, name)  # a record of words counts the pieces the model read
        if count > max_tokens:
            raise InputError(
                f"the {name} text has {count} tokens, more than max-tokens ({max_tokens})",
                "shorten the text or raise max-tokens",
            )


def _preview(text: str, width: int = 40) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= width else flat[: width - 1] + "…")


def _read_image(path: str | None) -> Any:
    """The image option's file, read and checked (attndocs.vision.read_image); None without one."""
    if path is None:
        return None
    from .vision import read_image

    return read_image(path)
