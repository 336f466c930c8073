"""Shared checks for the reliability suite: figure sets, record comparison, cache scans, Chromium.

The suite's claims are about what a user's build can rely on after the worst happens
(a SIGKILL mid-write, two builds on one cache, hostile page text), so every check here
looks at what is on disk or on screen, not at internal state.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attndocs.cache import RecordCache
from attndocs.options import FigureOptions
from attndocs.record import AttentionRecord

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORKER = HERE / "reliability_worker.py"
PYTHON = sys.executable

# The dtypes a record may hold; anything else in a cache file is not ours.
PLAIN_DTYPES = {"F32", "F16", "BF16", "F64", "I8", "U8", "I16", "I32", "I64", "BOOL"}
_DTYPE_SIZES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I8": 1, "U8": 1, "I16": 2, "I32": 4, "I64": 8, "BOOL": 1}



def trials(default: int) -> int:
    """How many randomised trials to run: $RELIABILITY_TRIALS, else ``default`` (the short form)."""
    value = os.environ.get("RELIABILITY_TRIALS")
    return max(1, int(value)) if value else default


def full_form() -> bool:
    """True under `make reliability` (>= 50 trials), where the slower front-end rounds run too."""
    return trials(0) >= 50


# -- figures ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Figure:
    """One figure of a build: its options and whether it needs query/key vectors."""

    model: str
    text: str
    text_b: str | None = None
    target: str | None = None
    qk: bool = False

    def options(self) -> FigureOptions:
        values: dict[str, Any] = {"model": self.model, "text": self.text}
        if self.text_b is not None:
            values["text_b"] = self.text_b
        if self.target is not None:
            values["target"] = self.target
        return FigureOptions.from_mapping(values)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "text": self.text, "text_b": self.text_b, "target": self.target, "qk": self.qk}


LONG_TEXT = " ".join(
    "Attention lets every token look at every other token, and each head learns its own pattern of looking."
    for _ in range(9)
)  # about 190 minilm tokens: a 15 MB record with Q/K, so a write takes long enough to be hit


def figure_set(models: dict[str, Path], *, minilm: str = "long") -> list[Figure]:
    """A build's worth of figures over several families, with and without query/key vectors.

    ``minilm``: "none" (tiny models only), "short" (plus a real minilm figure) or "long"
    (plus a ~190-token minilm figure with Q/K, a 13 MB entry: the kill trials need writes
    that last long enough to be hit).
    """
    bert, gpt2, t5, llama = (str(models[f]) for f in ("bert", "gpt2", "t5", "llama"))
    figures = [
        Figure(bert, "The cat sat on the mat."),
        Figure(bert, "The cat sat on the mat.", text_b="It was tired.", qk=True),
        Figure(bert, "Each layer has several heads."),
        Figure(gpt2, "The builder runs the model once.", qk=True),
        Figure(gpt2, "A causal model only looks backwards."),
        Figure(llama, "The river flows past the village.", qk=True),
        Figure(t5, "The encoder reads the source.", target="The decoder writes the target."),
    ]
    if minilm in ("short", "long"):
        figures.append(Figure("minilm", "The animal didn't cross the street because it was too tired.", qk=True))
    if minilm == "long":
        figures.append(Figure("minilm", LONG_TEXT, qk=True))
    return figures


# -- records ---------------------------------------------------------------------------------
def same_record(got: AttentionRecord, expected: AttentionRecord, *, atol: float = 1e-6) -> str | None:
    """None when ``got`` is the record a clean computation gave, else what differs.

    The tolerance only absorbs float rounding between processes; a torn write or a
    record served for the wrong text differs by far more.
    """
    if got.key != expected.key:
        return f"key {got.key[:12]} != {expected.key[:12]}"
    for attr in ("model_id", "revision", "kind", "text", "text_b", "target"):
        if getattr(got, attr) != getattr(expected, attr):
            return f"{attr} differs"
    if {n: s.tokens for n, s in got.sides.items()} != {n: s.tokens for n, s in expected.sides.items()}:
        return "tokens differ"
    a, b = got.tensors(), expected.tensors()
    if sorted(a) != sorted(b):
        return f"tensors {sorted(a)} != {sorted(b)}"
    for name in a:
        if a[name].shape != b[name].shape:
            return f"{name} has shape {a[name].shape}, expected {b[name].shape}"
        if not np.allclose(a[name], b[name], rtol=0, atol=atol):
            return f"{name} differs by {float(np.max(np.abs(a[name] - b[name]))):.3g}"
    return None


# -- cache files ------------------------------------------------------------------------------
def cache_files(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*") if p.is_file()) if Path(root).exists() else []


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def plain_safetensors_problem(path: Path, *, truncated_ok: bool = False) -> str | None:
    """None when ``path`` is a safetensors header followed by raw tensor bytes and nothing else.

    That shape cannot hold a pickle: the header is JSON (string metadata, tensor dtypes,
    shapes and offsets), and the offsets must tile the rest of the file exactly, with a
    size that matches dtype x shape, so no byte is left over to smuggle anything in.
    ``truncated_ok`` accepts a prefix of such a file (a killed writer's temporary file).
    """
    data = path.read_bytes()
    if data[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05") or data[:2] == b"PK":
        return "starts like a pickle or a zip (torch.save) file"
    if len(data) < 8:
        return None if truncated_ok else "shorter than a safetensors header"
    size = int.from_bytes(data[:8], "little")
    if size <= 0 or size > 100_000_000:
        return "header length out of range"
    if size > len(data) - 8:
        return None if truncated_ok else "header length out of range"
    try:
        header = json.loads(data[8 : 8 + size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return f"header is not JSON ({exc})"
    if not isinstance(header, dict):
        return "header is not a JSON object"
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        return "metadata is not a mapping of strings to strings"
    body = len(data) - 8 - size
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            return f"tensor {name!r} has an unexpected description {info!r}"
        if info["dtype"] not in PLAIN_DTYPES:
            return f"tensor {name!r} has dtype {info['dtype']!r}"
        start, end = info["data_offsets"]
        count = int(np.prod(info["shape"])) if info["shape"] else 1
        if end - start != count * _DTYPE_SIZES[info["dtype"]]:
            return f"tensor {name!r} spans {end - start} bytes, not dtype x shape"
        spans.append((start, end))
    position = 0
    for start, end in sorted(spans):
        if start != position:
            return f"bytes {position}..{start} of the body belong to no tensor"
        position = end
    if position < body:
        return f"{body - position} bytes after the last tensor"
    if position > body and not truncated_ok:
        return f"the body is {position - body} bytes short"
    return None


def assert_only_plain_safetensors(roots: Iterable[Path]) -> int:
    """Every file under the cache roots is a plain safetensors file; returns how many were scanned.

    Temporary files of killed writers may be cut short: a prefix of a plain file holds
    no pickle either (and is never read; check_cache_state checks that).
    """
    count = 0
    for root in roots:
        for path in cache_files(root):
            if path.name.endswith(".lock"):
                continue
            problem = plain_safetensors_problem(path, truncated_ok=is_temp_name(path.name))
            assert problem is None, f"{path}: {problem}"
            count += 1
    return count


def check_cache_state(root: Path, references: dict[str, AttentionRecord]) -> dict[str, int]:
    """Everything a reader can get from the cache at ``root`` is correct, or refused.

    * `attndocs cache verify` passes, or every entry it reports damaged is refused by
      RecordCache.get (never served);
    * temporary files are never listed or read as entries, and reading the key a
      temporary file was written for gives a miss or the correct record;
    * every entry served is exactly the record a clean computation gave for its key.

    Returns counts for the suite's summary.
    """
    from attndocs.errors import DamagedEntryError

    cache = RecordCache(root)
    damaged = {path.stem for path, _ in cache.verify()}
    listed = {entry.key: entry for entry in cache.entries()}
    temps = [p for p in cache_files(root) if is_temp_name(p.name)]
    for path in cache_files(root):
        if path.name.endswith(".safetensors") and not path.name.startswith("."):
            assert path.stem in listed, f"entry {path} is not listed"
        else:
            assert is_temp_name(path.name), f"unexpected file in the cache: {path}"
    for temp in temps:
        assert temp.name not in {e.path.name for e in listed.values()}, f"temporary file listed as an entry: {temp}"
    served = 0
    for key, entry in listed.items():
        if key in damaged or entry.damaged:
            try:
                record = cache.get(key)
            except DamagedEntryError:
                continue
            raise AssertionError(f"damaged entry {key[:12]} was served: {record!r}")
        record = cache.get(key)
        assert record is not None, f"listed entry {key[:12]} read as a miss"
        assert key in references, f"entry {key[:12]} is for no figure of this build"
        problem = same_record(record, references[key])
        assert problem is None, f"entry {key[:12]} is not what a clean computation gives: {problem}"
        served += 1
    for temp in temps:
        key = temp.name[1:].split(".", 1)[0]
        record = cache.get(key)
        if record is not None:
            assert key in listed, f"a read of {key[:12]} was served from a temporary file"
            assert same_record(record, references[key]) is None
    return {"entries": served, "damaged": len(damaged), "temps": len(temps)}


# -- processes -------------------------------------------------------------------------------
def worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def start_worker(cache_dir: Path, figures: Sequence[Figure], *, mode: str = "auto", rounds: int = 1,
                 out: Path | None = None, spec_dir: Path) -> subprocess.Popen[str]:
    """A `reliability_worker.py` process building ``figures`` into ``cache_dir``."""
    spec = spec_dir / "figures.json"
    spec.write_text(json.dumps([f.to_json() for f in figures]), encoding="utf-8")
    cmd = [PYTHON, str(WORKER), "--cache-dir", str(cache_dir), "--figures", str(spec), "--mode", mode, "--rounds", str(rounds)]
    if out is not None:
        cmd += ["--out", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=worker_env(), cwd=str(REPO))


# -- the browser ---------------------------------------------------------------------------------
CANARY_INIT = """
window.__attndocs_canary = [];
for (const name of ['alert', 'confirm', 'prompt', 'print']) {
  window[name] = (...args) => { window.__attndocs_canary.push(name + ':' + String(args[0])); };
}
"""


@dataclass
class PageReport:
    """What happened on one page: figures drawn or failed, anything injected that ran."""

    ready: int
    failed: int
    placeholders: int
    canary: list[str]
    dialogs: list[str]
    page_errors: list[str]
    blocked: list[str]
    text: str  # what a reader sees (innerText)
    labels: list[str]  # what a screen reader is told (aria-label values)

    def shows(self, literal: str) -> bool:
        """``literal`` reaches the reader exactly as written, on screen or as a label."""
        return literal in self.text or any(literal in label for label in self.labels)


def inspect_page(browser: Any, url: str, *, allow_prefix: str | None = None, settle_ms: int = 150) -> PageReport:
    """Open ``url`` with every request refused except ``url`` itself (and under ``allow_prefix``: a built site's own files); report.

    Hostile payloads in the corpus set ``window.__pwned`` or call ``alert``; both are
    watched (a dialog listener, and a canary that replaces the dialog functions).
    """
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    dialogs: list[str] = []
    errors: list[str] = []
    blocked: list[str] = []
    allowed = {url}

    def on_dialog(dialog: Any) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def route(r: Any) -> None:
        request_url = r.request.url.split("#")[0]
        if request_url in allowed or request_url.startswith("data:") or (allow_prefix and request_url.startswith(allow_prefix)):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.add_init_script(CANARY_INIT)
    page.route("**/*", route)
    try:
        page.goto(url)
        page.wait_for_function(
            """() => [...document.querySelectorAll('.attndocs-figure')].every(
                 f => !f.hasAttribute('data-attndocs-status') ||
                      ['ready', 'error', 'waiting'].includes(f.getAttribute('data-attndocs-status')))""",
            timeout=30_000,
        )
        page.wait_for_timeout(settle_ms)
        # Hover every token once: handlers that build markup from token text run now.
        page.evaluate(
            """() => document.querySelectorAll('.attndocs-token').forEach(
                 t => t.dispatchEvent(new MouseEvent('mouseover', {bubbles: true})))"""
        )
        page.wait_for_timeout(50)
        info = page.evaluate(
            """() => ({
              ready: document.querySelectorAll('.attndocs-figure[data-attndocs-status="ready"]').length,
              failed: document.querySelectorAll('.attndocs-figure[data-attndocs-status="error"]').length,
              placeholders: document.querySelectorAll('.attndocs-placeholder').length,
              canary: (window.__attndocs_canary || []).concat(window.__pwned ? ['__pwned=' + window.__pwned] : []),
              text: document.body ? document.body.innerText : '',
              labels: [...document.querySelectorAll('[aria-label]')].map(e => e.getAttribute('aria-label')),
            })"""
        )
    finally:
        page.close()
    return PageReport(info["ready"], info["failed"], info["placeholders"], info["canary"], dialogs, errors, blocked, info["text"], info["labels"])
