"""`attndocs build`: a static site from a folder of Markdown pages, with attention figures.

Zero configuration: every ``.md`` file becomes a page (``index.md`` or ``README.md`` is a
folder's index), the navigation follows the folder structure, a page's title is its first
heading, and links between pages (``other.md#part``) point at the built pages. Every URL
is relative, so the site works from ``file://`` and from any sub-path of a host (GitHub
Pages project sites included); each folder gets an ``index.html``, and ``.nojekyll`` keeps
GitHub Pages from reprocessing the output. Light and dark follow the reader's system until
they pick one with the toggle; figures follow along.

An optional ``attndocs.toml`` beside the pages (or above them, naming them with
``docs_dir``) sets the site title and any :class:`~attndocs.options.SiteSettings` key::

    title = "How attention works"
    docs_dir = "docs"          # default: the folder holding attndocs.toml
    default_model = "minilm"
    execution_mode = "auto"
    cache_dir = ".cache/attndocs"   # relative to attndocs.toml; this is the default

The ```attention blocks are parsed by :mod:`attndocs.fence`, computed in one pipeline run
for the whole site, and rendered by :mod:`attndocs.render`, as in every other front-end.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import shutil
import sys
import time
import xml.etree.ElementTree as etree
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2
import markdown
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor
from markupsafe import Markup

from .errors import OptionError
from .fence import (
    FigureBatch,
    Problem,
    RenderedBatch,
    decode_page,
    local_model,
    models_in_memory,
    normalise_newlines,
    replace_blocks,
)
from .options import SiteSettings, option_name, settings_fields
from .pipeline import Pipeline, Progress
from .render import asset_files, asset_tags

CONFIG_NAME = "attndocs.toml"
MARKER = ".attndocs-build"  # marks an output folder this builder may clear
STATIC = "_static/"
PAGE_SUFFIXES = (".md", ".markdown")
INDEX_NAMES = ("index", "readme")
MARKDOWN_EXTENSIONS = ["tables", "fenced_code", "toc", "admonition"]
_TEMPLATES = resources.files("attndocs") / "templates"


# -- configuration ------------------------------------------------------------------------
@dataclass
class SiteConfig:
    """Where the pages are, the site's title, and its SiteSettings."""

    docs_dir: Path
    title: str
    settings: SiteSettings
    config_file: Path | None = None


def _read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise OptionError(f"{path} needs a TOML reader on Python 3.10", "pip install tomli") from None
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise OptionError(f"{path}: {exc}") from None
    except OSError as exc:
        raise OptionError(f"cannot read {path}: {exc}") from None


def load_site_config(src: str | Path, overrides: Mapping[str, Any] | None = None) -> SiteConfig:
    """Read ``SRC/attndocs.toml`` when there is one; ``overrides`` (setting -> value) win.

    A relative ``cache_dir`` is relative to attndocs.toml; without one, the cache is
    ``.cache/attndocs`` beside attndocs.toml, or in the current folder when there is none.
    """
    src = Path(src).resolve()
    if not src.is_dir():
        raise OptionError(f"{src} is not a folder of Markdown pages")
    config_file = src / CONFIG_NAME
    values: dict[str, Any] = _read_toml(config_file) if config_file.is_file() else {}
    title = values.pop("title", None)
    docs = values.pop("docs_dir", None)
    known = {f.name for f in settings_fields()}
    for key in values:
        if key.replace("-", "_") not in known:
            allowed = ", ".join(["title", "docs_dir"] + sorted(option_name(f).replace("-", "_") for f in settings_fields()))
            raise OptionError(f"{config_file}: unknown setting '{key}'", f"known: {allowed}")
    if title is not None and not isinstance(title, str):
        raise OptionError(f"{config_file}: title must be text")
    if docs is not None and not isinstance(docs, str):
        raise OptionError(f"{config_file}: docs_dir must be a path")
    settings_values = {k.replace("-", "_"): v for k, v in values.items()}
    settings_values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    cache = settings_values.get("cache_dir")
    if config_file.is_file():
        settings_values["cache_dir"] = str((src / (cache or ".cache/attndocs")).resolve())
    elif cache:
        settings_values["cache_dir"] = str(Path(cache).resolve())
    else:
        settings_values["cache_dir"] = str((Path.cwd() / ".cache" / "attndocs").resolve())
    base = src if config_file.is_file() else Path.cwd()
    if isinstance(settings_values.get("default_model"), str):
        settings_values["default_model"] = local_model(settings_values["default_model"], base)
    if isinstance(settings_values.get("model_aliases"), dict):
        settings_values["model_aliases"] = {k: local_model(v, base) if isinstance(v, str) else v for k, v in settings_values["model_aliases"].items()}
    try:
        settings = SiteSettings.from_mapping(settings_values)
    except OptionError as exc:
        where = f"{config_file}: " if config_file.is_file() else ""
        raise OptionError(where + exc.message, exc.hint) from None
    docs_dir = (src / docs).resolve() if docs else src
    if not docs_dir.is_dir():
        raise OptionError(f"{config_file}: docs_dir '{docs}' is not a folder")
    return SiteConfig(docs_dir, title or _pretty(src.name), settings, config_file if config_file.is_file() else None)


# -- pages and navigation -----------------------------------------------------------------
@dataclass
class SourcePage:
    """One Markdown page: where it is, where it goes, and what it is called."""

    src: PurePosixPath  # relative to docs_dir
    path: Path
    out: PurePosixPath  # relative to the output folder
    title: str
    text: str  # normalised Markdown without front matter
    html: str = ""


@dataclass
class NavItem:
    title: str
    url: str | None  # relative to the site root; None for a section heading without a page
    children: list[NavItem] = field(default_factory=list)


def _natural(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _pretty(name: str) -> str:
    stem = re.sub(r"^\d+[-_. ]+", "", Path(name).stem) or Path(name).stem
    text = re.sub(r"[-_]+", " ", stem).strip()
    return text[:1].upper() + text[1:] if text else name


_FRONT_MATTER = re.compile(r"\A---\n(.*?\n)?(---|\.\.\.)\n", re.S)
_ATX = re.compile(r" {0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*")
_FENCE_LINE = re.compile(r"[ \t]*(`{3,}|~{3,})")


def _split_front_matter(text: str) -> tuple[dict[str, str], str]:
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    meta = {}
    for line in (match.group(1) or "").split("\n"):
        key, sep, value = line.partition(":")
        if sep and key.strip():
            meta[key.strip().lower()] = value.strip().strip("\"'")
    # Blank lines keep the line numbers of the rest of the page what the author sees.
    return meta, "\n" * match.group(0).count("\n") + text[match.end() :]


def page_title(text: str, fallback: str) -> str:
    """The first level-one heading (outside code), else the first heading, else ``fallback``."""
    first: str | None = None
    fence: str | None = None
    lines = text.split("\n")
    for i, line in enumerate(lines):
        opened = _FENCE_LINE.match(line)
        if fence:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence) and not line.strip().strip(fence[0]):
                fence = None
            continue
        if opened:
            fence = opened.group(1)
            continue
        match = _ATX.fullmatch(line)
        level, heading = (len(match.group(1)), match.group(2)) if match else (None, None)
        if match is None and i + 1 < len(lines) and line.strip() and re.fullmatch(r" {0,3}=+[ \t]*", lines[i + 1]):
            level, heading = 1, line.strip()
        if heading:
            plain = _plain_text(heading)
            if level == 1:
                return plain
            first = first or plain
    return first or fallback


def _plain_text(inline: str) -> str:
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", inline)
    text = re.sub(r"[`*_]+", "", text)
    return text.strip() or inline.strip()


def _out_path(src: PurePosixPath, taken: set[PurePosixPath]) -> PurePosixPath:
    stem = src.stem.lower()
    if stem in INDEX_NAMES:
        candidate = src.parent / "index.html"
        if candidate not in taken:
            return candidate
    return src.with_suffix(".html")


def discover(
    docs_dir: Path, skip: list[Path], problems: list[Problem] | None = None
) -> tuple[list[SourcePage], list[PurePosixPath]]:
    """Markdown pages and other files under ``docs_dir``, in navigation order.

    Hidden files and folders, attndocs.toml and the folders in ``skip`` (the output and
    the cache, when they lie inside) are left out. A page that is not valid UTF-8 is built
    with U+FFFD in place of the bad bytes, and a warning naming its line goes to ``problems``.
    """
    pages: list[SourcePage] = []
    statics: list[PurePosixPath] = []
    skipped = {p.resolve() for p in skip}

    def walk(folder: Path) -> None:
        entries = sorted(folder.iterdir(), key=lambda p: _natural(p.name))
        # A folder's index page first, so it claims index.html and leads the navigation.
        entries.sort(key=lambda p: 0 if p.is_file() and p.stem.lower() == "index" else 1 if p.is_file() and p.stem.lower() == "readme" else 2)
        for entry in entries:
            if entry.name.startswith(".") or entry.resolve() in skipped:
                continue
            rel = PurePosixPath(entry.relative_to(docs_dir).as_posix())
            if entry.is_dir():
                walk(entry)
            elif entry.suffix.lower() in PAGE_SUFFIXES:
                raw = _read_page(entry, rel, problems)
                meta, text = _split_front_matter(normalise_newlines(raw))
                taken = {p.out for p in pages}
                title = meta.get("title") or page_title(text, _pretty(entry.name))
                pages.append(SourcePage(rel, entry, _out_path(rel, taken), title, text))
            elif rel != PurePosixPath(CONFIG_NAME):
                statics.append(rel)

    walk(docs_dir)
    return pages, statics


def _read_page(path: Path, rel: PurePosixPath, problems: list[Problem] | None) -> str:
    text, bad = decode_page(path.read_bytes())
    if bad is not None and problems is not None:
        problems.append(Problem(f"{rel}:{bad[0]}", bad[1]))
    return text


def build_nav(pages: list[SourcePage]) -> tuple[list[NavItem], list[NavItem]]:
    """The navigation tree (folders are sections) and the reading order (for previous/next)."""
    root: list[NavItem] = []
    sections: dict[PurePosixPath, NavItem] = {}
    order: list[NavItem] = []
    for page in pages:
        parent = page.out.parent
        item = NavItem(page.title, page.out.as_posix())
        order.append(item)
        if page.out.name == "index.html" and parent != PurePosixPath("."):
            section = _section(parent, sections, root)
            section.title, section.url = page.title, item.url
            continue
        if parent == PurePosixPath("."):
            root.append(item)
        else:
            _section(parent, sections, root).children.append(item)
    return root, order


def _section(folder: PurePosixPath, sections: dict[PurePosixPath, NavItem], root: list[NavItem]) -> NavItem:
    if folder in sections:
        return sections[folder]
    # Until the folder's own index page names it, a section links to the generated listing.
    item = NavItem(_pretty(folder.name), (folder / "index.html").as_posix())
    sections[folder] = item
    if folder.parent == PurePosixPath("."):
        root.append(item)
    else:
        _section(folder.parent, sections, root).children.append(item)
    return item


# -- Markdown -----------------------------------------------------------------------------
class _LinkRewriter(Treeprocessor):
    """Links to ``page.md`` (or a folder) point at the built page, relative to this one."""

    def __init__(self, md: markdown.Markdown, site: _LinkMap) -> None:
        super().__init__(md)
        self.site = site
        self.page: SourcePage | None = None

    def run(self, root: etree.Element) -> None:
        for link in root.iter("a"):
            href = link.get("href")
            if href and self.page is not None:
                link.set("href", self.site.rewrite(href, self.page))


class _LinkExtension(Extension):
    def __init__(self, site: _LinkMap) -> None:
        super().__init__()
        self.site = site
        self.processor: _LinkRewriter | None = None

    def extendMarkdown(self, md: markdown.Markdown) -> None:  # noqa: N802 (Markdown's API)
        self.processor = _LinkRewriter(md, self.site)
        md.treeprocessors.register(self.processor, "attndocs-links", 5)


@dataclass
class _LinkMap:
    by_src: dict[str, PurePosixPath]  # "guide/intro.md" -> out path
    folders: set[str]  # folders that have an index.html in the output

    def rewrite(self, href: str, page: SourcePage) -> str:
        if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:|//|#", href):
            return href  # absolute, protocol-relative or in-page
        path, sep, fragment = href.partition("#")
        if not path:
            return href
        target = posixpath.normpath(posixpath.join(page.src.parent.as_posix(), path.split("?")[0]))
        out = self.by_src.get(target)
        if out is None and target in self.folders:
            out = PurePosixPath(target) / "index.html"  # file:// shows no folder's index by itself
        if out is None:
            return href  # a static file, or a page that does not exist: left as written
        rel = posixpath.relpath(out.as_posix(), page.out.parent.as_posix())
        return rel + (sep + fragment if sep else "")


# -- building -----------------------------------------------------------------------------
@dataclass
class BuildReport:
    out: Path
    pages: int
    batch: RenderedBatch | None
    problems: list[Problem]
    seconds: float
    model_loads: int
    settings: SiteSettings

    @property
    def failed(self) -> int:
        return self.batch.failed if self.batch else 0

    def summary(self) -> str:
        figures = self.batch.summary() if self.batch else "no figures"
        return (
            f"built {self.pages} page{'s' if self.pages != 1 else ''} into {self.out} ({figures}; "
            f"{self.model_loads} model load(s); {len(self.problems)} warning(s); {self.seconds:.1f} s)"
        )


def _short_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:10]


@dataclass
class _Theme:
    css_name: str
    css: bytes
    template: jinja2.Template


def _theme() -> _Theme:
    css = (_TEMPLATES / "site.css").read_bytes()
    env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    template = env.from_string((_TEMPLATES / "site-page.html").read_text(encoding="utf-8"))
    return _Theme(f"site.{_short_hash(css)}.css", css, template)


def _prepare_out(out: Path, docs_dir: Path) -> None:
    """Make ``out`` an empty folder, refusing to clear one this builder did not write."""
    if out == docs_dir or out in docs_dir.parents:
        raise OptionError(f"the output folder {out} contains the pages themselves", "choose an output folder outside them")
    if out.exists():
        if not out.is_dir():
            raise OptionError(f"{out} exists and is not a folder")
        entries = list(out.iterdir())
        if entries and not (out / MARKER).is_file():
            raise OptionError(
                f"{out} is not empty and was not written by attndocs build",
                "choose a new or empty folder; attndocs build clears only folders it wrote",
            )
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)


def build_site(
    src: str | Path,
    out: str | Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    title: str | None = None,
    progress: Progress | None = None,
    pipeline: Pipeline | None = None,
) -> BuildReport:
    """Build the site in ``src`` into ``out``; per-figure problems are in the report.

    ``overrides`` are SiteSettings values that win over attndocs.toml (the CLI's flags).
    Raises :class:`OptionError` for a bad configuration or an output folder it may not use.
    """
    started = time.perf_counter()
    config = load_site_config(src, overrides)
    out = Path(out).resolve()
    read_problems: list[Problem] = []
    pages, statics = discover(config.docs_dir, skip=[out, Path(config.settings.cache_dir or "")], problems=read_problems)
    if not pages:
        raise OptionError(f"no Markdown pages (.md) in {config.docs_dir}")
    _prepare_out(out, config.docs_dir)

    # 1. Every block of every page, stood in for by a token; 2. one pipeline run for them all.
    batch = FigureBatch(base_dir=config.config_file.parent if config.config_file else Path.cwd())
    texts = {}
    for page in pages:
        texts[page.src], _ = replace_blocks(page.text, lambda block, page=page: batch.add(page.src.as_posix(), block))
    loads_before = models_in_memory()
    rendered: RenderedBatch | None = None
    if batch.figures:
        if progress:
            progress(0, len(batch.figures), f"{len(batch.figures)} figure(s) on {len(batch.pages)} page(s)")
        batch.compute(pipeline or Pipeline(config.settings, progress=progress))
        outs = {p.src.as_posix(): p.out for p in pages}
        rendered = batch.render(embed=config.settings.embed, file_prefix=lambda page: _root_prefix(outs[page]) + STATIC)

    # 3. Markdown, then the figures in place of their tokens; 4. the pages in the theme.
    indexes = _folder_indexes(pages)
    _convert(pages, texts, indexes, lambda html: batch.slots.fill(html, rendered.html) if rendered else html)
    _write_site(out, config, pages, statics, indexes, rendered, title or config.title)
    seconds = time.perf_counter() - started
    problems = read_problems + (rendered.problems if rendered else [])
    return BuildReport(out, len(pages), rendered, problems, seconds, models_in_memory() - loads_before, config.settings)


def _convert(
    pages: list[SourcePage],
    texts: Mapping[PurePosixPath, str],
    indexes: Mapping[PurePosixPath, Any],
    place_figures: Callable[[str], str],
) -> None:
    """Each page's Markdown to HTML (links rewritten), with its figures placed."""
    by_src = {p.src.as_posix(): p.out for p in pages}
    folders = {p.out.parent.as_posix() for p in pages if p.out.name == "index.html"} | {f.as_posix() for f in indexes}
    links = _LinkExtension(_LinkMap(by_src, folders))
    md = markdown.Markdown(extensions=[*MARKDOWN_EXTENSIONS, links], extension_configs={"toc": {"permalink": "¶"}}, output_format="html")
    for page in pages:
        md.reset()
        links.processor.page = page  # type: ignore[union-attr]
        page.html = place_figures(md.convert(texts[page.src]))


def _write_site(
    out: Path,
    config: SiteConfig,
    pages: list[SourcePage],
    statics: list[PurePosixPath],
    indexes: Mapping[PurePosixPath, tuple[str, list[tuple[str, str]]]],
    rendered: RenderedBatch | None,
    site_title: str,
) -> None:
    theme = _theme()
    nav, order = build_nav(pages)
    figure_pages = rendered.pages if rendered else set()
    common = {"lang": "en", "site_title": site_title, "site_css": STATIC + theme.css_name, "nav": nav}
    for position, page in enumerate(pages):  # the reading order is the pages' order
        root = _root_prefix(page.out)
        assets = asset_tags(root + STATIC) if page.src.as_posix() in figure_pages else ""
        html = theme.template.render(
            **common, title=page.title, root=root, current=page.out.as_posix(), listing=None,
            assets=Markup(assets), content=Markup(page.html),
            previous=order[position - 1] if position > 0 else None,
            next=order[position + 1] if position + 1 < len(order) else None,
        )
        _write(out / page.out, html)
    for folder, (folder_title, children) in indexes.items():
        index = folder / "index.html"
        html = theme.template.render(
            **common, title=folder_title, root=_root_prefix(index), current=index.as_posix(), listing=children,
            assets="", content="", previous=None, next=None,
        )
        _write(out / index, html)
    for rel in statics:
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(config.docs_dir / rel, target)
    static_files = {theme.css_name: theme.css}
    if rendered:
        static_files.update(asset_files())
        static_files.update(rendered.files)
    for name, data in static_files.items():
        _write(out / STATIC / name, data)
    _write(out / ".nojekyll", b"")
    _write(out / MARKER, b"Written by attndocs build, which clears this folder on every build.\n")


def _root_prefix(out: PurePosixPath) -> str:
    depth = len(out.parent.parts)
    return "../" * depth


def _folder_indexes(pages: list[SourcePage]) -> dict[PurePosixPath, tuple[str, list[tuple[str, str]]]]:
    """Folders (the root included) that have pages but no index page: a generated listing each."""
    has_index = {p.out.parent for p in pages if p.out.name == "index.html"}
    folders: set[PurePosixPath] = {PurePosixPath(".")}
    for page in pages:
        for parent in page.out.parents:
            folders.add(parent)
    result: dict[PurePosixPath, tuple[str, list[tuple[str, str]]]] = {}
    for folder in sorted(folders - has_index, key=lambda f: _natural(f.as_posix())):
        children: list[tuple[str, str]] = []
        for page in pages:
            if page.out.parent == folder:
                children.append((page.title, page.out.as_posix()))
        for sub in sorted(f for f in folders if f.parent == folder and f != folder):
            children.append((_pretty(sub.name), (sub / "index.html").as_posix()))
        result[folder] = (_pretty(folder.name) if folder.name else "Contents", children)
    return result


def stderr_progress(done: int, total: int, message: str) -> None:
    """Progress lines for `attndocs build` (shown in CI logs too, unlike terminal_progress)."""
    print(f"attndocs: [{done}/{total}] {message}", file=sys.stderr, flush=True)

