"""Run a loaded model on texts and turn its attention into AttentionRecords.

Encoder models give one ``encoder`` section, decoder-only models one causal ``decoder``
section, encoder-decoder models ``encoder``, ``decoder`` and ``cross``. Texts of equal
token length run as one batch: no padding means every number equals a single run's.
"""

from __future__ import annotations

import inspect
import os
import platform
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import __version__
from ..errors import AttndocsError, ExecError, InputError, ModelError
from ..record import AttentionRecord, Section, Side
from .neuron.base import float32_buffer
from .tokens import display_tokens, token_style

NEURON_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ExtractRequest:
    """One text (and optional pair / decoder text) to run through a model."""

    text: str
    text_b: str | None = None
    target: str | None = None
    qk: bool = False
    max_tokens: int | None = None
    # New tokens the model writes after the text before the attention is read (generate.py);
    # sampled from torch's generator seeded with ``seed`` when one is given, else greedy.
    generate: int | None = None
    seed: int | None = None
    temperature: float | None = None
    # An image for a vision encoder to read instead of the text (attndocs.vision.ImageInput).
    image: Any = None


@dataclass
class _Encoded:
    inputs: dict[str, Any]  # tensors with a leading batch dimension of 1
    sides: dict[str, Side]
    length_key: tuple[int, ...]
    generation: dict[str, Any] | None = None  # the record's generation metadata (generate.py)
    image: dict[str, Any] | None = None  # the record's image metadata before the forward pass (vision.py)


def check_request(kind: str, model_name: str, request: ExtractRequest) -> None:
    """Reject texts and option combinations the model cannot take, before any computation."""
    if request.image is not None:
        if kind != "encoder":
            raise InputError(f"option image needs a vision encoder, but '{model_name}' is a{'n' if kind[0] == 'e' else ''} {kind} model", "use a ViT or DeiT model, or remove image")
        return  # the text options were refused with the figure's options (vision.check_options)
    if not request.text or not request.text.strip():
        raise InputError("the figure's text is empty", "write the text the model should read as the block's content")
    if request.text_b is not None and not request.text_b.strip():
        raise InputError("text-b is empty", "remove the text-b option or give it a sentence")
    if request.text_b is not None and kind == "decoder":
        raise InputError(
            f"text-b needs an encoder model, but '{model_name}' is a decoder-only model",
            "remove text-b, or use an encoder model such as minilm",
        )
    if request.target is not None and kind != "encoder-decoder":
        raise InputError(
            f"target needs an encoder-decoder model, but '{model_name}' is a{'n' if kind == 'encoder' else ''} {kind} model",
            "remove target, or use an encoder-decoder model such as bert2bert-minilm",
        )
    if request.generate is not None and kind == "encoder":
        raise InputError(
            f"generate needs a model that writes text, but '{model_name}' is an encoder model",
            "remove generate, or use a decoder model such as smollm2 or an encoder-decoder model",
        )
    if request.generate is not None and kind == "encoder-decoder" and request.target is not None and not request.target.strip():
        raise InputError("target is empty", "remove target to generate from the decoder's start token, or give the decoder's first words")
    if kind == "encoder-decoder" and request.generate is None and (request.target is None or not request.target.strip()):
        raise InputError(
            f"'{model_name}' is an encoder-decoder model and needs the decoder text",
            "give it with the target option",
        )


def extract(loaded: Any, requests: Sequence[ExtractRequest], batch_size: int = 0) -> list[AttentionRecord | AttndocsError]:
    """Records for ``requests`` in order; a request that fails gets its error instead.

    ``batch_size`` 0 means automatic: 1 on CPU, 8 on a GPU. A batched forward pass rounds
    differently (about 1e-6 here), so a record would depend on which texts shared its batch;
    single runs keep every record a pure function of its cache key, which is what CPU builds
    get by default.
    """
    if batch_size <= 0:
        batch_size = 1 if str(loaded.device) == "cpu" else 8
    results: list[AttentionRecord | AttndocsError | None] = [None] * len(requests)
    encoded: dict[int, _Encoded] = {}
    for i, request in enumerate(requests):
        try:
            check_request(loaded.ref.kind, loaded.ref.short, request)
            from ..vision import check_reader

            check_reader(loaded, request.image)  # an image figure needs a vision model, a text figure a text model
            if request.image is not None:
                from ..vision import encode as encode_image

                inputs, image = encode_image(loaded, request)
                shape = tuple(inputs["pixel_values"].shape)
                encoded[i] = _Encoded(inputs=inputs, sides={}, length_key=("image", *shape), image=image)
            elif request.generate is not None:
                from .generate import encode_generated  # the model writes first, then is read like any text

                encoded[i] = encode_generated(loaded, request)
            else:
                encoded[i] = _encode(loaded, request)
        except AttndocsError as exc:
            results[i] = exc
        except Exception as exc:  # a tokenizer that fails in its own way: this figure only
            results[i] = ExecError(f"model '{loaded.ref.short}' could not read the text: {exc}".splitlines()[0])
    # Same token lengths (and same Q/K wish) batch together without padding.
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, enc in encoded.items():
        groups[(enc.length_key, requests[i].qk)].append(i)
    batches = [
        (qk, members[start : start + batch_size])
        for (_, qk), members in groups.items()
        for start in range(0, len(members), batch_size)
    ]
    for qk, members in batches:
        try:
            records = _run_batch(loaded, [requests[i] for i in members], [encoded[i] for i in members], qk)
        except AttndocsError as exc:
            records = [exc] * len(members)
        for i, record in zip(members, records):
            results[i] = record
    return results  # type: ignore[return-value]


def extract_from_model(model: Any, tokenizer: Any, text: str, text_b: str | None = None, target: str | None = None, qk: bool = False) -> AttentionRecord:
    """A record for an already loaded transformers model (the notebook API's entry point)."""
    from ..models.load import LoadedModel
    from ..models.resolve import ModelRef, family_of, local_display_name

    config = model.config.to_dict()
    kind, model_type = family_of(config)
    name = getattr(model.config, "_name_or_path", "") or model_type
    if os.path.isabs(name) or name.startswith((".", "~")):
        name = local_display_name(name)  # a folder it was loaded from: its name, not the machine's path
    ref = ModelRef(name=name, model_id=name, revision="in-memory", source="local", kind=kind, model_type=model_type)
    _require_eager(model, name)
    device = str(next(model.parameters()).device)
    result = extract(LoadedModel(ref=ref, model=model, tokenizer=tokenizer, device=device), [ExtractRequest(text, text_b, target, qk)])[0]
    if isinstance(result, AttndocsError):
        raise result
    return result


def _require_eager(model: Any, name: str) -> None:
    impl = getattr(model.config, "_attn_implementation", None)
    if impl not in (None, "eager"):
        try:
            model.set_attn_implementation("eager")
        except Exception as exc:  # older transformers or a model that cannot switch
            raise ModelError(
                f"model '{name}' uses {impl} attention, which returns no attention weights",
                'load it with attn_implementation="eager"',
            ) from exc


# -- tokenisation ----------------------------------------------------------------------------
def _encode(loaded: Any, request: ExtractRequest) -> _Encoded:
    tok = loaded.tokenizer
    kind = loaded.ref.kind
    style = token_style(tok)
    try:
        if request.text_b is not None:
            enc = tok(request.text, request.text_b, return_tensors="pt")
        else:
            enc = tok(request.text, return_tensors="pt")
    except Exception as exc:
        raise ExecError(f"the tokenizer of '{loaded.ref.short}' failed on the text: {exc}") from exc
    ids = enc["input_ids"][0].tolist()
    if not ids:
        raise InputError("the text gives no tokens", "write some text the tokenizer understands")
    main_side = "decoder" if kind == "decoder" else "encoder"
    sides = {main_side: _side(tok, ids, style)}
    if request.text_b is not None:
        sides[main_side].text_b_start = _text_b_start(tok, enc, request.text, ids)
    params = inspect.signature(loaded.model.forward).parameters
    inputs = {k: v for k, v in enc.items() if k in params}
    if kind == "encoder-decoder":
        decoder_ids = _decoder_ids(loaded, request.target or "")
        sides["decoder"] = _side(tok, decoder_ids[0].tolist(), style)
        inputs["decoder_input_ids"] = decoder_ids
    positions = position_limits(loaded)
    for name, side in sides.items():
        # The model's own limit first: raising max-tokens cannot help a text past it, and
        # past it the forward pass fails with a tensor-size error that names no text.
        most = positions.get(name)
        if most is not None and len(side) > most:
            raise InputError(
                f"this model ({loaded.ref.short}) reads at most {most} tokens; the {_side_text(name, kind, request)} has {len(side)}",
                "shorten the text, or use a model that reads longer texts",
            )
    limit = request.max_tokens
    for name, side in sides.items():
        if limit is not None and len(side) > limit:
            what = "decoder text" if (name == "decoder" and kind == "encoder-decoder") else "text"
            raise InputError(
                f"the {what} has {len(side)} tokens, more than max-tokens ({limit})",
                "shorten the text or raise max-tokens",
            )
    return _Encoded(inputs=inputs, sides=sides, length_key=tuple(len(s) for s in sides.values()))


# Families whose positions are relative (T5's buckets, DeBERTa's spans) or rotary: no
# table of absolute positions to run past. Their max_position_embeddings, where there is
# one, is what they were trained at, not what they can read.
_RELATIVE_TYPES = frozenset({"t5", "mt5", "umt5", "longt5", "switch_transformers", "deberta", "deberta-v2", "transfo-xl", "xlnet"})
# Families that number positions from padding_idx + 1 (RoBERTa's scheme): a table of
# max_position_embeddings rows holds pad_token_id + 1 fewer tokens.
_PADDING_OFFSET_TYPES = frozenset(
    {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "roberta-prelayernorm", "data2vec-text", "ibert", "longformer", "mpnet", "markuplm", "lilt"}
)
# A tokenizer without a model_max_length reports a huge placeholder (int(1e30)).
_NO_LIMIT = 1_000_000


def _position_free(config: Any) -> bool:
    if getattr(config, "model_type", "") in _RELATIVE_TYPES:
        return True
    rotary = ("rope_parameters", "rope_theta", "rope_scaling", "rotary_dim", "rotary_pct", "partial_rotary_factor")
    if any(getattr(config, name, None) is not None for name in rotary):
        return True
    return "rotary" in str(getattr(config, "position_embedding_type", "") or "")


def _config_limit(config: Any) -> int | None:
    """How many positions one (sub)model's config allows, or None for relative or rotary positions."""
    if config is None or _position_free(config):
        return None
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            break
    else:
        return None
    if getattr(config, "model_type", "") in _PADDING_OFFSET_TYPES:
        pad = getattr(config, "pad_token_id", None)
        value -= (pad if isinstance(pad, int) else 1) + 1
    return value if value > 0 else None


def position_limits(loaded: Any) -> dict[str, int | None]:
    """The most tokens each side (``encoder``, ``decoder``) of the loaded model can read.

    Read from the config (max_position_embeddings, n_positions), per side for models built
    from two (EncoderDecoderModel); the tokenizer's model_max_length stands in where a
    model with absolute positions states none in its config. None where there is no
    such limit (relative or rotary positions).
    """
    config = loaded.model.config
    kind = loaded.ref.kind
    encoder_config = getattr(config, "encoder", None) or config
    decoder_config = getattr(config, "decoder", None) or config
    tokenizer_limit = getattr(loaded.tokenizer, "model_max_length", None)
    if not isinstance(tokenizer_limit, int) or tokenizer_limit <= 0 or tokenizer_limit >= _NO_LIMIT:
        tokenizer_limit = None

    def limit(sub: Any) -> int | None:
        found = _config_limit(sub)
        if found is None and not _position_free(sub):
            found = tokenizer_limit
        return found

    if kind == "decoder":
        return {"decoder": limit(config)}
    if kind == "encoder-decoder":
        return {"encoder": limit(encoder_config), "decoder": limit(decoder_config)}
    return {"encoder": limit(config)}


def _side_text(name: str, kind: str, request: ExtractRequest) -> str:
    """What a side holds, in the words of the figure's options."""
    if name == "decoder" and kind == "encoder-decoder":
        return "target"
    return "text with text-b" if request.text_b is not None else "text"


def _side(tok: Any, ids: list[int], style: str) -> Side:
    tokens = tok.convert_ids_to_tokens(ids)
    special_ids = set(tok.all_special_ids)
    special = [i in special_ids for i in ids]
    return Side(tokens=list(tokens), display=display_tokens(list(tokens), style, special), special=special)


def _text_b_start(tok: Any, enc: Any, text: str, ids: list[int]) -> int | None:
    """Index of the first token of text B."""
    try:
        sequence_ids = enc.sequence_ids(0)
    except (ValueError, AttributeError):  # slow tokenizers have no alignment
        sequence_ids = None
    if sequence_ids:
        for i, s in enumerate(sequence_ids):
            if s == 1:
                return i
    # Fallback: B starts after the longest shared prefix with text A alone, past special tokens.
    alone = tok(text)["input_ids"]
    prefix = 0
    while prefix < min(len(alone), len(ids)) and alone[prefix] == ids[prefix]:
        prefix += 1
    special_ids = set(tok.all_special_ids)
    for i in range(prefix, len(ids)):
        if ids[i] not in special_ids:
            return i
    return None


def decoder_start_id(loaded: Any, hint: str) -> int:
    """The token an encoder-decoder model's decoder starts from (its config's decoder start, else pad)."""
    config = loaded.model.config
    start = getattr(config, "decoder_start_token_id", None)
    if start is None:
        start = getattr(config, "pad_token_id", None)
    if start is None:
        raise ModelError(f"model '{loaded.ref.short}' has no decoder_start_token_id in its config", hint)
    return int(start)


def _decoder_ids(loaded: Any, target: str):
    """Decoder input ids as teacher forcing sees them: the target shifted right behind the start token."""
    tok = loaded.tokenizer
    if loaded.ref.model_type == "encoder-decoder":
        # bert2bert-style models: the tokenizer's [CLS] already is the decoder start token.
        return tok(target, return_tensors="pt")["input_ids"]
    labels = tok(text_target=target, return_tensors="pt")["input_ids"]
    shifted = labels.new_full(labels.shape, decoder_start_id(loaded, "set decoder_start_token_id in the model's config.json"))
    shifted[:, 1:] = labels[:, :-1]
    return shifted


# -- the forward pass --------------------------------------------------------------------------
def _run_batch(loaded: Any, requests: list[ExtractRequest], encoded: list[_Encoded], qk: bool) -> list[AttentionRecord]:
    import torch

    model = loaded.model
    batch = {key: torch.cat([e.inputs[key] for e in encoded]).to(loaded.device) for key in encoded[0].inputs}
    capture = None
    neuron_reason = "not requested"
    if qk:
        from .neuron import neuron_capture

        capture = neuron_capture(model)
        if capture.reason is not None:  # no adapter for this model: nothing to hook, the reason goes in the record
            neuron_reason, capture = capture.reason, None
    # Everything up to the host copies runs where the model ran (the GPU, when there is one): the
    # attention is stacked and the query/key vectors checked there, and only what the records keep
    # crosses to the host, once per array, after the checks, so nothing waits on a copy in between.
    with torch.inference_mode():
        try:
            if capture is not None:
                with capture:
                    outputs = model(**batch, output_attentions=True)
            else:
                outputs = model(**batch, output_attentions=True)
        except Exception as exc:
            raise ExecError(f"model '{loaded.ref.short}' failed: {exc}".splitlines()[0]) from exc
        stacked = _sections(loaded, outputs)
        # The model's own per-layer tensors go here: beside the stacked copy, there never are more
        # than two copies of the attention (on a CPU both are host memory), and from here on one.
        del outputs
        neurons: list[dict[str, Any]] = [{"available": False, "reason": neuron_reason} for _ in requests]
        kept: dict[str, _HostQK] = {}
        if capture is not None:
            captured = capture.tensors()
            checks, why = _check(stacked, captured, len(requests))
            capture_errors = {**capture.errors, **why}
            neurons = [_neuron_verdict(list(stacked), checks, b, capture_errors) for b in range(len(requests))]
            keep = [b for b, neuron in enumerate(neurons) if neuron["available"]]
            if keep:
                kept = {name: _HostQK.move(section, keep) for name, section in captured.items() if name in stacked}
            del captured
        host = {name: (_to_host(tensor), rows, cols, causal) for name, (tensor, rows, cols, causal) in stacked.items()}
        del stacked
    records = []
    for b, (request, enc) in enumerate(zip(requests, encoded)):
        record_sections = {
            name: Section(name=name, attention=np.ascontiguousarray(arr[b]), rows=rows, cols=cols, causal=causal)
            for name, (arr, rows, cols, causal) in host.items()
        }
        image = None
        if enc.image is not None:
            from ..vision import finish

            try:  # the tokens are named by grid position once the attention says how many there are
                side, image = finish(enc.image, record_sections["encoder"].attention, loaded.ref.short, request.max_tokens)
            except AttndocsError as exc:
                records.append(exc)
                continue
            enc.sides = {"encoder": side}
        if neurons[b]["available"]:
            for name, section in record_sections.items():
                kept[name].attach(section, b)
        records.append(
            AttentionRecord(
                model_id=loaded.ref.model_id,
                revision=loaded.ref.revision,
                model_type=loaded.ref.model_type,
                kind=loaded.ref.kind,
                text=request.text,
                text_b=request.text_b,
                target=request.target,
                sides=enc.sides,
                sections=record_sections,
                neuron=neurons[b],
                versions=library_versions(),
                extraction={"attn_implementation": "eager", "dtype": getattr(loaded, "dtype", "float32"), "qk": qk, "device": loaded.device},
                generation=enc.generation,
                image=image,
            )
        )
    return records


def _sections(loaded: Any, outputs: Any) -> dict[str, tuple[Any, str, str, bool]]:
    """Per section: the attention of every layer as one float32 ``[batch, layers, heads, rows, cols]`` tensor
    on the device the model ran on, and the section's rows side, cols side and causality."""
    kind = loaded.ref.kind
    if kind == "encoder-decoder":
        parts = {
            "encoder": (getattr(outputs, "encoder_attentions", None), "encoder", "encoder", False),
            "decoder": (getattr(outputs, "decoder_attentions", None), "decoder", "decoder", True),
            "cross": (getattr(outputs, "cross_attentions", None), "decoder", "encoder", False),
        }
    elif kind == "decoder":
        parts = {"decoder": (getattr(outputs, "attentions", None), "decoder", "decoder", True)}
    else:
        parts = {"encoder": (getattr(outputs, "attentions", None), "encoder", "encoder", False)}
    out = {}
    for name, (layers, rows, cols, causal) in parts.items():
        if not layers or any(a is None for a in layers):
            raise ModelError(
                f"model '{loaded.ref.short}' returned no {name} attention weights",
                "it may not support eager attention; try another model",
            )
        out[name] = (_stack(layers, loaded.ref.short, name), rows, cols, causal)
    return out


def _stack(layers: Sequence[Any], model_name: str, name: str) -> Any:
    """The layers copied into one float32 tensor on the first layer's device: one copy, cast on the way.

    With a device_map the layers may sit on several devices; each copy brings its layer over.
    """
    first = layers[0]
    shape = tuple(first.shape)
    if len(shape) != 4 or any(tuple(layer.shape) != shape for layer in layers):
        raise ModelError(
            f"model '{model_name}' returned {name} attention of unexpected shapes ({[tuple(a.shape) for a in layers][:3]} ...)",
            "it may not support eager attention; try another model",
        )
    out = float32_buffer((shape[0], len(layers), *shape[1:]), first.device)
    for index, layer in enumerate(layers):
        out[:, index].copy_(layer)
    return out


# Copies from a GPU land in page-locked (pinned) host memory. Into ordinary memory the driver
# stages every block through a pinned buffer of its own: on one H100 the float32 attention of the
# Llama-3-8B shape at 512 tokens (1.07 GB) took 0.55 s to cross that way, about 2 GB/s
# (benchmarks/gpu.py). torch keeps freed pinned blocks for the next record (its caching host
# allocator), so only the first figure of a size pays for pinning.
PINNED_COPY = True


def _to_host(tensor: Any) -> np.ndarray:
    """One copy to the host, into numpy's memory (none on a CPU: the array shares the tensor's memory)."""
    if tensor.device.type == "cpu":
        return tensor.detach().numpy()
    if PINNED_COPY and tensor.device.type == "cuda":
        import torch

        host = torch.empty(tuple(tensor.shape), dtype=torch.float32, pin_memory=True)
    else:
        host = float32_buffer(tuple(tensor.shape), "cpu")
    host.copy_(tensor)
    return host.numpy()


def _check(stacked: dict[str, tuple[Any, str, str, bool]], captured: dict[str, Any], batch: int) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Self-check errors per section and text, computed where the tensors are; and why a check could not run."""
    from .neuron import check_section

    checks: dict[str, list[float]] = {}
    why: dict[str, str] = {}
    for name, (attention, *_) in stacked.items():
        section = captured.get(name)
        if section is None:
            continue
        try:
            checks[name] = check_section(attention, section)
        except Exception as exc:  # e.g. out of device memory: this figure goes without its neuron view
            why[name] = f"the self-check failed: {type(exc).__name__}: {exc}".splitlines()[0]
    return checks, why


def _neuron_verdict(names: list[str], checks: dict[str, list[float]], b: int, capture_errors: dict[str, str]) -> dict[str, Any]:
    """Whether text ``b`` of the batch gets its query/key vectors: only if every section reproduces its attention."""
    errors = {}
    for name in names:
        if name not in checks:
            why = capture_errors.get(name)
            return {
                "available": False,
                "reason": f"no query/key vectors were captured for the {name} section" + (f": {why}" if why else ""),
            }
        err = checks[name][b]
        errors[name] = float(err)
        if not err <= NEURON_TOLERANCE:
            return {
                "available": False,
                "reason": f"the captured query/key vectors do not reproduce the {name} attention (max error {err:.2g} > {NEURON_TOLERANCE:g})",
            }
    return {"available": True, "reason": None, "max_error": errors}


@dataclass
class _HostQK:
    """One section's query/key vectors (and bias) on the host, for the texts of a batch that keep them."""

    query: np.ndarray  # [kept texts, L, H, rows, d]
    key: np.ndarray
    bias: np.ndarray | None  # [L, H, rows, cols]: the same for every text
    scale: float
    rows: dict[int, int]  # text index in the batch -> row of query / key
    softcap: float | None = None  # Gemma 2's score cap
    windows: list[int | None] | None = None  # per layer, the width of its window mask

    @classmethod
    def move(cls, section: Any, keep: list[int]) -> _HostQK:
        """One copy per array to the host, of the kept texts only."""
        import torch

        query, key = section.query, section.key
        if len(keep) != query.shape[0]:
            index = torch.tensor(keep, device=query.device)
            query, key = query.index_select(0, index), key.index_select(0, index)
        return cls(
            query=_to_host(query),
            key=_to_host(key),
            bias=section.host_bias(),
            scale=float(section.scale),
            rows={b: i for i, b in enumerate(keep)},
            softcap=section.softcap,
            windows=None if section.windows is None else list(section.windows),
        )

    def attach(self, section: Section, b: int) -> None:
        row = self.rows[b]
        section.query = np.ascontiguousarray(self.query[row], np.float32)
        section.key = np.ascontiguousarray(self.key[row], np.float32)
        section.bias = self.bias
        section.scale = self.scale
        section.softcap = self.softcap
        section.windows = self.windows


def library_versions() -> dict[str, str]:
    import torch
    import transformers

    return {"attndocs": __version__, "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version()}
