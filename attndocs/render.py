"""Payload -> HTML: figure fragments, failure placeholders, standalone pages and the assets.

Front-ends (Sphinx, MkDocs, the site builder, notebooks, the CLI) place what this module
returns; they never write figure markup themselves. Everything textual is escaped by
Jinja2's autoescaping or by :func:`attndocs.payload.script_json`, and element ids derive
from the content, so rendering the same record with the same options gives the same bytes.

This module imports numpy and jinja2 only; never torch.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import jinja2
import numpy as np

from .errors import OptionError
from .options import EMBEDS, VIEWS, FigureOptions
from .payload import Payload, build_payload, script_json
from .record import AttentionRecord
from .state import header_state_keys

_ASSETS = resources.files("attndocs") / "assets"
_TEMPLATES = resources.files("attndocs") / "templates"
_VIEW_NAMES = {
    "head": "head view",
    "model": "model view",
    "neuron": "neuron view",
    "matrix": "matrix",
    "summary": "head summary",
    "patch": "patch view",
}


@dataclass
class RenderedFigure:
    """One figure's HTML fragment and the side files it refers to (``embed="file"``)."""

    html: str
    id: str
    view: str
    files: dict[str, bytes] = field(default_factory=dict)
    payload_bytes: int = 0  # every byte of data the figure ships, in the page or beside it
    name: str | None = None  # what links name (#<name>/...), for a figure with a name option
    page_bytes: int = 0  # what the figure costs its page before its first view draws
    first_bytes: int = 0  # what it would cost with embed="file": its header and first chunk
    shape: tuple[int, int, int] = (0, 0, 0)  # layers, heads and tokens it ships (the largest section)
    embed: str = "inline"

    def __str__(self) -> str:
        return self.html


# -- assets -------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def bundle_js() -> str:
    """Every ``assets/js/*.js`` in file-name order, each in its own function scope.

    The bundle defines ``window.attndocs`` once; loading it a second time (two notebook
    outputs, a theme that repeats scripts) only boots figures that are new.
    """
    sources = sorted((p for p in (_ASSETS / "js").iterdir() if p.name.endswith(".js")), key=lambda p: p.name)
    parts = [
        "/* attndocs.js: interactive attention figures. Generated from attndocs/assets/js; no dependencies. */",
        "(function () {",
        "if (window.attndocs && window.attndocs.version) { window.attndocs.boot(); return; }",
        "window.attndocs = {};",
        # The state keys of each view (attndocs/state.py), the same for every figure: here once a
        # site rather than in every figure's header.
        f"window.attndocs.STATE_KEYS = {script_json({view: header_state_keys(view) for view in VIEWS})};",
    ]
    for path in sources:
        text = path.read_text(encoding="utf-8")
        parts.append(f"/* ---- {path.name} ---- */\n(function (attndocs) {{\n\"use strict\";\n{text}\n}})(window.attndocs);")
    parts.append("window.attndocs.start();\n})();\n")
    js = "\n".join(parts)
    if re.search(r"</script|<!--", js, re.IGNORECASE):
        raise RuntimeError("attndocs.js must not contain '</script' or '<!--' (it is inlined into pages)")
    return js


@functools.lru_cache(maxsize=1)
def bundle_css() -> str:
    css = (_ASSETS / "attndocs.css").read_text(encoding="utf-8")
    if re.search(r"</style", css, re.IGNORECASE):
        raise RuntimeError("attndocs.css must not contain '</style'")
    return css


def _short_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:10]


def asset_files() -> dict[str, bytes]:
    """``{"attndocs.<hash>.js": ..., "attndocs.<hash>.css": ...}`` for a site's static folder.

    The hash is of the content, so a browser cache never serves a stale copy.
    """
    js = bundle_js().encode("utf-8")
    css = bundle_css().encode("utf-8")
    return {f"attndocs.{_short_hash(js)}.js": js, f"attndocs.{_short_hash(css)}.css": css}


def asset_tags(prefix: str = "") -> str:
    """The ``<link>`` and ``<script>`` tags that load :func:`asset_files` from ``prefix``."""
    tags = []
    for name in asset_files():
        url = _attr(prefix + name)
        if name.endswith(".css"):
            tags.append(f'<link rel="stylesheet" href="{url}">')
        else:
            tags.append(f'<script defer src="{url}"></script>')
    return "\n".join(tags)


def _attr(text: str) -> str:
    return str(jinja2.utils.markupsafe.escape(text))


# -- templates ----------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: (_TEMPLATES / name).read_text(encoding="utf-8")),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    return env


# -- ids ----------------------------------------------------------------------------------
# Every figure id starts with this: the host page owns the bare names ("content", "main",
# "search" ...), and a figure named like one of them must not take it over.
ID_PREFIX = "attndocs-"


def figure_id(options: FigureOptions, digest: str, used_ids: set[str] | None = None) -> str:
    """``attndocs-<name>`` (the name made safe for an id), else ``attndocs-<content hash>``.

    Unique within ``used_ids`` (one set per page): a repeated name gets ``-2``, ``-3``.
    The part after the prefix of a named figure is the name links use (:func:`link_name`).
    """
    if options.name:
        base = ID_PREFIX + (re.sub(r"[^A-Za-z0-9_.:-]+", "-", options.name.strip()).strip("-") or "figure")
    else:
        base = ID_PREFIX + digest[:12]
    result = base
    if used_ids is not None:
        n = 2
        while result in used_ids:
            result = f"{base}-{n}"
            n += 1
        used_ids.add(result)
    return result


def link_name(options: FigureOptions, fig_id: str) -> str | None:
    """The name a link uses for a figure (``#<name>/layer=2``), or None for an unnamed one.

    Links to an unnamed figure use its id (``#attndocs-<hash>/...``).
    """
    return fig_id[len(ID_PREFIX):] if options.name else None


def _classes(options: FigureOptions) -> list[str]:
    return [c for c in re.split(r"\s+", options.class_ or "") if c and re.fullmatch(r"[A-Za-z0-9_-]+", c)]


# -- summaries for readers without JavaScript ----------------------------------------------
def describe(record: AttentionRecord, options: FigureOptions) -> str:
    """One sentence saying what the figure shows (its default alt text)."""
    sides = record.sides
    n_tokens = " and ".join(f"{len(side)} {name} tokens" for name, side in sides.items())
    view = _VIEW_NAMES.get(options.view, options.view)
    model = record.model_id or "a model"
    text = f"Attention {view} of {model} ({record.layers} layers × {record.heads} heads, {n_tokens})."
    if record.image is not None:  # a vision transformer's figure (attndocs.vision)
        image = record.image
        text = (
            f"Attention {view} of {model} over an image cut into {image['rows']} × {image['cols']} patches "
            f"({record.layers} layers × {record.heads} heads, {n_tokens}; patches named r1c1 to r{image['rows']}c{image['cols']})."
        )
    generation = record.generation
    if generation is not None:
        # What the model wrote exists only after the build: the page's text must say it.
        count = int(generation["new_tokens"])
        wrote = " ".join(str(generation.get("text", "")).split())
        side = f"{generation['side']} " if record.kind == "encoder-decoder" else ""
        text += f" The model wrote the last {count} {side}token{'s' if count != 1 else ''}: “{wrote}”."
    return text


def strongest_pairs(record: AttentionRecord, layer: int, heads: Sequence[int], count: int = 5) -> list[tuple[str, str, float]]:
    """The strongest (query token, key token, mean weight) pairs of one layer, for a text summary.

    Pairs with a special token ([CLS], [SEP], <s> ...) or a token attending to itself are
    skipped when others exist, since they say little about the text.
    """
    name = next(iter(record.sections))
    section = record.sections[name]
    if layer >= section.layers:
        return []
    heads = [h for h in heads if h < section.heads] or list(range(section.heads))
    mean = np.asarray(section.attention[layer][heads], dtype=np.float32).mean(axis=0)
    rows, cols = record.sides[section.rows], record.sides[section.cols]
    score = mean.copy()
    boring = np.zeros_like(score, dtype=bool)
    boring |= np.asarray(rows.special, dtype=bool)[:, None]
    boring |= np.asarray(cols.special, dtype=bool)[None, :]
    if section.rows == section.cols:
        np.fill_diagonal(boring, True)
    if (~boring).any():
        score[boring] = -1
    flat = np.argsort(-score, axis=None, kind="stable")[:count]
    out = []
    for index in flat:
        i, j = divmod(int(index), score.shape[1])
        if score[i, j] < 0:
            break
        out.append((rows.display[i], cols.display[j], float(mean[i, j])))
    return out


# -- figures ------------------------------------------------------------------------------
def render_figure(
    record: AttentionRecord,
    options: FigureOptions,
    *,
    embed: str = "inline",
    file_prefix: str = "",
    used_ids: set[str] | None = None,
    hash_state: bool = True,
    compare: AttentionRecord | None = None,
    still: bytes | None = None,
) -> RenderedFigure:
    """The HTML fragment of one figure (``compare``: the second record of a compare-text /
    compare-model figure, FigureResult.compare).

    ``still``: PNG bytes (attndocs.still.still_png) shown inside the figure's frame, as a
    data URI whose alt text is the figure's description, until the script draws (starting
    the figure empties its frame); where no script runs it stays. Without it the fragment is
    what it always was.

    ``embed="inline"`` puts the payload's chunks in the page as base64, each decoded when
    the figure first needs it; ``embed="file"`` returns them in ``files`` as scripts named
    by their content (``attndocs-<hash>.js``), loaded from ``file_prefix`` when the figure
    comes into view (the first chunk) or the reader asks for more. Both work from a web
    server and from file://. ``used_ids`` (one set per page)
    keeps ids unique when the same figure appears twice. The element id is always
    ``attndocs-...`` (see :func:`figure_id`); a named figure also carries its name for
    links. Raises :class:`OptionError` when
    a layer or head option does not fit the record.
    """
    if embed not in EMBEDS:
        raise OptionError(f"embed must be one of {', '.join(EMBEDS)}, not {embed!r}")
    payload = build_payload(record, options, hash_state=hash_state, compare=compare)
    header_json = payload.header_json()
    digest = payload.digest(header_json)
    fig_id = figure_id(options, digest, used_ids)
    name = link_name(options, fig_id)
    files: dict[str, bytes] = {}
    src = None
    body_b64 = ""
    chunks: list[tuple[str, jinja2.utils.markupsafe.Markup]] = []
    count = len(payload.shipped)
    if embed == "auto":
        # A small figure stays in its page (one request, nothing to lose when the page is
        # saved alone); a large one ships its first view and loads the rest as asked.
        embed = "file" if count > 1 else "inline"
    if embed == "file":
        # Every chunk is a script beside the page; the page names the first, and the others
        # (same folder, named by their hash in the header) load as the reader needs them.
        for index in range(count):
            files[payload.chunk_file_name(index)] = payload.chunk_script(index)
        src = file_prefix + payload.chunk_file_name(0)
        page_data = len(files[payload.chunk_file_name(0)])
    else:
        # Base64 has no character that needs escaping, and escaping megabytes of it costs time.
        body_b64 = payload.body_base64(0)
        chunks = [(payload.chunk_id(i), jinja2.utils.markupsafe.Markup(payload.body_base64(i))) for i in range(1, count)]
        page_data = len(body_b64) + sum(len(b64) for _, b64 in chunks)
    description = describe(record, options)
    if "compare" in payload.header:
        sides = payload.header["compare"]["labels"]
        description += f" Compares {sides[0]} (A) with {sides[1]} (B)."
    label = options.alt or description
    selection = payload.header["options"]
    pairs = strongest_pairs(record, selection["layer"], selection["heads"]) if options.view != "summary" else []
    html = _env().get_template("figure.html").render(
        reserve=reserved_height(payload.header),
        id=fig_id,
        name=name,
        view=options.view,
        classes=_classes(options),
        display=options.display,
        theme="dark" if options.display == "dark" else "light",
        label=label,
        description=description,
        alt=options.alt,
        layer=selection["layer"],
        pairs=pairs,
        caption=options.caption,
        header_json=jinja2.utils.markupsafe.Markup(header_json),
        body_b64=jinja2.utils.markupsafe.Markup(body_b64),
        chunks=chunks,
        src=src,
        still=_still_image(still),
    )
    header_bytes = len(header_json.encode("utf-8"))
    return RenderedFigure(
        html=html, id=fig_id, view=options.view, files=files, payload_bytes=len(payload.encoded), name=name,
        page_bytes=header_bytes + page_data, first_bytes=header_bytes + len(payload.chunk_script(0)),
        shape=_shipped_shape(payload.header), embed=embed,
    )


def _still_image(png: bytes | None) -> dict[str, Any] | None:
    """The ``<img>`` attributes of a still picture: its data URI, width and height (from IHDR)."""
    if png is None:
        return None
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("still must be PNG bytes")
    return {
        "src": jinja2.utils.markupsafe.Markup("data:image/png;base64," + base64.b64encode(png).decode("ascii")),
        "width": int.from_bytes(png[16:20], "big"),
        "height": int.from_bytes(png[20:24], "big"),
    }


# About the height a figure draws at in a ~700 px column (controls, drawing, colour key),
# reserved before its script runs: a figure that grew after the browser had scrolled to a
# link would push its target away (06-boot.js also holds a linked figure in place).
_NOMINAL_WIDTH = 700
_CONTROLS = 76  # the control bar and a colour key
PATCH_SIDE = 448  # the widest the patch view draws its image (38-patch.js MAX_SIDE)


def reserved_height(header: dict[str, Any]) -> int:
    """The height in px a figure's frame keeps before it draws, from its payload header."""
    sections = header.get("sections") or {}
    first = sections.get((header.get("sectionOrder") or [None])[0]) or next(iter(sections.values()), None)
    if not first:
        return 0
    tokens = max(first["shape"])
    heads, layers = len(first["heads"]), len(first["layers"])
    view = header.get("view")
    if view == "model":
        size = max(28, min(88, (_NOMINAL_WIDTH - 34) // max(heads, 1) - 5))
        height = 20 + layers * (round(size * 1.15) + 5)
    elif view == "neuron":
        height = 60 + min(tokens * 20 + 40, 640)
    elif view == "matrix":
        cell = max(2, min(48, (768 - 130) // max(tokens, 1), (_NOMINAL_WIDTH - 96) // max(tokens, 1)))
        height = 50 + min(tokens * cell + 90, 768)
    elif view == "summary":
        height = 40 + max(layers * 30 + 40, 330)
    elif view == "patch":  # the image at PATCH_SIDE px wide (38-patch.js), its readout and text lines
        image = header.get("image") or {}
        rows = -(-(50 + 41 * heads) // _NOMINAL_WIDTH)  # of head buttons (06-boot.js RESERVE has the same rule)
        height = 97 + 28 * (rows - 1) + round(PATCH_SIDE * int(image.get("height") or 1) / max(1, int(image.get("width") or 1)))
    else:  # the head view
        height = 30 * -(-(50 + 41 * heads) // _NOMINAL_WIDTH) + min(tokens * (15 if tokens > 120 else 18), 640)
    return _CONTROLS + height


def _shipped_shape(header: dict[str, Any]) -> tuple[int, int, int]:
    sections = header["sections"].values()
    return (
        max((len(s["layers"]) for s in sections), default=0),
        max((len(s["heads"]) for s in sections), default=0),
        max((max(s["shape"]) for s in sections), default=0),
    )


def _format_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def over_budget(figure: RenderedFigure, budget: int, setting: str = "page_budget") -> str | None:
    """The warning for a figure that costs its page more than ``budget`` bytes, else None.

    ``setting`` is the budget's name in the front-end's configuration (Sphinx:
    ``attention_page_budget``). The message says the figure's size and what would shrink
    it: fewer layers or heads, fewer tokens, or side files loaded as the reader asks.
    """
    if budget <= 0 or figure.page_bytes <= budget:
        return None
    layers, heads, tokens = figure.shape
    cuts = []
    if layers > 1:
        cuts.append(f"include-layers (it ships {layers} layers)")
    if heads > 1:
        cuts.append(f"include-heads ({heads} heads)")
    cuts.append(f"fewer tokens ({tokens}; the data grows with their square)")
    if figure.embed == "inline" and 0 < figure.first_bytes < figure.page_bytes / 2:
        embed = "attention_embed = 'file'" if setting.startswith("attention_") else "embed: file"
        cuts.append(
            f"or {embed}, with which it costs {_format_size(figure.first_bytes)} and loads the rest as the reader asks"
        )
    return (
        f"this figure costs its page {_format_size(figure.page_bytes)} before it draws, over the page budget of "
        f"{_format_size(budget)} ({setting}); to shrink it: " + ", ".join(cuts)
    )


def render_placeholder(message: str, options: FigureOptions | None = None, *, used_ids: set[str] | None = None) -> str:
    """A visible box in place of a figure that could not be made (the build goes on)."""
    options = options or FigureOptions()
    digest = hashlib.sha256(f"{message}\0{options.text}\0{options.view}".encode()).hexdigest()
    fig_id = figure_id(options, digest, used_ids)
    return _env().get_template("placeholder.html").render(
        id=fig_id,
        name=link_name(options, fig_id),
        classes=_classes(options),
        message=message,
        alt=options.alt,
        caption=options.caption,
        display=options.display,
    )


# -- standalone pages ---------------------------------------------------------------------
def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def render_page(figures: Iterable[RenderedFigure | str], title: str = "Attention", *, lang: str = "en", intro: str | None = None) -> str:
    """A self-contained HTML page: assets inlined, no request to any network.

    A Content-Security-Policy allows only the page's own inline script (by hash) and no
    connections at all, so even a mistake elsewhere cannot make the page load anything.
    Figures rendered with ``embed="file"`` are not allowed here: a standalone page carries
    its data inline.
    """
    parts = []
    for figure in figures:
        if isinstance(figure, RenderedFigure):
            if figure.files:
                raise OptionError("a standalone page needs figures rendered with embed='inline'")
            parts.append(figure.html)
        else:
            parts.append(str(figure))
    js = bundle_js()
    csp = (
        "default-src 'none'; "
        f"script-src {_csp_hash(js)}; "
        "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; connect-src 'none'; "
        "base-uri 'none'; form-action 'none'"
    )
    return _env().get_template("page.html").render(
        title=title,
        lang=lang,
        intro=intro,
        csp=csp,
        css=jinja2.utils.markupsafe.Markup(bundle_css()),
        js=jinja2.utils.markupsafe.Markup(js),
        figures=[jinja2.utils.markupsafe.Markup(p) for p in parts],
    )


def render_record_page(
    record: AttentionRecord, options: FigureOptions, title: str | None = None, *, compare: AttentionRecord | None = None
) -> str:
    """One record as one standalone page (what ``attndocs render`` writes)."""
    figure = render_figure(record, options, compare=compare)
    return render_page([figure], title or options.caption or describe(record, options))


def inline_assets_html(fragment: str) -> str:
    """A fragment plus the inlined CSS and JS (for notebook outputs)."""
    return f"<style>{bundle_css()}</style>\n{fragment}\n<script>{bundle_js()}</script>"


_DATA_RE = re.compile(
    r"""<div class="attndocs-data" hidden data-header='([^']*)'(?: data-src="([^"]*)"| data-body="([^"]*)")></div>"""
)
_CHUNK_RE = re.compile(r"""<div class="attndocs-chunk" hidden data-chunk="([0-9a-f]+)" data-body="([^"]*)"></div>""")


def figure_payloads(html: str) -> list[dict[str, Any]]:
    """Every figure payload in rendered HTML, in page order (for tests and tools).

    Each item: ``header`` (the decoded JSON); for an inline figure ``body`` (chunk 0 as
    shipped) and ``chunks`` (every chunk as shipped, in header order, chunk 0 first), for
    ``embed="file"`` ``src`` (the URL of chunk 0's script); the others are None.
    """
    out = []
    matches = list(_DATA_RE.finditer(html))
    for k, match in enumerate(matches):
        header_text, src, body = match.groups()
        header = json.loads(header_text)
        chunks = None
        if body is not None:
            end = matches[k + 1].start() if k + 1 < len(matches) else len(html)
            inline = {m.group(1): base64.b64decode(m.group(2)) for m in _CHUNK_RE.finditer(html, match.end(), end)}
            chunks = [base64.b64decode(body)] + [inline[c["id"]] for c in header["chunks"][1:]]
        out.append({
            "header": header,
            "src": jinja2.utils.markupsafe.Markup(src).unescape() if src is not None else None,
            "body": chunks[0] if chunks is not None else None,
            "chunks": chunks,
        })
    return out


def payload_of(record: AttentionRecord, options: FigureOptions) -> Payload:
    """The payload a figure would carry (benchmarks and tests measure it)."""
    return build_payload(record, options)
