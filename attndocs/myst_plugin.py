"""The MyST-MD (Jupyter Book 2) host: an executable plugin with the ``attention-figure`` directive.

mystmd runs an executable plugin as a separate program and talks to it over standard input
and output (mystmd's docs, "Write plugins in other languages"):

- run with no argument, the program prints its specification (name, directives, transforms);
- ``--directive NAME`` reads one directive's data (JSON) and prints the nodes that replace it;
- ``--transform NAME`` reads a page's whole document tree and prints the tree transformed.

mystmd starts one process per directive, synchronously, while it parses a page, and one per
transform per page. A model load per directive would make a page of ten figures load its
model ten times, so the work is split in two:

1. The directive only packs what the author wrote (options with their lines, the body and its
   line) into a pending ``div`` node. It imports nothing from attndocs: a few tens of ms.
2. The document-stage transform finds a page's pending nodes, parses them with
   :mod:`attndocs.fence` (the same options, errors and lines as every other host), hands them
   to one pipeline run (cache first, one load per model for the page's misses) and puts an
   ``anywidget`` node in place of each: the ES module of :func:`attndocs.widgets.widget_esm`
   (a file named by its content hash, which mystmd copies into the site) and the model state
   of :func:`attndocs.widgets.widget_state`. The MyST theme imports that module and calls
   its ``render({ model, el })`` in a shadow root. A figure that cannot be made becomes an
   admonition saying why, and its ``page:line: message`` goes to standard error.

mystmd shows a plugin's standard error only with ``myst build --debug`` when the plugin
succeeds, and stops the build, printing it, when the plugin exits non-zero. So by default a
bad figure is a visible placeholder and the build goes on; with ``raise_on_error = true`` in
``attndocs.toml`` the transform exits non-zero after listing every problem, and the build
fails with them. Neither step knows which file it works on (mystmd sends no path): a
message's page is found by looking for a file with ``{attention-figure}`` directives at the
lines of the page's figures.

Site settings come from ``attndocs.toml`` beside ``myst.yml`` (the keys of ``attndocs
build``), and ``$ATTNDOCS_CACHE_DIR`` overrides the cache folder, as for the CLI.
``attndocs myst-plugin`` writes the small program that myst.yml names (:func:`write_plugin`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

DIRECTIVE = "attention-figure"
TRANSFORM = "attndocs-figures"
PENDING_CLASS = "attndocs-pending"
MODULE_DIR = "_build/attndocs"  # relative to the project (myst.yml's folder), mystmd's working folder
PLUGIN_FILE = "attndocs-plugin.py"
MARKER = "# Written by `attndocs myst-plugin`"
# mystmd keeps the first 20 characters of a copied file's name: "attndocs-" and 11 hex digits.
_MODULE_STEM = "attndocs-"
_HASH_CHARS = 11
# Folders never searched for the page of a message.
_SKIP_DIRS = {"_build", "node_modules", "site-packages", "__pycache__"}
_PAGE_SUFFIXES = (".md", ".markdown")
_OPENING = re.compile(r"^[ \t]*(`{3,}|~{3,}|:{3,})[ \t]*\{" + re.escape(DIRECTIVE) + r"\}")


def _option_names() -> list[str]:
    from .options import figure_fields, option_name

    return [option_name(f) for f in figure_fields()]


def plugin_spec() -> dict[str, Any]:
    """What the program prints when mystmd asks for its specification."""
    return {
        "name": "attndocs attention figures",
        "directives": [
            {
                "name": DIRECTIVE,
                "doc": "An interactive attention figure: options as :key: value lines (or key: value lines "
                "at the top of the body, then one blank line), then the text the model reads.",
                # Declared so that mystmd itself does not warn about the line; its text is refused below.
                "arg": {"type": "string", "doc": "Not used: the text is the body."},
                # Every FigureOptions option, as text: FigureOptions parses and checks the values.
                "options": {name: {"type": "string", "doc": f"attndocs option {name}"} for name in _option_names()},
                "body": {"type": "string", "doc": "Option lines, one blank line, then the text the model reads."},
            }
        ],
        "transforms": [
            {
                "name": TRANSFORM,
                "doc": "Computes the page's attention figures in one pipeline run.",
                "stage": "document",
            }
        ],
    }


# -- the directive: pack, compute nothing ---------------------------------------------------
def _line(node: Any) -> int:
    try:
        line = node["position"]["start"]["line"]
    except (KeyError, TypeError):
        return 0
    return line if isinstance(line, int) and line > 0 else 0


def run_directive(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The pending node for one directive: the author's options with their lines, and the body."""
    node = data.get("node") if isinstance(data.get("node"), dict) else {}
    line = _line(node)
    children = [c for c in node.get("children") or [] if isinstance(c, dict)]
    options: list[list[Any]] = []
    seen: set[str] = set()
    for child in children:
        if child.get("type") == "mystOption" and isinstance(child.get("name"), str):
            value = child.get("value")
            options.append(
                [child["name"], value if isinstance(value, (str, bool, int, float)) else "", _line(child) or line]
            )
            seen.add(child["name"])
    # Options given as a YAML block have no mystOption node of their own.
    for name, value in (node.get("options") or data.get("options") or {}).items():
        if name not in seen:
            options.append([name, value if isinstance(value, (str, bool, int, float)) else str(value), line])
    body_node = next((c for c in children if c.get("type") == "mystDirectiveBody"), None)
    body = data.get("body")
    pending = {
        "line": line,
        "arg": data.get("arg") if isinstance(data.get("arg"), str) else None,
        "options": options,
        "body": body if isinstance(body, str) else "",
        "body_line": _line(body_node) if body_node is not None else 0,
    }
    note = "attention figure (not drawn: the attndocs transform did not run on this page)"
    made = {
        "type": "div",
        "class": PENDING_CLASS,
        "attndocs": pending,
        "children": [{"type": "paragraph", "children": [{"type": "text", "value": note}]}],
    }
    if isinstance(node.get("position"), dict):
        made["position"] = node["position"]
    return [made]


# -- the transform: one pipeline run per page ------------------------------------------------
def _pending_nodes(tree: Any) -> Iterator[tuple[list[Any], int]]:
    """``(siblings, index)`` of every pending node, in page order."""
    if not isinstance(tree, dict):
        return
    children = tree.get("children")
    if not isinstance(children, list):
        return
    for i, child in enumerate(children):
        if isinstance(child, dict) and child.get("type") == "div" and isinstance(child.get("attndocs"), dict):
            yield children, i
        else:
            yield from _pending_nodes(child)


def _parse_pending(pending: dict[str, Any]) -> Any:
    """The :class:`~attndocs.fence.AttentionBlock` for one pending node: parsed, or with its error."""
    from .fence import AttentionBlock, FenceError, GivenOption, parse_with_options

    line = pending.get("line") or 0
    body = pending.get("body") or ""
    body_line = pending.get("body_line") or (line + 1 if line else 1)
    try:
        if pending.get("arg"):
            raise FenceError(
                f"the {DIRECTIVE} directive takes its text as its body, not on the directive line",
                "write the text below the options (after one blank line)",
                line=line,
            )
        given = [GivenOption(str(name), value, where) for name, value, where in pending.get("options") or []]
        parsed = parse_with_options(body, given, first_line=body_line, line=line)
        return AttentionBlock(0, 0, line, "", body, parsed, None)
    except FenceError as exc:
        return AttentionBlock(0, 0, line, "", body, None, exc)


def _placeholder(message: str, caption: str | None, *, failed: bool) -> dict[str, Any]:
    children: list[dict[str, Any]] = [
        {
            "type": "admonitionTitle",
            "children": [{"type": "text", "value": "Attention figure unavailable" if failed else "Attention figure"}],
        },
        {"type": "paragraph", "children": [{"type": "text", "value": message}]},
    ]
    if caption:
        children.append(
            {"type": "paragraph", "children": [{"type": "emphasis", "children": [{"type": "text", "value": caption}]}]}
        )
    return {
        "type": "admonition",
        "kind": "danger" if failed else "note",
        "class": "attndocs-placeholder",
        "children": children,
    }


def _named(node: dict[str, Any], name: str) -> dict[str, Any]:
    """A figure container around ``node``: mystmd's cross-references (``[](#name)``) find containers.

    The caption stays inside the figure (it is part of the widget), so the container has none.
    """
    label = " ".join(name.split())
    return {"type": "container", "kind": "figure", "label": label, "identifier": label.lower(), "children": [node]}


def module_file(project: Path) -> str:
    """Write the widget module (once per content) under the project; the path a node names.

    The file is named by its content hash and written only when missing, so its size and
    time stay put and mystmd's copy in the site keeps one name from build to build.
    """
    from .widgets import widget_esm

    source = widget_esm().encode("utf-8")
    name = f"{_MODULE_STEM}{hashlib.sha256(source).hexdigest()[:_HASH_CHARS]}.mjs"
    folder = project / MODULE_DIR
    target = folder / name
    if not (target.is_file() and target.read_bytes() == source):
        from .cli import write_output

        write_output(target, source)
    # A leading "/" means "from the project folder" to mystmd's asset copier.
    return f"/{MODULE_DIR}/{name}"


def find_page(project: Path, lines: Sequence[int]) -> str | None:
    """The project's one Markdown file with an ``{attention-figure}`` directive opening at each of ``lines``."""
    wanted = sorted({n for n in lines if n > 0})
    if not wanted:
        return None
    found: list[str] = []
    for folder, dirs, files in os.walk(project):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
        for name in sorted(files):
            if not name.endswith(_PAGE_SUFFIXES):
                continue
            path = Path(folder) / name
            try:
                text = (
                    path.read_text(encoding="utf-8", errors="replace")
                    .replace("\r\n", "\n")
                    .replace("\r", "\n")
                    .split("\n")
                )
            except OSError:
                continue
            if all(n <= len(text) and _OPENING.match(text[n - 1]) for n in wanted):
                found.append(path.relative_to(project).as_posix())
    return found[0] if len(found) == 1 else None


def _settings(project: Path) -> Any:
    from .site import load_site_config

    return load_site_config(project, {"cache_dir": os.environ.get("ATTNDOCS_CACHE_DIR") or None}).settings


def run_transform(
    tree: dict[str, Any], *, project: Path | None = None, err: TextIO | None = None
) -> tuple[dict[str, Any], int]:
    """The page's tree with every pending node replaced; and the exit status (1: a figure failed under raise_on_error)."""
    err = err or sys.stderr
    found = list(_pending_nodes(tree))
    if not found:
        return tree, 0
    from .errors import AttndocsError
    from .fence import FigureBatch
    from .pipeline import Pipeline
    from .text import terminal_safe
    from .widgets import widget_state

    project = (project or Path.cwd()).resolve()
    try:
        settings = _settings(project)
    except AttndocsError as exc:  # a bad attndocs.toml: every figure of the page says so
        settings, config_error = None, exc
    else:
        config_error = None

    pending = [siblings[i]["attndocs"] for siblings, i in found]
    blocks = [_parse_pending(item) for item in pending]
    page: list[str | None] = []  # found when first needed: mystmd does not say which file this is

    def page_name() -> str | None:
        if not page:
            page.append(find_page(project, [p.get("line") or 0 for p in pending]))
        return page[0]

    def where(line: int) -> str:
        name = page_name() or "(page not found)"
        return f"{name}:{line}" if line else name

    # An image is named relative to its page; without the page, relative to the project folder.
    images = any(b.options is not None and getattr(b.options, "image", None) for b in blocks)
    known_page = page_name() if images else None
    batch = FigureBatch(base_dir=project, docs_dir=project) if known_page else FigureBatch(base_dir=project)
    for block in blocks:
        batch.add(known_page or "", block)
    if settings is not None:
        batch.compute(Pipeline(settings))

    problems: list[str] = []
    module: str | None = None
    failed = 0
    for (siblings, i), figure in zip(found, batch.figures):
        old = siblings[i]
        result = figure.result
        error = config_error or figure.error or (result.error if result is not None else None)
        for warning in result.warnings if result is not None else ():
            problems.append(f"{where(figure.line)}: {warning}")
        node: dict[str, Any] | None = None
        if error is None and result is not None and result.record is not None:
            try:
                state = widget_state(result.record, figure.options, compare=result.compare)  # type: ignore[arg-type]
                module = module or module_file(project)
            except (AttndocsError, OSError) as exc:
                error = (
                    exc if isinstance(exc, AttndocsError) else AttndocsError(f"cannot write the widget module: {exc}")
                )
            else:
                node = {"type": "anywidget", "esm": module, "model": state, "id": state["figure_id"]}
                if figure.options.class_:  # type: ignore[union-attr]
                    node["class"] = figure.options.class_  # type: ignore[union-attr]
                if figure.options.name:  # type: ignore[union-attr]
                    node = _named(node, figure.options.name)  # type: ignore[union-attr]
        if node is None:
            caption = figure.options.caption if figure.options is not None else None
            if error is None:
                node = _placeholder("not computed (the execution mode is off)", caption, failed=False)
            else:
                failed += 1
                line = getattr(error, "line", 0) or figure.line
                message = f"{where(line)}: {error}"
                problems.append(message)
                node = _placeholder(message, caption, failed=True)
        if "position" in old:
            node["position"] = old["position"]
        siblings[i] = node
    for problem in problems:
        print(terminal_safe(f"attndocs: {problem}"), file=err)
    if failed and settings is not None and settings.raise_on_error:
        print(f"attndocs: {failed} attention figure(s) failed and raise_on_error is on", file=err)
        return tree, 1
    return tree, 0


# -- the program mystmd runs -------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """The plugin program: no argument (the specification), ``--directive NAME`` or ``--transform NAME``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        json.dump(plugin_spec(), sys.stdout)
        return 0
    if len(args) != 2 or args[0] not in ("--directive", "--transform", "--role"):
        print(f"usage: {PLUGIN_FILE} [--directive NAME | --transform NAME] (run by mystmd)", file=sys.stderr)
        return 2
    kind, name = args
    try:
        data = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        print(f"attndocs: mystmd sent data that is not JSON: {exc}", file=sys.stderr)
        return 2
    if kind == "--directive" and name == DIRECTIVE:
        json.dump(run_directive(data if isinstance(data, dict) else {}), sys.stdout)
        return 0
    if kind == "--transform" and name == TRANSFORM:
        try:
            tree, status = run_transform(data)
        except Exception as exc:  # noqa: BLE001 - one line for the build log, never a bare traceback
            from .text import terminal_safe

            print(
                terminal_safe(f"attndocs: the figures of this page failed: {type(exc).__name__}: {exc}"),
                file=sys.stderr,
            )
            return 1
        if status:
            return status
        json.dump(tree, sys.stdout)
        return 0
    print(f"attndocs: this plugin has no {kind[2:]} named {name!r}", file=sys.stderr)
    return 2


# -- the file myst.yml names -------------------------------------------------------------------
def plugin_source(python: str) -> str:
    """The plugin program: a shell line that starts ``python`` on this file, then Python.

    mystmd runs the file itself, so it needs an interpreter line. ``#!/path/to/python`` breaks
    on a path with spaces or one longer than the kernel allows; the ``"exec"`` line is a
    shell command to ``sh`` and a string to Python, so any path works.
    """
    return (
        "#!/bin/sh\n"
        f'"exec" {_sh_and_python_quote(python)} "$0" "$@"\n'
        f"{MARKER} (attndocs' MyST-MD plugin): run it again after moving the Python environment.\n"
        "import sys\n\n"
        "from attndocs.myst_plugin import main\n\n"
        "sys.exit(main())\n"
    )


def _sh_and_python_quote(path: str) -> str:
    """``path`` as one double-quoted word that sh and Python both read as the same text."""
    from .errors import OptionError

    if any(c in path for c in '"\\$`\n\r') or not path:
        raise OptionError(
            f"cannot name the Python interpreter {path!r} in the plugin file",
            "use an environment whose path has no quotes, $, ` or \\",
        )
    return f'"{path}"'


def write_plugin(path: str | Path, *, python: str | None = None, force: bool = False) -> Path:
    """Write the executable plugin file at ``path``; refuse to replace a file it did not write."""
    from .cli import checked_output, write_output
    from .errors import OutputError

    out = checked_output(str(path))
    if out.is_file() and not force:
        try:
            ours = MARKER in out.read_text(encoding="utf-8", errors="replace")
        except OSError:
            ours = False
        if not ours:
            raise OutputError(
                f"{out} exists and was not written by `attndocs myst-plugin`",
                "give another path, or --force to replace it",
            )
    write_output(out, plugin_source(python or sys.executable).encode("utf-8"))
    try:
        out.chmod(out.stat().st_mode | 0o111)
    except OSError as exc:
        raise OutputError(f"cannot make {out} executable: {exc.strerror or exc}") from None
    return out


def myst_yml_lines(plugin: Path, project: Path | None = None) -> str:
    """The lines to add to myst.yml (paths in it are relative to myst.yml's folder)."""
    project = (project or Path.cwd()).resolve()
    target = plugin.resolve()
    try:
        shown = target.relative_to(project).as_posix()
    except ValueError:
        shown = target.as_posix()
    quoted = shown if re.fullmatch(r"[A-Za-z0-9_./-]+", shown) else json.dumps(shown)
    return f"project:\n  plugins:\n    - type: executable\n      path: {quoted}\n"
