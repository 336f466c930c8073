"""The ```attention fence parser shared by MkDocs, `attndocs build` and precompute."""

from __future__ import annotations

import pytest

from attndocs.fence import FenceError, Slots, find_blocks, parse_block, replace_blocks


def test_options_blank_line_then_text():
    parsed = parse_block("model: minilm\nview: model\ntext-b: The cat lay on the rug.\n\nThe cat sat on the mat.", first_line=5)
    options = parsed.options
    assert (options.model, options.view, options.text_b, options.text) == ("minilm", "model", "The cat lay on the rug.", "The cat sat on the mat.")
    assert parsed.option_lines == {"model": 5, "view": 6, "text-b": 7}
    assert parsed.text_line == 9


def test_every_option_and_its_parser_apply():
    parsed = parse_block(
        "view: neuron\nlayer: 2\nheads: 0-2,5\ninclude_layers: 1 2\ndisplay: dark\ncaption: A caption: with a colon\n"
        "name: fig-1\nalt: Alt text\nclass: wide tall\nmax-tokens: 40\nrevision: main\ntarget: Le chat.\n\nText."
    )
    o = parsed.options
    assert o.view == "neuron" and o.layer == 2 and o.heads == (0, 1, 2, 5) and o.include_layers == (1, 2)
    assert o.display == "dark" and o.caption == "A caption: with a colon" and o.name == "fig-1"
    assert o.alt == "Alt text" and o.class_ == "wide tall" and o.max_tokens == 40 and o.target == "Le chat."


def test_a_block_without_options_is_all_text():
    assert parse_block("The cat sat on the mat.").options.text == "The cat sat on the mat."
    # A first line that reads like "key: value" with an unknown key is text when no blank line follows...
    assert parse_block("Note that\nthe cat sat.").options.text == "Note that\nthe cat sat."
    # ...and a leading blank line always means "no options".
    parsed = parse_block("\nview: this is text\n\nand more", first_line=3)
    assert parsed.options.text == "view: this is text\n\nand more" and parsed.options.view == "head"
    assert parsed.text_line == 4


def test_multi_paragraph_text_keeps_its_lines_and_loses_outer_blank_lines():
    parsed = parse_block("view: head\n\n\nFirst line\nsecond line\n\nthird\n\n")
    assert parsed.options.text == "First line\nsecond line\n\nthird"


def test_quoted_values_keep_their_inner_spaces():
    assert parse_block('caption: "  spaced  "\n\nx').options.caption == "  spaced  "


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("view: bogus\n\nx", 11, ["view", "bogus", "head"]),
        ("model: minilm\nlayer: -1\n\nx", 12, ["layer", "-1"]),
        ("model: minilm\ncolour: red\n\nx", 12, ["unknown option 'colour'", "known options"]),
        ("model: minilm\nthis is not an option\n\nx", 12, ["expected an option line", "blank line"]),
        ("model: minilm\nmodel: gpt2\n\nx", 12, ["given twice", "lines 11 and 12"]),
        ("model: minilm\nview: head", 12, ["no text"]),
        ("view: head\n\n   \n", 11, ["no text"]),
        ("text: The cat.\n\nx", 11, ["'text' is not an option"]),
        ("Note: the dog.", 11, ["unknown option 'Note'", "start the block with a blank line"]),
    ],
)
def test_bad_blocks_name_the_line_and_what_is_wrong(body, line, words):
    with pytest.raises(FenceError) as info:
        parse_block(body, first_line=11)
    assert info.value.line == line
    for word in words:
        assert word in str(info.value)


def test_crlf_and_tabs():
    page = "# T\r\n\r\n```attention\r\nview:\tmodel\r\n\ttext-b:  The dog.\t\r\n\r\nThe cat.\r\n```\r\nafter\r\n"
    [block] = find_blocks(page)
    assert block.line == 3 and block.error is None
    assert (block.options.view, block.options.text_b, block.options.text) == ("model", "The dog.", "The cat.")
    assert "\r" not in block.options.text


def test_tabs_inside_the_text_are_kept():
    assert parse_block("view: head\n\na\tb").options.text == "a\tb"


def test_find_blocks_reports_lines_and_skips_other_code_blocks():
    page = """# Title

```attention
view: model

The cat sat on the mat.
```

````markdown
```attention
view: bogus

shown as an example, not a figure
```
````

~~~attention
view: bogus

x
~~~
"""
    blocks = find_blocks(page)
    assert [b.line for b in blocks] == [3, 17]
    assert blocks[0].options.view == "model"
    assert blocks[1].options is None and blocks[1].error.line == 18


def test_indented_blocks_in_lists_and_admonitions():
    page = "!!! note\n\n    ```attention\n    view: matrix\n\n    Indented text.\n    ```\n"
    [block] = find_blocks(page)
    assert block.indent == "    " and block.options.view == "matrix" and block.options.text == "Indented text."
    text, _ = replace_blocks(page, lambda b: "TOKEN")
    assert "\n    TOKEN\n" in text and "```" not in text


def test_an_unclosed_block_is_an_error_on_its_opening_line():
    [block] = find_blocks("para\n\n```attention\nview: head\n\nno end")
    assert block.error is not None and block.error.line == 3 and "never closed" in str(block.error)


def test_info_strings_other_than_attention_are_not_figures():
    assert find_blocks("```python\nx = 1\n```\n```attention-like\nx\n```\n``` attention\n\nyes\n```\n")[0].line == 7


def test_hostile_text_is_data():
    hostile = "</script><script>alert(1)</script> {{ x }} ${x} <!-- ``` --> \x00 \u2028"
    [block] = find_blocks(f"```attention\nview: head\ncaption: <b>bold</b>\n\n{hostile}\n```\n")
    assert block.options.text == hostile.strip()
    assert block.options.caption == "<b>bold</b>"


def test_slots_replace_their_paragraph_and_nothing_else():
    slots = Slots()
    a, b = slots.new(), slots.new()
    html = f"<p>{a}</p>\n<ul><li>{b}</li></ul><p>text {a} text</p><p>attndocsslot{slots.nonce}n99x</p>"
    filled = slots.fill(html, {a: "<figure>A</figure>", b: "<figure>B</figure>"})
    assert filled.startswith("<figure>A</figure>\n<ul><li><figure>B</figure></li></ul>")
    assert "<p>text <figure>A</figure> text</p>" in filled
    assert f"attndocsslot{slots.nonce}n99x" in filled  # unknown tokens stay visible rather than vanish
    assert Slots().nonce != slots.nonce


# -- linear time -----------------------------------------------------------------------------
# Lines that made the old fence regexes backtrack: "[ \t]*(.*?)[ \t]*" retried its lazy part
# at every position of a run of blanks. Each is timed at 100 kB and at 1 MB: a linear parser
# takes about ten times as long for the larger one, a quadratic one a hundred times.
_PATHOLOGICAL = {
    "spaces after the fence": lambda n: "```" + " " * n + "x\n```\n",
    "spaces inside the info string": lambda n: "```x" + " " * n + "y\n```\n",
    "a run of backticks": lambda n: "`" * n + "\nafter\n",
    "backticks after the info": lambda n: "```a" + "`" * n + "\n",
    "tildes and spaces": lambda n: "~~~" + "~ " * (n // 2) + "x\n~~~\n",
    "tabs inside an option value": lambda n: "```attention\nmodel: a" + "\t" * n + "b\n\nThe cat.\n```\n",
    "spaces inside an option value": lambda n: "```attention\ncaption: a" + " " * n + "b\n\nThe cat.\n```\n",
    "spaces before the colon": lambda n: "```attention\nmodel" + " " * n + "x: a\n\nThe cat.\n```\n",
    "a run of colons": lambda n: "```attention\na" + ":" * n + "\n\nThe cat.\n```\n",
    "a megabyte of spaces alone": lambda n: " " * n + "\n",
}


def _seconds(text: str) -> float:
    import time

    best = float("inf")
    for _ in range(3):  # the best of three: the machine is shared
        started = time.perf_counter()
        replace_blocks(text, lambda block: "FIGURE")
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize("make", list(_PATHOLOGICAL.values()), ids=list(_PATHOLOGICAL))
def test_the_parser_runs_in_linear_time_on_pathological_lines(make):
    small, large = _seconds(make(100_000)), _seconds(make(1_000_000))
    assert large < 5.0, f"a megabyte took {large:.1f} s"
    # Ten times the input may take ten times as long, with room for noise; quadratic is 100x.
    assert large < 30 * small + 0.05, f"100 kB: {small * 1000:.1f} ms, 1 MB: {large * 1000:.1f} ms"


def test_long_lines_parse_as_before():
    blocks = find_blocks("```attention" + " " * 100_000 + "\ntext-b: a" + " " * 100_000 + "b\n\nThe cat.\n```\n")
    assert len(blocks) == 1 and blocks[0].error is None
    assert blocks[0].options.text_b == "a" + " " * 100_000 + "b"
    # A fence opened by a long run of backticks closes only with a run at least as long.
    page = "`" * 5000 + "\n```attention\n\nshown as code\n```\n" + "`" * 5000 + "\n```attention\n\nA figure.\n```\n"
    assert [b.options.text for b in find_blocks(page)] == ["A figure."]


def test_a_text_over_the_limit_is_an_error_on_its_line():
    (block,) = find_blocks("```attention\nview: head\n\n" + "word " * 50_000 + "\n```\n")
    assert block.error is not None and block.error.line == 4
    assert "200,000 characters" in str(block.error) and len(str(block.error)) < 400


def test_an_index_range_past_the_limit_is_an_error_on_its_line():
    (block,) = find_blocks("```attention\nmodel: minilm\nheads: 0-99999999999\n\nThe cat.\n```\n")
    assert block.error is not None and block.error.line == 3
    assert "heads" in str(block.error) and "4095" in str(block.error)


def test_problems_never_carry_control_characters_to_the_terminal():
    from attndocs.fence import Problem

    text = str(Problem("pa\x1bge.md:3", "option 'caption' has \x1b[31mred\x07 and \x1b]0;title\x07"))
    assert "\x1b" not in text and "\x07" not in text and "\\x1b[31m" in text
