"""FigureOptions and SiteSettings: one declaration, parsed the same from pages and from Python."""

from __future__ import annotations

import pytest

from attndocs.errors import OptionError
from attndocs.options import FigureOptions, SiteSettings, figure_fields, option_name, options_table


def test_page_strings_parse_to_typed_values():
    options = FigureOptions.from_mapping(
        {"view": "Model", "layer": "2", "heads": "0-2, 5", "include-layers": "1 3", "text-b": "B", "max-tokens": "64", "class": "wide"}
    )
    assert options.view == "model" and options.layer == 2
    assert options.heads == (0, 1, 2, 5) and options.include_layers == (1, 3)
    assert options.text_b == "B" and options.max_tokens == 64 and options.class_ == "wide"


def test_python_values_parse_the_same_way():
    assert FigureOptions.from_mapping({"heads": [3, 1, 3]}).heads == (3, 1)


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"layer": "-1"}, "option 'layer' has value '-1'"),
        ({"view": "sideways"}, "one of head, model, neuron, matrix, summary"),
        ({"heads": "3-1"}, "runs backwards"),
        ({"display": "purple"}, "auto, light, dark"),
        ({"max-tokens": "0"}, ">= 1"),
        ({"colour": "red"}, "unknown option 'colour'"),
    ],
)
def test_bad_values_name_the_option_the_value_and_what_is_allowed(values, fragment):
    with pytest.raises(OptionError) as info:
        FigureOptions.from_mapping(values)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_every_option_has_help_and_appears_in_the_docs_table():
    table = options_table()
    for f in figure_fields():
        assert f.metadata["help"]
        assert f"`{option_name(f)}`" in table
    assert "`text`" not in table  # the text is the block's content, not an option


def test_site_settings_validate_too():
    assert SiteSettings().execution_mode == "auto" and SiteSettings().model_aliases == {}
    with pytest.raises(OptionError, match="execution-mode"):
        SiteSettings.from_mapping({"execution_mode": "sometimes"})
    with pytest.raises(OptionError, match="model-aliases"):
        SiteSettings.from_mapping({"model_aliases": ["not", "a", "mapping"]})


# -- limits ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"heads": "0-99999999999"}, "largest index allowed"),
        ({"include-heads": "0-99999999999"}, "largest index allowed"),
        ({"include-layers": "0-4095,0-4095"}, "more than 4,096 indices"),
        ({"heads": "0," * 100_000}, "more than 4,096 indices"),
        ({"heads": "7" * 1_000_000}, "largest index allowed"),
        ({"heads": range(10**12)}, "largest index allowed"),
        ({"heads": [0] * 5000}, "more than 4,096 indices"),
        ({"layer": "4096"}, "<= 4,095"),
        ({"layer": "9" * 100_000}, "<= 4,095"),
        ({"max-tokens": "1000000000"}, "<= 4,096"),
        ({"text": "x" * 200_001}, "limit of 200,000"),
        ({"text-b": "x" * 200_001}, "limit of 200,000"),
        ({"target": "x" * 200_001}, "limit of 200,000"),
        ({"caption": "x" * 10_001}, "limit of 10,000"),
        ({"alt": "x" * 10_001}, "limit of 10,000"),
        ({"name": "x" * 201}, "limit of 200"),
        ({"class": "x" * 1_001}, "limit of 1,000"),
        ({"model": "x" * 4_097}, "limit of 4,096"),
        ({"revision": "x" * 257}, "limit of 256"),
    ],
)
def test_every_option_with_a_length_has_a_limit_and_refusing_costs_nothing(values, fragment):
    import time

    started = time.perf_counter()
    with pytest.raises(OptionError) as info:
        FigureOptions.from_mapping(values)
    assert time.perf_counter() - started < 1.0  # nothing was expanded or copied whole
    message = str(info.value)
    assert fragment in message and "\n" not in message
    assert len(message) < 400  # the value is quoted by its ends, not in full


def test_lists_at_the_limit_still_parse():
    assert FigureOptions.from_mapping({"include-heads": "0-4095"}).include_heads == tuple(range(4096))
    assert FigureOptions.from_mapping({"heads": "4095, 0"}).heads == (4095, 0)
    assert FigureOptions.from_mapping({"max-tokens": "4096", "layer": "4095"}).max_tokens == 4096
    assert FigureOptions.from_mapping({"text": "x" * 200_000}).text == "x" * 200_000


def test_the_limits_are_in_the_docs_table_and_the_hints():
    table = options_table()
    for fragment in ("0-4095", "4,096 in all", "200,000 characters", "10,000 characters", "from 1 to 4,096"):
        assert fragment in table
    with pytest.raises(OptionError, match=r"allowed: indices 0-4095 .* at most 4,096 in all"):
        FigureOptions.from_mapping({"heads": "a"})


def test_site_settings_are_bounded_too():
    with pytest.raises(OptionError, match="<= 4,096"):
        SiteSettings.from_mapping({"max_tokens": 10**9})
    with pytest.raises(OptionError, match="more than the limit of 1,000"):
        SiteSettings.from_mapping({"model_aliases": {str(i): "minilm" for i in range(1001)}})


# -- the project's own errors ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bogus", "class", "text-b", "__dict__", "_FigureOptions__x", ""])
def test_replace_takes_the_names_pages_use_and_refuses_others_with_an_option_error(name):
    options = FigureOptions.from_mapping({"text": "The cat."})
    if name in ("class", "text-b"):
        changed = options.replace(**{name: "x"})
        assert (changed.class_ if name == "class" else changed.text_b) == "x"
        return
    with pytest.raises(OptionError, match="unknown option"):
        options.replace(**{name: "x"})


def test_replace_parses_values_as_pages_do():
    options = FigureOptions()
    assert options.replace(heads="0-2", class_="wide").heads == (0, 1, 2)
    with pytest.raises(OptionError, match="largest index"):
        options.replace(heads="0-99999999999")


@pytest.mark.parametrize("values", [["view", "head"], "view: head", None, 3, {3: "x"}, {("a",): 1}])
def test_from_mapping_with_what_is_not_a_mapping_of_names_is_an_option_error(values):
    for cls in (FigureOptions, SiteSettings):
        with pytest.raises(OptionError):
            cls.from_mapping(values)  # type: ignore[arg-type]


def test_site_settings_replace_and_unknown_settings():
    settings = SiteSettings().replace(execution_mode="frozen", **{"max-tokens": "64"})
    assert settings.execution_mode == "frozen" and settings.max_tokens == 64
    with pytest.raises(OptionError, match="unknown setting 'colour'"):
        SiteSettings().replace(colour="red")


def test_messages_never_carry_control_characters():
    with pytest.raises(OptionError) as info:
        FigureOptions.from_mapping({"view": "\x1b]0;title\x07\x1b[31mred"})
    assert "\x1b" not in str(info.value) and "\x07" not in str(info.value)
    from attndocs.errors import ModelError

    text = str(ModelError("unknown model '\x1b[31mred\u202e\ud800'", "hint \x07"))
    assert text == "unknown model '\\x1b[31mred\\u202e\\ud800' (hint \\x07)"
    assert str(ModelError(text)) == text  # escaping twice changes nothing


def test_the_syntax_page_states_the_limits_the_code_applies():
    from pathlib import Path

    from attndocs import options as o

    page = (Path(__file__).parents[1] / "docs" / "syntax.md").read_text(encoding="utf-8")
    for number in (o.MAX_INDEX, o.MAX_INDICES, o.MAX_TOKENS_LIMIT, o.MAX_TEXT_CHARS, o.MAX_LABEL_CHARS,
                   o.MAX_NAME_CHARS, o.MAX_CLASS_CHARS, o.MAX_PATH_CHARS, o.MAX_REVISION_CHARS):
        assert f"{number:,}" in page or str(number) in page, number
