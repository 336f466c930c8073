"""Synthetic attention records for fast tests: numpy only, shaped like real models.

Attention is made the way a model makes it, ``softmax(scale * q @ k.T + bias + mask)``, so
records with query/key vectors are self-consistent (the neuron view can check them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from attndocs.record import AttentionRecord, Section, Side

WORDS = ("the", "cat", "sat", "on", "mat", "while", "a", "dog", "lay", "near", "rug", "and", "slept", "quietly")
KINDS = ("encoder", "pair", "decoder", "encoder-decoder")


def _words(n: int, offset: int = 0) -> list[str]:
    return [WORDS[(i + offset) % len(WORDS)] for i in range(n)]


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def _section(name: str, rows: str, cols: str, n_rows: int, n_cols: int, layers: int, heads: int, *,
             causal: bool, qk: bool, bias: bool, d: int, rng: np.random.Generator, sharp: float) -> Section:
    q = rng.normal(size=(layers, heads, n_rows, d)).astype(np.float32) * sharp
    k = rng.normal(size=(layers, heads, n_cols, d)).astype(np.float32) * sharp
    scale = 1.0 / np.sqrt(d)
    logits = scale * np.einsum("lhid,lhjd->lhij", q, k)
    b = None
    if bias:
        # T5-style: one relative-position bias shared by every layer.
        rel = np.arange(n_cols)[None, :] - np.arange(n_rows)[:, None]
        b = np.broadcast_to((-0.3 * np.abs(rel)).astype(np.float32), (layers, heads, n_rows, n_cols)).copy()
        b += rng.normal(size=(1, heads, 1, 1)).astype(np.float32)
        logits = logits + b
    if causal:
        logits = np.where(np.tril(np.ones((n_rows, n_cols), dtype=bool)), logits, -np.inf)
    attention = _softmax(logits)
    return Section(
        name=name, attention=attention, rows=rows, cols=cols, causal=causal,
        query=q if qk else None, key=k if qk else None, bias=b if (qk and bias) else None,
        scale=float(scale) if qk else None,
    )


def synthetic_record(
    kind: str = "encoder",
    n: int = 13,
    layers: int = 6,
    heads: int = 12,
    *,
    qk: bool = False,
    bias: bool = False,
    seed: int = 0,
    tokens: Sequence[str] | None = None,
    target_tokens: Sequence[str] | None = None,
    d: int = 16,
    sharp: float = 2.0,
    model_id: str = "synthetic",
    text: str | None = None,
) -> AttentionRecord:
    """A record of ``kind`` ("encoder", "pair", "decoder", "encoder-decoder") with ``n`` tokens.

    ``tokens`` replaces the generated ones (their count wins over ``n``); for
    encoder-decoder records ``target_tokens`` are the decoder's. ``qk`` adds query/key
    vectors (and ``bias`` a T5-style bias) consistent with the attention.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    rng = np.random.default_rng(seed)
    opts = {"qk": qk, "bias": bias, "d": d, "rng": rng, "sharp": sharp}

    def side(toks: list[str], text_b_start: int | None = None) -> Side:
        special = [t in ("[CLS]", "[SEP]", "<s>", "</s>") for t in toks]
        return Side(tokens=list(toks), display=list(toks), special=special, text_b_start=text_b_start)

    if kind in ("encoder", "pair"):
        if tokens is None:
            if kind == "pair":
                half = max(1, (n - 3) // 2)
                tokens = ["[CLS]", *_words(half), "[SEP]", *_words(n - half - 3, 5), "[SEP]"]
            else:
                tokens = ["[CLS]", *_words(max(0, n - 2)), "[SEP]"][:n] if n >= 2 else _words(n)
        toks = list(tokens)
        b_start = None
        if kind == "pair":
            b_start = toks.index("[SEP]") + 1 if "[SEP]" in toks[:-1] else len(toks) // 2
        sides = {"encoder": side(toks, b_start)}
        sections = {"encoder": _section("encoder", "encoder", "encoder", len(toks), len(toks), layers, heads, causal=False, **opts)}
        return AttentionRecord(model_id=model_id, revision="0" * 40, model_type="bert", kind="encoder",
                               text=text or " ".join(toks), sides=sides, sections=sections,
                               text_b=" ".join(toks[b_start:]) if b_start else None,
                               neuron={"available": qk, "reason": None if qk else "not requested"})
    if kind == "decoder":
        toks = list(tokens) if tokens is not None else ["<s>", *_words(n - 1)]
        sides = {"decoder": side(toks)}
        sections = {"decoder": _section("decoder", "decoder", "decoder", len(toks), len(toks), layers, heads, causal=True, **opts)}
        return AttentionRecord(model_id=model_id, revision="0" * 40, model_type="llama", kind="decoder",
                               text=text or " ".join(toks), sides=sides, sections=sections,
                               neuron={"available": qk, "reason": None if qk else "not requested"})
    enc = list(tokens) if tokens is not None else [*_words(n - 1), "</s>"]
    dec = list(target_tokens) if target_tokens is not None else ["<s>", *_words(max(1, n - 3), 3)]
    sides = {"encoder": side(enc), "decoder": side(dec)}
    sections = {
        "encoder": _section("encoder", "encoder", "encoder", len(enc), len(enc), layers, heads, causal=False, **opts),
        "decoder": _section("decoder", "decoder", "decoder", len(dec), len(dec), layers, heads, causal=True, **opts),
        "cross": _section("cross", "decoder", "encoder", len(dec), len(enc), layers, heads, causal=False,
                          **{**opts, "bias": False}),
    }
    return AttentionRecord(model_id=model_id, revision="0" * 40, model_type="t5", kind="encoder-decoder",
                           text=text or " ".join(enc), target=" ".join(dec), sides=sides, sections=sections,
                           neuron={"available": qk, "reason": None if qk else "not requested"})
