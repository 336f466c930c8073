"""Neuron-view capture: every family's query/key vectors reproduce the model's attention, or say why not."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tiny_models import FAMILIES, FAMILY_KIND, HEAD_DIM, LLAMA_KV_HEADS, NUM_HEADS, NUM_LAYERS

from attndocs.extract.neuron import ADAPTERS, SectionQK, SectionTensors, check_section, neuron_capture, self_check

TOLERANCE = 1e-4
TEXTS = ("The cat sat on the mat, and the dog lay on the rug.", "Some heads follow the previous word; others jump.")
TARGETS = ("The encoder reads the source, the decoder writes.", "A small bird sang in the old tree outside.")
SECTIONS_OF_KIND = {"encoder": ["encoder"], "decoder": ["decoder"], "encoder-decoder": ["encoder", "decoder", "cross"]}


# -- helpers ---------------------------------------------------------------------------------------
def _ids(tokenizer: Any, texts: tuple[str, ...]) -> Any:
    """A batch of unpadded token ids: each text tokenized alone, all cut to the shortest length."""
    import torch

    rows = [tokenizer(text)["input_ids"] for text in texts]
    length = min(len(row) for row in rows)
    return torch.tensor([row[:length] for row in rows])


def _attentions(outputs: Any, kind: str) -> dict[str, np.ndarray]:
    """The model's own attention per section, [B, L, H, rows, cols]."""
    import torch

    if kind == "encoder-decoder":
        parts = {
            "encoder": outputs.encoder_attentions,
            "decoder": outputs.decoder_attentions,
            "cross": outputs.cross_attentions,
        }
    else:
        parts = {kind: outputs.attentions}
    return {name: torch.stack(layers, dim=1).numpy() for name, layers in parts.items()}


def _run(model: Any, inputs: dict[str, Any], kind: str) -> tuple[dict[str, SectionQK], dict[str, np.ndarray]]:
    import torch

    capture = neuron_capture(model)
    assert capture.reason is None, capture.reason
    # inference_mode, as the extraction runs it: the hooks must work without autograd.
    with torch.inference_mode(), capture:
        outputs = model(**inputs, output_attentions=True)
    assert capture.errors == {}
    return capture.sections(), _attentions(outputs, kind)


def _tensors(section: SectionQK) -> SectionTensors:
    """A numpy section as the tensors extraction checks (its bias is the same for every text)."""
    import torch

    bias = section.bias
    layers = section.query.shape[1]
    biases = [
        None if bias is None else torch.from_numpy(np.ascontiguousarray(bias[0, layer][None]))
        for layer in range(layers)
    ]
    return SectionTensors(
        torch.from_numpy(np.ascontiguousarray(section.query)),
        torch.from_numpy(np.ascontiguousarray(section.key)),
        biases,
        section.scale,
        section.causal,
    )


def _worst_error(section: SectionQK, attention: np.ndarray) -> float:
    """The self-check over every text of the batch, twice: numpy's float64 reference, text by text, and the
    float32 torch check extraction runs, over the whole batch. They must agree."""
    import torch

    reference = max(
        self_check(
            attention[b],
            section.query[b],
            section.key[b],
            None if section.bias is None else section.bias[b],
            section.scale,
            section.causal,
        )
        for b in range(attention.shape[0])
    )
    checked = check_section(torch.from_numpy(attention), _tensors(section))
    assert len(checked) == attention.shape[0]
    assert max(checked) == pytest.approx(reference, abs=1e-5), (checked, reference)
    return max(reference, *checked)


def _hook_count(model: Any) -> int:
    """How many of attndocs' hooks are installed (transformers installs hooks of its own on first use)."""
    hooks = [h for m in model.modules() for h in (*m._forward_hooks.values(), *m._forward_pre_hooks.values())]
    return sum(getattr(h, "__module__", "").startswith("attndocs.") for h in hooks)


def _load_tiny(family: str, folder: Path) -> Any:
    import transformers

    cls = transformers.EncoderDecoderModel if family == "bert2bert" else transformers.AutoModel
    return cls.from_pretrained(folder, attn_implementation="eager").eval()


def _tiny_inputs(family: str, folder: Path) -> dict[str, Any]:
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    inputs = {"input_ids": _ids(tokenizer, TEXTS)}
    if FAMILY_KIND[family] == "encoder-decoder":
        inputs["decoder_input_ids"] = _ids(tokenizer, TARGETS)
    return inputs


# -- self_check on its own (numpy only) ------------------------------------------------------------
def test_self_check_reproduces_a_hand_computed_softmax() -> None:
    # One layer, one head, two tokens, d = 2: q = k = identity, so q.k = identity.
    eye = np.eye(2, dtype=np.float32)[None, None]
    e = math.e
    plain = np.array([[e / (e + 1), 1 / (e + 1)], [1 / (e + 1), e / (e + 1)]], np.float32)[None, None]
    assert self_check(plain, eye, eye, None, 1.0, False) < 1e-7
    # Causal: row 0 sees only itself; row 1 is unchanged.
    causal = np.array([[1.0, 0.0], [1 / (e + 1), e / (e + 1)]], np.float32)[None, None]
    assert self_check(causal, eye, eye, None, 1.0, True) < 1e-7
    # Scale 2 and a bias of -2 on the diagonal cancel the identity: uniform attention.
    bias = np.array([[-2.0, 0.0], [0.0, -2.0]], np.float32)[None, None]
    assert self_check(np.full((1, 1, 2, 2), 0.5, np.float32), eye, eye, bias, 2.0, False) < 1e-7
    # The error is the largest absolute difference, not a pass/fail flag.
    off = plain.copy()
    off[0, 0, 1] += [-0.125, 0.125]
    assert self_check(off, eye, eye, None, 1.0, False) == pytest.approx(0.125, abs=1e-6)
    assert self_check(plain, eye, eye, None, 1.0, True) == pytest.approx(1 / (e + 1), abs=1e-6)


def test_self_check_causal_mask_aligns_the_last_query_with_the_last_key() -> None:
    # Three keys, two queries: query i sees keys 0..i+1 (the queries are the last two positions).
    query = np.zeros((1, 1, 2, 4), np.float32)
    key = np.zeros((1, 1, 3, 4), np.float32)
    attention = np.array([[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]], np.float32)[None, None]
    assert self_check(attention, query, key, None, 0.5, True) < 1e-7


def test_self_check_never_passes_on_mismatched_or_broken_input() -> None:
    rng = np.random.default_rng(0)
    query, key = rng.normal(size=(2, 3, 5, 4)), rng.normal(size=(2, 3, 5, 4))
    attention = np.full((2, 3, 5, 5), 0.2)
    assert self_check(attention, query[:1], key, None, 0.5, False) == math.inf  # a layer missing
    assert self_check(attention, query, key[..., :3], None, 0.5, False) == math.inf  # head sizes differ
    assert self_check(attention, query, key, np.zeros((2, 3, 5, 4)), 0.5, False) == math.inf  # bias shape
    broken = attention.copy()
    broken[1, 2, 3, 4] = np.nan
    assert self_check(broken, query, key, None, 0.5, False) == math.inf


def test_importing_the_package_does_not_import_torch() -> None:
    code = "import sys, attndocs.extract.neuron; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


# -- every tiny family ---------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_family_vectors_reproduce_every_section(family: str, tiny_model_dir: Any) -> None:
    folder = tiny_model_dir(family)
    model = _load_tiny(family, folder)
    inputs = _tiny_inputs(family, folder)
    kind = FAMILY_KIND[family]
    sections, attentions = _run(model, inputs, kind)

    assert list(sections) == SECTIONS_OF_KIND[kind]
    for name, section in sections.items():
        attention = attentions[name]
        batch, layers, heads, rows, cols = attention.shape
        assert (batch, layers, heads) == (2, NUM_LAYERS, NUM_HEADS)
        assert section.query.shape == (batch, layers, heads, rows, HEAD_DIM)
        assert section.key.shape == (batch, layers, heads, cols, HEAD_DIM)
        assert section.query.dtype == section.key.dtype == np.float32
        assert section.causal == (name == "decoder")
        if family == "t5" and name != "cross":
            assert section.bias is not None and section.bias.shape == attention.shape
        else:
            assert section.bias is None
        assert section.scale == (1.0 if family == "t5" else pytest.approx(HEAD_DIM**-0.5))
        assert _worst_error(section, attention) <= TOLERANCE, (family, name)
    if "cross" in sections:  # the keys of cross attention are the encoder positions
        assert sections["cross"].key.shape[3] == sections["encoder"].key.shape[3]
    assert _hook_count(model) == 0


def test_t5_position_bias_is_shared_by_the_layers_of_a_stack_and_causal_in_the_decoder(tiny_model_dir: Any) -> None:
    folder = tiny_model_dir("t5")
    sections, attentions = _run(_load_tiny("t5", folder), _tiny_inputs("t5", folder), "encoder-decoder")
    encoder, decoder = sections["encoder"].bias, sections["decoder"].bias
    assert encoder is not None and decoder is not None
    np.testing.assert_array_equal(encoder[:, 0], encoder[:, 1])
    np.testing.assert_array_equal(encoder[0], encoder[1])
    # The decoder buckets only distinguish distances backwards: every future key shares one bucket.
    rows = decoder.shape[3]
    future = decoder[0, 0, 0][np.triu_indices(rows, k=1)]
    assert np.all(future == future[0])
    # Without the bias the vectors alone do not reproduce T5's attention.
    no_bias = SectionQK(sections["encoder"].query, sections["encoder"].key, None, 1.0, False)
    assert _worst_error(no_bias, attentions["encoder"]) > 1e-2


@pytest.mark.parametrize(
    "options",
    [
        {"scale_attn_by_inverse_layer_idx": True},
        {"scale_attn_by_inverse_layer_idx": True, "reorder_and_upcast_attn": True},
        {"scale_attn_weights": False},
    ],
    ids=["inverse-layer-idx", "reorder-and-upcast", "unscaled"],
)
def test_gpt2_scaling_options(options: dict[str, bool], tiny_model_dir: Any) -> None:
    import transformers

    folder = tiny_model_dir("gpt2")
    model = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager", **options).eval()
    sections, attentions = _run(model, _tiny_inputs("gpt2", folder), "decoder")
    section = sections["decoder"]
    assert section.scale == pytest.approx(HEAD_DIM**-0.5 if options.get("scale_attn_weights", True) else 1.0)
    assert _worst_error(section, attentions["decoder"]) <= TOLERANCE


def test_encoder_decoder_of_two_families_with_gpt2_cross_attention(tiny_model_dir: Any) -> None:
    import torch
    import transformers

    model = transformers.EncoderDecoderModel.from_encoder_decoder_pretrained(
        str(tiny_model_dir("bert")),
        str(tiny_model_dir("gpt2")),
        encoder_attn_implementation="eager",
        decoder_attn_implementation="eager",
    ).eval()
    inputs = {
        "input_ids": torch.arange(5, 16)[None].repeat(2, 1),
        "decoder_input_ids": torch.arange(7, 14)[None].repeat(2, 1),
    }
    inputs["decoder_input_ids"][1] = inputs["decoder_input_ids"][1].flip(0)
    sections, attentions = _run(model, inputs, "encoder-decoder")
    assert list(sections) == ["encoder", "decoder", "cross"]
    for name, section in sections.items():
        assert _worst_error(section, attentions[name]) <= TOLERANCE, name


# -- every other model type an adapter claims, from small random configs -------------------------
_SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}
_ROPE = {**_SMALL, "num_key_value_heads": 2, "initializer_range": 0.2}
_SEQ2SEQ = {
    "d_model": 32,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_attention_heads": 4,
    "decoder_attention_heads": 4,
    "encoder_ffn_dim": 64,
    "decoder_ffn_dim": 64,
    "init_std": 0.2,
}
EXTRA_MODEL_TYPES: dict[str, tuple[str, dict[str, Any]]] = {
    "xlm-roberta": ("encoder", {**_SMALL, "initializer_range": 0.2}),
    "mistral": ("decoder", _ROPE),
    "qwen2": ("decoder", _ROPE),
    "qwen3": ("decoder", {**_ROPE, "head_dim": 8}),
    # Sliding windows (4 < 12 tokens), partial rotary, Gemma's scalar and q/k norms: tests/test_neuron_rotary.py.
    "phi3": ("decoder", {**_ROPE, "sliding_window": 4, "partial_rotary_factor": 0.5, "pad_token_id": 0}),
    "gemma2": ("decoder", {**_ROPE, "head_dim": 8, "sliding_window": 4, "attn_logit_softcapping": None}),
    "gemma3_text": ("decoder", {**_ROPE, "head_dim": 8, "sliding_window": 4}),
    # Fused q|k|v per head, partial rotary, multi-query, ALiBi biases: tests/test_neuron_alibi.py.
    "gpt_neox": ("decoder", {**_SMALL, "initializer_range": 0.2}),
    "opt": ("decoder", {**_SMALL, "ffn_dim": 64, "word_embed_proj_dim": 32, "init_std": 0.2}),
    "bloom": ("decoder", {"hidden_size": 32, "n_layer": 2, "n_head": 4, "initializer_range": 0.2}),
    "falcon": ("decoder", {**_SMALL, "ffn_hidden_size": 64, "alibi": True, "initializer_range": 0.2}),
    "mpt": ("decoder", {"d_model": 32, "n_layers": 2, "n_heads": 4, "max_seq_len": 16, "initializer_range": 0.2}),
    "mt5": (
        "encoder-decoder",
        {"d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4, "initializer_factor": 1.0},
    ),
    "mbart": ("encoder-decoder", _SEQ2SEQ),
    # Layer 0 global, layer 1 local (window 2 < 12 tokens); see tests/test_neuron_encoders.py.
    "modernbert": (
        "encoder",
        {
            **_SMALL,
            "global_attn_every_n_layers": 2,
            "local_attention": 4,
            "pad_token_id": 0,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "cls_token_id": 1,
            "sep_token_id": 2,
        },
    ),
    # Without relative attention (the config's default): plain q.k; the disentangled case is withheld.
    "deberta-v2": ("encoder", _SMALL),
}


def test_every_adapted_model_type_is_tested() -> None:
    tiny = set(FAMILIES) - {"bert2bert"}  # each tiny family is named by its model type; bert2bert is two berts
    assert set(ADAPTERS) == tiny | set(EXTRA_MODEL_TYPES)


@pytest.mark.parametrize("model_type", sorted(EXTRA_MODEL_TYPES))
def test_other_adapted_model_types_reproduce_every_section(model_type: str) -> None:
    import torch
    import transformers

    kind, sizes = EXTRA_MODEL_TYPES[model_type]
    config = transformers.AutoConfig.for_model(model_type, vocab_size=96, **sizes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = transformers.AutoModel.from_config(config, attn_implementation="eager").eval()
        inputs = {"input_ids": torch.randint(4, 96, (2, 12))}
        if kind == "encoder-decoder":
            inputs["decoder_input_ids"] = torch.randint(4, 96, (2, 9))
    sections, attentions = _run(model, inputs, kind)
    assert list(sections) == SECTIONS_OF_KIND[kind]
    for name, section in sections.items():
        assert section.query.shape[:3] == (2, 2, 4) and section.key.shape[:3] == (2, 2, 4)
        assert _worst_error(section, attentions[name]) <= TOLERANCE, name


# -- the check catches wrong vectors --------------------------------------------------------------
def test_llama_keys_without_rotary_or_with_misordered_shared_heads_fail_the_check(tiny_model_dir: Any) -> None:
    import torch

    folder = tiny_model_dir("llama")
    model = _load_tiny("llama", folder)
    inputs = _tiny_inputs("llama", folder)
    raw: dict[str, list[Any]] = {"q": [], "k": []}
    handles = []
    for layer in model.layers:
        handles.append(layer.self_attn.q_proj.register_forward_hook(lambda m, a, out: raw["q"].append(out)))
        handles.append(layer.self_attn.k_proj.register_forward_hook(lambda m, a, out: raw["k"].append(out)))
    try:
        sections, attentions = _run(model, inputs, "decoder")
    finally:
        for handle in handles:
            handle.remove()
    section, attention = sections["decoder"], attentions["decoder"]
    assert _worst_error(section, attention) <= TOLERANCE

    groups = NUM_HEADS // LLAMA_KV_HEADS

    # The projections as they came out, before rotation: [B, L, H, n, d].
    def heads(outputs: list[Any]) -> np.ndarray:
        return torch.stack([o.reshape(*o.shape[:2], -1, HEAD_DIM).transpose(1, 2) for o in outputs], 1).numpy()

    unrotated = SectionQK(heads(raw["q"]), heads(raw["k"]).repeat(groups, axis=2), None, section.scale, True)
    assert _worst_error(unrotated, attention) > 1e-2
    # Shared key heads tiled ([k0, k1, k0, k1]) instead of repeated ([k0, k0, k1, k1]).
    shared = section.key[:, :, ::groups]
    tiled = SectionQK(section.query, np.tile(shared, (1, 1, groups, 1, 1)), None, section.scale, True)
    assert _worst_error(tiled, attention) > 1e-2


def test_a_failing_hook_drops_its_section_and_never_breaks_the_forward_pass(tiny_model_dir: Any) -> None:
    import torch

    folder = tiny_model_dir("bart")
    model = _load_tiny("bart", folder)
    capture = neuron_capture(model)

    def broken(site: Any, query: Any, key: Any, kwargs: dict[str, Any]) -> Any:
        raise RuntimeError("adapter bug")

    decoder_sites = [site for site in capture.sites if site.section == "decoder"]
    decoder_sites[1].transform = broken
    with torch.inference_mode(), capture:
        outputs = model(**_tiny_inputs("bart", folder), output_attentions=True)
    assert len(outputs.decoder_attentions) == NUM_LAYERS
    assert set(capture.sections()) == {"encoder", "cross"}
    assert "adapter bug" in capture.errors["decoder"]
    assert _hook_count(model) == 0


def test_hooks_are_removed_when_the_forward_pass_raises(tiny_model_dir: Any) -> None:
    import torch

    model = _load_tiny("bert", tiny_model_dir("bert"))
    capture = neuron_capture(model)
    with pytest.raises(IndexError), capture:
        assert _hook_count(model) > 0
        model(input_ids=torch.tensor([[10_000]]))
    assert _hook_count(model) == 0


# -- the tensors extraction checks and moves ---------------------------------------------------------
def test_tensors_stay_float32_on_the_model_device_and_each_pass_gets_its_own(tiny_model_dir: Any) -> None:
    import torch

    folder = tiny_model_dir("llama")
    model = _load_tiny("llama", folder)
    inputs = _tiny_inputs("llama", folder)
    capture = neuron_capture(model)
    with torch.inference_mode(), capture:
        outputs = model(**inputs, output_attentions=True)
    first = capture.tensors()["decoder"]
    assert first.query.dtype == first.key.dtype == torch.float32 and first.query.device.type == "cpu"
    assert first.biases == [None] * NUM_LAYERS and first.host_bias() is None
    # Key heads are repeated on the device, as the record stores them.
    assert first.key.shape[2] == NUM_HEADS and torch.equal(first.key[:, :, 0], first.key[:, :, 1])
    attention = torch.stack(outputs.attentions, dim=1)
    assert max(check_section(attention, first)) <= TOLERANCE
    assert max(check_section(list(outputs.attentions), first)) <= TOLERANCE  # a tuple of layers works as well
    numpy = capture.sections()["decoder"]
    np.testing.assert_array_equal(numpy.query, first.query.numpy())
    kept = first.query.clone()
    with torch.inference_mode(), capture:
        model(input_ids=inputs["input_ids"].flip(1))
    assert torch.equal(first.query, kept)  # a later pass writes new buffers, never the ones handed out
    assert not torch.equal(capture.tensors()["decoder"].query, kept)


def test_t5_bias_crosses_to_the_host_once_per_stack(tiny_model_dir: Any) -> None:
    import torch

    folder = tiny_model_dir("t5")
    model = _load_tiny("t5", folder)
    capture = neuron_capture(model)
    with torch.inference_mode(), capture:
        model(**_tiny_inputs("t5", folder), output_attentions=True)
    tensors = capture.tensors()
    encoder = tensors["encoder"]
    assert all(bias is encoder.biases[0] for bias in encoder.biases)  # one tensor for the whole stack
    host = encoder.host_bias()
    assert host is not None and host.shape == (NUM_LAYERS, NUM_HEADS, *encoder.query.shape[3:4], encoder.key.shape[3])
    np.testing.assert_array_equal(host[0], encoder.biases[0].numpy()[0])
    assert tensors["cross"].host_bias() is None


def test_check_section_never_passes_on_mismatched_or_broken_input(tiny_model_dir: Any) -> None:
    import torch

    folder = tiny_model_dir("bert")
    model = _load_tiny("bert", folder)
    capture = neuron_capture(model)
    with torch.inference_mode(), capture:
        outputs = model(**_tiny_inputs("bert", folder), output_attentions=True)
    section = capture.tensors()["encoder"]
    attention = torch.stack(outputs.attentions, dim=1)
    assert max(check_section(attention, section)) <= TOLERANCE
    assert check_section(attention[:, :1], section) == [math.inf, math.inf]  # a layer missing
    assert check_section(attention[..., :-1], section) == [math.inf, math.inf]  # a key position missing
    broken = attention.clone()
    broken[1, 1, 2, 3, 0] = float("nan")
    errors = check_section(broken, section)
    assert errors[0] <= TOLERANCE and errors[1] == math.inf  # only the text that has it fails
    shifted = attention.clone()
    shifted[0, 0, 0, 0] += 0.01
    assert check_section(shifted, section)[0] == pytest.approx(0.01, abs=1e-6)


@pytest.mark.parametrize("family", ["bert", "llama", "t5"])
def test_check_section_on_long_texts_compares_rows_spread_over_the_text(
    tiny_model_dir: Any, family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past CHECK_ROWS query rows the check compares that many, first and last included: a correct capture
    still passes (causal masks and T5's bias taken row by row), a wrong last row still fails, and a
    non-finite query vector fails its text even on a row not compared."""
    import torch

    from attndocs.extract import neuron

    folder = tiny_model_dir(family)
    model = _load_tiny(family, folder)
    sections, attentions = _run(model, _tiny_inputs(family, folder), FAMILY_KIND[family])
    monkeypatch.setattr(neuron, "CHECK_ROWS", 3)
    for name, section in sections.items():
        attention = attentions[name]
        rows = attention.shape[3]
        assert rows > 3
        assert max(check_section(torch.from_numpy(attention), _tensors(section))) <= TOLERANCE, name
        wrong = attention.copy()
        wrong[0, -1, 0, -1] = np.roll(wrong[0, -1, 0, -1], 1)  # the last row of the last layer, text 0
        errors = check_section(torch.from_numpy(wrong), _tensors(section))
        assert errors[0] > 1e-3 and errors[1] <= TOLERANCE, (name, errors)
        broken = _tensors(section)
        broken.query[1, 0, 0, rows // 2 + 1, 0] = float("nan")  # a row between the three compared
        assert check_section(torch.from_numpy(attention), broken)[1] == math.inf, name


# -- models without an adapter say so --------------------------------------------------------------
def _assert_unavailable(model: Any, inputs: dict[str, Any], *words: str) -> None:
    import torch

    capture = neuron_capture(model)
    assert capture.reason is not None
    for word in words:
        assert word in capture.reason
    with torch.inference_mode(), capture:
        assert _hook_count(model) == 0  # nothing installed
        model(**inputs)
    assert capture.sections() == {}


def test_a_model_type_without_adapter_reports_it() -> None:
    import torch
    import transformers

    config = transformers.GPTJConfig(
        vocab_size=64, n_embd=32, n_layer=2, n_head=4, rotary_dim=4, bos_token_id=0, eos_token_id=0
    )
    model = transformers.AutoModel.from_config(config, attn_implementation="eager").eval()
    _assert_unavailable(model, {"input_ids": torch.arange(4, 12)[None]}, "no neuron adapter for model type 'gptj'")


def test_a_plain_module_without_a_transformers_config_reports_it(tiny_model_dir: Any) -> None:
    import torch

    class Wrapper(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any) -> Any:
            return self.inner(input_ids=input_ids)

    wrapper = Wrapper(_load_tiny("bert", tiny_model_dir("bert")))
    _assert_unavailable(wrapper, {"input_ids": torch.arange(5, 12)[None]}, "Wrapper", "no transformers config")


def test_a_known_model_type_with_custom_attention_modules_reports_it(tiny_model_dir: Any) -> None:
    import torch

    model = _load_tiny("bert", tiny_model_dir("bert"))

    class CustomSelfAttention(torch.nn.Module):
        """A stand-in for attention code the adapter has never seen (here: a uniform average)."""

        def forward(self, hidden_states: Any, attention_mask: Any = None, **kwargs: Any) -> Any:
            n = hidden_states.shape[1]
            weights = torch.full((hidden_states.shape[0], 1, n, n), 1.0 / n)
            return weights[:, 0] @ hidden_states, weights

    for layer in model.encoder.layer:
        layer.attention.self = CustomSelfAttention()
    _assert_unavailable(model, {"input_ids": torch.arange(5, 12)[None]}, "found none", "'bert'")


def test_relative_position_scores_are_refused(tiny_model_dir: Any) -> None:
    import torch

    model = _load_tiny("bert", tiny_model_dir("bert"))
    # transformers 4.x keeps this on the attention module and adds a learned term to q.k; q.k alone is wrong.
    model.encoder.layer[1].attention.self.position_embedding_type = "relative_key"
    _assert_unavailable(model, {"input_ids": torch.arange(5, 12)[None]}, "relative_key")


# -- the bundled real models -----------------------------------------------------------------------
def _real(name: str) -> Any:
    from attndocs.models import load_model, resolve_model

    return load_model(resolve_model(name))


@pytest.mark.real
@pytest.mark.parametrize("pair", [False, True], ids=["single", "pair"])
def test_minilm_vectors_reproduce_its_attention(pair: bool) -> None:
    loaded = _real("minilm")
    text = "The animal didn't cross the street because it was too tired."
    encoded = (
        loaded.tokenizer(text, "It slept under a tree.", return_tensors="pt")
        if pair
        else loaded.tokenizer(text, return_tensors="pt")
    )
    sections, attentions = _run(loaded.model, dict(encoded), "encoder")
    section = sections["encoder"]
    assert section.query.shape == (1, 6, 12, encoded["input_ids"].shape[1], 32)
    assert _worst_error(section, attentions["encoder"]) <= TOLERANCE


@pytest.mark.real
def test_smollm2_vectors_reproduce_its_attention_with_rotary_and_shared_key_heads() -> None:
    loaded = _real("smollm2")
    texts = (
        "The animal didn't cross the street because it was too tired. It slept all afternoon under an old tree.",
        "Documentation is easier to trust when its figures are computed from the real model, not drawn by hand.",
    )
    inputs = {"input_ids": _ids(loaded.tokenizer, texts)}
    sections, attentions = _run(loaded.model, inputs, "decoder")
    section, attention = sections["decoder"], attentions["decoder"]
    # 30 layers, 9 query heads (3 shared key heads, repeated), head size 64.
    assert section.query.shape[1:3] == (30, 9) and section.key.shape[1:3] == (30, 9) and section.key.shape[-1] == 64
    assert _worst_error(section, attention) <= TOLERANCE
    tiled = SectionQK(section.query, np.tile(section.key[:, :, ::3], (1, 1, 3, 1, 1)), None, section.scale, True)
    assert _worst_error(tiled, attention) > 1e-2


@pytest.mark.real
def test_bert2bert_minilm_vectors_reproduce_every_section() -> None:
    loaded = _real("bert2bert-minilm")
    inputs = {
        "input_ids": loaded.tokenizer("The cat sat on the mat.", return_tensors="pt")["input_ids"],
        "decoder_input_ids": loaded.tokenizer("A cat on a mat.", return_tensors="pt")["input_ids"],
    }
    sections, attentions = _run(loaded.model, inputs, "encoder-decoder")
    assert list(sections) == ["encoder", "decoder", "cross"]
    for name, section in sections.items():
        assert _worst_error(section, attentions[name]) <= TOLERANCE, name
