"""What a figure opens on: every state key a link can set, declared once, each also a figure option.

:data:`STATE_KEYS` is the one table. From it come the FigureOptions fields of these keys
(attndocs/options.py adds them), the checks of an author's values against the figure's view
and record (:func:`opening_state`, a build error naming the option and what would work),
the payload header's ``stateKeys`` (the keys, defaults and allowed values the browser's
link parser and ``fig.defineState`` accept, :func:`header_state_keys`), and the docs'
state table (docs/_ext/attndocs_tables.py). Adding a key is one entry here, one view that
reads ``fig.state.<key>``, and nothing else.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import OptionError
from .record import SECTION_NAMES

if TYPE_CHECKING:
    from .options import FigureOptions
    from .record import AttentionRecord

ALL_VIEWS = ("head", "model", "neuron", "matrix", "summary", "patch")
TOKEN_VIEWS = ("head", "model", "neuron", "matrix", "patch")
STEP_VIEWS = ("head", "neuron", "matrix")  # views with a query row to lock (the generation step control)
FILTERS = ("all", "aa", "bb", "ab", "ba")
# The matrix view's modes and the summary view's statistics, in the order of their selectors
# (60-matrix.js MODES and 70-summary.js STATS label these same values).
MATRIX_MODES = ("head", "mean", "max", "mean-all", "max-all", "rollout")
SUMMARY_STATS = ("entropy", "entropy_norm", "distance", "special", "previous", "self", "cross_ab")
SUMMARY_LAYOUTS = ("grid", "table")
SCALES = ("fixed", "head")
# What the patch view's heat overlay shows (38-patch.js labels these same values).
PATCH_OVERLAYS = ("attention", "rollout")
# Named head roles (attndocs/roles.py scores them; 25-roles.js labels these same values).
HEAD_ROLES = ("sink", "previous", "current", "broad", "induction")
MAX_TOKEN_SPEC = 200  # characters of a token option: a token's text is a few characters


# -- the token option: a token by its text as shown, or by its index ------------------------
SIDES = {"q": "q", "query": "q", "k": "k", "key": "k"}
_SIDE_PREFIX = re.compile(r"(q|k|query|key):(.*)", re.IGNORECASE | re.DOTALL)
_OCCURRENCE = re.compile(r"(.+?)#(\d{1,6})")
_INDEX = re.compile(r"@(\d{1,9})")


@dataclass(frozen=True)
class TokenChoice:
    """A token an author names: ``it``, ``it#2`` (the second "it"), ``@5`` (index 5), each
    optionally after ``query:`` or ``key:`` (``q:`` / ``k:``) for the side it is on."""

    side: str | None = None  # "q", "k", or None: the view's query side
    text: str | None = None
    occurrence: int = 1  # 1-based: the n-th token shown as ``text``
    index: int | None = None

    def __str__(self) -> str:
        side = {"q": "query:", "k": "key:"}.get(self.side or "", "")
        if self.index is not None:
            return f"{side}@{self.index}"
        return f"{side}{self.text}" + (f"#{self.occurrence}" if self.occurrence != 1 else "")


def parse_token(value: Any) -> TokenChoice | None:
    """``it``, ``it#2``, ``@5``, ``key:it``, ``q:@0``; an int is an index (Python callers)."""
    if value is None or isinstance(value, TokenChoice):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a token index counts from 0")
        return TokenChoice(index=value)
    if not isinstance(value, str):
        raise ValueError("expected a token's text or @index")
    if len(value) > MAX_TOKEN_SPEC:
        raise ValueError(f"it is {len(value):,} characters long, more than the limit of {MAX_TOKEN_SPEC}")
    text = value.strip()
    side = None
    match = _SIDE_PREFIX.fullmatch(text)
    if match and match.group(2).strip():
        side, text = SIDES[match.group(1).lower()], match.group(2).strip()
    if not text:
        raise ValueError("expected a token's text or @index")
    match = _INDEX.fullmatch(text)
    if match:
        return TokenChoice(side=side, index=int(match.group(1)))
    match = _OCCURRENCE.fullmatch(text)
    if match:
        occurrence = int(match.group(2))
        if occurrence < 1:
            raise ValueError("occurrences count from 1: it#1 is the first 'it'")
        return TokenChoice(side=side, text=match.group(1).strip(), occurrence=occurrence)
    return TokenChoice(side=side, text=text)


parse_token.allowed = (  # type: ignore[attr-defined]
    "a token's text as shown (it), the n-th one (it#2) or an index (@5), optionally after query: or key:"
)


# -- the table ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class StateKey:
    """One key of a figure's state: its link key and option name, and where it applies."""

    name: str
    kind: str  # how options.py parses it: "choice" (of values), "flag", "token", "index", "indices"
    initial: Any  # what the figure opens on when the option is not set; None: the figure's own
    help: str
    views: tuple[str, ...] = ALL_VIEWS
    values: tuple[str, ...] | None = None  # a fixed set of values, checked in links too
    link: str = ""  # how a link writes it, for the docs
    initial_text: str = ""  # the opening value in words, where ``initial`` is None


STATE_KEYS: tuple[StateKey, ...] = (
    StateKey(
        "section", "choice", None,
        "Attention shown first: encoder, decoder or cross (encoder-decoder models).",
        values=SECTION_NAMES, link="section=cross", initial_text="the first the figure has",
    ),
    StateKey("layer", "index", None, "Layer shown first (0-based).", link="layer=2", initial_text="the first included layer"),
    StateKey(
        "heads", "indices", None, "Heads selected first (0-based), e.g. 0,3 or 0-5; the neuron, matrix and model detail show the first.",
        link="heads=0,3 (empty: none)", initial_text="every included head",
    ),
    StateKey(
        "token", "token", None,
        "Token selected first: its lines, its matrix row or column, the neuron view's query. Queries are the left "
        "column and the matrix rows; key: picks a token of the other side.",
        views=TOKEN_VIEWS, link="token=q4 (q or k, then the index)", initial_text="none",
    ),
    StateKey(
        "locked", "flag", False, "Keep the token selected, as a click does, until the reader clears it (needs token).",
        views=TOKEN_VIEWS, link="locked=1",
    ),
    StateKey(
        "filter", "choice", "all",
        "Sentence-pair filter (needs text-b): all, aa (A to A), bb, ab (A attending to B), ba. In the neuron view it "
        "limits the queries offered and the keys shown (ab: queries of sentence A, keys of sentence B).",
        views=("head", "model", "neuron"), values=FILTERS, link="filter=ab",
    ),
    StateKey(
        "mode", "choice", "head",
        "What the matrix view shows: one head, the layer's mean or max over heads, the mean or max over every layer "
        "and head, or the attention rollout through the layer (self attention only).",
        views=("matrix",), values=MATRIX_MODES, link="mode=rollout",
    ),
    StateKey(
        "lines", "flag", False, "Also draw the matrix as lines between the two token columns.",
        views=("matrix",), link="lines=1",
    ),
    StateKey(
        "stat", "choice", "entropy",
        "Statistic the summary view colours heads by.", views=("summary",), values=SUMMARY_STATS, link="stat=distance",
    ),
    StateKey(
        "layout", "choice", "grid", "Summary as a layer x head grid or a sortable table.",
        views=("summary",), values=SUMMARY_LAYOUTS, link="layout=table",
    ),
    StateKey(
        "open", "flag", False, "Open the detail of the head named by layer and heads (its first head).",
        views=("model",), link="open=1",
    ),
    StateKey(
        "scale", "choice", "fixed",
        "Colour and line scale: fixed (0 to 1, shared by every head and section, so flat attention looks faint) "
        "or head (each head scaled to its own maximum).",
        # The patch view always scales its overlay to the largest weight shown: over hundreds of
        # patches a 0-1 scale would leave the picture blank.
        views=tuple(view for view in ALL_VIEWS if view != "patch"), values=SCALES, link="scale=head",
    ),
    StateKey(
        "step", "index", 0,
        "Generation step shown first (with generate): step t highlights the t-th token the model wrote and locks, as the "
        "query, the position before it (the one that predicted it); later tokens are dimmed. 0: the whole sequence.",
        views=STEP_VIEWS, link="step=3",
    ),
    StateKey(
        "role", "choice", "none",
        "Highlight the heads named with a role: sink (attention parked on the first or special tokens), previous "
        "(the token before), current (itself), broad (spread evenly), induction (the token after an earlier "
        "occurrence; repeated text only), or none. Scores and thresholds: the head roles page.",
        views=("head", "model", "summary"), values=("none",) + HEAD_ROLES, link="role=sink",
    ),
    StateKey(
        "difference", "flag", True,
        "With compare-text, compare-model or compare-layer: open on the difference A - B (true) or on both side by "
        "side (false).",
        views=("matrix", "summary"), link="difference=0",
    ),
    StateKey(
        "overlay", "choice", "attention",
        "What the patch view colours the image by: attention (where the selected patch attends, in the layer, mean "
        "over the selected heads) or rollout (attention rollout from [CLS] through the layer).",
        views=("patch",), values=PATCH_OVERLAYS, link="overlay=rollout",
    ),
)
BY_NAME: Mapping[str, StateKey] = {key.name: key for key in STATE_KEYS}


def keys_for(view: str) -> tuple[StateKey, ...]:
    return tuple(key for key in STATE_KEYS if view in key.views)


def header_state_keys(view: str) -> dict[str, dict[str, Any]]:
    """The payload header's ``stateKeys``: the keys a link may set on a figure of ``view``.

    Each has its opening default (null where the figure decides: section, layer, heads,
    token) and, for a fixed set of values, the values a link may give.
    """
    out: dict[str, dict[str, Any]] = {}
    for key in keys_for(view):
        entry: dict[str, Any] = {"default": key.initial}
        if key.values is not None:
            entry["values"] = list(key.values)
        out[key.name] = entry
    return out


# -- checking an author's opening state against the figure -------------------------------------
def _error(option: str, message: str, hint: str) -> OptionError:
    error = OptionError(message, hint)
    error.option = option  # type: ignore[attr-defined]  # a page's parser points at that option's line
    return error


def check_views(options: FigureOptions) -> None:
    """A state option the figure's view does not have is an error saying which views have it.

    The error's ``option`` attribute names the option, so a page's parser can give its line.
    """
    for key in STATE_KEYS:
        if getattr(options, key.name) is None or options.view in key.views:
            continue
        views = key.views
        where = f"the {views[0]} view" if len(views) == 1 else "the " + ", ".join(views[:-1]) + f" and {views[-1]} views"
        raise _error(
            key.name,
            f"option '{key.name}' does nothing in the {options.view} view",
            f"it applies to {where}: set view: {views[0]}, or remove {key.name}",
        )
    if options.locked and options.token is None:
        raise _error("locked", "option 'locked' needs a token to keep selected", "add token: <a token's text>, or remove locked")
    if options.open and options.heads == ():
        raise _error("open", "option 'open' needs a head to open", "set heads: <head>, or remove open")


def _section_order(record: AttentionRecord) -> list[str]:
    rank = {name: i for i, name in enumerate(SECTION_NAMES)}
    return sorted(record.sections, key=lambda n: rank.get(n, len(rank)))


def _listing(items: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(repr(t) if t != t.strip() or not t else t for t in items[:limit])
    return shown + (f" … ({len(items)} in all)" if len(items) > limit else "")


def _stat_available(record: AttentionRecord, name: str, stat: str) -> bool:
    """Whether attndocs.analysis.head_statistics gives ``stat`` for section ``name``."""
    section = record.sections[name]
    rows, cols = section.attention.shape[2:]
    same_side = section.rows == section.cols and rows == cols
    if stat in ("distance", "self"):
        return same_side
    if stat == "previous":
        return same_side and rows > 1
    if stat == "special":
        return section.cols in record.sides
    if stat == "cross_ab":
        start = record.sides[section.rows].text_b_start if section.rows in record.sides else None
        return same_side and start is not None and 0 < start < rows
    return True


def resolve_token(record: AttentionRecord, section_name: str, choice: TokenChoice, view: str) -> dict[str, Any]:
    """``{"side": "q"|"k", "index": i}`` of the token ``choice`` names in ``section_name``.

    Texts are compared as shown, without the spaces around them; when none matches exactly,
    without regard to case (uncased models show "the" for "The").
    """
    section = record.sections[section_name]
    side = choice.side or "q"
    if view == "neuron" and side != "q":
        raise OptionError("option 'token' names a key token; the neuron view selects query tokens", "drop 'key:' from token")
    side_name = section.rows if side == "q" else section.cols
    shown = list(record.sides[side_name].display)
    what = f"the {side_name} tokens" + (f" ({'query' if side == 'q' else 'key'} side)" if section.rows != section.cols else "")
    if choice.index is not None:
        if choice.index >= len(shown):
            raise OptionError(
                f"option 'token' is @{choice.index}, but {what} are @0 to @{len(shown) - 1}",
                f"the tokens: {_listing(shown)}",
            )
        return {"side": side, "index": choice.index}
    wanted = choice.text or ""
    texts = [t.strip() for t in shown]
    found = [i for i, t in enumerate(texts) if t == wanted]
    if not found:
        found = [i for i, t in enumerate(texts) if t.casefold() == wanted.casefold()]
    if not found:
        unique = list(dict.fromkeys(t for t in texts if t))
        close = difflib.get_close_matches(wanted, unique, n=3, cutoff=0.5)
        if not close:
            close = difflib.get_close_matches(wanted.casefold(), [t.casefold() for t in unique], n=3, cutoff=0.5)
        hint = (f"closest: {_listing(close)}; " if close else "") + f"{what}: {_listing(unique)}"
        raise OptionError(f"option 'token' is '{wanted}', which is not one of {what}", hint)
    if choice.occurrence > len(found):
        times = "once" if len(found) == 1 else f"{len(found)} times"
        raise OptionError(
            f"option 'token' is '{choice}', but '{wanted}' is shown only {times} in {what}",
            f"use {wanted}#1" + (f" to {wanted}#{len(found)}" if len(found) > 1 else "") + ", or @index",
        )
    return {"side": side, "index": found[choice.occurrence - 1]}


def _opening_step(record: AttentionRecord, options: FigureOptions, section: str, out: dict[str, Any]) -> str:
    """Checks option ``step`` against the record's generation; the section the figure then opens on.

    A step locks the query row that wrote its token, a row of the decoder tokens: an encoder
    section (encoder-decoder models) gives way to the decoder's own attention.
    """
    generation = record.generation
    step = options.step or 0
    if generation is None:
        raise OptionError("option 'step' replays generation, but this figure generates nothing", "add generate: <new tokens>, or remove step")
    count = int(generation["new_tokens"])
    if step > count:
        raise OptionError(f"option 'step' is {step}, but the model wrote {count} token{'s' if count != 1 else ''}", f"steps: 0 (the whole sequence) to {count}")
    out["step"] = step
    if step and options.token is not None:
        raise OptionError("option 'token' and a generation step both choose the query token", "remove token: the step locks the position that wrote its token")
    if step and record.sections[section].rows != generation["side"]:
        if options.section is not None:
            raise OptionError(
                f"option 'step' locks a {generation['side']} token, which the {section} attention has no query row for",
                f"set section: {generation['side']}, or remove section",
            )
        section = out["section"] = generation["side"]
    return section


def _check_filtered_query(record: AttentionRecord, section: str, out: dict[str, Any], view: str) -> None:
    """The neuron view offers only the queries its sentence filter keeps: a token it hides is an error."""
    filter_ = out.get("filter", "all")
    if view != "neuron" or filter_ == "all":
        return
    start = record.sides[record.sections[section].rows].text_b_start
    index = out["token"]["index"]
    sentence = "a" if index < start else "b"
    if sentence != filter_[0]:
        shown = record.sides[record.sections[section].rows].display[index].strip()
        raise OptionError(
            f"option 'token' is '{shown}', a sentence {sentence.upper()} query, which filter {filter_} hides "
            f"(it shows queries of sentence {filter_[0].upper()})",
            f"name a token of sentence {filter_[0].upper()}, or set filter: {sentence}{filter_[1]} or all",
        )


def opening_state(record: AttentionRecord, options: FigureOptions, layer: int, heads: Sequence[int]) -> dict[str, Any]:
    """The state keys an author set, checked against the record and resolved for the browser.

    Raises :class:`OptionError` naming the option and what would work. ``layer`` and
    ``heads`` are the ones the figure opens on (already checked by the payload).
    """
    check_views(options)
    view = options.view
    order = _section_order(record)
    out: dict[str, Any] = {}
    if view == "neuron":
        usable = [n for n in order if record.sections[n].has_qk] or order
    else:
        usable = order
    section = usable[0]
    if options.section is not None:
        if options.section not in usable:
            reason = "has no" if options.section not in record.sections else "cannot show the"
            raise OptionError(
                f"option 'section' is {options.section}, but this figure {reason} {options.section} attention",
                f"sections: {', '.join(usable)}",
            )
        section = out["section"] = options.section
    info = record.sections[section]
    if options.layer is not None and layer >= info.layers:
        raise OptionError(f"option 'layer' is {layer}, but the {section} attention has {info.layers} layers", f"layers: 0-{info.layers - 1}")
    if options.filter is not None:
        rows, cols = record.sides.get(info.rows), record.sides.get(info.cols)
        if options.filter != "all" and (rows is None or cols is None or rows.text_b_start is None or cols.text_b_start is None):
            raise OptionError(f"option 'filter' is {options.filter}, but this figure has no sentence pair", "add text-b, or remove filter")
        out["filter"] = options.filter
    if options.mode is not None:
        if options.mode == "rollout" and not (info.rows == info.cols and info.attention.shape[2] == info.attention.shape[3]):
            raise OptionError(
                f"option 'mode' is rollout, but the {section} attention is not self attention",
                "rollout needs section: encoder or decoder; " + ", ".join(m for m in MATRIX_MODES if m != "rollout") + " work here",
            )
        out["mode"] = options.mode
    if options.stat is not None:
        if not _stat_available(record, section, options.stat):
            works = [s for s in SUMMARY_STATS if _stat_available(record, section, s)]
            raise OptionError(f"option 'stat' is {options.stat}, which the {section} attention of this figure does not have", f"use one of {', '.join(works)}")
        out["stat"] = options.stat
    if options.role is not None:
        from .roles import available_roles  # numpy analysis: only for figures that set a role

        works = available_roles(record, section)
        if options.role != "none" and options.role not in works:
            why = ", which needs repeated text" if options.role == "induction" else ""
            raise OptionError(
                f"option 'role' is {options.role}{why}: the {section} attention of this figure has no such score",
                f"use one of {', '.join(works)}, or none",
            )
        out["role"] = options.role
    if options.open:
        if not heads:
            raise OptionError("option 'open' needs a head to open", "set heads: <head>, or remove open")
    if options.view == "model" and options.token is not None and not options.open:
        raise OptionError("option 'token' in the model view selects a token in an open head's detail", "add open: true")
    if options.step is not None:
        section = _opening_step(record, options, section, out)
    if options.token is not None:
        out["token"] = resolve_token(record, section, options.token, view)
        _check_filtered_query(record, section, out, view)
    if options.overlay == "rollout" and not (getattr(record, "image", None) or {}).get("rollout"):
        raise OptionError("option 'overlay' is rollout, but this model has no class token to roll out from", "use overlay: attention")
    for key in ("locked", "lines", "layout", "open", "scale", "difference", "overlay"):
        value = getattr(options, key)
        if value is not None:
            out[key] = value
    return out
