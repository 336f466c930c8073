"""The heatmap PNG that LaTeX and epub builds get: a valid PNG with the right colours."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from attndocs.png import encode_png, heatmap_png


def decode_png(data: bytes) -> np.ndarray:
    """Pixels of an unfiltered 8-bit RGB PNG, checking every chunk's CRC on the way."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, *_ = header
    assert (depth, colour) == (8, 2)
    rows = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + 3 * width)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].reshape(height, width, 3)


def test_encode_png_round_trips_pixels():
    pixels = np.random.default_rng(0).integers(0, 256, size=(7, 11, 3), dtype=np.uint8)
    assert np.array_equal(decode_png(encode_png(pixels)), pixels)


def test_heatmap_colours_follow_the_square_root_of_the_weight():
    image = decode_png(heatmap_png(np.array([[0.0, 1.0], [0.25, 0.0]]), size=64))
    assert image.shape == (65, 65, 3)  # two 32-pixel cells and a closing grid line
    centre = lambda r, c: tuple(int(v) for v in image[32 * r + 16, 32 * c + 16])  # noqa: E731
    assert centre(0, 0) == (255, 255, 255)
    assert centre(0, 1) == (8, 48, 107)
    assert centre(1, 0) == (132, 152, 181)  # sqrt(0.25) = 0.5: half way
    assert tuple(image[0, 5]) == tuple(image[32, 5]) == (225, 228, 232)  # grid


def test_long_texts_get_small_cells():
    image = decode_png(heatmap_png(np.full((300, 300), 1 / 300), size=512))
    assert image.shape[0] == image.shape[1] == 600  # two-pixel cells, no grid


def test_heatmap_refuses_what_is_not_a_matrix():
    with pytest.raises(ValueError):
        heatmap_png(np.zeros((0, 3)))
