"""Every figure option and site setting, each declared once with its default, parser and help.

The Sphinx directive's option spec, the MkDocs fence parser, the CLI flags, the Python API
and the documentation table are all generated from the two dataclasses here:
:class:`FigureOptions` (one figure) and :class:`SiteSettings` (a whole site). Adding an
option is one edit in this file.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import OptionError

VIEWS = ("head", "model", "neuron", "matrix", "summary")
DISPLAYS = ("auto", "light", "dark")
MODES = ("auto", "force", "frozen", "off")
EMBEDS = ("inline", "file")
DEVICES = ("cpu", "cuda", "auto")
DEFAULT_MODEL = "minilm"
DEFAULT_MAX_TOKENS = 512


# -- value parsers: each takes a string (from a page) or a Python value ------------------
def _text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("expected text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Undecodable bytes reach Python as lone surrogates (command lines, file names).
        raise ValueError("it holds bytes that are not valid UTF-8; save the text as UTF-8") from None
    return value


def _nonempty(value: Any) -> str | None:
    text = _text(value)
    if text is not None and not text.strip():
        raise ValueError("expected a non-empty value")
    return text.strip() if text is not None else None


def _int_at_least(minimum: int) -> Callable[[Any], int | None]:
    def parse(value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        if isinstance(value, str):
            if not re.fullmatch(r"\s*-?\d+\s*", value):
                raise ValueError("expected an integer")
            value = int(value)
        if not isinstance(value, int):
            raise ValueError("expected an integer")
        if value < minimum:
            raise ValueError(f"expected an integer >= {minimum}")
        return value

    parse.allowed = f"an integer >= {minimum}"  # type: ignore[attr-defined]
    return parse


def _index_list(value: Any) -> tuple[int, ...] | None:
    """'0,2,5', '0 2 5' or '0-3,7' (inclusive ranges) or a list of integers."""
    if value is None:
        return None
    items: list[int] = []
    if isinstance(value, str):
        parts = [p for p in re.split(r"[,\s]+", value.strip()) if p]
        if not parts:
            raise ValueError("expected at least one index")
        for part in parts:
            match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
            if not match:
                raise ValueError(f"'{part}' is not an index or a range like 2-5")
            start, end = int(match.group(1)), int(match.group(2) or match.group(1))
            if end < start:
                raise ValueError(f"range '{part}' runs backwards")
            items.extend(range(start, end + 1))
    elif isinstance(value, Iterable):
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int) or item < 0:
                raise ValueError("expected integers >= 0")
            items.append(item)
    else:
        raise ValueError("expected a list of indices")
    return tuple(dict.fromkeys(items))


def _choice(choices: tuple[str, ...]) -> Callable[[Any], str | None]:
    def parse(value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or value.strip().lower() not in choices:
            raise ValueError("not one of the allowed values")
        return value.strip().lower()

    parse.allowed = "one of " + ", ".join(choices)  # type: ignore[attr-defined]
    return parse


def _flag(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", ""):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "no", "off", "0"):
        return False
    raise ValueError("expected true or false")


_flag.allowed = "true or false"  # type: ignore[attr-defined]
_index_list.allowed = "indices such as 0,2,5 or ranges such as 0-3"  # type: ignore[attr-defined]
_text.allowed = "text"  # type: ignore[attr-defined]
_nonempty.allowed = "a non-empty value"  # type: ignore[attr-defined]


def option(default: Any, parse: Callable[[Any], Any], help: str, *, content: bool = False) -> Any:
    """A dataclass field carrying its parser and help text in its metadata.

    A mutable default (dict) is given as a zero-argument callable and becomes a factory.
    """
    metadata = {"parse": parse, "help": help, "content": content}
    if callable(default):
        return field(default_factory=default, metadata=metadata)
    return field(default=default, metadata=metadata)


def _apply(cls: type, values: Mapping[str, Any], where: str) -> Any:
    kwargs = {}
    known = {f.name: f for f in dataclasses.fields(cls)}
    for raw_name, value in values.items():
        name = raw_name.replace("-", "_")
        if name == "class":
            name = "class_"
        if name not in known:
            allowed = ", ".join(sorted(option_name(f) for f in known.values() if not f.metadata.get("content")))
            raise OptionError(f"unknown {where} '{raw_name}'", f"known: {allowed}")
        kwargs[name] = parse_value(known[name], value)
    return cls(**kwargs)


def parse_value(f: dataclasses.Field, value: Any) -> Any:
    """Parse one value for field ``f``, raising an :class:`OptionError` that names both."""
    parse = f.metadata["parse"]
    try:
        return parse(value)
    except (ValueError, TypeError) as exc:
        allowed = getattr(parse, "allowed", None)
        hint = f"allowed: {allowed}" if allowed and allowed not in str(exc) else None
        raise OptionError(f"option '{option_name(f)}' has value {value!r}: {exc}", hint) from None


def option_name(f: dataclasses.Field) -> str:
    """The hyphenated name a page uses: ``text_b`` -> ``text-b``, ``class_`` -> ``class``."""
    return f.name.rstrip("_").replace("_", "-")


@dataclass(frozen=True)
class FigureOptions:
    """The options of one figure, with the same names everywhere (hyphenated in pages)."""

    text: str | None = option(None, _text, "The text the model reads (the block's content).", content=True)
    model: str | None = option(
        None, _nonempty, "Model: a bundled alias (minilm, smollm2, bert2bert-minilm), a site alias, a hub id or a local folder. Default: the site's default model."
    )
    revision: str | None = option(None, _nonempty, "Hub revision (branch, tag or commit) of the model; resolved to a commit and kept in the cache key.")
    view: str = option("head", _choice(VIEWS), "Which view to show: " + " | ".join(VIEWS) + ".")
    text_b: str | None = option(None, _text, "Second sentence of a sentence pair (encoder models).")
    target: str | None = option(None, _text, "Decoder text for encoder-decoder models (T5, BART, Marian, bert2bert).")
    layer: int | None = option(None, _int_at_least(0), "Layer shown first (0-based). Default: the first included layer.")
    heads: tuple[int, ...] | None = option(None, _index_list, "Heads selected first (0-based), e.g. 0,3 or 0-5. Default: all.")
    include_layers: tuple[int, ...] | None = option(None, _index_list, "Layers that ship at all (0-based). Default: every layer.")
    include_heads: tuple[int, ...] | None = option(None, _index_list, "Heads that ship at all (0-based). Default: every head.")
    display: str = option("auto", _choice(DISPLAYS), "Colour scheme: auto follows the page theme and prefers-color-scheme; light or dark force one.")
    caption: str | None = option(None, _text, "Caption under the figure; with a name, the figure is numbered.")
    name: str | None = option(None, _nonempty, "Label for cross-references (:ref: / :numref: in Sphinx, #anchor elsewhere).")
    alt: str | None = option(None, _text, "Text alternative for readers who cannot see the figure, and for static builders.")
    class_: str | None = option(None, _text, "Extra CSS classes for the figure's outer element, space separated.")
    max_tokens: int | None = option(None, _int_at_least(1), "Refuse texts longer than this many tokens. Default: the site's max tokens (512).")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> FigureOptions:
        """Build options from page strings or Python values; names may be hyphenated."""
        return _apply(cls, values, "option")

    def replace(self, **changes: Any) -> FigureOptions:
        parsed = {}
        fields = {f.name: f for f in dataclasses.fields(self)}
        for name, value in changes.items():
            parsed[name] = parse_value(fields[name], value)
        return dataclasses.replace(self, **parsed)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class SiteSettings:
    """Settings for a whole site (Sphinx ``attention_<name>``; mkdocs.yml keys as they are)."""

    default_model: str = option(DEFAULT_MODEL, _nonempty, "Model used by figures that name none.")
    model_aliases: dict[str, str] = option(
        dict, lambda v: _aliases(v), "Extra model names for this site, e.g. {'bert': 'bert-base-uncased'}."
    )
    cache_dir: str | None = option(None, _text, "Where records are cached. Default: .cache/attndocs beside conf.py / mkdocs.yml.")
    execution_mode: str = option("auto", _choice(MODES), "auto: compute misses; force: recompute all; frozen: cache only, a miss is an error; off: compute nothing, show placeholders.")
    device: str = option("cpu", _choice(DEVICES), "Where models run: cpu, cuda, or auto (cuda when available).")
    batch_size: int = option(0, _int_at_least(0), "Texts of equal length computed in one forward pass. 0: automatic (1 on CPU, where single runs keep every record independent of the others, 8 on a GPU).")
    max_tokens: int = option(DEFAULT_MAX_TOKENS, _int_at_least(1), "Longest text (in tokens) a figure may have unless it sets max-tokens.")
    raise_on_error: bool = option(False, _flag, "Fail the build at the end when any figure failed.")
    embed: str = option("inline", _choice(EMBEDS), "inline: payload inside the page (works from file://); file: a side file fetched when the figure scrolls into view.")
    trust_remote_code: bool = option(False, _flag, "Allow models whose code lives in their hub repository. Off unless you opt in.")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SiteSettings:
        return _apply(cls, values, "setting")


def _aliases(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError("expected a mapping of names to model ids")
    return dict(value)


_aliases.allowed = "a mapping of names to model ids"  # type: ignore[attr-defined]


def figure_fields(*, include_content: bool = False) -> list[dataclasses.Field]:
    """The fields of FigureOptions that a page can set (the text is the block's content)."""
    return [f for f in dataclasses.fields(FigureOptions) if include_content or not f.metadata.get("content")]


def settings_fields() -> list[dataclasses.Field]:
    return list(dataclasses.fields(SiteSettings))


def options_table() -> str:
    """A Markdown table of every figure option, for the docs."""
    rows = ["| option | default | help |", "| --- | --- | --- |"]
    for f in figure_fields():
        help_text = f.metadata["help"].replace("|", "\\|")
        rows.append(f"| `{option_name(f)}` | {_fmt_default(f.default)} | {help_text} |")
    return "\n".join(rows)


def _fmt_default(value: Any) -> str:
    return "—" if value is None or value is dataclasses.MISSING else f"`{value}`"
