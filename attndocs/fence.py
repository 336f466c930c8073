"""The one parser of the ```attention fence, shared by the MkDocs plugin, `attndocs build` and precompute.

A block looks like this in a Markdown page::

    ```attention
    model: minilm
    view: model
    text-b: The cat lay on the rug.

    The cat sat on the mat.
    ```

Option lines ``key: value`` come first, then one blank line, then the text the model reads.
A block with no options starts with its text (or with a blank line, when the text's first
line would read like an option). Option names and values are checked against
:class:`~attndocs.options.FigureOptions`; every error carries the line it is about, so a
front-end can say "page.md:12: ...".

Front-ends that get the page text before Markdown does (the site builder, MkDocs without
pymdownx.superfences) swap each block for a :class:`Slots` token with
:func:`replace_blocks`, let Markdown render the page, and put the figures in afterwards
with :meth:`Slots.fill`, so Markdown never touches the figure HTML.

:class:`FigureBatch` is what those front-ends share beyond parsing: it collects the blocks
of a whole build, hands them to the pipeline in one run, and turns each outcome into the
HTML that :mod:`attndocs.render` makes for it (a figure, or a placeholder and a warning).
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import AttndocsError, OptionError
from .options import MAX_FIGURES_PER_PAGE, FigureOptions, figure_fields, option_name, record_identity, too_many_figures
from .pipeline import FigureResult, Pipeline
from .render import over_budget, render_figure, render_placeholder
from .text import terminal_safe
from .vision import resolved_options

FENCE_NAME = "attention"

# Names a page may use, hyphenated and underscored, mapped to the hyphenated form.
_KNOWN = {n: n for n in (option_name(f) for f in figure_fields())}
_KNOWN.update({n.replace("-", "_"): n for n in list(_KNOWN)})
# An option's name. The lines themselves are taken apart with str methods, not one regex:
# a pattern like "[ \t]*(.*?)[ \t]*" retries its lazy part at every position of a run of
# spaces, quadratic in the run (a 200 kB fence line once took 68 s). Every step below
# reads each character of a line a bounded number of times.
_OPTION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_BLANKS = " \t"


class FenceError(OptionError):
    """A block that cannot become a figure; ``line`` is the 1-based line in the page."""

    def __init__(self, message: str, hint: str | None = None, *, line: int) -> None:
        super().__init__(message, hint)
        self.line = line


@dataclass(frozen=True)
class ParsedBlock:
    """A block's options with the line each came from."""

    options: FigureOptions
    option_lines: Mapping[str, int]  # hyphenated option name -> line
    text_line: int

    def line_of(self, option: str, default: int) -> int:
        return self.option_lines.get(option.replace("_", "-"), default)


@dataclass(frozen=True)
class AttentionBlock:
    """One ```attention block found in a page."""

    start: int  # offset of the opening fence line in the normalised page text
    end: int  # offset just past the closing fence line
    line: int  # 1-based line of the opening fence
    indent: str  # the opening fence's indentation, kept for what replaces the block
    body: str  # the lines between the fences, without the fence's indentation
    parsed: ParsedBlock | None = None
    error: FenceError | None = None

    @property
    def options(self) -> FigureOptions | None:
        return self.parsed.options if self.parsed else None


def decode_page(data: bytes) -> tuple[str, tuple[int, str] | None]:
    """A page's bytes as text, and ``(line, message)`` when they are not valid UTF-8.

    Bad bytes become U+FFFD, so the rest of the page still builds; the message names the
    first bad byte, and ``line`` is its line in the file.
    """
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        message = f"not valid UTF-8 (byte 0x{data[exc.start]:02x}); bad bytes are shown as \ufffd: save the file as UTF-8"
        return data.decode("utf-8-sig", errors="replace"), (line, message)


def normalise_newlines(text: str) -> str:
    """``\\r\\n`` and lone ``\\r`` become ``\\n``, as Markdown readers do."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _option_line(line: str) -> tuple[str, str] | None:
    """``(key, value)`` of a ``key: value`` line, else None.

    "key:" must be followed by a blank or the end of the line, so "https://..." is not an
    option line. Spaces and tabs around the key and the value are dropped.
    """
    rest = line.lstrip(_BLANKS)
    match = _OPTION_NAME.match(rest)
    if not match:
        return None
    after = rest[match.end() :].lstrip(_BLANKS)
    if not after.startswith(":"):
        return None
    value = after[1:]
    if value and value[0] not in _BLANKS:
        return None
    return match.group(0), _unquote(value.strip(_BLANKS))


def _fence_open(line: str) -> tuple[str, str, str] | None:
    """``(indent, fence, info)`` of a line opening a fenced block (3+ backticks or tildes), else None."""
    rest = line.lstrip(_BLANKS)
    if not rest or rest[0] not in "`~":
        return None
    after = rest.lstrip(rest[0])
    run = len(rest) - len(after)
    if run < 3:
        return None
    return line[: len(line) - len(rest)], rest[:run], after.strip(_BLANKS)


def _closes(line: str, fence: str) -> bool:
    """Whether ``line`` closes a block opened by ``fence``: the same character, at least as many."""
    rest = line.strip(_BLANKS)
    return len(rest) >= len(fence) and not rest.lstrip(fence[0])


def _unquote(value: str) -> str:
    # A quoted value keeps spaces at its ends or a leading character that reads as syntax.
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def parse_block(body: str, *, first_line: int = 1, given: Collection[str] = ()) -> ParsedBlock:
    """Options and text of one block body; raises :class:`FenceError` naming the line.

    ``first_line`` is the page line of the body's first line (the line after the fence).
    ``given``: options a host gave outside the body (pandoc attributes), which may make the
    text optional (an ``image`` figure reads none).
    """
    if not isinstance(body, str):
        raise FenceError(f"a block body must be text, not {type(body).__name__}", line=first_line)
    lines = normalise_newlines(body).split("\n")
    blank = next((i for i, line in enumerate(lines) if not line.strip()), len(lines))
    head = lines[:blank]
    shaped = [_option_line(line) for line in head]
    if blank == 0:
        option_rows: list[int] = []
        text_start = 1
    elif all(shaped):
        option_rows = list(range(blank))
        text_start = blank + 1
    elif shaped[0] is not None and shaped[0][0] in _KNOWN:
        bad = next(i for i, s in enumerate(shaped) if s is None)
        raise FenceError(
            f"expected an option line 'key: value' or a blank line, found {_preview(head[bad])}",
            "leave one blank line between the options and the text",
            line=first_line + bad,
        )
    else:
        option_rows = []  # no options: the whole body is the text
        text_start = 0

    values: dict[str, str] = {}
    option_lines: dict[str, int] = {}
    for i in option_rows:
        key, value = shaped[i]  # type: ignore[misc]
        line_no = first_line + i
        name = _KNOWN.get(key)
        if name is None:
            if key.lower() == "text":
                raise FenceError("'text' is not an option: the text is the block's content", "write it after one blank line", line=line_no)
            hint = "known options: " + ", ".join(sorted(set(_KNOWN.values())))
            if i == 0:
                hint += "; if this line is the text, start the block with a blank line"
            raise FenceError(f"unknown option '{key}'", hint, line=line_no)
        if name in values:
            raise FenceError(f"option '{name}' is given twice (lines {option_lines[name]} and {line_no})", line=line_no)
        try:
            FigureOptions.check_option(name, value)  # the value alone; checks across options come below
        except OptionError as exc:
            raise FenceError(exc.message, exc.hint, line=line_no) from None
        values[name] = value
        option_lines[name] = line_no

    text_lines = lines[text_start:]
    offset = next((i for i, line in enumerate(text_lines) if line.strip()), None)
    if offset is None and ("image" in values or "image" in given):
        offset = len(text_lines)  # an image figure reads no text (attndocs.vision)
    if offset is None:
        where = first_line + (option_rows[-1] if option_rows else 0)
        raise FenceError(
            "the attention block has no text",
            "after the option lines, leave one blank line and write the text the model reads",
            line=where,
        )
    text = "\n".join(text_lines).strip()
    text_line = first_line + text_start + offset
    try:
        options = FigureOptions.from_mapping({**values, "text": text})
    except OptionError as exc:  # the text itself is refused (too long, not UTF-8), or options that do not go together
        raise FenceError(exc.message, exc.hint, line=option_lines.get(getattr(exc, "option", ""), text_line)) from None
    return ParsedBlock(options=options, option_lines=option_lines, text_line=text_line)


@dataclass(frozen=True)
class GivenOption:
    """An option a host gives beside the block's body: a pandoc attribute, a MyST directive option."""

    name: str  # as the host wrote it (hyphens or underscores)
    value: Any
    line: int
    how: str = ""  # how it was given, for messages ("as the attribute view"); "" names its line


def parse_with_options(body: str, given: Sequence[GivenOption], *, first_line: int, line: int) -> ParsedBlock:
    """:func:`parse_block` of ``body`` with options given beside it, checked as the body's lines are.

    An option given both ways, or twice beside the body, is an error naming both places; an
    ``image`` given beside an empty body makes a figure with no text. ``line``: the block's
    own line, for errors that belong to no single option.
    """

    def where(option: GivenOption) -> str:
        return option.how or f"line {option.line}"

    names = {option.name.replace("_", "-") for option in given}
    parsed = parse_block(body, first_line=first_line, given=names)
    lines = dict(parsed.option_lines)
    values: dict[str, Any] = {}
    ways: dict[str, GivenOption] = {}
    for option in given:
        name = option.name.replace("_", "-")
        if name not in _KNOWN.values():
            if name.lower() == "text":
                raise FenceError("'text' is not an option: the text is the block's content", "write it in the block", line=option.line)
            suffix = f" ({option.how})" if option.how else ""
            hint = "known options: " + ", ".join(sorted(set(_KNOWN.values())))
            raise FenceError(f"unknown option '{option.name}'{suffix}", hint, line=option.line)
        if name in ways:
            raise FenceError(f"option '{name}' is given twice ({where(ways[name])} and {where(option)})", line=option.line)
        if name in lines:
            both = f"{option.how} and on line {lines[name]}" if option.how else f"lines {lines[name]} and {option.line}"
            raise FenceError(f"option '{name}' is given twice ({both})", line=option.line)
        try:
            FigureOptions.check_option(name, option.value)
        except OptionError as exc:
            raise FenceError(exc.message, exc.hint, line=option.line) from None
        values[name] = option.value
        ways[name] = option
    if not values:
        return parsed
    lines.update((name, option.line) for name, option in ways.items())
    try:
        options = parsed.options.replace(**{name.replace("-", "_"): value for name, value in values.items()})
    except OptionError as exc:  # options that do not go together
        raise FenceError(exc.message, exc.hint, line=lines.get(getattr(exc, "option", ""), line)) from None
    return ParsedBlock(options=options, option_lines=lines, text_line=parsed.text_line)


def _preview(line: str, width: int = 40) -> str:
    flat = line.strip()
    return repr(flat if len(flat) <= width else flat[: width - 1] + "…")


def _dedent(line: str, indent: str) -> str:
    if line.startswith(indent):
        return line[len(indent) :]
    stripped = line.lstrip(" \t")
    removed = len(line) - len(stripped)
    return line[min(removed, len(indent)) :]


def find_blocks(markdown: str) -> list[AttentionBlock]:
    """Every ```attention (or ~~~attention) block of a page, in order, parsed.

    Other fenced code blocks are skipped whole, so an ```attention example shown inside a
    ````markdown block is not a figure. A block that is never closed runs to the end of the
    page, as in CommonMark, and is reported as an error. Offsets refer to
    ``normalise_newlines(markdown)``.
    """
    if not isinstance(markdown, str):
        raise OptionError(f"a page must be text, not {type(markdown).__name__}", "decode it first (decode_page)")
    text = normalise_newlines(markdown)
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    blocks: list[AttentionBlock] = []
    i = 0
    while i < len(lines):
        opened = _fence_open(lines[i])
        # A backtick fence's info string may not hold a backtick (CommonMark): "```a`b" is text.
        if not opened or (opened[1][0] == "`" and "`" in opened[2]):
            i += 1
            continue
        indent, fence, info_string = opened
        info = info_string.split()
        end = next((j for j in range(i + 1, len(lines)) if _closes(lines[j], fence)), None)
        if not info or info[0] != FENCE_NAME:
            i = (end if end is not None else len(lines)) + 1
            continue
        body_lines = lines[i + 1 : end if end is not None else len(lines)]
        body = "\n".join(_dedent(line, indent) for line in body_lines)
        stop = min(starts[(end if end is not None else len(lines) - 1) + 1], len(text))
        parsed, error = None, None
        if end is None:
            error = FenceError(
                f"the {fence}{FENCE_NAME} block is never closed",
                f"end it with a line of {fence}",
                line=i + 1,
            )
        else:
            try:
                parsed = parse_block(body, first_line=i + 2)
            except FenceError as exc:
                error = exc
        blocks.append(AttentionBlock(starts[i], stop, i + 1, indent, body, parsed, error))
        i = (end if end is not None else len(lines)) + 1
    return blocks


def replace_blocks(markdown: str, replacement: Callable[[AttentionBlock], str]) -> tuple[str, list[AttentionBlock]]:
    """The page with each block replaced by ``replacement(block)`` as a paragraph of its own.

    The replacement keeps the block's indentation (so a block inside a list item or an
    admonition stays there) and gets blank lines around it, so Markdown wraps it in at
    most one ``<p>``. Returns the new text and the blocks.
    """
    text = normalise_newlines(markdown)
    blocks = find_blocks(text)
    out: list[str] = []
    pos = 0
    for block in blocks:
        out.append(text[pos : block.start])
        out.append(f"\n{block.indent}{replacement(block)}\n\n")
        pos = block.end
    out.append(text[pos:])
    return "".join(out), blocks


@dataclass
class Slots:
    """Tokens that stand in for figures while Markdown renders a page.

    A token is letters and digits only, so no Markdown extension changes it, and carries a
    random part, so no page text can collide with it.
    """

    nonce: str = field(default_factory=lambda: secrets.token_hex(6))
    count: int = 0

    def new(self) -> str:
        self.count += 1
        return f"attndocsslot{self.nonce}n{self.count}x"

    def pattern(self) -> re.Pattern[str]:
        return re.compile(rf"(<p>\s*)?(attndocsslot{self.nonce}n\d+x)(\s*</p>)?")

    def fill(self, html: str, figures: Mapping[str, str]) -> str:
        """``html`` with each token (and the ``<p>`` Markdown put around it) replaced."""

        def swap(match: re.Match[str]) -> str:
            token = match.group(2)
            if token not in figures:
                return match.group(0)
            inner = figures[token]
            # A token alone in its paragraph replaces the paragraph (a <figure> may not sit
            # inside a <p>); any other markup around it stays as Markdown wrote it.
            if match.group(1) and match.group(3):
                return inner
            return (match.group(1) or "") + inner + (match.group(3) or "")

        return self.pattern().sub(swap, html)


# -- a build's worth of blocks -----------------------------------------------------------
@dataclass
class PageFigure:
    """One block of one page, from parsing to the HTML that replaces it."""

    page: str  # the page as messages name it (a path relative to the docs folder)
    line: int  # the opening fence's line; 0 when unknown
    token: str  # the Slots token standing in for it
    options: FigureOptions | None = None
    error: AttndocsError | None = None
    result: FigureResult | None = None

    def where(self) -> str:
        return f"{self.page}:{self.line}" if self.line else self.page


@dataclass
class Problem:
    """A warning for the build log: ``page:line: message``."""

    where: str
    message: str

    def __str__(self) -> str:
        # Both halves come from pages (a file name, a quoted value): nothing reaches the
        # terminal raw.
        return terminal_safe(f"{self.where}: {self.message}")


@dataclass
class RenderedBatch:
    """What a front-end places: HTML per token, side files, warnings and a summary."""

    html: dict[str, str]
    files: dict[str, bytes]
    problems: list[Problem]
    pages: set[str]  # pages with at least one block (they get the assets)
    cached: int = 0
    computed: int = 0
    failed: int = 0
    off: int = 0

    def summary(self) -> str:
        n = len(self.html)
        text = f"{n} figure{'s' if n != 1 else ''} on {len(self.pages)} page{'s' if len(self.pages) != 1 else ''}: "
        text += f"{self.cached} cached, {self.computed} computed, {self.failed} failed"
        return text + (f", {self.off} not computed (execution mode off)" if self.off else "")


def local_model(name: str, base_dir: Path | None) -> str:
    """A model named by a folder relative to the site's config file becomes that folder's path.

    Builds run from any working folder, so ``./models/tiny`` means the folder beside
    mkdocs.yml or attndocs.toml (as the Sphinx extension reads it beside conf.py). Names
    that are no such folder (aliases, hub ids) pass unchanged.
    """
    if base_dir is None or not name or name.startswith(("/", "~")):
        return name
    candidate = base_dir / name
    try:
        # Absolute, with links kept: a linked model folder is named as the author named it.
        return os.path.abspath(candidate) if candidate.is_dir() else name
    except (OSError, ValueError):  # a name too long for a path, or one holding a NUL: not a folder
        return name


def models_in_memory() -> int:
    """How many models this process holds loaded; a build's new loads are the difference.

    (The pipeline's own counter also counts a model handed back from memory.) Never
    imports torch: until a model is loaded, the loading module is not even imported.
    """
    module = sys.modules.get("attndocs.models.load")
    return module.loaded_count() if module is not None else 0


def _extraction_key(options: FigureOptions) -> tuple:
    # What the pipeline's cache key depends on; figures that share it share one record.
    return record_identity(options)


class FigureBatch:
    """Every block of a build: collected page by page, computed in one pipeline run, rendered.

    One run means each model loads once and its misses are computed together, however the
    figures are spread over the pages. Figures with the same model and text share one
    record (with query/key vectors when any of them is a neuron view).
    """

    def __init__(self, slots: Slots | None = None, *, base_dir: Path | None = None, docs_dir: Path | None = None) -> None:
        """``base_dir``: the folder of the site's config file, for relative model folders.
        ``docs_dir``: the folder the page names are relative to, for relative image paths."""
        self.slots = slots or Slots()
        self.base_dir = base_dir
        self.docs_dir = docs_dir
        self.figures: list[PageFigure] = []
        self._per_page: dict[str, int] = {}

    def _append(self, figure: PageFigure) -> str:
        count = self._per_page.get(figure.page, 0) + 1
        self._per_page[figure.page] = count
        if count > MAX_FIGURES_PER_PAGE and figure.error is None:
            figure.options, figure.error = None, too_many_figures(MAX_FIGURES_PER_PAGE)
        if figure.options is not None and figure.options.model:
            figure.options = dataclasses.replace(figure.options, model=local_model(figure.options.model, self.base_dir))
        if figure.options is not None and self.docs_dir is not None:
            # An image is named relative to its page (attndocs.vision).
            figure.options = resolved_options(figure.options, (self.docs_dir / figure.page).parent)
        self.figures.append(figure)
        return figure.token

    def add(self, page: str, block: AttentionBlock) -> str:
        """Register a block found by :func:`find_blocks`; returns its token."""
        return self._append(PageFigure(page, block.line, self.slots.new(), block.options, block.error))

    def add_body(self, page: str, body: str, line: int = 0) -> str:
        """Register a block body handed over by another parser (pymdownx.superfences)."""
        figure = PageFigure(page, line, self.slots.new())
        try:
            figure.options = parse_block(body, first_line=line + 1 if line else 1).options
        except FenceError as exc:
            figure.error = exc
            if not line:  # without the page line, the body's own line would mislead
                figure.error = FenceError(exc.message, exc.hint, line=0)
        return self._append(figure)

    @property
    def pages(self) -> set[str]:
        return {f.page for f in self.figures}

    def compute(self, pipeline: Pipeline) -> None:
        """Run the pipeline once for every figure that parsed."""
        groups: dict[tuple, list[PageFigure]] = {}
        for figure in self.figures:
            if figure.options is not None:
                groups.setdefault(_extraction_key(figure.options), []).append(figure)
        if not groups:
            return
        members = list(groups.values())
        results = pipeline.run(
            [group[0].options for group in members],  # type: ignore[misc]
            qk=[any(f.options.view == "neuron" for f in group) for group in members],  # type: ignore[union-attr]
            counts=[len(group) for group in members],  # progress counts figures, not shared records
        )
        for group, result in zip(members, results):
            for figure in group:
                figure.result = result

    def render(
        self, *, embed: str = "inline", file_prefix: Callable[[str], str] = lambda page: "", page_budget: int = 0
    ) -> RenderedBatch:
        """HTML for every token: the figure, or a visible placeholder and a warning.

        A figure that costs its page more than ``page_budget`` bytes (0: no limit) is placed
        all the same, with a warning saying what would shrink it.
        """
        out = RenderedBatch(html={}, files={}, problems=[], pages=self.pages)
        used_ids: dict[str, set[str]] = {}
        for figure in self.figures:
            ids = used_ids.setdefault(figure.page, set())
            result = figure.result
            error = figure.error or (result.error if result is not None else None)
            for warning in result.warnings if result is not None else ():
                out.problems.append(Problem(figure.where(), warning))
            if error is None and result is not None and result.record is not None:
                try:
                    rendered = render_figure(
                        result.record, figure.options, embed=embed, file_prefix=file_prefix(figure.page), used_ids=ids,  # type: ignore[arg-type]
                        compare=result.compare,
                    )
                except AttndocsError as exc:
                    error = exc
                else:
                    out.html[figure.token] = rendered.html
                    out.files.update(rendered.files)
                    heavy = over_budget(rendered, page_budget)
                    if heavy:
                        out.problems.append(Problem(figure.where(), heavy))
                    if result.source == "computed":
                        out.computed += 1
                    else:
                        out.cached += 1
                    continue
            if error is None:  # execution mode off: a placeholder, and no warning
                out.off += 1
                message = "not computed (the execution mode is off)"
            else:
                out.failed += 1
                out.problems.append(Problem(_where(figure, error), str(error)))
                message = str(error)
            out.html[figure.token] = render_placeholder(message, figure.options, used_ids=ids)
        return out


def _where(figure: PageFigure, error: AttndocsError) -> str:
    line = getattr(error, "line", 0) or figure.line
    return f"{figure.page}:{line}" if line else figure.page
