"""Every figure option and site setting, each declared once with its default, parser and help.

The Sphinx directive's option spec, the MkDocs fence parser, the CLI flags, the Python API
and the documentation table are all generated from the two dataclasses here:
:class:`FigureOptions` (one figure) and :class:`SiteSettings` (a whole site). Adding an
option is one edit in this file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import reprlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import state as _state
from .errors import OptionError

VIEWS = ("head", "model", "neuron", "matrix", "summary", "patch")
DISPLAYS = ("auto", "light", "dark")
MODES = ("auto", "force", "frozen", "off")
EMBEDS = ("auto", "inline", "file")
DEVICES = ("cpu", "cuda", "auto")
DTYPES = ("auto", "float32", "bfloat16", "float16")
# accelerate's own ways to spread a model over the devices it finds (transformers' device_map).
DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
DEFAULT_MODEL = "minilm"
DEFAULT_MAX_TOKENS = 512


# Limits on what a page may ask for. Each keeps one bad value from costing a build its
# memory or its time (`heads: 0-99999999999` once expanded a hundred billion indices), and
# each is in the options' "allowed" text, so the docs tables and the messages state it.
MAX_INDEX = 4095  # the largest layer or head index: no model has more than 4096 of either
MAX_INDICES = 4096  # indices one list may name in all, counting each index of a range
MAX_TOKENS_LIMIT = 4096  # attention grows with the square: 4096 tokens x 72 heads is 4.8 GB
MAX_GENERATE = 256  # new tokens one figure may generate: a step control of more is not read step by step
MAX_SEED = 2**32 - 1
MAX_TEMPERATURE = 100.0
MAX_TEXT_CHARS = 200_000  # text, text-b, target: far past any model's positions
MAX_LABEL_CHARS = 10_000  # caption, alt
MAX_NAME_CHARS = 200  # name: an HTML id and a Sphinx label
MAX_CLASS_CHARS = 1_000  # class: a few CSS class names
MAX_PATH_CHARS = 4_096  # model (a folder path may be long), cache-dir: the usual PATH_MAX
MAX_REVISION_CHARS = 256  # a branch, tag or commit
MAX_ALIASES = 1_000  # model-aliases entries
MAX_DEVICE_MAP_ENTRIES = 10_000  # device-map entries: one per layer of the largest models, and more
MAX_MAPPING_CHARS = 65_536  # a device map or memory limits written as one line of text
# Figures one page may hold; past it each further figure is a placeholder and a warning. The
# browser starts figures as they scroll into view, so a page of this many stays responsive.
MAX_FIGURES_PER_PAGE = 10_000
_MAX_DIGITS = 18  # an integer longer than this is refused before int() reads it


def _count(n: int) -> str:
    return f"{n:,}"


# -- value parsers: each takes a string (from a page) or a Python value ------------------
def _text_parser(max_chars: int, *, nonempty: bool = False) -> Callable[[Any], str | None]:
    """A parser of text of at most ``max_chars`` characters (stripped and non-empty if asked)."""

    def parse(value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError("expected text")
        # Measured before anything else reads the value, so a huge one costs nothing more.
        if len(value) > max_chars:
            raise ValueError(f"it is {_count(len(value))} characters long, more than the limit of {_count(max_chars)}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # Undecodable bytes reach Python as lone surrogates (command lines, file names).
            raise ValueError("it holds bytes that are not valid UTF-8; save the text as UTF-8") from None
        if nonempty:
            if not value.strip():
                raise ValueError("expected a non-empty value")
            return value.strip()
        return value

    parse.allowed = f"{'a non-empty value' if nonempty else 'text'} of at most {_count(max_chars)} characters"  # type: ignore[attr-defined]
    return parse


# The texts a model reads (text, text-b, target).
_text = _text_parser(MAX_TEXT_CHARS)


def _int_between(minimum: int, maximum: int, allowed: str | None = None) -> Callable[[Any], int | None]:
    def parse(value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        if isinstance(value, str):
            stripped = value.strip()
            if not re.fullmatch(r"-?\d+", stripped):
                raise ValueError("expected an integer")
            if len(stripped.lstrip("-")) > _MAX_DIGITS:  # refused before int() reads a million digits
                side = f">= {minimum}" if stripped.startswith("-") else f"<= {_count(maximum)}"
                raise ValueError(f"expected an integer {side}")
            value = int(stripped)
        if not isinstance(value, int):
            raise ValueError("expected an integer")
        if value < minimum:
            raise ValueError(f"expected an integer >= {minimum}")
        if value > maximum:
            raise ValueError(f"expected an integer <= {_count(maximum)}")
        return value

    parse.allowed = allowed or f"an integer from {minimum} to {_count(maximum)}"  # type: ignore[attr-defined]
    return parse


def _positive_float(maximum: float) -> Callable[[Any], float | None]:
    """A number greater than 0 and at most ``maximum`` (``0.7``, ``"1.5"``, ``2``)."""

    def parse(value: Any) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool):
            raise ValueError("expected a number")
        if isinstance(value, str):
            stripped = value.strip()
            if not re.fullmatch(r"\d{1,6}(?:\.\d{1,9})?|\.\d{1,9}", stripped):
                raise ValueError("expected a number such as 0.7")
            value = float(stripped)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError("expected a number")
        if not 0 < value <= maximum:
            raise ValueError(f"expected a number greater than 0 and at most {maximum:g}")
        return float(value)

    parse.allowed = f"a number greater than 0 and at most {maximum:g}"  # type: ignore[attr-defined]
    return parse


_INDEX_PART = re.compile(r"(\d+)(?:-(\d+))?")


def _index(text: str, part: str) -> int:
    # Digits are counted before int() reads them: a value of a million digits is refused
    # at once, and never meets Python's own limit on int() of long strings.
    if len(text) > _MAX_DIGITS or int(text) > MAX_INDEX:
        raise ValueError(f"'{_clip(part)}' goes past {MAX_INDEX}, the largest index allowed")
    return int(text)


def _index_list(value: Any) -> tuple[int, ...] | None:
    """'0,2,5', '0 2 5' or '0-3,7' (inclusive ranges) or a list of integers.

    Bounded before anything is expanded: each index at most MAX_INDEX, and at most
    MAX_INDICES named in all (a range counts each index it covers, repeats count again), so
    the work done is at most MAX_INDICES steps past reading the value once.
    """
    if value is None:
        return None
    items: dict[int, None] = {}  # ordered and deduplicated
    named = 0

    def add(start: int, end: int, part: str) -> None:
        nonlocal named
        named += end - start + 1
        if named > MAX_INDICES:
            raise ValueError(f"it names more than {_count(MAX_INDICES)} indices (up to '{_clip(part)}'), the limit for one list")
        items.update(dict.fromkeys(range(start, end + 1)))

    if isinstance(value, str):
        found = False
        for part in re.finditer(r"[^,\s]+", value):
            found = True
            text = part.group(0)
            match = _INDEX_PART.fullmatch(text)
            if not match:
                raise ValueError(f"'{_clip(text)}' is not an index or a range like 2-5")
            start = _index(match.group(1), text)
            end = _index(match.group(2), text) if match.group(2) else start
            if end < start:
                raise ValueError(f"range '{text}' runs backwards")
            add(start, end, text)
        if not found:
            raise ValueError("expected at least one index")
    elif isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping)):
        for item in value:  # stops at the first bad item: an endless iterator ends too
            if isinstance(item, bool) or not isinstance(item, int) or item < 0:
                raise ValueError("expected integers >= 0")
            if item > MAX_INDEX:
                raise ValueError(f"{item} goes past {MAX_INDEX}, the largest index allowed")
            add(item, item, str(item))
    else:
        raise ValueError("expected a list of indices")
    return tuple(items)


def _clip(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


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
_index_list.allowed = (  # type: ignore[attr-defined]
    f"indices 0-{MAX_INDEX} such as 0,2,5 or ranges such as 0-3; at most {_count(MAX_INDICES)} in all"
)


def _aliases(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError("expected a mapping of names to model ids")
    if len(value) > MAX_ALIASES:
        raise ValueError(f"it has {_count(len(value))} entries, more than the limit of {_count(MAX_ALIASES)}")
    if any(len(k) > MAX_PATH_CHARS or len(v) > MAX_PATH_CHARS for k, v in value.items()):
        raise ValueError(f"a name or model id is longer than {_count(MAX_PATH_CHARS)} characters")
    return dict(value)


_aliases.allowed = f"a mapping of names to model ids (at most {_count(MAX_ALIASES)})"  # type: ignore[attr-defined]


# -- where a large model's weights go (handed to transformers and accelerate) ---------------
_SIZE = re.compile(r"(\d{1,15}(?:\.\d{1,6})?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)?", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_GPU = re.compile(r"(?:cuda:)?(\d{1,4})")


def _device_name(value: Any) -> int | str:
    """One place weights may live: a GPU number (``0``, ``"cuda:1"``), ``cpu``, ``disk`` or ``mps``.

    GPUs become plain numbers, the form accelerate's device maps and memory limits use.
    """
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INDEX:
        return value
    if isinstance(value, str):
        name = value.strip().lower()
        if name in ("cpu", "disk", "mps"):
            return name
        if name == "cuda":
            return 0
        match = _GPU.fullmatch(name)
        if match and int(match.group(1)) <= MAX_INDEX:
            return int(match.group(1))
    raise ValueError(f"{_VALUES.repr(value)} is not a device: use a GPU number (0, 1 ...) or cuda:N, cpu or disk")


def _size(value: Any) -> int:
    """Bytes, from an integer or a size such as ``"20GiB"``, ``"500MB"`` (units are of bytes)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{_VALUES.repr(value)} is not a size: use bytes, or a number with a unit such as 500MB or 20GiB")
    return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()])


def _mapping_text(text: str) -> Mapping[str, Any]:
    """A mapping written on one line (command lines, ``-D``): JSON, or ``name=value,name=value``."""
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"it is not valid JSON ({exc.msg} at character {exc.pos})") from None
        if not isinstance(value, dict):
            raise ValueError("expected a JSON object")
        return value
    pairs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, device = item.partition("=")
        if not sep:
            raise ValueError(f"'{_clip(item)}' is not name=value")
        pairs[name.strip()] = device.strip()
    if not pairs:
        raise ValueError("expected at least one name=value")
    return pairs


def _device_map(value: Any) -> str | dict[str, int | str] | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    if isinstance(value, str):
        if len(value) > MAX_MAPPING_CHARS:
            raise ValueError(f"it is {_count(len(value))} characters long, more than the limit of {_count(MAX_MAPPING_CHARS)}")
        if value.strip().lower() in DEVICE_MAP_STRATEGIES:
            return value.strip().lower()
        if not value.strip().startswith("{") and "=" not in value:
            raise ValueError("not one of " + ", ".join(DEVICE_MAP_STRATEGIES) + ", nor a mapping such as encoder=0,pooler=cpu")
        value = _mapping_text(value.strip())
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError("expected auto, or a mapping of module names to devices")
    if len(value) > MAX_DEVICE_MAP_ENTRIES:
        raise ValueError(f"it has {_count(len(value))} entries, more than the limit of {_count(MAX_DEVICE_MAP_ENTRIES)}")
    if any(len(k) > MAX_PATH_CHARS for k in value):
        raise ValueError(f"a module name is longer than {_count(MAX_PATH_CHARS)} characters")
    if not value:
        raise ValueError("the mapping is empty")
    return {name.strip(): _device_name(device) for name, device in value.items()}


_device_map.allowed = (  # type: ignore[attr-defined]
    "none; " + ", ".join(DEVICE_MAP_STRATEGIES) + "; or a mapping of module names to devices (a GPU number, cpu or disk)"
)


def _max_memory(value: Any) -> dict[int | str, int] | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    if isinstance(value, str):
        if len(value) > MAX_MAPPING_CHARS:
            raise ValueError(f"it is {_count(len(value))} characters long, more than the limit of {_count(MAX_MAPPING_CHARS)}")
        value = _mapping_text(value.strip())
    if not isinstance(value, Mapping) or not value:
        raise ValueError("expected a mapping of devices to sizes, such as {0: '20GiB', 'cpu': '60GiB'}")
    if len(value) > MAX_INDEX + 4:
        raise ValueError("it names more devices than there can be")
    limits: dict[int | str, int] = {}
    for device, size in value.items():
        name = _device_name(device)
        if name == "disk":
            raise ValueError("disk takes no limit: what fits nowhere else goes there")
        limits[name] = _size(size)
    return limits


_max_memory.allowed = "none, or a mapping of devices (a GPU number, cpu) to sizes such as 20GiB or 500MB"  # type: ignore[attr-defined]


def option(
    default: Any, parse: Callable[[Any], Any], help: str, *, content: bool = False, state: Any = None, record: bool = False
) -> Any:
    """A dataclass field carrying its parser and help text in its metadata.

    A mutable default (dict) is given as a zero-argument callable and becomes a factory.
    ``state`` is the attndocs.state.StateKey a figure's opening-state option comes from.
    ``record``: the option changes the record a figure is drawn from (its text, model,
    generation, word merging ...); figures that agree on every such option share a record.
    """
    metadata = {"parse": parse, "help": help, "content": content, "state": state, "record": record}
    if callable(default):
        return field(default_factory=default, metadata=metadata)
    return field(default=default, metadata=metadata)


def _field_name(cls: type, raw_name: Any, where: str) -> str:
    """The field a page's or a caller's name means (``text-b``, ``class``); OptionError if none."""
    known = {f.name for f in dataclasses.fields(cls)}
    name = raw_name.replace("-", "_") if isinstance(raw_name, str) else None
    if name == "class":
        name = "class_"
    if name not in known:
        allowed = ", ".join(sorted(option_name(f) for f in dataclasses.fields(cls) if not f.metadata.get("content")))
        shown = _clip(raw_name, 40) if isinstance(raw_name, str) else _VALUES.repr(raw_name)
        raise OptionError(f"unknown {where} '{shown}'", f"known: {allowed}")
    return name  # type: ignore[return-value]


def _apply(cls: type, values: Mapping[str, Any], where: str) -> Any:
    if not isinstance(values, Mapping):
        raise OptionError(f"{where}s must be a mapping of names to values, not {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for raw_name, value in values.items():
        name = _field_name(cls, raw_name, where)
        kwargs[name] = parse_value(fields[name], value)
    return cls(**kwargs)


def _replace(obj: Any, changes: Mapping[str, Any], where: str) -> Any:
    # Unknown names are an OptionError here too, never dataclasses.replace's TypeError.
    fields = {f.name: f for f in dataclasses.fields(obj)}
    parsed = {}
    for raw_name, value in changes.items():
        name = _field_name(type(obj), raw_name, where)
        parsed[name] = parse_value(fields[name], value)
    return dataclasses.replace(obj, **parsed)


# Values quoted in messages: a few dozen characters at most, however long the value is.
_VALUES = reprlib.Repr()
_VALUES.maxstring = _VALUES.maxother = 60
_VALUES.maxlist = _VALUES.maxtuple = _VALUES.maxdict = _VALUES.maxset = 8


def parse_value(f: dataclasses.Field, value: Any) -> Any:
    """Parse one value for field ``f``, raising an :class:`OptionError` that names both."""
    parse = f.metadata["parse"]
    try:
        return parse(value)
    except (ValueError, TypeError, OverflowError) as exc:
        allowed = getattr(parse, "allowed", None)
        hint = f"allowed: {allowed}" if allowed and allowed not in str(exc) else None
        raise OptionError(f"option '{option_name(f)}' has value {_VALUES.repr(value)}: {exc}", hint) from None


def option_name(f: dataclasses.Field) -> str:
    """The hyphenated name a page uses: ``text_b`` -> ``text-b``, ``class_`` -> ``class``."""
    return f.name.rstrip("_").replace("_", "-")


def _state_parser(key: _state.StateKey) -> Callable[[Any], Any]:
    if key.kind == "choice":
        return _choice(key.values or ())
    return {"flag": _flag, "token": _state.parse_token, "index": _int_between(0, MAX_INDEX), "indices": _index_list}[key.kind]


_STATE_TYPES = {"choice": "str | None", "flag": "bool | None", "token": "TokenChoice | None", "index": "int | None", "indices": "tuple[int, ...] | None"}


def _with_state_options(after: str) -> Callable[[type], type]:
    """Adds a field for every key of attndocs.state.STATE_KEYS, placed after field ``after``.

    The state table is the one declaration of what a figure opens on: its keys become
    options here, link keys in the browser and rows of the docs' tables. Each field is
    None unless the author sets it; the figure's opening value is then the key's own.
    """

    def add(cls: type) -> type:
        annotations: dict[str, Any] = {}
        for name, kind in cls.__dict__["__annotations__"].items():
            annotations[name] = kind
            if name == after:
                for key in _state.STATE_KEYS:
                    annotations[key.name] = _STATE_TYPES[key.kind]
                    setattr(cls, key.name, option(None, _state_parser(key), key.help, state=key))
        cls.__annotations__ = annotations
        return cls

    return add


TokenChoice = _state.TokenChoice


@dataclass(frozen=True)
@_with_state_options(after="target")
class FigureOptions:
    """The options of one figure, with the same names everywhere (hyphenated in pages).

    The options that set what the figure opens on (layer, heads, section, token, locked,
    filter, mode, lines, stat, layout, open, scale) come from attndocs.state.STATE_KEYS.
    """

    text: str | None = option(None, _text, "The text the model reads (the block's content).", content=True, record=True)
    model: str | None = option(
        None, _text_parser(MAX_PATH_CHARS, nonempty=True), "Model: a bundled alias (minilm, smollm2, bert2bert-minilm), a site alias, a hub id or a local folder. Default: the site's default model.",
        record=True,
    )
    revision: str | None = option(None, _text_parser(MAX_REVISION_CHARS, nonempty=True), "Hub revision (branch, tag or commit) of the model; resolved to a commit and kept in the cache key.", record=True)
    image: str | None = option(
        None,
        _text_parser(MAX_PATH_CHARS, nonempty=True),
        "An image file for a vision transformer (ViT, DeiT) to read instead of a text, relative to the page (or "
        "absolute); the block then has no text. Its content, not its name, is in the cache key. Use view patch to "
        "see the attention over the image (docs/vision.md).",
        record=True,
    )
    view: str = option("head", _choice(VIEWS), "Which view to show: " + " | ".join(VIEWS) + ".")
    text_b: str | None = option(None, _text, "Second sentence of a sentence pair (encoder models).", record=True)
    target: str | None = option(None, _text, "Decoder text for encoder-decoder models (T5, BART, Marian, bert2bert).", record=True)
    include_layers: tuple[int, ...] | None = option(None, _index_list, "Layers that ship at all (0-based). Default: every layer.")
    include_heads: tuple[int, ...] | None = option(None, _index_list, "Heads that ship at all (0-based). Default: every head.")
    display: str = option("auto", _choice(DISPLAYS), "Colour scheme: auto follows the page theme and prefers-color-scheme; light or dark force one.")
    caption: str | None = option(None, _text_parser(MAX_LABEL_CHARS), "Caption under the figure; with a name, the figure is numbered.")
    name: str | None = option(None, _text_parser(MAX_NAME_CHARS, nonempty=True), "Label for cross-references (:ref: / :numref: in Sphinx, #anchor elsewhere).")
    alt: str | None = option(None, _text_parser(MAX_LABEL_CHARS), "Text alternative for readers who cannot see the figure, and for static builders.")
    class_: str | None = option(None, _text_parser(MAX_CLASS_CHARS), "Extra CSS classes for the figure's outer element, space separated.")
    max_tokens: int | None = option(
        None, _int_between(1, MAX_TOKENS_LIMIT), f"Refuse texts longer than this many tokens (at most {_count(MAX_TOKENS_LIMIT)}). Default: the site's max tokens (512).", record=True
    )
    words: bool = option(
        False,
        _flag,
        "Show words instead of word pieces (##, Ġ, ▁): attention to a word is the sum over its pieces, attention "
        "from a word the mean over its pieces, so rows still sum to 1 (docs/words.md). The neuron view stays per piece.",
        record=True,
    )
    generate: int | None = option(
        None,
        _int_between(1, MAX_GENERATE),
        "Let the model write this many new tokens after the text (decoder and encoder-decoder models; it may stop "
        "earlier at its end-of-text token), then show the attention over prompt and continuation, with a step control "
        "that replays the writing. Greedy unless seed is set. max-tokens counts the continuation too.",
        record=True,
    )
    seed: int | None = option(
        None,
        _int_between(0, MAX_SEED),
        "With generate: sample the continuation instead of taking the likeliest token, from torch's generator seeded "
        "with this number, so every build writes the same text.",
        record=True,
    )
    temperature: float | None = option(
        None,
        _positive_float(MAX_TEMPERATURE),
        "With seed: the sampling temperature (below 1 sharper, above 1 flatter). Default: 1.",
        record=True,
    )
    compare_text: str | None = option(
        None,
        _text_parser(MAX_TEXT_CHARS, nonempty=True),
        "Compare with a second text through the same model (the sides are labelled by the two texts). Head and model "
        "views show both; matrix and summary views show A - B where tokens align. One compare option a figure.",
        record=True,
    )
    compare_model: str | None = option(
        None,
        _text_parser(MAX_PATH_CHARS, nonempty=True),
        "Compare with the same text through a second model (any name model accepts; labelled by the two names). "
        "Differences only where tokens align and both models have the layer and head.",
        record=True,
    )
    compare_layer: int | None = option(
        None,
        _int_between(0, MAX_INDEX),
        "Compare the figure's layer (option layer, else the first) with this second layer of the same record.",
    )

    def __post_init__(self) -> None:
        # An opening state the view cannot show is an error here, where the page's line is known.
        _state.check_views(self)
        _check_generation(self)
        from .compare import check_options  # compare imports options' types only

        check_options(self)
        from .vision import check_options as check_image  # an image figure reads no text

        check_image(self)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> FigureOptions:
        """Build options from page strings or Python values; names may be hyphenated."""
        return _apply(cls, values, "option")

    @classmethod
    def check_option(cls, name: str, value: Any) -> Any:
        """One option's value parsed alone (a page's option line), without the checks across options."""
        f = next(f for f in dataclasses.fields(cls) if f.name == _field_name(cls, name, "option"))
        return parse_value(f, value)

    def replace(self, **changes: Any) -> FigureOptions:
        """A copy with ``changes`` parsed as from_mapping parses them (``class`` or ``class_``)."""
        return _replace(self, changes, "option")

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _option_error(option: str, message: str, hint: str) -> OptionError:
    error = OptionError(message, hint)
    error.option = option  # type: ignore[attr-defined]  # a page's parser points at that option's line
    return error


def _check_generation(options: FigureOptions) -> None:
    """generate, seed and temperature only together as they make sense (docs/generation.md)."""
    if options.seed is not None and options.generate is None:
        raise _option_error("seed", "option 'seed' samples a generated continuation, but the figure generates none", "add generate: <new tokens>, or remove seed")
    if options.temperature is not None and options.seed is None:
        raise _option_error(
            "temperature",
            "option 'temperature' needs seed: generation is greedy (no temperature) unless it samples",
            "add seed: <a number> to sample reproducibly, or remove temperature",
        )
    # Word merging sums attention over a word's pieces; a generation step is one piece written,
    # whose query row a merged record no longer has.
    if options.generate is not None and getattr(options, "words", None):
        raise _option_error("words", "words and generate cannot be combined yet", "remove words, or remove generate")


@dataclass(frozen=True)
class SiteSettings:
    """Settings for a whole site (Sphinx ``attention_<name>``; mkdocs.yml keys as they are)."""

    default_model: str = option(DEFAULT_MODEL, _text_parser(MAX_PATH_CHARS, nonempty=True), "Model used by figures that name none.")
    model_aliases: dict[str, str] = option(
        dict, _aliases, "Extra model names for this site, e.g. {'bert': 'bert-base-uncased'}."
    )
    cache_dir: str | None = option(None, _text_parser(MAX_PATH_CHARS), "Where records are cached. Default: .cache/attndocs beside conf.py / mkdocs.yml.")
    execution_mode: str = option("auto", _choice(MODES), "auto: compute misses; force: recompute all; frozen: cache only, a miss is an error; off: compute nothing, show placeholders.")
    device: str = option("cpu", _choice(DEVICES), "Where models run: cpu, cuda, or auto (cuda when available).")
    dtype: str = option(
        "auto",
        _choice(DTYPES),
        "Precision models run in. auto: float32, unless the float32 weights do not fit in the GPU memory the model may use; "
        "then bfloat16 (float16 on GPUs without it). On the CPU auto is always float32. Not float32: a figure is a cache "
        "entry of its own.",
    )
    device_map: str | dict[str, int | str] | None = option(
        None,
        _device_map,
        "Spread a model too large for one device over several, handed to transformers and accelerate: auto (or balanced, "
        "sequential), or a mapping of module names to a GPU number, cpu or disk. Overrides device. Default: none.",
    )
    max_memory: dict[int | str, int] | None = option(
        None,
        _max_memory,
        "With a device map: the most memory each device may hold, e.g. {0: '20GiB', 'cpu': '60GiB'}; what does not fit "
        "goes to disk under $ATTNDOCS_HOME. Default: what each device has free.",
    )
    batch_size: int = option(0, _int_between(0, 4096), "Texts of equal length computed in one forward pass. 0: automatic (1 on CPU, where single runs keep every record independent of the others, 8 on a GPU).")
    max_tokens: int = option(
        DEFAULT_MAX_TOKENS, _int_between(1, MAX_TOKENS_LIMIT), "Longest text (in tokens) a figure may have unless it sets max-tokens."
    )
    raise_on_error: bool = option(False, _flag, "Fail the build at the end when any figure failed.")
    embed: str = option("auto", _choice(EMBEDS), "auto: inline for a figure whose data fits one chunk (512 kB), file for a larger one; inline: the whole payload inside the page; file: side scripts, the first view's data first and the rest as the reader asks for it. All work from file:// and from a server.")
    trust_remote_code: bool = option(False, _flag, "Allow models whose code lives in their hub repository. Off unless you opt in.")
    page_budget: int = option(5_000_000, _int_between(0, 10**12), "Bytes a figure may cost its page before its first view draws (its data in the page, and with embed: file the parts its first view loads). A figure over it still builds, with a warning saying what would shrink it. 0: no limit.")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SiteSettings:
        """Settings from a config file's values or Python values; names may be hyphenated."""
        return _apply(cls, values, "setting")

    def replace(self, **changes: Any) -> SiteSettings:
        """A copy with ``changes`` parsed as from_mapping parses them."""
        return _replace(self, changes, "setting")


def figure_fields(*, include_content: bool = False) -> list[dataclasses.Field]:
    """The fields of FigureOptions that a page can set (the text is the block's content)."""
    return [f for f in dataclasses.fields(FigureOptions) if include_content or not f.metadata.get("content")]


def record_fields() -> list[dataclasses.Field]:
    """The fields of FigureOptions that change the record a figure is drawn from (``record=True``)."""
    return [f for f in dataclasses.fields(FigureOptions) if f.metadata.get("record")]


def record_identity(options: FigureOptions) -> tuple:
    """What the record of a figure depends on: figures that agree on it share one record."""
    identity = tuple(getattr(options, f.name) for f in record_fields())
    if options.words:
        # A neuron figure with words is drawn from the record of pieces (attndocs.words.merges).
        identity += (options.view == "neuron",)
    return identity


def settings_fields() -> list[dataclasses.Field]:
    return list(dataclasses.fields(SiteSettings))


def options_table() -> str:
    """A Markdown table of every figure option, its allowed values (and limits), for the docs."""
    rows = ["| option | default | allowed | help |", "| --- | --- | --- | --- |"]
    for f in figure_fields():
        help_text = f.metadata["help"].replace("|", "\\|")
        allowed = getattr(f.metadata["parse"], "allowed", "text").replace("|", "\\|")
        rows.append(f"| `{option_name(f)}` | {_fmt_default(shown_default(f))} | {allowed} | {help_text} |")
    return "\n".join(rows)


def shown_default(f: dataclasses.Field) -> str | None:
    """A field's default as the docs show it: an opening-state option shows what the figure opens on."""
    key = f.metadata.get("state")
    if key is not None:
        if key.initial is None:
            return None if not key.initial_text else f"({key.initial_text})"
        return str(key.initial).lower() if isinstance(key.initial, bool) else str(key.initial)
    if f.default is None or f.default is dataclasses.MISSING:
        return None
    return str(f.default)


def _fmt_default(value: str | None) -> str:
    if value is None:
        return "—"
    return value if value.startswith("(") else f"`{value}`"


def too_many_figures(limit: int = MAX_FIGURES_PER_PAGE) -> OptionError:
    """The error of a figure past ``limit`` (:data:`MAX_FIGURES_PER_PAGE`) on its page."""
    return OptionError(
        f"this page already has {limit:,} attention figures, the most one page may hold",
        "split the page, or show several texts in fewer figures",
    )
