"""Build-time analysis: aggregates, rollout and head statistics against hand-computed cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from attndocs.analysis import (
    attendable_keys,
    head_statistics,
    max_over_all,
    max_over_heads,
    mean_over_all,
    mean_over_heads,
    payload_extras,
    record_statistics,
    rollout,
)
from attndocs.options import FigureOptions
from attndocs.record import AttentionRecord, Section, Side


def _section(attention: np.ndarray, *, causal: bool = False, rows: str = "encoder", cols: str = "encoder") -> Section:
    return Section(name="s", attention=np.asarray(attention, np.float32), rows=rows, cols=cols, causal=causal)


def _stack(*heads: np.ndarray) -> np.ndarray:
    """One layer holding the given [rows, cols] heads: [1, H, rows, cols]."""
    return np.stack([np.asarray(h, np.float32) for h in heads])[None]


def _causal_uniform(n: int) -> np.ndarray:
    lower = np.tril(np.ones((n, n)))
    return lower / lower.sum(axis=1, keepdims=True)


def _random_attention(rng: np.random.Generator, layers: int, heads: int, rows: int, cols: int, causal: bool) -> np.ndarray:
    logits = rng.normal(size=(layers, heads, rows, cols)) * 2
    if causal:
        logits = np.where(np.tril(np.ones((rows, cols), bool)), logits, -np.inf)
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (weights / weights.sum(axis=-1, keepdims=True)).astype(np.float32)


# -- statistics ---------------------------------------------------------------------------------
def test_uniform_attention_has_entropy_log_n_and_normalised_entropy_one():
    n = 5
    stats = head_statistics(_section(_stack(np.full((n, n), 1 / n))))
    assert stats["entropy"][0, 0] == pytest.approx(math.log(n), abs=1e-6)
    assert stats["entropy_norm"][0, 0] == pytest.approx(1.0, abs=1e-6)
    # Mean |i - j| over a uniform row i is sum_j |i-j| / n; averaged over rows for n = 5: 1.6.
    assert stats["distance"][0, 0] == pytest.approx(1.6, abs=1e-6)
    assert stats["self"][0, 0] == pytest.approx(1 / n, abs=1e-6)


def test_identity_attention_has_no_distance_full_self_share_and_zero_entropy():
    stats = head_statistics(_section(_stack(np.eye(4))))
    assert stats["distance"][0, 0] == pytest.approx(0.0, abs=1e-7)
    assert stats["self"][0, 0] == pytest.approx(1.0)
    assert stats["previous"][0, 0] == pytest.approx(0.0)
    assert stats["entropy"][0, 0] == pytest.approx(0.0, abs=1e-7)
    assert stats["entropy_norm"][0, 0] == pytest.approx(0.0, abs=1e-7)


def test_previous_token_head():
    n = 4
    prev = np.zeros((n, n))
    prev[0, 0] = 1.0
    prev[np.arange(1, n), np.arange(n - 1)] = 1.0
    stats = head_statistics(_section(_stack(prev), causal=True))
    assert stats["previous"][0, 0] == pytest.approx(1.0)  # over rows 1..n-1, the only ones with a previous token
    assert stats["distance"][0, 0] == pytest.approx((n - 1) / n)
    assert stats["self"][0, 0] == pytest.approx(1 / n)


def test_causal_rows_are_normalised_over_attendable_keys_only():
    n = 6
    stats = head_statistics(_section(_stack(_causal_uniform(n)), causal=True))
    # Row i is uniform over i + 1 keys: entropy ln(i + 1), which is the maximum it can have.
    assert stats["entropy"][0, 0] == pytest.approx(np.mean([math.log(i + 1) for i in range(n)]), abs=1e-6)
    assert stats["entropy_norm"][0, 0] == pytest.approx(1.0, abs=1e-6)
    assert list(attendable_keys(4, 4, causal=True)) == [1, 2, 3, 4]
    assert list(attendable_keys(3, 7, causal=False)) == [7, 7, 7]


def test_special_share_and_sentence_pair_crossing():
    # [CLS] a1 [SEP] b1 [SEP]: B starts at 3.
    special = [True, False, True, False, True]
    n = len(special)
    uniform = np.full((n, n), 1 / n)
    block = np.zeros((n, n))
    block[:3, :3] = 1 / 3
    block[3:, 3:] = 1 / 2
    stats = head_statistics(_section(_stack(uniform, block)), key_special=special, text_b_start=3)
    assert stats["special"][0, 0] == pytest.approx(3 / 5)
    # Block head: rows 0..2 give 2/3 to the special tokens 0 and 2; rows 3..4 give 1/2 to token 4.
    assert stats["special"][0, 1] == pytest.approx((3 * 2 / 3 + 2 * 1 / 2) / 5)
    # Uniform: A rows send 2/5 to B, B rows send 3/5 to A. Block-diagonal: nothing crosses.
    assert stats["cross_ab"][0, 0] == pytest.approx((3 * 2 / 5 + 2 * 3 / 5) / 5)
    assert stats["cross_ab"][0, 1] == pytest.approx(0.0)


def test_statistics_are_per_layer_and_head():
    n = 3
    layer0 = [np.eye(n), np.full((n, n), 1 / n)]
    layer1 = [np.full((n, n), 1 / n), np.eye(n)]
    attention = np.stack([np.stack(layer0), np.stack(layer1)]).astype(np.float32)
    stats = head_statistics(_section(attention))
    assert stats["entropy"].shape == (2, 2)
    np.testing.assert_allclose(stats["entropy"], [[0, math.log(n)], [math.log(n), 0]], atol=1e-6)


def test_cross_attention_has_no_position_statistics():
    attention = _stack(np.full((2, 3), 1 / 3))
    stats = head_statistics(_section(attention, rows="decoder", cols="encoder"), key_special=[True, False, False])
    assert stats["distance"] is None and stats["previous"] is None and stats["self"] is None
    assert stats["cross_ab"] is None
    assert stats["entropy"][0, 0] == pytest.approx(math.log(3))
    assert stats["special"][0, 0] == pytest.approx(1 / 3)


@pytest.mark.parametrize("causal", [False, True])
def test_statistics_of_some_heads_are_exactly_those_of_the_full_computation(causal):
    # A figure of two layers computes only those (include-layers / include-heads): the numbers must be
    # the very same floats as when every head is computed, or a figure would change with what it includes.
    rng = np.random.default_rng(8)
    n = 300  # more rows than one entropy block holds at this length: blocks must not change a row's sum
    attention = _random_attention(rng, 3, 4, n, n, causal=causal)
    attention[:, :, :, 5] = 0.0  # exact zeros: a ln a is 0 there
    attention /= attention.sum(axis=-1, keepdims=True)
    special = [k in (0, 7) for k in range(n)]
    full = head_statistics(_section(attention, causal=causal), key_special=special, text_b_start=120)
    some = head_statistics(_section(attention, causal=causal), key_special=special, text_b_start=120, layers=[2, 0], heads=[3, 1])
    for name, values in full.items():
        assert values is not None and some[name].shape == (2, 2), name
        assert np.array_equal(some[name], values[np.ix_([2, 0], [3, 1])]), name
    only = head_statistics(_section(attention, causal=causal), key_special=special, only=("entropy_norm", "previous"))
    assert {name for name, values in only.items() if values is not None} == {"entropy_norm", "previous"}
    assert np.array_equal(only["entropy_norm"], full["entropy_norm"]) and np.array_equal(only["previous"], full["previous"])


# -- aggregates and rollout ----------------------------------------------------------------------
def test_mean_and_max_over_heads_and_layers():
    a = np.array([[[[0.2, 0.8]], [[0.6, 0.4]]], [[[1.0, 0.0]], [[0.0, 1.0]]]], np.float32)  # [2, 2, 1, 2]
    np.testing.assert_allclose(mean_over_heads(a), [[[0.4, 0.6]], [[0.5, 0.5]]], atol=1e-7)
    np.testing.assert_allclose(max_over_heads(a), [[[0.6, 0.8]], [[1.0, 1.0]]])
    np.testing.assert_allclose(mean_over_all(a), [[0.45, 0.55]], atol=1e-7)
    np.testing.assert_allclose(max_over_all(a), [[1.0, 1.0]])


def test_rollout_of_identity_layers_is_identity():
    attention = np.broadcast_to(np.eye(4, dtype=np.float32), (3, 2, 4, 4))
    out = rollout(attention)
    assert out.shape == (3, 4, 4)
    np.testing.assert_allclose(out, np.broadcast_to(np.eye(4), (3, 4, 4)), atol=1e-7)


def test_rollout_by_hand():
    # Both tokens attend to token 1. With the residual: [[.5, .5], [0, 1]] per layer.
    layer = np.array([[0.0, 1.0], [0.0, 1.0]], np.float32)
    out = rollout(np.stack([_stack(layer)[0], _stack(layer)[0]]))
    np.testing.assert_allclose(out[0], [[0.5, 0.5], [0.0, 1.0]], atol=1e-7)
    np.testing.assert_allclose(out[1], [[0.25, 0.75], [0.0, 1.0]], atol=1e-7)


def test_rollout_averages_heads_and_keeps_causal_structure():
    rng = np.random.default_rng(3)
    attention = _random_attention(rng, 3, 4, 6, 6, causal=True)
    out = rollout(attention)
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, atol=1e-5)
    assert np.all(np.triu(out, 1) == 0)
    first = (attention[0].mean(axis=0) + np.eye(6)) / 2
    np.testing.assert_allclose(out[0], first, atol=1e-6)


def test_rollout_is_not_defined_for_cross_attention():
    with pytest.raises(ValueError, match="self attention"):
        rollout(np.full((1, 1, 2, 3), 1 / 3, np.float32))


# -- payload extras ----------------------------------------------------------------------------
def _pair_record(rng: np.random.Generator) -> AttentionRecord:
    tokens = ["[CLS]", "the", "cat", "[SEP]", "a", "dog", "[SEP]"]
    special = [t.startswith("[") for t in tokens]
    side = Side(tokens=tokens, display=tokens, special=special, text_b_start=4)
    attention = _random_attention(rng, 3, 4, 7, 7, causal=False)
    return AttentionRecord(
        model_id="test",
        revision="0",
        model_type="bert",
        kind="encoder",
        text="the cat",
        text_b="a dog",
        sides={"encoder": side},
        sections={"encoder": Section("encoder", attention, "encoder", "encoder")},
    )


def _seq2seq_record(rng: np.random.Generator) -> AttentionRecord:
    enc = Side(tokens=["a", "b", "c", "</s>"], display=["a", "b", "c", "</s>"], special=[False, False, False, True])
    dec = Side(tokens=["<s>", "x", "y"], display=["<s>", "x", "y"], special=[True, False, False])
    return AttentionRecord(
        model_id="test",
        revision="0",
        model_type="bart",
        kind="encoder-decoder",
        text="a b c",
        target="x y",
        sides={"encoder": enc, "decoder": dec},
        sections={
            "encoder": Section("encoder", _random_attention(rng, 2, 2, 4, 4, False), "encoder", "encoder"),
            "decoder": Section("decoder", _random_attention(rng, 2, 2, 3, 3, True), "decoder", "decoder", causal=True),
            "cross": Section("cross", _random_attention(rng, 2, 2, 3, 4, False), "decoder", "encoder"),
        },
    )


@pytest.mark.parametrize("view", ["neuron"])  # the head and model views ship named roles (tests/test_roles.py)
def test_views_without_analysis_ship_nothing(view):
    arrays, info = payload_extras(_pair_record(np.random.default_rng(0)), FigureOptions(view=view))
    assert arrays == {} and info == {}


def test_matrix_view_ships_build_time_aggregates_and_rollout():
    record = _seq2seq_record(np.random.default_rng(1))
    arrays, info = payload_extras(record, FigureOptions(view="matrix"))
    assert set(arrays) == {
        "encoder.mean_all", "encoder.max_all", "encoder.rollout",
        "decoder.mean_all", "decoder.max_all", "decoder.rollout",
        "cross.mean_all", "cross.max_all",
    }  # fmt: skip
    assert "rollout" not in info["sections"]["cross"]["extras"]
    assert info["sections"]["decoder"]["extras"]["rollout"] == "decoder.rollout"
    np.testing.assert_allclose(arrays["cross.mean_all"], record.sections["cross"].attention.mean(axis=(0, 1)), atol=1e-6)
    np.testing.assert_allclose(arrays["decoder.rollout"], rollout(record.sections["decoder"].attention), atol=1e-6)
    for values in arrays.values():
        assert values.dtype == np.float32 and values.min() >= 0 and values.max() <= 1
    # Cross attention gets the statistics that make sense for two sequences, no more.
    assert set(info["sections"]["cross"]["stats"]) == {"entropy", "entropy_norm", "special"}


def test_matrix_view_with_left_out_heads_ships_head_aggregates_over_all_heads():
    record = _pair_record(np.random.default_rng(2))
    options = FigureOptions(view="matrix", include_layers=(0, 2), include_heads=(1,))
    arrays, info = payload_extras(record, options)
    attention = record.sections["encoder"].attention
    assert arrays["encoder.mean_heads"].shape == (2, 7, 7)
    np.testing.assert_allclose(arrays["encoder.mean_heads"][1], attention[2].mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(arrays["encoder.max_heads"][0], attention[0].max(axis=0))
    # Rollout through layer 2 still uses layer 1, which does not ship.
    np.testing.assert_allclose(arrays["encoder.rollout"][1], rollout(attention)[2], atol=1e-6)
    assert info["sections"]["encoder"]["layers"] == [0, 2]
    assert info["sections"]["encoder"]["heads"] == [1]


def test_summary_view_ships_statistics_for_included_heads_as_json():
    record = _pair_record(np.random.default_rng(4))
    options = FigureOptions(view="summary", include_layers=(1, 2), include_heads=(0, 3))
    arrays, info = payload_extras(record, options)
    assert arrays == {}
    stats = info["sections"]["encoder"]["stats"]
    assert set(stats) == {"entropy", "entropy_norm", "distance", "special", "previous", "self", "cross_ab"}
    full = record_statistics(record, "encoder")
    assert stats["entropy"][1][0] == pytest.approx(full["entropy"][2, 0], abs=1e-5)
    assert stats["cross_ab"][0][1] == pytest.approx(full["cross_ab"][1, 3], abs=1e-5)
    text = json.dumps(info, sort_keys=True)
    assert text == json.dumps(payload_extras(record, options)[1], sort_keys=True)  # rebuilds are byte-identical
