"""The hostile input corpus every front-end is fed: injections, scripts, odd text, bad options.

Each case says what a correct front-end does with it: draw a figure (and show the text
literally), or refuse the figure with a clear message naming the problem (``error``, a
regex the message must match). Every injection tries to set ``window.__pwned`` or open a
dialog; the browser checks watch both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from attndocs.options import figure_fields, option_name

# Tries to leave every context the value could land in: an attribute, a <script> JSON
# block, a text node, a JS string, a template. Quotes of both kinds, on purpose.
INJECTION = "\"'><script>window.__pwned='opt'</script><img src=x onerror=\"window.__pwned='img'\">"


@dataclass(frozen=True)
class Case:
    name: str
    text: str
    options: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # regex the message must match when the figure is refused
    literal: tuple[str, ...] = ()  # strings the page must show exactly as written

    @property
    def expects_figure(self) -> bool:
        return self.error is None


TEXTS: list[Case] = [
    Case("script-close", "The cat </script><script>window.__pwned='text'</script> sat on the mat."),
    Case("img-onerror", "A dog <img src=x onerror=\"window.__pwned='img'\"> barked."),
    Case("svg-onload", "Look: <svg/onload=window.__pwned='svg'> here."),
    Case("comments-cdata", "<!-- hidden --> and <![CDATA[ data ]]> and &amp; &lt;b&gt; and <!--"),
    Case("js-and-templates", "${window.__pwned='tpl'} {{ 7*7 }} {% raw %} `tick` \\\" \\' end"),
    Case("line-separators", "one\u2028two\u2029three \x01 four"),
    Case("rtl", "שלום עולם and مرحبا بالعالم with an override \u202egnp.exe\u202c here."),
    Case("emoji", "The 🐈 sat on the 🧶 while 👩\u200d👩\u200d👧 and 🏳️\u200d🌈 watched."),
    Case("cjk", "猫がマットの上に座った。我喜欢猫。고양이가 앉았다."),
    Case("zero-width", "The\u200bcat\u200c sat\u200d on\u2060 the\ufeffmat."),
    Case("5000-characters", ("The cat sat on the mat and looked at the dog. " * 110)[:5000], error=r"max-tokens|tokens"),
    Case("empty", "", error=r"empty|no text"),
    Case("whitespace-only", " \t\n  \n", error=r"empty|no text"),
]

# Option values that cannot work, each refused with a message naming the option.
BAD_OPTIONS: list[Case] = [
    Case("layer-out-of-range", "The cat sat.", {"layer": "6"}, error=r"layer.*(range|0-5)"),
    Case("heads-out-of-range", "The cat sat.", {"heads": "0,12"}, error=r"heads.*(range|0-11)"),
    Case("include-layers-out-of-range", "The cat sat.", {"include-layers": "0,9"}, error=r"include-layers.*(range|0-5)"),
    Case("include-heads-out-of-range", "The cat sat.", {"include-heads": "99"}, error=r"include-heads.*(range|0-11)"),
    Case("negative-layer", "The cat sat.", {"layer": "-1"}, error=r"layer"),
    Case("view-unknown", "The cat sat.", {"view": "sideways"}, error=r"view"),
    Case("max-tokens-exceeded", "The cat sat on the mat with the dog.", {"max-tokens": "4"}, error=r"max-tokens"),
]

# What each option does with INJECTION (with the default model, an encoder): figure or error.
_INJECTION_OUTCOME: dict[str, str | None] = {
    "model": r"model",
    "revision": r"revision|bundled",
    "view": r"view",
    "text-b": None,
    "target": r"target",
    "layer": r"layer",
    "heads": r"heads",
    "include-layers": r"include-layers",
    "include-heads": r"include-heads",
    "display": r"display",
    "caption": None,
    "name": None,
    "alt": None,
    "class": None,
    "max-tokens": r"max-tokens",
    # The opening state (attndocs/state.py): a fixed set of values, or a token the text must hold.
    "section": r"section",
    "token": r"token",
    "locked": r"locked",
    "filter": r"filter",
    "mode": r"mode",
    "lines": r"lines",
    "stat": r"stat",
    "layout": r"layout",
    "open": r"open",
    "scale": r"scale",
    "step": r"step",
    "role": r"role",
    "difference": r"difference",
    # Generation, comparisons and words (issue 14).
    "words": r"words",
    "generate": r"generate",
    "seed": r"seed",
    "temperature": r"temperature",
    "compare-text": None,  # a second text like any other: the figure shows it, escaped
    "compare-model": r"compare-model",
    "compare-layer": r"compare-layer",
    # Vision (issue 15): a path beside a text is refused (an image figure reads no text); overlay is the patch view's.
    "image": r"image",
    "overlay": r"overlay",
}


def injection_cases() -> list[Case]:
    """INJECTION in every figure option FigureOptions declares (a new option joins by itself)."""
    cases = []
    for f in figure_fields():
        name = option_name(f)
        outcome = _INJECTION_OUTCOME.get(name, "unlisted")
        assert outcome != "unlisted", f"option {name!r} is new: say in hostile_corpus.py what INJECTION in it must do"
        literal = (INJECTION,) if name in ("caption", "alt") else ()
        cases.append(Case(f"inject-{name}", "The cat sat on the mat.", {name: INJECTION}, error=outcome, literal=literal))
    return cases


def all_cases() -> list[Case]:
    return TEXTS + BAD_OPTIONS + injection_cases()


# Bytes that are not UTF-8, for source files and standard input.
INVALID_UTF8 = b"The cat \xff\xfe sat \xc3\x28 on the \xed\xa0\x80 mat."
