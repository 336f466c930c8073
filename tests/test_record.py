"""The public record file: a lossless round trip, and damage that never reads as a record."""

from __future__ import annotations

import numpy as np
import pytest

from attndocs.errors import CacheError
from attndocs.record import AttentionRecord, Section, Side


def _record() -> AttentionRecord:
    rng = np.random.default_rng(0)
    enc = rng.random((2, 3, 4, 4), dtype=np.float32)
    dec = np.tril(rng.random((2, 3, 2, 2), dtype=np.float32))
    return AttentionRecord(
        model_id="org/model",
        revision="abc",
        model_type="t5",
        kind="encoder-decoder",
        text="Héllo </script> 你好",
        text_b="B",
        target="Ziel",
        sides={
            "encoder": Side(["▁Hé", "llo", "▁B", "</s>"], [" Hé", "llo", " B", "</s>"], [False, False, False, True], text_b_start=2),
            "decoder": Side(["<pad>", "▁Ziel"], ["<pad>", " Ziel"], [True, False]),
        },
        sections={
            "encoder": Section("encoder", enc, "encoder", "encoder", query=rng.random((2, 3, 4, 8), dtype=np.float32),
                               key=rng.random((2, 3, 4, 8), dtype=np.float32), bias=enc.copy(), scale=1.0),
            "decoder": Section("decoder", dec, "decoder", "decoder", causal=True),
            "cross": Section("cross", rng.random((2, 3, 2, 4), dtype=np.float32), "decoder", "encoder"),
        },
        neuron={"available": False, "reason": "partly"},
        versions={"torch": "x"},
        key="k" * 64,
    )


def test_round_trip_keeps_every_field(tmp_path):
    original = _record()
    path = tmp_path / "r.safetensors"
    original.save(path)
    loaded = AttentionRecord.load(path)
    for name in ("model_id", "revision", "model_type", "kind", "text", "text_b", "target", "neuron", "versions", "key"):
        assert getattr(loaded, name) == getattr(original, name), name
    assert loaded.sides == original.sides
    assert list(loaded.sides) == ["encoder", "decoder"]  # extraction order, not alphabetical
    assert list(loaded.sections) == ["encoder", "decoder", "cross"]
    for name, section in original.sections.items():
        other = loaded.sections[name]
        assert (other.rows, other.cols, other.causal, other.scale) == (section.rows, section.cols, section.causal, section.scale)
        for tensor in ("attention", "query", "key", "bias"):
            a, b = getattr(section, tensor), getattr(other, tensor)
            assert (a is None and b is None) or np.array_equal(a, b)


@pytest.mark.parametrize("where", ["header", "body"])
def test_a_flipped_byte_anywhere_is_detected(where):
    data = bytearray(_record().to_bytes())
    header_len = int.from_bytes(data[:8], "little")
    if where == "header":
        position = data.index("你".encode()) + 1  # inside the text: still valid JSON, different content
    else:
        position = 8 + header_len + 5
    data[position] ^= 0x01
    with pytest.raises(CacheError, match="damaged"):
        AttentionRecord.from_bytes(bytes(data))


def test_a_truncated_file_is_detected():
    data = _record().to_bytes()
    with pytest.raises(CacheError, match="damaged"):
        AttentionRecord.from_bytes(data[: len(data) // 2])
