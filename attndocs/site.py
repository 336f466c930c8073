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

Only what lies inside the pages' folder is published (symlinks out of it are not followed),
and the site is written into a folder of its own beside the output, which replaces the
previous site only once it is complete: a crash, Ctrl-C or a full disk leaves that as it was.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import posixpath
import re
import secrets
import shutil
import socket
import stat
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
from markupsafe import Markup, escape

from .errors import OptionError, OutputError
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
from .processes import local_process_ended
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


@dataclass
class StaticFile:
    """A file published as it is: where it goes (relative to the output) and where it is read from."""

    rel: PurePosixPath  # relative to docs_dir, as the author sees it (through any symlinks)
    path: Path  # the resolved file inside docs_dir


def discover(
    docs_dir: Path, skip: list[Path], problems: list[Problem] | None = None
) -> tuple[list[SourcePage], list[StaticFile]]:
    """Markdown pages and other files under ``docs_dir``, in navigation order.

    Hidden files and folders, attndocs.toml and the folders in ``skip`` (the cache, when it
    lies inside) are left out. A page that is not valid UTF-8 is built with U+FFFD in place
    of the bad bytes, and a warning naming its line goes to ``problems``.

    Only what lies inside ``docs_dir`` is read: a symlink whose target is outside it (a file
    elsewhere, /proc/self/environ) is not followed, a link to a folder that contains it (a
    cycle) or to a folder already entered through another link is not followed again, and
    devices, FIFOs and sockets are never opened. Each is a warning in ``problems``.
    """
    pages: list[SourcePage] = []
    statics: list[StaticFile] = []
    root = docs_dir.resolve()
    skipped = {p.resolve() for p in skip}
    linked: set[Path] = set()  # folders entered through a symlink: each at most once, so links cannot multiply the walk

    def warn(rel: PurePosixPath, message: str) -> None:
        if problems is not None:
            problems.append(Problem(rel.as_posix(), message))

    def walk(folder: Path, real_folder: Path, chain: frozenset[Path]) -> None:
        try:
            entries = sorted(folder.iterdir(), key=lambda p: _natural(p.name))
        except OSError as exc:
            warn(PurePosixPath(folder.relative_to(docs_dir).as_posix()), f"cannot list this folder ({exc.strerror}); skipped")
            return
        # A folder's index page first, so it claims index.html and leads the navigation.
        entries.sort(key=lambda p: {"index": 0, "readme": 1}.get(p.stem.lower(), 2) if p.suffix.lower() in PAGE_SUFFIXES else 2)
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = PurePosixPath(entry.relative_to(docs_dir).as_posix())
            found = _inside_entry(entry, real_folder / entry.name, root, rel, warn)
            if found is None:
                continue
            real, mode, is_link = found
            if real in skipped or any(s in real.parents for s in skipped):
                continue
            if stat.S_ISDIR(mode):
                if is_link:
                    if real in chain:
                        warn(rel, "symlink to a folder that contains it (a link cycle); not followed")
                        continue
                    if real in linked:
                        warn(rel, "symlink to a folder already published through another link; not followed")
                        continue
                    linked.add(real)
                walk(entry, real, chain | {real})
            elif not stat.S_ISREG(mode):
                warn(rel, "not a regular file (a device, FIFO or socket); not published")
            elif entry.suffix.lower() in PAGE_SUFFIXES:
                raw = _read_page(real, rel, problems)
                if raw is None:
                    continue
                meta, text = _split_front_matter(normalise_newlines(raw))
                taken = {p.out for p in pages}
                title = meta.get("title") or page_title(text, _pretty(entry.name))
                pages.append(SourcePage(rel, real, _out_path(rel, taken), title, text))
            elif rel != PurePosixPath(CONFIG_NAME):
                statics.append(StaticFile(rel, real))

    walk(docs_dir, root, frozenset({root}))
    return pages, statics


def _inside_entry(
    entry: Path, real: Path, root: Path, rel: PurePosixPath, warn: Callable[[PurePosixPath, str], None]
) -> tuple[Path, int, bool] | None:
    """(resolved path, file mode, is a symlink) of an entry, or None (with a warning) when it may not be read."""
    try:
        info = entry.lstat()
    except OSError as exc:
        warn(rel, f"cannot be read ({exc.strerror}); skipped")
        return None
    if not stat.S_ISLNK(info.st_mode):
        return real, info.st_mode, False
    # realpath, not Path.resolve: it never raises on a loop of links, and the stat below says so.
    target = Path(os.path.realpath(entry))
    if target != root and root not in target.parents:
        warn(rel, "symlink points outside the source folder; not followed")
        return None
    try:
        info = target.stat()
    except OSError:
        warn(rel, "symlink points to nothing (or to a loop of links); skipped")
        return None
    return target, info.st_mode, True


def _open_regular(path: Path) -> int:
    """A read-only descriptor of ``path``, refused (OSError) unless it is a regular file.

    Non-blocking, so that a FIFO put in place after discovery cannot hang the build, and
    not following a last symlink, so that what is read is the file that was checked.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_page(path: Path, rel: PurePosixPath, problems: list[Problem] | None) -> str | None:
    try:
        fd = _open_regular(path)
        with os.fdopen(fd, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        if problems is not None:
            problems.append(Problem(rel.as_posix(), f"cannot be read ({exc.strerror}); page skipped"))
        return None
    text, bad = decode_page(data)
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


# -- the output folder --------------------------------------------------------------------
# A build writes the whole site into a folder of its own beside the output and swaps it in
# only when complete, so a crash, Ctrl-C or a full disk leaves the previous site as it was.
# Its name says whose it is (host and process), so a later build can tell a folder left by a
# killed build (removed) from one of a build still running (left alone).
_HOST = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:6]
_STALE_AFTER = 24 * 3600  # seconds; past this, another host's leftover is taken as abandoned


def _temp_name(out: Path, kind: str) -> str:
    return f".{out.name}.attndocs-{kind}-{os.getpid()}-{_HOST}-{secrets.token_hex(4)}"


def _temp_pattern(out: Path) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(out.name)}\.attndocs-(new|old)-(\d+)-([0-9a-f]{{6}})-[0-9a-f]{{8}}")


def _abandoned(path: Path, pid: int, host: str) -> bool:
    """True when the build that made ``path`` has ended (or, where that cannot be asked, a day ago)."""
    if host == _HOST and os.name == "posix":
        return local_process_ended(pid)
    try:  # another machine's build: its process cannot be asked, so only its age tells
        info = path.lstat()
    except OSError:
        return False
    return time.time() - max(info.st_mtime, info.st_ctime) > _STALE_AFTER


def _clean_leftovers(out: Path) -> None:
    """Remove what killed builds left beside (or inside) ``out``; bring back a site moved aside.

    A build killed between moving the previous site aside and moving the new one in leaves
    no ``out`` at all: the previous site is moved back. Only folders named as this builder
    names its own are ever touched, and only when the build that made them has ended.
    """
    pattern = _temp_pattern(out)
    folders = [out.parent] + ([out] if out.is_dir() else [])
    found: list[tuple[Path, str]] = []
    for folder in folders:
        try:
            names = [entry.name for entry in folder.iterdir()]
        except OSError:
            continue
        for name in names:
            match = pattern.fullmatch(name)
            if match and _abandoned(folder / name, int(match.group(2)), match.group(3)):
                found.append((folder / name, match.group(1)))
    if not out.exists():
        aside = sorted((p for p, kind in found if kind == "old" and (p / MARKER).is_file()), key=lambda p: p.stat().st_mtime)
        if aside:
            with contextlib.suppress(OSError):
                os.rename(aside[-1], out)
    for path, _ in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_out(out: Path, docs_dir: Path, cache_dir: Path) -> None:
    """Refuse an output folder this builder may not replace, before anything is computed.

    Only an empty folder or an earlier attndocs site (it holds the marker file) is replaced;
    never the pages' own folder, one that contains them or one inside them (each build
    would publish the last); never one holding the cache (each build would throw the cache
    away and publish it).
    """
    if _within(docs_dir, out):
        raise OptionError(f"the output folder {out} contains the pages themselves", "choose an output folder outside them")
    if _within(out, docs_dir):
        raise OptionError(
            f"the output folder {out} is inside the pages folder {docs_dir}",
            "choose an output folder outside it, or every build would publish the previous site",
        )
    if _within(cache_dir, out):
        raise OptionError(
            f"the cache folder {cache_dir} is inside the output folder {out}",
            "keep the cache outside it (the default is .cache/attndocs beside attndocs.toml): "
            "each build replaces the output folder, and it is published",
        )
    if cache_dir == docs_dir:
        raise OptionError(f"the cache folder {cache_dir} is the pages folder", "the cache would be published; keep it outside")
    if out.exists():
        if not out.is_dir():
            raise OptionError(f"{out} exists and is not a folder")
        pattern = _temp_pattern(out)
        try:
            entries = [e for e in out.iterdir() if not pattern.fullmatch(e.name)]
        except OSError as exc:
            raise OptionError(f"cannot read the output folder {out}: {exc.strerror}") from None
        if entries and not (out / MARKER).is_file():
            raise OptionError(
                f"{out} is not empty and was not written by attndocs build",
                "choose a new or empty folder; attndocs build replaces only folders it wrote",
            )


def _disk_error(exc: OSError, path: Path) -> OutputError:
    """One line for a failed write: the cause in words, and the file."""
    if exc.errno in _FULL:
        # A quota or a file size limit stops the build as a full disk does; the words say which.
        detail = {errno.EFBIG: " (file size limit reached)", getattr(errno, "EDQUOT", -1): " (disk quota exceeded)"}
        return OutputError(
            f"no space left on the device while writing {path}{detail.get(exc.errno or 0, '')}",
            "free some space and build again; nothing in the output folder was changed",
        )
    return OutputError(f"cannot write {path}: {exc.strerror or exc}", "nothing in the output folder was changed")


_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


class _Staging:
    """The folder a new site is written into, then swapped in whole for the previous one.

    Normally beside ``out`` (a rename within one file system swaps it in). When ``out`` is a
    mount point (a container's volume) it cannot be renamed, and when its parent may not be
    written there is no beside: then the new site is staged inside ``out`` as a hidden folder
    and moved in entry by entry, once everything is written.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.inside = out.is_dir() and os.path.ismount(out)
        self.path = self._home() / _temp_name(out, "new")
        self.done = False

    def _home(self) -> Path:
        return self.out if self.inside else self.out.parent

    def __enter__(self) -> _Staging:
        try:
            self._home().mkdir(parents=True, exist_ok=True)
            try:
                self.path.mkdir()
            except PermissionError:
                if self.inside or not self.out.is_dir():
                    raise
                self.inside = True
                self.path = self.out / self.path.name
                self.path.mkdir()
            if self.out.is_dir():  # the new folder gets the old one's permissions
                os.chmod(self.path, stat.S_IMODE(self.out.stat().st_mode))
        except OSError as exc:
            raise _disk_error(exc, self.out) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.done:  # failed or interrupted: the previous site stays, the new one goes
            shutil.rmtree(self.path, ignore_errors=True)

    def commit(self) -> None:
        """Put the new site where the previous one was; the previous one is then removed."""
        aside = self._home() / _temp_name(self.out, "old")
        try:
            if self.inside:
                self._swap_entries(aside)
            else:
                self._swap_folder(aside)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                aside.rmdir()  # emptied by the rollback; never removed while it holds anything
            if isinstance(exc, OSError):
                raise _disk_error(exc, self.out) from None
            raise
        self.done = True
        shutil.rmtree(aside, ignore_errors=True)  # a leftover here is removed by the next build

    def _swap_folder(self, aside: Path) -> None:
        moved = False
        if self.out.exists():
            os.rename(self.out, aside)
            moved = True
        try:
            os.rename(self.path, self.out)
        except BaseException:
            if moved:
                os.rename(aside, self.out)
            raise

    def _swap_entries(self, aside: Path) -> None:
        pattern = _temp_pattern(self.out)
        aside.mkdir()
        old = [e.name for e in self.out.iterdir() if not pattern.fullmatch(e.name)]
        new = [e.name for e in self.path.iterdir()]
        moved_old: list[str] = []
        moved_new: list[str] = []
        try:
            for name in old:
                os.rename(self.out / name, aside / name)
                moved_old.append(name)
            for name in new:
                os.rename(self.path / name, self.out / name)
                moved_new.append(name)
        except BaseException:
            for name in moved_new:  # put everything back as it was
                os.rename(self.out / name, self.path / name)
            for name in moved_old:
                os.rename(aside / name, self.out / name)
            raise
        self.path.rmdir()


class _SiteWriter:
    """Writes the site's files under the staging folder; messages name them where they will be."""

    def __init__(self, root: Path, shown: Path) -> None:
        self.root = root
        self.shown = shown

    def write(self, rel: PurePosixPath | str, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        path = self.root / rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(data)
        except OSError as exc:
            raise _disk_error(exc, self.shown / rel) from None

    def copy(self, rel: PurePosixPath, source: Path) -> str | None:
        """Copy a source file; a file that cannot be read is a warning (returned), a failed write an error."""
        try:
            reader = os.fdopen(_open_regular(source), "rb")
        except OSError as exc:
            return f"cannot be read ({exc.strerror}); not published"
        path = self.root / rel
        with reader:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                writer = open(path, "wb")
            except OSError as exc:
                raise _disk_error(exc, self.shown / rel) from None
            with writer:
                while True:
                    try:
                        chunk = reader.read(1 << 20)
                    except OSError as exc:
                        writer.close()
                        with contextlib.suppress(OSError):
                            path.unlink()  # no partial copy is published
                        return f"cannot be read ({exc.strerror}); not published"
                    if not chunk:
                        break
                    try:
                        writer.write(chunk)
                    except OSError as exc:
                        raise _disk_error(exc, self.shown / rel) from None
        return None


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
    Raises :class:`OptionError` for a bad configuration or an output folder it may not use,
    and :class:`OutputError` when the site cannot be written (a full disk). Either way,
    and when interrupted, the previous site in ``out`` is left as it was: the new one is
    written beside it and swapped in only once complete.
    """
    started = time.perf_counter()
    config = load_site_config(src, overrides)
    out = Path(out).resolve()
    cache_dir = Path(config.settings.cache_dir or ".cache/attndocs").resolve()
    _clean_leftovers(out)
    _check_out(out, config.docs_dir, cache_dir)
    read_problems: list[Problem] = []
    pages, statics = discover(config.docs_dir, skip=[cache_dir], problems=read_problems)
    if not pages:
        raise OptionError(f"no Markdown pages (.md) in {config.docs_dir}")

    # 1. Every block of every page, stood in for by a token; 2. one pipeline run for them all.
    base_dir = config.config_file.parent if config.config_file else Path.cwd()
    batch = FigureBatch(base_dir=base_dir, docs_dir=config.docs_dir)  # images are relative to their page
    texts = {}
    for page in pages:
        texts[page.src], _ = replace_blocks(page.text, lambda block, page=page: batch.add(page.src.as_posix(), block))
    loads_before = models_in_memory()
    rendered: RenderedBatch | None = None
    if batch.figures:
        # The pipeline's counter is the build's one progress display: cached and computed
        # figures on one count, from its first line to its one "[N/N]".
        batch.compute(pipeline or Pipeline(config.settings, progress=progress))
        outs = {p.src.as_posix(): p.out for p in pages}
        rendered = batch.render(
            embed=config.settings.embed,
            file_prefix=lambda page: _root_prefix(outs[page]) + STATIC,
            page_budget=config.settings.page_budget,
        )
        _without_machine_paths(rendered, [(base_dir, ""), (cache_dir, "[cache]"), (Path.home(), "~")])

    # 3. Markdown, then the figures in place of their tokens; 4. the pages in the theme.
    indexes = _folder_indexes(pages)
    _convert(pages, texts, indexes, lambda html: batch.slots.fill(html, rendered.html) if rendered else html)
    with _Staging(out) as staging:
        copy_problems = _write_site(_SiteWriter(staging.path, out), pages, statics, indexes, rendered, title or config.title)
        staging.commit()
    seconds = time.perf_counter() - started
    problems = read_problems + copy_problems + (rendered.problems if rendered else [])
    return BuildReport(out, len(pages), rendered, problems, seconds, models_in_memory() - loads_before, config.settings)


def _without_machine_paths(rendered: RenderedBatch, roots: list[tuple[Path, str]]) -> None:
    """Placeholders say why a figure failed, and a reason may name a model folder or the cache
    by absolute path; the published page names them relative to the site's folder (or as
    ``~`` and ``[cache]``) instead. The build log keeps the full paths.

    ``roots``: (folder, what to say instead); "" means relative to it.
    """
    rules: list[tuple[re.Pattern[str], str, str]] = []
    for root, name in sorted(roots, key=lambda item: -len(str(item[0]))):
        if len(root.parts) < 2:  # never "/" itself: that would rewrite every path
            continue
        if name and any(_within(root, base) for base, relative in roots if not relative):
            continue  # a cache beside attndocs.toml reads best relative to it (.cache/attndocs/...)
        for text in dict.fromkeys([str(root), str(escape(str(root)))]):
            # The folder itself, or followed by a separator; never a longer name it begins.
            pattern = re.compile(re.escape(text) + r"(?:(/)|(?![\w.-]))")
            rules.append((pattern, name + "/" if name else "", name or "."))
    for token, fragment in rendered.html.items():
        if "attndocs-failed" not in fragment[:200]:
            continue  # figures themselves: their model's name is the model code's to show
        for pattern, below, itself in rules:
            fragment = pattern.sub(lambda m, below=below, itself=itself: below if m.group(1) else itself, fragment)
        rendered.html[token] = fragment


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
    writer: _SiteWriter,
    pages: list[SourcePage],
    statics: list[StaticFile],
    indexes: Mapping[PurePosixPath, tuple[str, list[tuple[str, str]]]],
    rendered: RenderedBatch | None,
    site_title: str,
) -> list[Problem]:
    """Every file of the site; returns a warning for each source file that could not be read."""
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
        writer.write(page.out, html)
    for folder, (folder_title, children) in indexes.items():
        index = folder / "index.html"
        html = theme.template.render(
            **common, title=folder_title, root=_root_prefix(index), current=index.as_posix(), listing=children,
            assets="", content="", previous=None, next=None,
        )
        writer.write(index, html)
    problems = []
    for static in statics:
        failed = writer.copy(static.rel, static.path)
        if failed:
            problems.append(Problem(static.rel.as_posix(), failed))
    static_files = {theme.css_name: theme.css}
    if rendered:
        static_files.update(asset_files())
        static_files.update(rendered.files)
    for name, data in static_files.items():
        writer.write(STATIC + name, data)
    writer.write(".nojekyll", b"")
    # Last: a folder with the marker is a complete site, which the next build may replace.
    writer.write(MARKER, b"Written by attndocs build, which replaces this folder on every build.\n")
    return problems


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

