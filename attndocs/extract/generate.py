"""Generation: the model writes a continuation, then is read like any text (option ``generate``).

``model.generate`` writes up to N new tokens after the prompt (greedy, or sampled from
torch's generator seeded with the figure's seed), and the normal extraction forward pass
then runs over the final token ids, prompt and continuation: the ids themselves, never the
decoded text tokenised again, so the record holds exactly the tokens the model wrote. Its
attention rows are those of one forward pass over that sequence; row ``p`` of the decoder
attention is what the model looked at when it wrote token ``p + 1``.

The base models extraction runs (``AutoModel``) have no language-model head, so generation
builds the model's ``AutoModelForCausalLM`` / ``AutoModelForSeq2SeqLM`` class around the loaded
base model, sharing its weights, and reads only the head from the checkpoint (or ties it to the
embeddings): generating costs the head's memory, not a second copy of the model. A checkpoint
whose head would be random is refused.
"""

from __future__ import annotations

import copy
import inspect
import logging
import re
import threading
from typing import Any

from ..errors import ExecError, InputError, ModelError
from ..record import Side
from .run import ExtractRequest, _decoder_ids, _Encoded, _side, decoder_start_id, position_limits
from .tokens import token_style

_LOCK = threading.Lock()
log = logging.getLogger("attndocs")


def settings_of(request: ExtractRequest) -> dict[str, Any]:
    """The generation settings a record and its cache key hold."""
    return {
        "new_tokens": request.generate,
        "sampling": request.seed is not None,
        "seed": request.seed,
        "temperature": (request.temperature or 1.0) if request.seed is not None else None,
    }


def encode_generated(loaded: Any, request: ExtractRequest) -> _Encoded:
    """The inputs of the extraction forward pass over prompt + continuation, with the record's generation."""
    import torch

    tok, kind = loaded.tokenizer, loaded.ref.kind
    style = token_style(tok)
    try:
        enc = tok(request.text, return_tensors="pt")
    except Exception as exc:
        raise ExecError(f"the tokenizer of '{loaded.ref.short}' failed on the text: {exc}") from exc
    if not enc["input_ids"].shape[-1]:
        raise InputError("the text gives no tokens", "write some text the tokenizer understands")
    if kind == "encoder-decoder":
        prompt = _decoder_prompt(loaded, request.target)
        encoder_ids = enc["input_ids"]
    else:
        prompt, encoder_ids = enc["input_ids"], None
    _check_room(loaded, request, prompt.shape[-1], None if encoder_ids is None else encoder_ids.shape[-1])
    final = _generate(loaded, request, enc, prompt)
    generated = final[prompt.shape[-1] :]
    eos = _eos_ids(loaded)
    generation = {
        "side": "decoder",
        "prompt_tokens": int(prompt.shape[-1]),
        "new_tokens": len(generated),
        "text": tok.decode(generated, skip_special_tokens=True),
        "stopped": "eos" if generated and generated[-1] in eos else "length",
        "settings": settings_of(request),
    }
    limit = request.max_tokens
    if limit is not None and len(final) > limit:
        raise InputError(
            f"the {'decoder text' if kind == 'encoder-decoder' else 'text'} has {len(final)} tokens with the "
            f"{len(generated)} the model wrote, more than max-tokens ({limit})",
            "lower generate, shorten the text, or raise max-tokens",
        )
    ids = torch.tensor([final], dtype=torch.long)
    sides: dict[str, Side] = {}
    params = inspect.signature(loaded.model.forward).parameters
    if kind == "encoder-decoder":
        sides["encoder"] = _side(tok, encoder_ids[0].tolist(), style)
        inputs = {k: v for k, v in enc.items() if k in params}
        inputs["decoder_input_ids"] = ids
    else:
        inputs = {"input_ids": ids}
        if "attention_mask" in params:
            inputs["attention_mask"] = torch.ones_like(ids)
    sides["decoder"] = _side(tok, final, style)
    return _Encoded(inputs=inputs, sides=sides, length_key=tuple(len(s) for s in sides.values()), generation=generation)


def _decoder_prompt(loaded: Any, target: str | None) -> Any:
    """The decoder's first ids: its start token, then the target's tokens when one is given."""
    import torch

    tok = loaded.tokenizer
    if target is not None:
        ids = _decoder_ids(loaded, target)  # [start] + target, as teacher forcing reads it
        if loaded.ref.model_type == "encoder-decoder":
            # bert2bert-style: the tokenizer closes the text with [SEP], which would end the answer at once.
            end = set(_eos_ids(loaded)) | {tok.sep_token_id}
            while ids.shape[-1] > 1 and int(ids[0, -1]) in end:
                ids = ids[:, :-1]
        return ids
    start = decoder_start_id(loaded, "set decoder_start_token_id in the model's config.json, or give the decoder's first words with target")
    return torch.tensor([[start]], dtype=torch.long)


def _check_room(loaded: Any, request: ExtractRequest, prompt: int, encoder: int | None) -> None:
    """Refuse, before generating, a prompt that leaves the model no room for the new tokens."""
    kind = loaded.ref.kind
    what = "target" if kind == "encoder-decoder" else "text"
    positions = position_limits(loaded)
    most = positions.get("decoder")
    if most is not None and prompt + (request.generate or 0) > most:
        raise InputError(
            f"this model ({loaded.ref.short}) reads at most {most} tokens; the {what} has {prompt} and generate asks for {request.generate} more",
            "lower generate, or shorten the text",
        )
    if encoder is not None and positions.get("encoder") is not None and encoder > positions["encoder"]:
        raise InputError(
            f"this model ({loaded.ref.short}) reads at most {positions['encoder']} tokens; the text has {encoder}",
            "shorten the text, or use a model that reads longer texts",
        )
    limit = request.max_tokens
    for name, count in (("decoder", prompt), ("encoder", encoder)):
        if count is not None and limit is not None and count > limit:
            raise InputError(
                f"the {what if name == 'decoder' else 'text'} has {count} tokens, more than max-tokens ({limit})",
                "shorten the text or raise max-tokens",
            )


def generation_kwargs(loaded: Any, model: Any, request: ExtractRequest) -> dict[str, Any]:
    """What ``model.generate`` is called with: the model's own generation config, made greedy
    (or plain temperature sampling with a seed), with pad and end ids set so nothing is guessed."""
    config = copy.deepcopy(model.generation_config)
    sampling = request.seed is not None
    config.do_sample = sampling
    config.num_beams = 1
    config.max_new_tokens = request.generate
    config.min_length = 0
    config.min_new_tokens = None
    # Greedy: the likeliest token, with no sampling knobs left to warn about. Sampling: from the
    # softmax of logits / temperature, not cut to the top k or top p (plain, and documented).
    config.temperature = (request.temperature or 1.0) if sampling else None
    config.top_k = 0 if sampling else None
    config.top_p = 1.0 if sampling else None
    for name in ("decoder_start_token_id", "bos_token_id"):
        # EncoderDecoderModel keeps these in its config only; generate looks in the generation config.
        if getattr(config, name, None) is None and isinstance(getattr(model.config, name, None), int):
            setattr(config, name, getattr(model.config, name))
    eos = _eos_ids(loaded)
    if config.eos_token_id is None and eos:
        config.eos_token_id = eos[0] if len(eos) == 1 else list(eos)
    if config.pad_token_id is None:
        pad = loaded.tokenizer.pad_token_id
        config.pad_token_id = pad if pad is not None else (eos[0] if eos else None)
    return {"generation_config": config}


def _generate(loaded: Any, request: ExtractRequest, enc: Any, prompt: Any) -> list[int]:
    """The final ids of the decoder side: the prompt, then what the model wrote."""
    import torch

    model = generator(loaded)
    kwargs = generation_kwargs(loaded, model, request)
    device = loaded.device
    if loaded.ref.kind == "encoder-decoder":
        inputs = {"input_ids": enc["input_ids"].to(device), "decoder_input_ids": prompt.to(device)}
        if "attention_mask" in enc:
            inputs["attention_mask"] = enc["attention_mask"].to(device)
    else:
        inputs = {"input_ids": prompt.to(device), "attention_mask": torch.ones_like(prompt).to(device)}
    try:
        with torch.inference_mode():
            if request.seed is not None:
                # The seed decides the text and nothing else: torch's global generator is restored after.
                devices = [device] if str(device).startswith("cuda") else []
                with torch.random.fork_rng(devices=devices):
                    torch.manual_seed(request.seed)
                    out = model.generate(**inputs, **kwargs)
            else:
                out = model.generate(**inputs, **kwargs)
    except Exception as exc:
        raise ExecError(f"model '{loaded.ref.short}' could not generate: {exc}".splitlines()[0]) from exc
    return [int(i) for i in out[0].tolist()]


def _eos_ids(loaded: Any) -> list[int]:
    found: list[int] = []
    for source in (getattr(loaded.model, "generation_config", None), loaded.model.config):
        value = getattr(source, "eos_token_id", None)
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, int) and item not in found:
                found.append(item)
    tok_eos = getattr(loaded.tokenizer, "eos_token_id", None)
    if not found and isinstance(tok_eos, int):
        found.append(tok_eos)
    return found


def generator(loaded: Any) -> Any:
    """A model of the loaded one that can generate: itself when it has its head (EncoderDecoderModel),
    else its causal-LM / seq2seq-LM class built around the loaded base model (:func:`_load_generator`),
    once per loaded model and held beside it (``loaded.generator``)."""
    model = loaded.model
    if getattr(model, "can_generate", lambda: False)():
        return model
    with _LOCK:
        if getattr(loaded, "generator", None) is None:
            loaded.generator = _load_generator(loaded)
        return loaded.generator


def _load_generator(loaded: Any) -> Any:
    """The language-model class of the loaded model, sharing its weights: no second copy of the model.

    The class is built on the meta device (no memory), the loaded base model takes the place
    of its base (``base_model_prefix``; or, as in T5, the modules the two classes share by
    name), and only what is left, the head, comes from the checkpoint, one tensor at a time:
    tied to the input embeddings when the config ties them (``tie_word_embeddings``), else read
    by name. An 8B model generates with its own weights plus its head, not twice its weights.
    """
    import torch
    import transformers

    ref, base = loaded.ref, loaded.model
    if any(p.is_meta for p in base.parameters()):
        # Weights offloaded to disk under a device map: not in memory, and accelerate's hooks bring each
        # in for its own module only, so the head is placed by accelerate too, in a class of its own.
        return _load_separate(loaded)
    cls = transformers.AutoModelForSeq2SeqLM if ref.kind == "encoder-decoder" else transformers.AutoModelForCausalLM
    try:
        with torch.device("meta"):
            lm = cls.from_config(copy.deepcopy(base.config), attn_implementation="eager", trust_remote_code=ref.trust_remote_code)
    except Exception as exc:
        raise ModelError(
            f"model '{ref.short}' cannot generate: its language-model class does not load ({exc})".splitlines()[0],
            "use a decoder or encoder-decoder model with a language-model head",
        ) from exc
    _graft(lm, base)
    held = {id(p) for p in lm.parameters()}
    if not all(id(p) in held for p in base.parameters()):
        # A class whose base this model is not (custom code, an unusual layout): load it whole, as before.
        log.warning("attndocs: model '%s' generates with a second copy of its weights (its language-model class does not take the loaded model)", ref.short)
        return _load_separate(loaded)
    lm.tie_weights()  # the head onto the (loaded) input embeddings, when the config ties them
    _untie_a_stored_head(lm, loaded)
    left = [name for name, tensor in [*lm.named_parameters(), *lm.named_buffers()] if tensor.is_meta]
    found = _checkpoint_tensors(loaded, left)
    ignorable = [re.compile(p) for p in getattr(lm, "_keys_to_ignore_on_load_missing", None) or ()]
    missing = [name for name in left if name not in found and not any(p.search(name) for p in ignorable)]
    if missing:
        # A head the checkpoint does not hold would be random: its text would change with every load.
        raise ModelError(
            f"model '{ref.short}' has no trained language-model head ({missing[0]} is missing), so it cannot generate",
            "use the model's checkpoint with its head (…ForCausalLM / …ForConditionalGeneration)",
        )
    device, dtype = _head_placement(loaded)
    for name in left:
        owner, _, attr = name.rpartition(".")
        module = lm.get_submodule(owner)
        old = getattr(module, attr)
        value = found[name] if name in found else torch.zeros(old.shape)  # an ignorable buffer: zeros, as transformers inits it
        value = value.to(device=device, dtype=dtype if value.is_floating_point() else value.dtype)
        if isinstance(old, torch.nn.Parameter):
            setattr(module, attr, torch.nn.Parameter(value, requires_grad=False))
        else:
            module._buffers[attr] = value
    if getattr(loaded, "device_map", None):
        _align_head(lm)
    try:
        lm.generation_config = transformers.GenerationConfig.from_pretrained(_source(loaded), **_hub_kwargs(ref))
    except Exception:  # no generation_config.json: the one from_config made from the model's config
        pass
    return lm.eval()


def _untie_a_stored_head(lm: Any, loaded: Any) -> None:
    """A head the config ties but the checkpoint holds with other values is the checkpoint's (as
    transformers loads it: it ties only equal weights)."""
    import torch

    head = lm.get_output_embeddings()
    weight = getattr(head, "weight", None)
    if weight is None or weight.is_meta:
        return
    name = next((n for n, m in lm.named_modules() if m is head), None)
    stored = _checkpoint_tensors(loaded, [f"{name}.weight"]).get(f"{name}.weight") if name else None
    if stored is None or stored.shape != weight.shape:
        return
    stored = stored.to(device=weight.device, dtype=weight.dtype)
    if not torch.equal(stored, weight):
        head.weight = torch.nn.Parameter(stored, requires_grad=False)


def _load_separate(loaded: Any) -> Any:
    """The language-model class loaded whole from the checkpoint, its own copy of every weight."""
    import torch
    import transformers

    ref, model = loaded.ref, loaded.model
    source = getattr(model.config, "_name_or_path", "") or ref.path or ref.model_id
    cls = transformers.AutoModelForSeq2SeqLM if ref.kind == "encoder-decoder" else transformers.AutoModelForCausalLM
    kwargs: dict[str, Any] = {"trust_remote_code": ref.trust_remote_code}
    if ref.source == "hub":
        kwargs["revision"] = ref.revision
    placement: dict[str, Any] = {}
    if getattr(loaded, "device_map", None):
        placement["device_map"] = dict(loaded.device_map)
    try:
        lm, info = cls.from_pretrained(
            source, attn_implementation="eager", dtype=getattr(torch, getattr(loaded, "dtype", "float32")),
            output_loading_info=True, **placement, **kwargs,
        )
    except Exception as exc:
        raise ModelError(
            f"model '{ref.short}' cannot generate: its language-model class does not load ({exc})".splitlines()[0],
            "use a decoder or encoder-decoder model with a language-model head",
        ) from exc
    # A head the checkpoint does not hold would be random: its text would change with every load.
    missing = [name for name in info.get("missing_keys", ()) if "head" in name or "logits" in name or "lm_" in name]
    if missing:
        raise ModelError(
            f"model '{ref.short}' has no trained language-model head ({missing[0]} is missing), so it cannot generate",
            "use the model's checkpoint with its head (…ForCausalLM / …ForConditionalGeneration)",
        )
    lm.eval()
    if not placement:
        lm.to(loaded.device)
    return lm


def _graft(lm: Any, base: Any) -> None:
    """Put the loaded ``base`` in ``lm`` where its base model goes: the attribute ``base_model_prefix``
    names (GPT-2's ``transformer``, Llama's and BART's ``model``), else every module of ``lm`` that
    ``base`` has under the same name and class (T5's ``shared``, ``encoder``, ``decoder``)."""
    prefix = getattr(lm, "base_model_prefix", "")
    inner = getattr(lm, prefix, None) if prefix else None
    if inner is not None and inner is not lm and type(inner) is type(base):
        setattr(lm, prefix, base)
        return
    for name, child in list(lm.named_children()):
        own = getattr(base, name, None)
        if own is not None and type(own) is type(child):
            setattr(lm, name, own)


def _head_placement(loaded: Any) -> tuple[Any, Any]:
    """Where the head's tensors go, and their dtype: where the model's inputs go (under a device map,
    accelerate hands the base model's outputs back there), in the precision of its weights."""
    import torch

    return torch.device(loaded.device), getattr(torch, getattr(loaded, "dtype", "float32"))


def _align_head(lm: Any) -> None:
    """Under a device map: the head takes its input on its own device, wherever the last layer ran."""
    head = lm.get_output_embeddings()
    if head is None or getattr(head, "weight", None) is None:
        return

    def to_head(module: Any, args: tuple) -> tuple:
        return tuple(a.to(module.weight.device) if hasattr(a, "to") else a for a in args)

    head.register_forward_pre_hook(to_head)


def _source(loaded: Any) -> str:
    ref = loaded.ref
    return getattr(loaded.model.config, "_name_or_path", "") or ref.path or ref.model_id


def _hub_kwargs(ref: Any) -> dict[str, Any]:
    return {"revision": ref.revision} if ref.source == "hub" else {}


def _checkpoint_tensors(loaded: Any, names: list[str]) -> dict[str, Any]:
    """The tensors ``names`` from the model's checkpoint, read one by one (safetensors), or from a
    memory-mapped PyTorch checkpoint (weights only); names it does not hold are left out."""
    import json
    from pathlib import Path

    import torch

    if not names:
        return {}
    source, kwargs = _source(loaded), _hub_kwargs(loaded.ref)

    def local(filename: str) -> Path | None:
        folder = Path(source)
        if folder.is_dir():
            return folder / filename if (folder / filename).is_file() else None
        from transformers.utils import cached_file

        found = cached_file(
            source, filename, _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False, **kwargs
        )
        return Path(found) if found else None

    out: dict[str, Any] = {}
    for single, index, safe in (
        ("model.safetensors", "model.safetensors.index.json", True),
        ("pytorch_model.bin", "pytorch_model.bin.index.json", False),
    ):
        files: dict[str, list[str]] = {}
        where = local(single)
        if where is not None:
            files[str(where)] = list(names)
        else:
            listing = local(index)
            if listing is None:
                continue
            weight_map = json.loads(listing.read_text(encoding="utf-8")).get("weight_map", {})
            for name in names:
                if name in weight_map and (shard := local(weight_map[name])) is not None:
                    files.setdefault(str(shard), []).append(name)
        for path, wanted in files.items():
            if safe:
                from safetensors import safe_open

                with safe_open(path, framework="pt") as handle:
                    held = set(handle.keys())
                    out.update({name: handle.get_tensor(name) for name in wanted if name in held})
            else:
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
                out.update({name: state[name].clone() for name in wanted if name in state})
                del state
        if out or files:
            break
    return out
