"""Pages that are not valid UTF-8: Sphinx builds them with U+FFFD and a warning at the bad line.

Without attndocs, Sphinx 9 stops the whole build on such a page with "Encoding error!",
naming neither the file nor the line.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from site_helpers import warnings_of

CONF = 'project = "enc"\nextensions = ["attndocs.sphinx_ext", "myst_parser"]\n'
TOC = "Index\n=====\n\n.. toctree::\n\n{pages}\n"


def _site(root: Path, pages: dict[str, bytes], conf: str = CONF) -> Path:
    root.mkdir()
    (root / "conf.py").write_text(conf, encoding="utf-8")
    names = "\n".join(f"   {Path(name).stem}" for name in pages if Path(name).suffix in (".rst", ".md"))
    (root / "index.rst").write_text(TOC.format(pages=names), encoding="utf-8")
    for name, data in pages.items():
        (root / name).write_bytes(data)
    return root


def _source_warnings(app) -> list[tuple[str, int, str]]:
    out = []
    for line in warnings_of(app):
        match = re.fullmatch(r".*/([\w.]+):(\d+): WARNING: (.*) \[attndocs\.source\]", line)
        if match:
            out.append((match.group(1), int(match.group(2)), match.group(3)))
    return sorted(out)


PAGES = {
    "broken.rst": b"Broken\n======\n\nA good line.\n\nThe cat \xff\xfe sat on the \xc3\x28 mat.\n",
    "broken_md.md": b"# Broken MyST\n\nfine\n\nmore \xed\xa0\x80 text\n",
    "good.rst": "Good\n====\n\nA real replacement character \ufffd and \u00e9.\n".encode(),
}


@pytest.mark.parametrize("parallel", [0, 2])
def test_a_page_that_is_not_utf8_builds_with_a_warning_at_its_line(build, tmp_path, parallel):
    src = _site(tmp_path / "src", PAGES)
    app = build(srcdir=src, parallel=parallel)
    assert _source_warnings(app) == [
        ("broken.rst", 6, "not valid UTF-8 (byte 0xff); bad bytes are shown as \ufffd: save the file as UTF-8"),
        ("broken_md.md", 5, "not valid UTF-8 (byte 0xed); bad bytes are shown as \ufffd: save the file as UTF-8"),
    ]
    html = (app.outdir / "broken.html").read_text(encoding="utf-8")
    assert "The cat \ufffd\ufffd sat on the \ufffd( mat." in html
    assert "more \ufffd\ufffd\ufffd text" in (app.outdir / "broken_md.html").read_text(encoding="utf-8")
    # A page that is valid UTF-8 is read as it is, U+FFFD of its own included, with no warning.
    assert "A real replacement character \ufffd and \u00e9." in (app.outdir / "good.html").read_text(encoding="utf-8")


def test_a_page_fixed_later_builds_clean(build, tmp_path):
    src = _site(tmp_path / "src", PAGES)
    first = build(srcdir=src, builddir=tmp_path / "out")
    assert len(_source_warnings(first)) == 2
    (src / "broken.rst").write_bytes(PAGES["broken.rst"].replace(b"\xff\xfe", b"\xc3\xa9").replace(b"\xc3\x28", b"("))
    again = build(srcdir=src, builddir=tmp_path / "out")
    assert _source_warnings(again) == []  # only broken.rst is read again, and it is clean now
    assert "The cat \u00e9 sat on the ( mat." in (again.outdir / "broken.html").read_text(encoding="utf-8")


def test_an_included_file_is_still_read_strictly_as_without_attndocs(build, tmp_path):
    # Only the page's own read is lenient: an include keeps docutils' own report, which names
    # the including page and line.
    src = _site(tmp_path / "src", {
        "host.rst": b"Host\n====\n\nbefore\n\n.. include:: part.txt\n\nafter\n",
        "part.txt": b"part \xff of it\n",
    })
    app = build(srcdir=src)
    warnings = "\n".join(warnings_of(app))
    assert _source_warnings(app) == []
    assert re.search(r"host\.rst:6: \w+: Problem with \"include\" directive", warnings), warnings
    assert "UnicodeDecodeError" in warnings
    assert "after" in (app.outdir / "host.html").read_text(encoding="utf-8")


def test_a_site_with_another_source_encoding_is_left_alone(build, tmp_path):
    src = _site(tmp_path / "src", {"latin.rst": "Latin\n=====\n\ncaf\u00e9\n".encode("latin-1")},
                conf=CONF + 'source_encoding = "latin-1"\n')
    app = build(srcdir=src)
    assert _source_warnings(app) == []
    assert "caf\u00e9" in (app.outdir / "latin.html").read_text(encoding="utf-8")
