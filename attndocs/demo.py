"""The demo figures behind `make site`: computed with the bundled models, cached, summarised.

Run as ``python -m attndocs.demo --out DIR``. It computes (or serves from the cache) one
figure per model family, writes each record to DIR/records/, renders DIR/index.html with
every figure when the views are available, and prints a short summary of each figure.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .options import FigureOptions, SiteSettings
from .pipeline import Pipeline

DEMO_FIGURES: list[dict[str, str]] = [
    {
        "name": "coreference",
        "model": "minilm",
        "view": "head",
        "text": "The animal didn't cross the street because it was too tired.",
        "caption": "Where does 'it' look? An encoder reading a coreference sentence.",
    },
    {
        "name": "sentence-pair",
        "model": "minilm",
        "view": "model",
        "text": "The cat sat on the mat.",
        "text-b": "The cat lay on the rug.",
        "caption": "A sentence pair: every layer and head of MiniLM.",
    },
    {
        "name": "decoder",
        "model": "smollm2",
        "view": "neuron",
        "text": "The capital of France is Paris, and the capital of Germany is",
        "caption": "A decoder attends only to earlier tokens (SmolLM2, rotary positions, grouped key/value heads).",
    },
    {
        "name": "encoder-decoder",
        "model": "bert2bert-minilm",
        "view": "head",
        "text": "The cat sat on the mat.",
        "target": "A cat was sitting on a mat.",
        "caption": "Encoder, decoder and cross attention (bert2bert-minilm: its cross-attention is untrained).",
    },
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attndocs.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="_build/site", help="Output folder.")
    parser.add_argument("--cache-dir", default=".cache/attndocs", help="Record cache folder.")
    args = parser.parse_args(argv)
    out = Path(args.out)
    (out / "records").mkdir(parents=True, exist_ok=True)
    figures = [FigureOptions.from_mapping(f) for f in DEMO_FIGURES]
    started = time.perf_counter()
    pipeline = Pipeline(SiteSettings.from_mapping({"cache_dir": args.cache_dir}), progress=_progress)
    results = pipeline.run(figures, qk=[f.view == "neuron" for f in figures])
    failed = 0
    for spec, result in zip(DEMO_FIGURES, results):
        for warning in result.warnings:
            print(f"  warning: {warning}", file=sys.stderr)
        if result.record is None:
            failed += 1
            print(f"- {spec['name']}: {result.describe()}")
            continue
        result.record.save(out / "records" / f"{spec['name']}.safetensors")
        print(f"- {spec['name']}: {result.describe()}")
        print(f"    tokens: {' '.join(_visible(t) for t in _first_side(result.record).display)}")
    page = _render(results, out)
    print(f"{len(results)} figures ({pipeline.stats.summary()}) in {time.perf_counter() - started:.1f} s")
    print(f"records: {out / 'records'}")
    if page:
        print(f"open {page.resolve().as_uri()}")
    return 1 if failed else 0


def _render(results, out: Path) -> Path | None:
    """A standalone page with every figure, once the views exist."""
    try:
        from .render import render_figure, render_page
    except ImportError:
        return None
    fragments = [render_figure(r.record, r.options) for r in results if r.record is not None]
    page = out / "index.html"
    page.write_text(render_page(fragments, title="attndocs demo"), encoding="utf-8")
    return page


def _first_side(record):
    return next(iter(record.sides.values()))


def _visible(token: str) -> str:
    return token.replace(" ", "·") if token.strip() else repr(token)


def _progress(done: int, total: int, message: str) -> None:
    print(f"[{done}/{total}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
