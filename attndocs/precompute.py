"""`attndocs precompute`: fill the cache for every figure of a site before it is built.

Run it where torch (and perhaps a GPU) is, keep or commit the cache, and the site then
builds anywhere in ``frozen`` mode with no torch at all. It understands three kinds of
site, and reads each the way its builder does:

- a MkDocs project (``mkdocs.yml``): the attndocs plugin's settings and the pages MkDocs
  would build from docs_dir;
- a Sphinx project (``conf.py``): Sphinx itself builds it with the ``dummy`` builder into
  a temporary folder, execution mode ``auto`` (or ``force``), so every directive, in rst
  or MyST, is found by the extension that builds the site;
- any other folder: the Markdown pages ``attndocs build`` would build (with attndocs.toml).

Figures whose record is cached already are not recomputed unless the mode is ``force``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import OptionError
from .fence import FigureBatch, find_blocks, normalise_newlines
from .options import SiteSettings, settings_fields
from .pipeline import Pipeline, Progress

KINDS = ("mkdocs", "sphinx", "markdown")
MKDOCS_FILES = ("mkdocs.yml", "mkdocs.yaml")
SPHINX_FILES = ("conf.py",)


@dataclass
class PrecomputeReport:
    """What was found and what became of it."""

    kind: str
    source: Path
    cache_dir: Path
    figures: int = 0
    computed: int = 0
    cached: int = 0
    failed: int = 0
    lines: list[str] = field(default_factory=list)  # one per computed or failed figure
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.kind} site {self.source}: {self.figures} figure(s), {self.computed} computed, "
            f"{self.cached} already cached, {self.failed} failed in {self.seconds:.1f} s; cache {self.cache_dir}"
        )


def detect(src: str | Path) -> tuple[str, Path]:
    """(kind, config file or folder) of a site given as a folder or as its config file."""
    path = Path(src).resolve()
    if path.is_file():
        if path.name in MKDOCS_FILES:
            return "mkdocs", path
        if path.name in SPHINX_FILES:
            return "sphinx", path
        raise OptionError(f"{path} is neither mkdocs.yml nor conf.py", "give the site's folder or its config file")
    if not path.is_dir():
        raise OptionError(f"{path} does not exist")
    for name in MKDOCS_FILES:
        if (path / name).is_file():
            return "mkdocs", path / name
    for candidate in (path / "conf.py", path / "source" / "conf.py"):
        if candidate.is_file():
            return "sphinx", candidate
    return "markdown", path


def precompute(src: str | Path, overrides: Mapping[str, Any] | None = None, *, progress: Progress | None = None) -> PrecomputeReport:
    """Fill the cache for every figure of the site at ``src``.

    ``overrides`` are SiteSettings values that win over the site's own (device, cache_dir,
    execution_mode ...). Raises :class:`OptionError` when the site cannot be read.
    """
    started = time.perf_counter()
    kind, path = detect(src)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if overrides.get("execution_mode") == "off":
        raise OptionError("precompute computes figures: execution mode 'off' makes no sense here")
    if kind == "sphinx":
        report = _precompute_sphinx(path, overrides)
    else:
        if kind == "mkdocs":
            settings, pages = _mkdocs_site(path, overrides)
        else:
            settings, pages = _markdown_site(path, overrides)
        report = PrecomputeReport(kind, path, Path(settings.cache_dir or ""))
        base_dir = path.parent if kind == "mkdocs" else _markdown_base(path)
        _run(settings, pages, base_dir, report, progress)
    report.seconds = time.perf_counter() - started
    return report


def _run(settings: SiteSettings, pages: list[tuple[str, str]], base_dir: Path, report: PrecomputeReport, progress: Progress | None) -> None:
    batch = FigureBatch(base_dir=base_dir)
    for name, text in pages:
        for block in find_blocks(text):
            batch.add(name, block)
    report.figures = len(batch.figures)
    batch.compute(Pipeline(settings, progress=progress))
    for figure in batch.figures:
        result = figure.result
        error = figure.error or (result.error if result is not None else None)
        if error is not None:
            report.failed += 1
            report.lines.append(f"{figure.where()}: failed: {error}")
        elif result is not None and result.source == "computed":
            report.computed += 1
            opts = figure.options
            report.lines.append(f"{figure.where()}: computed ({result.record.model_id if result.record else opts.model}, {opts.view} view)")  # type: ignore[union-attr]
        else:
            report.cached += 1


def _markdown_base(folder: Path) -> Path:
    from .site import CONFIG_NAME

    return folder if (folder / CONFIG_NAME).is_file() else Path.cwd()


def _markdown_site(folder: Path, overrides: Mapping[str, Any]) -> tuple[SiteSettings, list[tuple[str, str]]]:
    from .site import discover, load_site_config

    config = load_site_config(folder, overrides)
    pages, _ = discover(config.docs_dir, skip=[Path(config.settings.cache_dir or "")])
    return config.settings, [(p.src.as_posix(), p.text) for p in pages]


def _mkdocs_site(config_file: Path, overrides: Mapping[str, Any]) -> tuple[SiteSettings, list[tuple[str, str]]]:
    """The plugin's settings and the pages MkDocs would read (its exclusions honoured)."""
    try:
        from mkdocs.config import load_config
        from mkdocs.exceptions import ConfigurationError
        from mkdocs.structure.files import get_files
    except ImportError:
        raise OptionError(f"{config_file} is a MkDocs project, but MkDocs is not installed", "pip install 'attndocs[mkdocs]'") from None

    from .mkdocs_plugin.config import AttndocsConfig, site_settings

    try:
        config = load_config(str(config_file))
    except ConfigurationError as exc:
        raise OptionError(f"{config_file}: {exc}") from None
    plugin = config.plugins.get("attndocs")
    if plugin is None:
        plugin_config = AttndocsConfig()
        plugin_config.load_dict({})
        plugin_config.validate()
        print(f"attndocs: note: {config_file} does not enable the attndocs plugin; using its defaults", file=sys.stderr)
    else:
        plugin_config = plugin.config
    settings = site_settings(plugin_config, str(config_file))
    if overrides:
        values = {**{f.name: getattr(settings, f.name) for f in settings_fields()}, **overrides}
        if "cache_dir" in overrides:
            values["cache_dir"] = str(Path(overrides["cache_dir"]).resolve())
        settings = SiteSettings.from_mapping(values)
    pages = []
    for file in get_files(config).documentation_pages():
        pages.append((file.src_uri, normalise_newlines(file.content_string)))
    return settings, pages


def _precompute_sphinx(conf_py: Path, overrides: Mapping[str, Any]) -> PrecomputeReport:
    """A Sphinx build with the ``dummy`` builder: the extension finds and computes every figure.

    It runs in this process (as sphinx-build would) into a temporary folder, so the site's
    own build folder is not touched; the figures' outcomes are read from the extension.
    """
    try:
        from sphinx.application import Sphinx
    except ImportError:
        raise OptionError(f"{conf_py} is a Sphinx project, but Sphinx is not installed", "pip install 'attndocs[sphinx]'") from None
    from .sphinx_ext.build import iter_entries, state_of

    srcdir = conf_py.parent
    confoverrides: dict[str, Any] = {"attention_execution_mode": overrides.get("execution_mode", "auto")}
    for key in ("device", "batch_size", "trust_remote_code", "cache_dir"):
        if key in overrides:
            value = overrides[key]
            confoverrides[f"attention_{key}"] = str(Path(value).resolve()) if key == "cache_dir" else value
    from sphinx.util.docutils import docutils_namespace, patch_docutils

    # As sphinx-build does: docutils' registries are restored afterwards, so this process can
    # run other Sphinx builds later.
    with tempfile.TemporaryDirectory(prefix="attndocs-precompute-") as tmp, patch_docutils(srcdir), docutils_namespace():
        app = Sphinx(
            str(srcdir), str(srcdir), str(Path(tmp) / "out"), str(Path(tmp) / "doctrees"), "dummy",
            confoverrides=confoverrides, status=sys.stderr, warning=sys.stderr, freshenv=True,
        )
        app.build()
        entries = list(iter_entries(app.env))
        cache_dir = Path(state_of(app.env).settings.cache_dir or "").resolve()
    report = PrecomputeReport("sphinx", conf_py, cache_dir, figures=len(entries))
    for entry in entries:
        if entry.failed:
            report.failed += 1
            report.lines.append(f"{entry.location}: failed: {entry.error}")
        elif entry.state == "computed":
            report.computed += 1
            report.lines.append(f"{entry.location}: computed ({entry.options.model or 'default model'}, {entry.options.view} view)")
        else:
            report.cached += 1
    return report
