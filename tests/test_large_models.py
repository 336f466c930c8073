"""Models larger than one device: the dtype, device_map and max_memory settings.

No GPU here: a forced offload runs on the CPU (accelerate sends what does not fit in
``max_memory`` to disk, and runs it on the CPU one layer at a time), and the choice
``dtype: auto`` makes on a GPU is tested as the function that makes it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from attndocs.cache import RecordCache, cache_key
from attndocs.cli import main
from attndocs.errors import ModelError, OptionError
from attndocs.extract.run import ExtractRequest, extract
from attndocs.models import load as load_mod
from attndocs.models import resolve_model
from attndocs.models.load import choose_dtype, execution_device, float32_weight_bytes, gpu_budget, load_model
from attndocs.options import FigureOptions, SiteSettings
from attndocs.pipeline import Pipeline, lookup_dtypes, record_key_parts
from attndocs.record import AttentionRecord

TEXT = "The cat sat on the mat because it was tired."
GiB = 2**30


@pytest.fixture
def offload_home(tmp_path, monkeypatch) -> Path:
    """$ATTNDOCS_HOME in a temporary folder: what goes to disk goes there."""
    home = tmp_path / "home"
    monkeypatch.setenv("ATTNDOCS_HOME", str(home))
    return home


def _settings(cache: Path, **changes) -> SiteSettings:
    return SiteSettings.from_mapping({"cache_dir": str(cache), **changes})


def _figure(model: str | Path, view: str = "neuron") -> FigureOptions:
    return FigureOptions.from_mapping({"text": TEXT, "model": str(model), "view": view})


def _assert_same(record, reference, tolerance: float) -> None:
    assert record.sections.keys() == reference.sections.keys()
    for name, section in reference.sections.items():
        other = record.sections[name]
        assert other.attention.dtype == np.float32
        assert np.abs(other.attention - section.attention).max() <= tolerance, name
        if section.query is not None:
            assert np.abs(other.query - section.query).max() <= tolerance
            assert np.abs(other.key - section.key).max() <= tolerance


# -- settings ---------------------------------------------------------------------------------
def test_placement_settings_parse_from_every_kind_of_config_value():
    default = SiteSettings()
    assert (default.dtype, default.device_map, default.max_memory) == ("auto", None, None)
    one_line = SiteSettings.from_mapping({"device_map": "embeddings=0, encoder=cuda:1,pooler=cpu", "max_memory": "0=20GiB,cpu=1.5GB"})
    assert one_line.device_map == {"embeddings": 0, "encoder": 1, "pooler": "cpu"}
    assert one_line.max_memory == {0: 20 * GiB, "cpu": 1_500_000_000}
    # TOML and JSON keys are text; YAML's may be numbers: both name GPU 0.
    as_json = SiteSettings.from_mapping({"device_map": '{"encoder.layer.0": 0, "encoder.layer.1": "disk"}', "max_memory": {"0": "1MiB", 1: 5}})
    assert as_json.device_map == {"encoder.layer.0": 0, "encoder.layer.1": "disk"} and as_json.max_memory == {0: 2**20, 1: 5}
    assert SiteSettings.from_mapping({"device_map": " Balanced ", "dtype": "bfloat16"}).device_map == "balanced"
    assert SiteSettings.from_mapping({"device_map": "", "max_memory": "none"}).device_map is None


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"dtype": "int8"}, "allowed: one of auto, float32, bfloat16, float16"),
        ({"device_map": "gpu"}, "not one of auto, balanced, balanced_low_0, sequential"),
        ({"device_map": {"encoder": "tpu"}}, "'tpu' is not a device"),
        ({"device_map": {}}, "the mapping is empty"),
        ({"device_map": "{not json"}, "not valid JSON"),
        ({"device_map": {"encoder": True}}, "True is not a device"),
        ({"max_memory": {"cpu": "lots"}}, "'lots' is not a size"),
        ({"max_memory": {"disk": "1GB"}}, "disk takes no limit"),
        ({"max_memory": "cpu"}, "'cpu' is not name=value"),
        ({"max_memory": {"cpu": -1}}, "-1 is not a size"),
    ],
)
def test_bad_placement_settings_are_option_errors_naming_the_setting(values, says):
    with pytest.raises(OptionError) as info:
        SiteSettings.from_mapping(values)
    assert f"option '{next(iter(values)).replace('_', '-')}'" in str(info.value)
    assert says in str(info.value)


def test_sphinx_mkdocs_and_toml_read_the_placement_settings(tmp_path):
    from attndocs.mkdocs_plugin.config import AttndocsConfig, site_settings
    from attndocs.site import load_site_config

    (tmp_path / "attndocs.toml").write_text('dtype = "float16"\ndevice_map = "auto"\n[max_memory]\ncpu = "2GB"\n0 = "1GiB"\n')
    toml = load_site_config(tmp_path).settings
    assert (toml.dtype, toml.device_map, toml.max_memory) == ("float16", "auto", {"cpu": 2 * 10**9, 0: GiB})

    config = AttndocsConfig()
    config.load_dict({"dtype": "bfloat16", "device_map": {"embeddings": "cpu", "encoder": "disk"}, "max_memory": {"cpu": "1GB"}})
    assert not config.validate()[0]
    settings = site_settings(config, str(tmp_path / "mkdocs.yml"))
    assert settings.device_map == {"embeddings": "cpu", "encoder": "disk"} and settings.dtype == "bfloat16"
    bad = AttndocsConfig()
    bad.load_dict({"device_map": "everywhere"})
    assert "not one of auto" in str(bad.validate()[0])


def test_sphinx_conf_values_are_validated_with_the_setting_named(tmp_path):
    from sphinx.application import Sphinx
    from sphinx.errors import ConfigError

    from attndocs.sphinx_ext.build import state_of

    (tmp_path / "index.rst").write_text("Title\n=====\n")
    (tmp_path / "conf.py").write_text(
        'extensions = ["attndocs.sphinx_ext"]\nattention_dtype = "bfloat16"\n'
        'attention_device_map = {"embeddings": "cpu", "encoder": "disk"}\nattention_max_memory = {"cpu": "3GB"}\n'
    )
    app = Sphinx(str(tmp_path), str(tmp_path), str(tmp_path / "out"), str(tmp_path / "dt"), "dummy", status=None, warning=None)
    settings = state_of(app.env).settings
    assert (settings.dtype, settings.device_map, settings.max_memory) == ("bfloat16", {"embeddings": "cpu", "encoder": "disk"}, {"cpu": 3 * 10**9})
    with pytest.raises(ConfigError, match="attention_device_map = 'gpu' in conf.py is not valid"):
        Sphinx(str(tmp_path), str(tmp_path), str(tmp_path / "out2"), str(tmp_path / "dt2"), "dummy",
               confoverrides={"attention_device_map": "gpu"}, status=None, warning=None)


# -- the cache key --------------------------------------------------------------------------
def test_float32_keys_are_what_they_always_were_and_other_dtypes_are_other_entries():
    ref = resolve_model("minilm")
    request = ExtractRequest(TEXT)
    before = {  # the key parts every cache filled before the dtype setting holds
        "model": ref.model_id,
        "revision": ref.revision,
        "text": TEXT,
        "text_b": None,
        "target": None,
        "tokenizer": {"add_special_tokens": True},
        "dtype": "float32",
        "extraction": {"attn_implementation": "eager", "qk": False},
    }
    assert record_key_parts(ref, request) == before == record_key_parts(ref, request, dtype="float32")
    keys = {cache_key(record_key_parts(ref, request, dtype=d)) for d in ("float32", "bfloat16", "float16")}
    assert len(keys) == 3
    assert lookup_dtypes("auto") == ("float32", "bfloat16", "float16") and lookup_dtypes("bfloat16") == ("bfloat16",)


# -- what "auto" means ----------------------------------------------------------------------------
def test_auto_keeps_float32_where_it_fits_and_halves_where_it_does_not():
    eight_b = 8 * 10**9 * 4  # an 8B model's float32 weights
    assert choose_dtype("auto", float32_bytes=eight_b, gpu_budget=None, bf16_supported=True) == "float32"  # the CPU
    assert choose_dtype("auto", float32_bytes=eight_b, gpu_budget=80 * GiB, bf16_supported=True) == "float32"
    assert choose_dtype("auto", float32_bytes=eight_b, gpu_budget=24 * GiB, bf16_supported=True) == "bfloat16"
    assert choose_dtype("auto", float32_bytes=eight_b, gpu_budget=24 * GiB, bf16_supported=False) == "float16"
    assert choose_dtype("auto", float32_bytes=None, gpu_budget=GiB, bf16_supported=True) == "float32"  # cannot measure
    assert choose_dtype("float16", float32_bytes=1, gpu_budget=None, bf16_supported=True) == "float16"  # asked for


def test_the_gpu_memory_a_placement_may_use():
    free = {0: 10 * GiB, 1: 20 * GiB, 2: 30 * GiB}.__getitem__
    budget = lambda device, dm=None, mm=None: gpu_budget(device, dm, mm, gpu_count=3, free_memory=free)  # noqa: E731
    assert budget("cpu") is None and budget("cuda") == 10 * GiB and budget("cuda:2") == 30 * GiB
    assert budget("map", "auto") == 60 * GiB  # every GPU
    assert budget("map", "auto", {0: 4 * GiB, 1: 5 * GiB, "cpu": 100 * GiB}) == 9 * GiB  # only those listed
    assert budget("map", "auto", {"cpu": GiB}) is None  # no GPU allowed: CPU and disk only
    assert budget("map", {"embeddings": 1, "encoder": 2, "pooler": "cpu"}, {2: GiB}) == 21 * GiB
    assert budget("map", {"": "disk"}) is None
    assert gpu_budget("cuda", None, None, gpu_count=0, free_memory=free) is None


def test_weights_are_measured_without_loading_them(tiny_model_dir):
    import transformers

    folder = tiny_model_dir("llama")
    ref = resolve_model(str(folder))
    model = transformers.AutoModel.from_pretrained(folder)
    assert float32_weight_bytes(ref, folder) == 4 * sum(p.numel() for p in model.parameters())


def test_where_inputs_go_under_a_device_map():
    class Placed:
        def __init__(self, placed):
            self.hf_device_map = placed

    assert execution_device(Placed({"embeddings": "cpu", "encoder": 1, "pooler": 0})) == "cuda:1"
    assert execution_device(Placed({"embeddings": "disk", "encoder": "cpu"})) == "cpu"
    assert execution_device(Placed({"": "cuda:3"})) == "cuda:3"


def test_a_device_map_that_needs_a_gpu_says_so_here(tiny_model_dir, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ref = resolve_model(str(tiny_model_dir("bert")))
    with pytest.raises(ModelError, match="puts weights on GPU 0, but no CUDA GPU is available"):
        load_model(ref, device_map={"embeddings": 0, "encoder": "cpu"})
    result = Pipeline(_settings(tmp_path / "c", device_map="auto", max_memory="0=1GiB,cpu=1GiB")).run([_figure(ref.path)])[0]
    assert isinstance(result.error, ModelError) and "no CUDA GPU" in str(result.error)


# -- running spread over the CPU and the disk --------------------------------------------------
@pytest.mark.real
def test_minilm_offloaded_to_disk_by_max_memory_gives_the_same_record(tmp_path, minilm_dir, offload_home):
    figure = _figure("minilm")
    whole = Pipeline(_settings(tmp_path / "whole")).compute_one(figure, qk=True).record
    # 70 MB: MiniLM's embeddings and a few layers stay in memory, the rest goes to disk.
    spread = Pipeline(_settings(tmp_path / "spread", device_map="auto", max_memory={"cpu": "70MB"})).compute_one(figure, qk=True)
    loaded = load_model(resolve_model("minilm"), device_map="auto", max_memory={"cpu": 70 * 10**6})
    assert {"cpu", "disk"} <= set(loaded.device_map.values()), loaded.device_map
    assert loaded.device == "cpu" and loaded.dtype == "float32"
    assert spread.source == "computed" and spread.record.key == whole.key  # float32 either way: one cache entry
    assert spread.record.neuron["available"]
    _assert_same(spread.record, whole, 1e-6)
    # The model's own output, before the cache keeps it at the precision the views show.
    raw = [extract(m, [ExtractRequest(TEXT, qk=True)])[0] for m in (load_model(resolve_model("minilm")), loaded)]
    _assert_same(raw[1], raw[0], 1e-6)


def test_an_explicit_device_map_puts_layers_where_it_says(tmp_path, tiny_model_dir, offload_home):
    folder = tiny_model_dir("llama")
    figure = _figure(folder)
    whole = Pipeline(_settings(tmp_path / "whole")).compute_one(figure, qk=True).record
    device_map = {"embed_tokens": "cpu", "layers.0": "disk", "layers.1": "cpu", "norm": "disk", "rotary_emb": "cpu"}
    spread = Pipeline(_settings(tmp_path / "spread", device_map=device_map)).compute_one(figure, qk=True).record
    loaded = load_model(resolve_model(str(folder)), device_map=device_map)
    assert loaded.device_map == device_map and loaded.device == "cpu"
    assert spread.neuron["available"]
    _assert_same(spread, whole, 1e-6)
    raw = [extract(m, [ExtractRequest(TEXT, qk=True)])[0] for m in (load_model(resolve_model(str(folder))), loaded)]
    _assert_same(raw[1], raw[0], 1e-6)
    # The disk part lives in a folder of this process under $ATTNDOCS_HOME, removed when it ends.
    assert [p.name.startswith("llama-") for p in (offload_home / "offload").iterdir()] == [True]


# -- lower precision ---------------------------------------------------------------------------
def test_bfloat16_is_an_entry_of_its_own_stored_as_float32(tmp_path, tiny_model_dir):
    folder = tiny_model_dir("llama")
    cache = tmp_path / "cache"
    whole = Pipeline(_settings(tmp_path / "f32")).compute_one(_figure(folder, "head")).record
    half = Pipeline(_settings(cache, dtype="bfloat16")).compute_one(_figure(folder, "head")).record
    assert half.key_parts["dtype"] == "bfloat16" and half.key != whole.key
    # Upcast to float32 before storing: rows still sum to 1 within bfloat16's rounding.
    _assert_same(half, whole, 3e-2)
    for section in half.sections.values():
        assert np.abs(section.attention.sum(-1) - 1).max() < 1e-2
    # float32 asked for explicitly is not served by the bfloat16 entry; auto is.
    assert Pipeline(_settings(cache, dtype="float32", execution_mode="frozen")).run([_figure(folder, "head")])[0].error is not None
    served = Pipeline(_settings(cache, execution_mode="frozen")).run([_figure(folder, "head")])[0]
    assert served.source == "cache" and served.record.key == half.key


def test_auto_that_resolves_to_bfloat16_stores_the_bfloat16_entry(tmp_path, fresh_model_copy, monkeypatch):
    # What a GPU too small for the float32 weights does, with the choice forced on this CPU.
    folder = fresh_model_copy("bert", tmp_path / "bert")
    monkeypatch.setattr(load_mod, "_resolve_dtype", lambda *args: "bfloat16")
    result = Pipeline(_settings(tmp_path / "cache")).compute_one(_figure(folder, "head"))
    assert result.record.key_parts["dtype"] == "bfloat16"
    entries = list(RecordCache(tmp_path / "cache").entries())
    assert [e.key for e in entries] == [result.record.key]
    monkeypatch.undo()
    again = Pipeline(_settings(tmp_path / "cache", execution_mode="frozen")).run([_figure(folder, "head")])[0]
    assert again.source == "cache"


def test_cli_flags_set_the_placement(tmp_path, tiny_model_dir, capsys, offload_home):
    folder = tiny_model_dir("bert")
    out = tmp_path / "r.safetensors"
    args = ["extract", TEXT, "--model", str(folder), "-o", str(out), "--cache-dir", str(tmp_path / "c")]
    assert main([*args, "--dtype", "float16", "--device-map", "embeddings=cpu,encoder=disk,pooler=cpu", "--max-memory", "cpu=1GB"]) == 0
    record = AttentionRecord.from_bytes(out.read_bytes())
    assert json.loads(json.dumps(record.key_parts))["dtype"] == "float16"
    assert main([*args, "--device-map", "everywhere"]) == 1
    assert "option 'device-map' has value 'everywhere'" in capsys.readouterr().err


def test_each_placement_is_its_own_load_and_is_loaded_tells_them_apart(tmp_path, fresh_model_copy, offload_home):
    ref = resolve_model(str(fresh_model_copy("bert", tmp_path / "bert")))
    device_map = {"embeddings": "cpu", "encoder": "disk", "pooler": "cpu"}
    assert not load_mod.is_loaded(ref)
    spread = load_model(ref, device_map=device_map)
    assert load_mod.is_loaded(ref, device_map=device_map) and not load_mod.is_loaded(ref)
    assert not load_mod.is_loaded(ref, device_map=device_map, max_memory={"cpu": 10**9})
    whole = load_model(ref)
    assert whole is not spread and whole.device_map is None and whole.device == "cpu"
    assert load_mod.is_loaded(ref) and load_mod.is_loaded(ref, "auto", dtype="auto") and not load_mod.is_loaded(ref, dtype="bfloat16")
    assert load_model(ref, device_map=dict(device_map)) is spread  # an equal map is the same load


def test_the_offload_folder_is_removed_when_the_process_ends(tmp_path, tiny_model_dir):
    import os
    import subprocess
    import sys

    script = (
        "from attndocs.models import resolve_model, load_model\n"
        f"loaded = load_model(resolve_model({str(tiny_model_dir('bert'))!r}), dtype='bfloat16', device_map={{'': 'disk'}})\n"
        "import os; from attndocs.models import attndocs_home\n"
        "print(len(os.listdir(attndocs_home() / 'offload')))\n"
    )
    env = {**os.environ, "ATTNDOCS_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"  # its folder while it ran (bfloat16 weights written there)
    assert list((tmp_path / "home" / "offload").iterdir()) == []
