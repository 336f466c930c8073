"""`attndocs cache ls | info | verify | prune | clear` as a user runs them, exit codes included."""

from __future__ import annotations

import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_cache import CRAFTED, ONE_THREAD_ENV, crafted_forms, make_record, put_crafted, put_old

from attndocs.cache import RecordCache
from attndocs.cli import main

DAY = 86400


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["cache", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attndocs: error: "), err
    assert "Traceback" not in err


@pytest.fixture
def cache(tmp_path) -> RecordCache:
    return RecordCache(tmp_path / "cache")


def fill(cache: RecordCache) -> dict[str, Path]:
    """Three entries of two models, last used 40 days, 2 days and 1 hour ago."""
    now = time.time()
    paths = {
        "old": cache.put(make_record(model_id="tiny-bert", text="An old sentence.")),
        "mid": cache.put(make_record(model_id="tiny-gpt2", text="A middle sentence.", n=7)),
        "new": cache.put(make_record(model_id="tiny-bert", text="A new sentence.", qk=True)),
    }
    for name, age in (("old", 40 * DAY), ("mid", 2 * DAY), ("new", 3600)):
        mtime = now - age
        os.utime(paths[name], (mtime, mtime))
    return paths


def remaining(cache: RecordCache) -> set[str]:
    return {e.key for e in cache.entries()}


# -- ls ----------------------------------------------------------------------------------------------
def test_ls_on_a_missing_folder_says_so(capsys, cache):
    code, out, _ = run(capsys, "ls", "--cache-dir", str(cache.root))
    assert code == 0 and "does not exist yet" in out
    assert not cache.root.exists()


def test_ls_on_an_empty_cache_is_friendly(capsys, cache):
    cache.root.mkdir()
    code, out, _ = run(capsys, "ls", "--cache-dir", str(cache.root))
    assert code == 0 and "empty" in out


def test_ls_lists_entries_most_recently_used_first_with_a_total(capsys, cache):
    paths = fill(cache)
    code, out, _ = run(capsys, "ls", "--cache-dir", str(cache.root))
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 4
    for line, name in zip(lines[:3], ("new", "mid", "old"), strict=True):
        assert line.startswith(paths[name].stem[:12])
    assert "tiny-gpt2" in lines[1] and "7 tok" in lines[1] and '"A middle sentence."' in lines[1]
    assert "encoder+qk" in lines[0]
    total = sum(p.stat().st_size for p in paths.values())
    assert lines[3].startswith("3 entries") and str(cache.root) in lines[3]
    assert f"{total / 1000:.1f} kB" in lines[3]


def test_ls_escapes_control_characters_in_page_text(capsys, cache):
    cache.put(make_record(text="evil\x1b]0;pwned\x07\nsecond line\u202eRTL"))
    code, out, _ = run(capsys, "ls", "--cache-dir", str(cache.root))
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "evil\\x1b]0;pwned\\x07\\nsecond" in out
    assert len(out.strip().splitlines()) == 2


def test_ls_json_is_machine_readable(capsys, cache):
    paths = fill(cache)
    code, out, _ = run(capsys, "ls", "--json", "--cache-dir", str(cache.root))
    assert code == 0
    data = json.loads(out)
    assert [e["key"] for e in data["entries"]] == [paths[n].stem for n in ("new", "mid", "old")]
    assert data["entries"][0]["has_qk"] is True and data["entries"][0]["model_id"] == "tiny-bert"
    assert data["entries"][1]["tokens"] == 7 and data["entries"][1]["text"] == "A middle sentence."
    assert data["total_bytes"] == sum(p.stat().st_size for p in paths.values())


def test_ls_flags_a_damaged_entry_and_goes_on(capsys, cache):
    paths = fill(cache)
    paths["mid"].write_bytes(b"junk")
    code, out, _ = run(capsys, "ls", "--cache-dir", str(cache.root))
    assert code == 0
    assert "DAMAGED" in out and "1 damaged" in out
    assert paths["old"].stem[:12] in out and paths["new"].stem[:12] in out


def test_the_cache_dir_defaults_to_the_environment(capsys, cache, monkeypatch):
    fill(cache)
    monkeypatch.setenv("ATTNDOCS_CACHE_DIR", str(cache.root))
    code, out, _ = run(capsys, "ls")
    assert code == 0 and "3 entries" in out


# -- info --------------------------------------------------------------------------------------------
def test_info_by_prefix_shows_the_whole_entry(capsys, cache):
    record = make_record(text="The full text of this figure, all of it.", qk=True)
    path = cache.put(record)
    code, out, _ = run(capsys, "info", record.key[:8].upper(), "--cache-dir", str(cache.root))
    assert code == 0
    assert record.key in out and str(path) in out
    assert "The full text of this figure, all of it." in out
    # As stored: 8-bit attention codes, float32 vectors.
    assert "compact, schema 2" in out
    assert "encoder.attention  uint8  [2, 3, 5, 5]" in out
    assert "encoder.query  float32  [2, 3, 5, 4]" in out
    assert "[CLS] tok0 tok1 tok2 [SEP]" in out
    assert record.revision in out and "transformers" in out


@pytest.mark.parametrize(
    "prefix, expected",
    [("aaaaaa", "matches 2 entries"), ("bbbbbb", "no cache entry"), ("aaa", "too short"), ("aa/../x", "not a cache key")],
)
def test_info_refuses_ambiguous_unknown_and_short_keys(capsys, cache, prefix, expected):
    cache.put(make_record(key="aaaaaa" + "1" * 58))
    cache.put(make_record(key="aaaaaa" + "2" * 58, text="Other."))
    code, _, err = run(capsys, "info", prefix, "--cache-dir", str(cache.root))
    assert code == 1
    assert_one_line_error(err)
    assert expected in err


def test_info_on_a_damaged_entry_is_an_error_that_says_what_to_do(capsys, cache):
    record = make_record()
    cache.put(record).write_bytes(b"junk")
    code, _, err = run(capsys, "info", record.key, "--cache-dir", str(cache.root))
    assert code == 1
    assert_one_line_error(err)
    assert "damaged" in err and "verify --fix" in err


# -- verify ------------------------------------------------------------------------------------------
def test_verify_passes_a_healthy_cache(capsys, cache):
    fill(cache)
    code, out, _ = run(capsys, "verify", "--cache-dir", str(cache.root))
    assert code == 0 and "checked 3 entries" in out and "0 damaged" in out


def test_verify_fails_on_a_damaged_entry_and_fix_removes_it(capsys, cache):
    paths = fill(cache)
    data = bytearray(paths["mid"].read_bytes())
    data[-1] ^= 0xFF
    paths["mid"].write_bytes(bytes(data))

    code, out, _ = run(capsys, "verify", "--cache-dir", str(cache.root))
    assert code == 1
    assert f"damaged: {paths['mid']}" in out and "1 damaged" in out
    assert paths["mid"].exists()  # plain verify only reports

    code, out, _ = run(capsys, "verify", "--fix", "--cache-dir", str(cache.root))
    assert code == 1  # it did find damage
    assert f"removed damaged entry {paths['mid']}" in out
    assert not paths["mid"].exists() and paths["old"].exists() and paths["new"].exists()

    code, _, _ = run(capsys, "verify", "--cache-dir", str(cache.root))
    assert code == 0


def test_verify_on_a_missing_folder_is_not_an_error(capsys, cache):
    code, out, _ = run(capsys, "verify", "--cache-dir", str(cache.root))
    assert code == 0 and "does not exist yet" in out


def test_verify_reports_every_inconsistent_entry_and_fix_removes_only_those(capsys, tmp_path):
    # One cache folder per crafted entry: several of them share a key.
    cases = [(name, form) for name in CRAFTED for form in crafted_forms(name)]
    for number, (name, form) in enumerate(cases):
        cache = RecordCache(tmp_path / f"cache-{number}")
        healthy = cache.put(make_record(text="A healthy neighbour."))
        _, path = put_crafted(cache, name, form)
        code, out, err = run(capsys, "verify", "--cache-dir", str(cache.root))
        assert code == 1 and "Traceback" not in out + err, name
        assert f"damaged: {path}: " in out and "checked 2 entries" in out and "1 damaged" in out, (name, out)
        code, out, _ = run(capsys, "verify", "--fix", "--cache-dir", str(cache.root))
        assert code == 1 and f"removed damaged entry {path}" in out, (name, out)
        assert not path.exists() and healthy.exists(), name
        code, out, _ = run(capsys, "verify", "--cache-dir", str(cache.root))
        assert code == 0 and "0 damaged" in out, name


def test_old_format_entries_are_named_as_such_not_damaged_and_fix_rewrites_them(capsys, cache):
    paths = fill(cache)
    old = put_old(cache, make_record(text="Written by an older attndocs.", qk=True))
    before = old.stat().st_size

    code, out, _ = run(capsys, "ls", "--cache-dir", str(cache.root))
    assert code == 0 and "+qk (old format)" in out and "1 in the older float32 format" in out
    assert "DAMAGED" not in out
    code, out, _ = run(capsys, "info", old.stem[:12], "--cache-dir", str(cache.root))
    assert code == 0 and "float32, schema 1 (written by an older attndocs" in out
    assert "encoder.attention  float32  [2, 3, 5, 5]" in out

    code, out, _ = run(capsys, "verify", "--cache-dir", str(cache.root))
    assert code == 0, out
    assert f"old format: {old}: written by an older attndocs (float32, schema 1); builds read and convert it" in out
    assert "checked 4 entries" in out and "0 damaged, 1 in the older format" in out
    assert "verify --fix` rewrites old-format entries" in out
    assert "damaged:" not in out

    code, out, _ = run(capsys, "verify", "--fix", "--cache-dir", str(cache.root))
    assert code == 0 and f"rewrote {old} in the compact format" in out
    assert old.stat().st_size < before
    code, out, _ = run(capsys, "verify", "--cache-dir", str(cache.root))
    assert code == 0 and "old format" not in out and "checked 4 entries" in out
    entries = {e.key: e for e in cache.entries()}
    assert {e.schema for e in entries.values()} == {"2"} and not any(e.old_format for e in entries.values())
    assert all(path.exists() for path in paths.values())


def test_ls_json_says_which_entries_are_old(capsys, cache):
    new = cache.put(make_record())
    old = put_old(cache, make_record(text="Older."))
    code, out, _ = run(capsys, "ls", "--json", "--cache-dir", str(cache.root))
    entries = {e["key"]: e for e in json.loads(out)["entries"]}
    assert (entries[new.stem]["schema"], entries[new.stem]["old_format"]) == ("2", False)
    assert (entries[old.stem]["schema"], entries[old.stem]["old_format"]) == ("1", True)
    assert not entries[old.stem]["damaged"]


def _project_with_a_model(root: Path) -> dict[str, bytes]:
    """A folder that is not only a cache: a model, a project's files, empty folders."""
    from safetensors.numpy import save

    files = {
        "mo/model.safetensors": save({"weight": np.ones((3, 3), np.float32)}, metadata={"format": "pt"}),
        "mo/config.json": b"{}",
        "db/data.sqlite": b"SQLite format 3\0",
        "README.md": b"# project",
        "0a/notes.txt": b"not an entry",
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    for name in ("js", "db/empty", "ff"):
        (root / name).mkdir(parents=True)
    return files


@pytest.mark.parametrize("command", [["verify", "--fix"], ["clear", "--yes"]])
def test_verify_fix_and_clear_leave_what_attndocs_did_not_write(capsys, tmp_path, command):
    root = tmp_path / "project"
    root.mkdir()
    files = _project_with_a_model(root)
    cache = RecordCache(root)
    good = cache.put(make_record())
    damaged = cache.put(make_record(text="Damaged."))
    damaged.write_bytes(b"\x00 junk")
    code, out, err = run(capsys, *command, "--cache-dir", str(root))
    assert "Traceback" not in out + err
    for name, data in files.items():
        assert (root / name).read_bytes() == data, name
    for name in ("js", "db/empty", "ff", "db", "0a"):
        assert (root / name).is_dir(), name
    assert not damaged.exists()
    assert good.exists() == (command[0] == "verify")
    assert f"left alone: 6 files and folders in {root} that attndocs did not write" in out
    assert "  0a/notes.txt (not named like a cache entry)\n" in out and "  ... and 1 more\n" in out
    assert {p.relative_to(root).as_posix(): why for p, why in cache.strangers()} == {
        "0a/notes.txt": "not named like a cache entry",
        "README.md": "not named like a cache folder",
        "db/data.sqlite": "not named like a cache entry",
        "db/empty": "not named like a cache entry",
        "js": "not named like a cache folder",
        "mo": "not named like a cache folder",
    }


@pytest.mark.skipif(not os.path.exists("/dev/zero") or os.name != "posix", reason="needs /dev/zero")
def test_verify_fix_removes_a_link_to_dev_zero_without_reading_it(tmp_path):
    import subprocess

    cache = RecordCache(tmp_path / "cache")
    record = make_record()
    path = cache.put(record)
    path.unlink()
    path.symlink_to("/dev/zero")
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)); "
        "from attndocs.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    for argv, status in ((["verify"], 1), (["ls"], 0), (["verify", "--fix"], 1), (["verify"], 0)):
        done = subprocess.run(
            [sys.executable, "-c", code, "cache", *argv, "--cache-dir", str(cache.root)],
            capture_output=True, text=True, timeout=60, env=ONE_THREAD_ENV,
        )
        assert done.returncode == status, (argv, done.stdout, done.stderr[-2000:])
        assert "Traceback" not in done.stderr
        if argv == ["verify"] and status == 1:
            assert f"damaged: {path}: it is a symbolic link, not a file" in done.stdout
    assert not os.path.lexists(path)


# -- prune -------------------------------------------------------------------------------------------
def test_prune_needs_a_criterion(capsys, cache):
    fill(cache)
    code, _, err = run(capsys, "prune", "--cache-dir", str(cache.root))
    assert code == 1
    assert_one_line_error(err)
    assert "--older-than" in err and "--model" in err and "--max-size" in err
    assert len(remaining(cache)) == 3


def test_prune_by_age_removes_entries_not_used_for_that_long(capsys, cache):
    paths = fill(cache)
    size = paths["old"].stat().st_size
    code, out, _ = run(capsys, "prune", "--older-than", "30d", "--cache-dir", str(cache.root))
    assert code == 0
    assert remaining(cache) == {paths["mid"].stem, paths["new"].stem}
    assert paths["old"].stem[:12] in out and "removed 1 entry" in out and f"({size} bytes) freed" in out

    code, out, _ = run(capsys, "prune", "--older-than", "90m", "--cache-dir", str(cache.root))
    assert remaining(cache) == {paths["new"].stem}
    code, out, _ = run(capsys, "prune", "--older-than", "12h", "--cache-dir", str(cache.root))
    assert "nothing to prune" in out and remaining(cache) == {paths["new"].stem}


def test_prune_by_model(capsys, cache):
    paths = fill(cache)
    code, out, _ = run(capsys, "prune", "--model", "tiny-bert", "--cache-dir", str(cache.root))
    assert code == 0 and "removed 2 entries" in out
    assert remaining(cache) == {paths["mid"].stem}


def test_prune_by_size_removes_the_least_recently_used_first(capsys, cache):
    paths = fill(cache)
    budget = paths["new"].stat().st_size + paths["mid"].stat().st_size
    code, out, _ = run(capsys, "prune", "--max-size", f"{budget}B", "--cache-dir", str(cache.root))
    assert code == 0
    assert remaining(cache) == {paths["new"].stem, paths["mid"].stem}
    code, out, _ = run(capsys, "prune", "--max-size", "1KB", "--cache-dir", str(cache.root))
    assert remaining(cache) == set()


def test_prune_dry_run_removes_nothing(capsys, cache):
    paths = fill(cache)
    code, out, _ = run(capsys, "prune", "--model", "tiny-gpt2", "--dry-run", "--cache-dir", str(cache.root))
    assert code == 0
    assert f"would remove {paths['mid'].stem[:12]}" in out and "would be freed" in out
    assert len(remaining(cache)) == 3


@pytest.mark.parametrize("flag, value", [("--older-than", "30 days"), ("--older-than", "3"), ("--max-size", "lots"), ("--max-size", "5XB")])
def test_prune_rejects_bad_sizes_and_durations(capsys, cache, flag, value):
    fill(cache)
    code, _, err = run(capsys, "prune", flag, value, "--cache-dir", str(cache.root))
    assert code == 1
    assert_one_line_error(err)
    assert flag in err and repr(value) in err
    assert len(remaining(cache)) == 3


# -- clear -------------------------------------------------------------------------------------------
def test_clear_without_yes_refuses_when_nobody_can_answer(capsys, cache, monkeypatch):
    fill(cache)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = run(capsys, "clear", "--cache-dir", str(cache.root))
    assert code == 1
    assert_one_line_error(err)
    assert "--yes" in err
    assert len(remaining(cache)) == 3


def test_clear_with_yes_removes_every_entry(capsys, cache):
    fill(cache)
    code, out, _ = run(capsys, "clear", "--yes", "--cache-dir", str(cache.root))
    assert code == 0 and "removed 3 entries" in out
    assert remaining(cache) == set()
    code, out, _ = run(capsys, "ls", "--cache-dir", str(cache.root))
    assert "empty" in out


def test_cache_without_a_command_prints_help(capsys):
    code, out, _ = run(capsys)
    assert code == 2 and "verify" in out and "prune" in out
