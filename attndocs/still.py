"""A still picture of a figure's opening view, drawn with Pillow, for hosts that run no script.

Notebook viewers that strip scripts (GitHub, nbviewer, untrusted VS Code and Jupyter) show
this picture instead of an empty frame; ``notebook.AttentionHTML`` puts it in the output's
mime bundle (``image/png``) and inside the figure's HTML until the script draws. The
picture is the state the interactive figure opens on: its layer, heads, section, token,
sentence filter, scale, matrix mode and summary statistic, in its light or dark theme,
with the head colours of attndocs.css. Long texts show their first tokens and say so.

The same bytes come from the same input: Pillow draws, and :func:`attndocs.png.encode_png`
(numpy and zlib, no timestamps) writes every PNG attndocs makes, the LaTeX/epub heatmap included.
No browser and no torch are needed.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .options import FigureOptions
from .payload import select_layers_heads
from .png import encode_png, ramp
from .record import AttentionRecord, Section

WIDTH = 700  # px: a notebook output or a documentation column
SUPERSAMPLE = 2  # drawn at twice the size and reduced, so lines and text are smooth
MAX_LINE_TOKENS = 48  # head and neuron views: rows of tokens drawn before "first N of M"
MAX_MATRIX_TOKENS = 160  # matrix: cells a side
MAX_THUMB_BINS = 24  # model view: a thumbnail's tokens are max-pooled to this many
MAX_GRID = 24  # model view: layers and heads drawn at most
BUCKETS = 16  # line opacity steps, as 30-head.js


# -- colours, as attndocs.css ------------------------------------------------------------------
def _hex(value: str) -> tuple[int, int, int]:
    value = value.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


@dataclass(frozen=True)
class Palette:
    fg: tuple[int, int, int]
    bg: tuple[int, int, int]
    muted: tuple[int, int, int]
    grid: tuple[int, int, int]
    accent: tuple[int, int, int]
    neg: tuple[int, int, int]
    heads: tuple[tuple[int, int, int], ...]

    def head(self, h: int) -> tuple[int, int, int]:
        """Head ``h``'s colour: the palette, then lighter and darker rounds (fig.headColor)."""
        n = len(self.heads)
        base, turn = self.heads[h % n], h // n
        if turn == 0:
            return base
        toward = self.bg if turn % 2 == 1 else self.fg
        return _mix(base, toward, min(0.45, 0.3 * -(-turn // 2)))


def _palette(fg: str, bg: str, muted: str, grid: str, accent: str, neg: str, heads: str) -> Palette:
    return Palette(
        _hex(fg), _hex(bg), _hex(muted), _hex(grid), _hex(accent), _hex(neg), tuple(_hex(h.strip()) for h in heads.split(","))
    )


LIGHT = _palette(
    "#1f2328", "#ffffff", "#59636e", "#d1d9e0", "#0969da", "#d55e00",
    "#0072b2,#d55e00,#009e73,#cc79a7,#e69f00,#56b4e9,#332288,#882255,#999933,#44aa99,#aa4499,#cc6677",
)
DARK = _palette(
    "#e6edf3", "#0d1117", "#9198a1", "#3d444d", "#4493f8", "#ff9e4a",
    "#56b4e9,#ff8c42,#3ddc97,#f28cc5,#f0e442,#8fa8ff,#ff6f61,#7fdbca,#c9c96b,#d6a8ff,#ffb3a1,#a0d568",
)


def _mix(a: Sequence[int], b: Sequence[int], t: float) -> tuple[int, int, int]:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))  # type: ignore[return-value]


# -- drawing -----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size * SUPERSAMPLE)  # type: ignore[return-value]


class _Canvas:
    """A picture drawn at SUPERSAMPLE times its size in px units, reduced when done."""

    def __init__(self, width: int, height: int, palette: Palette) -> None:
        self.width, self.height, self.palette = width, height, palette
        self.image = Image.new("RGB", (width * SUPERSAMPLE, height * SUPERSAMPLE), palette.bg)
        self.draw = ImageDraw.Draw(self.image)
        self.inks: list[tuple[int, int, int]] = []  # line colours, for the PNG's palette

    @staticmethod
    def s(value: float) -> int:
        return int(round(value * SUPERSAMPLE))

    def text(self, xy: tuple[float, float], text: str, *, size: int = 12, fill: Sequence[int] | None = None,
             anchor: str = "la") -> None:
        self.draw.text((self.s(xy[0]), self.s(xy[1])), text, font=_font(size), fill=tuple(fill or self.palette.fg), anchor=anchor)

    def rect(self, box: tuple[float, float, float, float], fill: Sequence[int] | None = None,
             outline: Sequence[int] | None = None, width: int = 1) -> None:
        x0, y0, x1, y1 = (self.s(v) for v in box)
        self.draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=tuple(fill) if fill else None,
                            outline=tuple(outline) if outline else None, width=width * SUPERSAMPLE)

    def lines(self, segments: list[tuple[float, float, float, float, int]], colour: Sequence[int], width: float = 1) -> None:
        """Segments (x0, y0, x1, y1, opacity step 1..BUCKETS) in one colour, over what is drawn.

        Fainter steps are drawn first, so where lines cross the stronger one shows.
        """
        if tuple(colour) not in self.inks:
            self.inks.append(tuple(colour))  # type: ignore[arg-type]
        if not segments:
            return
        mask = Image.new("L", self.image.size, 0)
        pen = ImageDraw.Draw(mask)
        for x0, y0, x1, y1, step in sorted(segments, key=lambda seg: seg[4]):
            pen.line((self.s(x0), self.s(y0), self.s(x1), self.s(y1)), fill=round(255 * step / BUCKETS), width=self.s(width))
        self.image.paste(Image.new("RGB", self.image.size, tuple(colour)), (0, 0), mask)

    def paste_rgb(self, pixels: np.ndarray, x: float, y: float, cell: float) -> None:
        """An array of cell colours (rows x cols x 3), each cell ``cell`` px square, at (x, y)."""
        rows, cols = pixels.shape[:2]
        tile = Image.fromarray(np.ascontiguousarray(pixels), "RGB").resize(
            (self.s(cols * cell), self.s(rows * cell)), Image.Resampling.NEAREST
        )
        self.image.paste(tile, (self.s(x), self.s(y)))

    def text_width(self, text: str, size: int = 12) -> float:
        return _font(size).getlength(text) / SUPERSAMPLE

    def png(self, *, photo: bool = False) -> bytes:
        small = self.image.resize((self.width, self.height), Image.Resampling.BOX, reducing_gap=None)
        # Indexed colour keeps the file a few times smaller than RGB. The palette is made of
        # what was drawn (each colour blended into the background in even steps), so head
        # colours and the background stay exact, and of the picture's own colours (median
        # cut) for what is in no ink's steps: where lines of several heads cross, and the
        # photo of the patch view. Nearest-colour mapping is deterministic.
        palette = self._palette(photo)
        spare = 256 - len(palette) if photo else min(32, 256 - len(palette))
        if spare >= 16:
            adaptive = small.quantize(colors=spare, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
            extra = np.asarray(adaptive.getpalette() or [], dtype=np.uint8).reshape(-1, 3)[:spare]
            palette = np.concatenate([palette, extra])
        return encode_png(_nearest(np.asarray(small, dtype=np.uint8), palette), palette)

    def _palette(self, photo: bool = False) -> np.ndarray:
        p = self.palette
        inks = [(p.fg, 6), (p.muted, 4)] if photo else [(p.fg, 12), (p.muted, 8), (p.grid, 6), (p.accent, 32)]
        inks += [(c, 8) for c in self.inks]
        while sum(n for _, n in inks) + 1 > 192:
            inks = [(c, max(3, n * 3 // 4)) for c, n in inks]
        colours = [p.bg] + [_mix(p.bg, c, k / n) for c, n in inks for k in range(1, n + 1)]
        return np.asarray(colours[:256], dtype=np.uint8)


def _nearest(rgb: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Each pixel's index of the nearest palette colour (squared distance, ties to the first)."""
    flat = rgb.reshape(-1, 3).astype(np.int32)
    packed = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    colours, where = np.unique(packed, return_inverse=True)  # a drawing has a few thousand colours
    unique = np.stack([colours >> 16, (colours >> 8) & 255, colours & 255], axis=1)
    index = np.empty(len(unique), dtype=np.uint8)
    table = palette.astype(np.int32)
    for start in range(0, len(unique), 4096):
        part = unique[start : start + 4096]
        index[start : start + 4096] = ((part[:, None, :] - table[None, :, :]) ** 2).sum(axis=-1).argmin(axis=1)
    return index[where.reshape(-1)].reshape(rgb.shape[:2])


def _fit(text: str, canvas: _Canvas, width: float, size: int = 12) -> str:
    """``text`` shortened with an ellipsis to ``width`` px."""
    text = text.replace("\n", "\\n")
    if canvas.text_width(text, size) <= width:
        return text
    while text and canvas.text_width(text + "…", size) > width:
        text = text[:-1]
    return text + "…"


# -- what the figure opens on --------------------------------------------------------------------
@dataclass
class _Opening:
    section: str
    layer: int
    heads: list[int]
    token: dict[str, Any] | None
    filter: str
    full_scale: bool
    state: dict[str, Any]
    included_layers: list[int]
    included_heads: list[int]


def _opening(record: AttentionRecord, options: FigureOptions) -> _Opening:
    selection = select_layers_heads(record, options)
    state = dict(selection.opening)
    order = [n for n in ("encoder", "decoder", "cross") if n in record.sections] or list(record.sections)
    if options.view == "neuron":
        order = [n for n in order if record.sections[n].has_qk] or order
    section = state.get("section") or order[0]
    info = record.sections[section]
    heads = [h for h in selection.selected_heads if h < info.heads]
    return _Opening(
        section=section,
        layer=min(selection.layer, info.layers - 1),
        heads=heads,
        token=state.get("token"),
        filter=state.get("filter") or "all",
        full_scale=state.get("scale", "fixed") == "fixed",
        state=state,
        included_layers=[layer for layer in selection.layers if layer < info.layers],
        included_heads=[h for h in selection.heads if h < info.heads],
    )


def _masks(record: AttentionRecord, section: Section, how: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns the sentence filter keeps (all, aa, bb, ab, ba)."""
    rows = np.ones(section.attention.shape[2], dtype=bool)
    cols = np.ones(section.attention.shape[3], dtype=bool)
    start_r, start_c = record.sides[section.rows].text_b_start, record.sides[section.cols].text_b_start
    if how == "all" or start_r is None or start_c is None:
        return rows, cols
    in_b_rows, in_b_cols = np.arange(rows.size) >= start_r, np.arange(cols.size) >= start_c
    want_rows = in_b_rows if how[0] == "b" else ~in_b_rows
    want_cols = in_b_cols if how[1] == "b" else ~in_b_cols
    return want_rows, want_cols


def _steps(weights: np.ndarray, full: float, floor: bool = False) -> np.ndarray:
    """Opacity steps 0..BUCKETS of weights (as 30-head.js weightTable; ``floor``: at least 1 where > 0)."""
    steps = np.minimum(BUCKETS, np.floor(weights / max(full, 1e-12) * BUCKETS + 0.5)).astype(int)
    if floor:
        steps = np.where(weights > 1e-3, np.maximum(steps, 1), steps)
    return steps


def _title(canvas: _Canvas, record: AttentionRecord, what: str) -> float:
    model = record.model_id or "attention"
    canvas.text((12, 10), _fit(f"{model} · {what}", canvas, canvas.width - 24, 13), size=13)
    return 34.0


def _footer(canvas: _Canvas, notes: list[str]) -> None:
    # What the picture leaves out comes first; the note on what it is, when there is room.
    text = " ".join(notes) or "Still picture of the opening view; interactive where JavaScript runs."
    canvas.text((12, canvas.height - 20), _fit(text, canvas, canvas.width - 24, 11), size=11, fill=canvas.palette.muted)


def _shown(count: int, limit: int, what: str = "tokens") -> tuple[int, list[str]]:
    if count <= limit:
        return count, []
    return limit, [f"First {limit} of {count} {what} shown."]


# -- views ---------------------------------------------------------------------------------------
def _line_view(record: AttentionRecord, opening: _Opening, palette: Palette, what: str, query_row: int | None = None) -> bytes:
    """Two token columns and a line per weight, one colour per head (the head view)."""
    section = record.sections[opening.section]
    attention = section.attention[opening.layer]
    rows_side, cols_side = record.sides[section.rows], record.sides[section.cols]
    n_rows, notes_r = _shown(attention.shape[1], MAX_LINE_TOKENS)
    n_cols, notes_c = _shown(attention.shape[2], MAX_LINE_TOKENS)
    notes = notes_r if notes_r else notes_c
    row_mask, col_mask = _masks(record, section, opening.filter)
    step = 18.0 if max(n_rows, n_cols) <= 32 else 14.0
    heads = opening.heads
    swatch_rows = -(-max(len(heads), 1) // 16)
    top = 34 + 22 * swatch_rows + 8
    height = int(top + step * max(n_rows, n_cols) + 40)
    canvas = _Canvas(WIDTH, height, palette)
    _title(canvas, record, what)
    for k, h in enumerate(heads):
        x, y = 12 + (k % 16) * 42, 34 + 22 * (k // 16)
        canvas.rect((x, y + 2, x + 12, y + 14), fill=palette.head(h))
        canvas.inks.append(palette.head(h))
        canvas.text((x + 16, y + 2), str(h), size=11, fill=palette.muted)
    column = 190.0
    x_left, x_right = WIDTH / 2 - 110, WIDTH / 2 + 110
    token = opening.token
    if query_row is not None:
        token = {"side": "q", "index": query_row}
    for i in range(n_rows):
        y = top + i * step
        label = _fit(rows_side.display[i], canvas, column)
        chosen = token is not None and token["side"] == "q" and token["index"] == i
        colour = palette.fg if row_mask[i] else palette.muted
        if chosen:
            canvas.rect((x_left - canvas.text_width(label) - 10, y - 1, x_left - 2, y + step - 2), fill=_mix(palette.bg, palette.accent, 0.2))
        canvas.text((x_left - 6, y + step / 2 - 1), label, fill=colour, anchor="rm")
    for j in range(n_cols):
        y = top + j * step
        label = _fit(cols_side.display[j], canvas, column)
        chosen = token is not None and token["side"] == "k" and token["index"] == j
        if chosen:
            canvas.rect((x_right + 2, y - 1, x_right + canvas.text_width(label) + 10, y + step - 2), fill=_mix(palette.bg, palette.accent, 0.2))
        canvas.text((x_right + 6, y + step / 2 - 1), label, fill=palette.fg if col_mask[j] else palette.muted, anchor="lm")
    keep = np.outer(row_mask[:n_rows], col_mask[:n_cols])
    if token is not None:
        only = np.zeros_like(keep)
        if token["side"] == "q" and token["index"] < n_rows:
            only[token["index"], :] = True
        elif token["side"] == "k" and token["index"] < n_cols:
            only[:, token["index"]] = True
        keep &= only
    for h in heads:
        weights = np.asarray(attention[h, :n_rows, :n_cols], dtype=np.float32)
        full = 1.0 if opening.full_scale else float(attention[h].max() or 1.0)
        steps = np.where(keep, _steps(weights, full, floor=token is not None), 0)
        segments = [
            (x_left + 2, top + i * step + step / 2, x_right - 2, top + j * step + step / 2, int(steps[i, j]))
            for i, j in zip(*np.nonzero(steps))
        ]
        canvas.lines(segments, palette.head(h), 2 if token is not None else 1.5)
    _footer(canvas, notes)
    return canvas.png()


def _head(record: AttentionRecord, opening: _Opening, palette: Palette, options: FigureOptions) -> bytes:
    heads = opening.heads
    what = f"{opening.section} attention, layer {opening.layer}, " + (
        f"head{'s' if len(heads) != 1 else ''} {_ranges(heads)}" if heads else "no head selected"
    )
    return _line_view(record, opening, palette, what)


def _neuron(record: AttentionRecord, opening: _Opening, palette: Palette, options: FigureOptions) -> bytes:
    """The opening head's attention from the opening query, as the neuron view starts."""
    section = record.sections[opening.section]
    opening.heads = opening.heads[:1] or [0]
    token = opening.token
    row_mask, _ = _masks(record, section, opening.filter)
    rows = [int(i) for i in np.nonzero(row_mask)[0]] or [0]
    query = token["index"] if token is not None and token["side"] == "q" else (rows[-1] if section.causal else rows[0])
    query = min(query, min(section.attention.shape[2], MAX_LINE_TOKENS) - 1)
    what = f"neuron view, {opening.section} layer {opening.layer}, head {opening.heads[0]}, query {record.sides[section.rows].display[query].strip()!r}"
    return _line_view(record, opening, palette, what, query_row=query)


def _matrix_values(record: AttentionRecord, opening: _Opening) -> tuple[np.ndarray, str]:
    from . import analysis

    section = record.sections[opening.section]
    mode = opening.state.get("mode", "head")
    layer = opening.layer
    heads = opening.included_heads
    if mode == "mean":
        return analysis.mean_over_heads(section.attention[layer : layer + 1, heads])[0], f"layer {layer}, mean over heads"
    if mode == "max":
        return analysis.max_over_heads(section.attention[layer : layer + 1, heads])[0], f"layer {layer}, max over heads"
    picked = section.attention[np.ix_(opening.included_layers, heads)]
    if mode == "mean-all":
        return analysis.mean_over_all(picked), "mean over every layer and head"
    if mode == "max-all":
        return analysis.max_over_all(picked), "max over every layer and head"
    if mode == "rollout":
        return analysis.rollout(section.attention[: layer + 1])[layer], f"rollout through layer {layer}"
    head = opening.heads[0] if opening.heads else heads[0]
    return np.asarray(section.attention[layer, head], dtype=np.float32), f"layer {layer}, head {head}"


def _matrix(record: AttentionRecord, opening: _Opening, palette: Palette, options: FigureOptions) -> bytes:
    section = record.sections[opening.section]
    values, what = _matrix_values(record, opening)
    n_rows, notes_r = _shown(values.shape[0], MAX_MATRIX_TOKENS)
    n_cols, notes_c = _shown(values.shape[1], MAX_MATRIX_TOKENS)
    notes = notes_r if notes_r else notes_c
    values = np.asarray(values[:n_rows, :n_cols], dtype=np.float32)
    probe = _Canvas(1, 1, palette)
    rows_side, cols_side = record.sides[section.rows], record.sides[section.cols]
    n = max(n_rows, n_cols)
    cell = max(2.0, min(32.0, (WIDTH - 140) / n))
    labelled = cell >= 11
    label_w = min(120.0, max(probe.text_width(t, 11) for t in rows_side.display[:n_rows]) + 8) if labelled else 8.0
    label_h = min(90.0, max(probe.text_width(t, 11) for t in cols_side.display[:n_cols]) + 8) if labelled else 0.0
    left, top = 12 + label_w, 34 + label_h
    height = int(top + n_rows * cell + 40)
    canvas = _Canvas(WIDTH, height, palette)
    _title(canvas, record, f"matrix, {opening.section} attention, {what}")
    vmax = 1.0 if opening.full_scale else float(values.max() or 1.0)
    pixels = ramp(values / vmax, palette.bg, palette.accent)
    if section.causal:
        pixels[np.triu(np.ones(values.shape, dtype=bool), 1)] = _mix(palette.bg, palette.grid, 110 / 255)
    canvas.paste_rgb(pixels, left, top, cell)
    canvas.rect((left, top, left + n_cols * cell + 1, top + n_rows * cell + 1), outline=palette.grid)
    token = opening.token
    if token is not None:
        if token["side"] == "q" and token["index"] < n_rows:
            y = top + token["index"] * cell
            canvas.rect((left, y, left + n_cols * cell + 1, y + cell + 1), outline=palette.fg)
        elif token["side"] == "k" and token["index"] < n_cols:
            x = left + token["index"] * cell
            canvas.rect((x, top, x + cell + 1, top + n_rows * cell + 1), outline=palette.fg)
    if labelled:
        for i in range(n_rows):
            canvas.text((left - 4, top + (i + 0.5) * cell), _fit(rows_side.display[i], canvas, label_w - 8, 11), size=11, anchor="rm")
        for j in range(n_cols):
            label = _fit(cols_side.display[j], canvas, label_h - 8, 11)
            _vertical_text(canvas, label, left + (j + 0.5) * cell, top - 4)
    else:
        notes.append("Tokens not labelled: too many to fit.")
    _footer(canvas, notes)
    return canvas.png()


def _vertical_text(canvas: _Canvas, text: str, x: float, bottom: float, size: int = 11) -> None:
    """Text read bottom to top, its baseline centred on ``x``, ending at ``bottom``."""
    font = _font(size)
    width = max(1, int(font.getlength(text)) + 2)
    height = size * SUPERSAMPLE + 6
    strip = Image.new("L", (width, height), 0)
    ImageDraw.Draw(strip).text((0, height // 2), text, font=font, fill=255, anchor="lm")
    turned = strip.rotate(90, expand=True)
    canvas.image.paste(Image.new("RGB", turned.size, canvas.palette.fg),
                       (canvas.s(x) - turned.size[0] // 2, canvas.s(bottom) - turned.size[1]), turned)


def _summary(record: AttentionRecord, opening: _Opening, palette: Palette, options: FigureOptions) -> bytes:
    from .analysis import record_statistics

    stat = opening.state.get("stat", "entropy")
    layers, heads = opening.included_layers, opening.included_heads
    table = record_statistics(record, opening.section, layers=layers, heads=heads, only=[stat]).get(stat)
    values = np.full((len(layers), len(heads)), np.nan) if table is None else np.asarray(table, dtype=np.float64)
    cell = max(14.0, min(48.0, (WIDTH - 80) / max(len(heads), 1), 520 / max(len(layers), 1)))
    left, top = 56.0, 34 + 22.0
    height = int(top + len(layers) * cell + 40)
    canvas = _Canvas(WIDTH, height, palette)
    _title(canvas, record, f"head summary, {opening.section} attention, {stat.replace('_', ' ')}")
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    scaled = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    pixels = ramp(scaled, palette.bg, palette.accent)
    pixels[~np.isfinite(values)] = palette.grid
    canvas.paste_rgb(pixels, left, top, cell)
    for k, h in enumerate(heads):
        if cell >= 20 or k % max(1, int(20 // cell)) == 0:
            canvas.text((left + (k + 0.5) * cell, top - 4), str(h), size=10, fill=palette.muted, anchor="md")
    for k, layer in enumerate(layers):
        canvas.text((left - 6, top + (k + 0.5) * cell), f"layer {layer}", size=10, fill=palette.muted, anchor="rm")
    if cell >= 30:
        for a in range(len(layers)):
            for b in range(len(heads)):
                if np.isfinite(values[a, b]):
                    ink = palette.bg if scaled[a, b] > 0.6 else palette.fg
                    canvas.text((left + (b + 0.5) * cell, top + (a + 0.5) * cell), f"{values[a, b]:.2f}", size=10, fill=ink, anchor="mm")
    _footer(canvas, [f"Colour: {stat.replace('_', ' ')} from {lo:.2f} to {hi:.2f}; columns are heads."])
    return canvas.png()


def _model(record: AttentionRecord, opening: _Opening, palette: Palette, options: FigureOptions) -> bytes:
    section = record.sections[opening.section]
    layers, notes_l = _shown(len(opening.included_layers), MAX_GRID, "layers")
    heads, notes_h = _shown(len(opening.included_heads), MAX_GRID, "heads")
    layer_list, head_list = opening.included_layers[:layers], opening.included_heads[:heads]
    size = max(24.0, min(88.0, (WIDTH - 70) / max(heads, 1) - 5))
    gap = 5.0
    left, top = 58.0, 34 + 18.0
    height = int(top + layers * (size + gap) + 36)
    canvas = _Canvas(WIDTH, height, palette)
    _title(canvas, record, f"model view, {opening.section} attention, {len(opening.included_layers)} layers x {len(opening.included_heads)} heads")
    row_mask, col_mask = _masks(record, section, opening.filter)
    n_rows, n_cols = section.attention.shape[2:]
    row_edges = np.linspace(0, n_rows, min(n_rows, MAX_THUMB_BINS) + 1).astype(int)
    col_edges = np.linspace(0, n_cols, min(n_cols, MAX_THUMB_BINS) + 1).astype(int)
    bins = max(len(row_edges), len(col_edges)) - 1
    for b, h in enumerate(head_list):
        canvas.text((left + b * (size + gap) + size / 2, top - 4), str(h), size=10, fill=palette.muted, anchor="md")
    for a, layer in enumerate(layer_list):
        y0 = top + a * (size + gap)
        canvas.text((left - 8, y0 + size / 2), f"layer {layer}", size=10, fill=palette.muted, anchor="rm")
        for b, h in enumerate(head_list):
            x0 = left + b * (size + gap)
            canvas.rect((x0, y0, x0 + size, y0 + size), outline=palette.grid)
            weights = np.where(np.outer(row_mask, col_mask), section.attention[layer, h], 0.0)
            pooled = np.maximum.reduceat(np.maximum.reduceat(weights, row_edges[:-1], axis=0), col_edges[:-1], axis=1)
            full = 1.0 if opening.full_scale else float(pooled.max() or 1.0)
            steps = _steps(pooled, full)
            pitch = (size - 8) / max(bins - 1, 1)
            off_r = (bins - pooled.shape[0]) * pitch / 2 + 4
            off_c = (bins - pooled.shape[1]) * pitch / 2 + 4
            segments = [
                (x0 + 4, y0 + off_r + i * pitch, x0 + size - 4, y0 + off_c + j * pitch, int(steps[i, j]))
                for i, j in zip(*np.nonzero(steps))
            ]
            canvas.lines(segments, palette.head(h))
    _footer(canvas, notes_l + notes_h)
    return canvas.png()


PATCH_SIDE = 448  # px: the widest the patch view draws its image (38-patch.js MAX_SIDE)
_VEIL, _TINT = 0.5, 0.6  # 38-patch.js: low patches veiled in the background, high ones tinted


def _patch(record: AttentionRecord, opening: _Opening, palette: Palette, options: FigureOptions) -> bytes:
    """The image the model read, each patch veiled or tinted by its weight (the patch view)."""
    import base64
    import io

    image = getattr(record, "image", None)
    if not image:  # a text record: what the view itself offers is another view
        return _head(record, opening, palette, options)
    section = record.sections[opening.section]
    rows, cols, first = int(image["rows"]), int(image["cols"]), int(image["first"])
    tokens = record.sides[section.rows].display
    overlay = opening.state.get("overlay", "attention")
    if overlay == "rollout" and image.get("rollout") is not None:
        values = np.asarray(image["rollout"][opening.layer][first:], dtype=np.float64)
        what = f"rollout from {tokens[0]} through layer {opening.layer}"
    else:
        token = opening.token
        query = token["index"] if token is not None and token["side"] == "q" else 0
        heads = opening.heads or opening.included_heads
        values = np.asarray(section.attention[opening.layer, heads, query, first:], dtype=np.float64).mean(axis=0)
        what = f"attention from {tokens[query]}, layer {opening.layer}, " + (
            f"head {heads[0]}" if len(heads) == 1 else f"mean of heads {_ranges(heads)}"
        )
    with Image.open(io.BytesIO(base64.b64decode(image["data"]))) as opened:
        picture = opened.convert("RGB")
    side = min(PATCH_SIDE, WIDTH - 24)
    width, height = side, max(1, round(side * picture.height / picture.width))
    canvas = _Canvas(WIDTH, int(34 + height + 40), palette)
    _title(canvas, record, f"patch view, {what}")
    size = (canvas.s(width), canvas.s(height))
    smooth = width / picture.width < 3  # pixels as the model saw them when a small picture is blown up
    shown = np.asarray(picture.resize(size, Image.Resampling.LANCZOS if smooth else Image.Resampling.NEAREST), dtype=np.float64)
    top = values.max() if values.size else 0.0
    t = np.clip(values / top, 0.0, 1.0).reshape(rows, cols) if top > 0 else np.zeros((rows, cols))
    ys = np.minimum(np.arange(size[1]) * rows // size[1], rows - 1)
    xs = np.minimum(np.arange(size[0]) * cols // size[0], cols - 1)
    cell = t[np.ix_(ys, xs)][..., None]
    veil, tint = _VEIL * (1 - cell), _TINT * cell
    shown = shown * (1 - veil) + np.asarray(palette.bg, np.float64) * veil
    shown = shown * (1 - tint) + np.asarray(palette.neg, np.float64) * tint
    canvas.image.paste(Image.fromarray(np.round(shown).astype(np.uint8), "RGB"), (canvas.s(12), canvas.s(34)))
    _footer(canvas, [f"{rows} x {cols} patches."])
    return canvas.png(photo=True)


def _ranges(values: Sequence[int]) -> str:
    """0, 1, 2, 5 -> "0-2, 5"."""
    out, start = [], None
    for k, v in enumerate(values):
        if start is None:
            start = v
        if k + 1 == len(values) or values[k + 1] != v + 1:
            out.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return ", ".join(out)


_VIEWS = {"head": _head, "neuron": _neuron, "matrix": _matrix, "summary": _summary, "model": _model, "patch": _patch}


def still_png(record: AttentionRecord, options: FigureOptions) -> bytes:
    """PNG bytes of the view ``options`` open on, about 700 px wide, in the figure's theme.

    ``display: dark`` draws dark; ``light`` and ``auto`` draw light (a picture cannot follow
    the page). A view without a still of its own is drawn as the head view. Raises
    :class:`attndocs.errors.OptionError` where the figure itself would (a layer out of range).
    """
    opening = _opening(record, options)
    palette = DARK if options.display == "dark" else LIGHT
    return _VIEWS.get(options.view, _head)(record, opening, palette, options)
