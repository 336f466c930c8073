"""The browser payload: quantisation bounds, causal triangles, selection, Q/K, escaping, determinism."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from attndocs.errors import OptionError
from attndocs.options import FigureOptions
from attndocs.payload import (
    build_payload,
    decode_attention,
    decode_body,
    decode_qk,
    dequantize_attention,
    from_byte_planes,
    part_locations,
    quantize_attention,
    script_json,
    triangle_mask,
)

sys.path.insert(0, str(Path(__file__).parent / "browser"))
from synthetic import synthetic_record  # noqa: E402


def shipped_length(block):
    """Bytes a block ships over all its parts."""
    return block["part"] * sum(count for _, _, count in block["runs"])


def roundtrip(record, **options):
    payload = build_payload(record, FigureOptions(**options))
    return payload, decode_body(payload.header, payload.encoded)


# -- quantisation -------------------------------------------------------------------------
def test_sqrt_companding_error_is_within_one_step():
    a = np.linspace(0, 1, 100_001, dtype=np.float32)
    back = dequantize_attention(quantize_attention(a))
    # One code step of sqrt(a) is 1/255, so |a - back| <= (2 sqrt(a) + 1/255) / 510.
    bound = (2 * np.sqrt(a) + 1 / 255) / 510 + 1e-7
    assert np.all(np.abs(back - a) <= bound)
    assert np.abs(back - a).max() < 0.004


def test_small_weights_keep_relative_precision():
    # Linear 8-bit would flatten all of these to zero; sqrt companding keeps them apart.
    a = np.array([1e-3, 2e-3, 5e-3, 1e-2], dtype=np.float32)
    back = dequantize_attention(quantize_attention(a))
    assert np.all(np.abs(back - a) / a < 0.1)
    assert len(np.unique(back)) == 4


def test_no_nonzero_weight_becomes_zero():
    a = np.array([0.0, 1e-12, 1e-9, 3e-6, 1e-5, 0.5], dtype=np.float32)
    codes = quantize_attention(a)
    assert codes[0] == 0
    assert np.all(codes[1:] > 0)
    assert np.all(dequantize_attention(codes)[1:] > 0)


def test_quantisation_clamps_bad_values():
    codes = quantize_attention(np.array([-0.1, np.nan, 1.5, np.inf], dtype=np.float32))
    assert codes.tolist() == [0, 0, 255, 255]


def test_payload_roundtrip_is_within_the_quantisation_error():
    record = synthetic_record("encoder", n=20, layers=3, heads=4, seed=1)
    payload, body = roundtrip(record)
    got = decode_attention(payload.header, body, "encoder")
    want = record.sections["encoder"].attention
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= (2 * np.sqrt(want) + 1 / 255).max() / 510 + 1e-7
    assert np.all((got > 0) == (want > 0))
    # Rows still sum to one within the aggregate error the design promises (~1e-4 per weight).
    assert np.abs(got.sum(-1) - 1).max() < 0.02


# -- causal sections ----------------------------------------------------------------------
def test_causal_sections_ship_only_the_lower_triangle():
    record = synthetic_record("decoder", n=30, layers=2, heads=3)
    payload, body = roundtrip(record)
    info = payload.header["sections"]["decoder"]
    assert info["causal"] is True
    assert shipped_length(info["blocks"]["attn"]) == 2 * 3 * (30 * 31 // 2)
    got = decode_attention(payload.header, body, "decoder")
    assert np.all(got[..., ~triangle_mask(30, 30)] == 0)
    assert np.all(got[..., triangle_mask(30, 30)] > 0)
    np.testing.assert_allclose(got, record.sections["decoder"].attention, atol=1 / 255)


def test_triangle_for_rectangular_causal_blocks():
    # A decoder continuing after a prefix: row i may see the prefix and keys up to itself.
    mask = triangle_mask(3, 5)
    assert mask.astype(int).tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]


# -- selection ----------------------------------------------------------------------------
def test_only_included_layers_and_heads_ship():
    record = synthetic_record("encoder", n=12, layers=6, heads=12)
    full, _ = roundtrip(record)
    payload, body = roundtrip(record, include_layers=(1, 4), include_heads=(0, 7, 11), layer=4, heads=(7,))
    info = payload.header["sections"]["encoder"]
    assert (info["layers"], info["heads"]) == ([1, 4], [0, 7, 11])
    assert shipped_length(info["blocks"]["attn"]) == 2 * 3 * 12 * 12
    assert len(payload.body) < len(full.body) / 10
    got = decode_attention(payload.header, body, "encoder")
    want = record.sections["encoder"].attention[np.ix_([1, 4], [0, 7, 11])]
    np.testing.assert_allclose(got, want, atol=1 / 255)
    assert payload.header["options"]["layer"] == 4 and payload.header["options"]["heads"] == [7]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"layer": 6}, "option 'layer' is 6, out of range"),
        ({"heads": (3, 12)}, "option 'heads' has head 12 out of range"),
        ({"include_layers": (0, 9)}, "option 'include-layers' has layer 9 out of range"),
        ({"include_heads": (12,)}, "option 'include-heads' has head 12 out of range"),
        ({"include_layers": (1, 2), "layer": 0}, "option 'layer' is 0, which include-layers leaves out"),
        ({"include_heads": (1, 2), "heads": (0,)}, "option 'heads' selects head 0, which include-heads leaves out"),
    ],
)
def test_out_of_range_selection_is_an_option_error(options, message):
    record = synthetic_record("encoder", n=5, layers=6, heads=12, model_id="tiny")
    with pytest.raises(OptionError) as info:
        build_payload(record, FigureOptions(**options))
    assert message in str(info.value)
    assert "tiny has" in str(info.value) or "included:" in str(info.value)


# -- query / key --------------------------------------------------------------------------
def test_qk_ship_only_for_the_neuron_view():
    record = synthetic_record("encoder", n=9, layers=2, heads=2, qk=True)
    head, _ = roundtrip(record, view="head")
    assert not head.header["sections"]["encoder"]["hasQK"]
    assert head.header["neuron"]["available"] is False
    neuron, body = roundtrip(record, view="neuron")
    info = neuron.header["sections"]["encoder"]
    assert info["hasQK"] and info["d"] == 16
    assert neuron.header["neuron"] == {"available": True, "reason": None}
    qk = decode_qk(neuron.header, body, "encoder")
    section = record.sections["encoder"]
    for name, want in (("query", section.query), ("key", section.key)):
        # float32, as the model computed them: the neuron view prints the model's own scores.
        np.testing.assert_array_equal(qk[name], want.astype(np.float32))


def test_qk_reproduce_the_attention_through_softmax():
    record = synthetic_record("decoder", n=12, layers=2, heads=3, qk=True, sharp=1.0)
    payload, body = roundtrip(record, view="neuron")
    qk = decode_qk(payload.header, body, "decoder")
    scale = payload.header["sections"]["decoder"]["scale"]
    logits = scale * np.einsum("lhid,lhjd->lhij", qk["query"], qk["key"])
    logits = np.where(triangle_mask(12, 12), logits, -np.inf)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_allclose(probs, record.sections["decoder"].attention, atol=0.02)


def test_shared_bias_ships_once():
    record = synthetic_record("encoder-decoder", n=10, layers=4, heads=2, qk=True, bias=True)
    payload, body = roundtrip(record, view="neuron")
    block = payload.header["sections"]["encoder"]["blocks"]["bias"]
    assert block["sharedLayers"] is True and block["encoding"] == "f16"
    assert shipped_length(block) == 1 * 2 * 10 * 10 * 2
    qk = decode_qk(payload.header, body, "encoder")
    np.testing.assert_allclose(qk["bias"], record.sections["encoder"].bias, atol=2e-3)
    assert "bias" not in payload.header["sections"]["cross"]["blocks"]


def test_neuron_reason_comes_from_the_record():
    record = synthetic_record("encoder", n=5)
    record.neuron = {"available": False, "reason": "the self-check failed for this model"}
    payload, _ = roundtrip(record, view="neuron")
    assert payload.header["neuron"] == {"available": False, "reason": "the self-check failed for this model"}


# -- escaping and determinism -------------------------------------------------------------
def test_script_json_cannot_close_a_script_or_break_the_page():
    nasty = {"t": "</script><script>alert(1)</script><!-- \u2028\u2029 & ' \ud800 猫"}
    text = script_json(nasty)
    for bad in ("<", ">", "&", "'", "\u2028", "\u2029", "\ud800"):
        assert bad not in text
    assert "猫" in text  # non-ASCII text stays compact
    text.encode("utf-8")  # no lone surrogate left to break the page's encoding
    assert json.loads(text)["t"] == nasty["t"]


def test_script_json_has_no_nan():
    assert script_json({"a": float("nan"), "b": np.float32(np.inf), "c": [np.int64(3)]}) == '{"a":null,"b":null,"c":[3]}'


def test_header_is_escaped_inside_the_page():
    record = synthetic_record("encoder", tokens=["</script>", "<!--", "a&b"], text="</script>")
    payload = build_payload(record, FigureOptions(caption="</script>"))
    text = payload.header_json()
    assert "</" not in text and "<!--" not in text
    assert json.loads(text)["sides"]["encoder"]["display"] == ["</script>", "<!--", "a&b"]


def test_payload_is_deterministic():
    a = build_payload(synthetic_record("pair", n=15, seed=3), FigureOptions(view="model"))
    b = build_payload(synthetic_record("pair", n=15, seed=3), FigureOptions(view="model"))
    assert a.header_json() == b.header_json() and a.encoded == b.encoded and a.digest() == b.digest()


def test_compression_is_used_only_when_it_helps():
    # Uniform attention compresses to almost nothing.
    record = synthetic_record("encoder", n=40, layers=2, heads=2, sharp=0.0)
    payload, body = roundtrip(record)
    assert payload.header["chunks"][0]["compression"] == "deflate"
    assert len(payload.encoded) < len(payload.body) / 20


def test_mask_values_in_the_bias_become_minus_infinity():
    record = synthetic_record("encoder-decoder", n=6, layers=2, heads=1, qk=True, bias=True)
    section = record.sections["decoder"]
    section.bias = section.bias.copy()
    section.bias[..., 0, 1:] = np.finfo(np.float32).min  # how some models mask in their bias
    with np.errstate(over="raise"):
        payload, body = roundtrip(record, view="neuron")
    bias = decode_qk(payload.header, body, "decoder")["bias"]
    assert np.all(np.isneginf(bias[..., 0, 1:]))
    assert np.all(np.isfinite(bias[..., 1:, :]))


# -- chunks: the first view first, the rest on demand ---------------------------------------------
@pytest.fixture
def split(monkeypatch):
    """Figures split into chunks as large ones do, whatever their size."""
    import attndocs.payload as payload_module

    monkeypatch.setattr(payload_module, "SINGLE_CHUNK", 0)
    monkeypatch.setattr(payload_module, "FIRST_LAYER_WHOLE", 0)
    return payload_module


def chunk_of(block, part):
    """The chunk holding part ``part`` of a block."""
    from attndocs.payload import part_locations

    return part_locations(block)[part][0]


def test_small_figures_ship_as_one_chunk():
    payload = build_payload(synthetic_record("encoder", n=13), FigureOptions(view="head"))
    assert len(payload.header["chunks"]) == 1 and "top" not in payload.header["sections"]["encoder"]["blocks"]


def test_chunks_are_named_by_their_hash_and_decode_to_the_same_attention(split):
    import hashlib

    record = synthetic_record("decoder", n=16, layers=3, heads=4, seed=2)
    payload = build_payload(record, FigureOptions(view="head"))
    table = payload.header["chunks"]
    assert len(table) == 1 + 3  # the first view, then one chunk per layer
    for info, shipped in zip(table, payload.shipped):
        assert info["id"] == hashlib.sha256(shipped).hexdigest()[:16]
    got = decode_attention(payload.header, decode_body(payload.header, payload.shipped), "decoder")
    np.testing.assert_allclose(got, record.sections["decoder"].attention, atol=1 / 255)
    with pytest.raises(ValueError, match="4 chunks"):
        decode_body(payload.header, payload.shipped[0])
    again = build_payload(synthetic_record("decoder", n=16, layers=3, heads=4, seed=2), FigureOptions(view="head"))
    assert again.shipped == payload.shipped and again.header_json() == payload.header_json()


@pytest.mark.parametrize(
    ("mode", "include_heads", "extra", "part"),
    [("rollout", None, "rollout", 1), ("mean-all", None, "mean_all", 0), ("max-all", None, "max_all", 0),
     ("mean", (0, 2), "mean_heads", 1), ("max", (0, 2), "max_heads", 1)],
)
def test_a_matrix_opened_on_an_aggregate_ships_it_first(split, mode, include_heads, extra, part):
    """A matrix figure whose author set an aggregate mode opens on that picture, not a loading state."""
    record = synthetic_record("encoder", n=9, layers=3, heads=4, seed=3)
    payload = build_payload(record, FigureOptions(view="matrix", layer=1, mode=mode, include_heads=include_heads))
    assert chunk_of(payload.header["extras"][f"encoder.{extra}"], part) == 0
    others = [k for k in range(len(part_locations_of(payload, extra))) if k != part]
    assert all(chunk_of(payload.header["extras"][f"encoder.{extra}"], k) != 0 for k in others)


def test_a_matrix_opened_on_a_layers_mean_ships_every_head_of_it_first(split):
    record = synthetic_record("encoder", n=9, layers=3, heads=4, seed=3)
    payload = build_payload(record, FigureOptions(view="matrix", layer=2, mode="mean"))
    attn = payload.header["sections"]["encoder"]["blocks"]["attn"]
    assert [k for k in range(12) if chunk_of(attn, k) == 0] == [8, 9, 10, 11]  # layer 2, heads 0-3


def part_locations_of(payload, extra):
    from attndocs.payload import part_locations

    return part_locations(payload.header["extras"][f"encoder.{extra}"])


@pytest.mark.parametrize("view", ["head", "model", "neuron", "matrix", "summary"])
def test_chunk_0_holds_what_the_first_view_draws(split, view):
    record = synthetic_record("encoder-decoder", n=9, layers=3, heads=4, qk=True, bias=True, seed=3)
    options = FigureOptions(view=view, layer=1, heads=(2, 3))
    payload = build_payload(record, options)
    blocks = payload.header["sections"]["encoder"]["blocks"]
    first = 1 * 4 + 2  # layer 1, head 2: part 6 of the encoder's blocks
    if view == "head":
        assert set(blocks["top"]["layers"]) == {"1"} and all(c == 0 for c, _, _ in blocks["top"]["layers"]["1"])
        assert all(chunk_of(blocks["attn"], k) != 0 for k in range(12))  # whole layers load on demand
    elif view == "model":
        for name in ("encoder", "decoder", "cross"):
            overview = payload.header["sections"][name]["blocks"]["overview"]
            assert all(chunk_of(overview, k) == 0 for k in range(12))
        assert all(chunk_of(blocks["attn"], k) != 0 for k in range(12))
    elif view != "neuron":
        assert chunk_of(blocks["attn"], first) == 0
        assert [k for k in range(12) if chunk_of(blocks["attn"], k) == 0] == [first]
    if view == "neuron":
        # Its weights are the softmax of the scores it shows: vectors, and no attention, ship.
        assert "attn" not in blocks
        assert [k for k in range(12) if chunk_of(blocks["key"], k) == 0] == [first]
        # Of the first head's queries only the row the view opens on ships first (an encoder: row 0);
        # the rest of them are a chunk of their own.
        assert [k for k in range(12) if chunk_of(blocks["query"], k) == 0] == []
        assert chunk_of(blocks["query"], first) not in (0, chunk_of(blocks["key"], first + 1))
        row = blocks["queryRow"]
        assert (row["layer"], row["head"], row["row"], chunk_of(row, 0)) == (1, 2, 0, 0)
        body = decode_body(payload.header, payload.shipped)
        shipped = from_byte_planes(np.frombuffer(body[0], np.uint8, count=row["part"], offset=part_locations(row)[0][1]))
        np.testing.assert_array_equal(shipped, record.sections["encoder"].query[1, 2, 0])
        assert chunk_of(blocks["bias"], 2) == 0  # shared by every layer: one part per head
    if view != "model":  # at 9 tokens the overview is every weight: as large as the rest
        assert len(payload.shipped[0]) < len(payload.encoded) / 4


def test_smallest_drawn_code_is_where_the_line_drawing_starts():
    from attndocs.payload import MIN_DRAWN_CODE

    def weight(code):
        return float(np.float32((code / 255) ** 2))

    # 30-head.js draws a line when round(weight * 16) >= 1, i.e. from a weight of 1/32.
    assert weight(MIN_DRAWN_CODE) * 16 >= 0.5 > weight(MIN_DRAWN_CODE - 1) * 16


def test_top_weights_keep_what_the_drawing_shows_and_each_rows_strongest_key(split):
    from attndocs.payload import MIN_DRAWN_CODE, decode_top

    record = synthetic_record("pair", n=23, layers=2, heads=3, seed=5, sharp=1.0)
    payload = build_payload(record, FigureOptions(view="head"))
    top = decode_top(payload.header, decode_body(payload.header, payload.shipped), "encoder", 0)
    codes = quantize_attention(record.sections["encoder"].attention[0])
    b = record.sides["encoder"].text_b_start
    for h, rows in enumerate(top):
        for i, entries in enumerate(rows):
            row = codes[h, i]
            want = {int(j) for j in np.nonzero(row >= MIN_DRAWN_CODE)[0]}
            for lo, hi in ((0, 23), (0, b), (b, 23)):
                if not (row[lo:hi] >= MIN_DRAWN_CODE).any():
                    want.add(lo + int(np.argmax(row[lo:hi])))  # the first strongest key of that range
            assert [j for j, _ in entries] == sorted(want)
            assert [c for _, c in entries] == [int(row[j]) for j in sorted(want)]


def test_the_overview_is_a_max_pool_that_keeps_sentences_apart(split, monkeypatch):
    from attndocs.payload import _bin_edges, decode_overview

    monkeypatch.setattr(split, "OVERVIEW_SIDE", 8)
    record = synthetic_record("pair", n=30, layers=2, heads=2, seed=6)
    payload = build_payload(record, FigureOptions(view="model"))
    block = payload.header["sections"]["encoder"]["blocks"]["overview"]
    b = record.sides["encoder"].text_b_start
    assert block["rows"] == block["cols"] == 8 and b in block["rowEdges"] and b in block["colEdges"]
    pooled = decode_overview(payload.header, decode_body(payload.header, payload.shipped), "encoder")
    codes = quantize_attention(record.sections["encoder"].attention)
    edges = block["rowEdges"]
    for r in range(8):
        for c in range(8):
            want = codes[:, :, edges[r]:edges[r + 1], edges[c]:edges[c + 1]].max(axis=(2, 3))
            assert np.array_equal(pooled[:, :, r, c], want)
    # Edges: increasing, covering every token, one cut at the split when asked.
    for n, bins, cut in ((5, 8, None), (100, 48, None), (100, 48, 37), (60, 8, 1), (60, 8, 59)):
        e = _bin_edges(n, bins, cut)
        assert e[0] == 0 and e[-1] == n and np.all(np.diff(e) >= 1) and len(e) == min(n, bins) + 1
        assert cut is None or n <= bins or cut in e


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_a_cached_records_codes_are_reused_and_give_the_same_page(kind):
    """A record read back from the cache form keeps the 8-bit codes its attention came from; the
    page ships them as they are, the same bytes quantising its attention again gives."""
    record = synthetic_record(kind, n=12, layers=2, heads=3, seed=5)
    cached = record.as_cached()
    section = cached.sections[kind]
    codes = section.attention_codes()
    assert codes is not None and codes.shape == section.attention.shape
    np.testing.assert_array_equal(codes, quantize_attention(section.attention))
    reused = build_payload(cached, FigureOptions(view="head"))
    section.attention = section.attention.copy()  # a new array: the codes no longer speak for it
    assert section.attention_codes() is None
    assert build_payload(cached, FigureOptions(view="head")).shipped == reused.shipped
    assert record.sections[kind].attention_codes() is None  # the model's own record has none
