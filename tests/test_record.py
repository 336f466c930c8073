"""The public record file: a lossless round trip, and damage that never reads as a record."""

from __future__ import annotations

import numpy as np
import pytest

from attndocs.errors import CacheError
from attndocs.record import AttentionRecord, Section, Side


def _rows(weights: np.ndarray) -> np.ndarray:
    """Weights as attention: each row sums to 1."""
    return weights / weights.sum(-1, keepdims=True)


def _record() -> AttentionRecord:
    rng = np.random.default_rng(0)
    enc = _rows(rng.random((2, 3, 4, 4), dtype=np.float32))
    dec = _rows(np.tril(rng.random((2, 3, 2, 2), dtype=np.float32)))
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
            "cross": Section("cross", _rows(rng.random((2, 3, 2, 4), dtype=np.float32)), "decoder", "encoder"),
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


def test_key_parts_round_trip_and_are_absent_when_unset(tmp_path):
    record = _record()
    assert "key_parts" not in record.metadata()  # records made outside the pipeline keep their bytes
    record.key_parts = {"model": "org/model", "text": record.text}
    loaded = AttentionRecord.from_bytes(record.to_bytes())
    assert loaded.key_parts == record.key_parts


def test_rows_of_low_precision_models_are_accepted():
    # bfloat16 keeps 8 bits per weight: a row can sum to 1 +- 0.004.
    record = _record()
    record.sections["encoder"].attention = record.sections["encoder"].attention * np.float32(1.004)
    record.check()
    AttentionRecord.from_bytes(record.to_bytes())


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.sides["decoder"].display.pop(), "2 tokens but 1 display forms"),
        (lambda r: setattr(r.sides["encoder"], "text_b_start", 9), "starts text B at 9"),
        (lambda r: setattr(r.sections["encoder"], "bias", r.sections["encoder"].bias[:, :, :2]), "attention bias has the shape"),
        (lambda r: setattr(r.sections["encoder"], "scale", 0.0), "scale is 0.0"),
        (lambda r: setattr(r.sections["encoder"], "key", None), "query vectors without key vectors"),
        (lambda r: setattr(r.sections["cross"], "rows", "encoder"), "reads 'encoder' x 'encoder' tokens, not decoder x encoder"),
        (lambda r: r.sections.pop("cross"), "the sections encoder, decoder, cross"),
        (lambda r: r.sides.update(extra=r.sides["decoder"]), "neither encoder nor decoder"),
        (lambda r: setattr(r, "text", 5), "text is not a string"),
    ],
)
def test_check_names_what_is_inconsistent(change, message):
    from attndocs.record import RecordFormatError

    record = _record()
    record.check()
    change(record)
    with pytest.raises(RecordFormatError) as info:
        record.check()
    assert message in str(info.value)


@pytest.mark.parametrize("damage", ["truncated", "oversized", "symlink"])
def test_load_reads_no_more_than_the_header_declares(tmp_path, damage):
    good = tmp_path / "good.safetensors"
    _record().save(good)
    path = tmp_path / "r.safetensors"
    data = good.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[:-1])
    elif damage == "oversized":
        path.write_bytes(data + b" ")
    else:
        path.symlink_to(good)  # even to a good record: a link can lead anywhere (/dev/zero)
    with pytest.raises(CacheError, match="header declares|symbolic link") as info:
        AttentionRecord.load(path)
    assert "damaged" in str(info.value)
