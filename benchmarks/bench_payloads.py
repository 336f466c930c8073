"""Progressive payloads at real shapes: Python render time, bytes before the first paint, Chromium.

    .venv/bin/python benchmarks/bench_payloads.py            # everything (a few minutes)
    .venv/bin/python benchmarks/bench_payloads.py --only render,bytes,browser --views head,model

What it measures (issue 12's targets):

* ``render``: ``render_figure`` wall time (best of ``--runs``) and CPU time (all threads) of a
  random-initialised BERT-base (12 layers x 12 heads, d768, built from a config by
  transformers, as the issue measured) at 512 tokens, per view.
* ``bytes``: bytes a figure needs before its first paint (its JSON header and chunk 0, as
  the page carries them: base64 inline, or the chunk script with ``embed="file"``) and in
  all, for MiniLM at 13 tokens (the real model, when installed), the BERT-base record, and a
  synthetic record of the 8B shape (32 layers x 32 heads, causal, d128) at 1,024 tokens.
* ``browser``: the BERT-base figure with side files (``embed="file"``) from a local web
  server (python http.server on 127.0.0.1) and from file:// with the network off, in
  Chromium: first render (navigation to drawn) and a change to a layer not loaded yet
  (the select's change to the new layer drawn), per view.

Timings are of this machine and vary with its load; the CPU time says what a quiet machine
would take. Nothing is written but a temporary folder.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import math
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from attndocs.options import FigureOptions  # noqa: E402
from attndocs.payload import build_payload  # noqa: E402
from attndocs.record import AttentionRecord, Section, Side  # noqa: E402
from attndocs.render import asset_files, asset_tags, render_figure  # noqa: E402

VIEWS = ("head", "model", "neuron", "matrix", "summary")


# -- records ------------------------------------------------------------------------------------
def bert_base_record(tokens: int = 512) -> AttentionRecord:
    """A random-initialised BERT-base (built from a config) run on ``tokens`` tokens, with Q/K."""
    import torch
    from transformers import BertConfig, BertModel

    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_models import _bert_tokenizer

    from attndocs.extract.run import extract_from_model

    torch.manual_seed(0)
    tokenizer = _bert_tokenizer()
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
        intermediate_size=3072, max_position_embeddings=max(512, tokens), pad_token_id=tokenizer.pad_token_id,
        attn_implementation="eager",
    )
    model = BertModel(config).eval()
    words = "the cat sat on the mat while a dog lay near the rug and slept quietly".split()
    count = tokens
    while True:  # the test tokenizer splits words: find the word count that gives `tokens`
        text = " ".join(words[i % len(words)] for i in range(count))
        n = len(tokenizer(text)["input_ids"])
        if n <= tokens:
            break
        count -= max(1, (n - tokens) // 2)
    return extract_from_model(model, tokenizer, text, qk=True)


def synthetic_decoder(layers: int, heads: int, tokens: int, d: int, seed: int = 0) -> AttentionRecord:
    """A causal record shaped like an 8B Llama: softmax(q.k / sqrt(d)) of random q, k, stored as float16."""
    rng = np.random.default_rng(seed)
    attention = np.empty((layers, heads, tokens, tokens), dtype=np.float16)
    query = np.empty((layers, heads, tokens, d), dtype=np.float16)
    key = np.empty((layers, heads, tokens, d), dtype=np.float16)
    mask = np.tril(np.ones((tokens, tokens), dtype=bool))
    for layer in range(layers):
        q = rng.standard_normal((heads, tokens, d), dtype=np.float32) * 1.5
        k = rng.standard_normal((heads, tokens, d), dtype=np.float32) * 1.5
        logits = np.where(mask, (q @ np.swapaxes(k, 1, 2)) / math.sqrt(d), -np.inf)
        logits -= logits.max(axis=-1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=-1, keepdims=True)
        attention[layer], query[layer], key[layer] = logits, q, k
    toks = [f"t{i}" for i in range(tokens)]
    side = Side(tokens=toks, display=toks, special=[False] * tokens, text_b_start=None)
    section = Section(name="decoder", attention=attention, rows="decoder", cols="decoder", causal=True,
                      query=query, key=key, scale=1 / math.sqrt(d))
    return AttentionRecord(model_id="synthetic-8b-shape", revision="0" * 40, model_type="llama", kind="decoder",
                           text=" ".join(toks), sides={"decoder": side}, sections={"decoder": section},
                           neuron={"available": True, "reason": None})


def minilm_record(tokens_text: str = "The cat sat on the mat because it was warm there.") -> AttentionRecord | None:
    try:
        from attndocs.options import SiteSettings
        from attndocs.pipeline import Pipeline

        with tempfile.TemporaryDirectory() as cache:
            [result] = Pipeline(SiteSettings(cache_dir=cache)).run([FigureOptions(text=tokens_text)], qk=[True])
        return result.record
    except Exception as exc:  # the bundled model is not installed: the row says so
        print(f"  (minilm unavailable: {exc})")
        return None


# -- measurements ---------------------------------------------------------------------------------
def fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def measure_render(record: AttentionRecord, views: list[str], runs: int) -> None:
    print(f"\nPython render_figure, {record.layers} x {record.heads}, {len(next(iter(record.sides.values())))} tokens "
          f"(best of {runs}; CPU = all threads)")
    for view in views:
        walls, cpus = [], []
        for _ in range(runs):
            wall, cpu = time.perf_counter(), time.process_time()
            render_figure(record, FigureOptions(view=view))
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        print(f"  {view:8s} wall {min(walls):6.3f} s   CPU {min(cpus):6.3f} s")


def measure_bytes(name: str, record: AttentionRecord, views: list[str]) -> None:
    print(f"\nBytes, {name}: before the first paint (header + chunk 0) / in all")
    for view in views:
        started = time.perf_counter()
        payload = build_payload(record, FigureOptions(view=view))
        seconds = time.perf_counter() - started
        header = len(payload.header_json().encode())
        inline = render_figure(record, FigureOptions(view=view))
        as_file = len(payload.chunk_script(0))
        print(f"  {view:8s} first paint: inline {fmt_bytes(inline.page_bytes if len(payload.shipped) == 1 else header + len(payload.body_base64(0)))}"
              f", file {fmt_bytes(header + as_file)}; header {fmt_bytes(header)}; all {fmt_bytes(len(payload.encoded))} "
              f"in {len(payload.shipped)} chunks; inline figure html {fmt_bytes(len(inline.html.encode()))}; build {seconds:.2f} s")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


_READY_TIME = """
window.__attndocsReady = null;
new MutationObserver(function (records, observer) {
  var fig = document.querySelector('.attndocs-figure');
  if (fig && fig.getAttribute('data-attndocs-status') === 'ready' && !fig.hasAttribute('data-attndocs-loading')) {
    observer.disconnect();
    requestAnimationFrame(function () { setTimeout(function () { window.__attndocsReady = performance.now(); }, 0); });
  }
}).observe(document, {subtree: true, attributes: true, childList: true});
"""

_LAYER_CHANGE = """
(layer) => new Promise((resolve) => {
  const figEl = document.querySelector('.attndocs-figure');
  const select = figEl.querySelector('.attndocs-controls select');
  const cell = figEl.querySelector('.attndocs-scell[data-layer="' + layer + '"][data-head="1"]');
  const t0 = performance.now();
  let seen = false;
  const done = () => requestAnimationFrame(() => setTimeout(() => resolve({ms: performance.now() - t0, loaded: seen}), 0));
  const observer = new MutationObserver(() => {
    if (figEl.hasAttribute('data-attndocs-loading')) { seen = true; return; }
    if (seen) { observer.disconnect(); done(); }
  });
  observer.observe(figEl, {attributes: true, attributeFilter: ['data-attndocs-loading']});
  if (cell) cell.click();  // the summary view opens a head of that layer
  else { select.value = String(layer); select.dispatchEvent(new Event('change')); }
  if (!figEl.hasAttribute('data-attndocs-loading') && !seen) { observer.disconnect(); done(); }
})
"""


def open_and_change(browser: Any, url: str, *, offline: bool, layer: int | None) -> tuple[float, dict[str, Any] | None]:
    """One fresh page: ms from navigation to the figure drawn, then (when ``layer`` is given)
    the change to that layer as _LAYER_CHANGE reports it ({"ms", "loaded"})."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    try:
        if offline:
            context.set_offline(True)
        page = context.new_page()
        page.add_init_script(_READY_TIME)
        page.goto(url)
        page.wait_for_function("() => window.__attndocsReady !== null", timeout=60000)
        first = page.evaluate("window.__attndocsReady")
        return first, (page.evaluate(_LAYER_CHANGE, layer) if layer is not None else None)
    finally:
        context.close()


def measure_browser(record: AttentionRecord, views: list[str], runs: int) -> None:
    from playwright.sync_api import sync_playwright

    from tests.chromium import CHROMIUM_ARGS, chromium_executable

    print(f"\nChromium, {record.layers} x {record.heads} at {len(next(iter(record.sides.values())))} tokens, embed=file "
          f"(median of {runs}): first render / layer change to a layer not loaded yet")
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        folder = Path(tmp)
        (folder / "static").mkdir()
        for name, data in asset_files().items():
            (folder / "static" / name).write_bytes(data)
        for view in views:
            fig = render_figure(record, FigureOptions(view=view), embed="file", file_prefix="static/")
            for name, data in fig.files.items():
                (folder / "static" / name).write_bytes(data)
            (folder / f"{view}.html").write_text(
                f'<!DOCTYPE html><html><head><meta charset="utf-8">{asset_tags("static/")}</head><body>{fig.html}</body></html>',
                encoding="utf-8")
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        origin = f"http://127.0.0.1:{httpd.server_address[1]}/"
        browser = p.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        try:
            for view in views:
                for where, url in (("server", origin + f"{view}.html"), ("file://", (folder / f"{view}.html").as_uri())):
                    # The model view shows every layer at once: no layer to change to.
                    layer = None if view == "model" else record.layers - 1
                    timed = [open_and_change(browser, url, offline=where == "file://", layer=layer) for _ in range(runs)]
                    firsts = [first for first, _ in timed]
                    changes = [change["ms"] for _, change in timed if change is not None]
                    change = f"{np.median(changes):6.0f} ms" if changes else "   (all layers shown)"
                    print(f"  {view:8s} {where:8s} first render {np.median(firsts):6.0f} ms   layer change {change}")
        finally:
            browser.close()
            httpd.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="render,bytes,browser")
    parser.add_argument("--views", default=",".join(VIEWS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big", default="32,32,1024", help="layers,heads,tokens of the synthetic decoder (8B shape)")
    args = parser.parse_args(argv)
    only, views = args.only.split(","), args.views.split(",")
    started = time.perf_counter()
    bert = bert_base_record(512)
    print(f"BERT-base record: {time.perf_counter() - started:.1f} s")
    if "render" in only:
        measure_render(bert, views, args.runs)
    if "bytes" in only:
        small = minilm_record()
        if small is not None:
            measure_bytes("minilm, 13 words", small, views)
        measure_bytes("BERT-base shape, 512 tokens", bert, views)
        layers, heads, tokens = (int(x) for x in args.big.split(","))
        big = synthetic_decoder(layers, heads, tokens, 128)
        measure_bytes(f"8B shape ({layers} x {heads}, causal, d128), {tokens} tokens", big, [v for v in views if v not in ("matrix", "summary")])
        del big
    if "browser" in only:
        measure_browser(bert, views, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
