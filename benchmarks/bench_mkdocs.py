"""Benchmark of MkDocs builds with attndocs figures: cold, warm, serve-style rebuilds, and the baseline.

Builds one generated MkDocs project (``--pages`` pages, ``--figures`` figures each, real
``minilm`` texts) with MkDocs' own build command, in one process, and prints a table:

- baseline: the same pages with every ```attention block removed (and no plugin);
- cold: empty cache, the model is loaded and every figure computed;
- warm: a fresh plugin object, every figure read from the cache (what CI with a kept
  cache, or a frozen build, does);
- rebuild: the same plugin object again, as `mkdocs serve` rebuilds after an edit of one
  figure's text (one computation, no model load);
- the warm/baseline ratio (the Sphinx issue's target for a warm build is <= 1.2x).

Also prints the HTML bytes of one page with figures. Nothing is asserted.

Usage: python benchmarks/bench_mkdocs.py [--pages 10] [--figures 4] [--runs 3] [--model minilm]
"""

from __future__ import annotations

import argparse
import logging
import re
import statistics
import tempfile
import time
from pathlib import Path

import yaml

SENTENCES = [
    "The animal didn't cross the street because it was too tired.",
    "The cat sat on the mat and watched the birds outside.",
    "A transformer reads every token of a sentence at once.",
    "She gave him the book that he had asked for last week.",
    "Attention weights in each row of the matrix sum to one.",
    "The trophy would not fit in the suitcase because it was too big.",
]
VIEWS = ("head", "model", "matrix", "summary")


def write_project(root: Path, pages: int, figures: int, model: str, with_figures: bool) -> None:
    docs = root / "docs"
    docs.mkdir(parents=True)
    for p in range(pages):
        parts = [f"# Page {p}\n\nSome prose about attention.\n"]
        for f in range(figures):
            text = f"{SENTENCES[(p * figures + f) % len(SENTENCES)]} ({p}.{f})"
            if with_figures:
                parts.append(f"```attention\nview: {VIEWS[f % len(VIEWS)]}\n\n{text}\n```\n")
            parts.append(f"Paragraph {f} after the figure.\n")
        (docs / ("index.md" if p == 0 else f"page{p}.md")).write_text("\n".join(parts), encoding="utf-8")
    plugins: list = ["search"]
    if with_figures:
        plugins.append({"attndocs": {"default_model": model}})
    config = {"site_name": "bench", "theme": {"name": "mkdocs"}, "plugins": plugins,
              "markdown_extensions": ["pymdownx.superfences"]}
    (root / "mkdocs.yml").write_text(yaml.safe_dump(config), encoding="utf-8")


def build(root: Path):
    from mkdocs.commands.build import build as mkdocs_build
    from mkdocs.config import load_config

    config = load_config(str(root / "mkdocs.yml"))
    started = time.perf_counter()
    mkdocs_build(config)
    return time.perf_counter() - started, config.plugins.get("attndocs")


def forget_plugin() -> None:
    """Drop MkDocs' kept plugin objects, so the next build starts like a new `mkdocs build` process."""
    from mkdocs.config.defaults import MkDocsConfig

    MkDocsConfig.plugins.plugin_cache.clear()  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--figures", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", default="minilm")
    args = parser.parse_args()
    logging.getLogger("mkdocs").setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="bench-mkdocs-") as tmp:
        base, figs = Path(tmp) / "baseline", Path(tmp) / "figures"
        write_project(base, args.pages, args.figures, args.model, with_figures=False)
        write_project(figs, args.pages, args.figures, args.model, with_figures=True)
        baseline = statistics.median(build(base)[0] for _ in range(args.runs))
        forget_plugin()
        cold, plugin = build(figs)
        cold_loads = plugin.last.computed if plugin and plugin.last else 0
        warm_runs = []
        for _ in range(args.runs):
            forget_plugin()
            warm_runs.append(build(figs)[0])
        warm = statistics.median(warm_runs)
        page = figs / "docs" / "page1.md"
        page.write_text(re.sub(r"\(1\.0\)", "(1.0, edited)", page.read_text()), encoding="utf-8")
        rebuild, plugin = build(figs)
        edited = (plugin.last.computed, plugin.last.cached) if plugin and plugin.last else (0, 0)
        html = (figs / "site" / "page1" / "index.html").read_bytes()

    n = args.pages * args.figures
    print(f"{args.pages} pages x {args.figures} figures = {n} figures, model {args.model}, median of {args.runs}")
    print(f"{'build':<28}{'seconds':>10}")
    print(f"{'baseline (no figures)':<28}{baseline:>10.2f}")
    print(f"{'cold (computes ' + str(cold_loads) + ')':<28}{cold:>10.2f}")
    print(f"{'warm (all cached)':<28}{warm:>10.2f}")
    print(f"{'serve rebuild (1 edited)':<28}{rebuild:>10.2f}   computed {edited[0]}, cached {edited[1]}")
    print(f"warm / baseline: {warm / baseline:.2f}x (target <= 1.2x); page with {args.figures} figures: {len(html) / 1024:.0f} KB")


if __name__ == "__main__":
    main()
