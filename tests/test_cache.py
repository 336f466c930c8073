"""The record cache: keys, verified reads, atomic writes, damage, kills and concurrent writers."""

from __future__ import annotations

import errno
import multiprocessing
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import attndocs.cache as cache_module
from attndocs.cache import RecordCache, cache_key
from attndocs.errors import CacheError
from attndocs.record import AttentionRecord, Section, Side

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
    seed: int = 0,
) -> AttentionRecord:
    """A small synthetic encoder record; its key defaults to one derived from model and text."""
    rng = np.random.default_rng(seed)
    attention = rng.random((layers, heads, n, n), dtype=np.float32)
    attention /= attention.sum(-1, keepdims=True)
    tokens = ["[CLS]", *(f"tok{i}" for i in range(n - 2)), "[SEP]"]
    side = Side(tokens=tokens, display=[t.strip("[]") for t in tokens], special=[True] + [False] * (n - 2) + [True])
    section = Section(name="encoder", attention=attention, rows="encoder", cols="encoder", scale=0.125)
    if qk:
        section.query = rng.standard_normal((layers, heads, n, 4), dtype=np.float32)
        section.key = rng.standard_normal((layers, heads, n, 4), dtype=np.float32)
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
        key=key if key is not None else cache_key({**BASE_PARTS, "model": model_id, "text": text}),
    )


def assert_same_record(a: AttentionRecord, b: AttentionRecord) -> None:
    assert a.metadata() == b.metadata()
    ta, tb = a.tensors(), b.tensors()
    assert ta.keys() == tb.keys()
    for name in ta:
        assert ta[name].dtype == tb[name].dtype
        np.testing.assert_array_equal(ta[name], tb[name])


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


def test_key_includes_the_record_schema(monkeypatch):
    before = cache_key(BASE_PARTS)
    assert cache_key({**BASE_PARTS, "schema": 999}) == before  # the real schema always wins
    monkeypatch.setattr(cache_module, "SCHEMA_VERSION", cache_module.SCHEMA_VERSION + 1)
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
    return data.replace(b'"schema":"1"', b'"schema":"0"')


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
    real_decode = cache_module._decode

    def decode_then_a_writer_fixes_it(data, key):
        # Another process stores a fresh copy after our read and before our clean-up.
        RecordCache(tmp_path).put(record)
        return real_decode(data, key)

    monkeypatch.setattr(cache_module, "_decode", decode_then_a_writer_fixes_it)
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
    record = make_record(layers=4, heads=8, n=48)  # ~300 kB, so writes overlap
    expected = record.tensors()["encoder.attention"]
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

    monkeypatch.setattr(cache_module, "open", denied, raising=False)
    with pytest.raises(CacheError, match="permission denied.*--cache-dir"):
        cache.get(record.key)
    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(CacheError, match="--cache-dir to a writable folder"):
        cache.put(make_record(text="New."))
    monkeypatch.undo()
    assert [e.key for e in cache.entries()] == [record.key]


def test_importing_the_cache_loads_neither_torch_nor_transformers():
    code = "import attndocs.cache, attndocs.cli, sys; assert not {'torch', 'transformers'} & set(sys.modules), sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
