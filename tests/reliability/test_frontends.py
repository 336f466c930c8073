"""The front-ends under the reliability suite: hostile pages, bad bytes, racing builds, clean rebuilds.

Sphinx (reStructuredText and MyST), the MkDocs plugin and `attndocs build` each get:

* the hostile corpus (hostile_corpus.py) as blocks on pages, plus an unknown option: every
  case gives a drawn figure or a warning naming the page and a line of its block, the
  build itself goes on, and no injected script runs when the pages open in Chromium;
* a source file that is not valid UTF-8: the page builds, with a warning naming the file
  and the line of the first bad byte;
* two builds at once on one cache folder (separate processes): both succeed, identical
  output;
* two clean builds (empty caches, separate processes): byte-identical output.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from frontends import (
    FRONTENDS,
    Site,
    build_in_process,
    from_attndocs,
    page_dir,
    python_crash,
    read_tree,
    start_build,
    write_site,
)
from hostile_corpus import INVALID_UTF8, Case, all_cases
from reliability_helpers import assert_only_plain_safetensors, inspect_page

UNKNOWN = Case("unknown-option", "The cat sat.", {"colour": "red"}, error=r"colour")
CASES = all_cases() + [UNKNOWN]


def _mentions(warning: str, page: str, first: int, last: int) -> bool:
    """``warning`` names ``page`` and a line inside ``first..last``."""
    for match in re.finditer(re.escape(page) + r"[\"']?(?::|, line |:line )(\d+)", warning):
        if first <= int(match.group(1)) <= last:
            return True
    return False


@pytest.fixture(scope="module", params=FRONTENDS)
def hostile_site(request, tmp_path_factory) -> Site:  # type: ignore[no-untyped-def]
    site = write_site(request.param, tmp_path_factory.mktemp(f"hostile-{request.param}"), CASES)
    return build_in_process(site)


def test_the_build_goes_on_and_every_bad_block_is_named_with_its_page_and_line(hostile_site):
    site = hostile_site
    assert site.failed is None, f"{site.frontend}: one bad block stopped the build: {site.failed}"
    assert not python_crash("\n".join(site.warnings)), "\n".join(site.warnings)
    unexplained = []
    for placed in site.placed:
        hits = [w for w in site.warnings if _mentions(w, placed.page, placed.first, placed.last)]
        if placed.case.expects_figure:
            # The host's parser may still complain about markup it cannot read (docutils splits
            # lines at U+2028); attndocs itself must not refuse a figure that can be drawn.
            ours = [w for w in hits if from_attndocs(w)]
            assert not ours, f"{site.frontend}: case {placed.case.name} should draw, but warned: {ours}"
        elif not any(re.search(placed.case.error, w, re.IGNORECASE) for w in hits):
            unexplained.append(f"{placed.case.name} ({placed.page}:{placed.first}-{placed.last}, expected /{placed.case.error}/)")
    assert not unexplained, (f"{site.frontend}: no warning naming the page and line of: " + "; ".join(unexplained)
                             + "\nwarnings:\n" + "\n".join(site.warnings))
    assert_only_plain_safetensors([site.cache])


def test_every_good_block_draws_and_nothing_injected_runs(hostile_site, chromium):
    site = hostile_site
    assert site.failed is None
    expected = {}
    for placed in site.placed:
        expected.setdefault(placed.page, 0)
        expected[placed.page] += placed.case.expects_figure
    root = site.out.resolve().as_uri() + "/"
    drawn = {}
    pages = {Path(p).stem for p in expected}
    for path in site.pages():
        stem = path.parent.name if path.name == "index.html" and path.parent != site.out else path.stem
        if stem not in pages:
            continue
        report = inspect_page(chromium, path.resolve().as_uri(), allow_prefix=root)
        assert report.canary == [] and report.dialogs == [], f"{site.frontend} {path.name}: {report.canary} {report.dialogs}"
        assert report.page_errors == [], f"{site.frontend} {path.name}: {report.page_errors}"
        assert report.failed == 0, f"{site.frontend} {path.name}: {report.failed} figure(s) failed in the browser"
        drawn[stem] = report.ready
        for placed in site.placed:
            if Path(placed.page).stem == stem:
                for literal in placed.case.literal:
                    assert report.shows(literal), f"{site.frontend} {path.name}: {literal!r} not shown as written"
    assert drawn == {Path(page).stem: n for page, n in expected.items()}


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_a_source_file_that_is_not_utf8_builds_with_a_warning_at_its_line(frontend, tmp_path):
    good = Case("good", "The cat sat on the mat.")
    site = write_site(frontend, tmp_path, [good])
    folder = page_dir(site)
    suffix = ".rst" if frontend == "sphinx" else ".md"
    block = (b".. attention::\n\n   " if frontend == "sphinx" else b"```attention\n\n") + INVALID_UTF8 + (
        b"\n" if frontend == "sphinx" else b"\n```\n")
    title = b"Broken\n======\n\n" if frontend == "sphinx" else b"# Broken\n\n"
    # The line of the first bad byte: after the title, the block's first line and a blank.
    bad_line = title.count(b"\n") + 3
    (folder / f"broken{suffix}").write_bytes(title + block)
    if frontend == "sphinx":
        index = folder / "index.rst"
        index.write_text(index.read_text() + "   broken\n", encoding="utf-8")
    build_in_process(site)
    # Without attndocs, Sphinx 9 and MkDocs 1.6 both stop the build on such a page.
    assert site.failed is None, f"{frontend}: a page with invalid UTF-8 stopped the build: {site.failed}"
    assert not python_crash("\n".join(site.warnings)), "\n".join(site.warnings)
    named = [w for w in site.warnings if re.search(rf"broken{re.escape(suffix)}:{bad_line}\b", w)]
    assert any(re.search(r"not valid UTF-8", w) for w in named), site.warnings
    drawn = site.out / ("broken/index.html" if frontend == "mkdocs" else "broken.html")
    assert drawn.is_file()


@pytest.mark.reliability_full
@pytest.mark.parametrize("frontend", FRONTENDS)
def test_two_builds_sharing_one_cache_at_once_both_succeed_with_identical_output(frontend, tmp_path):
    site = write_site(frontend, tmp_path, _ordinary_cases())
    cache = tmp_path / "shared-cache"
    procs = [start_build(site, tmp_path / f"out-{side}", cache) for side in "ab"]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{frontend}: a build failed:\n{out[-2000:]}\n{err[-3000:]}"
        assert not python_crash(err), err[-3000:]
    assert read_tree(tmp_path / "out-a") == read_tree(tmp_path / "out-b")
    assert_only_plain_safetensors([cache])


@pytest.mark.reliability_full
@pytest.mark.parametrize("frontend", FRONTENDS)
def test_two_clean_builds_are_byte_identical(frontend, tmp_path):
    site = write_site(frontend, tmp_path, _ordinary_cases())
    trees = []
    for side in "ab":
        proc = start_build(site, tmp_path / f"out-{side}", tmp_path / f"cache-{side}")
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{frontend}: build failed:\n{out[-2000:]}\n{err[-3000:]}"
        trees.append(read_tree(tmp_path / f"out-{side}"))
    a, b = trees
    assert sorted(a) == sorted(b)
    different = [name for name in a if a[name] != b[name]]
    assert not different, f"{frontend}: files differ between two clean builds: {different}"


def _ordinary_cases() -> list[Case]:
    """A few ordinary figures over the views, for the build-level races and rebuilds."""
    return [
        Case("head", "The animal didn't cross the street because it was too tired.", {"view": "head", "caption": "Head"}),
        Case("model", "The cat sat on the mat.", {"view": "model"}),
        Case("neuron", "The cat sat on the mat.", {"view": "neuron", "layer": "2"}),
        Case("pair", "The cat sat on the mat.", {"view": "matrix", "text-b": "It was tired."}),
        Case("summary", "Birds sang in the trees.", {"view": "summary"}),
    ]
