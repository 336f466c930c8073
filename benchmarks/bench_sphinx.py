"""Benchmark of the Sphinx extension: what figures add to a build, warm and cold.

Builds a generated site (pages of prose, each with some attention figures using the
bundled minilm, in rst and MyST) with ``python -m sphinx`` in a subprocess, the way
authors run it, and prints (nothing is asserted; the issue's target is shown beside):

1. warm: the site with its figures, every figure in the cache (fresh output and doctree
   folders each run, so every page is read and written), against the same site with the
   figure blocks removed; medians of several runs, built alternately so that both see the
   same machine load, and their ratio (target <= 1.2x);
2. cold: the same site with an empty cache: wall time, figures computed and model loads
   (target: each model loaded once), taken from the build's own summary line;
3. -j 2: the warm build with two processes.

Times are wall-clock and CPU (user + system of sphinx-build and its workers); on a busy
shared machine the CPU ratio is the steadier of the two.

Usage: python benchmarks/bench_sphinx.py [--pages 8] [--figures-per-page 3] [--paragraphs 4] [--runs 7] [--keep DIR]
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

TARGET_RATIO = 1.2
SENTENCES = [
    "The animal didn't cross the street because it was too tired.",
    "The trophy would not fit in the suitcase because it was too big.",
    "A cat sat on the mat while the dog slept by the door.",
    "She gave her brother the book that he had wanted for years.",
    "The river ran past the mill and into the quiet town below.",
    "When the rain stopped, the children went back outside to play.",
    "The engineer fixed the bridge before the storm arrived.",
    "Birds sang in the trees as the sun rose over the hills.",
]
VIEWS = ["head", "model", "matrix", "neuron", "summary"]
PROSE = (
    "Attention lets every token look at every other token and decide how much each one matters. "
    "Different heads learn different patterns: some follow syntax, some look at the previous word, "
    "and some mostly attend to the separator token."
)



def write_site(root: Path, pages: int, per_page: int, *, figures: bool, paragraphs: int = 4) -> None:
    """conf.py and ``pages`` pages (alternating rst and MyST), each with ``per_page`` figures
    and ``paragraphs`` paragraphs of prose before each figure."""
    root.mkdir(parents=True)
    (root / "conf.py").write_text(
        'extensions = ["myst_parser", "attndocs.sphinx_ext"]\nproject = "bench"\nnumfig = True\nhtml_theme = "alabaster"\n'
    )
    names = [f"page-{i:02d}" for i in range(pages)]
    (root / "index.rst").write_text("Bench\n=====\n\n.. toctree::\n\n" + "".join(f"   {n}\n" for n in names))
    n = 0
    for i, name in enumerate(names):
        markdown = i % 2 == 1
        parts = [f"# Page {i}\n" if markdown else f"Page {i}\n{'=' * (5 + len(str(i)))}\n"]
        for j in range(per_page):
            text = SENTENCES[n % len(SENTENCES)]
            view = VIEWS[n % len(VIEWS)]
            n += 1
            parts.extend([PROSE] * paragraphs)
            if not figures:
                continue
            if markdown:
                parts.append(f"```{{attention}}\n:model: minilm\n:view: {view}\n:caption: Figure {i}.{j}\n\n{text}\n```\n")
            else:
                parts.append(f".. attention::\n   :model: minilm\n   :view: {view}\n   :caption: Figure {i}.{j}\n\n   {text}\n")
        (root / (name + (".md" if markdown else ".rst"))).write_text("\n\n".join(parts))


@dataclass
class Timing:
    wall: float  # seconds on the clock
    cpu: float  # user + system seconds of sphinx-build and its workers: steadier on a busy machine


def sphinx_build(src: Path, out: Path, cache: Path, *, jobs: int = 1) -> tuple[Timing, str]:
    """Times of one full build into a fresh output folder, and what it printed."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-j", str(jobs), "-D", f"attention_cache_dir={cache}", str(src), str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if run.returncode != 0 or re.search(r"WARNING|ERROR", run.stderr):
        raise SystemExit(f"build failed:\n{run.stdout}\n{run.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(wall, cpu), run.stdout


def summary(output: str) -> str:
    match = re.search(r"attndocs: (.*)", output)
    return match.group(1) if match else "(no summary line)"


def paired_medians(a: Path, b: Path, out: Path, cache: Path, runs: int, *, jobs: int = 1) -> tuple[Timing, Timing]:
    """Median build times of sites ``a`` and ``b``, built alternately so both see the same load."""
    times_a, times_b = [], []
    for _ in range(runs):
        times_a.append(sphinx_build(a, out, cache, jobs=jobs)[0])
        times_b.append(sphinx_build(b, out, cache, jobs=jobs)[0])

    def median(times: list[Timing]) -> Timing:
        return Timing(statistics.median(t.wall for t in times), statistics.median(t.cpu for t in times))

    return median(times_a), median(times_b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=8)
    parser.add_argument("--figures-per-page", type=int, default=3)
    parser.add_argument("--paragraphs", type=int, default=4, help="paragraphs of prose before each figure")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", type=Path, default=None, help="build in this folder and keep it")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="attndocs-bench-"))
    with_figures, without = work / "site", work / "site-without-figures"
    for folder in (with_figures, without, work / "out", work / "cache"):
        shutil.rmtree(folder, ignore_errors=True)
    write_site(with_figures, args.pages, args.figures_per_page, figures=True, paragraphs=args.paragraphs)
    write_site(without, args.pages, args.figures_per_page, figures=False, paragraphs=args.paragraphs)
    cache = work / "cache"
    total = args.pages * args.figures_per_page
    print(
        f"site: {args.pages} pages, {total} figures (minilm; views {', '.join(VIEWS)}), "
        f"{args.paragraphs} paragraphs of prose per figure; medians of {args.runs} runs"
    )

    cold, cold_out = sphinx_build(with_figures, work / "out", cache)
    print(f"cold build:  {cold.wall:6.2f} s wall, {cold.cpu:6.2f} s cpu   {summary(cold_out)}")

    sphinx_build(without, work / "out", cache)  # warm up the file system cache for both sites
    plain, warm = paired_medians(without, with_figures, work / "out", cache, args.runs)
    _, warm_out = sphinx_build(with_figures, work / "out", cache)
    print(f"no figures:  {plain.wall:6.2f} s wall, {plain.cpu:6.2f} s cpu   (medians)")
    print(f"warm build:  {warm.wall:6.2f} s wall, {warm.cpu:6.2f} s cpu   (medians)   {summary(warm_out)}")
    print(
        f"warm / no figures: {warm.wall / plain.wall:.2f}x wall, {warm.cpu / plain.cpu:.2f}x cpu   (target <= {TARGET_RATIO}x)"
    )

    plain_j2, warm_j2 = paired_medians(without, with_figures, work / "out", cache, args.runs, jobs=2)
    print(
        f"-j 2:        {warm_j2.wall:6.2f} s wall with figures, {plain_j2.wall:6.2f} s without: "
        f"{warm_j2.wall / plain_j2.wall:.2f}x wall, {warm_j2.cpu / plain_j2.cpu:.2f}x cpu"
    )
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
