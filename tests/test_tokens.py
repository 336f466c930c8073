"""Display forms of tokens: markers removed, bytes decoded to characters across tokens."""

from __future__ import annotations

from attndocs.extract.tokens import byte_level_alphabet, display_tokens


def _byte_level(text: str) -> list[str]:
    """Encode text the way a byte-level BPE would, one token per UTF-8 byte group given."""
    inverse = {b: c for c, b in byte_level_alphabet().items()}
    return ["".join(inverse[b] for b in text.encode("utf-8"))]


def test_byte_level_alphabet_is_a_bijection_over_all_bytes():
    alphabet = byte_level_alphabet()
    assert sorted(alphabet.values()) == list(range(256))
    assert alphabet["Ġ"] == ord(" ")  # the familiar marker for a leading space
    assert alphabet["a"] == ord("a")


def test_byte_level_tokens_read_as_characters():
    tokens = ["The", "Ġcat", "ĠCaf", "Ã©"]
    assert display_tokens(tokens, "byte-level", [False] * 4) == ["The", " cat", " Caf", "é"]


def test_a_character_split_across_tokens_is_shown_once_complete():
    # 你 is e4 bd a0: the first token holds two bytes, the second completes the character.
    first, second = "ä½", "ł"
    assert display_tokens([first, second], "byte-level", [False, False]) == ["\\xe4\\xbd", "你"]


def test_emoji_and_rtl_text_survive_byte_level():
    for text in (" 🙂", " שלום", " مرحبا"):
        assert display_tokens(_byte_level(text), "byte-level", [False]) == [text]


def test_wordpiece_continuations_lose_their_marker_but_special_tokens_stay():
    tokens = ["[CLS]", "play", "##ing", "##", "[SEP]"]
    special = [True, False, False, False, True]
    assert display_tokens(tokens, "wordpiece", special) == ["[CLS]", "play", "ing", "##", "[SEP]"]


def test_metaspace_and_byte_fallback():
    tokens = ["▁Café", "▁", "<0xE4>", "<0xBD>", "<0xA0>", "</s>"]
    special = [False] * 5 + [True]
    assert display_tokens(tokens, "metaspace", special) == [" Café", " ", "\\xe4", "\\xbd", "你", "</s>"]
