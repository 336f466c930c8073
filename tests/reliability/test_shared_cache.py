"""Two builds sharing one cache folder at the same time both succeed, with identical output.

CI runners and developers run builds side by side (a docs build and a `mkdocs serve`, two
jobs on one runner with a shared cache). Both processes miss the same figures, compute
them and write the same entries at about the same moment.
"""

from __future__ import annotations

import random

from reliability_helpers import (
    assert_only_plain_safetensors,
    check_cache_state,
    full_form,
    start_worker,
)

from attndocs.cache import RecordCache


def test_two_pipeline_builds_on_one_cache_at_once_both_succeed_with_identical_output(
    tmp_path, build_figures, references, rng_seed
):
    rng = random.Random(rng_seed)
    rounds = 4 if full_form() else 1
    for number in range(rounds):
        cache_dir = tmp_path / f"cache-{number}"
        if number % 2 == 1:
            # Start half warm: each build then mixes hits and misses.
            warm = start_worker(cache_dir, rng.sample(build_figures, len(build_figures) // 2), spec_dir=tmp_path)
            assert warm.wait(timeout=300) == 0
        outs = [tmp_path / f"out-{number}-{side}.txt" for side in "ab"]
        spec_dirs = [tmp_path / f"spec-{number}-{side}" for side in "ab"]
        for folder in spec_dirs:
            folder.mkdir()
        procs = [start_worker(cache_dir, build_figures, out=out, spec_dir=folder) for out, folder in zip(outs, spec_dirs)]
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, f"round {number}: a build failed: {err[-2000:]}"
        a, b = (out.read_bytes() for out in outs)
        assert a == b, f"round {number}: the two builds' output differs"
        state = check_cache_state(cache_dir, references)
        assert state["damaged"] == 0
        assert state["entries"] == len(build_figures)
        assert RecordCache(cache_dir).verify() == []
        assert_only_plain_safetensors([cache_dir])
