"""Benchmark of the views: page bytes per figure against BertViz, and render latencies in Chromium.

Prints two tables (nothing is asserted; the issue's targets are shown beside the figures):

1. bytes: for 13 / 200 / 512 tokens on a 6-layer x 12-head model (synthetic records of
   all-MiniLM-L6-v2's shape, plus the real minilm when the pipeline can run it): the figure
   fragment a site page carries (assets are shared once per site), the standalone page with
   the assets inlined, and BertViz's ``html_action="return"`` HTML for the same attention
   with the ratio (when ``bertviz`` is importable: ``pip install --no-deps bertviz``; its
   IPython import is stubbed when IPython is absent, since only the returned HTML is used).
2. timings in headless Chromium, measured inside the page with ``performance.now()``,
   medians of several runs: first render of the model and head views (insert the figure
   until it is drawn, decoding included), head view layer change and token hover (state
   change until the canvas is flushed).

Usage: python benchmarks/bench_views.py [--sizes 13,200,512] [--runs 7] [--no-real] [--no-browser]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np

from attndocs.options import FigureOptions
from attndocs.record import AttentionRecord, Section, Side
from attndocs.render import asset_files, render_figure, render_page

TARGETS = {"ratio13": 20, "ratio200": 30, "model200_ms": 500, "interact200_ms": 50, "first512_ms": 2000}
WORDS = (
    "the quick brown fox jumps over a lazy dog while the cat sat on the mat and watched birds fly across "
    "an open field near the river where children played games until the sun went down behind tall hills"
).split()
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


# -- records ------------------------------------------------------------------------------
def synthetic_minilm(n: int, seed: int = 0) -> AttentionRecord:
    """A record shaped like all-MiniLM-L6-v2 (6 x 12, head dim 32) with peaked, model-like rows."""
    rng = np.random.default_rng(seed)
    layers, heads, d = 6, 12, 32
    q = rng.normal(size=(layers, heads, n, d)).astype(np.float32)
    k = rng.normal(size=(layers, heads, n, d)).astype(np.float32)
    logits = np.einsum("lhid,lhjd->lhij", q, k) / np.sqrt(d) * 2.5
    # Real heads favour neighbours and [CLS]/[SEP]: add that structure.
    pos = np.arange(n)
    logits += rng.uniform(0, 4, size=(layers, heads, 1, 1)) * (np.abs(pos[:, None] - pos[None, :]) == 1)
    logits[..., 0] += rng.uniform(0, 4, size=(layers, heads, 1))
    a = np.exp(logits - logits.max(-1, keepdims=True))
    a = (a / a.sum(-1, keepdims=True)).astype(np.float32)
    tokens = ["[CLS]"] + [WORDS[i % len(WORDS)] for i in range(n - 2)] + ["[SEP]"]
    side = Side(tokens=tokens, display=tokens, special=[t.startswith("[") for t in tokens])
    return AttentionRecord(model_id="synthetic-minilm-shape", revision="", model_type="bert", kind="encoder",
                           text=" ".join(tokens), sides={"encoder": side},
                           sections={"encoder": Section(name="encoder", attention=a, rows="encoder", cols="encoder")})


def real_minilm(n: int, cache_dir: str) -> AttentionRecord | None:
    """The real minilm on a text of about ``n`` tokens, through the pipeline (None if it cannot run)."""
    try:
        from attndocs.options import SiteSettings
        from attndocs.pipeline import Pipeline
    except ImportError as exc:
        print(f"  (real minilm skipped: {exc})", file=sys.stderr)
        return None
    pipeline = Pipeline(SiteSettings(cache_dir=cache_dir))
    words = max(1, n - 2)
    for _ in range(6):
        text = " ".join(WORDS[i % len(WORDS)] for i in range(words))
        try:
            record = pipeline.compute_one(FigureOptions(text=text, model="minilm", max_tokens=512)).record
        except Exception as exc:  # report and carry on with synthetic figures
            print(f"  (real minilm skipped: {exc})", file=sys.stderr)
            return None
        got = len(next(iter(record.sides.values())))
        if got == n:
            return record
        words += n - got
    return record


# -- BertViz ------------------------------------------------------------------------------
def bertviz_bytes(record: AttentionRecord) -> dict[str, int] | None:
    try:
        import IPython.display  # noqa: F401
    except ImportError:
        # BertViz imports IPython at module level but, for html_action="return", only builds
        # strings with these two classes; a stand-in keeps its output byte-for-byte the same.
        class _Data:
            def __init__(self, data: str = "") -> None:
                self.data = data

        display = types.ModuleType("IPython.display")
        display.HTML = display.Javascript = _Data
        display.display = lambda *a, **k: None
        core = types.ModuleType("IPython.core")
        core.display = display
        ipython = types.ModuleType("IPython")
        ipython.display, ipython.core = display, core
        sys.modules.update({"IPython": ipython, "IPython.display": display, "IPython.core": core,
                            "IPython.core.display": display})
    try:
        import bertviz
        import torch
    except ImportError:
        return None
    section = record.sections["encoder"]
    attention = tuple(torch.from_numpy(np.ascontiguousarray(section.attention[i][None])) for i in range(section.layers))
    tokens = record.sides["encoder"].tokens
    head = bertviz.head_view(attention, tokens, html_action="return").data
    model = bertviz.model_view(attention, tokens, html_action="return").data
    return {"head": len(head.encode("utf-8")), "model": len(model.encode("utf-8"))}


# -- bytes ----------------------------------------------------------------------------------
def bytes_table(records: list[tuple[str, AttentionRecord]]) -> list[dict[str, Any]]:
    rows = []
    assets = sum(len(v) for v in asset_files().values())
    for source, record in records:
        n = len(record.sides["encoder"])
        bv = bertviz_bytes(record)
        for view in ("head", "model"):
            fig = render_figure(record, FigureOptions(view=view))
            fragment = len(fig.html.encode("utf-8"))
            page = len(render_page([fig], "bench").encode("utf-8"))
            row = {"source": source, "tokens": n, "view": view, "fragment": fragment, "page": page, "assets": assets,
                   "bertviz": bv[view] if bv else None}
            rows.append(row)
    return rows


def print_bytes(rows: list[dict[str, Any]]) -> None:
    print("\nPage bytes per figure (6 layers x 12 heads). fragment = what a site page carries per figure;")
    print("page = standalone page with attndocs.js/.css inlined; ratio = BertViz / ours.\n")
    head = f"{'source':<24}{'tokens':>7}{'view':>7}{'fragment':>12}{'page':>12}{'BertViz':>14}{'ratio frag':>12}{'ratio page':>12}{'target':>8}"
    print(head)
    print("-" * len(head))
    for r in rows:
        bv = r["bertviz"]
        target = TARGETS["ratio13"] if r["tokens"] <= 13 else TARGETS["ratio200"] if r["tokens"] <= 200 else None
        rf = f"{bv / r['fragment']:.1f}x" if bv else "n/a"
        rp = f"{bv / r['page']:.1f}x" if bv else "n/a"
        print(f"{r['source']:<24}{r['tokens']:>7}{r['view']:>7}{r['fragment']:>12,}{r['page']:>12,}"
              f"{(f'{bv:,}' if bv else 'n/a'):>14}{rf:>12}{rp:>12}{(f'>={target}x' if target else '-'):>8}")
    if rows:
        print(f"\nshared assets (attndocs.js + attndocs.css, once per site): {rows[0]['assets']:,} bytes")


# -- browser timings ------------------------------------------------------------------------
_MEASURE_FIRST = """
async ([html, runs]) => {
  const times = [];
  for (let r = 0; r < runs; r++) {
    const host = document.createElement('div');
    document.querySelector('main').appendChild(host);
    const t0 = performance.now();
    host.innerHTML = html;
    const fig = host.querySelector('.attndocs-figure');
    fig.id = fig.id + '-run' + r;
    await new Promise((resolve) => {
      const check = () => ['ready', 'error'].includes(fig.getAttribute('data-attndocs-status'));
      if (check()) return resolve();
      new MutationObserver((_, obs) => { if (check()) { obs.disconnect(); resolve(); } })
        .observe(fig, {attributes: true, attributeFilter: ['data-attndocs-status']});
    });
    // Reading one pixel forces the canvas work to finish, so the time covers the drawing.
    fig.querySelectorAll('canvas').forEach((c) => c.getContext('2d').getImageData(0, 0, 1, 1));
    times.push(performance.now() - t0);
    if (fig.getAttribute('data-attndocs-status') !== 'ready') throw new Error('figure failed');
    host.remove();
  }
  return times;
}
"""

_MEASURE_INTERACT = """
async ([runs]) => {
  const fig = attndocs.figures()[0];
  const canvas = fig.el.querySelector('.attndocs-lines > canvas');
  const flush = () => canvas.getContext('2d').getImageData(0, 0, 1, 1);
  const layers = fig.section(fig.state.section).layers;
  const layer = [], hover = [];
  const tokens = fig.el.querySelectorAll('.attndocs-token[data-side="q"]');
  for (let r = 0; r < runs; r++) {
    await new Promise((res) => requestAnimationFrame(() => res()));
    let t0 = performance.now();
    fig.setState({layer: layers[(layers.indexOf(fig.state.layer) + 1) % layers.length]});
    flush();
    layer.push(performance.now() - t0);
    await new Promise((res) => requestAnimationFrame(() => res()));
    const tok = tokens[(Math.floor(tokens.length / 2) + r) % tokens.length];
    t0 = performance.now();
    tok.dispatchEvent(new MouseEvent('mouseover', {bubbles: true}));
    flush();
    hover.push(performance.now() - t0);
    fig.el.querySelector('.attndocs-lines').dispatchEvent(new MouseEvent('mouseleave'));
  }
  return {layer, hover};
}
"""


def _only(url: str) -> Any:
    """A route handler that lets the page itself load and refuses every other request."""

    def handle(route: Any) -> None:
        if route.request.url == url:
            route.continue_()
        else:
            route.abort()

    return handle


def browser_table(records: list[tuple[str, AttentionRecord]], runs: int) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        print("chromium not found: browser timings skipped", file=sys.stderr)
        return []
    rows = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        for source, record in records:
            n = len(record.sides["encoder"])
            row: dict[str, Any] = {"source": source, "tokens": n}
            for view in ("model", "head"):
                fig = render_figure(record, FigureOptions(view=view))
                path = Path(tmp) / f"{view}-{n}.html"
                path.write_text(render_page([fig], "bench"), encoding="utf-8")
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                page.route("**/*", _only(path.as_uri()))
                page.goto(path.as_uri())
                page.wait_for_function("() => attndocs.figures().length === 1")
                row[f"{view}_first"] = statistics.median(page.evaluate(_MEASURE_FIRST, [fig.html, runs]))
                if view == "head":
                    result = page.evaluate(_MEASURE_INTERACT, [runs])
                    row["layer"] = statistics.median(result["layer"])
                    row["hover"] = statistics.median(result["hover"])
                page.close()
            rows.append(row)
        browser.close()
    return rows


def print_browser(rows: list[dict[str, Any]], runs: int) -> None:
    if not rows:
        return
    print(f"\nHeadless Chromium, medians of {runs} runs, milliseconds (measured in the page with performance.now()).")
    print("first render = figure inserted until drawn (payload decoding included); layer change and hover =")
    print("state change until the canvas is flushed.\n")
    head = f"{'source':<24}{'tokens':>7}{'model first':>13}{'head first':>12}{'layer chg':>11}{'hover':>9}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['source']:<24}{r['tokens']:>7}{r['model_first']:>13.1f}{r['head_first']:>12.1f}{r['layer']:>11.1f}{r['hover']:>9.1f}")
    print(f"\ntargets: model view first render < {TARGETS['model200_ms']} ms at 200 tokens; layer change and hover "
          f"< {TARGETS['interact200_ms']} ms at 200 tokens; first render < {TARGETS['first512_ms']} ms at 512 tokens")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="13,200,512", help="token counts (default 13,200,512)")
    parser.add_argument("--runs", type=int, default=7, help="runs per timing (median reported)")
    parser.add_argument("--no-real", action="store_true", help="synthetic records only (no model run)")
    parser.add_argument("--no-browser", action="store_true", help="bytes only")
    parser.add_argument("--cache-dir", default=None, help="keep minilm records here between runs (default: a temporary folder)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    records: list[tuple[str, AttentionRecord]] = [("synthetic (minilm shape)", synthetic_minilm(n)) for n in sizes]
    if not args.no_real:
        with tempfile.TemporaryDirectory() as tmp:
            cache = args.cache_dir or tmp
            for n in sizes:
                record = real_minilm(n, cache)
                if record is not None:
                    records.append(("minilm", record))
    print_bytes(bytes_table(records))
    if not args.no_browser:
        print_browser(browser_table(records, args.runs), args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
