"""attndocs against BertViz on the same attention: page bytes, Python render, Chromium timings, memory.

Both tools get the same input: the real minilm's attention (6 layers x 12 heads) at a given
token count, computed once by attndocs and handed to BertViz as the tuple of torch tensors
its API takes. What is measured, per tool, view (head, model) and size:

* **bytes**: what one figure adds to a page. attndocs: the figure fragment a site page
  carries (attndocs.js/.css are shared once per site, counted separately) and the
  standalone page with the assets inlined. BertViz: the HTML of ``html_action="return"``
  (its require.js, d3 and jQuery come from a CDN and are not counted).
* **Python render**: wall time of one render call in a fresh process (attndocs:
  ``render_figure``; BertViz: ``head_view`` / ``model_view`` with ``html_action="return"``),
  median of several calls; peak Python allocation of one call (tracemalloc), and the
  process's peak resident memory (VmHWM; BertViz's process holds torch, which its API
  needs for the attention tensors).
* **first render**: each page opened from disk in headless Chromium; time from navigation
  start (performance.now() = 0) until the figure is drawn and the next frame painted:
  attndocs when every figure's ``data-attndocs-status`` is ``ready`` and its canvases are
  flushed; BertViz when a ``requirejs(['jquery','d3'])`` callback added after its own
  (require.js runs them in order) fires, i.e. its synchronous drawing has returned. Both
  then wait for requestAnimationFrame plus a MessageChannel message, so layout and paint of
  that frame are included. BertViz is capped (``--cap``): "> N s" when it has not drawn.
* **head view interactions**: layer change (set the layer ``<select>`` and dispatch
  ``change``) and token hover (dispatch ``mouseover`` on a left-hand token), each timed from
  just before the dispatch to the next painted frame (requestAnimationFrame, then a
  MessageChannel message), starting right after a frame; medians of several runs. Since a
  frame is ~16.7 ms, values near 17 ms mean "within one frame".
* **JS heap**: V8 heap used and allocated after the first render (CDP
  Performance.getMetrics: JSHeapUsedSize / JSHeapTotalSize), and the DOM node count.

BertViz's CDN files are served from npm packages fetched by ``make bench-setup`` into
benchmarks/.npm (require.js 2.3.6 and d3 5.7.0 exactly as it asks; jQuery 2.0.0 is not on
npm, so jQuery 2.1.0, the nearest release, stands in). Every other request is refused.

Usage (normally through benchmarks/run.py): python benchmarks/bench_bertviz.py [--sizes 13,50,200]
Internal: python benchmarks/bench_bertviz.py render-one TOOL VIEW RECORD OUT RUNS (one measurement
in a fresh process; prints JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NPM_DIR = HERE / ".npm"
CDN = "https://cdnjs.cloudflare.com/ajax/libs/"
# CDN path -> (npm tarball, file inside it). BertViz 1.4.1 asks for exactly these URLs.
CDN_FILES = {
    "require.js/2.3.6/require.min.js": ("requirejs-2.3.6.tgz", "package/require.js"),
    "d3/5.7.0/d3.min.js": ("d3-5.7.0.tgz", "package/dist/d3.min.js"),
    "jquery/2.0.0/jquery.min.js": ("jquery-2.1.0.tgz", "package/dist/jquery.min.js"),
}
NPM_PACKAGES = ("requirejs@2.3.6", "d3@5.7.0", "jquery@2.1.0")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TOOLS = ("attndocs", "bertviz")
VIEWS = ("head", "model")


# -- setup checks ---------------------------------------------------------------------------
def bertviz_available() -> str | None:
    """None when BertViz and its CDN files are ready, else what `make bench-setup` must do."""
    try:
        import bertviz  # noqa: F401
    except ImportError as exc:
        return f"BertViz is not importable ({exc}): run `make bench-setup`"
    missing = [name for name, _ in CDN_FILES.values() if not (NPM_DIR / name).is_file()]
    if missing:
        return f"npm packages missing in {NPM_DIR}: {', '.join(missing)}: run `make bench-setup`"
    return None


def cdn_bodies() -> dict[str, bytes]:
    """The files BertViz's page requests from its CDN, read from the npm tarballs."""
    out = {}
    for path, (tarball, member) in CDN_FILES.items():
        with tarfile.open(NPM_DIR / tarball) as archive:
            handle = archive.extractfile(member)
            assert handle is not None, f"{member} missing from {tarball}"
            out[CDN + path] = handle.read()
    return out


# -- Python side: one render in a fresh process ----------------------------------------------------
def _render_one(tool: str, view: str, record_path: str, out: str, runs: int) -> dict[str, Any]:
    """Runs inside a fresh process: render ``runs`` times, measure, write the page to ``out``."""
    from attndocs.record import AttentionRecord

    record = AttentionRecord.load(record_path)
    if tool == "attndocs":
        from attndocs.options import FigureOptions
        from attndocs.render import render_figure, render_page

        options = FigureOptions(view=view)

        def render() -> str:
            return render_figure(record, options).html

        def page(fragment: str) -> str:
            return render_page([fragment], "bench")
    else:
        import bertviz
        import numpy as np
        import torch

        section = record.sections["encoder"]
        attention = tuple(torch.from_numpy(np.ascontiguousarray(section.attention[i][None])) for i in range(section.layers))
        tokens = record.sides["encoder"].tokens
        function = bertviz.head_view if view == "head" else bertviz.model_view

        def render() -> str:
            return function(attention, tokens, html_action="return").data

        def page(fragment: str) -> str:
            return f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>bench</title></head><body>\n{fragment}\n</body></html>\n'

    rss_before = _peak_rss()
    times = []
    fragment = ""
    for _ in range(runs):
        started = time.perf_counter()
        fragment = render()
        times.append(time.perf_counter() - started)
    rss_after = _peak_rss()
    tracemalloc.start()
    render()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    html = page(fragment)
    Path(out).write_text(html, encoding="utf-8")
    return {
        "fragment_bytes": len(fragment.encode("utf-8")),
        "page_bytes": len(html.encode("utf-8")),
        "render_s": statistics.median(times),
        "render_runs": runs,
        "tracemalloc_peak": peak,
        "rss_growth": max(0, rss_after - rss_before),
        "rss_peak": rss_after,
    }


def _peak_rss() -> int:
    """This process's peak resident memory in bytes (VmHWM).

    Not ru_maxrss: Linux carries the parent's peak into ru_maxrss across fork and exec, so
    a child of a large benchmark process would report the parent's memory.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def render_in_subprocess(tool: str, view: str, record_path: Path, out: Path, runs: int, timeout: float) -> dict[str, Any] | None:
    """One `render-one` measurement in a fresh process; None when it ran past ``timeout``."""
    cmd = [sys.executable, __file__, "render-one", tool, view, str(record_path), str(out), str(runs)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} {view} render failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the browser ----------------------------------------------------------------------------
# Installed before any page script: marks when the figure is drawn and the next frame painted.
_INIT = """
(() => {
  window.__bench = {drawn: null, painted: null};
  const painted = () => new Promise((resolve) => requestAnimationFrame(() => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => resolve(performance.now());
    channel.port2.postMessage(0);
  }));
  window.__benchFrame = painted;
  window.__benchDrawn = () => {
    if (window.__bench.drawn !== null) return;
    window.__bench.drawn = performance.now();
    painted().then((t) => { window.__bench.painted = t; });
  };
  // attndocs: every figure ready (or failed), then its canvases flushed.
  const check = () => {
    const figs = document.querySelectorAll('.attndocs-figure');
    if (!figs.length) return;
    for (const f of figs) if (!['ready', 'error'].includes(f.getAttribute('data-attndocs-status'))) return;
    document.querySelectorAll('.attndocs-figure canvas').forEach((c) => c.getContext('2d').getImageData(0, 0, 1, 1));
    window.__bench.failed = document.querySelectorAll('.attndocs-figure[data-attndocs-status="error"]').length;
    window.__benchDrawn();
  };
  new MutationObserver(check).observe(document, {subtree: true, attributes: true, attributeFilter: ['data-attndocs-status']});
})();
"""

# Appended to BertViz's page: require.js runs this callback after BertViz's own (same deps,
# registered later), so it fires once BertViz's synchronous drawing has returned.
_BERTVIZ_DONE = "<script>requirejs(['jquery', 'd3'], function () { window.__benchDrawn(); });</script>\n"

_INTERACT = """
async ({tool, kind, runs, capMs}) => {
  const frame = window.__benchFrame;
  let target, reset;
  if (kind === 'noop') {
    // An event nobody listens to: the floor of this measurement (harness, frame, machine).
    target = () => document.dispatchEvent(new Event('attndocs-bench-noop'));
  } else if (tool === 'attndocs') {
    const fig = document.querySelector('.attndocs-figure');
    const label = [...fig.querySelectorAll('label.attndocs-control')].find((l) => l.textContent.trim().startsWith('Layer'));
    const select = label.querySelector('select');
    const tokens = [...fig.querySelectorAll('.attndocs-token[data-side="q"]')];
    if (kind === 'layer') {
      target = (r) => { select.value = select.options[(select.selectedIndex + 1) % select.options.length].value;
                        select.dispatchEvent(new Event('change', {bubbles: true})); };
    } else {
      target = (r) => tokens[(Math.floor(tokens.length / 2) + r) % tokens.length]
                        .dispatchEvent(new MouseEvent('mouseover', {bubbles: true}));
      reset = () => tokens[0].closest('.attndocs-lines, .attndocs-figure').dispatchEvent(new MouseEvent('mouseleave'));
    }
  } else {
    const root = document.querySelector('[id^="bertviz-"]');
    const select = root.querySelector('#layer');
    if (kind === 'layer') {
      target = (r) => { select.value = select.options[(select.selectedIndex + 1) % select.options.length].value;
                        select.dispatchEvent(new Event('change', {bubbles: true})); };
    } else {
      const tokens = () => [...root.querySelectorAll('#left > g:not(.attentionBoxes) > g')];
      target = (r) => { const t = tokens(); t[(Math.floor(t.length / 2) + r) % t.length]
                        .dispatchEvent(new MouseEvent('mouseover', {bubbles: true})); };
      reset = () => root.querySelector('#left').dispatchEvent(new MouseEvent('mouseleave'));
    }
  }
  const frames = [], handlers = [];
  const started = performance.now();
  for (let r = 0; r < runs; r++) {
    await frame();
    const t0 = performance.now();
    target(r);
    handlers.push(performance.now() - t0);
    frames.push((await frame()) - t0);
    if (reset) { reset(); await frame(); }
    if (performance.now() - started > capMs) break;
  }
  return {frames, handlers};
}
"""


@dataclass
class BrowserResult:
    first_ms: list[float] = field(default_factory=list)
    capped: bool = False
    heap_used: int | None = None
    heap_total: int | None = None
    dom_nodes: int | None = None
    layer_ms: list[float] = field(default_factory=list)
    layer_handler_ms: list[float] = field(default_factory=list)
    hover_ms: list[float] = field(default_factory=list)
    hover_handler_ms: list[float] = field(default_factory=list)
    interact_capped: bool = False
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def launch(playwright: Any) -> Any:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise SystemExit("chromium not found (Debian package chromium; `make setup` installs it)")
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)


def measure_page(browser: Any, tool: str, view: str, page_path: Path, *, runs: int, interact_runs: int, cap_s: float,
                 cdn: dict[str, bytes]) -> BrowserResult:
    """First render (``runs`` page loads), then, for the head view, layer change and hover."""
    result = BrowserResult()
    if tool == "bertviz":
        html = page_path.read_text(encoding="utf-8")
        page_path = page_path.with_name(page_path.stem + "-measured.html")
        page_path.write_text(html.replace("</body>", _BERTVIZ_DONE + "</body>"), encoding="utf-8")
    url = page_path.as_uri()
    for run in range(runs):
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        page = context.new_page()
        page.add_init_script(_INIT)

        def route(r: Any) -> None:  # one parameter: playwright passes (route, request) to two
            request_url = r.request.url
            if request_url == url or request_url.startswith("data:"):
                r.continue_()
            elif request_url in cdn:
                r.fulfill(status=200, body=cdn[request_url], content_type="application/javascript")
            else:
                result.blocked.append(request_url)
                r.abort()

        page.route("**/*", route)
        page.on("pageerror", lambda exc: result.errors.append(str(exc)))
        try:
            page.goto(url, timeout=cap_s * 1000, wait_until="commit")
            page.wait_for_function("() => window.__bench && window.__bench.painted !== null", timeout=cap_s * 1000, polling=100)
        except Exception:  # playwright's TimeoutError: the figure did not draw within the cap
            result.capped = True
            context.close()
            break
        if page.evaluate("() => window.__bench.failed || 0"):
            result.errors.append("figure failed to draw")
        result.first_ms.append(page.evaluate("() => window.__bench.painted"))
        last = run == runs - 1
        if last:
            cdp = context.new_cdp_session(page)
            cdp.send("Performance.enable")
            metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
            result.heap_used = int(metrics.get("JSHeapUsedSize", 0))
            result.heap_total = int(metrics.get("JSHeapTotalSize", 0))
            result.dom_nodes = int(metrics.get("Nodes", 0))
            if view == "head":
                for kind in ("layer", "hover"):
                    try:
                        got = page.evaluate(_INTERACT, {"tool": tool, "kind": kind, "runs": interact_runs, "capMs": cap_s * 1000})
                    except Exception as exc:
                        result.errors.append(f"{kind}: {exc}")
                        continue
                    setattr(result, f"{kind}_ms", got["frames"])
                    setattr(result, f"{kind}_handler_ms", got["handlers"])
                    if len(got["frames"]) < interact_runs:
                        result.interact_capped = True
        context.close()
    return result


# -- where the time goes -------------------------------------------------------------------------
_TRACE_CATEGORIES = ["devtools.timeline", "disabled-by-default-devtools.timeline", "v8.execute", "blink", "toplevel", "cc", "viz"]
# Main-thread work by kind, from the trace's top-level events (inclusive durations).
_TRACE_KINDS = {
    "ParseHTML": "parse HTML",
    "EvaluateScript": "run scripts",
    "FunctionCall": "run scripts",
    "EventDispatch": "run scripts",
    "FireAnimationFrame": "run scripts",
    "TimerFire": "run scripts",
    "RunMicrotasks": "run scripts",
    "v8.compile": "compile scripts",
    "UpdateLayoutTree": "style recalculation",
    "Layout": "layout",
    "PrePaint": "paint",
    "Paint": "paint",
    "Layerize": "paint",
    "Commit": "paint",
    "MajorGC": "garbage collection",
    "MinorGC": "garbage collection",
}


def _trace_breakdown(trace: bytes) -> dict[str, float]:
    """Milliseconds of renderer main-thread work per kind, from a Chromium trace."""
    events = json.loads(trace)
    events = events.get("traceEvents", events) if isinstance(events, dict) else events
    main = {(e.get("pid"), e.get("tid")) for e in events
            if e.get("name") == "thread_name" and e.get("args", {}).get("name") == "CrRendererMain"}
    spans: dict[str, list[tuple[float, float]]] = {}
    for e in events:
        kind = _TRACE_KINDS.get(e.get("name", ""))
        if kind and e.get("ph") == "X" and (e.get("pid"), e.get("tid")) in main and "dur" in e:
            spans.setdefault(kind, []).append((e["ts"], e["ts"] + e["dur"]))
    out: dict[str, float] = {}
    for kind, items in spans.items():
        # Union of intervals: nested events of one kind (a FunctionCall inside an
        # EventDispatch) count once.
        total, end = 0.0, -1.0
        for start, stop in sorted(items):
            if start >= end:
                total += stop - start
                end = stop
            elif stop > end:
                total += stop - end
                end = stop
        out[kind] = total / 1000
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _main_thread_self(trace: bytes, count: int = 8) -> list[tuple[str, float]]:
    """Self time (ms) of the renderer main thread's trace events by name, largest first.

    Self time (an event's duration minus that of the events nested in it) names the work
    itself: e.g. ``CanvasRenderingContext2D::FinalizeFrame`` is the canvas's drawing being
    rasterised, ``FunctionCall`` JavaScript, ``Layout`` layout.
    """
    events = json.loads(trace)
    events = events.get("traceEvents", events) if isinstance(events, dict) else events
    main = {(e.get("pid"), e.get("tid")) for e in events
            if e.get("name") == "thread_name" and e.get("args", {}).get("name") == "CrRendererMain"}
    spans = sorted((e for e in events if e.get("ph") == "X" and "dur" in e and (e.get("pid"), e.get("tid")) in main),
                   key=lambda e: (e["ts"], -e["dur"]))
    self_us: dict[str, float] = {}
    stack: list[dict[str, Any]] = []
    for e in spans:
        while stack and stack[-1]["ts"] + stack[-1]["dur"] <= e["ts"]:
            stack.pop()
        if stack:
            self_us[stack[-1]["name"]] = self_us.get(stack[-1]["name"], 0.0) - e["dur"]
        self_us[e["name"]] = self_us.get(e["name"], 0.0) + e["dur"]
        stack.append(e)
    ranked = sorted(((name, us / 1000) for name, us in self_us.items() if name not in ("RunTask", "ThreadControllerImpl::RunTask")),
                    key=lambda kv: -kv[1])
    return ranked[:count]


def _thread_load(trace: bytes) -> dict[str, tuple[float, float]]:
    """{thread: (wall ms, CPU ms)} of the tasks each browser thread ran during the trace.

    Wall well above CPU means the thread was ready but waiting for a core: the machine's
    load, not the page's work.
    """
    events = json.loads(trace)
    events = events.get("traceEvents", events) if isinstance(events, dict) else events
    names = {(e.get("pid"), e.get("tid")): e.get("args", {}).get("name", "?") for e in events if e.get("name") == "thread_name"}
    out: dict[str, list[float]] = {}
    for e in events:
        if e.get("ph") == "X" and e.get("name") in ("RunTask", "ThreadPool_RunTask") and "dur" in e:
            name = names.get((e.get("pid"), e.get("tid")), "?")
            if name.startswith("ThreadPool"):
                name = "ThreadPool (raster, workers)"
            total = out.setdefault(name, [0.0, 0.0])
            total[0] += e["dur"] / 1000
            total[1] += e.get("tdur", e["dur"]) / 1000
    return {k: (v[0], v[1]) for k, v in sorted(out.items(), key=lambda kv: -kv[1][0])}


def _top_functions(profile: dict[str, Any], count: int = 8) -> list[tuple[str, float]]:
    """The JS functions with the most self time in a CDP CPU profile, in milliseconds."""
    nodes = {n["id"]: n for n in profile["nodes"]}
    self_us: dict[int, float] = {}
    for sample, delta in zip(profile.get("samples", []), profile.get("timeDeltas", [])):
        self_us[sample] = self_us.get(sample, 0.0) + delta
    by_name: dict[str, float] = {}
    for node_id, us in self_us.items():
        frame = nodes[node_id]["callFrame"]
        name = frame.get("functionName") or "(anonymous)"
        if name in ("(idle)", "(program)", "(root)"):
            continue
        where = Path(frame.get("url", "")).name
        label = f"{name} ({where}:{frame.get('lineNumber', 0) + 1})" if where else name
        by_name[label] = by_name.get(label, 0.0) + us / 1000
    return sorted(by_name.items(), key=lambda kv: -kv[1])[:count]


def profile_page(browser: Any, page_path: Path, kind: str, *, runs: int = 5) -> dict[str, Any]:
    """Where an attndocs page spends the time of ``kind``: "first", "layer" or "hover".

    A Chromium trace gives main-thread time by kind of work (parse, scripts, style, layout,
    paint, GC); a CPU profile gives the JS functions with the most self time.
    """
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.add_init_script(_INIT)
    url = page_path.as_uri()
    page.route("**/*", lambda r: r.continue_() if r.request.url == url else r.abort())
    cdp = context.new_cdp_session(page)
    cdp.send("Profiler.enable")
    cdp.send("Profiler.setSamplingInterval", {"interval": 100})
    measured: list[float] = []
    floor: list[float] = []
    if kind == "first":
        browser.start_tracing(page=page, categories=_TRACE_CATEGORIES)
        cdp.send("Profiler.start")
        page.goto(url, wait_until="commit")
        page.wait_for_function("() => window.__bench && window.__bench.painted !== null", timeout=120_000, polling=100)
        measured = [page.evaluate("() => window.__bench.painted")]
    else:
        page.goto(url, wait_until="commit")
        page.wait_for_function("() => window.__bench && window.__bench.painted !== null", timeout=120_000, polling=100)
        floor = page.evaluate(_INTERACT, {"tool": "attndocs", "kind": "noop", "runs": runs, "capMs": 60_000})["frames"]
        browser.start_tracing(page=page, categories=_TRACE_CATEGORIES)
        cdp.send("Profiler.start")
        measured = page.evaluate(_INTERACT, {"tool": "attndocs", "kind": kind, "runs": runs, "capMs": 120_000})["frames"]
    profile = cdp.send("Profiler.stop")["profile"]
    trace = browser.stop_tracing()
    context.close()
    per = 1 if kind == "first" else max(1, len(measured))
    breakdown = {k: v / per for k, v in _trace_breakdown(trace).items()}
    threads = {k: (wall / per, cpu / per) for k, (wall, cpu) in _thread_load(trace).items()}
    main_self = [(name, ms / per) for name, ms in _main_thread_self(trace)]
    functions = [(name, ms / per) for name, ms in _top_functions(profile)]
    return {"kind": kind, "measured_ms": measured, "floor_ms": floor, "breakdown_ms": breakdown, "threads_ms": threads,
            "main_self_ms": main_self, "functions_ms": functions}


def profile_render(record_path: Path, view: str, count: int = 10) -> list[tuple[str, float, float]]:
    """cProfile of one attndocs render_figure call: (function, cumulative s, self s), top by cumulative."""
    code = (
        "import cProfile, pstats, sys\n"
        "from attndocs.options import FigureOptions\n"
        "from attndocs.record import AttentionRecord\n"
        "from attndocs.render import render_figure\n"
        f"record = AttentionRecord.load({str(record_path)!r})\n"
        "render_figure(record, FigureOptions(view=" + repr(view) + "))\n"
        "profiler = cProfile.Profile()\n"
        "profiler.enable()\n"
        "render_figure(record, FigureOptions(view=" + repr(view) + "))\n"
        "profiler.disable()\n"
        "stats = pstats.Stats(profiler)\n"
        "rows = []\n"
        "for (path, line, name), (cc, nc, tt, ct, callers) in stats.stats.items():\n"
        "    if 'attndocs' in path or name.startswith('<built-in') or 'numpy' in path:\n"
        "        rows.append((f'{path.split(\"/attndocs/\")[-1]}:{line} {name}', ct, tt))\n"
        "rows.sort(key=lambda r: -r[1])\n"
        "import json; print(json.dumps(rows[:40]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(HERE.parent),
                          env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    if proc.returncode != 0:
        return [(f"profile failed: {proc.stderr.strip().splitlines()[-1:]}", 0.0, 0.0)]
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    return [tuple(r) for r in rows[:count]]  # type: ignore[misc]


# -- the whole comparison ----------------------------------------------------------------------
@dataclass
class Row:
    tool: str
    view: str
    tokens: int
    python: dict[str, Any] | None
    browser: BrowserResult | None


def compare(records: dict[int, Any], work: Path, *, sizes_bertviz: list[int], runs: int, interact_runs: int, cap_s: float,
            log: Any = print) -> list[Row]:
    """Every (tool, view, size) measured; BertViz only at ``sizes_bertviz``."""
    from playwright.sync_api import sync_playwright

    problem = bertviz_available()
    cdn = cdn_bodies() if problem is None else {}
    if problem:
        log(f"BertViz side skipped: {problem}")
    rows: list[Row] = []
    record_paths = {}
    for n, record in records.items():
        record_paths[n] = work / f"minilm-{n}.safetensors"
        record.save(record_paths[n])
    with sync_playwright() as p:
        browser = launch(p)
        for n in sorted(records):
            for tool in TOOLS:
                if tool == "bertviz" and (problem or n not in sizes_bertviz):
                    continue
                for view in VIEWS:
                    out = work / f"{tool}-{view}-{n}.html"
                    # BertViz's render at 200 tokens takes seconds per call: fewer calls there.
                    py_runs = runs if tool == "attndocs" or n <= 50 else max(1, min(runs, 2))
                    log(f"  {tool} {view} view, {n} tokens: Python render ({py_runs} runs)")
                    python = render_in_subprocess(tool, view, record_paths[n], out, py_runs, timeout=max(cap_s * (py_runs + 2), 120))
                    browser_result = None
                    if python is not None:
                        page_runs = runs if tool == "attndocs" or n <= 50 else max(1, min(runs, 3))
                        log(f"  {tool} {view} view, {n} tokens: Chromium ({page_runs} loads)")
                        browser_result = measure_page(browser, tool, view, out, runs=page_runs, interact_runs=interact_runs,
                                                      cap_s=cap_s, cdn=cdn)
                        if browser_result.capped:
                            # A stuck renderer may keep the browser busy: start a fresh one.
                            browser.close()
                            browser = launch(p)
                    rows.append(Row(tool, view, n, python, browser_result))
        browser.close()
    return rows


def rows_to_json(rows: list[Row]) -> list[dict[str, Any]]:
    return [{"tool": r.tool, "view": r.view, "tokens": r.tokens, "python": r.python,
             "browser": asdict(r.browser) if r.browser else None} for r in rows]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["render-one"]:
        tool, view, record_path, out, runs = argv[1:6]
        sys.path.insert(0, str(HERE.parent))
        print(json.dumps(_render_one(tool, view, record_path, out, int(runs))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="13,50,200")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cap", type=float, default=60.0)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    import tempfile

    from bench_views import real_minilm

    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        records = {n: real_minilm(n, os.path.join(tmp, "cache")) for n in sizes}
        rows = compare(records, Path(tmp), sizes_bertviz=sizes, runs=args.runs, interact_runs=args.runs, cap_s=args.cap)
    print(json.dumps(rows_to_json(rows), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
