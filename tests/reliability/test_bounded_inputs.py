"""Bounded inputs, messages for humans, no machine paths: what a careless or hostile page cannot do.

Each front-end (Sphinx, MkDocs, `attndocs build`) gets one small site whose page holds:

* option values past their documented limits (`heads: 0-99999999999` once ran out of
  memory): each a warning naming the page and the block's line, the other figures drawn;
* a text longer than the model's positions with max-tokens raised past them: "this model
  reads at most 128 tokens", not torch's tensor-size error;
* terminal escape sequences (a colour, a bell, a window title) in a figure's text and in
  option values that get quoted in warnings: no raw control character reaches the log;
* a model in a folder beside the site's config: the build machine's path appears in no
  page, asset, side file or cache entry.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
from pathlib import Path

import pytest
from frontends import FRONTENDS, Site, page_dir, python_crash, write_site
from hostile_corpus import Case

# Sequences a terminal acts on: a colour change, a window title, a bell.
ESCAPES = "\x1b[31mred\x1b[0m \x1b]0;pwned title\x07 bell\x07"
LONG_TEXT = " ".join(["the cat sat on the mat"] * 30)  # about 180 tokens; the tiny models read 128

LIMIT_CASES = [
    Case("heads-huge", "The cat sat.", {"heads": "0-99999999999"}, error=r"heads.*4095"),
    Case("include-heads-huge", "The cat sat.", {"include-heads": "0-99999999999"}, error=r"include-heads.*4095"),
    Case("include-layers-many", "The cat sat.", {"include-layers": ",".join(["0-4095"] * 3)}, error=r"include-layers.*4,096"),
    Case("layer-huge", "The cat sat.", {"layer": "9" * 5000}, error=r"layer.*4,095"),
    Case("max-tokens-huge", "The cat sat.", {"max-tokens": "1000000000"}, error=r"max-tokens.*4,096"),
    Case("caption-long", "The cat sat.", {"caption": "c" * 10_001}, error=r"caption.*10,000"),
    Case("past-positions", LONG_TEXT, {"max-tokens": "4000"}, error=r"this model \(.*\) reads at most 128 tokens; the text has \d+"),
]
ESCAPE_CASES = [
    Case("escapes-in-text", f"The cat {ESCAPES} sat.", {"caption": f"A caption {ESCAPES}"}),
    Case("escapes-in-model", "The cat sat.", {"model": f"no-such{ESCAPES}"}, error=r"model"),
    Case("escapes-in-view", "The cat sat.", {"view": f"side{ESCAPES}"}, error=r"view"),
    Case("escapes-in-revision", "The cat sat.", {"model": "no-org/no-model", "revision": f"main{ESCAPES}"}, error=r"model|revision"),
]
GOOD = Case("good", "The dog barked.")
CASES = [GOOD, *LIMIT_CASES, *ESCAPE_CASES]


def _mentions(warning: str, page: str, first: int, last: int) -> bool:
    for match in re.finditer(re.escape(page) + r"[\"']?(?::|, line |:line )(\d+)", warning):
        if first <= int(match.group(1)) <= last:
            return True
    return False


def _build_raw(site: Site, monkeypatch: pytest.MonkeyPatch) -> str:
    """Build ``site`` in this process; everything it said, exactly as a terminal would get it."""
    site.failed = None
    if site.frontend == "sphinx":
        import sphinx._cli.util.colour
        from sphinx.testing.util import SphinxTestApp

        # Sphinx colours its own warnings; without that, any ESC in the log came from a page.
        monkeypatch.setattr(sphinx._cli.util.colour, "_COLOURING_DISABLED", True)
        # Under CI=true Sphinx redraws its progress line with ESC[2K and CR; no page put those there.
        monkeypatch.setenv("NO_COLOR", "1")
        status, warning = io.StringIO(), io.StringIO()
        app = SphinxTestApp("html", srcdir=site.src, builddir=site.out.parent / "sphinx-build", status=status, warning=warning)
        try:
            app.build()
        except Exception as exc:  # reported by the test, not raised
            site.failed = f"{type(exc).__name__}: {exc}"
        finally:
            app.cleanup()
        site.out = Path(app.outdir)
        said = status.getvalue() + warning.getvalue()
    elif site.frontend == "mkdocs":
        from mkdocs.commands.build import build
        from mkdocs.config import load_config

        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
        logger = logging.getLogger("mkdocs")
        logger.addHandler(handler)
        try:
            build(load_config(str(site.src / "mkdocs.yml"), site_dir=str(site.out)))
        except BaseException as exc:
            site.failed = f"{type(exc).__name__}: {exc}"
        finally:
            logger.removeHandler(handler)
        said = stream.getvalue()
    else:
        from contextlib import redirect_stderr, redirect_stdout

        from attndocs.cli import main

        err, out = io.StringIO(), io.StringIO()
        try:
            with redirect_stderr(err), redirect_stdout(out):
                code = main(["build", str(site.src), "-o", str(site.out)])
            if code != 0:
                site.failed = f"exit {code}"
        except BaseException as exc:
            site.failed = f"{type(exc).__name__}: {exc}"
        said = out.getvalue() + err.getvalue()
    site.warnings = [line for line in said.splitlines() if "warning" in line.lower() or "error" in line.lower()]
    return said


def _figures(site: Site) -> tuple[int, int]:
    """(drawn, placeholders) over the site's pages."""
    html = "".join(p.read_text(encoding="utf-8") for p in site.pages())
    return len(re.findall(r'class="attndocs-figure attndocs-view-', html)), html.count("attndocs-failed")


@pytest.fixture(scope="module")
def built(request, tmp_path_factory, rel_models):  # type: ignore[no-untyped-def]
    """Each front-end's site, built once: (site, what the build said)."""
    sites = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for frontend in FRONTENDS:
            root = tmp_path_factory.mktemp(f"bounded-{frontend}")
            site = write_site(frontend, root, CASES, model=str(rel_models["bert"]))
            sites[frontend] = (site, _build_raw(site, monkeypatch))
    return sites


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_values_past_their_limits_are_warnings_on_their_line_and_the_build_goes_on(built, frontend):
    site, said = built[frontend]
    assert site.failed is None, site.failed
    assert not python_crash(said), said[-3000:]
    missing = []
    for placed in site.placed:
        if placed.case.expects_figure:
            continue
        hits = [w for w in site.warnings if _mentions(w, placed.page, placed.first, placed.last)]
        if not any(re.search(placed.case.error, w, re.IGNORECASE) for w in hits):
            missing.append(f"{placed.case.name} ({placed.page}:{placed.first}-{placed.last})")
    assert not missing, f"{frontend}: no warning naming the line of: {missing}\n" + "\n".join(site.warnings)
    assert not any("tensor" in w for w in site.warnings), "torch's message leaked instead of the model's limit"
    drawn, failed = _figures(site)
    pages = 2 if frontend == "sphinx" else 1  # Sphinx has every case in rst and in MyST
    assert drawn == 2 * pages and failed == (len(CASES) - 2) * pages


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_no_control_character_from_a_page_reaches_the_terminal(built, frontend):
    site, said = built[frontend]
    assert "pwned title" in said or "no-such" in said  # the hostile values were quoted...
    raw = sorted({f"U+{ord(c):04X}" for c in said if c in "\x1b\x07\x9b" or (ord(c) < 32 and c not in "\n\t")})
    assert not raw, f"{frontend} wrote raw control characters {raw}:\n" + "\n".join(
        line for line in said.splitlines() if any(c in line for c in "\x1b\x07"))
    assert "\\x1b[31m" in said  # ...and shown escaped, so the reader still sees what was there


def test_the_command_line_escapes_what_it_quotes(capsys, tmp_path):
    from attndocs.cli import main

    out = tmp_path / f"never{ESCAPES}.html"
    assert main(["render", "The cat.", "--model", f"x{ESCAPES}", "-o", str(out), "--cache-dir", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert "unknown model" in err and "\\x1b]0;pwned" in err
    assert "\x1b" not in err and "\x07" not in err and err.startswith("attndocs: error: ") and err.count("\n") == 1
    assert not out.exists()
    # A path argument quoted in an error is escaped too.
    (tmp_path / f"dir{ESCAPES}").mkdir()
    assert main(["extract", "The cat.", "-o", str(tmp_path / f"dir{ESCAPES}"), "--cache-dir", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert "it is a folder" in err and "\x1b" not in err and "\x07" not in err


def test_option_limits_are_stated_where_options_are_documented():
    from attndocs.options import figure_fields, option_name

    bounded = {option_name(f): getattr(f.metadata["parse"], "allowed", "") for f in figure_fields()}
    for name in ("model", "revision", "text-b", "target", "caption", "name", "alt", "class", "layer", "heads",
                 "include-layers", "include-heads", "max-tokens"):
        assert re.search(r"at most|to [\d,]+", bounded[name]), f"{name}: no limit in {bounded[name]!r}"


# -- no machine paths ----------------------------------------------------------------------------
@pytest.mark.parametrize("frontend", FRONTENDS)
def test_a_local_model_folder_leaves_no_machine_path_in_any_output(frontend, tmp_path, rel_models, monkeypatch):
    cases = [Case("local", "The cat sat.", {"model": "./models/tiny-bert", "view": "neuron"}),
             Case("local-bad-layer", "The cat sat.", {"model": "./models/tiny-bert", "layer": "7"}, error="layer")]
    site = write_site(frontend, tmp_path / "site", cases, model="minilm")
    # Beside the config file (conf.py / mkdocs.yml / attndocs.toml), where authors keep it.
    shutil.copytree(rel_models["bert"], site.src / "models" / "tiny-bert")
    if frontend == "sphinx":
        (site.src / "conf.py").write_text((site.src / "conf.py").read_text() + "exclude_patterns = ['models']\n")
    said = _build_raw(site, monkeypatch)
    assert site.failed is None, site.failed
    drawn, _ = _figures(site)
    assert drawn == (2 if frontend == "sphinx" else 1)
    machine = str(tmp_path.resolve())
    leaks = [str(p.relative_to(root)) for root in (site.out, site.cache) for p in root.rglob("*")
             if p.is_file() and machine.encode() in p.read_bytes()]
    assert not leaks, f"{frontend}: the build machine's path {machine} is in {leaks}"
    html = "".join(p.read_text(encoding="utf-8") for p in site.pages())
    assert "tiny-bert" in html  # the model is still named, by its folder
    assert "tiny-bert" in said or site.warnings  # and messages name it the same way
    assert page_dir(site).is_dir()


# -- linear time through the builds -----------------------------------------------------------------
@pytest.mark.parametrize("frontend", ["mkdocs", "attndocs-build"])
def test_a_page_of_pathological_fence_lines_builds_in_seconds(frontend, tmp_path, monkeypatch):
    """No figure at all: a code block whose opening line is a megabyte of spaces (68 s at 200 kB once)."""
    import time

    site = write_site(frontend, tmp_path, [GOOD], model="minilm")
    mb = 1_000_000
    page = (
        "# Long lines\n\n```x" + " " * mb + "y\ncode\n```\n\n"
        "~~~" + "~ " * (mb // 4) + "z\n~~~\n\n" + "`" * (mb // 4) + "\n\n" + ("\t" * (mb // 4)) + "\n\nkey:" + " " * (mb // 4) + "v\n"
    )
    (page_dir(site) / "index.md").write_text(page, encoding="utf-8")
    (page_dir(site) / "cases.md").unlink()
    started = time.perf_counter()
    said = _build_raw(site, monkeypatch)
    seconds = time.perf_counter() - started
    assert site.failed is None, site.failed + said[-2000:]
    assert seconds < 20, f"{frontend} took {seconds:.1f} s for one page of long lines"


# -- figures per page ----------------------------------------------------------------------------
@pytest.mark.parametrize("frontend", FRONTENDS)
def test_figures_past_the_per_page_limit_are_placeholders_with_a_warning_on_their_line(frontend, tmp_path, rel_models, monkeypatch):
    # The real limit is 10,000; two keeps the build small, the rule is the same.
    import attndocs.fence
    import attndocs.sphinx_ext.directive

    monkeypatch.setattr(attndocs.fence, "MAX_FIGURES_PER_PAGE", 2)
    monkeypatch.setattr(attndocs.sphinx_ext.directive, "MAX_FIGURES_PER_PAGE", 2)
    cases = [Case("first", "The cat sat."), Case("second", "The dog sat."),
             Case("third", "The cow sat.", error=r"already has 2 attention figures, the most one page may hold")]
    site = write_site(frontend, tmp_path / "site", cases, model=str(rel_models["bert"]))
    said = _build_raw(site, monkeypatch)
    assert site.failed is None, site.failed
    assert not python_crash(said), said[-3000:]
    third = [p for p in site.placed if p.case.name == "third"]
    assert third
    for placed in third:
        hits = [w for w in site.warnings if _mentions(w, placed.page, placed.first, placed.last)]
        assert any(re.search(placed.case.error, w) for w in hits), site.warnings
    drawn, failed = _figures(site)
    pages = 2 if frontend == "sphinx" else 1
    assert (drawn, failed) == (2 * pages, pages)


def test_the_per_page_limit_is_ten_thousand_figures():
    from attndocs.fence import FigureBatch
    from attndocs.options import MAX_FIGURES_PER_PAGE

    assert MAX_FIGURES_PER_PAGE == 10_000
    batch = FigureBatch()
    for _ in range(MAX_FIGURES_PER_PAGE + 1):
        batch.add_body("many.md", "The cat sat.", line=1)
    batch.add_body("other.md", "The cat sat.", line=1)
    refused = [f for f in batch.figures if f.error is not None]
    assert [(f.page, batch.figures.index(f)) for f in refused] == [("many.md", MAX_FIGURES_PER_PAGE)]
