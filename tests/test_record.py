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


# -- the public form and the cache form --------------------------------------------------------------
def test_the_public_record_is_float32_exact_and_readable_with_numpy_alone(tmp_path):
    import json

    from safetensors import safe_open
    from safetensors.numpy import load_file

    original = _record()
    path = tmp_path / "r.safetensors"
    original.save(path)
    tensors = load_file(str(path))  # the README's recipe
    assert all(array.dtype == np.float32 for array in tensors.values())
    assert np.array_equal(tensors["encoder.attention"], original.sections["encoder"].attention)
    with safe_open(str(path), "np") as handle:
        meta = handle.metadata()
    assert meta["schema"] == "1" and "precision" not in meta and "storage" not in meta
    assert json.loads(meta["sections"])["decoder"]["causal"] is True
    assert AttentionRecord.load(path).precision == "exact"


def test_the_cache_form_round_trips_to_what_as_cached_gives():
    from attndocs.record import CACHED

    original = _record()
    shown = original.as_cached()
    assert shown.precision == CACHED and original.precision == "exact"
    read = AttentionRecord.from_bytes(original.to_cache_bytes())
    assert read.precision == CACHED and read.metadata() == shown.metadata()
    for name, array in shown.tensors().items():
        assert array.dtype == np.float32
        assert np.array_equal(read.tensors()[name], array), name
    # Idempotent: storing what the cache gave back stores the same bytes.
    assert shown.to_cache_bytes() == original.to_cache_bytes()
    assert shown.as_cached().to_cache_bytes() == original.to_cache_bytes()
    # Within the 8-bit companding of each weight, and the float16 rounding of each vector.
    for name, section in original.sections.items():
        a, b = section.attention, shown.sections[name].attention
        assert np.all(np.abs(a - b) <= np.sqrt(b) / 255 + 0.25 / 255**2 + 1e-7), name
    np.testing.assert_allclose(shown.sections["encoder"].query, original.sections["encoder"].query, rtol=2**-11, atol=1e-7)


def test_the_cache_form_keeps_a_shared_bias_once_and_masks_as_minus_infinity():
    from attndocs.record import CACHED

    record = _record()
    section = record.sections["encoder"]
    bias = np.broadcast_to(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4) / 7, section.attention.shape).copy()
    bias[:, :, 0, 3] = -1e9  # a mask value beyond float16
    section.bias = bias
    tensors, _ = record.cache_parts()
    assert tensors["encoder.bias"].dtype == np.float16 and tensors["encoder.bias"].shape == (1, 3, 4, 4)
    read = AttentionRecord.from_bytes(record.to_cache_bytes())
    assert read.precision == CACHED and read.sections["encoder"].bias.shape == (2, 3, 4, 4)
    assert np.all(read.sections["encoder"].bias[:, :, 0, 3] == -np.inf)
    np.testing.assert_allclose(read.sections["encoder"].bias[:, :, 1:], bias[:, :, 1:], atol=1e-3)
    section.bias = bias + np.arange(2, dtype=np.float32).reshape(2, 1, 1, 1)  # per layer: kept per layer
    assert record.cache_parts()[0]["encoder.bias"].shape == (2, 3, 4, 4)


def test_vectors_are_stored_as_the_model_computed_them_and_older_float16_ones_are_named():
    from attndocs import record as record_module
    from attndocs.record import CACHED, CACHED_HALF_VECTORS

    record = _record()
    record.sections["encoder"].query = record.sections["encoder"].query * np.float32(1e5)  # past float16's range too
    tensors, _ = record.cache_parts()
    assert tensors["encoder.query"].dtype == np.float32 and tensors["encoder.key"].dtype == np.float32
    read = AttentionRecord.from_bytes(record.to_cache_bytes())
    assert read.precision == CACHED
    for name in ("query", "key"):
        assert np.array_equal(getattr(read.sections["encoder"], name), getattr(record.sections["encoder"], name))
    # An entry an earlier attndocs wrote with float16 vectors still reads, and says so.
    older = _record()
    original = record_module.encode_vectors
    try:
        record_module.encode_vectors = lambda values: np.ascontiguousarray(np.asarray(values, np.float32).astype(np.float16))
        data = older.to_cache_bytes()
    finally:
        record_module.encode_vectors = original
    assert AttentionRecord.from_bytes(data).precision == CACHED_HALF_VECTORS


def test_long_flat_rows_pass_with_the_slack_companding_needs_and_only_then():
    # 1100 equal weights: each is stored as (8/255)**2, so the row sums to 1.083. Exact rows
    # keep the tight tolerance; companded ones get the bound 8 bits imply, not a blanket one.
    from attndocs.record import RecordFormatError

    n = 1100
    tokens = [f"t{i}" for i in range(n)]
    record = AttentionRecord(
        "m", "r", "bert", "encoder", "x", sides={"encoder": Side(tokens, tokens, [False] * n)},
        sections={"encoder": Section("encoder", np.full((1, 1, n, n), 1 / n, np.float32), "encoder", "encoder")},
    )
    shown = record.as_cached()
    assert abs(float(shown.sections["encoder"].attention[0, 0, 0].sum()) - 1.083) < 1e-3
    shown.check()
    AttentionRecord.from_bytes(shown.to_bytes()).check()  # a public file of it says its precision
    import dataclasses

    with pytest.raises(RecordFormatError, match="do not sum to 1"):
        dataclasses.replace(shown, precision="exact").check()
    shown.sections["encoder"].attention = shown.sections["encoder"].attention * np.float32(1.2)
    with pytest.raises(RecordFormatError, match="do not sum to 1"):
        shown.check()


def test_the_cache_quantiser_is_the_payloads():
    from attndocs import compact, payload

    # One codec: what the cache stores is what a page ships.
    assert payload.quantize_attention is compact.quantize_attention
    assert payload.dequantize_attention is compact.dequantize_attention
    weights = np.array([0, 1, 1e-9, -0.1, 1.5, np.nan, np.inf, -np.inf, 0.25], np.float32)
    assert compact.quantize_attention(weights).tolist() == [0, 255, 1, 0, 255, 0, 255, 0, 128]
    codes = np.arange(256, dtype=np.uint8)
    # Every code survives a round trip: a page built from a cached record ships the same codes.
    assert np.array_equal(compact.quantize_attention(compact.dequantize_attention(codes)), codes)
    assert compact.quantize_attention(np.float32([1e-9]))[0] == 1  # no weight the model gave vanishes


def test_repeated_key_heads_are_kept_once_and_only_when_they_repeat_in_every_layer():
    from attndocs.compact import expand_key_heads, shared_key_heads

    rng = np.random.default_rng(4)
    kv = rng.standard_normal((3, 3, 6, 8)).astype(np.float16)
    key = np.repeat(kv, 3, axis=1)  # SmolLM2's shape: 9 query heads over 3 key/value heads
    kept, mapping = shared_key_heads(key)
    assert mapping == [0, 0, 0, 1, 1, 1, 2, 2, 2] and np.array_equal(kept, kv)
    assert np.array_equal(expand_key_heads(kept, mapping, 9), key)
    distinct = rng.standard_normal((3, 4, 6, 8)).astype(np.float16)
    assert shared_key_heads(distinct)[1] is None
    distinct[0, 1] = distinct[0, 0]  # equal in one layer only: still distinct heads
    assert shared_key_heads(distinct)[1] is None
    signed = np.zeros((1, 2, 2, 2), np.float16)
    signed[0, 1, 1, 1] = -0.0  # bit for bit, not merely equal
    assert shared_key_heads(signed)[1] is None
