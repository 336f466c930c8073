"""`attndocs precompute`: fill the cache for every figure of a site before it is built.

Run it where torch (and perhaps a GPU) is, keep or commit the cache, and the site then
builds anywhere in ``frozen`` mode with no torch at all. It understands three kinds of
site, and reads each the way its builder does:

- a MkDocs project (``mkdocs.yml``): the attndocs plugin's settings and the pages MkDocs
  would build from docs_dir;
- a Sphinx project (``conf.py``): Sphinx itself reads it with the ``dummy`` builder into
  a temporary folder, so every directive, in rst or MyST, is found by the extension that
  builds the site; the figures it found are then computed like the other kinds';
- any other folder: the Markdown pages ``attndocs build`` would build (with attndocs.toml).

Figures whose record is cached already are not recomputed unless the mode is ``force``.

With a shard ``K/N`` only the figures whose cache key falls in the K-th of N parts are
computed: the split depends on the key alone (a hash of the model, its revision and the
text), never on the order of pages or the machine, so N runs fill one cache together
without computing any figure twice, and their caches merge by copying files.
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import OptionError
from .fence import FigureBatch, find_blocks, normalise_newlines
from .options import FigureOptions, SiteSettings, settings_fields
from .pipeline import ELSEWHERE, FigureResult, Pipeline, Progress

KINDS = ("mkdocs", "sphinx", "markdown")
MKDOCS_FILES = ("mkdocs.yml", "mkdocs.yaml")
SPHINX_FILES = ("conf.py",)
MAX_SHARDS = 10_000  # far past any CI matrix (GitHub allows 256 jobs)
# What a figure's result says when another shard computes it.
OTHER_SHARD = ELSEWHERE


@dataclass(frozen=True)
class Shard:
    """The K-th of N parts of a site's figures (K from 1), chosen by cache key."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/3"`` -> Shard(2, 3); OptionError saying what is wrong otherwise."""
        match = re.fullmatch(r"\s*(\d{1,6})\s*/\s*(\d{1,6})\s*", text or "")
        if match is None:
            raise OptionError(f"--shard {text!r} is not K/N", "for example --shard 1/3 computes the first of three shards")
        index, count = int(match.group(1)), int(match.group(2))
        if not 1 <= count <= MAX_SHARDS:
            raise OptionError(f"--shard {text!r}: N must be from 1 to {MAX_SHARDS:,}, not {count}")
        if not 1 <= index <= count:
            raise OptionError(
                f"--shard {text!r}: K must be from 1 to {count}, not {index}",
                f"shards are numbered from 1: 1/{count} ... {count}/{count}",
            )
        return cls(index, count)

    def owns(self, key: str) -> bool:
        """Whether this shard computes the figure whose cache key is ``key`` (64 hex digits).

        The key is a sha256, so its leading 64 bits split the figures evenly.
        """
        return int(key[:16], 16) % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def make_pipeline(settings: SiteSettings, shard: Shard | None, **kwargs: Any) -> Pipeline:
    """A pipeline that computes only the misses ``shard`` owns (all of them without a shard).

    Cache hits are served whichever shard owns them; a miss left to another shard gets the
    source :data:`OTHER_SHARD`, neither record nor error.
    """
    return Pipeline(settings, computes=None if shard is None else shard.owns, **kwargs)


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
    shard: Shard | None = None
    elsewhere: int = 0  # figures left to the other shards

    def summary(self) -> str:
        shard = f" (shard {self.shard})" if self.shard else ""
        others = f", {self.elsewhere} left to other shards" if self.shard else ""
        return (
            f"{self.kind} site {self.source}{shard}: {self.figures} figure(s), {self.computed} computed, "
            f"{self.cached} already cached{others}, {self.failed} failed in {self.seconds:.1f} s; cache {self.cache_dir}"
        )

    def count(self, where: str, result: FigureResult | None, error: Any, describe: str) -> None:
        """Add one figure's outcome (``error``: its parse or pipeline error, if any)."""
        if error is not None:
            self.failed += 1
            self.lines.append(f"{where}: failed: {error}")
        elif result is not None and result.source == "computed":
            self.computed += 1
            self.lines.append(f"{where}: computed ({describe})")
        elif result is not None and result.source == OTHER_SHARD:
            self.elsewhere += 1
        else:
            self.cached += 1


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


def precompute(
    src: str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    progress: Progress | None = None,
    shard: Shard | str | None = None,
) -> PrecomputeReport:
    """Fill the cache for every figure of the site at ``src`` (or for one shard of them).

    ``overrides`` are SiteSettings values that win over the site's own (device, cache_dir,
    execution_mode ...). ``shard`` (``Shard`` or ``"K/N"``) computes only the misses whose
    cache key falls in that shard. Raises :class:`OptionError` when the site cannot be read.
    """
    started = time.perf_counter()
    if isinstance(shard, str):
        shard = Shard.parse(shard)
    kind, path = detect(src)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if overrides.get("execution_mode") == "off":
        raise OptionError("precompute computes figures: execution mode 'off' makes no sense here")
    if kind == "sphinx":
        report = _precompute_sphinx(path, overrides, shard, progress)
    else:
        if kind == "mkdocs":
            settings, pages, docs_dir = _mkdocs_site(path, overrides)
        else:
            settings, pages, docs_dir = _markdown_site(path, overrides)
        report = PrecomputeReport(kind, path, Path(settings.cache_dir or ""), shard=shard)
        base_dir = path.parent if kind == "mkdocs" else _markdown_base(path)
        _run(settings, pages, base_dir, docs_dir, report, progress, shard)
    report.seconds = time.perf_counter() - started
    return report


def _run(
    settings: SiteSettings, pages: list[tuple[str, str]], base_dir: Path, docs_dir: Path, report: PrecomputeReport,
    progress: Progress | None, shard: Shard | None,
) -> None:
    # Page names are relative to docs_dir, and an image option to its page (attndocs.vision).
    batch = FigureBatch(base_dir=base_dir, docs_dir=docs_dir)
    for name, text in pages:
        for block in find_blocks(text):
            batch.add(name, block)
    report.figures = len(batch.figures)
    batch.compute(make_pipeline(settings, shard, progress=progress))
    for figure in batch.figures:
        result = figure.result
        opts = figure.options
        model = result.record.model_id if result is not None and result.record else (opts.model if opts else None)
        describe = f"{model}, {opts.view if opts else 'head'} view"
        report.count(figure.where(), result, figure.error or (result.error if result is not None else None), describe)


def _markdown_base(folder: Path) -> Path:
    from .site import CONFIG_NAME

    return folder if (folder / CONFIG_NAME).is_file() else Path.cwd()


def _markdown_site(folder: Path, overrides: Mapping[str, Any]) -> tuple[SiteSettings, list[tuple[str, str]], Path]:
    from .site import discover, load_site_config

    config = load_site_config(folder, overrides)
    pages, _ = discover(config.docs_dir, skip=[Path(config.settings.cache_dir or "")])
    return config.settings, [(p.src.as_posix(), p.text) for p in pages], Path(config.docs_dir)


def _mkdocs_site(config_file: Path, overrides: Mapping[str, Any]) -> tuple[SiteSettings, list[tuple[str, str]], Path]:
    """The plugin's settings, the pages MkDocs would read (its exclusions honoured) and its docs folder."""
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
    return settings, pages, Path(config["docs_dir"])


def _precompute_sphinx(conf_py: Path, overrides: Mapping[str, Any], shard: Shard | None, progress: Progress | None) -> PrecomputeReport:
    """Sphinx finds the figures, then one pipeline computes them (only this shard's, if any).

    Sphinx reads every page with the ``dummy`` builder into a temporary folder, in this
    process as sphinx-build would, with execution mode ``off``: every directive, in rst or
    MyST, is found and checked by the extension that builds the site, and nothing is
    computed yet. The figures it collected then go to one pipeline under the site's
    settings (with ``overrides``), as the other kinds of site do, so a shard computes the
    same figures whichever kind of site holds them. The site's own build folder is not
    touched.
    """
    try:
        from sphinx.application import Sphinx
    except ImportError:
        raise OptionError(f"{conf_py} is a Sphinx project, but Sphinx is not installed", "pip install 'attndocs[sphinx]'") from None
    from .sphinx_ext.build import iter_entries, state_of

    srcdir = conf_py.parent
    # raise_on_error off: this run reports failures itself, rather than stopping at the first build's end.
    confoverrides: dict[str, Any] = {"attention_execution_mode": "off", "attention_raise_on_error": False}
    for key, value in overrides.items():
        if key != "execution_mode":
            confoverrides[f"attention_{key}"] = str(Path(value).resolve()) if key == "cache_dir" else value
    from sphinx.util.docutils import docutils_namespace, patch_docutils

    # As sphinx-build does: docutils' registries are restored afterwards, so this process can
    # run other Sphinx builds later.
    # Sphinx's own progress is not shown: its summary would count every figure as not computed.
    print(f"attndocs: reading {conf_py} with Sphinx to find its figures", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="attndocs-precompute-") as tmp, patch_docutils(srcdir), docutils_namespace():
        app = Sphinx(
            str(srcdir), str(srcdir), str(Path(tmp) / "out"), str(Path(tmp) / "doctrees"), "dummy",
            confoverrides=confoverrides, status=None, warning=sys.stderr, freshenv=True,
        )
        app.build()
        state = state_of(app.env)
        entries = list(iter_entries(app.env))
        options = [state.pipeline_options(entry.options) for entry in entries]
    settings = state.settings.replace(execution_mode=overrides.get("execution_mode", "auto"), raise_on_error=False)
    cache_dir = Path(settings.cache_dir or "").resolve()
    report = PrecomputeReport("sphinx", conf_py, cache_dir, figures=len(entries), shard=shard)
    todo = [i for i, entry in enumerate(entries) if not entry.failed]
    pipeline = make_pipeline(settings, shard, progress=progress, base_dir=state.confdir)
    results: dict[int, FigureResult] = dict(zip(todo, pipeline.run([options[i] for i in todo], qk=[options[i].view == "neuron" for i in todo])))
    for i, entry in enumerate(entries):
        result = results.get(i)
        error = entry.error if entry.failed else (result.error if result is not None else None)
        if error is None and result is not None and result.record is not None:
            error = _layer_problem(result, entry.options)
        report.count(entry.location, result, error, f"{entry.options.model or 'default model'}, {entry.options.view} view")
    return report


def _layer_problem(result: FigureResult, options: FigureOptions) -> Any:
    """A layer or head the figure names that its record does not have (what the build would warn about)."""
    from .payload import select_layers_heads

    try:
        select_layers_heads(result.record, options)  # type: ignore[arg-type]
    except OptionError as exc:
        return exc
    return None
