"""Option words in headless Chromium: words as tokens, each word's pieces as a tooltip and a note,
and the neuron view's note that it stays per piece; in both themes, at 390 and 1280 px."""

from __future__ import annotations

from pathlib import Path

import pytest

from attndocs.extract.tokens import display_tokens
from attndocs.words import NEURON_NOTE, merge_words

PIECES = ["[CLS]", "the", "un", "##bel", "##ie", "##va", "##ble", "cat", "<b>", "##x</b>", ".", "[SEP]"]
SHOTS = Path(__file__).resolve().parents[2] / ".cache" / "screenshots" / "words"


def _records(synthetic_record):
    pieces = synthetic_record("encoder", layers=3, heads=4, tokens=PIECES, qk=True, seed=4)
    side = pieces.sides["encoder"]
    side.display = display_tokens(side.tokens, "wordpiece", side.special)
    return pieces, merge_words(pieces, "wordpiece")


def test_a_words_figure_shows_words_with_their_pieces(figure_page, synthetic_record):
    pieces, words = _records(synthetic_record)
    probe = figure_page([(words, {"view": "head", "words": True}), (words, {"view": "matrix", "words": True})])
    head = probe.figures.nth(0)
    left = head.locator(".attndocs-token[data-side='q']")
    assert left.all_inner_texts() == ["[CLS]", "the", "unbelievable", "cat", "<b>x</b>", ".", "[SEP]"]
    word = left.nth(2)
    assert word.get_attribute("title") == "word 'unbelievable' = 5 pieces: un · bel · ie · va · ble"
    assert "5 pieces" in word.get_attribute("aria-label")
    assert left.nth(1).get_attribute("title") == "word 'the' = 1 piece"
    # The page text stays text: the hostile piece is shown, never parsed.
    assert head.locator("b").count() == 0
    for i in range(2):
        note = probe.figures.nth(i).locator(".attndocs-words-note")
        assert note.is_visible()
        text = note.inner_text()
        assert text.startswith("Words: 7 words from 12 word pieces; attention to a word is the sum over its pieces")
        assert "unbelievable (5)" in text and "<b>x</b> (2)" in text
    # Hovering a word highlights it like any token: the view works on the merged record unchanged.
    word.hover()
    assert probe.fig_eval(0, "fig => fig.state.token && fig.state.token.index") == 2


def test_the_neuron_view_says_it_shows_pieces(figure_page, synthetic_record):
    pieces, _ = _records(synthetic_record)
    probe = figure_page([(pieces, {"view": "neuron", "words": True}), (pieces, {"view": "neuron"})])
    note = probe.figures.nth(0).locator(".attndocs-words-pieces")
    assert note.is_visible() and note.inner_text() == NEURON_NOTE + "."
    assert probe.figures.nth(1).locator(".attndocs-words-note").count() == 0  # only where words was asked for
    tokens = probe.figures.nth(0).locator(".attndocs-token").all_inner_texts()
    assert "bel" in tokens and "unbelievable" not in tokens


@pytest.mark.parametrize("width", [390, 1280])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_notes_fit_their_column(figure_page, synthetic_record, width, scheme):
    pieces, words = _records(synthetic_record)
    probe = figure_page(
        [(words, {"view": "head", "words": True}), (words, {"view": "summary", "words": True}), (pieces, {"view": "neuron", "words": True})],
        color_scheme=scheme,
        viewport={"width": width, "height": 900},
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        fig = probe.figures.nth(i)
        note = fig.locator(".attndocs-words-note")
        box, outer = note.bounding_box(), fig.bounding_box()
        assert box["x"] >= outer["x"] - 0.5 and box["x"] + box["width"] <= outer["x"] + outer["width"] + 0.5
        assert note.evaluate("n => n.scrollWidth <= n.clientWidth + 1")
        fig.screenshot(path=str(SHOTS / f"words-{i}-{scheme}-{width}.png"))
