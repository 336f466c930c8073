"""The extraction benchmarks run: benchmarks/gpu.py on the CPU with --small, and one bench_extract case in process.

Nothing is timed here (timings belong in benchmarks/RESULTS.md); these only keep the scripts working.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_gpu_script_runs_its_small_shapes_on_the_cpu():
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu.py"), "--small", "--runs", "1", "--no-profile"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith(("bert-base", "llama-8b"))]
    assert len(rows) == 2 and all("check passed" in row for row in rows), done.stdout


def test_one_bench_extract_case_measures_bare_and_extraction():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import bench_extract
    finally:
        sys.path.remove(str(BENCHMARKS))

    row = bench_extract.measure("gpt2", 24, runs=1, small=True)
    assert row.tokens == 24 and row.bare_ms and row.extract_ms and row.ratio
    assert row.neuron.startswith("check passed") and row.rss_extract_mb >= row.rss_bare_mb > 0
    text = bench_extract.format_table([row, bench_extract.Row(model="llama-1b", tokens=1024, skipped="too slow here")])
    assert "gpt2" in text and "skipped: too slow here" in text
