"""Two clean builds are byte-identical: the pages, and the cache entries a project may commit.

A clean build is a fresh process with an empty cache. If two of them differed, every deploy
would change every page, and every CI run that recomputes would churn a committed cache.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from reliability_helpers import (
    PYTHON,
    REPO,
    assert_only_plain_safetensors,
    cache_files,
    full_form,
    start_worker,
    worker_env,
)

from attndocs.cli import main as cli_main


@pytest.fixture(scope="module")
def clean_builds(tmp_path_factory, build_figures) -> list[tuple[bytes, Path]]:  # type: ignore[no-untyped-def]
    """Two clean builds of the same figures, run side by side, each with its own cache."""
    root = tmp_path_factory.mktemp("clean-builds")
    procs, outs, caches = [], [], []
    for side in "ab":
        spec = root / f"spec-{side}"
        spec.mkdir()
        cache, out = root / f"cache-{side}", root / f"out-{side}.txt"
        procs.append(start_worker(cache, build_figures, out=out, spec_dir=spec))
        outs.append(out)
        caches.append(cache)
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    return [(out.read_bytes(), cache) for out, cache in zip(outs, caches)]


def test_two_clean_builds_render_byte_identical_pages(clean_builds):
    (a, _), (b, _) = clean_builds
    assert a == b


def test_two_clean_builds_write_byte_identical_cache_entries(clean_builds):
    (_, cache_a), (_, cache_b) = clean_builds
    a = {p.relative_to(cache_a): p.read_bytes() for p in cache_files(cache_a)}
    b = {p.relative_to(cache_b): p.read_bytes() for p in cache_files(cache_b)}
    assert sorted(a) == sorted(b)
    assert_only_plain_safetensors([cache_a, cache_b])
    different = [str(name) for name in a if a[name] != b[name]]
    assert not different, f"{len(different)} of {len(a)} cache entries differ between two clean builds"


def test_two_clean_cli_renders_are_byte_identical(tmp_path):
    """`attndocs render` twice, each with an empty cache: fresh processes in the full form."""
    pages = []
    for side in "ab":
        out = tmp_path / f"page-{side}.html"
        args = ["render", "--view", "model", "--cache-dir", str(tmp_path / f"cache-{side}"),
                "--caption", "Two clean builds", "-o", str(out), "The cat sat on the mat because it was tired."]
        if full_form():
            proc = subprocess.run([PYTHON, "-m", "attndocs.cli", *args], capture_output=True, text=True,
                                  env=worker_env(), cwd=str(REPO), timeout=300)
            assert proc.returncode == 0, proc.stderr
        else:
            assert cli_main(args) == 0
        pages.append(out.read_bytes())
    assert pages[0] == pages[1]
