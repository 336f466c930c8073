"""Array codecs of the cache's compact record form: what the views need, at the precision they show.

A cache entry keeps (docs/cache.md, "What an entry holds"):

* attention as 8-bit square-root companded codes, ``q = round(255 * sqrt(a))``, decoded as
  ``(q / 255) ** 2``: the encoding the page ships (payload.py), so a page built from a cached
  record carries the same attention bytes as one built from the full-precision record. A
  non-zero weight is never stored as 0. Causal sections keep only their kept triangle.
* query and key vectors as float32 (an older attndocs stored float16: read, see record.py), keys
  once per key/value head plus the map from query heads to them (grouped-query attention);
* an additive bias (T5's relative positions) as float16, once when every layer has the same.

Every function here is deterministic and idempotent: encoding what a decode gave returns the
same codes, so a record computed now and the same record read back from the cache later are
equal to the last bit (what makes cold and warm builds byte-identical).

This module imports numpy only.
"""

from __future__ import annotations

import numpy as np

# float16's largest finite value: a bias below minus it is a mask, which float16 keeps as -inf.
FLOAT16_MAX = 65504.0
# Attention weights are stored this way; the name is recorded in each entry.
ATTENTION_ENCODING = "sqrt8"
# Weights quantised per step: 4 MB of float32, small enough to stay in cache.
_CHUNK = 1 << 20


def quantize_attention(weights: np.ndarray) -> np.ndarray:
    """Probabilities in [0, 1] -> uint8 codes ``round(255 * sqrt(a))``; non-zero never -> 0.

    The page payload ships these codes too (payload.py uses this function): linear 8 bits
    would lose every weight below 1/510.
    """
    a = np.asarray(weights)
    codes = np.empty(a.shape, dtype=np.uint8)
    flat_in, flat_out = a.reshape(-1), codes.reshape(-1)
    # A small working buffer reused chunk by chunk, changed in place: at BERT-base size
    # (37.7 M weights) about a fifth of the time of an out-of-place version, which allocates
    # five full-size float arrays.
    work = np.empty(min(flat_in.size, _CHUNK), dtype=np.float32)
    for start in range(0, flat_in.size, _CHUNK):
        x = work[: min(_CHUNK, flat_in.size - start)]
        x[:] = flat_in[start : start + x.size]
        np.fmax(x, 0.0, out=x)  # fmax/fmin: NaN -> 0, +inf -> 1, -inf -> 0, as nan_to_num + clip
        np.fmin(x, 1.0, out=x)
        np.sqrt(x, out=x)
        x *= np.float32(255.0)
        tiny = (x > 0) & (x < 0.5)  # would round to 0: a weight the model gave must not vanish
        np.rint(x, out=x)
        x[tiny] = 1
        flat_out[start : start + x.size] = x
    return codes


def dequantize_attention(codes: np.ndarray) -> np.ndarray:
    """uint8 codes -> float32 probabilities ``(q / 255) ** 2``."""
    x = np.asarray(codes).astype(np.float32)  # always a new array: the in-place steps touch only it
    np.divide(x, np.float32(255.0), out=x)
    np.multiply(x, x, out=x)
    return x


def attention_error_bound(attention: np.ndarray) -> np.ndarray:
    """How far each row's sum can be from the original's after companding (``[..., rows]``).

    With ``q = round(255 * sqrt(a))`` and ``a' = (q / 255) ** 2``:
    ``|a' - a| <= sqrt(a') / 255 + 0.25 / 255**2`` for every stored non-zero weight (the
    non-zero-never-0 rule stays inside it), and a weight stored as 0 was exactly 0. Rows of
    many small weights (long, flat attention) legitimately drift by several percent.
    """
    a = np.asarray(attention, dtype=np.float32)
    return (np.sqrt(a).sum(axis=-1, dtype=np.float64) + np.count_nonzero(a, axis=-1) * 0.25 / 255.0) / 255.0


def kept_columns(rows: int, cols: int) -> np.ndarray:
    """How many leading columns row ``i`` of a causal section keeps (its allowed keys), as the payload."""
    return np.clip(np.arange(rows) + 1 + cols - rows, 0, cols)


def triangle_mask(rows: int, cols: int) -> np.ndarray:
    """Boolean ``[rows, cols]``: True where a causal section may attend."""
    return np.arange(cols)[None, :] < kept_columns(rows, cols)[:, None]


def encode_attention(attention: np.ndarray, causal: bool) -> np.ndarray:
    """``[L, H, rows, cols]`` weights -> codes: the same shape, or ``[L, H, kept]`` for a causal section.

    The kept cells of a causal section are laid out row by row, as in the payload.
    """
    codes = quantize_attention(attention)
    if causal:
        rows, cols = int(codes.shape[2]), int(codes.shape[3])
        codes = codes[:, :, triangle_mask(rows, cols)]
    return np.ascontiguousarray(codes)


def decode_attention(codes: np.ndarray, rows: int, cols: int, triangle: bool) -> np.ndarray:
    """The inverse of :func:`encode_attention`: ``[L, H, rows, cols]`` float32, zero above a causal diagonal.

    Raises ValueError, worded as a phrase after "its <section>", when the codes cannot be
    ``rows`` x ``cols`` attention.
    """
    if codes.dtype != np.uint8:
        raise ValueError(f"attention codes are {codes.dtype}, not uint8")
    if triangle:
        kept = int(kept_columns(rows, cols).sum())
        if codes.ndim != 3:
            raise ValueError(f"causal attention codes have {codes.ndim} dimensions, not 3 (layers, heads, kept cells)")
        if codes.shape[2] != kept:
            raise ValueError(f"attention covers {codes.shape[2]} cells per head, but its {rows} x {cols} tokens keep {kept}")
        out = np.zeros((codes.shape[0], codes.shape[1], rows, cols), dtype=np.float32)
        out[:, :, triangle_mask(rows, cols)] = dequantize_attention(codes)
        return out
    if codes.ndim != 4:
        raise ValueError(f"attention has {codes.ndim} dimensions, not 4 (layers, heads, rows, columns)")
    if codes.shape[2:] != (rows, cols):
        raise ValueError(f"attention covers {codes.shape[2]} x {codes.shape[3]} tokens, but it has {rows} x {cols} tokens")
    return dequantize_attention(codes)


def encode_vectors(values: np.ndarray) -> np.ndarray:
    """Query or key vectors as float32, as the model computed them.

    The neuron view prints each score ``s * q.k`` to three decimals and its softmax weight
    from those scores. float16 vectors (11 significant bits, what attndocs stored before) put
    recomputed scores off by up to 0.013 on the bundled SmolLM2 and 0.009 on MiniLM, in the
    printed digits; float32 ones give the model's own scores. They cost ``8 * head_dim / tokens``
    times the attention's bytes (1x for BERT-base at 512 tokens), keys stored once per key/value head.
    """
    return np.ascontiguousarray(np.asarray(values, dtype=np.float32))


def decode_vectors(stored: np.ndarray) -> np.ndarray:
    """Stored vectors (float16 or float32) -> float32."""
    if stored.dtype.kind != "f":
        raise ValueError(f"query/key vectors are {stored.dtype}, not floating point")
    return np.ascontiguousarray(stored, dtype=np.float32)


def shared_key_heads(key: np.ndarray) -> tuple[np.ndarray, list[int] | None]:
    """``[L, H, n, d]`` keys -> (the distinct heads ``[L, H_kv, n, d]``, query head -> kept head), or (key, None).

    Grouped-query models have fewer key/value heads than query heads; the extraction repeats
    each key head for the query heads it serves, so the views index keys by query head. Here
    the repeats are found again, bit for bit across every layer, and kept once. A cheap
    fingerprint (each head's first and last vector in every layer) picks the candidates, so
    only real repeats are compared in full.
    """
    heads = int(key.shape[1])
    if heads < 2 or key.shape[2] == 0:
        return key, None
    bits = key.view(np.dtype(f"u{key.dtype.itemsize}"))  # bitwise: -0.0 and 0.0 are not the same
    kept: list[int] = []
    mapping: list[int] = []
    by_print: dict[bytes, list[int]] = {}
    for head in range(heads):
        fingerprint = bits[:, head, 0].tobytes() + bits[:, head, -1].tobytes()
        same = next((k for k in by_print.get(fingerprint, ()) if np.array_equal(bits[:, kept[k]], bits[:, head])), None)
        if same is None:
            same = len(kept)
            kept.append(head)
            by_print.setdefault(fingerprint, []).append(same)
        mapping.append(same)
    if len(kept) == heads:
        return key, None
    return np.ascontiguousarray(key[:, kept]), mapping


def expand_key_heads(kept: np.ndarray, mapping: list[int] | None, heads: int) -> np.ndarray:
    """The inverse of :func:`shared_key_heads`: one key head per query head again.

    Raises ValueError when ``mapping`` does not map ``heads`` query heads onto the kept ones.
    """
    if mapping is None:
        return kept
    if not isinstance(mapping, list) or len(mapping) != heads:
        raise ValueError(f"key head map has {len(mapping) if isinstance(mapping, list) else 'no'} entries, not one per query head ({heads})")
    if kept.ndim != 4 or not all(type(k) is int and 0 <= k < kept.shape[1] for k in mapping):
        raise ValueError(f"key head map points outside the {kept.shape[1] if kept.ndim == 4 else 0} stored key heads")
    if sorted(set(mapping)) != list(range(kept.shape[1])):
        raise ValueError("key head map leaves a stored key head unused")
    return np.ascontiguousarray(np.take(kept, mapping, axis=1))


def encode_bias(bias: np.ndarray) -> tuple[np.ndarray, bool]:
    """``[L, H, rows, cols]`` bias -> (float16 ``[L or 1, H, rows, cols]``, whether every layer shares it).

    T5 computes its position bias once per stack and every layer adds the same. Values below
    float16's range are masks ("never attend") and become -inf; large positive ones saturate.
    """
    bias = np.asarray(bias, dtype=np.float32)
    shared = bool(bias.shape[0] > 1 and all(np.array_equal(bias[0], b) for b in bias[1:]))
    stored = bias[:1] if shared else bias
    stored = np.where(stored < -FLOAT16_MAX, -np.inf, np.minimum(stored, FLOAT16_MAX)).astype(np.float16)
    return np.ascontiguousarray(stored), shared


def decode_bias(stored: np.ndarray, layers: int, shared: bool) -> np.ndarray:
    """The inverse of :func:`encode_bias`: ``[layers, H, rows, cols]`` float32.

    A shared bias is one layer broadcast to all (a read-only view: no copy per layer).
    """
    if stored.dtype.kind != "f" or stored.ndim != 4:
        raise ValueError(f"attention bias is {stored.dtype} {list(stored.shape)}, not 4-D floating point")
    if shared:
        if stored.shape[0] != 1:
            raise ValueError(f"attention bias is shared by every layer but stored for {stored.shape[0]}")
        one = np.ascontiguousarray(stored, dtype=np.float32)
        return np.broadcast_to(one, (layers, *one.shape[1:]))
    return np.ascontiguousarray(stored, dtype=np.float32)
