"""The scale table of issue 12, item 6: real model shapes at real lengths, on this machine's CPU.

For random-initialised models of real shapes built from configs (``bench_extract.build``, no
download): BERT-base (12 layers x 12 heads, d768), GPT-2 small (12 x 12, d768) and a ~1B
grouped-query Llama (16 layers x 32 heads, 8 key/value heads, d2048), at 128, 512 and 1,024
tokens, plus the bundled minilm at 512 tokens (the CPU extraction target), one row per
(model, tokens):

- **extraction**: a bare ``model(**inputs, output_attentions=True)`` (eager, tokenizing
  included) against ``extract_from_model(..., qk=True)`` (forward with hooks, query/key
  vectors, self-check, record); wall-clock medians and their ratio, and the ratio of the same
  runs' process CPU time (steadier on a shared machine; the target is judged on it); three times
  ``--runs`` pairs for cases whose forward pass is estimated under 0.5 s, ``--runs`` under 1.5 s,
  one pair otherwise;
- **render**: ``render_figure`` of the head view (best of two) and of every other view
  (once; the slowest is named), from ``record.as_cached()``, the record the pipeline renders;
- **bytes before the first paint**: ``RenderedFigure.first_bytes`` with ``embed="file"``
  (the JSON header and the chunk-0 script), head view and the largest over the views;
- **total bytes**: the head view's header and every chunk script it ships (``embed="file"``);
- **cache**: ``len(record.to_cache_bytes())``, the entry the pipeline writes for this record
  (query/key vectors included), and its ratio to what the pages ship for the views that entry
  serves (head and neuron views, every chunk);
- **Chromium** (BERT-base at 512 tokens only, to keep time down): the head view with side
  files from a local ``http.server`` and from ``file://`` with the network off, first render
  (navigation to drawn) and a change to the last layer (not loaded yet) until drawn, as
  ``bench_payloads.measure_browser`` measures them (its page scripts are reused).

Every record comes from one real extraction of the model (the first warm-up's; one warm-up
pair of bare pass and extraction precedes the timed runs, two for cases under 1.5 s). Each model runs
in a process of its own (its memory is its own; a timeout keeps the rows it finished). Cases
whose forward pass is estimated over ``--max-forward-s`` (from the model's matmul work and a
matmul calibrated here) are skipped and named. torch runs on ``--threads`` (default 1).

Usage: python benchmarks/bench_scale.py [--quick] [--models bert-base,gpt2,llama-1b] [--tokens 128,512,1024]
       [--runs 3] [--threads 1] [--max-forward-s 8] [--no-browser] [--json out.json]

From another script: ``scale_rows(...)`` returns the rows (dicts), ``format_table(rows)`` the text,
``TARGETS`` the issue's targets.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(REPO), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

VIEWS = ("head", "model", "neuron", "matrix", "summary")
# Issue 12's targets, as they apply to this table.
TARGETS = {
    "first_paint_bytes": 1_000_000,  # bytes before the first paint, at most (any figure up to 32 x 32 x 1,024)
    "layer_change_ms": 300.0,  # change to a layer not loaded yet, under (local server, BERT-base, 512 tokens)
    "first_render_ms": 1000.0,  # Chromium first render, under (same figure)
    "render_s": 0.5,  # Python render per figure, at most (BERT-base, 512 tokens)
    "extract_ratio": 1.3,  # extraction with Q/K over a bare forward, at most (minilm, 512 tokens, CPU)
    "cache_ratio": 3.0,  # cache entry over the bytes the pages ship for the same figures, at most
}
BROWSER_CASE = "bert-base:512"
RENDER_CASE = "bert-base:512"  # where the Python render target (0.5 s per figure, every view) is judged


def yes(ok: bool) -> str:
    return "yes" if ok else "NO"


# -- one model, all its token counts, in this process ---------------------------------------------
def measure_case(
    model: Any,
    tokenizer: Any,
    name: str,
    tokens: int,
    *,
    runs: int,
    warmups: int,
    browser: bool,
    browser_runs: int,
    log: Any,
) -> dict[str, Any]:
    import inspect

    import torch
    from bench_extract import text_for, time_pair

    from attndocs.extract import extract_from_model
    from attndocs.options import FigureOptions
    from attndocs.render import render_figure

    text = text_for(tokenizer, tokens)
    params = inspect.signature(model.forward).parameters
    row: dict[str, Any] = {"model": name, "tokens": tokens, "runs": runs}

    def bare() -> None:
        encoded = tokenizer(text, return_tensors="pt")
        with torch.inference_mode():
            model(**{k: v for k, v in encoded.items() if k in params}, output_attentions=True)

    record = None

    def extraction() -> None:
        nonlocal record
        got = extract_from_model(model, tokenizer, text, qk=True)
        if record is None:
            record = got  # the first extraction's record (a warm-up's) is the one measured below
        del got

    for _ in range(warmups):  # the first runs fault in fresh memory and are slower: warm both up
        bare()
        extraction()
    row["bare_ms"], row["extract_ms"], row["bare_cpu_ms"], row["extract_cpu_ms"] = time_pair(bare, extraction, runs)
    row["ratio"] = row["extract_ms"] / row["bare_ms"]
    row["cpu_ratio"] = row["extract_cpu_ms"] / row["bare_cpu_ms"]
    assert record is not None
    row["shape"] = f"{record.layers} x {record.heads}"
    neuron = record.neuron
    row["neuron"] = "ok" if neuron.get("available") else f"withheld: {neuron.get('reason')}"
    log(f"    extraction {row['extract_ms'] / 1000:.2f} s over bare {row['bare_ms'] / 1000:.2f} s")

    started = time.perf_counter()
    row["cache_bytes"] = len(record.to_cache_bytes())
    shown = record.as_cached()
    row["cache_s"] = time.perf_counter() - started
    del record

    # Python render, head view: best of two (the first also gives the bytes).
    head_times = []
    for _ in range(2):
        t = time.perf_counter()
        head = render_figure(shown, FigureOptions(view="head"), embed="file")
        head_times.append(time.perf_counter() - t)
    row["render_head_s"] = min(head_times)
    row["first_head_bytes"] = head.first_bytes
    row["total_head_bytes"] = _total(head)
    row["chunks_head"] = len(head.files)
    log(
        f"    head view render {row['render_head_s']:.2f} s, first paint {head.first_bytes:,} B, total {row['total_head_bytes']:,} B"
    )
    views: dict[str, dict[str, float]] = {
        "head": {"s": row["render_head_s"], "first": head.first_bytes, "total": row["total_head_bytes"]}
    }
    # Every other view: once, or best of two where the render target applies (one figure of each view
    # is judged there, so one unlucky time slice on a shared machine does not decide it).
    tries = 2 if f"{name}:{tokens}" == RENDER_CASE else 1
    for view in VIEWS[1:]:
        times = []
        try:
            for _ in range(tries):
                t = time.perf_counter()
                fig = render_figure(shown, FigureOptions(view=view), embed="file")
                times.append(time.perf_counter() - t)
        except Exception as exc:  # e.g. a neuron view whose vectors were withheld: the row says so
            log(f"    {view} view not rendered: {exc}")
            views[view] = {"s": 0.0, "first": 0, "total": 0}
            continue
        views[view] = {"s": min(times), "first": fig.first_bytes, "total": _total(fig)}
        del fig
    row["views"] = views
    slowest = max(views, key=lambda v: views[v]["s"])
    row["slowest_view"], row["render_slowest_s"] = slowest, views[slowest]["s"]
    biggest = max(views, key=lambda v: views[v]["first"])
    row["first_max_view"], row["first_max_bytes"] = biggest, views[biggest]["first"]
    row["pages_bytes"] = views["head"]["total"] + views["neuron"]["total"]  # the views one Q/K entry serves
    row["cache_ratio"] = row["cache_bytes"] / row["pages_bytes"]
    log(
        f"    slowest view {slowest} {row['render_slowest_s']:.2f} s; cache {row['cache_bytes']:,} B "
        f"({row['cache_ratio']:.2f}x head + neuron pages)"
    )
    if browser:
        row.update(measure_browser(shown, head, browser_runs, log))
    return row


def _total(figure: Any) -> int:
    """Header (in the page) plus every chunk script (beside it): all a figure with embed="file" ships."""
    header = figure.first_bytes - len(_first_script(figure))
    return header + sum(len(d) for d in figure.files.values())


def _first_script(figure: Any) -> bytes:
    # render_figure names chunk 0 first in files (chunk order); page_bytes = header + chunk 0 as well
    return next(iter(figure.files.values()))


def measure_browser(record: Any, head: Any, runs: int, log: Any) -> dict[str, Any]:
    """Chromium: first render and a change to the last layer (not loaded yet), head view, embed="file"."""
    import numpy as np
    from bench_payloads import _Quiet, open_and_change
    from playwright.sync_api import sync_playwright

    from attndocs.render import asset_files, asset_tags
    from tests.chromium import CHROMIUM_ARGS, chromium_executable

    del head  # rendered again with the static/ prefix
    from attndocs.options import FigureOptions
    from attndocs.render import render_figure

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        folder = Path(tmp)
        (folder / "static").mkdir()
        for name, data in asset_files().items():
            (folder / "static" / name).write_bytes(data)
        fig = render_figure(record, FigureOptions(view="head"), embed="file", file_prefix="static/")
        for name, data in fig.files.items():
            (folder / "static" / name).write_bytes(data)
        (folder / "head.html").write_text(
            f'<!DOCTYPE html><html><head><meta charset="utf-8">{asset_tags("static/")}</head><body>{fig.html}</body></html>',
            encoding="utf-8",
        )
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        browser = p.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        try:
            for where, url in (
                ("server", f"http://127.0.0.1:{httpd.server_address[1]}/head.html"),
                ("file", (folder / "head.html").as_uri()),
            ):
                firsts, changes, loaded = [], [], []
                for _ in range(runs):
                    first, result = open_and_change(browser, url, offline=where == "file", layer=record.layers - 1)
                    firsts.append(first)
                    changes.append(result["ms"])
                    loaded.append(bool(result["loaded"]))
                out[f"first_{where}_ms"] = float(np.median(firsts))
                out[f"change_{where}_ms"] = float(np.median(changes))
                out[f"change_{where}_loaded"] = all(loaded)
                log(
                    f"    Chromium ({where}): first render {out[f'first_{where}_ms']:.0f} ms, layer change "
                    f"{out[f'change_{where}_ms']:.0f} ms (a chunk loaded: {all(loaded)})"
                )
        finally:
            browser.close()
            httpd.shutdown()
    return out


def run_model(
    name: str,
    token_counts: list[int],
    *,
    runs: int,
    threads: int,
    max_forward_s: float,
    browser_runs: int,
    browser: bool,
    small: bool,
    browser_case: str,
) -> None:
    """One model in this process: a JSON line per case on stdout, as each finishes."""
    import bench_extract
    import torch

    torch.set_num_threads(threads)
    log = functools.partial(print, file=sys.stderr, flush=True)
    gflops = bench_extract.calibrate_gflops(threads)
    started = time.perf_counter()
    model, tokenizer, about = bench_extract.build(name, small=small)
    log(f"  {name} ({about}) built in {time.perf_counter() - started:.1f} s; matmul {gflops:.0f} GFLOP/s")
    for tokens in token_counts:
        row: dict[str, Any] = {"model": name, "tokens": tokens, "about": about}
        limit = bench_extract.max_tokens(name, small)
        estimate = bench_extract.forward_gflop(name, tokens, small) / gflops
        if tokens > limit:
            row["skipped"] = f"reads at most {limit} tokens"
        elif estimate > max_forward_s:
            row["skipped"] = (
                f"forward pass estimated at {estimate:.0f} s here (over --max-forward-s {max_forward_s:g}); "
                "a case would take minutes on this 2-core CPU"
            )
        if "skipped" in row:
            log(f"  {name} at {tokens} tokens: skipped, {row['skipped']}")
            print(json.dumps(row), flush=True)
            continue
        # Short cases get three times the runs: a 0.2 s pass on a shared machine varies by more than
        # the 0.3x between the CPU target and what it measures (minilm at 512 tokens read 1.20x to
        # 1.30x in three 9-run medians in a row), and nine pairs take a few seconds there.
        case_runs = 3 * runs if estimate < 0.5 else runs if estimate < 1.5 else 1
        log(f"  {name} at {tokens} tokens ({case_runs} timed run(s), forward estimated {estimate:.1f} s) ...")
        row.update(
            measure_case(
                model,
                tokenizer,
                name,
                tokens,
                runs=case_runs,
                warmups=2 if estimate < 1.5 else 1,
                browser=browser and f"{name}:{tokens}" == browser_case,
                browser_runs=browser_runs,
                log=log,
            )
        )
        row["about"] = about
        print(json.dumps(row), flush=True)


# -- the table --------------------------------------------------------------------------------------
def scale_rows(
    cases: list[tuple[str, list[int]]],
    *,
    runs: int = 3,
    threads: int = 1,
    max_forward_s: float = 8.0,
    browser: bool = True,
    browser_runs: int = 3,
    small: bool = False,
    timeout_s: float = 420.0,
    browser_case: str = "bert-base:512",
    log: Any = print,
) -> list[dict[str, Any]]:
    """Every (model, tokens) case, one process per model; a model that runs past ``timeout_s``
    keeps the cases it finished, and the rest are named as timed out."""
    rows: list[dict[str, Any]] = []
    for name, token_counts in cases:
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--model-process",
            name,
            "--tokens",
            ",".join(map(str, token_counts)),
            "--runs",
            str(runs),
            "--threads",
            str(threads),
            "--max-forward-s",
            str(max_forward_s),
            "--browser-runs",
            str(browser_runs),
            "--browser-case",
            browser_case,
        ]
        command += ([] if browser else ["--no-browser"]) + (["--small"] if small else [])
        log(f"  {name}: {', '.join(map(str, token_counts))} tokens")
        err_path = Path(tempfile.mkstemp(prefix="bench-scale-", suffix=".log")[1])
        stdout, problem = "", ""
        with err_path.open("w") as err:
            proc = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=err, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}
            )
            try:
                stdout, _ = proc.communicate(timeout=timeout_s)
                if proc.returncode:
                    problem = f"failed (exit {proc.returncode})"
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, _ = proc.communicate()
                problem = f"timed out after {timeout_s:.0f} s"
        errors = err_path.read_text()
        err_path.unlink()
        for line in errors.splitlines():
            if line.startswith("    ") or line.startswith("  "):
                log("  " + line)
        done = {}
        for line in stdout.splitlines():
            if line.startswith("{"):
                row = json.loads(line)
                done[row["tokens"]] = row
        for tokens in token_counts:
            if tokens in done:
                rows.append(done[tokens])
            else:
                last = (errors.strip().splitlines() or ["?"])[-1][:200]
                rows.append({"model": name, "tokens": tokens, "skipped": f"{problem or 'no result'}: {last}"})
    return rows


def _ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms"


def _b(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


COLUMNS = (
    "model",
    "tokens",
    "bare forward",
    "extraction Q/K",
    "ratio (CPU-time ratio)",
    "render head",
    "slowest view",
    "first paint head",
    "first paint max (view)",
    "total head",
    "cache entry",
    "cache / pages",
    "Chromium first render",
    "layer change (not loaded)",
)
TARGET_ROW = (
    "target",
    "",
    "",
    "",
    "<= 1.3x CPU (minilm 512)",
    "<= 0.5 s (bert-base 512)",
    "<= 0.5 s (bert-base 512)",
    "<= 1 MB",
    "<= 1 MB",
    "",
    "",
    "<= 3x (head+neuron)",
    "< 1 s (bert-base 512)",
    "< 300 ms (bert-base 512)",
)


def checks(row: dict[str, Any]) -> dict[str, bool]:
    """Which targets apply to this row, and whether each is met."""
    out: dict[str, bool] = {}
    if row.get("skipped"):
        return out
    if row["model"] == "minilm" and row["tokens"] == 512:
        out["extract_ratio"] = row["cpu_ratio"] <= TARGETS["extract_ratio"]
    if f"{row['model']}:{row['tokens']}" == RENDER_CASE:  # "at most 0.5 s per figure": every view
        out["render_s"] = row["render_head_s"] <= TARGETS["render_s"]
        out["render_slowest_s"] = row["render_slowest_s"] <= TARGETS["render_s"]
    if row["model"] != "minilm":  # every figure up to 32 x 32 x 1,024
        out["first_paint_bytes"] = row["first_max_bytes"] <= TARGETS["first_paint_bytes"]
        out["first_head_bytes"] = row["first_head_bytes"] <= TARGETS["first_paint_bytes"]
    out["cache_ratio"] = row["cache_ratio"] <= TARGETS["cache_ratio"]
    if "first_server_ms" in row and f"{row['model']}:{row['tokens']}" == BROWSER_CASE:
        out["first_render_ms"] = row["first_server_ms"] < TARGETS["first_render_ms"]
        out["layer_change_ms"] = row["change_server_ms"] < TARGETS["layer_change_ms"]
    return out


def table_cells(row: dict[str, Any]) -> tuple[str, ...]:
    if row.get("skipped"):
        return (
            row["model"],
            str(row["tokens"]),
            "-",
            "-",
            "-",
            "-",
            "-",
            "-",
            "-",
            "-",
            "-",
            "-",
            "-",
            f"skipped: {row['skipped']}",
        )
    ok = checks(row)

    def mark(text: str, key: str) -> str:
        return f"{text} {yes(ok[key])}" if key in ok else text

    browser_first = browser_change = "-"
    if "first_server_ms" in row:
        browser_first = mark(f"{_ms(row['first_server_ms'])} (file:// {_ms(row['first_file_ms'])})", "first_render_ms")
        browser_change = mark(
            f"{_ms(row['change_server_ms'])} (file:// {_ms(row['change_file_ms'])})", "layer_change_ms"
        )
    return (
        row["model"],
        str(row["tokens"]),
        _ms(row["bare_ms"]),
        _ms(row["extract_ms"]),
        mark(f"{row['ratio']:.2f}x ({row['cpu_ratio']:.2f}x)", "extract_ratio"),
        mark(f"{row['render_head_s']:.2f} s", "render_s"),
        mark(f"{row['slowest_view']} {row['render_slowest_s']:.2f} s", "render_slowest_s"),
        mark(_b(row["first_head_bytes"]), "first_head_bytes"),
        mark(f"{_b(row['first_max_bytes'])} ({row['first_max_view']})", "first_paint_bytes"),
        _b(row["total_head_bytes"]),
        _b(row["cache_bytes"]),
        mark(f"{row['cache_ratio']:.2f}x", "cache_ratio"),
        browser_first,
        browser_change,
    )


def format_table(rows: list[dict[str, Any]], markdown: bool = False) -> str:
    lines = [COLUMNS, TARGET_ROW] + [table_cells(r) for r in rows]
    if markdown:
        out = [
            "| " + " | ".join(COLUMNS) + " |",
            "|" + "|".join("---" if i < 2 else "--:" for i in range(len(COLUMNS))) + "|",
        ]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in lines[1:]]
        return "\n".join(out)
    widths = [
        max(len(line[i]) for line in lines if not line[-1].startswith("skipped") or i < 2) for i in range(len(COLUMNS))
    ]
    text = []
    for line in lines:
        if line[-1].startswith("skipped"):
            text.append(f"{line[0].ljust(widths[0])}  {line[1].ljust(widths[1])}  {line[-1]}")
        else:
            text.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def missed(rows: list[dict[str, Any]]) -> list[str]:
    names = {
        "extract_ratio": "extraction with Q/K over a bare forward (CPU time)",
        "render_s": "Python render, head view",
        "render_slowest_s": "Python render, slowest view",
        "first_paint_bytes": "bytes before the first paint (largest view)",
        "first_head_bytes": "bytes before the first paint (head view)",
        "cache_ratio": "cache entry / pages shipped",
        "first_render_ms": "Chromium first render (local server)",
        "layer_change_ms": "layer change to a layer not loaded (local server)",
    }
    return [f"{r['model']} at {r['tokens']} tokens: {names[k]}" for r in rows for k, ok in checks(r).items() if not ok]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="bert-base,gpt2,llama-1b")
    parser.add_argument("--tokens", default="128,512,1024")
    parser.add_argument(
        "--runs", type=int, default=3, help="timed bare/extraction pairs for cases under 1.5 s a forward (else 1)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--max-forward-s",
        type=float,
        default=8.0,
        help="skip cases whose forward pass is estimated longer (matmul work / calibrated matmul; "
        "the real pass is 1.5-2x the estimate here)",
    )
    parser.add_argument("--browser-runs", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument(
        "--browser-case", default=BROWSER_CASE, help="MODEL:TOKENS measured in Chromium (default bert-base:512)"
    )
    parser.add_argument(
        "--no-minilm", action="store_true", help="leave out the minilm 512-token row (the CPU extraction target)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run (about a minute): bert-base and minilm at 128 tokens"
    )
    parser.add_argument("--small", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--timeout-s", type=float, default=420.0, help="per model process")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--model-process", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    token_counts = [int(t) for t in args.tokens.split(",") if t]
    if args.model_process:
        run_model(
            args.model_process,
            token_counts,
            runs=args.runs,
            threads=args.threads,
            max_forward_s=args.max_forward_s,
            browser_runs=args.browser_runs,
            browser=not args.no_browser,
            small=args.small,
            browser_case=args.browser_case,
        )
        return 0
    cases = [(m, token_counts) for m in args.models.split(",") if m]
    if not args.no_minilm:
        cases.insert(0, ("minilm", [512]))
    if args.quick:
        cases = [("minilm", [128]), ("bert-base", [128])]
        args.runs, args.browser_runs = 1, 1
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(
        f"scale table (issue 12): {os.cpu_count()} CPU cores, load average {load}, {args.threads} torch thread(s)",
        flush=True,
    )
    started = time.perf_counter()
    if args.quick:
        args.browser_case = "bert-base:128"
    rows = scale_rows(
        cases,
        runs=args.runs,
        threads=args.threads,
        max_forward_s=args.max_forward_s,
        browser=not args.no_browser,
        browser_runs=args.browser_runs,
        small=args.small,
        timeout_s=args.timeout_s,
        browser_case=args.browser_case,
        log=lambda m: print(m, flush=True),
    )
    print()
    print(format_table(rows))
    gaps = missed(rows)
    print("\nmissed targets: " + ("; ".join(gaps) if gaps else "none"))
    print(f"({(time.perf_counter() - started) / 60:.1f} min)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
