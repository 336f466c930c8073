"""BertViz drop-in: `attndocs.neuron_view.show`, `attndocs.transformers_neuron_view`, BertViz's notebooks and README calls.

BertViz's own code is not copied here: each test quotes the BertViz calls it reproduces
(BertViz 1.4.1, github.com/jessevig/bertviz) in a comment, then makes them with only the
import lines changed and hub ids swapped for the tiny local models of tests/tiny_models.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import attndocs
from attndocs.errors import InputError, ModelError, OptionError
from attndocs.notebook import AttentionHTML, head_view, model_view
from attndocs.render import figure_payloads

ROOT = Path(__file__).resolve().parent.parent


def header_of(html: str) -> dict:
    (payload,) = figure_payloads(html)
    return payload["header"]


@pytest.fixture
def shown(monkeypatch):
    """IPython's display, recorded: what html_action='view' (BertViz's default) puts in the notebook."""
    out: list[str] = []
    display_mod = types.ModuleType("IPython.display")
    display_mod.HTML = lambda data: data
    # The HTML of the mime bundle the notebook stores (the object itself is displayed).
    display_mod.display = lambda obj: out.append(obj._repr_mimebundle_()["text/html"])
    ipython = types.ModuleType("IPython")
    ipython.display = display_mod
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display_mod)
    return out


def deeper(tiny_model_dir, family: str, dest: Path, layers: int = 3) -> str:
    """The tiny model with one more layer, for BertViz calls that open layer 2 (the tiny ones have two)."""
    import shutil

    import torch
    import transformers

    source = tiny_model_dir(family)
    config = transformers.AutoConfig.from_pretrained(source)
    config.num_hidden_layers = layers
    torch.manual_seed(0)
    transformers.AutoModel.from_config(config).save_pretrained(dest)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(source / name, dest / name)
    return str(dest)


def shown_header(shown: list[str]) -> dict:
    (html,) = shown
    return header_of(html)


# -- one name, two uses -----------------------------------------------------------------
ORDERS = {
    "function first": "from attndocs import neuron_view\nfrom attndocs.neuron_view import show\n",
    "show first": "from attndocs.neuron_view import show\nfrom attndocs import neuron_view\n",
    "attribute first": "import attndocs\nneuron_view = attndocs.neuron_view\nimport attndocs.neuron_view\nfrom attndocs.neuron_view import show\n",
}


@pytest.mark.parametrize("order", list(ORDERS))
def test_neuron_view_is_callable_and_holds_show_in_any_import_order(order, tiny_model_dir):
    path = tiny_model_dir("bert")
    script = ORDERS[order] + (
        "import attndocs, transformers\n"
        "assert attndocs.neuron_view is neuron_view\n"
        f"model = transformers.AutoModel.from_pretrained({str(path)!r})\n"
        f"tok = transformers.AutoTokenizer.from_pretrained({str(path)!r})\n"
        "a = neuron_view(model, tok, 'the cat sat', html_action='return')\n"
        "b = show(model, 'bert', tok, 'the cat sat', html_action='return')\n"
        "c = attndocs.neuron_view.show(model, 'bert', tok, 'the cat sat', html_action='return')\n"
        "print(type(a).__name__, type(b).__name__, type(c).__name__, 'data-attndocs-view=\"neuron\"' in b.data)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["AttentionHTML", "AttentionHTML", "AttentionHTML", "True"]


def test_the_drop_in_modules_import_no_torch():
    code = (
        "import sys, attndocs.neuron_view, attndocs.transformers_neuron_view\n"
        "from attndocs import neuron_view\n"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


def test_neuron_view_name_keeps_the_function_signature():
    import inspect

    import attndocs.neuron_view as module
    from attndocs.notebook import neuron_view as function

    assert attndocs.neuron_view is module and callable(module)
    assert inspect.signature(module) == inspect.signature(function)
    assert list(inspect.signature(module.show).parameters) == [
        "model", "model_type", "tokenizer", "sentence_a", "sentence_b", "display_mode", "layer", "head", "html_action",
    ]
    assert inspect.signature(module.show).parameters["display_mode"].default == "dark"


# -- BertViz's three neuron-view notebooks ------------------------------------------------
def test_bertviz_notebook_neuron_view_bert(tiny_model_dir, tmp_path, shown):
    # notebooks/neuron_view_bert.ipynb:
    #   from bertviz.transformers_neuron_view import BertModel, BertTokenizer
    #   from bertviz.neuron_view import show
    #   model_type = 'bert'
    #   model_version = 'bert-base-uncased'
    #   do_lower_case = True
    #   model = BertModel.from_pretrained(model_version)
    #   tokenizer = BertTokenizer.from_pretrained(model_version, do_lower_case=do_lower_case)
    #   sentence_a = "The cat sat on the mat"
    #   sentence_b = "The cat lay on the rug"
    #   show(model, model_type, tokenizer, sentence_a, sentence_b, display_mode='dark', layer=2, head=0)
    from attndocs.neuron_view import show
    from attndocs.transformers_neuron_view import BertModel, BertTokenizer

    model_type = "bert"
    model_version = deeper(tiny_model_dir, "bert", tmp_path / "bert3")
    do_lower_case = True
    model = BertModel.from_pretrained(model_version)
    tokenizer = BertTokenizer.from_pretrained(model_version, do_lower_case=do_lower_case)
    sentence_a = "The cat sat on the mat"
    sentence_b = "The cat lay on the rug"
    assert show(model, model_type, tokenizer, sentence_a, sentence_b, display_mode="dark", layer=2, head=0) is None

    header = shown_header(shown)
    assert header["view"] == "neuron" and header["neuron"] == {"available": True, "reason": None}
    assert header["options"]["layer"] == 2 and header["options"]["heads"] == [0]
    assert header["options"]["display"] == "dark"
    side = header["sides"]["encoder"]
    assert side["tokens"][0] == "[CLS]" and side["tokens"][side["textBStart"] - 1] == "[SEP]"
    assert side["tokens"][side["textBStart"]:] == ["the", "cat", "lay", "on", "the", "rug", "[SEP]"]


def test_bertviz_notebook_neuron_view_gpt2(tiny_model_dir, shown):
    # notebooks/neuron_view_gpt2.ipynb:
    #   from bertviz.transformers_neuron_view import GPT2Model, GPT2Tokenizer
    #   from bertviz.neuron_view import show
    #   model_type = 'gpt2'
    #   model_version = 'gpt2'
    #   model = GPT2Model.from_pretrained(model_version)
    #   tokenizer = GPT2Tokenizer.from_pretrained(model_version)
    #   text = "At the store, she bought apples, oranges, bananas,"
    #   show(model, model_type, tokenizer, text, display_mode='dark')
    from attndocs.neuron_view import show
    from attndocs.transformers_neuron_view import GPT2Model, GPT2Tokenizer

    model_type = "gpt2"
    model_version = str(tiny_model_dir("gpt2"))
    model = GPT2Model.from_pretrained(model_version)
    tokenizer = GPT2Tokenizer.from_pretrained(model_version)
    text = "At the store, she bought apples, oranges, bananas,"
    show(model, model_type, tokenizer, text, display_mode="dark")

    header = shown_header(shown)
    assert header["view"] == "neuron" and header["neuron"]["available"] is True
    assert header["options"]["display"] == "dark"
    (section,) = header["sections"].values()
    assert section["hasQK"] is True and section["causal"] is True
    assert "".join(header["sides"]["decoder"]["display"]) == text


def test_bertviz_notebook_neuron_view_roberta(tiny_model_dir, shown):
    # notebooks/neuron_view_roberta.ipynb:
    #   from bertviz.transformers_neuron_view import RobertaModel, RobertaTokenizer
    #   from bertviz.neuron_view import show
    #   model_type = 'roberta'
    #   model_version = 'roberta-base'
    #   model = RobertaModel.from_pretrained(model_version)
    #   tokenizer = RobertaTokenizer.from_pretrained(model_version)
    #   sentence_a = "The cat sat on the mat"
    #   sentence_b = "The cat lay on the rug"
    #   show(model, model_type, tokenizer, sentence_a, sentence_b)
    from attndocs.neuron_view import show
    from attndocs.transformers_neuron_view import RobertaModel, RobertaTokenizer

    model_type = "roberta"
    model_version = str(tiny_model_dir("roberta"))
    model = RobertaModel.from_pretrained(model_version)
    tokenizer = RobertaTokenizer.from_pretrained(model_version)
    sentence_a = "The cat sat on the mat"
    sentence_b = "The cat lay on the rug"
    show(model, model_type, tokenizer, sentence_a, sentence_b)

    header = shown_header(shown)
    assert header["neuron"]["available"] is True
    assert header["options"]["display"] == "dark"  # BertViz's default for show
    side = header["sides"]["encoder"]
    assert side["textBStart"] is not None and side["tokens"][-1] == "</s>"
    assert header["sections"]["encoder"]["hasQK"] is True


def test_bertviz_readme_neuron_view_with_html_return(tiny_model_dir, tmp_path):
    # README.md, "Neuron View" and "Obtain HTML representations":
    #   from bertviz.transformers_neuron_view import BertModel, BertTokenizer
    #   from bertviz.neuron_view import show
    #   model_type = 'bert'
    #   model_version = 'bert-base-uncased'
    #   do_lower_case = True
    #   sentence_a = "The cat sat on the mat"
    #   sentence_b = "The cat lay on the rug"
    #   model = BertModel.from_pretrained(model_version, output_attentions=True)
    #   tokenizer = BertTokenizer.from_pretrained(model_version, do_lower_case=do_lower_case)
    #   show(model, model_type, tokenizer, sentence_a, sentence_b, layer=2, head=0)
    #   html_neuron_view = show(model, model_type, tokenizer, sentence_a, sentence_b, layer=2, head=0, html_action='return')
    #   with open("PATH_TO_YOUR_FILE/neuron_view.html", 'w') as file:
    #       file.write(html_neuron_view.data)
    from attndocs.neuron_view import show
    from attndocs.transformers_neuron_view import BertModel, BertTokenizer

    model_type = "bert"
    model_version = deeper(tiny_model_dir, "bert", tmp_path / "bert3")
    do_lower_case = True
    sentence_a = "The cat sat on the mat"
    sentence_b = "The cat lay on the rug"
    model = BertModel.from_pretrained(model_version, output_attentions=True)
    tokenizer = BertTokenizer.from_pretrained(model_version, do_lower_case=do_lower_case)
    html_neuron_view = show(model, model_type, tokenizer, sentence_a, sentence_b, layer=2, head=0, html_action="return")
    with open(tmp_path / "neuron_view.html", "w") as file:
        file.write(html_neuron_view.data)

    assert isinstance(html_neuron_view, AttentionHTML)
    page = (tmp_path / "neuron_view.html").read_text()
    assert "<html" in page.lower() and not re.search(r"<(script|link)[^>]+(src|href)=[\"']https?:", page)  # offline
    header = header_of(page)
    assert header["options"]["layer"] == 2 and header["options"]["heads"] == [0]


# -- BertViz's forked classes -----------------------------------------------------------------
def test_transformers_neuron_view_gives_the_stock_classes():
    import transformers

    import attndocs.transformers_neuron_view as tnv

    for name in ("BertModel", "BertTokenizer", "GPT2Model", "GPT2Tokenizer", "RobertaModel", "RobertaTokenizer"):
        assert getattr(tnv, name) is getattr(transformers, name)
    assert not hasattr(tnv, "_repr_html_")  # IPython's probes still get a plain AttributeError


def test_transformers_neuron_view_other_names_say_what_to_load():
    with pytest.raises(ImportError) as caught:
        from attndocs.transformers_neuron_view import XLNetModel  # noqa: F401
    message = str(caught.value)
    assert "\n" not in message and "no forked model classes" in message
    assert "transformers.XLNetModel" in message and "attn_implementation='eager'" in message
    assert isinstance(caught.value, ModelError)


def test_bertviz_forked_model_is_a_one_line_error():
    from attndocs.neuron_view import show

    forked = type("BertModel", (), {"__module__": "bertviz.transformers_neuron_view.modeling_bert"})
    with pytest.raises(ModelError) as caught:
        show(forked(), "bert", object(), "The cat sat on the mat", html_action="return")
    message = str(caught.value)
    assert "\n" not in message
    assert "BertViz's forked BertModel" in message and "transformers.BertModel.from_pretrained" in message

    tokenizer = type("BertTokenizer", (), {"__module__": "bertviz.transformers_neuron_view.tokenization_bert"})
    model = types.SimpleNamespace(config=types.SimpleNamespace(model_type="bert"))
    with pytest.raises(ModelError, match=r"tokenizer is BertViz's forked BertTokenizer.*transformers\.BertTokenizer"):
        show(model, "bert", tokenizer(), "The cat sat on the mat", html_action="return")


def test_model_type_is_checked_against_the_model():
    from attndocs.neuron_view import show

    bert = types.SimpleNamespace(config=types.SimpleNamespace(model_type="bert"))
    with pytest.raises(OptionError, match=r"model_type must be one of 'bert', 'gpt2', 'roberta', not 'xlnet'"):
        show(bert, "xlnet", None, "The cat sat.")
    with pytest.raises(OptionError, match=r"model_type is 'gpt2' but the model is a 'bert' model.*model_type='bert'"):
        show(bert, "gpt2", None, "The cat sat.")
    with pytest.raises(InputError, match="sentence_a is required"):
        show(bert, "bert", None, "")


def test_sentence_b_needs_an_encoder_model(tiny_model_dir):
    # BertViz: ValueError(f'Model {model_type} does not support sentence pairs') for GPT-2.
    import transformers

    from attndocs.neuron_view import show

    path = tiny_model_dir("gpt2")
    model = transformers.GPT2Model.from_pretrained(path)
    tokenizer = transformers.GPT2Tokenizer.from_pretrained(path)
    with pytest.raises(InputError, match=r"sentence_b needs an encoder model.*'gpt2' model is decoder \(leave sentence_b out"):
        show(model, "gpt2", tokenizer, "The cat sat", "It slept", html_action="return")
    assert show(model, "gpt2", tokenizer, "The cat sat", "", html_action="return")  # '' is no sentence, as in BertViz


def test_model_type_may_name_any_supported_family(tiny_model_dir):
    import transformers

    from attndocs.neuron_view import show

    path = tiny_model_dir("llama")
    model = transformers.AutoModel.from_pretrained(path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    result = show(model, "llama", tokenizer, "The cat sat on the mat", html_action="return")
    assert header_of(result.data)["neuron"]["available"] is True
    with pytest.raises(OptionError, match=r"'bert', 'gpt2', 'roberta', 'llama', not 'bart'"):
        show(model, "bart", tokenizer, "The cat sat on the mat", html_action="return")


# -- item 4: closer to BertViz ------------------------------------------------------------------
def attention(layers=3, heads=4, n=5, seed=0):
    rng = np.random.default_rng(seed)
    a = np.exp(rng.normal(size=(layers, 1, heads, n, n)))
    a /= a.sum(-1, keepdims=True)
    return tuple(a[i].astype(np.float32) for i in range(layers))


TOKENS = ["[CLS]", "the", "cat", "sat", "[SEP]"]


def test_negative_include_indices_count_from_the_end():
    # BertViz README: model_view(attention, tokens, include_layers=[5, 6]); -1 is the last, as in Python.
    header = header_of(model_view(attention(), TOKENS, include_layers=[-1], include_heads=[0, -1], html_action="return").data)
    assert header["sections"]["encoder"]["layers"] == [2] and header["sections"]["encoder"]["heads"] == [0, 3]
    header = header_of(head_view(attention(), TOKENS, layer=1, include_layers=[-2, -1], html_action="return").data)
    assert header["sections"]["encoder"]["layers"] == [1, 2] and header["options"]["layer"] == 1
    header = header_of(head_view(attention(), TOKENS, include_layers=np.array([-3]), html_action="return").data)
    assert header["sections"]["encoder"]["layers"] == [0]


def test_negative_include_indices_out_of_range_say_the_range():
    with pytest.raises(OptionError, match=r"include_layers has layer -4 out of range \(.*3 layers: 0 to 2, or -3 to -1"):
        model_view(attention(), TOKENS, include_layers=[-4], html_action="return")
    with pytest.raises(OptionError, match=r"include_heads has head -5 out of range"):
        head_view(attention(), TOKENS, include_heads=[-5], html_action="return")


def test_negative_include_indices_for_encoder_decoder():
    enc = attention(n=4)
    dec = attention(n=3, seed=1)
    rng = np.random.default_rng(2)
    cross = tuple((lambda a: a / a.sum(-1, keepdims=True))(np.exp(rng.normal(size=(1, 4, 3, 4)))).astype(np.float32) for _ in range(3))
    result = model_view(
        encoder_attention=enc, decoder_attention=dec, cross_attention=cross,
        encoder_tokens=["a", "b", "c", "</s>"], decoder_tokens=["<pad>", "x", "y"],
        include_layers=[-1], html_action="return",
    )
    header = header_of(result.data)
    assert all(section["layers"] == [2] for section in header["sections"].values())


@pytest.mark.parametrize("other", ["encoder_attention", "decoder_attention", "cross_attention", "encoder_tokens", "decoder_tokens"])
def test_attention_with_encoder_decoder_arguments_names_both(other):
    # BertViz: "If you specify 'attention' you may not specify any encoder-decoder arguments."
    value = TOKENS if other.endswith("tokens") else attention()
    with pytest.raises(InputError, match=rf"attention and {other} were both given"):
        head_view(attention(), TOKENS, **{other: value}, html_action="return")
    with pytest.raises(InputError, match=rf"attention and {other} were both given \(pass attention"):
        model_view(attention(), TOKENS, **{other: value}, html_action="return")
    with pytest.raises(InputError, match="attention and encoder_attention, encoder_tokens were both given"):
        model_view(attention(), TOKENS, encoder_attention=attention(), encoder_tokens=TOKENS, html_action="return")


# -- item 5: docs/api.md examples run ------------------------------------------------------------
HUB_TO_TINY = {"bert-base-uncased": "bert", "gpt2": "gpt2", "roberta-base": "roberta", "Helsinki-NLP/opus-mt-en-de": "marian"}


def api_doc_blocks() -> list[str]:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    notebooks = text.split("\n## Notebooks", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", notebooks, re.S)


def test_api_doc_documents_every_notebook_function():
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    notebooks = text.split("\n## Notebooks", 1)[1].split("\n## ", 1)[0]
    for name in ("figure", "head_view", "model_view", "neuron_view", "neuron_view.show"):
        assert f"### `attndocs.{name}`" in notebooks, name
    for argument in ("sentence_b_start", "prettify_tokens", "include_layers", "include_heads", "display_mode",
                     "html_action", "encoder_attention", "cross_attention", "model_type", "sentence_a"):
        assert f"`{argument}`" in notebooks, argument
    assert len(api_doc_blocks()) >= 5


def test_api_doc_examples_run(tiny_model_dir, tmp_path, monkeypatch, shown):
    """Every python block of docs/api.md's Notebooks section, with hub ids swapped for tiny local models."""
    monkeypatch.chdir(tmp_path)
    blocks = api_doc_blocks()
    for code in blocks:
        for hub, family in HUB_TO_TINY.items():
            code = code.replace(f'"{hub}"', repr(str(tiny_model_dir(family))))
        assert "https://" not in code
        namespace: dict = {"__name__": "api_doc_example"}
        exec(compile(code, "docs/api.md", "exec"), namespace)  # noqa: S102 - our own documentation
    assert shown, "the examples display figures"
    for html in shown:
        assert "data-attndocs-view=" in html
