"""The opening state: every link key is a figure option, declared once, checked against the figure."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from attndocs import analysis
from attndocs.errors import OptionError
from attndocs.options import FigureOptions, figure_fields, option_name, options_table
from attndocs.payload import build_payload
from attndocs.state import (
    ALL_VIEWS,
    STATE_KEYS,
    TokenChoice,
    _stat_available,
    header_state_keys,
    parse_token,
)

sys.path.insert(0, str(Path(__file__).parent / "browser"))
from synthetic import synthetic_record  # noqa: E402

JS = Path(__file__).resolve().parents[1] / "attndocs" / "assets" / "js"


def _payload(record, **values):
    return build_payload(record, FigureOptions.from_mapping(values))


def _error(record, **values) -> str:
    with pytest.raises(OptionError) as info:
        _payload(record, **values)
    text = str(info.value)
    assert "\n" not in text
    return text


# -- one declaration ---------------------------------------------------------------------------
def test_every_state_key_is_an_option_a_docs_row_and_a_header_key():
    fields = {f.name: f for f in figure_fields()}
    table = options_table()
    for key in STATE_KEYS:
        assert key.name in fields, key.name
        assert fields[key.name].metadata["state"] is key
        assert f"`{option_name(fields[key.name])}`" in table
        for view in ALL_VIEWS:
            assert (key.name in header_state_keys(view)) == (view in key.views)
        if key.values is not None:
            assert header_state_keys(key.views[0])[key.name]["values"] == list(key.values)
            # The option takes exactly the values a link may give.
            for value in key.values:
                assert getattr(FigureOptions.from_mapping({"view": key.views[0], key.name: value}), key.name) == value
            with pytest.raises(OptionError, match="allowed: one of " + ", ".join(key.values)):
                FigureOptions.from_mapping({"view": key.views[0], key.name: "nonsense"})


def test_the_views_declare_no_state_key_the_table_does_not():
    """Each view's defineState names only declared keys (the browser also throws for others)."""
    import re

    declared = {key.name for key in STATE_KEYS}
    calls = 0
    for path in sorted(JS.glob("*.js")):
        code = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines() if not line.lstrip().startswith("//"))
        for call in re.findall(r"fig\.defineState\(\[([^\]]*)\]", code):
            calls += 1
            names = set(re.findall(r'"([^"]+)"', call))
            assert names <= declared, (path.name, names - declared)
    assert calls >= 3  # the model, matrix and summary views name theirs


def test_the_payload_header_carries_the_opening_state_and_attndocs_js_the_keys():
    import json

    from attndocs.render import bundle_js

    record = synthetic_record("pair", n=10, layers=4, heads=4, seed=1)
    header = _payload(record, view="matrix", mode="rollout", lines="yes", layer="2").header
    assert header["options"]["state"] == {"mode": "rollout", "lines": True}
    assert header["options"]["layer"] == 2
    # Nothing set, nothing shipped: a figure's header carries only what its author chose.
    assert "state" not in _payload(record, view="head").header["options"]
    assert "stateKeys" not in header
    # The keys of each view ship once a site, in attndocs.js.
    line = next(line for line in bundle_js().splitlines() if line.startswith("window.attndocs.STATE_KEYS = "))
    keys = json.loads(line.removeprefix("window.attndocs.STATE_KEYS = ").rstrip(";"))
    assert set(keys["matrix"]) == {"section", "layer", "heads", "token", "locked", "mode", "lines", "scale", "step", "difference"}
    assert keys["matrix"]["scale"] == {"default": "fixed", "values": ["fixed", "head"]}
    assert set(keys) == {"head", "model", "neuron", "matrix", "summary", "patch"}


# -- token ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("it", TokenChoice(text="it")),
        ("  it ", TokenChoice(text="it")),
        ("it#2", TokenChoice(text="it", occurrence=2)),
        ("@5", TokenChoice(index=5)),
        ("key:it", TokenChoice(side="k", text="it")),
        ("Query: it#3", TokenChoice(side="q", text="it", occurrence=3)),
        ("q:@0", TokenChoice(side="q", index=0)),
        ("##ing", TokenChoice(text="##ing")),
        ("[SEP]#2", TokenChoice(text="[SEP]", occurrence=2)),
        ("key:", TokenChoice(text="key:")),
        (7, TokenChoice(index=7)),
    ],
)
def test_token_values_parse(text, expected):
    assert parse_token(text) == expected


@pytest.mark.parametrize(("text", "fragment"), [("", "expected a token"), ("it#0", "count from 1"), ("x" * 201, "limit of 200")])
def test_bad_token_values_say_what_is_allowed(text, fragment):
    with pytest.raises(OptionError) as info:
        FigureOptions.from_mapping({"token": text})
    assert fragment in str(info.value) and "option 'token'" in str(info.value)


def test_a_token_is_found_by_its_text_as_shown_its_occurrence_its_index_and_side():
    # Display forms with a leading space (byte-level BPE) and capitals.
    tokens = ["<s>", "The", " cat", " saw", " the", " cat", " run"]
    record = synthetic_record("decoder", tokens=tokens, layers=2, heads=2)

    def token(value, view="head"):
        return _payload(record, view=view, token=value).header["options"]["state"]["token"]

    assert token("cat") == {"side": "q", "index": 2}
    assert token("cat#2") == {"side": "q", "index": 5}
    assert token("the") == {"side": "q", "index": 4}  # an exact match first ...
    assert token("THE") == {"side": "q", "index": 1}  # ... then regardless of case
    assert token("@6") == {"side": "q", "index": 6}
    assert token("key:saw") == {"side": "k", "index": 3}
    assert token("run", view="neuron") == {"side": "q", "index": 6}


def test_a_token_that_is_not_there_names_the_closest_and_the_tokens():
    record = synthetic_record("pair", n=10, layers=2, heads=2, seed=1)
    text = _error(record, view="head", token="kat")
    assert "option 'token' is 'kat'" in text and "closest: " in text and "cat" in text.split("closest: ")[1]
    assert "[CLS], the, cat, sat" in text
    assert "shown only 2 times" in _error(record, view="head", token="[SEP]#3")
    assert "use [SEP]#1 to [SEP]#2" in _error(record, view="head", token="[SEP]#3")
    assert "@0 to @9" in _error(record, view="head", token="@10")


def test_cross_attention_tokens_come_from_the_side_asked_for():
    record = synthetic_record("encoder-decoder", n=8, layers=2, heads=2, seed=2)
    enc, dec = record.sides["encoder"].display, record.sides["decoder"].display
    state = _payload(record, view="head", section="cross", token=f"key:{enc[1]}").header["options"]["state"]
    assert state["token"] == {"side": "k", "index": enc.index(enc[1])}
    state = _payload(record, view="head", section="cross", token=dec[1]).header["options"]["state"]
    assert state["token"] == {"side": "q", "index": dec.index(dec[1])}
    assert "(query side)" in _error(record, view="head", section="cross", token="zebra")


# -- what would work -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "fragments"),
    [
        ({"view": "head", "stat": "entropy"}, ["option 'stat' does nothing in the head view", "set view: summary"]),
        ({"view": "summary", "mode": "rollout"}, ["option 'mode' does nothing in the summary view", "set view: matrix"]),
        ({"view": "matrix", "open": "true"}, ["option 'open'", "the model view"]),
        ({"view": "summary", "token": "it"}, ["option 'token'", "the head, model, neuron, matrix and patch views"]),
        ({"view": "summary", "filter": "ab"}, ["option 'filter'", "the head, model and neuron views"]),
        ({"view": "head", "locked": "true"}, ["option 'locked' needs a token"]),
        ({"view": "model", "open": "true", "heads": []}, ["option 'open' needs a head"]),
    ],
)
def test_options_the_view_does_not_have_are_errors_that_say_what_works(values, fragments):
    with pytest.raises(OptionError) as info:
        FigureOptions.from_mapping(values)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_options_the_record_cannot_show_are_errors_that_say_what_works():
    single = synthetic_record("encoder", n=6, layers=2, heads=2)
    seq = synthetic_record("encoder-decoder", n=8, layers=2, heads=2, seed=2)
    assert "no sentence pair (add text-b" in _error(single, view="head", filter="ab")
    assert _payload(single, view="head", filter="all").header["options"]["state"] == {"filter": "all"}
    text = _error(seq, view="matrix", section="cross", mode="rollout")
    assert "not self attention" in text and "head, mean, max, mean-all, max-all work here" in text
    text = _error(seq, view="summary", section="cross", stat="distance")
    assert "use one of entropy, entropy_norm, special" in text
    assert "has no cross attention (sections: encoder)" in _error(single, view="head", section="cross")
    assert "add open: true" in _error(single, view="model", token="the")
    assert "the neuron view selects query tokens" in _error(
        synthetic_record("decoder", n=5, layers=2, heads=2, qk=True), view="neuron", token="key:@1"
    )


@pytest.mark.parametrize("kind", ["encoder", "pair", "decoder", "encoder-decoder"])
def test_the_statistics_a_stat_option_may_name_are_the_ones_the_summary_has(kind):
    record = synthetic_record(kind, n=9, layers=2, heads=2, seed=4)
    for name in record.sections:
        computed = analysis.record_statistics(record, name)
        for stat, values in computed.items():
            assert _stat_available(record, name, stat) == (values is not None), (kind, name, stat)


def test_a_page_block_takes_the_options_in_any_order_and_errors_point_at_the_option_line():
    from attndocs.fence import FenceError, parse_block

    parsed = parse_block("locked: true\ntoken: it#2\nmode: rollout\nview: matrix\n\nIt is what it is.", first_line=10)
    assert (parsed.options.view, parsed.options.mode, parsed.options.locked) == ("matrix", "rollout", True)
    assert parsed.options.token == TokenChoice(text="it", occurrence=2)
    with pytest.raises(FenceError) as info:
        parse_block("view: head\nlayer: 2\nstat: entropy\n\nThe cat.", first_line=10)
    assert info.value.line == 12 and "option 'stat' does nothing in the head view" in str(info.value)
    with pytest.raises(FenceError) as info:
        parse_block("locked: yes\nlayer: 2\n\nThe cat.", first_line=10)
    assert info.value.line == 10 and "needs a token" in str(info.value)


def test_a_large_figure_ships_the_section_it_opens_on_first(monkeypatch):
    from attndocs import payload as payload_module

    record = synthetic_record("encoder-decoder", n=40, layers=3, heads=4, seed=2)
    monkeypatch.setattr(payload_module, "SINGLE_CHUNK", 1)  # split it as a large figure is split
    header = _payload(record, view="head", section="cross", layer="1").header
    assert header["options"]["state"]["section"] == "cross"

    def chunk_of(section: str, layer: int) -> int:
        return header["sections"][section]["blocks"]["attn"]["runs"][layer][0]

    # Chunk 0, loaded before the view starts, holds the cross attention of layer 1: what it draws first.
    assert chunk_of("cross", 1) == 0
    assert all(chunk_of(name, layer) != 0 for name in ("encoder", "decoder") for layer in range(3))
