"""PNG files from numpy arrays, with numpy and zlib only (no Pillow, no plotting library).

:func:`encode_png` writes every PNG attndocs makes: the still pictures of attndocs.still
(drawn with Pillow, which only that module imports) and :func:`heatmap_png`, the heatmap
Sphinx's LaTeX and epub builds show (sphinx_ext/fallback.py). Keeping this module free of
Pillow keeps it out of every documentation build's import time.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import numpy as np


def ramp(values: np.ndarray, low: Sequence[int], high: Sequence[int]) -> np.ndarray:
    """``values`` in [0, 1] -> uint8 RGB from ``low`` to ``high`` (kit.ramp in 50-neuron.js)."""
    t = np.clip(np.nan_to_num(values), 0.0, 1.0)[..., None]
    lo, hi = np.asarray(low, np.float32), np.asarray(high, np.float32)
    return np.round(lo + (hi - lo) * t).astype(np.uint8)


def encode_png(pixels: np.ndarray, palette: np.ndarray | None = None) -> bytes:
    """An 8-bit PNG, deflate 9, no metadata: RGB from ``height x width x 3`` uint8, or
    indexed colour from ``height x width`` uint8 indices into ``palette`` (``n x 3`` uint8).

    Scanlines are stored unfiltered: on these drawings (flat colour, thin lines, a palette)
    filtering makes the file larger, not smaller.
    """
    if palette is None:
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError("expected a height x width x 3 uint8 array")
        colour_type, lines = 2, pixels.reshape(pixels.shape[0], -1)
    else:
        if pixels.dtype != np.uint8 or pixels.ndim != 2 or palette.ndim != 2 or not 0 < len(palette) <= 256:
            raise ValueError("expected height x width uint8 indices and an n x 3 palette of at most 256 colours")
        colour_type, lines = 3, pixels
    height, width = pixels.shape[:2]
    # Each scanline starts with its filter type (0: none).
    raw = np.concatenate([np.zeros((height, 1), dtype=np.uint8), lines], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0))
    if palette is not None:
        header += chunk(b"PLTE", np.asarray(palette, dtype=np.uint8).tobytes())
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(raw.tobytes(), 9)) + chunk(b"IEND", b"")


# Light background to a deep blue, so the heatmap reads the same on paper and on screen.
_HEAT_LOW = (255, 255, 255)
_HEAT_HIGH = (8, 48, 107)
_HEAT_GRID = np.array([225, 228, 232], dtype=np.uint8)


def heatmap_png(matrix: np.ndarray, *, size: int = 512) -> bytes:
    """PNG bytes of ``matrix`` (rows x cols, values in [0, 1]) about ``size`` pixels wide.

    What LaTeX and epub builds show (sphinx_ext/fallback.py). Colour follows sqrt(weight),
    so weak but real attention stays visible. Cells are square; a thin grid separates them
    when there is room.
    """
    values = np.clip(np.nan_to_num(np.asarray(matrix, dtype=np.float32)), 0.0, 1.0)
    if values.ndim != 2 or 0 in values.shape:
        raise ValueError("expected a non-empty 2-d matrix")
    rows, cols = values.shape
    cell = max(2, size // max(rows, cols))
    colours = ramp(np.sqrt(values), _HEAT_LOW, _HEAT_HIGH)
    image = np.repeat(np.repeat(colours, cell, axis=0), cell, axis=1)
    if cell >= 6:
        image[::cell, :, :] = _HEAT_GRID
        image[:, ::cell, :] = _HEAT_GRID
        image = np.concatenate([image, np.broadcast_to(_HEAT_GRID, (1, image.shape[1], 3))], axis=0)
        image = np.concatenate([image, np.broadcast_to(_HEAT_GRID, (image.shape[0], 1, 3))], axis=1)
    return encode_png(np.ascontiguousarray(image))
