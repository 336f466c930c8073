"""Extraction against a bare forward pass, at real model shapes (issue 12, item 4: "extraction at the speed of the model").

For random-initialised models of real shapes built from configs (no download): BERT-base
(12 layers x 12 heads, d768), GPT-2 small (12 x 12, d768) and a ~1B grouped-query Llama (16
layers x 32 heads, 8 key/value heads, d2048), plus the bundled minilm (6 x 12, d384), at
128, 512 and 1,024 tokens, it measures:

- a bare forward pass: tokenize, then ``model(**inputs, output_attentions=True)`` (eager);
- attndocs's extraction with query/key vectors and the self-check (``extract_from_model``
  with ``qk=True``: tokenize, forward with hooks, stack, check, move to the host, record);
- their ratio (the issue's target: at most 1.3x on a CPU for minilm at 512 tokens);
- peak host memory (``ru_maxrss``) of a process that ran only the bare passes, and of the same
  process after the extractions, each case in a process of its own.

Timings are medians of ``--runs`` runs, bare and extraction alternating, after two warm-up
runs of each (the first runs fault in fresh memory and are several times slower). Both the
wall-clock and the CPU time of the process are reported: on a shared machine the CPU time
is the steadier measure. ``--threads`` (default 1, as benchmarks/run.py) applies to both.

Cases whose bare forward pass would take longer than ``--max-forward-s`` seconds on this
machine (estimated from the model's size and a matmul calibrated here) are skipped, and the
table says so. The random models read a synthetic word-level vocabulary of 30,522 entries
(BERT's size), so every case has exactly the token count asked for; minilm reads its own.

Usage: python benchmarks/bench_extract.py [--models minilm,bert-base,gpt2,llama-1b] [--tokens 128,512,1024]
       [--runs 5] [--threads 1] [--max-forward-s 10] [--profile MODEL:TOKENS] [--small] [--json out.json]

From another script: ``scale_table(...)`` returns the rows, ``format_table(rows)`` the text.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

VOCAB = 30_522  # BERT's vocabulary size: the embedding tables stay the size of the real models'
WORDS = (
    "the quick brown fox jumps over a lazy dog while the cat sat on the mat and watched birds fly across "
    "an open field near the river where children played games until the sun went down behind tall hills"
).split()
MINILM_TARGET = 1.3  # extraction with Q/K over a bare forward, minilm at 512 tokens, on a CPU


@dataclass(frozen=True)
class Shape:
    """A model shape: its transformers config, and the most tokens it can read."""

    name: str
    model_type: str
    config: dict[str, Any]
    max_tokens: int
    about: str


# Both grouped-query Llama shapes in --small form: one tiny model (two layers, 8 heads, 2 kv heads).
_SMALL_LLAMA = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
}

SHAPES: dict[str, Shape] = {
    "bert-base": Shape(
        "bert-base",
        "bert",
        # 1,024 tokens needs a longer position table than BERT's 512; the rest is BERT-base.
        {
            "hidden_size": 768,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "intermediate_size": 3072,
            "max_position_embeddings": 1024,
        },
        1024,
        "12 layers x 12 heads, d768",
    ),
    "gpt2": Shape(
        "gpt2",
        "gpt2",
        {"n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024},
        1024,
        "12 layers x 12 heads, d768",
    ),
    "llama-1b": Shape(
        "llama-1b",
        "llama",
        {
            "hidden_size": 2048,
            "intermediate_size": 8192,
            "num_hidden_layers": 16,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "max_position_embeddings": 131072,
        },
        131072,
        "16 layers x 32 heads, 8 kv heads, d2048",
    ),
    "llama-8b": Shape(
        "llama-8b",
        "llama",
        {
            "hidden_size": 4096,
            "intermediate_size": 14336,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "max_position_embeddings": 131072,
        },
        131072,
        "32 layers x 32 heads, 8 kv heads, d4096",
    ),
}
# The same families at toy sizes: a smoke test of every code path in seconds (--small).
SMALL_SHAPES: dict[str, Shape] = {
    "bert-base": Shape(
        "bert-base",
        "bert",
        {
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 128,
            "max_position_embeddings": 128,
        },
        128,
        "small",
    ),
    "gpt2": Shape("gpt2", "gpt2", {"n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 128}, 128, "small"),
    "llama-1b": Shape("llama-1b", "llama", _SMALL_LLAMA, 4096, "small"),
    "llama-8b": Shape("llama-8b", "llama", _SMALL_LLAMA, 4096, "small"),
}


@dataclass
class Row:
    """One case of the table. Times in milliseconds; memory in MB; None where not measured."""

    model: str
    tokens: int
    about: str = ""
    device: str = "cpu"
    dtype: str = "float32"
    runs: int = 0
    bare_ms: float | None = None
    extract_ms: float | None = None
    bare_cpu_ms: float | None = None
    extract_cpu_ms: float | None = None
    rss_bare_mb: float | None = None
    rss_extract_mb: float | None = None
    device_peak_bare_mb: float | None = None
    device_peak_extract_mb: float | None = None
    attention_mb: float | None = None
    neuron: str = ""
    skipped: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return self.extract_ms / self.bare_ms if self.bare_ms and self.extract_ms else None

    @property
    def cpu_ratio(self) -> float | None:
        return self.extract_cpu_ms / self.bare_cpu_ms if self.bare_cpu_ms and self.extract_cpu_ms else None


# -- models and texts ------------------------------------------------------------------------------
def synthetic_tokenizer(vocab_size: int = VOCAB) -> Any:
    """A word-level tokenizer over "w0" ... "w<n>": n words are exactly n tokens, and no file is needed."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, **{f"w{i}": i for i in range(1, vocab_size)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", model_max_length=1 << 20)


def build(name: str, *, device: str = "cpu", dtype: str = "float32", small: bool = False) -> tuple[Any, Any, str]:
    """(model, tokenizer, description) for a shape name or "minilm", random-initialised from its config."""
    import torch
    import transformers

    if name == "minilm":
        from attndocs.models import load_model, resolve_model

        loaded = load_model(resolve_model("minilm"))
        return loaded.model.to(device), loaded.tokenizer, "bundled all-MiniLM-L6-v2, 6 layers x 12 heads, d384"
    shape = (SMALL_SHAPES if small else SHAPES)[name]
    config = transformers.AutoConfig.for_model(shape.model_type, vocab_size=VOCAB, **shape.config)
    torch.manual_seed(0)
    with torch.device(device):
        model = transformers.AutoModel.from_config(config, dtype=getattr(torch, dtype), attn_implementation="eager")
    return model.eval(), synthetic_tokenizer(), shape.about


def text_for(tokenizer: Any, tokens: int) -> str:
    """A text of exactly ``tokens`` tokens for this tokenizer (special tokens included)."""
    if f"w{VOCAB - 1}" in tokenizer.get_vocab():  # synthetic_tokenizer's: one token per word
        return " ".join(f"w{1 + (i * 7919) % (VOCAB - 1)}" for i in range(tokens))
    words = max(1, tokens - 2)
    for _ in range(8):
        text = " ".join(WORDS[i % len(WORDS)] for i in range(words))
        got = len(tokenizer(text)["input_ids"])
        if got == tokens:
            return text
        words += tokens - got
    raise SystemExit(f"could not make a text of {tokens} tokens")


def max_tokens(name: str, small: bool = False) -> int:
    return 512 if name == "minilm" else (SMALL_SHAPES if small else SHAPES)[name].max_tokens


# -- how long a forward pass takes here, before trying -------------------------------------------
def calibrate_gflops(threads: int) -> float:
    """Float32 matmul throughput of this machine with ``threads`` threads, in GFLOP/s."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * 1024**3 / best / 1e9


def forward_gflop(name: str, tokens: int, small: bool = False) -> float:
    """Matmul work of one forward pass: 2 x (non-embedding weights) x tokens, plus scores and mixing."""
    if name == "minilm":
        layers, width, ffn, kv_width = 6, 384, 1536, 384
    else:
        c = (SMALL_SHAPES if small else SHAPES)[name].config
        layers = c.get("num_hidden_layers", c.get("n_layer"))
        width = c.get("hidden_size", c.get("n_embd"))
        ffn = c.get("intermediate_size", 4 * width)
        heads = c.get("num_attention_heads", c.get("n_head"))
        kv_width = width * c.get("num_key_value_heads", heads) // heads
    gated = name.startswith("llama")
    weights = layers * (2 * width * width + 2 * width * kv_width + (3 if gated else 2) * width * ffn)
    return (2 * weights * tokens + 4 * layers * tokens * tokens * width) / 1e9


# -- one case, in this process ---------------------------------------------------------------------
def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def measure(
    name: str,
    tokens: int,
    *,
    runs: int = 5,
    device: str = "cpu",
    dtype: str = "float32",
    small: bool = False,
    model: Any = None,
    tokenizer: Any = None,
    about: str = "",
) -> Row:
    """Bare forward and extraction with Q/K of one model at one length, in this process."""
    import inspect

    import torch

    from attndocs.extract import extract_from_model

    if model is None:
        model, tokenizer, about = build(name, device=device, dtype=dtype, small=small)
    text = text_for(tokenizer, tokens)
    params = inspect.signature(model.forward).parameters
    cuda = torch.device(device).type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def bare() -> None:
        encoded = tokenizer(text, return_tensors="pt")
        inputs = {k: v.to(device) for k, v in encoded.items() if k in params}
        with torch.inference_mode():
            model(**inputs, output_attentions=True)
        sync()

    records: list[Any] = []

    def extraction() -> None:
        records[:] = [extract_from_model(model, tokenizer, text, qk=True)]
        sync()
        records.clear()  # the record goes, as it would once the cache has it

    def peak_device() -> float | None:
        return torch.cuda.max_memory_allocated() / 1e6 if cuda else None

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for _ in range(2):
        bare()
    row = Row(model=name, tokens=tokens, about=about, device=device, dtype=dtype, runs=runs)
    row.rss_bare_mb, row.device_peak_bare_mb = _rss_mb(), peak_device()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    record = extract_from_model(model, tokenizer, text, qk=True)
    section = next(iter(record.sections.values()))
    row.attention_mb = sum(s.attention.nbytes for s in record.sections.values()) / 1e6
    error = record.neuron.get("max_error")
    row.neuron = (
        f"check passed, max error {max(error.values()):.1e}"
        if record.neuron["available"] and error
        else f"withheld: {record.neuron['reason']}"
    )
    assert len(record.sides[next(iter(record.sides))]) == tokens and section.attention.shape[-1] == tokens
    del record, section
    extraction()
    row.rss_extract_mb, row.device_peak_extract_mb = _rss_mb(), peak_device()
    row.bare_ms, row.extract_ms, row.bare_cpu_ms, row.extract_cpu_ms = time_pair(bare, extraction, runs)
    return row


def time_pair(bare: Any, extraction: Any, runs: int) -> tuple[float, float, float, float]:
    """Medians in ms of (bare wall, extraction wall, bare CPU, extraction CPU), the two alternating."""
    walls: dict[str, list[float]] = {"bare": [], "extract": []}
    cpus: dict[str, list[float]] = {"bare": [], "extract": []}
    for _ in range(runs):
        for label, fn in (("bare", bare), ("extract", extraction)):
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            walls[label].append(time.perf_counter() - wall)
            cpus[label].append(time.process_time() - cpu)
    bare_ms, extract_ms = (statistics.median(walls[k]) * 1000 for k in ("bare", "extract"))
    bare_cpu, extract_cpu = (statistics.median(cpus[k]) * 1000 for k in ("bare", "extract"))
    return bare_ms, extract_ms, bare_cpu, extract_cpu


def profile(
    name: str, tokens: int, *, device: str = "cpu", dtype: str = "float32", small: bool = False, top: int = 25
) -> str:
    """cProfile of one extraction with Q/K (after warm-up): where its time goes beyond the forward pass."""
    import cProfile
    import io
    import pstats

    from attndocs.extract import extract_from_model

    model, tokenizer, _ = build(name, device=device, dtype=dtype, small=small)
    text = text_for(tokenizer, tokens)
    for _ in range(2):
        extract_from_model(model, tokenizer, text, qk=True)
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    extract_from_model(model, tokenizer, text, qk=True)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


# -- the table, each case in a process of its own --------------------------------------------------
def scale_table(
    models: list[str],
    token_counts: list[int],
    *,
    runs: int = 5,
    threads: int = 1,
    max_forward_s: float = 10.0,
    small: bool = False,
    log: Any = print,
) -> list[Row]:
    """Every (model, tokens) case, each measured in a fresh process (so its peak memory is its own);
    cases past the model's length or over ``max_forward_s`` per forward pass are skipped with a reason."""
    gflops = calibrate_gflops(threads)
    log(f"  matmul throughput here: {gflops:.0f} GFLOP/s with {threads} thread(s)")
    rows = []
    for name in models:
        for tokens in token_counts:
            row = Row(model=name, tokens=tokens)
            if tokens > max_tokens(name, small):
                row.skipped = f"reads at most {max_tokens(name, small)} tokens"
                rows.append(row)
                continue
            estimate = forward_gflop(name, tokens, small) / gflops
            if estimate > max_forward_s:
                row.skipped = f"about {estimate:.0f} s per forward pass here (over --max-forward-s {max_forward_s:g})"
                rows.append(row)
                log(f"  {name} at {tokens} tokens: skipped, {row.skipped}")
                continue
            case_runs = runs if estimate < 2 else max(3, min(runs, 3))
            log(f"  {name} at {tokens} tokens ({case_runs} runs, about {estimate:.1f} s per forward pass) ...")
            command = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--case",
                f"{name}:{tokens}",
                "--runs",
                str(case_runs),
                "--threads",
                str(threads),
            ] + (["--small"] if small else [])
            done = subprocess.run(
                command, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}
            )
            if done.returncode != 0:
                row.skipped = "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1][:200]
                log(f"    {row.skipped}")
            else:
                data = json.loads(done.stdout.strip().splitlines()[-1])
                data.pop("ratio", None)
                data.pop("cpu_ratio", None)
                row = Row(**data)
            rows.append(row)
    return rows


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def format_table(rows: list[Row]) -> str:
    header = (
        "model",
        "tokens",
        "bare forward",
        "extraction with Q/K",
        "ratio",
        "CPU-time ratio",
        "peak RSS bare / extraction",
        "neuron view",
    )
    lines = [header]
    for r in rows:
        if r.skipped:
            lines.append((r.model, str(r.tokens), "-", "-", "-", "-", "-", f"skipped: {r.skipped}"))
            continue
        target = ""
        if r.model == "minilm" and r.tokens == 512 and r.device == "cpu" and r.cpu_ratio is not None:
            target = f" (target {MINILM_TARGET}x: {'met' if r.cpu_ratio <= MINILM_TARGET else 'missed'})"
        rss = "-" if r.rss_bare_mb is None else f"{r.rss_bare_mb:,.0f} / {r.rss_extract_mb:,.0f} MB"
        lines.append(
            (
                r.model,
                str(r.tokens),
                _ms(r.bare_ms),
                _ms(r.extract_ms),
                f"{r.ratio:.2f}x" if r.ratio else "-",
                (f"{r.cpu_ratio:.2f}x" if r.cpu_ratio else "-") + target,
                rss,
                r.neuron,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="minilm,bert-base,gpt2,llama-1b")
    parser.add_argument("--tokens", default="128,512,1024")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per case, medians reported (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, for the bare pass and extraction alike")
    parser.add_argument(
        "--max-forward-s",
        type=float,
        default=10.0,
        help="skip cases whose forward pass would take longer here (estimated; default 10)",
    )
    parser.add_argument("--small", action="store_true", help="toy shapes of the same families: a smoke test")
    parser.add_argument("--profile", metavar="MODEL:TOKENS", help="print a cProfile of one extraction instead")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # MODEL:TOKENS, one case in this process (scale_table)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.case or args.profile:
        name, tokens = (args.case or args.profile).split(":")
        if args.profile:
            print(profile(name, int(tokens), small=args.small))
            return 0
        row = measure(name, int(tokens), runs=args.runs, small=args.small)
        print(json.dumps(asdict(row)))
        return 0
    models = [m for m in args.models.split(",") if m]
    token_counts = [int(t) for t in args.tokens.split(",") if t]
    if args.small:
        token_counts = [min(t, 64) for t in token_counts] if args.tokens != "128,512,1024" else [16, 64]
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"
    print(
        f"extraction with Q/K against a bare forward pass ({args.runs} runs per case, {args.threads} torch thread(s), "
        f"{os.cpu_count()} CPU cores, load average {load}):",
        flush=True,
    )
    rows = scale_table(
        models,
        token_counts,
        runs=args.runs,
        threads=args.threads,
        max_forward_s=args.max_forward_s,
        small=args.small,
        log=lambda m: print(m, flush=True),
    )
    print()
    print(format_table(rows))
    print(
        "\nratio: wall-clock medians; CPU-time ratio: the same runs in process CPU time (steadier on a shared "
        "machine). Peak RSS: the case's process after its bare passes, then after its extractions."
    )
    if args.json:
        args.json.write_text(
            json.dumps([asdict(r) | {"ratio": r.ratio, "cpu_ratio": r.cpu_ratio} for r in rows], indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
