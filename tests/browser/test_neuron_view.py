"""The neuron view in headless Chromium: q, k, q x k, q.k, bias and softmax for one query token."""

from __future__ import annotations

import re

import numpy as np
import pytest

from attndocs.options import FigureOptions

HOSTILE = ["[CLS]", "</script><img src=x onerror=alert(1)>", "שלום", "🙂", "猫が", "<b>bold</b>", "[SEP]"]


def _numbers(probe, fig: int, cls: str) -> list[str]:
    return probe.figures.nth(fig).locator(f".attndocs-ngrid .{cls}").evaluate_all("ns => ns.map(n => n.textContent)")


def _softmax(probe, fig: int = 0) -> np.ndarray:
    texts = _numbers(probe, fig, "attndocs-nprob")
    return np.array([0.0 if t == "masked" else float(t) for t in texts])


def _logits(probe, fig: int, cls: str) -> np.ndarray:
    texts = _numbers(probe, fig, cls)
    # util.fmt writes a typographic minus; the masked cells show minus infinity.
    return np.array([float(t.replace("\u2212", "-").replace("-\u221e", "-inf")) for t in texts])


def _select(probe, fig: int, label: str, value: int) -> None:
    probe.figures.nth(fig).locator(".attndocs-control", has_text=label).locator("select").select_option(str(value))


def _query(probe, fig: int, index: int):
    return probe.figures.nth(fig).locator(f".attndocs-nq .attndocs-token[data-index='{index}']")


def test_draws_vectors_and_shows_the_models_softmax_for_the_selected_query(figure_page, synthetic_record):
    record = synthetic_record("encoder", n=11, layers=3, heads=4, qk=True, seed=7)
    probe = figure_page([(record, {"view": "neuron"})])
    attention = record.sections["encoder"].attention

    stats = probe.canvas_stats(".attndocs-nvec")
    assert stats["painted"] > 0.9 * stats["width"] * stats["height"] * 0.9  # both vector blocks are filled
    assert probe.canvas_stats(".attndocs-nqvec")["painted"] > 0
    np.testing.assert_allclose(_softmax(probe), attention[0, 0, 0], atol=0.005)

    # Hovering another query token shows its row; the softmax column changes with it.
    before = _softmax(probe)
    vectors = probe.canvas_stats(".attndocs-nvec")["hash"]
    _query(probe, 0, 6).hover()
    after = _softmax(probe)
    assert not np.allclose(before, after, atol=0.01)
    np.testing.assert_allclose(after, attention[0, 0, 6], atol=0.005)
    assert probe.canvas_stats(".attndocs-nvec")["hash"] != vectors  # q x k differs per query

    # Lock it, then change layer and head: still query 6, now from layer 2 head 3.
    _query(probe, 0, 6).click()
    _select(probe, 0, "Layer", 2)
    _select(probe, 0, "Head", 3)
    np.testing.assert_allclose(_softmax(probe), attention[2, 3, 6], atol=0.005)
    probe.wait_for_hash("token=q6", "locked=1")


def _agree(probe, fig: int, expected_scores: np.ndarray, attention_row: np.ndarray, has_bias: bool) -> None:
    """What one neuron view shows for one query agrees with the model and with itself.

    Scores are the model's own to the three decimals printed. The weights printed are the
    softmax of the scores and biases printed beside them, up to what rounding those to three
    decimals can move them: each logit by at most 0.0005 (0.001 with a bias), each weight by a
    factor within exp(+-2 * that), plus half a unit of the weight's own last digit. They are
    also the model's attention, to the printed precision.
    """
    scores = _logits(probe, fig, "attndocs-nscore")
    weights = _numbers(probe, fig, "attndocs-nprob")
    masked = np.array([t == "masked" for t in weights])
    shown = np.array([0.0 if m else float(t) for t, m in zip(weights, masked)])
    assert not masked.all()
    np.testing.assert_allclose(scores[~masked], expected_scores[~masked], atol=0.0005 + 1e-6)
    logits = scores + (_logits(probe, fig, "attndocs-nbias") if has_bias else 0.0)
    logits = np.where(masked, -np.inf, logits)
    again = np.exp(logits - logits[~masked].max())
    again /= again.sum()
    moved = 0.0005 * (2 if has_bias else 1)
    bound = again * (np.exp(2 * moved) - 1) + 0.0005 + 1e-9
    assert np.all(np.abs(again - shown) <= bound), (again, shown)
    np.testing.assert_allclose(shown[~masked], attention_row[~masked], atol=0.0005 + 1e-4)


@pytest.mark.parametrize("kind", ["encoder", "decoder", "encoder-decoder"])
def test_every_number_agrees_with_the_model_and_with_the_others(figure_page, synthetic_record, kind):
    """Issue 13, item 1: scores are the model's own, and the softmax of what is shown is what is shown."""
    record = synthetic_record(kind, n=9, layers=2, heads=2, qk=True, bias=kind == "encoder-decoder", seed=3, sharp=3.0)
    probe = figure_page([(record, {"view": "neuron", "layer": 1, "heads": "1"})])
    names = list(record.sections)
    for name in names:
        if len(names) > 1:
            probe.figures.first.get_by_role("button", name=name.capitalize()).click()
        section = record.sections[name]
        for query in (0, 4, section.attention.shape[2] - 1):
            _query(probe, 0, query).click()
            expected = section.scale * section.query[1, 1, query].astype(np.float64) @ section.key[1, 1].T.astype(np.float64)
            _agree(probe, 0, expected, section.attention[1, 1, query], section.bias is not None)
    # The header names the scale the scores were multiplied by.
    assert "s = " in probe.figures.first.locator(".attndocs-ninfo").inner_text()


def test_decoder_masks_keys_after_the_query(figure_page, synthetic_record):
    record = synthetic_record("decoder", n=10, layers=2, heads=3, qk=True, seed=5)
    probe = figure_page([(record, {"view": "neuron"})])
    _query(probe, 0, 3).click()
    texts = _numbers(probe, 0, "attndocs-nprob")
    assert texts[4:] == ["masked"] * 6
    assert all(t != "masked" for t in texts[:4])
    np.testing.assert_allclose(_softmax(probe)[:4], record.sections["decoder"].attention[0, 0, 3, :4], atol=0.005)
    masked_keys = probe.figures.first.locator(".attndocs-ngrid .attndocs-token.attndocs-masked")
    assert masked_keys.evaluate_all("ns => ns.map(n => +n.dataset.index)") == list(range(4, 10))
    # Masked rows draw faded k vectors and no q x k: fewer painted pixels than a full row set.
    _query(probe, 0, 9).click()
    full = probe.canvas_stats(".attndocs-nvec")["mean"]
    _query(probe, 0, 0).click()
    assert probe.canvas_stats(".attndocs-nvec")["mean"] != full


def test_bias_column_and_sections_of_an_encoder_decoder(figure_page, synthetic_record):
    record = synthetic_record("encoder-decoder", n=8, layers=2, heads=2, qk=True, bias=True, seed=11)
    probe = figure_page([(record, {"view": "neuron"})])
    fig = probe.figures.first
    headers = fig.locator(".attndocs-ngrid .attndocs-nhead").all_inner_texts()
    assert "bias" in headers
    bias = _logits(probe, 0, "attndocs-nbias")
    np.testing.assert_allclose(bias, record.sections["encoder"].bias[0, 0, 0], atol=0.01)
    np.testing.assert_allclose(_softmax(probe), record.sections["encoder"].attention[0, 0, 0], atol=0.005)

    # Cross attention: decoder tokens ask, encoder tokens answer; this family has no cross bias.
    fig.get_by_role("button", name="Cross").click()
    assert probe.fig_eval(0, "fig => fig.state.section") == "cross"
    assert "bias" not in fig.locator(".attndocs-ngrid .attndocs-nhead").all_inner_texts()
    cross = record.sections["cross"]
    assert fig.locator(".attndocs-nq .attndocs-token").all_inner_texts() == record.sides["decoder"].display
    assert fig.locator(".attndocs-ngrid .attndocs-token").all_inner_texts() == record.sides["encoder"].display
    _query(probe, 0, 2).click()
    np.testing.assert_allclose(_softmax(probe), cross.attention[0, 0, 2], atol=0.005)

    # Decoder self attention: causal and biased.
    fig.get_by_role("button", name="Decoder").click()
    _query(probe, 0, 1).click()
    texts = _numbers(probe, 0, "attndocs-nprob")
    assert texts[2:] == ["masked"] * (len(texts) - 2)
    np.testing.assert_allclose(_softmax(probe)[:2], record.sections["decoder"].attention[0, 0, 1, :2], atol=0.005)


@pytest.mark.parametrize(
    "reason",
    ["the captured query/key vectors do not reproduce the encoder attention (max error 0.3 > 0.0001)", "<b>no</b> vectors"],
)
def test_unavailable_neuron_data_shows_the_reason(figure_page, synthetic_record, reason):
    record = synthetic_record("encoder", n=6, layers=1, heads=2)
    record.neuron = {"available": False, "reason": reason}
    probe = figure_page([(record, {"view": "neuron"})])
    note = probe.figures.first.locator(".attndocs-neuron-unavailable")
    assert note.is_visible()
    assert note.inner_text() == f"Neuron view unavailable: {reason}"
    assert probe.figures.first.locator(".attndocs-ngrid, .attndocs-body canvas, .attndocs-body b").count() == 0


def test_keyboard_moves_and_locks_the_query(figure_page, synthetic_record):
    record = synthetic_record("encoder", n=7, layers=1, heads=2, qk=True, seed=2)
    probe = figure_page([(record, {"view": "neuron"})])
    info = probe.figures.first.locator(".attndocs-ninfo")
    _query(probe, 0, 0).focus()
    probe.page.keyboard.press("ArrowDown")
    probe.page.keyboard.press("ArrowDown")
    assert "(3/7)" in info.inner_text()
    probe.page.keyboard.press("Enter")
    assert probe.fig_eval(0, "fig => [fig.state.token.index, fig.state.locked]") == [2, True]
    np.testing.assert_allclose(_softmax(probe), record.sections["encoder"].attention[0, 0, 2], atol=0.005)
    probe.page.wait_for_function(
        "() => document.querySelector('.attndocs-figure [aria-live]').textContent.includes('attends most to')"
    )
    probe.page.keyboard.press("Escape")
    assert probe.fig_eval(0, "fig => fig.state.locked") is False


def test_two_neuron_views_on_one_page_work_independently(figure_page, synthetic_record):
    first = synthetic_record("encoder", n=6, layers=2, heads=2, qk=True, seed=1)
    second = synthetic_record("decoder", n=8, layers=2, heads=2, qk=True, seed=2)
    probe = figure_page([(first, {"view": "neuron"}), (second, {"view": "neuron"})])
    assert probe.figures.nth(0).get_attribute("id") != probe.figures.nth(1).get_attribute("id")
    untouched = _softmax(probe, 0)
    _query(probe, 1, 5).click()
    np.testing.assert_allclose(_softmax(probe, 1)[:6], second.sections["decoder"].attention[0, 0, 5, :6], atol=0.005)
    np.testing.assert_allclose(_softmax(probe, 0), untouched)
    _query(probe, 0, 4).click()
    np.testing.assert_allclose(_softmax(probe, 0), first.sections["encoder"].attention[0, 0, 4], atol=0.005)
    np.testing.assert_allclose(_softmax(probe, 1)[:6], second.sections["decoder"].attention[0, 0, 5, :6], atol=0.005)


def test_hostile_token_text_shows_literally(figure_page, synthetic_record):
    record = synthetic_record("encoder", tokens=HOSTILE, layers=1, heads=2, qk=True)
    probe = figure_page([(record, {"view": "neuron"})])
    fig = probe.figures.first
    assert fig.locator(".attndocs-nq .attndocs-token").all_inner_texts() == HOSTILE
    assert fig.locator(".attndocs-ngrid .attndocs-token").all_inner_texts() == HOSTILE
    assert fig.locator("img, b").count() == 0
    _query(probe, 0, 1).click()
    assert fig.locator(".attndocs-nqlabel").inner_text() == "q: " + HOSTILE[1]
    svg = probe.fig_eval(0, "fig => fig.exportSVG()")
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in svg and "<img" not in svg
    assert re.search(r"<text[^>]*>שלום</text>", svg)


def test_export_is_a_standalone_svg_of_what_is_shown(figure_page, synthetic_record):
    record = synthetic_record("encoder", n=5, layers=1, heads=1, qk=True, seed=4)
    probe = figure_page([(record, FigureOptions(view="neuron"))])
    svg = probe.fig_eval(0, "fig => fig.exportSVG()")
    assert svg.startswith("<?xml") and "<image" in svg
    shown = _numbers(probe, 0, "attndocs-nprob")
    for value in shown:
        assert f">{value}</text>" in svg
