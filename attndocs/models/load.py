"""Load a resolved model with eager attention, once per process (imports torch/transformers).

SmolLM2 ships as GGUF, which takes ~18 s to load; it is converted once into safetensors
under $ATTNDOCS_HOME (a file lock makes two processes converting at once safe) and loads
in well under a second after that. bert2bert-minilm is built from MiniLM with a fixed
seed and stored the same way, so every process sees the same cross-attention weights.

A model larger than one device is loaded with a ``device_map`` (and ``max_memory``), which
transformers hands to accelerate: modules are spread over GPUs, the CPU and the disk (an
offload folder under $ATTNDOCS_HOME), and accelerate's hooks move each layer's weights
and activations to where that layer runs. ``dtype`` ``auto`` is resolved here, where the
hardware is known: float32 unless its weights do not fit in the GPU memory the model may
use (:func:`choose_dtype`).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelError
from .resolve import BERT2BERT_SEED, BUNDLED, ModelRef, attndocs_home, bundled_files

log = logging.getLogger("attndocs")

DeviceMap = str | Mapping[str, int | str]
MaxMemory = Mapping[int | str, int]

_LOADED: dict[tuple[str, ...], LoadedModel] = {}
_LOCK = threading.Lock()

# "Fits": the float32 weights take at most this share of the GPU memory the model may use.
# The rest is for activations and for the attention the forward pass returns, which for a
# figure grows as layers x heads x tokens² (4 GB at 32 x 32 x 1,024 tokens in float32).
GPU_HEADROOM = 0.8


@dataclass
class LoadedModel:
    ref: ModelRef
    model: Any
    tokenizer: Any
    device: str  # where inputs go: the device the model's first layers run on
    dtype: str = "float32"  # the precision its weights have (a requested "auto" resolved)
    device_map: dict[str, int | str] | None = None  # where each module lives, when it is spread over devices
    # The language-model class around ``model`` for generating (attndocs.extract.generate.generator), built
    # on first use: it shares ``model``'s weights and holds only its head besides.
    generator: Any = field(default=None, repr=False, compare=False)


def load_model(
    ref: ModelRef,
    device: str = "cpu",
    *,
    dtype: str = "auto",
    device_map: DeviceMap | None = None,
    max_memory: MaxMemory | None = None,
) -> LoadedModel:
    """The loaded model for ``ref``; the first call loads it, later calls reuse it.

    ``device_map`` (accelerate's strategies ``auto``, ``balanced``, ``sequential``, or a
    mapping of module names to devices) overrides ``device``; ``max_memory`` caps what
    each device takes under a device map. ``dtype`` ``auto`` becomes float32 unless that
    does not fit the GPU memory at hand (:func:`choose_dtype`).
    """
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ModelError(
            f"computing figures needs torch and transformers ({exc.name or exc} is not installed)",
            "pip install torch==2.13.0 'attndocs[models]', or build from a filled cache in frozen mode",
        ) from None
    if device_map is not None:
        check_device_map(device_map, max_memory)
        device = "map"  # the map decides; the device setting does not apply
    else:
        device = pick_device(device)
    key = _placement_key(ref, device, dtype, device_map, max_memory)
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = _load(ref, device, dtype, device_map, max_memory)
        return _LOADED[key]


def _placement_key(ref: ModelRef, device: str, dtype: str, device_map: DeviceMap | None, max_memory: MaxMemory | None) -> tuple[str, ...]:
    return (ref.model_id, ref.revision, device, dtype, _as_text(device_map), _as_text(max_memory))


def _as_text(value: DeviceMap | MaxMemory | None) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    return json.dumps({str(k): v for k, v in value.items()}, sort_keys=True)


def is_loaded(
    ref: ModelRef,
    device: str = "cpu",
    *,
    dtype: str | None = None,
    device_map: DeviceMap | None = None,
    max_memory: MaxMemory | None = None,
) -> bool:
    """Whether this process already holds ``ref`` placed this way (so using it costs no load).

    ``dtype`` None matches any precision; ``device`` auto matches any single device.
    """
    for model_id, revision, where, precision, mapped, limits in _LOADED:
        if (model_id, revision) != (ref.model_id, ref.revision) or dtype not in (None, precision):
            continue
        if device_map is not None:
            if where == "map" and (mapped, limits) == (_as_text(device_map), _as_text(max_memory)):
                return True
        elif where != "map" and device in ("auto", where):
            return True
    return False


def loaded_count() -> int:
    """How many models this process has loaded (for build summaries and tests)."""
    return len(_LOADED)


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError("device 'cuda' was requested but no CUDA GPU is available", "set the device setting to cpu or auto")
    return device


def check_device_map(device_map: DeviceMap, max_memory: MaxMemory | None) -> None:
    """Refuse, before any loading, a map that needs what this machine lacks (accelerate, a GPU)."""
    import torch

    if importlib.util.find_spec("accelerate") is None:
        raise ModelError("the device_map setting needs accelerate, which is not installed", "pip install accelerate")
    named = [d for d in (device_map.values() if isinstance(device_map, Mapping) else ()) if isinstance(d, int)]
    named += [d for d in (max_memory or {}) if isinstance(d, int)]
    if named and not torch.cuda.is_available():
        raise ModelError(
            f"the device map puts weights on GPU {min(named)}, but no CUDA GPU is available",
            "use cpu and disk in device_map and max_memory here, or run where the GPUs are",
        )
    if named and max(named) >= torch.cuda.device_count():
        raise ModelError(
            f"the device map names GPU {max(named)}, but this machine has {torch.cuda.device_count()} GPU(s), numbered from 0"
        )


# -- precision: what "auto" means -----------------------------------------------------------
def choose_dtype(requested: str, *, float32_bytes: int | None, gpu_budget: int | None, bf16_supported: bool) -> str:
    """The precision a model is loaded in.

    Anything but ``auto`` is taken as asked. ``auto`` is float32 (exact) unless the model
    runs on GPUs (``gpu_budget``: the bytes it may use there) and its float32 weights
    take more than :data:`GPU_HEADROOM` of them: then bfloat16, or float16 on GPUs without
    bfloat16. On the CPU, or when the weights cannot be measured, it stays float32.
    """
    if requested != "auto":
        return requested
    if gpu_budget is None or float32_bytes is None or float32_bytes <= GPU_HEADROOM * gpu_budget:
        return "float32"
    return "bfloat16" if bf16_supported else "float16"


def gpu_budget(
    device: str,
    device_map: DeviceMap | None,
    max_memory: MaxMemory | None,
    *,
    gpu_count: int,
    free_memory: Callable[[int], int],
) -> int | None:
    """Bytes of GPU memory a model placed this way may use; None when it runs on no GPU.

    On one device: that GPU's free memory. With a device map: the GPUs it may use (those
    a mapping names; under a strategy those ``max_memory`` lists, else every GPU), each
    counted at its ``max_memory`` limit, else at its free memory.
    """
    limits = dict(max_memory or {})
    if device_map is None:
        if not device.startswith("cuda") or gpu_count == 0:
            return None
        gpus = [int(device.partition(":")[2] or 0)]
    elif isinstance(device_map, Mapping):
        gpus = sorted({d for d in device_map.values() if isinstance(d, int)})
    else:
        listed = [d for d in limits if isinstance(d, int)]
        gpus = sorted(listed) if limits else list(range(gpu_count))
    if not gpus:
        return None
    return sum(int(limits[g]) if g in limits else free_memory(g) for g in gpus)


def float32_weight_bytes(ref: ModelRef, source: str | Path, **kwargs: Any) -> int | None:
    """Bytes of the model's weights in float32, counted on the meta device (no weights read)."""
    import torch
    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(source, **kwargs)
        with torch.device("meta"):
            if ref.model_type == "encoder-decoder":
                model = transformers.EncoderDecoderModel(config=config)
            else:
                model = transformers.AutoModel.from_config(config, trust_remote_code=ref.trust_remote_code)
        return 4 * sum(p.numel() for p in model.parameters())
    except Exception as exc:  # an architecture that cannot be built empty: auto keeps float32
        log.info("attndocs: cannot size %s before loading it (%s); dtype auto keeps float32", ref.short, exc)
        return None


def _resolve_dtype(ref: ModelRef, source: str | Path, requested: str, device: str, device_map: DeviceMap | None, max_memory: MaxMemory | None, kwargs: dict[str, Any]) -> str:
    import torch

    if requested != "auto":
        return requested
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    budget = gpu_budget(device, device_map, max_memory, gpu_count=count, free_memory=lambda i: torch.cuda.mem_get_info(i)[0])
    if budget is None:
        return "float32"  # on the CPU (and the disk) float32 always fits: no need to measure
    weights = float32_weight_bytes(ref, source, **kwargs)
    chosen = choose_dtype(requested, float32_bytes=weights, gpu_budget=budget, bf16_supported=torch.cuda.is_bf16_supported())
    if chosen != "float32":
        log.warning(
            "attndocs: %s takes %.1f GB in float32, more than fits in %.1f GB of GPU memory: loading it in %s",
            ref.short, (weights or 0) / 1e9, budget / 1e9, chosen,
        )
    return chosen


# -- where the weights go --------------------------------------------------------------------
def execution_device(model: Any) -> str:
    """Where a loaded model's inputs go: the device its first module runs on.

    Under a device map accelerate runs modules kept on the CPU or the disk on the first
    GPU of the map when there is one (the CPU otherwise), and its hooks move inputs along.
    """
    placed = getattr(model, "hf_device_map", None)
    if not placed:
        return str(next(model.parameters()).device)
    for where in placed.values():
        where = str(where)
        if where.isdigit():
            return f"cuda:{where}"
        if where not in ("cpu", "disk", "meta"):
            return where
    return "cpu"


def offload_folder(ref: ModelRef) -> Path:
    """A folder of this process for the weights a device map sends to disk, removed at exit.

    One per process: two builds offloading the same model never write the same files.
    Checkpoints in safetensors are mostly read in place and leave it nearly empty.
    """
    root = attndocs_home() / "offload"
    try:
        root.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f"{_safe_name(ref.short)}-", dir=root))
    except OSError as exc:
        raise ModelError(
            f"cannot create an offload folder in {root}: {exc.strerror or exc}", "set ATTNDOCS_HOME to a writable folder with room for the weights"
        ) from exc
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def quiet_third_party_progress() -> None:
    """No progress bars from transformers or huggingface_hub: attndocs shows one counter of its own.

    Their bars write fragments ending in carriage returns, which a CI log or a Sphinx status
    stream shows as dozens of broken lines between attndocs' own.
    """
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        from huggingface_hub.utils import disable_progress_bars
    except ImportError:
        return
    disable_progress_bars()


@contextlib.contextmanager
def gguf_conversion_quiet() -> Any:
    """The GGUF reader's bar silenced for the conversion.

    transformers' GGUF loader draws with tqdm directly (about 30 fragments for SmolLM2), not
    through its own switchable bars, and tqdm reads its environment switch only at import.
    """
    import functools

    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    original = getattr(gguf_utils, "tqdm", None)
    if original is None:  # a transformers that no longer draws a bar there
        yield
        return
    gguf_utils.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = original


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:64] or "model"


def _load(ref: ModelRef, device: str, dtype: str, device_map: DeviceMap | None, max_memory: MaxMemory | None) -> LoadedModel:
    import torch

    quiet_third_party_progress()
    try:
        if ref.alias == "smollm2":
            folder = converted_smollm2(Path(ref.path), ref.revision)
        elif ref.alias == "bert2bert-minilm":
            folder = built_bert2bert(ref.revision)
        else:
            folder = ref.path
        source = folder or ref.model_id
        kwargs: dict[str, Any] = {"trust_remote_code": ref.trust_remote_code}
        if ref.source == "hub":
            kwargs["revision"] = ref.revision
        from ..vision import load_reader

        tokenizer = load_reader(source, kwargs)  # a vision encoder's image processor stands in for the tokenizer
        chosen = _resolve_dtype(ref, source, dtype, device, device_map, max_memory, kwargs)
        placement: dict[str, Any] = {}
        if device_map is not None:
            placement = {"device_map": device_map if isinstance(device_map, str) else dict(device_map), "offload_folder": str(offload_folder(ref))}
            if max_memory:
                placement["max_memory"] = dict(max_memory)
        model = _model_class(ref).from_pretrained(source, attn_implementation="eager", dtype=getattr(torch, chosen), **placement, **kwargs)
        model.eval()
        if device_map is None:
            model.to(device)  # under a device map accelerate placed every module already
        placed = getattr(model, "hf_device_map", None)
        where = execution_device(model) if device_map is not None else device
    except ModelError:
        raise
    except Exception as exc:  # whatever a model's files do: one figure warning, never a crash
        raise load_failure(ref, exc) from exc
    return LoadedModel(ref=ref, model=model, tokenizer=tokenizer, device=where, dtype=chosen, device_map=dict(placed) if placed else None)


# What torch says when a checkpoint's pickle names a global outside its allow-list.
_UNSAFE_PICKLE = ("Weights only load failed", "Unsupported global", "WeightsUnpickler")


def load_failure(ref: ModelRef, exc: BaseException) -> ModelError:
    """One line that says why ``ref`` did not load, without the machine's paths.

    A checkpoint (pytorch_model.bin) whose pickle holds code is refused by torch's
    weights-only loader. torch's own message goes on to suggest loading it with
    weights_only=False, which would run that code; attndocs never passes that on.
    """
    import pickle

    text = str(exc)
    if any(marker in text for marker in _UNSAFE_PICKLE):
        return ModelError(
            f"cannot load model '{ref.short}': its weights file holds pickled code that is not allowed "
            "(attndocs loads PyTorch weights only with weights_only=True)",
            "convert the weights to safetensors (model.safetensors), or use a model that ships them",
        )
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in text:
        # torch's text here may also suggest weights_only=False: it is not passed on.
        return ModelError(
            f"cannot load model '{ref.short}': its weights file is damaged or cannot be loaded as weights only",
            "replace the weights, preferably with model.safetensors",
        )
    first = (text.strip().splitlines() or [type(exc).__name__])[0]
    if ref.path:  # transformers quotes the folder it read: show the model's name instead
        first = first.replace(str(ref.path), ref.short)
    return ModelError(f"cannot load model '{ref.short}': {first}")


def _model_class(ref: ModelRef):
    import transformers

    if ref.model_type == "encoder-decoder":
        return transformers.EncoderDecoderModel
    return transformers.AutoModel


# -- one-time conversions into $ATTNDOCS_HOME -----------------------------------------------
@contextlib.contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _converted(name: str, revision: str, build) -> Path:
    """A folder under $ATTNDOCS_HOME/models built once by ``build(tmp_folder)``, atomically."""
    root = attndocs_home() / "models"
    final = root / f"{name}-{revision.split(':')[-1][:16]}"
    if (final / "config.json").exists():
        return final
    try:
        with _file_lock(root / f".{final.name}.lock"):
            if (final / "config.json").exists():  # another process finished it while we waited
                return final
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
            try:
                build(tmp)
                os.replace(tmp, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        raise ModelError(
            f"cannot prepare model '{name}' in {root}: {exc.strerror or exc}", "set ATTNDOCS_HOME to a writable folder"
        ) from exc
    return final


def converted_smollm2(gguf: Path, revision: str) -> Path:
    def build(folder: Path) -> None:
        import torch
        import transformers
        from safetensors.torch import save_file

        log.warning("attndocs: converting SmolLM2 from GGUF once (about 20 s); later loads are fast")
        tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        with gguf_conversion_quiet():
            model = transformers.AutoModel.from_pretrained(
                gguf.parent, gguf_file=gguf.name, attn_implementation="eager", dtype=torch.float32
            )
        state = {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        config["architectures"] = ["LlamaForCausalLM"]
        (folder / "config.json").write_text(json.dumps(config, indent=2))
        tokenizer.save_pretrained(folder)

    return _converted("smollm2", revision, build)


def built_bert2bert(revision: str) -> Path:
    def build(folder: Path) -> None:
        import torch
        import transformers

        minilm = bundled_files(BUNDLED["minilm"])
        torch.manual_seed(BERT2BERT_SEED)
        model = transformers.EncoderDecoderModel.from_encoder_decoder_pretrained(
            str(minilm), str(minilm), encoder_attn_implementation="eager", decoder_attn_implementation="eager"
        )
        tokenizer = transformers.AutoTokenizer.from_pretrained(minilm)
        model.config.decoder_start_token_id = tokenizer.cls_token_id
        model.config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    return _converted("bert2bert-minilm", revision, build)
