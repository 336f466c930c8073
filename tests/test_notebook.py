"""The BertViz-compatible notebook API: same arguments, offline HTML, any model for the neuron view."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import attndocs
from attndocs.errors import InputError, OptionError
from attndocs.notebook import AttentionHTML, head_view, model_view, neuron_view, record_from_attention
from attndocs.render import figure_payloads

sys.path.insert(0, str(Path(__file__).parent / "browser"))
from synthetic import synthetic_record  # noqa: E402


def header_of(html: str) -> dict:
    (payload,) = figure_payloads(html)
    return payload["header"]


def bertviz_attention(layers=3, heads=4, n=6, seed=0, causal=False):
    """What a HF model returns with output_attentions=True: a tuple of [1, heads, n, n] per layer."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(layers, 1, heads, n, n)) * 2
    if causal:
        logits = np.where(np.tril(np.ones((n, n), dtype=bool)), logits, -np.inf)
    a = np.exp(logits - logits.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    return tuple(a[i].astype(np.float32) for i in range(layers))


class FakeTensor:
    """Duck-types a torch tensor: the API must not need torch to read one."""

    def __init__(self, array):
        self.array = array
        self.calls = []

    def detach(self):
        self.calls.append("detach")
        return self

    def float(self):
        self.calls.append("float")
        return self

    def cpu(self):
        self.calls.append("cpu")
        return self

    def numpy(self):
        self.calls.append("numpy")
        return self.array


TOKENS = ["[CLS]", "the", "Ġcat", "▁sat", "[SEP]", "mat"]


def test_head_view_return_gives_a_standalone_page():
    result = head_view(bertviz_attention(), TOKENS, html_action="return")
    assert isinstance(result, AttentionHTML)
    assert result.data.startswith("<!DOCTYPE html>") and "</html>" in result.data
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", result.data), "the page must not reference the network"
    header = header_of(result.data)
    assert header["view"] == "head"
    assert header["sides"]["encoder"]["display"] == ["[CLS]", "the", " cat", " sat", "[SEP]", "mat"]
    assert header["sides"]["encoder"]["special"] == [1, 0, 0, 0, 1, 0]
    assert header["options"]["hash"] is False  # a notebook's URL is not the figure's to change
    fragment = result._repr_html_()
    assert fragment.startswith("<style>") and "<script>" in fragment and 'class="attndocs-figure' in fragment


def test_prettify_can_be_turned_off():
    result = head_view(bertviz_attention(), TOKENS, prettify_tokens=False, html_action="return")
    assert header_of(result.data)["sides"]["encoder"]["display"] == TOKENS


def test_tensors_are_read_by_duck_typing():
    layers = bertviz_attention()
    fakes = tuple(FakeTensor(a) for a in layers)
    result = model_view(fakes, TOKENS, html_action="return")
    assert fakes[0].calls == ["detach", "float", "cpu", "numpy"]
    assert header_of(result.data)["sections"]["encoder"]["shape"] == [6, 6]


def test_real_torch_tensors_work():
    torch = pytest.importorskip("torch")
    layers = tuple(torch.tensor(a, dtype=torch.bfloat16) for a in bertviz_attention())
    result = head_view(layers, TOKENS, html_action="return")
    assert header_of(result.data)["sections"]["encoder"]["nLayers"] == 3


def test_sentence_b_start_layer_heads_and_includes():
    result = head_view(bertviz_attention(layers=4, heads=6), TOKENS, sentence_b_start=4, layer=2, heads=[1, 3],
                       include_layers=[1, 2], include_heads=[1, 3, 5], html_action="return")
    header = header_of(result.data)
    assert header["sides"]["encoder"]["textBStart"] == 4
    assert header["options"]["layer"] == 2 and header["options"]["heads"] == [1, 3]
    assert header["sections"]["encoder"]["layers"] == [1, 2] and header["sections"]["encoder"]["heads"] == [1, 3, 5]
    with pytest.raises(OptionError, match="include-layers leaves out"):
        head_view(bertviz_attention(layers=4), TOKENS, layer=0, include_layers=[1, 2], html_action="return")


def test_display_mode_is_passed_through():
    result = model_view(bertviz_attention(), TOKENS, display_mode="light", html_action="return")
    assert header_of(result.data)["options"]["display"] == "light"
    assert 'data-attndocs-theme="light"' in result.data
    with pytest.raises(OptionError):
        model_view(bertviz_attention(), TOKENS, display_mode="sepia", html_action="return")


def test_causal_attention_is_recognised():
    record = record_from_attention(bertviz_attention(causal=True), TOKENS)
    assert record.kind == "decoder" and record.sections["decoder"].causal
    result = head_view(bertviz_attention(causal=True), TOKENS, html_action="return")
    assert header_of(result.data)["sections"]["decoder"]["blocks"]["attn"]["triangle"] is True


def test_encoder_decoder_arguments():
    enc = ["▁She", "▁sees", "</s>"]
    dec = ["<pad>", "▁Sie", "▁sieht", "</s>"]
    rng = np.random.default_rng(1)

    def attn(rows, cols, causal=False):
        a = rng.random(size=(2, 1, 3, rows, cols)).astype(np.float32)
        if causal:
            a = a * np.tril(np.ones((rows, cols), dtype=np.float32))
        return tuple(x / x.sum(-1, keepdims=True) for x in a)

    result = model_view(encoder_attention=attn(3, 3), decoder_attention=attn(4, 4, True), cross_attention=attn(4, 3),
                        encoder_tokens=enc, decoder_tokens=dec, html_action="return")
    header = header_of(result.data)
    assert header["kind"] == "encoder-decoder"
    assert header["sectionOrder"] == ["encoder", "decoder", "cross"]
    cross = header["sections"]["cross"]
    assert (cross["rows"], cross["cols"], cross["shape"]) == ("decoder", "encoder", [4, 3])
    assert header["sections"]["decoder"]["causal"] is True
    assert header["sides"]["decoder"]["display"] == ["<pad>", " Sie", " sieht", "</s>"]


def test_bad_arguments_are_clear():
    with pytest.raises(InputError, match="covers 6x6 tokens but 5 tokens"):
        head_view(bertviz_attention(), TOKENS[:5], html_action="return")
    with pytest.raises(InputError, match="batch size 2"):
        head_view(tuple(np.concatenate([a, a]) for a in bertviz_attention()), TOKENS, html_action="return")
    with pytest.raises(OptionError, match="html_action"):
        head_view(bertviz_attention(), TOKENS, html_action="save")
    with pytest.raises(InputError, match="cross_attention needs encoder_tokens"):
        head_view(cross_attention=bertviz_attention(), decoder_tokens=TOKENS, html_action="return")


def test_view_displays_through_ipython(monkeypatch):
    shown = []
    display_mod = types.ModuleType("IPython.display")
    display_mod.HTML = lambda data: ("HTML", data)
    display_mod.display = lambda obj: shown.append(obj)
    ipython = types.ModuleType("IPython")
    ipython.display = display_mod
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display_mod)
    assert head_view(bertviz_attention(), TOKENS) is None
    # The object itself is displayed, so the notebook stores its whole mime bundle.
    (result,) = shown
    bundle = result._repr_mimebundle_()
    assert list(bundle) == ["text/html", "image/png", "text/plain"]
    html = bundle["text/html"]
    assert 'data-attndocs-view="head"' in html and "<script>" in html and 'class="attndocs-still"' in html


def test_view_without_ipython_returns_the_object(monkeypatch):
    monkeypatch.setitem(sys.modules, "IPython", None)
    monkeypatch.setitem(sys.modules, "IPython.display", None)
    assert isinstance(head_view(bertviz_attention(), TOKENS), AttentionHTML)


def test_lazy_top_level_names():
    assert attndocs.head_view is head_view and attndocs.model_view is model_view
    # attndocs.neuron_view is the submodule holding BertViz's show(), callable as the function.
    assert attndocs.neuron_view is sys.modules["attndocs.neuron_view"] and attndocs.neuron_view.show
    assert attndocs.neuron_view.__signature__ == __import__("inspect").signature(neuron_view)
    with pytest.raises(AttributeError):
        attndocs.no_such_view  # noqa: B018


def test_neuron_view_asks_the_extractor_for_query_and_key(monkeypatch):
    import attndocs.extract

    calls = []

    def fake_extract(model, tokenizer, text, text_b=None, target=None, qk=False):
        calls.append((model, tokenizer, text, text_b, target, qk))
        return synthetic_record("pair", n=9, qk=True)

    monkeypatch.setattr(attndocs.extract, "extract_from_model", fake_extract)
    result = neuron_view("MODEL", "TOK", "The cat sat.", "It slept.", layer=2, head=5, html_action="return")
    assert calls == [("MODEL", "TOK", "The cat sat.", "It slept.", None, True)]
    header = header_of(result.data)
    assert header["view"] == "neuron" and header["neuron"]["available"] is True
    assert header["options"]["layer"] == 2 and header["options"]["heads"] == [5]
    assert header["sections"]["encoder"]["hasQK"] is True


@pytest.mark.parametrize("family", ["bert", "gpt2", "t5"])
def test_neuron_view_with_a_real_model_object(tiny_model_dir, family):
    transformers = pytest.importorskip("transformers")
    path = tiny_model_dir(family)
    model = transformers.AutoModel.from_pretrained(path, attn_implementation="eager")
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    target = "the cat" if family == "t5" else None
    result = neuron_view(model, tokenizer, "the cat sat on the mat", target=target, html_action="return")
    header = header_of(result.data)
    assert header["neuron"] == {"available": True, "reason": None}, header["neuron"]
    assert all(s["hasQK"] for s in header["sections"].values())


def test_bertviz_call_with_real_model_outputs(tiny_model_dir):
    transformers = pytest.importorskip("transformers")
    path = tiny_model_dir("bert")
    model = transformers.AutoModel.from_pretrained(path, attn_implementation="eager")
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    inputs = tokenizer.encode("the cat sat", "on the mat", return_tensors="pt")
    attention = model(inputs, output_attentions=True).attentions
    tokens = tokenizer.convert_ids_to_tokens(inputs[0])
    b_start = tokens.index("[SEP]") + 1
    result = head_view(attention, tokens, b_start, html_action="return")
    header = header_of(result.data)
    assert header["sides"]["encoder"]["tokens"] == tokens
    assert header["sections"]["encoder"]["nLayers"] == len(attention)


def test_bertviz_positional_order_is_kept():
    # BertViz: head_view(attention, tokens, sentence_b_start, prettify_tokens, layer, heads,
    # encoder_attention, decoder_attention, cross_attention, encoder_tokens, decoder_tokens,
    # include_layers, html_action); model_view puts display_mode fifth.
    result = head_view(bertviz_attention(), TOKENS, None, False, 1, [2], None, None, None, None, None, [1, 2], "return")
    header = header_of(result.data)
    assert header["options"]["layer"] == 1 and header["options"]["heads"] == [2]
    assert header["sides"]["encoder"]["display"] == TOKENS
    result = model_view(bertviz_attention(), TOKENS, None, True, "light", None, None, None, None, None, [0], [1, 3], "return")
    header = header_of(result.data)
    assert header["options"]["display"] == "light"
    assert header["sections"]["encoder"]["layers"] == [0] and header["sections"]["encoder"]["heads"] == [1, 3]


def test_figure_takes_page_options_and_caches_the_record(tmp_path, monkeypatch):
    """attndocs.figure is the attention block from Python: a page's options, the build's cache."""
    calls = []
    import attndocs.extract.run as run

    real = run.extract
    monkeypatch.setattr(run, "extract", lambda *a, **k: calls.append(1) or real(*a, **k))
    settings = {"cache_dir": str(tmp_path / "cache")}
    shown = attndocs.figure("The cat sat on the mat.", view="matrix", token="cat", html_action="return", settings=settings)
    (payload,) = figure_payloads(shown.data)
    assert payload["header"]["view"] == "matrix"
    tokens = payload["header"]["sides"]["encoder"]["display"]
    assert payload["header"]["options"]["state"]["token"]["index"] == tokens.index("cat")
    again = attndocs.figure("The cat sat on the mat.", view="head", html_action="return", settings=settings)
    assert len(calls) == 1  # the second figure of the same text came from the cache
    assert figure_payloads(again.data)[0]["header"]["view"] == "head"
    with pytest.raises(OptionError, match="unknown option 'colour'"):
        attndocs.figure("The cat sat.", colour="red", settings=settings)
    with pytest.raises(OptionError, match="option 'view'"):
        attndocs.figure("The cat sat.", view="sideways", settings=settings)
