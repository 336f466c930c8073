"""Load a resolved model with eager attention, once per process (imports torch/transformers).

SmolLM2 ships as GGUF, which takes ~18 s to load; it is converted once into safetensors
under $ATTNDOCS_HOME (a file lock makes two processes converting at once safe) and loads
in well under a second after that. bert2bert-minilm is built from MiniLM with a fixed
seed and stored the same way, so every process sees the same cross-attention weights.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelError
from .resolve import BERT2BERT_SEED, BUNDLED, ModelRef, attndocs_home, bundled_files

log = logging.getLogger("attndocs")

_LOADED: dict[tuple[str, str, str], LoadedModel] = {}
_LOCK = threading.Lock()


@dataclass
class LoadedModel:
    ref: ModelRef
    model: Any
    tokenizer: Any
    device: str


def load_model(ref: ModelRef, device: str = "cpu") -> LoadedModel:
    """The loaded model for ``ref``; the first call loads it, later calls reuse it."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ModelError(
            f"computing figures needs torch and transformers ({exc.name or exc} is not installed)",
            "pip install torch==2.13.0 'attndocs[models]', or build from a filled cache in frozen mode",
        ) from None
    device = pick_device(device)
    key = (ref.model_id, ref.revision, device)
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = _load(ref, device)
        return _LOADED[key]


def is_loaded(ref: ModelRef, device: str = "cpu") -> bool:
    """Whether this process already holds ``ref`` (so using it costs no load)."""
    return any(key[:2] == (ref.model_id, ref.revision) and (device == "auto" or key[2] == device) for key in _LOADED)


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


def _load(ref: ModelRef, device: str) -> LoadedModel:
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # attndocs reports progress itself
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
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
        model = _model_class(ref).from_pretrained(source, attn_implementation="eager", dtype=torch.float32, **kwargs)
        model.eval()
        model.to(device)
    except ModelError:
        raise
    except Exception as exc:  # whatever a model's files do: one figure warning, never a crash
        raise load_failure(ref, exc) from exc
    return LoadedModel(ref=ref, model=model, tokenizer=tokenizer, device=device)


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
