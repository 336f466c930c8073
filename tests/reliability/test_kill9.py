"""SIGKILL at random moments while figures are computed and cached: nothing bad is ever served.

Each trial starts a real build in a separate process (the pipeline over several families
and the real minilm, or `attndocs extract`) and kills it with SIGKILL: during start-up,
at a random time while it computes, or right as it starts a cache write. Afterwards:

* `attndocs cache verify` passes, or what it reports damaged is refused by every read;
* no temporary file is listed or read as an entry;
* every entry is exactly what a clean computation gives;
* a rebuild on the same cache completes with every figure correct.

The short form (`make test`) runs 3 trials (a kill mid-write, one while computing, one
during start-up); `make reliability` runs RELIABILITY_TRIALS (>= 50), `attndocs extract`
kills included, and ends with a rebuild in a fresh process. RELIABILITY_SEED replays a
run's random choices.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import signal
import subprocess
import time
from collections import Counter
from contextlib import redirect_stdout
from pathlib import Path

from reliability_helpers import (
    PYTHON,
    REPO,
    assert_only_plain_safetensors,
    cache_files,
    check_cache_state,
    full_form,
    is_temp_name,
    same_record,
    start_worker,
    trials,
    worker_env,
)

from attndocs.cache import RecordCache
from attndocs.cli import main as cli_main
from attndocs.options import SiteSettings
from attndocs.pipeline import Pipeline

# The short form's 3 trials take the first three; `attndocs extract` kills (a whole CLI
# process loading minilm) join from the 4th trial on.
KINDS = ("write", "running", "startup", "cli")


def _kill(proc: subprocess.Popen[str]) -> None:
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it finished first; the trial still checks what it left


def _wait_for_line(proc: subprocess.Popen[str], wanted: str, count: int = 1) -> list[str]:
    """Read the worker's stdout until the ``count``-th line starting with ``wanted`` (or its end)."""
    seen, lines = 0, []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.strip())
        if line.startswith(wanted):
            seen += 1
            if seen >= count:
                break
    return lines


def _moment(lines: list[str]) -> str:
    """Where the kill landed, from the worker's last marker."""
    open_puts = Counter()
    for line in lines:
        if line.startswith("put+"):
            open_puts[line.split()[1]] += 1
        elif line.startswith("put-"):
            open_puts[line.split()[1]] -= 1
    if any(v > 0 for v in open_puts.values()):
        return "mid-write"
    if not lines:
        return "start-up"
    if lines[-1].startswith("done"):
        return "finished"
    return "computing"


def _rebuild_in_process(cache_dir: Path, figures, references) -> None:  # type: ignore[no-untyped-def]
    pipeline = Pipeline(SiteSettings.from_mapping({"cache_dir": str(cache_dir)}))
    results = pipeline.run([f.options() for f in figures], qk=[f.qk for f in figures])
    for figure, result in zip(figures, results):
        assert result.error is None, f"rebuild failed for {figure}: {result.error}"
        problem = same_record(result.record, references[result.record.key])
        assert problem is None, f"rebuild gave a wrong record for {figure.text[:30]!r}: {problem}"
    assert pipeline.stats.failed == 0


def test_sigkill_at_random_moments_never_serves_a_bad_entry_and_a_rebuild_completes(
    tmp_path, rel_figures, references, rng_seed, capsys
):
    rng = random.Random(rng_seed)
    count = trials(3)
    cache_dir = tmp_path / "cache"
    moments: Counter[str] = Counter()
    left_temps = 0
    for trial in range(count):
        kind = KINDS[trial % len(KINDS)]
        if trial % 10 == 0 or rng.random() < 0.2:
            shutil.rmtree(cache_dir, ignore_errors=True)  # some builds start cold
        lines: list[str] = []
        if kind == "cli":
            figure = rng.choice(rel_figures)
            cmd = [PYTHON, "-m", "attndocs.cli", "extract", "--cache-dir", str(cache_dir), "--mode", rng.choice(["force", "auto"]),
                   "--model", figure.model, "-o", str(tmp_path / "out.safetensors")]
            cmd += ["--qk"] if figure.qk else []
            cmd += ["--text-b", figure.text_b] if figure.text_b is not None else []
            cmd += ["--target", figure.target] if figure.target is not None else []
            proc = subprocess.Popen([*cmd, figure.text], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=worker_env(), cwd=str(REPO))
            time.sleep(rng.uniform(0.5, 6.0))
            _kill(proc)
            proc.communicate()
            moment = "cli"
        else:
            proc = start_worker(cache_dir, rel_figures, mode=rng.choice(["force", "force", "auto"]) if kind != "write" else "force",
                                rounds=3, spec_dir=tmp_path)
            if kind == "startup":
                time.sleep(rng.uniform(0.0, 3.0))
                _kill(proc)
            elif kind == "running":
                lines = _wait_for_line(proc, "ready")
                time.sleep(rng.uniform(0.0, 2.5))
                _kill(proc)
            elif trial == 0:
                # Aimed: the first round's last put is the largest record (the long minilm
                # figure, computed last); ~20 ms of encoding come before its ~30 ms of writing.
                lines = _wait_for_line(proc, "put+", count=len(rel_figures))
                time.sleep(rng.uniform(0.025, 0.045))
                _kill(proc)
            else:
                lines = _wait_for_line(proc, "put+", count=rng.randint(1, 2 * len(rel_figures)))
                # A put of the largest record takes ~50 ms (encoding, then writing): land anywhere in it.
                time.sleep(rng.uniform(0.0, 0.05))
                _kill(proc)
            rest, _ = proc.communicate()
            lines += [line.strip() for line in rest.splitlines()]
            moment = _moment(lines)
        assert proc.returncode in (-signal.SIGKILL, 0), f"trial {trial} ({kind}): exit {proc.returncode}"
        moments[moment] += 1

        with redirect_stdout(io.StringIO()) as said:
            rc = cli_main(["cache", "verify", "--cache-dir", str(cache_dir)])
        assert rc == 0 or "damaged" in said.getvalue()
        state = check_cache_state(cache_dir, references)
        assert (rc == 1) == (state["damaged"] > 0), f"trial {trial}: verify exit {rc} but {state['damaged']} damaged"
        left_temps += state["temps"] > 0
        assert_only_plain_safetensors([cache_dir])
        _rebuild_in_process(cache_dir, rel_figures, references)
        assert check_cache_state(cache_dir, references)["damaged"] == 0

    if full_form():
        # A rebuild in a fresh process (as the next CI run would do) completes too.
        final = start_worker(cache_dir, rel_figures, mode="auto", spec_dir=tmp_path)
        _, err = final.communicate(timeout=300)
        assert final.returncode == 0, err
    # verify --fix removes the leftovers of the killed writers (all dead now) and nothing else.
    entries_before = {e.key for e in RecordCache(cache_dir).entries()}
    with redirect_stdout(io.StringIO()):
        assert cli_main(["cache", "verify", "--fix", "--cache-dir", str(cache_dir)]) == 0
    assert not [p for p in cache_files(cache_dir) if is_temp_name(p.name)]
    assert {e.key for e in RecordCache(cache_dir).entries()} == entries_before
    with capsys.disabled():
        print(f"\nkill -9: {count} trials, kills landed: {dict(moments)}; trials leaving a temporary file: {left_temps}")
    if count >= 50:
        # The full form must have hit writes in flight, or it proved nothing about them.
        assert moments["mid-write"] >= 1, moments


def test_a_complete_file_left_under_a_temporary_name_is_never_served(tmp_path, rel_figures, references):
    """A writer killed between its fsync and its rename leaves a whole, valid record behind
    under a temporary name: it must stay invisible (a later build writes the entry itself)."""
    figure = next(f for f in rel_figures if f.model == "minilm")
    record = next(r for r in references.values() if r.text == figure.text and "MiniLM" in r.model_id)
    cache = RecordCache(tmp_path / "cache")
    path = cache.put(record)
    os.replace(path, path.with_name(f".{record.key}.0123abcd-999999-abcdef.tmp"))
    assert cache.get(record.key) is None
    assert list(cache.entries()) == [] and cache.verify() == []
    with redirect_stdout(io.StringIO()) as said:
        assert cli_main(["cache", "ls", "--json", "--cache-dir", str(cache.root)]) == 0
    assert record.key not in said.getvalue()
    # A frozen build (cache only) finds nothing to serve for that figure.
    frozen = Pipeline(SiteSettings.from_mapping({"cache_dir": str(cache.root), "execution_mode": "frozen"}))
    result = frozen.run([figure.options()], qk=[figure.qk])[0]
    assert result.record is None and "frozen" in str(result.error)
