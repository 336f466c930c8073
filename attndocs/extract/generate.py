"""Generation: the model writes a continuation, then is read like any text (option ``generate``).

``model.generate`` writes up to N new tokens after the prompt (greedy, or sampled from
torch's generator seeded with the figure's seed), and the normal extraction forward pass
then runs over the final token ids, prompt and continuation: the ids themselves, never the
decoded text tokenised again, so the record holds exactly the tokens the model wrote. Its
attention rows are those of one forward pass over that sequence; row ``p`` of the decoder
attention is what the model looked at when it wrote token ``p + 1``.

The base models extraction runs (``AutoModel``) have no language-model head, so the
generating model is loaded once per model beside them (``AutoModelForCausalLM`` /
``AutoModelForSeq2SeqLM``); a checkpoint whose head would be random is refused.
"""

from __future__ import annotations

import copy
import inspect
import threading
from typing import Any

from ..errors import ExecError, InputError, ModelError
from ..record import Side
from .run import ExtractRequest, _decoder_ids, _Encoded, _side, position_limits
from .tokens import token_style

_GENERATORS: dict[tuple, Any] = {}
_LOCK = threading.Lock()


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

    config, tok = loaded.model.config, loaded.tokenizer
    if target is not None:
        ids = _decoder_ids(loaded, target)  # [start] + target, as teacher forcing reads it
        if loaded.ref.model_type == "encoder-decoder":
            # bert2bert-style: the tokenizer closes the text with [SEP], which would end the answer at once.
            end = set(_eos_ids(loaded)) | {tok.sep_token_id}
            while ids.shape[-1] > 1 and int(ids[0, -1]) in end:
                ids = ids[:, :-1]
        return ids
    start = getattr(config, "decoder_start_token_id", None)
    if start is None:
        start = getattr(config, "pad_token_id", None)
    if start is None:
        raise ModelError(
            f"model '{loaded.ref.short}' has no decoder_start_token_id in its config",
            "set decoder_start_token_id in the model's config.json, or give the decoder's first words with target",
        )
    return torch.tensor([[int(start)]], dtype=torch.long)


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
    else its causal-LM / seq2seq-LM class loaded once from the same files, placed and typed the same."""
    model = loaded.model
    if getattr(model, "can_generate", lambda: False)():
        return model
    ref = loaded.ref
    key = (ref.model_id, ref.revision, str(loaded.device), getattr(loaded, "dtype", "float32"))
    with _LOCK:
        if key not in _GENERATORS:
            _GENERATORS[key] = _load_generator(loaded)
        return _GENERATORS[key]


def _load_generator(loaded: Any) -> Any:
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
