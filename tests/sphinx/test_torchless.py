"""A build whose figures are all cached runs without torch or transformers."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from site_helpers import ROOTS, plain, read_output

pytestmark = pytest.mark.real

# torch and transformers set to None in sys.modules make any `import torch` fail at once.
SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["torch"] = None
    sys.modules["transformers"] = None
    from sphinx.cmd.build import build_main
    status = build_main(sys.argv[1:])
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers") and sys.modules[m] is not None)
    print("heavy modules loaded:", loaded)
    sys.exit(status or (1 if loaded else 0))
    """
)


def test_a_warm_build_imports_no_torch_and_writes_the_same_pages(build, tmp_path):
    cache = tmp_path / "cache"
    # sphinx.testing picks the "basic" theme unless told; sphinx-build uses alabaster.
    cold = build("basic", confoverrides={"attention_cache_dir": str(cache), "html_theme": "alabaster"})
    out = tmp_path / "warm"
    args = ["-W", "-b", "html", "-D", f"attention_cache_dir={cache}", "-d", str(tmp_path / "doctrees"), str(ROOTS / "test-basic"), str(out)]
    run = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=300)
    output = plain(run.stdout + run.stderr)
    assert run.returncode == 0, output
    assert "heavy modules loaded: []" in output
    assert "3 figure(s): 3 from the cache, 0 computed, 0 failed, 0 model load(s)" in output
    before, after = read_output(cold.outdir), read_output(out)
    assert before.keys() == after.keys()
    assert [name for name in before if before[name] != after[name]] == []


def test_a_miss_without_torch_is_a_warning_not_a_crash(tmp_path):
    args = ["-b", "html", "-D", f"attention_cache_dir={tmp_path / 'empty'}", "-d", str(tmp_path / "doctrees"), str(ROOTS / "test-basic"), str(tmp_path / "out")]
    run = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=300)
    output = plain(run.stdout + run.stderr)
    assert run.returncode == 0, output
    assert "3 failed" in output
    assert output.count("computing figures needs torch and transformers") == 3 and "[attndocs.model]" in output
    assert (tmp_path / "out" / "index.html").is_file()
