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
