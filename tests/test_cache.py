"""The record cache: keys, verified reads, atomic writes, damage, kills and concurrent writers.

An entry holds the record at the cache's precision (record.py's cache form): what a get()
returns is ``record.as_cached()`` of what was put. Crafted damage is tried in that form and,
where the cache still reads it, in the form an older attndocs wrote (schema 1, float32).
"""

from __future__ import annotations

import copy
import errno
import json
import multiprocessing
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import attndocs.cache as cache_module
from attndocs.cache import RecordCache, cache_key
from attndocs.errors import CacheError, DamagedEntryError
from attndocs.record import (
    CACHED,
    AttentionRecord,
    Section,
    Side,
    metadata_checksum,
    safetensors_bytes,
    tensor_checksum,
)

BASE_PARTS = {
    "model": "tiny-bert",
    "revision": "0123456789abcdef0123456789abcdef01234567",
    "text": "The cat sat on the mat.",
    "text_b": None,
    "target": None,
    "tokenizer": {"add_special_tokens": True, "lowercase": True},
    "dtype": "float32",
    "extraction": {"qk": False},
}


def make_record(
    key: str | None = None,
    *,
    model_id: str = "tiny-bert",
    text: str = "The cat sat on the mat.",
    layers: int = 2,
    heads: int = 3,
    n: int = 5,
    qk: bool = False,
    kv_heads: int | None = None,
    seed: int = 0,
) -> AttentionRecord:
    """A small synthetic encoder record; its key defaults to one derived from model and text.

    A derived key comes with the parts it was computed from (stored in the entry, as the
    pipeline stores them); a given key comes without, like an entry of an older attndocs.
    ``kv_heads``: keys of a grouped-query model, each repeated for the query heads it serves
    (as the neuron adapters give them).
    """
    parts = {**BASE_PARTS, "model": model_id, "text": text, "extraction": {"qk": qk}}
    rng = np.random.default_rng(seed)
    attention = rng.random((layers, heads, n, n), dtype=np.float32)
    attention /= attention.sum(-1, keepdims=True)
    tokens = ["[CLS]", *(f"tok{i}" for i in range(n - 2)), "[SEP]"]
    side = Side(tokens=tokens, display=[t.strip("[]") for t in tokens], special=[True] + [False] * (n - 2) + [True])
    section = Section(name="encoder", attention=attention, rows="encoder", cols="encoder", scale=0.125)
    if qk:
        section.query = rng.standard_normal((layers, heads, n, 4), dtype=np.float32)
        section.key = rng.standard_normal((layers, heads, n, 4), dtype=np.float32)
        if kv_heads is not None:
            shared = rng.standard_normal((layers, kv_heads, n, 4), dtype=np.float32)
            section.key = np.ascontiguousarray(np.repeat(shared, heads // kv_heads, axis=1))
    return AttentionRecord(
        model_id=model_id,
        revision="0123456789abcdef0123456789abcdef01234567",
        model_type="bert",
        kind="encoder",
        text=text,
        sides={"encoder": side},
        sections={"encoder": section},
        neuron={"available": qk, "reason": "" if qk else "not requested"},
        versions={"attndocs": "0.1.0.dev0", "transformers": "4.50.0"},
        extraction={"qk": qk},
        key=key if key is not None else cache_key(parts),
        key_parts=parts if key is None else None,
    )


def make_pair_record(*, target: str = "Die Katze sitzt.", seed: int = 0) -> AttentionRecord:
    """A small synthetic encoder-decoder record: 5 encoder tokens, 3 decoder tokens, three sections."""
    rng = np.random.default_rng(seed)

    def rows(weights: np.ndarray) -> np.ndarray:
        return (weights / weights.sum(-1, keepdims=True)).astype(np.float32)

    enc_tokens, dec_tokens = ["▁The", "▁cat", "▁sat", ".", "</s>"], ["<pad>", "▁Die", "▁Katze"]
    parts = {**BASE_PARTS, "model": "tiny-t5", "target": target}
    return AttentionRecord(
        model_id="tiny-t5",
        revision=BASE_PARTS["revision"],
        model_type="t5",
        kind="encoder-decoder",
        text=BASE_PARTS["text"],
        target=target,
        sides={
            "encoder": Side(enc_tokens, [t.replace("▁", " ") for t in enc_tokens], [False] * 4 + [True]),
            "decoder": Side(dec_tokens, [t.replace("▁", " ") for t in dec_tokens], [True, False, False]),
        },
        sections={
            "encoder": Section("encoder", rows(rng.random((2, 2, 5, 5))), "encoder", "encoder"),
            "decoder": Section("decoder", rows(np.tril(rng.random((2, 2, 3, 3)))), "decoder", "decoder", causal=True),
            "cross": Section("cross", rows(rng.random((2, 2, 3, 5))), "decoder", "encoder"),
        },
        extraction={"qk": False},
        key=cache_key(parts),
        key_parts=parts,
    )


# The forms an entry can be found in: this attndocs' cache form (schema 2), and the float32
# form an older attndocs wrote (schema 1), which is still read and converted.
FORMS = ("cache", "old")


def encode_unchecked(record: AttentionRecord, edit_meta=None, extra_tensors=None, *, form: str = "cache") -> bytes:
    """``record`` as an entry's file in ``form`` with valid checksums, consistent or not.

    What a hand edit, a bad merge or a buggy tool can leave in a cache: every checksum
    matches, so only the record's own consistency can give it away.
    """
    tensors, meta = record.cache_parts() if form == "cache" else (record.tensors(), record.metadata())
    tensors = {**tensors, **(extra_tensors or {})}
    if edit_meta is not None:
        edit_meta(meta)
    meta["checksum"] = tensor_checksum(tensors)
    meta["metadata_checksum"] = metadata_checksum(meta)
    return safetensors_bytes(tensors, meta)


def assert_same_record(a: AttentionRecord, b: AttentionRecord) -> None:
    """``a`` is ``b``; a record read from the cache is what ``b.as_cached()`` gives, to the bit."""
    if a.precision == CACHED:
        b = b.as_cached()
    assert a.metadata() == b.metadata()
    ta, tb = a.tensors(), b.tensors()
    assert ta.keys() == tb.keys()
    for name in ta:
        assert ta[name].dtype == tb[name].dtype
        np.testing.assert_array_equal(ta[name], tb[name])


def put_old(cache: RecordCache, record: AttentionRecord) -> Path:
    """Store ``record`` as attndocs before the compact form did: the float32 public form, schema 1."""
    path = cache.path_for(record.key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(record.to_bytes())
    return path


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# -- keys ---------------------------------------------------------------------------------------
def test_key_is_stable_across_releases():
    # Pinned: if this changes, every user's committed cache silently becomes all misses.
    assert cache_key({"model": "minilm", "text": "hi"}) == "d2a507f298531fbdb4c4029ac1cb7e5084d24b720212dedc584aa6540d167f88"


def test_key_ignores_dict_order_at_every_depth():
    reordered = {k: BASE_PARTS[k] for k in reversed(list(BASE_PARTS))}
    reordered["tokenizer"] = {"lowercase": True, "add_special_tokens": True}
    assert cache_key(reordered) == cache_key(BASE_PARTS)


@pytest.mark.parametrize(
    "name, value",
    [
        ("model", "tiny-roberta"),
        ("revision", "fedcba9876543210fedcba9876543210fedcba98"),
        ("text", "The cat sat on the mat"),
        ("text", "The cat sat on the mat.\u200b"),
        ("text_b", "The dog lay on the rug."),
        ("target", "Die Katze."),
        ("tokenizer", {"add_special_tokens": False, "lowercase": True}),
        ("dtype", "float16"),
        ("extraction", {"qk": True}),
    ],
)
def test_key_changes_with_every_part(name, value):
    assert cache_key({**BASE_PARTS, name: value}) != cache_key(BASE_PARTS)


def test_key_includes_the_key_schema_not_the_storage_schema(monkeypatch):
    before = cache_key(BASE_PARTS)
    assert cache_key({**BASE_PARTS, "schema": 999}) == before  # the real schema always wins
    # A new storage form keeps the keys, so entries of the old form are found and converted.
    monkeypatch.setattr(cache_module, "CACHE_SCHEMA_VERSION", cache_module.CACHE_SCHEMA_VERSION + 1)
    assert cache_key(BASE_PARTS) == before
    monkeypatch.setattr(cache_module, "KEY_SCHEMA", cache_module.KEY_SCHEMA + 1)
    assert cache_key(BASE_PARTS) != before


def test_key_rejects_values_that_are_not_json():
    with pytest.raises(TypeError, match="JSON"):
        cache_key({"model": object()})


# -- round trip ---------------------------------------------------------------------------------
@pytest.mark.parametrize("qk", [False, True])
def test_put_then_get_returns_an_equal_record(tmp_path, qk):
    cache = RecordCache(tmp_path / "cache")
    record = make_record(qk=qk)
    path = cache.put(record)
    assert path == tmp_path / "cache" / record.key[:2] / f"{record.key}.safetensors"
    assert path.is_file()
    got = cache.get(record.key)
    assert got is not None
    assert_same_record(got, record)
    assert got.key == record.key
    assert got.has_qk is qk


def test_a_miss_is_none_and_touches_no_disk(tmp_path):
    cache = RecordCache(tmp_path / "cache")
    assert cache.get(make_record().key) is None
    assert list(cache.entries()) == []
    assert cache.verify() == []
    assert not (tmp_path / "cache").exists()


def test_put_needs_a_safe_key(tmp_path):
    cache = RecordCache(tmp_path)
    with pytest.raises(ValueError, match="key"):
        cache.put(make_record(key=""))
    with pytest.raises(ValueError, match="key"):
        cache.put(make_record(key="../../etc"))
    assert files_under(tmp_path) == []


def test_a_hit_marks_the_entry_as_recently_used(tmp_path):
    cache = RecordCache(tmp_path)
    record = make_record()
    path = cache.put(record)
    os.utime(path, (1_000_000, 1_000_000))
    assert cache.get(record.key) is not None
    assert path.stat().st_mtime > 1_000_000


def test_a_read_only_cache_still_serves_hits(tmp_path, monkeypatch):
    cache = RecordCache(tmp_path)
    record = make_record()
    cache.put(record)

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "utime", refuse)
    got = cache.get(record.key)
    assert got is not None and got.key == record.key


# -- damaged entries ------------------------------------------------------------------------------
def _truncate(data: bytes, record: AttentionRecord) -> bytes:
    return data[: len(data) // 2]


def _flip_body(data: bytes, record: AttentionRecord) -> bytes:
    out = bytearray(data)
    out[-3] ^= 0x01
    return bytes(out)


def _flip_header_text(data: bytes, record: AttentionRecord) -> bytes:
    # Still valid JSON afterwards: only the metadata checksum can notice.
    at = data.index(b"The cat sat")
    assert at < 8 + int.from_bytes(data[:8], "little")
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out)


def _flip_header_length(data: bytes, record: AttentionRecord) -> bytes:
    out = bytearray(data)
    out[1] ^= 0x40
    return bytes(out)


def _not_safetensors(data: bytes, record: AttentionRecord) -> bytes:
    return b"<html>this is not a record</html>\n" * 10


def _empty(data: bytes, record: AttentionRecord) -> bytes:
    return b""


def _other_key(data: bytes, record: AttentionRecord) -> bytes:
    # A valid record, but for a different key: never served under this one.
    return cache_module._encode(make_record(text="Another text entirely."))


def _older_schema(data: bytes, record: AttentionRecord) -> bytes:
    return data.replace(b'"schema":"2"', b'"schema":"0"')  # a schema no attndocs ever wrote


@pytest.mark.parametrize(
    "damage",
    [_truncate, _flip_body, _flip_header_text, _flip_header_length, _not_safetensors, _empty, _other_key, _older_schema],
)
def test_a_damaged_entry_is_reported_removed_and_then_a_miss(tmp_path, damage):
    cache = RecordCache(tmp_path)
    record = make_record()
    path = cache.put(record)
    path.write_bytes(damage(path.read_bytes(), record))

    assert [p for p, _ in cache.verify()] == [path]
    with pytest.raises(CacheError) as info:
        cache.get(record.key)
    message = str(info.value)
    assert "\n" not in message
    assert record.key[:12] in message and "damaged" in message
    assert not path.exists()
    assert files_under(tmp_path) == []
    assert cache.get(record.key) is None
    # ... and a recomputed record is stored and served again.
    cache.put(record)
    assert_same_record(cache.get(record.key), record)


def test_a_damaged_entry_that_cannot_be_removed_is_still_never_served(tmp_path, monkeypatch):
    cache = RecordCache(tmp_path)
    record = make_record()
    path = cache.put(record)
    path.write_bytes(_flip_body(path.read_bytes(), record))

    def read_only(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "rename", read_only)
    for _ in range(2):
        with pytest.raises(CacheError, match="cannot be removed.*verify --fix"):
            cache.get(record.key)
    assert path.exists()


def test_a_good_entry_written_while_a_damaged_one_was_read_is_kept(tmp_path, monkeypatch):
    cache = RecordCache(tmp_path)
    record = make_record()
    path = cache.put(record)
    path.write_bytes(b"damaged")
    real_open = cache_module._open_entry

    def read_then_a_writer_fixes_it(path, **kwargs):
        # Another process stores a fresh copy after our read and before our clean-up.
        monkeypatch.setattr(cache_module, "_open_entry", real_open)
        opened = real_open(path, **kwargs)
        RecordCache(tmp_path).put(record)
        return opened

    monkeypatch.setattr(cache_module, "_open_entry", read_then_a_writer_fixes_it)
    with pytest.raises(CacheError, match="damaged"):
        cache.get(record.key)
    monkeypatch.undo()
    assert_same_record(cache.get(record.key), record)


def test_entries_lists_damaged_headers_instead_of_failing(tmp_path):
    cache = RecordCache(tmp_path)
    good, bad = make_record(), make_record(text="Broken one.")
    cache.put(good)
    cache.put(bad).write_bytes(b"\x00\x01garbage")
    entries = {e.key: e for e in cache.entries()}
    assert entries.keys() == {good.key, bad.key}
    assert not entries[good.key].damaged
    assert entries[bad.key].damaged and entries[bad.key].problem


def test_entries_describe_records_from_their_headers(tmp_path):
    cache = RecordCache(tmp_path)
    record = make_record(text="Line one\nline two \x1b[31mred\u202e", qk=True)
    path = cache.put(record)
    (entry,) = cache.entries()
    assert entry.key == record.key and entry.path == path and entry.size == path.stat().st_size
    assert (entry.model_id, entry.model_type, entry.kind) == ("tiny-bert", "bert", "encoder")
    assert entry.revision == record.revision
    assert entry.sections == ("encoder",)
    assert entry.tokens == 5 and entry.side_tokens == {"encoder": 5}
    assert entry.has_qk
    assert entry.versions["transformers"] == "4.50.0"
    assert entry.text == record.text
    # The preview is one line and cannot drive the terminal.
    assert "\n" not in entry.preview and "\x1b" not in entry.preview and "\u202e" not in entry.preview
    assert entry.preview.startswith("Line one\\nline two \\x1b")


# -- entries that are intact files but inconsistent records ------------------------------------------
def _edited(make, change):
    """A crafted entry: the record ``make()`` gives, changed by ``change``, under its own key."""

    def craft(form: str) -> tuple[AttentionRecord, bytes]:
        good = make()
        bad = copy.deepcopy(good)
        extra = change(bad)
        return good, encode_unchecked(bad, extra_tensors=extra if isinstance(extra, dict) else None, form=form)

    return craft


def _stored(make, change):
    """A crafted cache-form entry: ``change(tensors, storage)`` edits what the compact form stores."""

    def craft(form: str) -> tuple[AttentionRecord, bytes]:
        good = make()
        tensors, meta = good.cache_parts()
        storage = json.loads(meta["storage"])
        change(tensors, storage)
        meta["storage"] = json.dumps(storage, separators=(",", ":"), sort_keys=True)
        meta["checksum"] = tensor_checksum(tensors)
        meta["metadata_checksum"] = metadata_checksum(meta)
        return good, safetensors_bytes(tensors, meta)

    return craft


def _drop_last_token(record):
    side = record.sides["encoder"]
    side.tokens, side.display, side.special = side.tokens[:-1], side.display[:-1], side.special[:-1]


def _set_attention(name, value):
    def change(record):
        section = record.sections[name]
        section.attention = np.ascontiguousarray(value(section.attention), dtype=np.float32)

    return change


def _poke(value):
    def change(attention):
        out = attention.copy()
        out[0, 0, 0, 0] = value
        return out

    return change


def _shorten(tensor):
    def change(record):
        section = record.sections["encoder"]
        setattr(section, tensor, np.ascontiguousarray(getattr(section, tensor)[:, :, :-1]))

    return change


def _lone_surrogate(form: str) -> tuple[AttentionRecord, bytes]:
    # JSON spells it \\ud800; a Python writer cannot even encode such a string as UTF-8.
    good = make_record()

    def edit(meta):
        tokens = {"encoder": ["[CLS]", "tok\ud800", "tok1", "tok2", "[SEP]"]}
        meta["tokens"] = json.dumps(tokens, separators=(",", ":"), sort_keys=True)

    return good, encode_unchecked(good, edit, form=form)


def _rekeyed(with_parts: bool):
    """Another text's record filed under this key, its cache_key (and maybe key parts) rewritten."""

    def craft(form: str) -> tuple[AttentionRecord, bytes]:
        good, other = make_record(), make_record(text="A dog barked at the moon.")
        other.key = good.key
        if with_parts:
            other.key_parts = good.key_parts
        return good, encode_unchecked(other, form=form)

    return craft


def _file_damage(damage):
    def craft(form: str) -> tuple[AttentionRecord, bytes]:
        good = make_record()
        return good, damage(good.to_cache_bytes() if form == "cache" else good.to_bytes())

    return craft


def _set_tensor(name, value):
    def change(tensors, storage):
        tensors[name] = np.ascontiguousarray(value(tensors[name]))

    return change


def _set_storage(section, **values):
    def change(tensors, storage):
        storage["sections"][section].update(values)

    return change


def _uniform(attention):
    return np.full_like(attention, 1.0 / attention.shape[-1])


def _gqa() -> AttentionRecord:
    return make_record(heads=4, kv_heads=2, qk=True)


# name -> (craft: form -> the record whose key it sits under and the file's bytes, what the refusal
# says: one pattern, or one per form where the damage reads differently or cannot be written in a form)
CRAFTED = {
    "token count unlike the attention": (_edited(make_record, _drop_last_token), r"covers 5 x 5 tokens, but it has 4 x 4"),
    "0 layers": (_edited(make_record, _set_attention("encoder", lambda a: a[:0])), r"0 layers"),
    "0 heads": (_edited(make_record, _set_attention("encoder", lambda a: a[:, :0])), r"0 heads"),
    "3-D attention": (_edited(make_record, _set_attention("encoder", lambda a: a[0])), r"3 dimensions, not 4"),
    "a missing side": (_edited(make_pair_record, lambda r: r.sides.pop("decoder")), r"needs the decoder tokens"),
    "a rectangular causal section": (
        _edited(make_pair_record, lambda r: setattr(r.sections["cross"], "causal", True)),
        r"causal but not square",
    ),
    # The cache form keeps a causal section's triangle only: what lay above it is gone, so its rows come up short.
    "weights above the diagonal of a causal section": (
        _edited(make_pair_record, _set_attention("decoder", _uniform)),
        {"old": r"above the diagonal", "cache": r"decoder attention has rows that do not sum to 1"},
    ),
    "a lone surrogate in a token": (_lone_surrogate, r"lone surrogate"),
    "too-short query vectors": (_edited(lambda: make_record(qk=True), _shorten("query")), r"query vectors have the shape \[2, 3, 4, 4\]"),
    "too-short key vectors": (_edited(lambda: make_record(qk=True), _shorten("key")), r"key vectors have the shape"),
    "neuron view available without vectors": (
        _edited(make_record, lambda r: r.neuron.update(available=True)),
        r"neuron view is marked available",
    ),
    # 8-bit codes cannot spell a negative or NaN weight: only the float32 form can hold one.
    "a negative weight": (_edited(make_record, _set_attention("encoder", _poke(-0.5))), {"old": r"outside 0\.\.1"}),
    "a NaN weight": (_edited(make_record, _set_attention("encoder", _poke(np.nan))), {"old": r"outside 0\.\.1"}),
    "rows that do not sum to 1": (_edited(make_record, _set_attention("encoder", lambda a: a * 0.5)), r"do not sum to 1"),
    "a tensor of no section": (
        _edited(make_record, lambda r: {"decoder.attention": np.zeros((1, 1, 1, 1), np.float32)}),
        r"belongs to no section",
    ),
    "an unknown kind": (_edited(make_record, lambda r: setattr(r, "kind", "vision")), r"kind 'vision'"),
    "another text's record, re-keyed": (_rekeyed(with_parts=False), r"computed for the key"),
    "another text's record, re-keyed with its key parts": (_rekeyed(with_parts=True), r"another text"),
    "truncated": (_file_damage(lambda data: data[:-7]), r"header declares"),
    "oversized": (_file_damage(lambda data: data + b"\0" * 64), r"header declares"),
    "a header length of 2**62": (_file_damage(lambda data: (2**62).to_bytes(8, "little") + data[8:]), r"out of range"),
    # What only the compact form can get wrong.
    "attention codes that are not 8-bit": (
        _stored(make_record, _set_tensor("encoder.attention", lambda c: c.astype(np.float32))),
        {"cache": r"attention codes are float32, not uint8"},
    ),
    "a causal triangle of the wrong size": (
        _stored(make_pair_record, _set_tensor("decoder.attention", lambda c: c[:, :, :-1])),
        {"cache": r"decoder attention covers 5 cells per head, but its 3 x 3 tokens keep 6"},
    ),
    "a key head map pointing past the stored heads": (
        _stored(_gqa, _set_storage("encoder", key_heads=[0, 0, 1, 2])),
        {"cache": r"key head map points outside the 2 stored key heads"},
    ),
    "a key head map for fewer query heads": (
        _stored(_gqa, _set_storage("encoder", key_heads=[0, 1])),
        {"cache": r"key head map has 2 entries, not one per query head \(4\)"},
    ),
    "repeated key heads without their map": (
        _stored(_gqa, _set_storage("encoder", key_heads=None)),
        {"cache": r"key vectors have the shape \[2, 2, 5, 4\], not \[2, 4, 5, head size\]"},
    ),
    "no storage description": (_stored(make_record, lambda tensors, storage: storage.clear()), {"cache": r"storage metadata"}),
}


def crafted_forms(name: str) -> list[str]:
    expected = CRAFTED[name][1]
    return list(expected) if isinstance(expected, dict) else list(FORMS)


def put_crafted(cache: RecordCache, name: str, form: str | None = None) -> tuple[AttentionRecord, Path]:
    """Store a good record, then replace its file with the crafted entry ``name`` (in ``form``, or the first it has)."""
    good, data = CRAFTED[name][0](form or crafted_forms(name)[0])
    path = cache.put(good)
    path.write_bytes(data)
    return good, path


def crafted_expectation(name: str, form: str) -> str:
    expected = CRAFTED[name][1]
    return expected[form] if isinstance(expected, dict) else expected


CRAFTED_CASES = [pytest.param(name, form, id=f"{name} ({form})") for name in CRAFTED for form in crafted_forms(name)]


@pytest.mark.parametrize("name, form", CRAFTED_CASES)
def test_an_inconsistent_entry_is_damaged_never_served_and_recomputed(tmp_path, name, form):
    cache = RecordCache(tmp_path)
    good, path = put_crafted(cache, name, form)
    expected = crafted_expectation(name, form)

    # `cache verify` and `cache ls` see it; nothing raises.
    problems = cache.verify()
    assert [p for p, _ in problems] == [path]
    assert re.search(expected, problems[0][1]), problems
    assert [e.key for e in cache.entries()] == [good.key]

    with pytest.raises(DamagedEntryError) as info:
        cache.get(good.key, good.key_parts)
    message = str(info.value)
    assert "\n" not in message and good.key[:12] in message and re.search(expected, message), message
    assert not path.exists()
    assert cache.get(good.key) is None
    cache.put(good)
    assert_same_record(cache.get(good.key, good.key_parts), good)


def test_the_record_layer_refuses_what_the_cache_refuses():
    # Records written by `attndocs extract -o` are read through the same checks.
    for name, (craft, _) in CRAFTED.items():
        if name.startswith("another text"):
            continue  # a key is the cache's business; the record itself is consistent
        for form in crafted_forms(name):
            _, data = craft(form)
            with pytest.raises(CacheError, match=crafted_expectation(name, form)):
                AttentionRecord.from_bytes(data)


def test_an_older_entry_of_another_text_is_refused_when_the_parts_are_known(tmp_path):
    """Entries written before key parts were stored: the reader's parts catch a re-keyed one."""
    cache = RecordCache(tmp_path)
    good = make_record()
    other = make_record(text="A dog barked at the moon.")
    other.key, other.key_parts = good.key, None
    path = cache.put(other)
    with pytest.raises(DamagedEntryError, match=r'another text \("A dog barked at the moon\.", not "The cat sat on the mat\."\)'):
        cache.get(good.key, good.key_parts)
    assert not path.exists()
    # An older entry of the right text still serves, with or without the parts.
    older = make_record()
    older.key_parts = None
    cache.put(older)
    assert cache.get(good.key, good.key_parts).text == good.text


@pytest.mark.parametrize("field, value", [("model_id", "tiny-roberta"), ("revision", "f" * 40), ("target", "Ziel")])
def test_an_entry_made_from_other_inputs_is_refused(tmp_path, field, value):
    cache = RecordCache(tmp_path)
    good = make_record()
    stale = copy.deepcopy(good)
    setattr(stale, field, value)
    stale.key_parts = None
    cache.put(stale)
    with pytest.raises(DamagedEntryError, match="another"):
        cache.get(good.key, good.key_parts)


def test_get_refuses_parts_that_are_not_those_of_the_key(tmp_path):
    with pytest.raises(ValueError, match="key parts"):
        RecordCache(tmp_path).get(make_record().key, {**BASE_PARTS, "text": "Something else."})


def test_an_inconsistent_record_is_not_stored(tmp_path):
    cache = RecordCache(tmp_path)
    record = make_record()
    record.sections["encoder"].attention = record.sections["encoder"].attention[:, :, :4]
    with pytest.raises(CacheError, match="not cached: its encoder attention covers 4 x 5") as info:
        cache.put(record)
    assert "\n" not in str(info.value)
    assert files_under(tmp_path) == []


def test_key_parts_that_do_not_give_the_key_are_a_programming_error(tmp_path):
    record = make_record()
    record.key_parts = {**BASE_PARTS, "text": "Something else."}
    with pytest.raises(ValueError, match="key_parts"):
        RecordCache(tmp_path).put(record)


# -- bounded reads -------------------------------------------------------------------------------------
# Thread pools reserve address space per core; one thread keeps the limit below meaningful anywhere.
ONE_THREAD_ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_BOUNDED = r"""
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # a read of /dev/zero fails fast, not the machine
from attndocs.cache import RecordCache
from attndocs.errors import DamagedEntryError
cache = RecordCache(sys.argv[1])
print("verify", cache.verify())
print("entries", [(e.key, e.problem) for e in cache.entries()])
try:
    cache.get(sys.argv[2])
except DamagedEntryError as exc:
    print("get", exc)
"""


@pytest.mark.skipif(not os.path.exists("/dev/zero") or os.name != "posix", reason="needs /dev/zero")
def test_an_entry_that_is_a_link_to_dev_zero_is_refused_without_reading_it(tmp_path):
    cache = RecordCache(tmp_path)
    record = make_record()
    path = cache.put(record)
    path.unlink()
    path.symlink_to("/dev/zero")
    # In a child with a memory limit: if the link were followed, it would read until memory runs out.
    done = subprocess.run([sys.executable, "-c", _BOUNDED, str(tmp_path), record.key], capture_output=True, text=True, timeout=60,
                          env=ONE_THREAD_ENV)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert f"verify [(PosixPath('{path}'), 'it is a symbolic link, not a file')]" in out
    assert "symbolic link" in out.split("entries", 1)[1]
    assert f"get damaged cache entry {record.key[:12]} (it is a symbolic link, not a file)" in out
    assert not os.path.lexists(path)  # the link is gone, /dev/zero is not touched
    assert os.path.exists("/dev/zero")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_an_entry_that_is_a_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    cache = RecordCache(tmp_path)
    record = make_record()
    path = cache.put(record)
    path.unlink()
    os.mkfifo(path)
    signal.alarm(20)  # opening a FIFO for reading would otherwise wait forever
    try:
        assert [problem for _, problem in cache.verify()] == ["it is a device, socket or pipe, not a file"]
        with pytest.raises(DamagedEntryError, match="pipe"):
            cache.get(record.key)
    finally:
        signal.alarm(0)
    assert not os.path.lexists(path)


def test_a_folder_under_an_entry_name_is_never_removed(tmp_path):
    cache = RecordCache(tmp_path)
    record = make_record()
    path = cache.path_for(record.key)
    (path / "inside").mkdir(parents=True)
    assert cache.verify() == [] and list(cache.entries()) == []
    with pytest.raises(DamagedEntryError, match="a folder, not written by attndocs; it is left in place"):
        cache.get(record.key)
    assert cache.clear() == 0
    assert (path / "inside").is_dir()
    assert [(p, why) for p, why in cache.strangers()] == [(path, "a folder")]


def test_a_huge_declared_header_is_never_read(tmp_path):
    import tracemalloc

    cache = RecordCache(tmp_path)
    record = make_record()
    path = cache.put(record)
    data = path.read_bytes()
    path.write_bytes((90_000_000).to_bytes(8, "little") + data[8:])  # allowed, but longer than the file
    tracemalloc.start()
    try:
        with pytest.raises(DamagedEntryError, match="ends inside its header"):
            cache.get(record.key)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # the 90 MB it declares were never asked for


# -- only what attndocs wrote ----------------------------------------------------------------------------
def _foreign_safetensors(path: Path) -> bytes:
    from safetensors.numpy import save

    data = save({"weight": np.ones((4, 4), np.float32)}, metadata={"format": "pt"})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def test_maintenance_removes_only_what_attndocs_wrote(tmp_path):
    """A cache pointed at a folder that holds a model and a project: only attndocs' entries go."""
    cache = RecordCache(tmp_path)
    keep = {
        "mo/model.safetensors": _foreign_safetensors(tmp_path / "mo" / "model.safetensors"),
        "notes.txt": b"mine",
        "db/data.sqlite": b"SQLite format 3\0",
        "ab/ab12.safetensors": b"\x00garbage that is not named like an entry",
    }
    for name, data in keep.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    # Another program's safetensors file under an entry's very name is still not ours.
    alien_key = cache_key({"not": "attndocs"})
    keep[f"{alien_key[:2]}/{alien_key}.safetensors"] = _foreign_safetensors(cache.path_for(alien_key))
    empty = ["db/empty", "js", "ee", "mo/sub"]
    for name in empty:
        (tmp_path / name).mkdir(parents=True)
    good, bad = make_record(), make_record(text="Broken one.")
    cache.put(good)
    cache.put(bad).write_bytes(b"\x00\x01garbage")

    assert {e.key for e in cache.entries()} == {good.key, bad.key}
    assert [p for p, _ in cache.verify()] == [cache.path_for(bad.key)]
    cache.remove_damaged(cache.verify())
    assert cache.get(good.key) is not None
    assert cache.clear() == 1
    for name, data in keep.items():
        assert (tmp_path / name).read_bytes() == data, name
    for name in empty:
        assert (tmp_path / name).is_dir(), name
    assert not cache.path_for(good.key).parent.exists()  # its folder, emptied by the clear, is gone
    strangers = {p.relative_to(tmp_path).as_posix() for p, _ in cache.strangers()}
    assert {"mo", "notes.txt", "js", f"{alien_key[:2]}/{alien_key}.safetensors"} <= strangers
    with pytest.raises(DamagedEntryError, match="not written by attndocs"):
        cache.get(alien_key)
    with pytest.raises(CacheError, match="not written by attndocs, is in its place"):
        cache.put(make_record(alien_key))
    assert cache.path_for(alien_key).read_bytes() == keep[f"{alien_key[:2]}/{alien_key}.safetensors"]


def test_clear_leaves_a_shard_folder_it_did_not_empty(tmp_path):
    cache = RecordCache(tmp_path)
    record = make_record()
    cache.put(record)
    (tmp_path / "db").mkdir()  # a hex name, empty, someone's
    assert cache.clear() == 1
    assert (tmp_path / "db").is_dir()
    assert not (tmp_path / record.key[:2]).exists()


# -- folders that cannot hold a cache ----------------------------------------------------------------------
@pytest.mark.skipif(not os.path.isdir("/proc/sys"), reason="needs /proc")
def test_a_cache_in_proc_names_the_real_cause(tmp_path):
    cache = RecordCache("/proc/sys")
    assert cache.get(make_record().key) is None
    with pytest.raises(CacheError) as info:
        cache.put(make_record())
    message = str(info.value)
    assert "\n" not in message
    # As root the kernel says ENOENT ("not a writable folder" here); as anyone else, EACCES.
    assert re.search(r"/proc/sys is not a writable folder|/proc/sys: permission denied", message, re.I), message
    assert "--cache-dir" in message and "disappearing" not in message


# -- writes that fail or are cut short ---------------------------------------------------------------
def test_a_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    cache = RecordCache(tmp_path)
    record = make_record()

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(CacheError, match="no space left"):
        cache.put(record)
    monkeypatch.undo()
    assert files_under(tmp_path) == []
    assert cache.get(record.key) is None


def _die_before_rename(root: str, key: str) -> None:
    """Child process: write an entry's temporary file, then die as if SIGKILLed before the rename."""
    os.replace = lambda *args, **kwargs: os._exit(9)  # noqa: ARG005 - stands in for a kill
    RecordCache(root).put(make_record(key))


def _leave_killed_temp(root: Path, key: str) -> Path:
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_die_before_rename, args=(str(root), key))
    child.start()
    child.join()
    assert child.exitcode == 9
    (temp,) = files_under(root)
    assert temp.name.startswith(".") and temp.name.endswith(".tmp")
    return temp


CLEANERS = {
    "prune": lambda cache: cache.prune(older_than_s=10 * 365 * 86400),
    "clear": lambda cache: cache.clear(),
    "verify --fix": lambda cache: cache.remove_damaged(cache.verify()),
}


@pytest.mark.skipif(os.name != "posix", reason="needs fork")
@pytest.mark.parametrize("cleaner", CLEANERS)
def test_a_killed_put_is_never_served_and_is_cleaned_up(tmp_path, cleaner):
    cache = RecordCache(tmp_path)
    record = make_record()
    temp = _leave_killed_temp(tmp_path, record.key)
    assert cache.get(record.key) is None
    assert list(cache.entries()) == []
    assert cache.verify() == []
    CLEANERS[cleaner](cache)
    assert not temp.exists()
    cache.put(record)
    assert cache.get(record.key) is not None


def test_prune_leaves_the_temporary_file_of_a_live_writer(tmp_path, monkeypatch):
    cache = RecordCache(tmp_path)
    record = make_record()
    real_replace = os.replace
    seen = []

    def replace_after_prune(src, dst):
        cache.prune(older_than_s=0, max_bytes=0)
        cache.remove_damaged(cache.verify())
        seen.append(Path(src).exists())
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_after_prune)
    cache.put(record)
    monkeypatch.undo()
    assert seen == [True]
    assert_same_record(cache.get(record.key), record)


def test_a_put_survives_a_concurrent_clear(tmp_path, monkeypatch):
    cache = RecordCache(tmp_path)
    record = make_record()
    real_replace = os.replace
    calls = []

    def replace_after_clear(src, dst):
        calls.append(src)
        if len(calls) == 1:
            cache.clear()  # removes our temporary file and its folder
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_after_clear)
    cache.put(record)
    monkeypatch.undo()
    assert len(calls) == 2
    assert_same_record(cache.get(record.key), record)


def test_clear_removes_only_what_the_cache_wrote(tmp_path):
    cache = RecordCache(tmp_path)
    record = make_record()
    cache.put(record)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / record.key[:2] / "README.md").write_text("mine too")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.rst").write_text("page")
    assert cache.clear() == 1
    assert cache.get(record.key) is None
    assert sorted(p.relative_to(tmp_path).as_posix() for p in files_under(tmp_path)) == [
        f"{record.key[:2]}/README.md",
        "docs/index.rst",
        "notes.txt",
    ]


# -- processes at once -----------------------------------------------------------------------------
def _put_and_get_rounds(root: str, rounds: int, barrier, failures) -> None:
    cache = RecordCache(root)
    record = make_record(layers=4, heads=8, n=48, qk=True)  # ~100 kB, so writes overlap
    expected = record.as_cached().tensors()["encoder.attention"]
    for _ in range(rounds):
        barrier.wait()
        try:
            cache.put(record)
            got = cache.get(record.key)
            if got is None or not np.array_equal(got.tensors()["encoder.attention"], expected):
                failures.put("read back a missing or different record")
        except Exception as exc:
            failures.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.skipif(os.name != "posix", reason="needs fork")
def test_two_processes_putting_one_key_always_leave_a_valid_entry(tmp_path):
    ctx = multiprocessing.get_context("fork")
    barrier, failures = ctx.Barrier(2), ctx.Queue()
    rounds = 60
    workers = [ctx.Process(target=_put_and_get_rounds, args=(str(tmp_path), rounds, barrier, failures)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    problems = []
    while not failures.empty():
        problems.append(failures.get())
    assert problems == []
    assert [w.exitcode for w in workers] == [0, 0]
    cache = RecordCache(tmp_path)
    assert cache.verify() == []
    assert len(list(cache.entries())) == 1
    assert [p for p in files_under(tmp_path) if p.name.startswith(".")] == []


def _put_forever(root: str, seed: int) -> None:
    cache = RecordCache(root)
    rng = random.Random(seed)
    while True:
        cache.put(make_record(model_id=f"model-{rng.randrange(8)}", layers=4, heads=8, n=48, seed=rng.randrange(3)))


@pytest.mark.skipif(os.name != "posix", reason="needs fork and SIGKILL")
def test_writers_killed_at_random_moments_never_leave_a_servable_bad_entry(tmp_path):
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(7)
    cache = RecordCache(tmp_path)
    for trial in range(12):
        child = ctx.Process(target=_put_forever, args=(str(tmp_path), trial))
        child.start()
        # Not a timing assertion: the sleep only makes the kill land at a random point.
        child.join(rng.uniform(0.01, 0.15))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert cache.verify() == []
        for entry in cache.entries():
            assert not entry.damaged
            assert cache.get(entry.key) is not None
    cache.prune(max_bytes=10**12)  # removes leftovers of the killed writers, keeps entries
    assert [p for p in files_under(tmp_path) if p.name.startswith(".")] == []


# -- unusable folders -----------------------------------------------------------------------------------
def test_a_root_under_a_regular_file_gives_a_hint(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    cache = RecordCache(blocker / "cache")
    with pytest.raises(CacheError) as info:
        cache.put(make_record())
    assert "--cache-dir" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(CacheError, match="--cache-dir"):
        cache.get(make_record().key)
    assert blocker.read_text() == "a file, not a folder"


def test_permission_errors_give_hints_even_when_running_as_root(tmp_path, monkeypatch):
    # chmod cannot stop root, so the operating system's refusal is simulated here.
    cache = RecordCache(tmp_path)
    record = make_record()
    cache.put(record)

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(CacheError, match="permission denied.*--cache-dir"):
        cache.get(record.key)
    with pytest.raises(CacheError, match="--cache-dir to a writable folder"):
        cache.put(make_record(text="New."))
    monkeypatch.undo()
    assert [e.key for e in cache.entries()] == [record.key]


def test_importing_the_cache_loads_neither_torch_nor_transformers():
    code = "import attndocs.cache, attndocs.cli, sys; assert not {'torch', 'transformers'} & set(sys.modules), sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the compact form ----------------------------------------------------------------------------------
def _stored_layout(path: Path) -> dict[str, tuple[str, list[int]]]:
    data = path.read_bytes()
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    return {name: (info["dtype"], info["shape"]) for name, info in header.items() if name != "__metadata__"}


def test_an_entry_holds_what_the_views_show_at_their_precision(tmp_path):
    cache = RecordCache(tmp_path)
    record = make_record(heads=4, kv_heads=2, qk=True)
    path = cache.put(record)
    assert _stored_layout(path) == {
        "encoder.attention": ("U8", [2, 4, 5, 5]),  # the payload's 8-bit square-root codes
        "encoder.query": ("F32", [2, 4, 5, 4]),  # as the model computed them: the neuron view's scores
        "encoder.key": ("F32", [2, 2, 5, 4]),  # once per key/value head
    }
    got = cache.get(record.key, record.key_parts)
    assert got.precision == CACHED
    assert got.sections["encoder"].key.shape == (2, 4, 5, 4)  # the views still index keys by query head
    assert np.array_equal(got.sections["encoder"].key, record.sections["encoder"].key)
    assert np.array_equal(got.sections["encoder"].query, record.sections["encoder"].query)
    assert_same_record(got, record)


def test_a_causal_section_keeps_its_triangle_only(tmp_path):
    cache = RecordCache(tmp_path)
    record = make_pair_record()
    layout = _stored_layout(cache.put(record))
    assert layout["decoder.attention"] == ("U8", [2, 2, 6])  # 3 x 3 tokens: 6 kept cells
    assert layout["encoder.attention"] == ("U8", [2, 2, 5, 5]) and layout["cross.attention"] == ("U8", [2, 2, 3, 5])
    got = cache.get(record.key, record.key_parts).sections["decoder"].attention
    assert np.all(np.triu(got, 1) == 0)
    np.testing.assert_allclose(got, record.sections["decoder"].attention, atol=1 / 255)


def test_a_computed_record_and_its_entry_read_back_are_equal_to_the_bit(tmp_path):
    # What makes cold and warm builds byte-identical: render as_cached() now, get() later.
    cache = RecordCache(tmp_path)
    for record in (make_record(qk=True), make_record(heads=4, kv_heads=2, qk=True, text="GQA."), make_pair_record()):
        shown_now = record.as_cached()
        cache.put(shown_now)  # what the pipeline stores
        later = cache.get(record.key, record.key_parts)
        assert_same_record(later, shown_now)
        assert shown_now.to_cache_bytes() == record.to_cache_bytes()  # storing again changes nothing


def test_a_bert_base_figure_at_512_tokens_fits_the_size_its_format_allows(tmp_path):
    """12 layers x 12 heads, 512 tokens, head size 64, with Q/K: the float32 record is 189 MB."""
    layers, heads, n, d = 12, 12, 512, 64
    rng = np.random.default_rng(1)
    attention = np.empty((layers, heads, n, n), np.float32)
    for layer in range(layers):  # softmax rows: peaked, with many small weights
        logits = rng.standard_normal((heads, n, n), dtype=np.float32) * 2
        np.exp(logits, out=logits)
        attention[layer] = logits / logits.sum(-1, keepdims=True)
    tokens = [f"w{i}" for i in range(n)]
    record = AttentionRecord(
        model_id="bert-base-uncased", revision="0" * 40, model_type="bert", kind="encoder", text="x",
        sides={"encoder": Side(tokens, tokens, [False] * n)},
        sections={"encoder": Section("encoder", attention, "encoder", "encoder",
                                     query=rng.standard_normal((layers, heads, n, d), dtype=np.float32),
                                     key=rng.standard_normal((layers, heads, n, d), dtype=np.float32), scale=0.125)},
        neuron={"available": True, "reason": None}, key=cache_key({"model": "bert-base-uncased", "text": "x"}),
    )
    del attention
    size = RecordCache(tmp_path).put(record).stat().st_size
    float32_record = 4 * (layers * heads * n * n + 2 * layers * heads * n * d)
    # One byte per weight, four per vector element, and a header that grows with the tokens only.
    allowed = layers * heads * n * n + 2 * 4 * layers * heads * n * d + 64 * 1024
    assert size <= allowed, (size, allowed)
    assert float32_record / size > 2.4  # 188.7 MB -> 75.5 MB


# -- entries of an older format ------------------------------------------------------------------------
def test_an_old_format_entry_is_served_converted_rewritten_and_reported_once(tmp_path, caplog):
    cache = RecordCache(tmp_path)
    records = [make_record(qk=True), make_record(heads=4, kv_heads=2, qk=True, text="Older GQA."), make_pair_record()]
    paths = [put_old(cache, record) for record in records]
    sizes = [path.stat().st_size for path in paths]
    report = cache.verify_all()
    assert report.damaged == [] and sorted(report.old) == sorted(paths)
    assert all(entry.old_format for entry in cache.entries())

    with caplog.at_level("WARNING", logger="attndocs"):
        got = [cache.get(record.key, record.key_parts) for record in records]
    for record, served in zip(records, got):
        assert_same_record(served, record)  # exactly what a new entry of the same record gives
        assert served.precision == CACHED
    assert cache.converted == [(record.key, True) for record in records]
    messages = [r.getMessage() for r in caplog.records if "older attndocs" in r.getMessage()]
    assert len(messages) == 1, messages  # once per build, however many entries
    assert records[0].key[:12] in messages[0] and "converted" in messages[0] and "rewritten" in messages[0]
    for path, before in zip(paths, sizes):
        assert _stored_layout(path)["encoder.attention"][0] == "U8" and path.stat().st_size < before
    assert cache.verify_all().old == []
    # Read again: now an ordinary entry, nothing more to say.
    again = RecordCache(tmp_path)
    assert_same_record(again.get(records[0].key), records[0])
    assert again.converted == []


def test_an_old_format_entry_in_a_read_only_cache_is_still_served(tmp_path, monkeypatch, caplog):
    cache = RecordCache(tmp_path)
    record = make_record(qk=True)
    path = put_old(cache, record)
    data = path.read_bytes()

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    monkeypatch.setattr(os, "utime", refuse)
    with caplog.at_level("WARNING", logger="attndocs"):
        got = cache.get(record.key, record.key_parts)
    assert_same_record(got, record)
    assert path.read_bytes() == data and cache.converted == [(record.key, False)]
    (message,) = [r.getMessage() for r in caplog.records if "older attndocs" in r.getMessage()]
    assert "read-only" in message and "verify --fix" in message
    assert [p.name for p in files_under(tmp_path)] == [path.name]  # no temporary file left behind


def test_a_damaged_old_format_entry_is_damaged_not_old(tmp_path):
    cache = RecordCache(tmp_path)
    record = make_record()
    path = put_old(cache, record)
    path.write_bytes(_flip_body(path.read_bytes(), record))
    report = cache.verify_all()
    assert [p for p, _ in report.damaged] == [path] and report.old == []
    with pytest.raises(DamagedEntryError, match="damaged"):
        cache.get(record.key)
    assert cache.converted == []
