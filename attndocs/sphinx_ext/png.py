"""A heatmap of one attention matrix as a PNG, written with numpy and zlib only.

Static builders (LaTeX, epub) cannot run the interactive figure; they get this image.
Keeping it to numpy and zlib spares documentation builds a plotting dependency.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

# Light background to a deep blue, so the image reads the same on paper and on screen.
_LOW = np.array([255, 255, 255], dtype=np.float32)
_HIGH = np.array([8, 48, 107], dtype=np.float32)
_GRID = np.array([225, 228, 232], dtype=np.uint8)


def heatmap_png(matrix: np.ndarray, *, size: int = 512) -> bytes:
    """PNG bytes of ``matrix`` (rows x cols, values in [0, 1]) about ``size`` pixels wide.

    Colour follows sqrt(weight), as the interactive views do, so weak but real attention
    stays visible. Cells are square; a thin grid separates them when there is room.
    """
    values = np.clip(np.nan_to_num(np.asarray(matrix, dtype=np.float32)), 0.0, 1.0)
    if values.ndim != 2 or 0 in values.shape:
        raise ValueError("expected a non-empty 2-d matrix")
    rows, cols = values.shape
    cell = max(2, size // max(rows, cols))
    shade = np.sqrt(values)[..., None]
    colours = (_LOW + (_HIGH - _LOW) * shade).round().astype(np.uint8)  # rows x cols x 3
    image = np.repeat(np.repeat(colours, cell, axis=0), cell, axis=1)
    if cell >= 6:
        image[::cell, :, :] = _GRID
        image[:, ::cell, :] = _GRID
        image = np.concatenate([image, np.broadcast_to(_GRID, (1, image.shape[1], 3))], axis=0)
        image = np.concatenate([image, np.broadcast_to(_GRID, (image.shape[0], 1, 3))], axis=1)
    return encode_png(np.ascontiguousarray(image))


def encode_png(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of an ``height x width x 3`` uint8 array (no filtering, deflate 9)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("expected a height x width x 3 uint8 array")
    height, width = rgb.shape[:2]
    # Each scanline starts with its filter type (0: none).
    raw = np.concatenate([np.zeros((height, 1), dtype=np.uint8), rgb.reshape(height, width * 3)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw.tobytes(), 9)) + chunk(b"IEND", b"")
