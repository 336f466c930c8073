"""The documentation front-ends as the reliability suite drives them: write a site, build it, read the result.

Three front-ends, each built the way its users build it: Sphinx (reStructuredText and
MyST pages in one project), MkDocs (the plugin) and `attndocs build`. In process for the
corpus (the model loads once per test session); as separate processes where the suite
races two builds or compares two clean ones.
"""

from __future__ import annotations

import io
import logging
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hostile_corpus import Case
from reliability_helpers import PYTHON, worker_env

FRONTENDS = ("sphinx", "mkdocs", "attndocs-build")


# -- block syntax ---------------------------------------------------------------------------------
def fenced_block(case: Case) -> str:
    """The ```attention fence of MkDocs and `attndocs build`: option lines, a blank line, the text."""
    options = "".join(f"{key}: {value}\n" for key, value in case.options.items())
    return f"```attention\n{options}\n{case.text}\n```\n"


def rst_block(case: Case) -> str:
    options = "".join(f"   :{key}: {value}\n" for key, value in case.options.items())
    text = "".join(f"   {line}\n" for line in case.text.split("\n"))
    return f".. attention::\n{options}\n{text}\n"


def myst_block(case: Case) -> str:
    # MyST reads option values as YAML: single-quoted, every value arrives exactly as written.
    options = "".join(f":{key}: '{value.replace(chr(39), chr(39) * 2)}'\n" for key, value in case.options.items())
    return f"```{{attention}}\n{options}\n{case.text}\n```\n"


@dataclass
class Placed:
    """Where a case's block sits: page (relative to the source folder) and its line range."""

    case: Case
    page: str
    first: int
    last: int


def write_page(path: Path, title: str, cases: Sequence[Case], block: object, *, rst: bool = False) -> list[Placed]:
    """A page with one section per case; returns where each block landed (1-based lines)."""
    lines = [title, "=" * len(title), ""] if rst else [f"# {title}", ""]
    placed = []
    for case in cases:
        heading = f"Case {case.name}"
        lines += [heading, "-" * len(heading), ""] if rst else [f"## Case {case.name}", ""]
        text = block(case)  # type: ignore[operator]
        first = len(lines) + 1
        lines += text.rstrip("\n").split("\n") + [""]
        placed.append(Placed(case, path.name, first, first + text.count("\n")))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return placed


# -- sites ---------------------------------------------------------------------------------
@dataclass
class Site:
    """A written source tree and what a build of it produced."""

    frontend: str
    src: Path
    out: Path
    cache: Path
    placed: list[Placed] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failed: str | None = None  # the build's own failure (exception or exit status), if it failed

    def pages(self) -> list[Path]:
        return sorted(p for p in self.out.rglob("*.html") if p.name not in ("search.html", "genindex.html", "404.html"))


def write_site(frontend: str, root: Path, cases: Sequence[Case], *, model: str = "minilm") -> Site:
    """A small site of ``frontend`` holding ``cases``, with its own cache folder."""
    src, cache = root / "src", root / "cache"
    src.mkdir(parents=True)
    site = Site(frontend, src, root / "out", cache)
    if frontend == "sphinx":
        (src / "conf.py").write_text(
            'extensions = ["myst_parser", "attndocs.sphinx_ext"]\nproject = "reliability"\n'
            f'attention_default_model = {model!r}\nattention_cache_dir = {str(cache)!r}\n', encoding="utf-8")
        (src / "index.rst").write_text("Reliability\n===========\n\n.. toctree::\n\n   rst\n   myst\n", encoding="utf-8")
        # Every case in both syntaxes: each parser hands options over in its own way.
        site.placed += write_page(src / "rst.rst", "Cases in reStructuredText", cases, rst_block, rst=True)
        site.placed += write_page(src / "myst.md", "Cases in MyST", cases, myst_block)
    else:
        docs = src / "docs"
        docs.mkdir()
        (docs / "index.md").write_text("# Reliability\n\nThe cases are on the next page.\n", encoding="utf-8")
        site.placed += write_page(docs / "cases.md", "Cases", cases, fenced_block)
        if frontend == "mkdocs":
            (src / "mkdocs.yml").write_text(
                # Material with font: false requests nothing from the network, like the example site.
                "site_name: reliability\ndocs_dir: docs\ntheme:\n  name: material\n  font: false\nplugins:\n  - attndocs:\n"
                f"      default_model: {model}\n      cache_dir: {cache}\n", encoding="utf-8")
        else:
            (src / "attndocs.toml").write_text(f'title = "reliability"\ndocs_dir = "docs"\ndefault_model = "{model}"\n'
                                               f'cache_dir = "{cache}"\n', encoding="utf-8")
    return site


def page_dir(site: Site) -> Path:
    """The folder that holds the site's pages (Sphinx: the source folder; else docs/)."""
    return site.src if site.frontend == "sphinx" else site.src / "docs"


# -- building in this process ------------------------------------------------------------------
def build_in_process(site: Site) -> Site:
    """Build ``site`` here (the model stays loaded between builds); collects its warnings."""
    site.warnings, site.failed = [], None
    if site.frontend == "sphinx":
        from sphinx.testing.util import SphinxTestApp

        status, warning = io.StringIO(), io.StringIO()
        app = SphinxTestApp("html", srcdir=site.src, builddir=site.out.parent / "sphinx-build", status=status, warning=warning)
        try:
            app.build()
        except Exception as exc:  # reported, not raised: the test says what it expected
            site.failed = f"{type(exc).__name__}: {exc}"
        finally:
            app.cleanup()
        site.out = Path(app.outdir)
        site.warnings = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in warning.getvalue().splitlines() if line.strip()]
    elif site.frontend == "mkdocs":
        from mkdocs.commands.build import build
        from mkdocs.config import load_config

        records: list[logging.LogRecord] = []
        handler = logging.Handler(logging.WARNING)
        handler.emit = records.append  # type: ignore[method-assign]
        logger = logging.getLogger("mkdocs")
        logger.addHandler(handler)
        try:
            build(load_config(str(site.src / "mkdocs.yml"), site_dir=str(site.out)))
        except BaseException as exc:  # mkdocs raises SystemExit-like Abort on fatal errors
            site.failed = f"{type(exc).__name__}: {exc}"
        finally:
            logger.removeHandler(handler)
        site.warnings = [f"{r.name}: {r.getMessage()}" for r in records if r.levelno >= logging.WARNING]
    else:
        from contextlib import redirect_stderr, redirect_stdout

        from attndocs.cli import main

        err = io.StringIO()
        try:
            with redirect_stderr(err), redirect_stdout(io.StringIO()):
                code = main(["build", str(site.src), "-o", str(site.out)])
            if code != 0:
                site.failed = f"exit {code}"
        except BaseException as exc:
            site.failed = f"{type(exc).__name__}: {exc}"
        site.warnings = [line for line in err.getvalue().splitlines() if "warning" in line.lower() or "error" in line.lower()]
    return site


# -- building in a separate process ------------------------------------------------------------
def build_command(site: Site, out: Path, cache: Path) -> list[str]:
    """The command a user runs to build ``site`` into ``out`` with the figure cache ``cache``."""
    if site.frontend == "sphinx":
        return [PYTHON, "-m", "sphinx", "-b", "html", "-q", "-E", "-D", f"attention_cache_dir={cache}", str(site.src), str(out)]
    if site.frontend == "mkdocs":
        config = out.parent / f"{out.name}-mkdocs.yml"
        text = (site.src / "mkdocs.yml").read_text(encoding="utf-8")
        text = re.sub(r"cache_dir: .*", f"cache_dir: {cache}", text)
        config.write_text(text.replace("docs_dir: docs", f"docs_dir: {site.src / 'docs'}"), encoding="utf-8")
        return [PYTHON, "-m", "mkdocs", "build", "-q", "-f", str(config), "-d", str(out)]
    return [PYTHON, "-m", "attndocs.cli", "build", str(site.src), "-o", str(out), "--cache-dir", str(cache)]


def start_build(site: Site, out: Path, cache: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(build_command(site, out, cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=worker_env({"NO_MKDOCS_2_WARNING": "1"}), cwd=str(site.src))


def read_tree(out: Path, *, skip: Sequence[str] = (".doctrees", ".buildinfo", "sitemap.xml.gz")) -> dict[str, bytes]:
    """Every output file, relative path -> bytes, without the host tool's own bookkeeping.

    Left out: Sphinx's doctrees and .buildinfo (not part of the published site) and MkDocs'
    sitemap.xml.gz (gzip stamps the build time into it, with or without attndocs).
    """
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and not any(part in skip for part in p.relative_to(out).parts)}


def from_attndocs(warning: str) -> bool:
    """The warning is attndocs's own (not the host parser's, e.g. docutils on broken markup)."""
    return "[attndocs" in warning or "attndocs:" in warning or "plugins.attndocs" in warning


def python_crash(text: str) -> bool:
    return "Traceback (most recent call last)" in text or bool(re.search(r"^\w+Error: ", text, re.M))

