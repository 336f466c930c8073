"""The `attndocs` command line: extract, render, and cache maintenance.

Every figure flag is generated from FigureOptions, so the CLI, the directive and the
fence accept the same options. Errors print one line and exit non-zero; no traceback.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import AttndocsError, InputError, OutputError
from .options import DEVICE_MAP_STRATEGIES, DTYPES, MODES, FigureOptions, SiteSettings, figure_fields, option_name
from .state import STATE_KEYS
from .text import terminal_safe


def say(message: str, *, err: bool = True) -> None:
    """One line for a person: anything quoted from pages or paths is escaped (no raw ESC)."""
    print(terminal_safe(message), file=sys.stderr if err else sys.stdout)


def add_figure_flags(parser: argparse.ArgumentParser, *, exclude: Sequence[str] = ()) -> None:
    """One ``--flag`` per FigureOptions field (the text itself is positional)."""
    for f in figure_fields():
        name = option_name(f)
        if name in exclude:
            continue
        # The matrix view's `mode` option would meet the run flag --mode (execution mode).
        flag = "matrix-mode" if name == "mode" else name
        parser.add_argument(f"--{flag}", dest=f"opt_{f.name}", default=None, metavar=name.upper().replace("-", "_"), help=f.metadata["help"])


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", default=None, help="Cache folder (default: $ATTNDOCS_CACHE_DIR or ./.cache/attndocs).")
    parser.add_argument("--mode", choices=[m for m in MODES if m != "off"], default="auto", help="auto: compute misses; force: recompute; frozen: cache only, a miss is an error.")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto.")
    parser.add_argument("--trust-remote-code", action="store_true", help="Allow models whose code lives in their hub repository.")
    # Default None: the site's config (or SiteSettings) decides unless the flag is given.
    parser.add_argument("--dtype", choices=DTYPES, default=None, help="Precision models run in (default: auto, float32 unless it does not fit the GPU memory).")
    parser.add_argument(
        "--device-map",
        default=None,
        metavar="MAP",
        help=f"Spread a large model over devices: {', '.join(DEVICE_MAP_STRATEGIES)}, or module=device pairs such as "
        "'embeddings=0,encoder=1,pooler=cpu' (or JSON). Overrides --device.",
    )
    parser.add_argument("--max-memory", default=None, metavar="LIMITS", help="With --device-map: the most each device may hold, such as '0=20GiB,cpu=60GiB' (or JSON); the rest goes to disk.")


def _placement(args: argparse.Namespace) -> dict[str, str | None]:
    """The placement flags as settings (None where not given)."""
    return {"dtype": args.dtype, "device_map": args.device_map, "max_memory": args.max_memory}


def figure_options_from_args(args: argparse.Namespace, text: str) -> FigureOptions:
    values = {name[4:]: value for name, value in vars(args).items() if name.startswith("opt_") and value is not None}
    values["text"] = text
    return FigureOptions.from_mapping(values)


def settings_from_args(args: argparse.Namespace) -> SiteSettings:
    cache_dir = args.cache_dir or os.environ.get("ATTNDOCS_CACHE_DIR") or str(Path.cwd() / ".cache" / "attndocs")
    return SiteSettings.from_mapping(
        {
            "cache_dir": cache_dir,
            "execution_mode": args.mode,
            "device": args.device,
            "trust_remote_code": args.trust_remote_code,
            **{name: value for name, value in _placement(args).items() if value is not None},
        }
    )


def terminal_progress(done: int, total: int, message: str) -> None:
    """Progress lines on an interactive terminal; silent when stderr is a pipe or a file."""
    if sys.stderr.isatty():
        print(terminal_safe(f"attndocs: [{done}/{total}] {message}"), file=sys.stderr, flush=True)


# -- output files ---------------------------------------------------------------------------
def checked_output(value: str) -> Path:
    """The ``-o`` path, refused before any computation when it cannot become a file.

    A folder, a device or other non-file, a path below a file, a folder that is not
    writable: each is an :class:`OutputError` naming the path and the cause.
    """
    out = Path(value)
    try:
        if out.is_dir():
            raise OutputError(f"cannot write {out}: it is a folder", f"give a file name, such as {out / 'figure.html'}")
        if os.path.lexists(out) and not out.is_file():
            raise OutputError(f"cannot write {out}: it exists and is not a regular file")
        folder = out.absolute().parent
        while not os.path.lexists(folder) and folder != folder.parent:
            folder = folder.parent  # the folders that are missing get created when writing
        if not folder.is_dir():
            raise OutputError(f"cannot write {out}: {folder} is a file, not a folder")
        if not os.access(folder, os.W_OK):
            raise OutputError(f"cannot write {out}: Permission denied (the folder {folder} is not writable)")
    except OSError as exc:  # a name too long, a folder that cannot be searched
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out


def write_output(out: Path, data: bytes) -> None:
    """Write ``data`` to ``out`` whole or not at all: a temporary file beside it, renamed into place.

    A full disk or an interrupted write leaves any earlier file at ``out`` as it was, and
    no partial file behind.
    """
    temp: Path | None = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        temp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
        # os.open with 0o666 gives the file the mode the umask allows, as a plain write would.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, out)
        temp = None
    except OSError as exc:
        cause = exc.strerror or str(exc)
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) not in (str(out), str(temp)) else ""
        raise OutputError(f"cannot write {out}: {cause}{where}") from None
    finally:
        if temp is not None:
            try:
                temp.unlink()
            except OSError:
                pass  # never created, or already gone


def read_text_arg(value: str | None, image: str | None = None) -> str:
    """The positional TEXT, or standard input when it is '-'; none with ``--image`` (a vision model reads no text)."""
    if value is None:
        if image is None:
            raise InputError("no TEXT given", "give the text to run the model on ('-' reads standard input), or --image PATH for a vision model")
        return ""
    if value == "-":
        try:
            return sys.stdin.buffer.read().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"standard input is not valid UTF-8 (byte {exc.start})", "save the text as UTF-8") from None
    return value


# -- extract ------------------------------------------------------------------------------
def _add_extract(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("extract", help="Run a model on a text and write its attention record (safetensors).")
    p.add_argument("text", metavar="TEXT", nargs="?", help="The text ('-' reads standard input); none with --image.")
    p.add_argument("-o", "--output", required=True, help="Where to write the record (.safetensors).")
    p.add_argument("--qk", action="store_true", help="Also store query/key vectors (for the neuron view), self-checked.")
    # A record has no view: what a figure shows and opens on (attndocs.state) does not apply.
    shown = ("view", "include-layers", "include-heads", "display", "caption", "name", "alt", "class")
    add_figure_flags(p, exclude=shown + tuple(key.name for key in STATE_KEYS))
    add_run_flags(p)
    p.set_defaults(func=_cmd_extract)


def _cmd_extract(args: argparse.Namespace) -> int:
    from .pipeline import Pipeline

    out = checked_output(args.output)  # before computing: a bad path wastes no model run
    options = figure_options_from_args(args, read_text_arg(args.text, getattr(args, "opt_image", None)))
    # exact: a computed record is written as the model gave it (float32), not at the cache's precision.
    pipeline = Pipeline(settings_from_args(args), progress=terminal_progress, exact=True)
    result = pipeline.compute_one(options, qk=args.qk)
    for warning in result.warnings:
        say(f"attndocs: warning: {warning}")
    write_output(out, result.record.to_bytes())
    say(f"{out}: {result.describe()}")
    if result.record.precision != "exact":
        say(
            "attndocs: note: served from the cache without running the model, so the file holds the cache's precision "
            "(8-bit attention, float16 query/key; metadata precision=cache); --mode force writes the exact record"
        )
    return 0


# -- render -------------------------------------------------------------------------------
def _add_render(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="Run a model on a text and write one self-contained interactive HTML page.")
    p.add_argument("text", metavar="TEXT", nargs="?", help="The text ('-' reads standard input); none with --image.")
    p.add_argument("-o", "--output", required=True, help="Where to write the page (.html); it works from file:// offline.")
    p.add_argument("--title", default=None, help="Page title (default: the caption, else a description of the figure).")
    add_figure_flags(p)
    add_run_flags(p)
    p.set_defaults(func=_cmd_render)


def _cmd_render(args: argparse.Namespace) -> int:
    from .pipeline import Pipeline
    from .render import render_record_page

    out = checked_output(args.output)
    options = figure_options_from_args(args, read_text_arg(args.text, getattr(args, "opt_image", None)))
    result = Pipeline(settings_from_args(args)).compute_one(options, qk=options.view == "neuron")
    data = render_record_page(result.record, options, title=args.title, compare=getattr(result, "compare", None)).encode("utf-8")
    write_output(out, data)
    say(f"{out}: {options.view} view, {result.describe()}, {len(data):,} bytes")
    return 0


# -- build and precompute (site front-ends) --------------------------------------------------
def _site_overrides(args: argparse.Namespace) -> dict:
    """Settings the flags set explicitly; the site's own config decides the rest."""
    return {
        "cache_dir": args.cache_dir or os.environ.get("ATTNDOCS_CACHE_DIR"),
        "execution_mode": args.mode,
        "device": args.device,
        "trust_remote_code": True if args.trust_remote_code else None,
        **_placement(args),
    }


def _add_build(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="Build a static site (light/dark, works from file://) from a folder of Markdown pages.")
    p.add_argument("src", metavar="SRC", help="Folder of Markdown pages, optionally with an attndocs.toml.")
    p.add_argument("-o", "--output", default="site", help="Output folder (default: ./site); cleared on each build.")
    p.add_argument("--title", default=None, help="Site title (default: attndocs.toml's title, else the folder name).")
    p.add_argument("--strict", action="store_true", help="Exit non-zero when there is any warning.")
    add_run_flags(p)
    # None means "not given": attndocs.toml's settings apply unless a flag overrides them.
    p.set_defaults(func=_cmd_build, mode=None, device=None)


def _cmd_build(args: argparse.Namespace) -> int:
    from .site import build_site, stderr_progress

    report = build_site(args.src, args.output, overrides=_site_overrides(args), title=args.title, progress=stderr_progress)
    for problem in report.problems:
        say(f"attndocs: warning: {problem}")
    say(report.summary(), err=False)
    say(f"open {(report.out / 'index.html').as_uri()}", err=False)
    if args.strict and report.problems:
        say(f"attndocs: error: {len(report.problems)} warning(s) and --strict")
        return 1
    if report.failed and report.settings.raise_on_error:
        say(f"attndocs: error: {report.failed} figure(s) failed and raise_on_error is on")
        return 1
    return 0


def _add_precompute(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("precompute", help="Fill the cache for every figure of a site (MkDocs, Sphinx or a Markdown folder).")
    p.add_argument("src", metavar="SRC", help="The site: a folder with mkdocs.yml or conf.py, that file, or a folder of Markdown pages.")
    p.add_argument(
        "--shard",
        default=None,
        metavar="K/N",
        help="Compute only the K-th of N shards of the figures (1/3, 2/3, 3/3), split by cache key: N runs, on as many "
        "machines, fill one cache between them, and their cache folders merge by copying files.",
    )
    add_run_flags(p)
    p.set_defaults(func=_cmd_precompute, mode=None, device=None)


def _cmd_precompute(args: argparse.Namespace) -> int:
    from .precompute import Shard, precompute
    from .site import stderr_progress

    shard = Shard.parse(args.shard) if args.shard is not None else None  # a bad K/N stops before the site is read
    report = precompute(args.src, _site_overrides(args), progress=stderr_progress, shard=shard)
    for line in report.lines:
        say(line, err=False)
    say(report.summary(), err=False)
    return 1 if report.failed else 0


# -- cache --------------------------------------------------------------------------------
def _add_cache(sub: argparse._SubParsersAction) -> None:
    from .cache import add_cache_commands

    add_cache_commands(sub)


# -- pandoc and Quarto ----------------------------------------------------------------------
def _add_pandoc(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pandoc-filter", help="Print the path of the pandoc Lua filter: pandoc --lua-filter \"$(attndocs pandoc-filter)\".")
    p.set_defaults(func=_cmd_pandoc_filter)
    p = sub.add_parser("pandoc-figures", help="Used by the pandoc filter: a document's figures, JSON request on stdin, JSON answer on stdout.")
    p.set_defaults(func=_cmd_pandoc_figures)
    p = sub.add_parser("quarto-extension", help="Write the pandoc filter as a Quarto extension, DIR/_extensions/attndocs/ (untested with Quarto).")
    p.add_argument("dir", metavar="DIR", help="The Quarto project folder (the one with _quarto.yml).")
    p.add_argument("--force", action="store_true", help="Replace files there that differ from this attndocs's (your edits to them are lost).")
    p.set_defaults(func=_cmd_quarto_extension)


def _cmd_pandoc_filter(args: argparse.Namespace) -> int:
    from .pandoc import filter_path

    say(str(filter_path()), err=False)
    return 0


def _cmd_pandoc_figures(args: argparse.Namespace) -> int:
    from .pandoc import run_filter

    return run_filter(sys.stdin.buffer.read(), sys.stdout.buffer, sys.stderr)


def _cmd_quarto_extension(args: argparse.Namespace) -> int:
    from .pandoc import quarto_instructions, write_quarto_extension

    report = write_quarto_extension(args.dir, force=args.force)
    for name in report.written:
        say(f"wrote {report.folder / name}", err=False)
    for name in report.unchanged:
        say(f"unchanged {report.folder / name}", err=False)
    for line in quarto_instructions().splitlines():
        say(line, err=False)
    return 0


# -- MyST-MD (Jupyter Book 2) -----------------------------------------------------------------
def _add_myst_plugin(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("myst-plugin", help="Write the MyST-MD executable plugin (the attention-figure directive) that myst.yml names.")
    p.add_argument("path", metavar="PATH", nargs="?", default="attndocs-plugin.py", help="Where to write it (default: ./attndocs-plugin.py, beside myst.yml).")
    p.add_argument("--force", action="store_true", help="Replace a file at PATH that attndocs did not write.")
    p.set_defaults(func=_cmd_myst_plugin)


def _cmd_myst_plugin(args: argparse.Namespace) -> int:
    from .myst_plugin import myst_yml_lines, write_plugin

    out = write_plugin(args.path, force=args.force)
    say(f"wrote {out} (it runs attndocs with {sys.executable})", err=False)
    say("add to myst.yml:", err=False)
    for line in myst_yml_lines(out).splitlines():
        say(line, err=False)
    return 0


# -- main ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attndocs", description="Interactive attention figures for documentation.")
    parser.add_argument("--version", action="version", version=f"attndocs {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_extract, _add_render, _add_build, _add_precompute, _add_cache, _add_pandoc, _add_myst_plugin):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except AttndocsError as exc:
        say(f"attndocs: error: {exc}")
        return 1
    except OSError as exc:
        # The last resort for a file a command could not read or write: one line naming
        # the file and the cause, never a traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        say(f"attndocs: error: {where}{exc.strerror or exc}")
        return 1
    except KeyboardInterrupt:
        say("attndocs: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
