"""Cache entry bytes against the float32 record and the page payload, for one synthetic figure.

A BERT-base-shaped record (12 layers x 12 heads, 512 tokens, head size 64, with query/key
vectors; softmax rows of Gaussian logits with a sink column and a previous-token bias) is
written three ways: the public float32 record (``to_bytes``), the cache entry
(``to_cache_bytes``) and the payload a page ships for a head view and a neuron view
(``build_payload``: every chunk as shipped, compressed, and those chunks as the scripts that
carry them in base64, first view and on-demand parts together).
Issue 12's target: an entry at most 3x the bytes the pages ship for the same figures.

Usage: python benchmarks/cache_sizes.py [--tokens 512] [--sigma 2.5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from attndocs.options import FigureOptions
from attndocs.payload import build_payload
from attndocs.record import AttentionRecord, Section, Side

LAYERS, HEADS, HEAD_DIM = 12, 12, 64


def synthetic_attention(n: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    attention = np.empty((LAYERS, HEADS, n, n), np.float32)
    positions = np.arange(n)
    for layer in range(LAYERS):  # one layer at a time: a float32 temporary per layer only
        logits = rng.standard_normal((HEADS, n, n), dtype=np.float32) * np.float32(sigma)
        logits[..., 0] += 3.0  # a sink column, like [CLS]
        logits[..., positions, np.clip(positions - 1, 0, n - 1)] += 2.0  # attend to the previous token
        logits -= logits.max(-1, keepdims=True)
        np.exp(logits, out=logits)
        attention[layer] = logits / logits.sum(-1, keepdims=True)
    return attention


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--sigma", type=float, default=2.5, help="spread of the logits (0.5: nearly flat, like a random model)")
    args = parser.parse_args()
    n = args.tokens
    rng = np.random.default_rng(0)
    tokens = ["[CLS]", *(f"w{i}" for i in range(n - 2)), "[SEP]"]
    side = Side(tokens, tokens, [True] + [False] * (n - 2) + [True])
    attention = synthetic_attention(n, args.sigma, rng)
    query = rng.standard_normal((LAYERS, HEADS, n, HEAD_DIM), dtype=np.float32)
    key = rng.standard_normal((LAYERS, HEADS, n, HEAD_DIM), dtype=np.float32)

    def record(qk: bool) -> AttentionRecord:
        section = Section("encoder", attention, "encoder", "encoder", query=query if qk else None, key=key if qk else None, scale=0.125)
        neuron = {"available": qk, "reason": None if qk else "not requested"}
        return AttentionRecord("bert-base-uncased", "0" * 40, "bert", "encoder", " ".join(tokens[1:-1]), {"encoder": side}, {"encoder": section}, neuron=neuron, key="0" * 64)

    rows = []
    for qk, view in ((False, "head"), (True, "neuron")):
        rec = record(qk)
        public = len(rec.to_bytes())
        started = time.perf_counter()
        shown = rec.as_cached()
        entry = len(shown.to_cache_bytes())
        store_s = time.perf_counter() - started
        started = time.perf_counter()
        payload = build_payload(shown, FigureOptions.from_mapping({"text": rec.text, "view": view}))
        payload_s = time.perf_counter() - started
        body = len(payload.encoded)  # every chunk, compressed: the first view and the parts loaded on demand
        page = sum(len(payload.chunk_script(i)) for i in range(len(payload.shipped)))
        rows.append((view, public, entry, body, page, store_s, payload_s))
    print(f"BERT-base shape, {n} tokens, logits sigma {args.sigma}")
    print(f"{'view':<8}{'float32 record':>16}{'cache entry':>14}{'payload':>14}{'as scripts':>12}{'entry/payload':>15}{'record/payload':>16}")
    for view, public, entry, body, page, store_s, payload_s in rows:
        print(f"{view:<8}{public / 1e6:>13.1f} MB{entry / 1e6:>11.1f} MB{body / 1e6:>11.1f} MB{page / 1e6:>9.1f} MB"
              f"{entry / body:>14.2f}x{public / body:>15.1f}x   (as_cached + to_cache_bytes {store_s:.2f} s, payload {payload_s:.2f} s)")
    head, neuron = rows
    print(f"one Q/K entry serving a head and a neuron view: {neuron[2] / (head[3] + neuron[3]):.2f}x their payloads")


if __name__ == "__main__":
    main()
