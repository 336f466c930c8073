"""`attndocs extract`: the public record file, cache behaviour and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file

from attndocs.cli import main

pytestmark = pytest.mark.real

# Runs the CLI in a fresh interpreter where importing torch or transformers fails outright.
NO_TORCH = (
    "import sys\n"
    "sys.modules['torch'] = None\n"
    "sys.modules['transformers'] = None\n"
    "from attndocs.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "assert 'torch' not in [m for m, v in sys.modules.items() if v is not None]\n"
    "sys.exit(code)\n"
)


def _run(*args: str, no_torch: bool = False, cwd=None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", NO_TORCH, *args] if no_torch else [sys.executable, "-m", "attndocs.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_extract_writes_a_record_that_numpy_alone_can_read(tmp_path):
    out = tmp_path / "rec.safetensors"
    code = main(["extract", "--model", "minilm", "--cache-dir", str(tmp_path / "c"), "--text-b", "It was tired.", "-o", str(out), "The cat sat."])
    assert code == 0
    tensors = load_file(str(out))
    assert tensors["encoder.attention"].dtype == np.float32
    assert tensors["encoder.attention"].shape[:2] == (6, 12)
    with safe_open(str(out), "np") as handle:
        meta = handle.metadata()
    tokens = json.loads(meta["tokens"])["encoder"]
    assert tokens[0] == "[CLS]" and json.loads(meta["text_b_start"]) == tokens.index("it")
    assert meta["model_id"] == "sentence-transformers/all-MiniLM-L6-v2" and meta["revision"].startswith("sha256:")
    assert json.loads(meta["display_tokens"])["encoder"] == tokens
    assert json.loads(meta["sections"])["encoder"] == {"rows": "encoder", "cols": "encoder", "causal": False, "scale": None}


def test_second_identical_call_is_a_cache_hit_without_torch(tmp_path):
    args = ["extract", "--model", "minilm", "--cache-dir", str(tmp_path / "c"), "-o"]
    first = _run(*args, str(tmp_path / "a.safetensors"), "Cached text.")
    assert first.returncode == 0, first.stderr
    assert "computed" in first.stderr
    second = _run(*args, str(tmp_path / "b.safetensors"), "Cached text.", no_torch=True)
    assert second.returncode == 0, second.stderr
    assert "cache" in second.stderr
    a, b = load_file(str(tmp_path / "a.safetensors")), load_file(str(tmp_path / "b.safetensors"))
    # The first ran the model: exact. The second was the cache's: within its 8-bit companding, and marked.
    np.testing.assert_allclose(a["encoder.attention"], b["encoder.attention"], atol=1 / 255)
    with safe_open(str(tmp_path / "a.safetensors"), "np") as exact, safe_open(str(tmp_path / "b.safetensors"), "np") as cached:
        assert "precision" not in exact.metadata() and cached.metadata()["precision"] == "cache"
    assert "--mode force" in second.stderr


def test_frozen_miss_fails_without_torch_and_writes_nothing(tmp_path):
    out = tmp_path / "x.safetensors"
    result = _run("extract", "--mode", "frozen", "--cache-dir", str(tmp_path / "c"), "-o", str(out), "Never seen.", no_torch=True)
    assert result.returncode == 1
    assert result.stderr.startswith("attndocs: error:") and "frozen" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_a_corrupted_entry_is_recomputed_with_a_warning(tmp_path):
    cache = tmp_path / "c"
    args = ["extract", "--cache-dir", str(cache), "-o", str(tmp_path / "r.safetensors"), "Corrupt me."]
    assert main(args) == 0
    (entry,) = cache.rglob("*.safetensors")
    entry.write_bytes(entry.read_bytes()[:-100])  # truncated, as by a full disk
    result = _run(*args)
    assert result.returncode == 0, result.stderr
    assert "attndocs: warning: damaged cache entry" in result.stderr
    assert "computed" in result.stderr
    assert len(list(cache.rglob("*.safetensors"))) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nonexistent-model-xyz!"], "unknown model"),
        (["--model", "smollm2", "--text-b", "B"], "decoder-only"),
        (["--target", "Ziel"], "target needs an encoder-decoder model"),
        (["--max-tokens", "2"], "more than max-tokens (2)"),
        (["--max-tokens", "0"], "option 'max-tokens'"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(tmp_path, args, message):
    out = tmp_path / "o.safetensors"
    result = _run("extract", *args, "--cache-dir", str(tmp_path / "c"), "-o", str(out), "Some text here.")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not out.exists()
    assert not list((tmp_path / "c").rglob("*.safetensors")) if (tmp_path / "c").exists() else True


def test_empty_text_and_unreadable_cache_dir(tmp_path):
    empty = _run("extract", "--cache-dir", str(tmp_path / "c"), "-o", str(tmp_path / "o"), "   ")
    assert empty.returncode == 1 and "text is empty" in empty.stderr
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    bad = _run("extract", "--cache-dir", str(blocker / "c"), "-o", str(tmp_path / "o"), "Text.", no_torch=True)
    assert bad.returncode == 1 and "--cache-dir" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


# -- where -o points -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """A cache holding the record the -o tests ask for, so they run without torch."""
    cache = tmp_path_factory.mktemp("o-cache")
    first = _run("extract", "--cache-dir", str(cache), "-o", str(cache.parent / "first.safetensors"), "The cat sat.")
    assert first.returncode == 0, first.stderr
    return cache


def _one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attndocs: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("command", ["extract", "render"])
def test_an_output_that_is_a_folder_or_below_a_file_is_refused_before_any_work(tmp_path, command):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    cache = tmp_path / "never-created"
    for target, cause in ((folder, "it is a folder"), (blocker / "x.out", "is a file, not a folder"),
                          (blocker / "sub" / "x.out", "is a file, not a folder")):
        # Without torch and with an empty cache, only a check made before computing can answer.
        result = _run(command, "--cache-dir", str(cache), "-o", str(target), "The cat sat.", no_torch=True)
        _one_line_error(result, str(target), cause)
    assert blocker.read_text() == "keep me" and list(folder.iterdir()) == [] and not cache.exists()


@pytest.mark.parametrize("command", ["extract", "render"])
def test_an_output_that_cannot_be_written_is_one_line_naming_path_and_cause(tmp_path, command, warm_cache):
    for target, cause in (("/sys/attndocs-test.out", "Permission denied"),
                          ("/dev/full", "not a regular file"),
                          (str(tmp_path / ("n" * 300)), "File name too long")):
        result = _run(command, "--cache-dir", str(warm_cache), "-o", target, "The cat sat.", no_torch=True)
        _one_line_error(result, target, cause)


@pytest.mark.parametrize("command", ["extract", "render"])
def test_a_full_disk_leaves_the_earlier_file_whole_and_nothing_half_written(tmp_path, command, warm_cache):
    """The file-size limit (RLIMIT_FSIZE) stands in for a full disk: the write fails part way."""
    import resource
    import signal

    out = tmp_path / "out.file"
    out.write_text("the earlier output")

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    command_line = [sys.executable, "-c", NO_TORCH, command, "--cache-dir", str(warm_cache), "-o", str(out), "The cat sat."]
    result = subprocess.run(command_line, capture_output=True, text=True, preexec_fn=small_files)
    _one_line_error(result, str(out), "File too large")
    assert out.read_text() == "the earlier output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.file"]  # no temporary file left


def test_an_output_in_missing_folders_is_written_whole(tmp_path, warm_cache):
    out = tmp_path / "new" / "deeper" / "record.safetensors"
    result = _run("extract", "--cache-dir", str(warm_cache), "-o", str(out), "The cat sat.", no_torch=True)
    assert result.returncode == 0, result.stderr
    assert load_file(out)["encoder.attention"].shape[0] == 6
    assert [p.name for p in out.parent.iterdir()] == ["record.safetensors"]
