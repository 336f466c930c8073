"""pandoc and Quarto: the Python half of the attndocs Lua filter (``attndocs/hosts/attndocs.lua``).

The filter collects every ```` ```{.attention} ```` block of a document and runs
``attndocs pandoc-figures`` once, with a JSON request on standard input::

    {"version": 1, "format": "html5", "html": true, "inputs": ["page.md"],
     "api-version": [1, 22, 2, 1], "verbosity": "WARNING",
     "settings": {...the document's `attndocs:` metadata...},
     "blocks": [{"text": "...", "identifier": "", "classes": [], "attributes": {"view": "model"}}]}

:func:`answer` parses each block (attributes plus the fence's ``key: value`` lines, the
syntax of :mod:`attndocs.fence`), hands them to one :class:`~attndocs.fence.FigureBatch`
(one pipeline run: one load per model, the cache the other hosts use), and answers with a
pandoc JSON document: one Div per block (the figure or a placeholder; for formats other
than HTML, which run no scripts, a still picture of the figure's opening view drawn by
:mod:`attndocs.still`, or the block's text and why) and, for HTML, a last Div of assets
(stylesheet, script).
Warnings go to standard error as ``page.md:LINE: message``. pandoc gives no source
positions, so each block's line is found by matching it against the fences of the input
files.

``attndocs quarto-extension DIR`` writes the same filter as a Quarto extension folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from . import __version__
from .errors import AttndocsError, InputError, OptionError, OutputError
from .fence import (
    AttentionBlock,
    FenceError,
    FigureBatch,
    GivenOption,
    ParsedBlock,
    Problem,
    local_model,
    models_in_memory,
    normalise_newlines,
    parse_with_options,
)
from .options import FigureOptions, SiteSettings, option_name, settings_fields
from .text import terminal_safe

REQUEST_VERSION = 1
FILTER_NAME = "attndocs.lua"
STDIN = "<stdin>"
# pandoc-types 1.22 (pandoc 2.17); a request names the version of the pandoc that sent it.
DEFAULT_API_VERSION = [1, 22, 2, 1]
# Settings of the `attndocs:` metadata map that are not SiteSettings.
EXTRA_SETTINGS = ("strict",)

def filter_path() -> Path:
    """The Lua filter shipped in the package: ``pandoc --lua-filter PATH``."""
    return Path(str(resources.files("attndocs") / "hosts" / FILTER_NAME))


# -- the request ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RequestBlock:
    """One ``attention`` code block as pandoc read it."""

    text: str
    identifier: str = ""
    classes: tuple[str, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FilterRequest:
    """What the Lua filter sends: the document's blocks, inputs, output format and settings."""

    blocks: list[RequestBlock]
    inputs: list[str]
    html: bool = True
    format: str = "html"
    api_version: list[int] = field(default_factory=lambda: list(DEFAULT_API_VERSION))
    verbosity: str = "WARNING"
    settings: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: bytes | str) -> FilterRequest:
        """Parse and check a request; InputError for anything that is not one."""
        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(
                f"the pandoc filter's request is not JSON ({exc})", "run attndocs pandoc-figures from attndocs.lua only"
            ) from None
        if not isinstance(raw, dict) or raw.get("version") != REQUEST_VERSION:
            found = raw.get("version") if isinstance(raw, dict) else None
            raise InputError(
                f"the pandoc filter's request has version {found!r}, this attndocs reads version {REQUEST_VERSION}",
                "use the filter of this attndocs: attndocs pandoc-filter prints its path (attndocs quarto-extension rewrites a Quarto copy)",
            )
        blocks = []
        for item in _list(raw.get("blocks"), "blocks"):
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                raise InputError("the pandoc filter's request has a block without text")
            attributes = _mapping(item.get("attributes"), "attributes")
            blocks.append(
                RequestBlock(
                    text=item["text"],
                    identifier=str(item.get("identifier") or ""),
                    classes=tuple(str(c) for c in _list(item.get("classes"), "classes")),
                    attributes={str(k): str(v) for k, v in attributes.items()},
                )
            )
        api = raw.get("api-version") or DEFAULT_API_VERSION
        if not isinstance(api, list) or not all(isinstance(part, int) for part in api):
            raise InputError("the pandoc filter's request has a bad api-version")
        return cls(
            blocks=blocks,
            inputs=[str(name) for name in _list(raw.get("inputs"), "inputs")],
            html=bool(raw.get("html", True)),
            format=str(raw.get("format") or "html"),
            api_version=api,
            verbosity=str(raw.get("verbosity") or "WARNING"),
            settings=_mapping(raw.get("settings"), "settings"),
        )


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(f"the pandoc filter's request: {what} must be a list")
    return value


def _mapping(value: Any, what: str) -> dict[str, Any]:
    # The filter's JSON writer cannot tell an empty map from an empty list.
    if value is None or value == []:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"the pandoc filter's request: {what} must be a map")
    return value


# -- where each block is in the input files -------------------------------------------------
_FENCE = re.compile(r"([ \t]*)(`{3,}|~{3,})(.*)")
_BRACE_CLASS = re.compile(r"(?:^|[\s{])\.attention(?=[\s}]|$)")


@dataclass
class SourceFence:
    page: str
    line: int  # the opening fence's line, 1-based
    body: str  # comparable form (see _comparable)
    used: bool = False


def _is_attention_info(info: str) -> bool:
    info = info.strip()
    if info.startswith("{"):
        return bool(_BRACE_CLASS.search(info))
    words = info.split()
    return bool(words) and words[0].lstrip(".") == "attention"


def _comparable(text: str) -> str:
    """A body as pandoc's reader and the file may differ on: indentation, tabs, trailing spaces."""
    lines = [" ".join(line.split()) for line in normalise_newlines(text).split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def source_fences(page: str, text: str) -> list[SourceFence]:
    """The attention fences of one input file, in order; other fenced blocks are skipped whole."""
    lines = normalise_newlines(text).split("\n")
    found: list[SourceFence] = []
    i = 0
    while i < len(lines):
        match = _FENCE.fullmatch(lines[i])
        if not match or (match.group(2)[0] == "`" and "`" in match.group(3)):
            i += 1
            continue
        fence = match.group(2)
        end = next(
            (
                j
                for j in range(i + 1, len(lines))
                if (rest := lines[j].strip()) and len(rest) >= len(fence) and not rest.lstrip(fence[0])
            ),
            len(lines),
        )
        if _is_attention_info(match.group(3)):
            found.append(SourceFence(page, i + 1, _comparable("\n".join(lines[i + 1 : end]))))
        i = end + 1
    return found


def locate(blocks: Sequence[RequestBlock], inputs: Sequence[str]) -> list[tuple[str, int]]:
    """``(page, line)`` of each block: its fence in the input files, matched in document order.

    A block read from standard input is ``<stdin>`` with no line; one that matches no fence
    (a filter before this one made it) is named by the first input, with no line.
    """
    fences: list[SourceFence] = []
    for name in inputs:
        if name == "-":
            continue
        try:
            data = Path(name).read_bytes()
        except OSError:
            continue
        fences += source_fences(name, data.decode("utf-8-sig", errors="replace"))
    default = STDIN if not inputs or "-" in inputs else inputs[0]
    places = []
    position = 0
    for block in blocks:
        wanted = _comparable(block.text)
        # Forward from the last match first (document order), then anywhere still unused.
        candidates = fences[position:] + fences[:position]
        match = next((f for f in candidates if not f.used and f.body == wanted), None)
        if match is None:
            places.append((default, 0))
            continue
        match.used = True
        position = fences.index(match) + 1
        places.append((match.page, match.line))
    return places


# -- one block's options ----------------------------------------------------------------------
def parse_figure(block: RequestBlock, line: int) -> ParsedBlock:
    """Options of one block: its attributes, id and classes, then its ``key: value`` lines and text.

    Raises :class:`FenceError` naming the page line (0 when the line is unknown).
    """
    given = [GivenOption(key, value, line, f"as the attribute {key}") for key, value in block.attributes.items()]
    if block.identifier:
        given.append(GivenOption("name", block.identifier, line, f"as the id #{block.identifier}"))
    if block.classes:
        given.append(GivenOption("class", " ".join(block.classes), line, "as classes"))
    try:
        return parse_with_options(block.text, given, first_line=line + 1 if line else 1, line=line)
    except FenceError as exc:
        raise exc if line else FenceError(exc.message, exc.hint, line=0) from None


# -- settings ---------------------------------------------------------------------------------
@dataclass
class DocumentSettings:
    """The `attndocs:` metadata map: SiteSettings, and whether warnings fail the document."""

    settings: SiteSettings
    strict: bool = False
    base_dir: Path = field(default_factory=Path.cwd)


def document_settings(values: Mapping[str, Any], inputs: Sequence[str]) -> DocumentSettings:
    """SiteSettings from the document's metadata; relative paths are relative to its (first) file.

    The cache defaults to ``.cache/attndocs`` beside the input file (the working folder for
    standard input); ``$ATTNDOCS_CACHE_DIR`` wins over both, as it does for ``attndocs build``.
    """
    files = [Path(name) for name in inputs if name != "-"]
    base = files[0].resolve().parent if files else Path.cwd()
    values = {str(k).replace("-", "_"): v for k, v in values.items()}
    strict = values.pop("strict", False)
    known = {f.name for f in settings_fields()}
    for key in values:
        if key not in known:
            allowed = ", ".join(sorted([*EXTRA_SETTINGS, *(option_name(f) for f in settings_fields())]))
            raise OptionError(f"the document's attndocs metadata: unknown setting '{key}'", f"known: {allowed}")
    try:  # read as every true/false setting is read ("yes", "on", a YAML boolean ...)
        strict_flag = SiteSettings.from_mapping({"raise_on_error": strict}).raise_on_error
    except OptionError:
        raise OptionError("the document's attndocs metadata: strict must be true or false") from None
    cache = os.environ.get("ATTNDOCS_CACHE_DIR") or values.get("cache_dir") or ".cache/attndocs"
    if isinstance(cache, str):
        values["cache_dir"] = str((base / os.path.expanduser(cache)).resolve())
    if isinstance(values.get("default_model"), str):
        values["default_model"] = local_model(values["default_model"], base)
    if isinstance(values.get("model_aliases"), dict):
        values["model_aliases"] = {
            k: local_model(v, base) if isinstance(v, str) else v for k, v in values["model_aliases"].items()
        }
    try:
        settings = SiteSettings.from_mapping(values)
    except OptionError as exc:
        raise OptionError("the document's attndocs metadata: " + exc.message, exc.hint) from None
    if settings.embed == "file":
        raise OptionError(
            "the document's attndocs metadata: embed: file is not available with pandoc",
            "pandoc writes one file, so figures carry their data inline: leave embed unset (or inline)",
        )
    return DocumentSettings(settings, bool(strict_flag), base)


# -- the answer -------------------------------------------------------------------------------
@dataclass
class FilterAnswer:
    """The pandoc JSON document for the filter, the warnings, and the summary line."""

    document: dict[str, Any]
    problems: list[str]
    summary: str
    failed: int = 0


def _where(page: str, line: int) -> str:
    return f"{page}:{line}" if line else page


def _raw(html: str) -> dict[str, Any]:
    return {"t": "RawBlock", "c": ["html", html]}


def _div(blocks: list[dict[str, Any]], classes: Sequence[str]) -> dict[str, Any]:
    return {"t": "Div", "c": [["", list(classes), []], blocks]}


def _inlines(text: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n, line in enumerate(text.split("\n")):
        if n:
            out.append({"t": "LineBreak"})
        for k, word in enumerate(line.split()):
            if k:
                out.append({"t": "Space"})
            out.append({"t": "Str", "c": word})
    return out


def _text_fallback(block: RequestBlock, options: FigureOptions | None, reason: str) -> list[dict[str, Any]]:
    """In place of a figure that has no picture: the text the model reads and why."""
    text = options.text if options is not None else block.text
    if options is not None:
        what = f"An interactive attention figure ({options.view} view, model {options.model or 'the default model'})"
    else:
        what = "An interactive attention figure"
    note = f"{what} could not be made: {reason}"
    blocks = [{"t": "Para", "c": _inlines(text)}, {"t": "Para", "c": [{"t": "Emph", "c": _inlines(note)}]}]
    if options is not None and options.caption:
        blocks.insert(0, {"t": "Para", "c": [{"t": "Strong", "c": _inlines(options.caption)}]})
    return blocks


def _stills_dir(settings: SiteSettings) -> Path:
    """Where still pictures go: ``attndocs-stills`` beside the cache folder (never inside it)."""
    cache = Path(settings.cache_dir or ".cache/attndocs").resolve()
    return cache.parent / "attndocs-stills"


def _stills(
    request: FilterRequest, batch: FigureBatch, tokens: Sequence[str], folder: Path
) -> tuple[list[dict[str, Any]], list[str], int]:
    """Blocks for a format without scripts: each figure as a PNG of its opening view, else its text."""
    from .render import describe
    from .still import still_png

    figures = {figure.token: figure for figure in batch.figures}
    blocks, problems, made = [], [], 0
    for block, token in zip(request.blocks, tokens):
        figure = figures[token]
        result = figure.result
        error = figure.error or (result.error if result is not None else None)
        for warning in result.warnings if result is not None else ():
            problems.append(str(Problem(figure.where(), warning)))
        if error is None and result is not None and result.record is not None:
            try:
                png = still_png(result.record, figure.options)  # type: ignore[arg-type]
            except AttndocsError as exc:
                error = exc
            else:
                path = folder / f"{hashlib.sha256(png).hexdigest()[:16]}.png"
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                    if not path.is_file():
                        path.write_bytes(png)
                except OSError as exc:
                    raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
                options = figure.options
                alt = options.alt or describe(result.record, options)  # type: ignore[union-attr,arg-type]
                image = {"t": "Image", "c": [["", [], []], _inlines(options.caption or alt), [str(path), "fig:"]]}  # type: ignore[union-attr]
                blocks.append(_div([{"t": "Para", "c": [image]}], ["attndocs-still"]))
                made += 1
                continue
        if error is not None:
            problems.append(str(Problem(_where(figure.page, getattr(error, "line", 0) or figure.line), str(error))))
        reason = str(error) if error is not None else "not computed (the execution mode is off)"
        blocks.append(_div(_text_fallback(block, figure.options, reason), ["attndocs-fallback"]))
    return blocks, problems, made


def answer(request: FilterRequest, config: DocumentSettings, *, progress: Any = None) -> FilterAnswer:
    """Every block of the document made into what replaces it, in one pipeline run."""
    from .pipeline import Pipeline
    from .render import bundle_css, bundle_js

    started = time.perf_counter()
    places = locate(request.blocks, request.inputs)
    # Pages are named as pandoc was given them (relative to its working folder, or absolute),
    # so an image resolves from its document's folder, as on every other host.
    batch = FigureBatch(base_dir=config.base_dir, docs_dir=Path.cwd())
    tokens = []
    for block, (page, line) in zip(request.blocks, places):
        parsed, error = None, None
        try:
            parsed = parse_figure(block, line)
        except FenceError as exc:
            error = exc
        tokens.append(batch.add(page, AttentionBlock(0, 0, line, "", block.text, parsed, error)))

    loads_before = models_in_memory()
    batch.compute(Pipeline(config.settings, progress=progress))
    if not request.html:
        # No scripts run there: a still picture of each figure's opening view (attndocs.still).
        blocks, problems, made = _stills(request, batch, tokens, _stills_dir(config.settings))
        loads = models_in_memory() - loads_before
        n = len(blocks)
        summary = (
            f"{n} figure{'s' if n != 1 else ''} as still pictures for {request.format} (it runs no scripts): "
            f"{made} drawn, {n - made} as text; {loads} model load(s); {time.perf_counter() - started:.1f} s"
        )
        document = {"pandoc-api-version": request.api_version, "meta": {}, "blocks": blocks}
        return FilterAnswer(document, problems, summary, failed=n - made)

    rendered = batch.render(embed="inline", page_budget=config.settings.page_budget)
    blocks = [_div([_raw(rendered.html[token])], ["attndocs-figure-block"]) for token in tokens]
    assets = [_raw(f"<style>{bundle_css()}</style>"), _raw(f"<script>{bundle_js()}</script>")]
    blocks.append(_div(assets, ["attndocs-assets"]))
    loads = models_in_memory() - loads_before
    summary = f"{rendered.summary()}; {loads} model load(s); {time.perf_counter() - started:.1f} s"
    document = {"pandoc-api-version": request.api_version, "meta": {}, "blocks": blocks}
    return FilterAnswer(document, [str(p) for p in rendered.problems], summary, failed=rendered.failed)


def run_filter(data: bytes, out: Any, err: Any) -> int:
    """`attndocs pandoc-figures`: the request from ``data``, the answer to ``out``; 1 when the document fails."""
    request = FilterRequest.from_json(data)
    config = document_settings(request.settings, request.inputs)  # a bad setting stops here, before any model
    quiet = request.verbosity == "ERROR"
    verbose = request.verbosity == "INFO"

    def progress(done: int, total: int, message: str) -> None:
        print(terminal_safe(f"attndocs: [{done}/{total}] {message}"), file=err, flush=True)

    # Whatever a library prints while models run must not end up in the JSON on stdout.
    with contextlib.redirect_stdout(err):
        result = answer(request, config, progress=progress if verbose else None)
    if not quiet:
        for problem in result.problems:
            print(f"attndocs: warning: {problem}", file=err)
    if verbose:
        print(f"attndocs: {result.summary}", file=err)
    if config.strict and result.problems:
        print(f"attndocs: error: {len(result.problems)} warning(s) and strict is on", file=err)
        return 1
    if result.failed and config.settings.raise_on_error:
        print(f"attndocs: error: {result.failed} figure(s) failed and raise_on_error is on", file=err)
        return 1
    out.write(json.dumps(result.document, ensure_ascii=False).encode("utf-8"))
    out.flush()
    return 0


# -- Quarto -----------------------------------------------------------------------------------
QUARTO_NOTE = (
    "Quarto is untested with attndocs: it could not be installed where attndocs is developed. "
    "The filter is the one tested with pandoc 2.17; please report what you find."
)


def _semver(version: str) -> str:
    # Quarto reads an extension's version as semver: "0.1.0.dev0" becomes "0.1.0".
    match = re.match(r"\d+(?:\.\d+){0,2}", version)
    return match.group(0) if match else "0.0.0"


def extension_files() -> dict[str, str]:
    """The files of ``_extensions/attndocs/``: the manifest and the filter."""
    manifest = (
        "# Written by `attndocs quarto-extension`; rewrite it with the same command after upgrading attndocs.\n"
        "title: attndocs\n"
        "author: attndocs\n"
        f"version: {json.dumps(_semver(__version__))}\n"
        "contributes:\n"
        "  filters:\n"
        f"    - {FILTER_NAME}\n"
    )
    return {"_extension.yml": manifest, FILTER_NAME: filter_path().read_text(encoding="utf-8")}


@dataclass
class ExtensionReport:
    folder: Path
    written: list[str]
    unchanged: list[str]


def write_quarto_extension(project: str | Path, *, force: bool = False) -> ExtensionReport:
    """Write ``PROJECT/_extensions/attndocs/``; a changed file there is refused unless ``force``."""
    folder = Path(project) / "_extensions" / "attndocs"
    files = extension_files()
    changed, unchanged = [], []
    for name, content in files.items():
        path = folder / name
        try:
            if path.is_file() and path.read_text(encoding="utf-8") == content:
                unchanged.append(name)
            elif path.exists():
                changed.append(name)
        except (OSError, UnicodeDecodeError):
            changed.append(name)
    if changed and not force:
        raise OutputError(
            f"{folder} already holds a different {', '.join(changed)}",
            "it may hold your own changes: pass --force to replace it",
        )
    written = []
    for name, content in files.items():
        if name in unchanged:
            continue
        path = folder / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
        written.append(name)
    return ExtensionReport(folder, written, unchanged)


def quarto_instructions() -> str:
    return "\n".join(
        [
            "Add to _quarto.yml (or to a page's front matter):",
            "",
            "  filters:",
            "    - attndocs",
            "",
            "and run Quarto from an environment where the attndocs command works (or set ATTNDOCS_COMMAND).",
            QUARTO_NOTE,
        ]
    )
