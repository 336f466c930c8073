"""A build in a separate process, for the reliability suite to kill or race against another.

Runs attndocs's pipeline over the figures in a JSON file, ``--rounds`` times, into one
cache folder, and optionally writes what a site would show (a digest of each record and
a standalone page of every view of each) to ``--out``.

It prints marker lines on stdout, flushed, so the test can aim its SIGKILL:
``ready`` once imports are done, ``put+ KEY`` / ``put- KEY`` around every cache write,
``round N`` after each round. The markers wrap RecordCache.put from the outside; the
write itself is attndocs's own.

Exit codes: 0 all figures built; 3 a figure failed (its error is printed on stderr).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--figures", required=True)
    parser.add_argument("--mode", default="auto")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out")
    args = parser.parse_args()

    from attndocs.options import FigureOptions, SiteSettings
    from attndocs.pipeline import Pipeline

    specs = json.loads(Path(args.figures).read_text(encoding="utf-8"))
    figures = [
        FigureOptions.from_mapping({k: v for k, v in spec.items() if k in ("model", "text", "text_b", "target") and v is not None})
        for spec in specs
    ]
    qk = [bool(spec.get("qk")) for spec in specs]
    pipeline = Pipeline(SiteSettings.from_mapping({"cache_dir": args.cache_dir, "execution_mode": args.mode}))
    original_put = pipeline.cache.put

    def put(record):  # type: ignore[no-untyped-def]
        print(f"put+ {record.key}", flush=True)
        path = original_put(record)
        print(f"put- {record.key}", flush=True)
        return path

    pipeline.cache.put = put  # type: ignore[method-assign]
    print("ready", flush=True)
    results = []
    for number in range(args.rounds):
        results = pipeline.run(figures, qk=qk)
        for result in results:
            if result.error is not None:
                print(f"figure failed: {result.error}", file=sys.stderr, flush=True)
                return 3
        print(f"round {number}", flush=True)
    if args.out:
        Path(args.out).write_text(describe(results), encoding="utf-8")
    print(f"done {pipeline.stats.summary()}", flush=True)
    return 0


def describe(results) -> str:  # type: ignore[no-untyped-def]
    """What a site would show: a digest of each record, then a page of every view of each."""
    lines = []
    for result in results:
        digest = hashlib.sha256()
        for name, array in sorted(result.record.tensors().items()):
            digest.update(name.encode() + array.tobytes())
        lines.append(f"{result.record.key} {digest.hexdigest()}")
    from attndocs.render import render_figure, render_page

    figures = []
    for result in results:
        for view in ("head", "model", "neuron", "matrix", "summary"):
            if view == "neuron" and not result.record.has_qk:
                continue
            figures.append(render_figure(result.record, result.options.replace(view=view)))
    return "\n".join(lines) + "\n" + render_page(figures, "reliability")


if __name__ == "__main__":
    sys.exit(main())
