"""Bad figures: typed warnings with file and line, placeholders, a build that goes on or fails at the end."""

from __future__ import annotations

import re

import pytest
from site_helpers import ROOTS, plain, summary_of, warnings_of
from sphinx.cmd.build import build_main
from sphinx.errors import ConfigError, ExtensionError

pytestmark = pytest.mark.real

# (line, warning subtype, part of the message) for each bad figure of tests/roots/test-errors.
EXPECTED = [
    (4, "options", "unknown option 'colour' (known: alt, caption"),
    (10, "options", "option 'view' has value 'spiral'"),
    (15, "model", "unknown model 'no such model'"),
    (20, "options", "the figure's text is empty"),
    (23, "options", "more than max-tokens (4)"),
    (29, "options", "option 'layer' is 40, out of range"),
    (36, "options", "takes its text as content"),
]


def parsed_warnings(app) -> list[tuple[int, str, str]]:
    out = []
    for line in warnings_of(app):
        match = re.fullmatch(r".*index\.rst:(\d+): WARNING: attention figure: (.*) \[attndocs\.(\w+)\]", line)
        assert match, f"unexpected warning: {line}"
        out.append((int(match.group(1)), match.group(3), match.group(2)))
    return sorted(out)


def test_each_bad_figure_warns_with_its_type_and_line_and_the_build_goes_on(build):
    app = build("errors")
    got = parsed_warnings(app)
    assert [(line, kind) for line, kind, _ in got] == [(line, kind) for line, kind, _ in EXPECTED]
    for (_, _, message), (_, _, expected) in zip(got, EXPECTED):
        assert expected in message
    html = (app.outdir / "index.html").read_text()
    placeholders = re.findall(r'<figure class="attndocs-figure attndocs-failed.*?</figure>', html, re.S)
    assert len(placeholders) == 7
    assert "Attention figure unavailable:</strong> option &#39;layer&#39; is 40, out of range" in html
    assert "A layer the model does not have." in placeholders[5]
    # The good figure after the bad ones is drawn as usual.
    assert len(re.findall(r'data-attndocs-view="head"', html)) == 1
    assert "The one good figure." in html
    assert summary_of(app)["failed"] == 7


def test_warnings_are_silenced_by_type_or_subtype(build):
    app = build("errors", confoverrides={"suppress_warnings": ["attndocs.model"]})
    kinds = [kind for _, kind, _ in parsed_warnings(app)]
    assert "model" not in kinds and kinds.count("options") == 6
    quiet = build("errors", confoverrides={"suppress_warnings": ["attndocs"]})
    assert warnings_of(quiet) == []


def test_W_fails_the_build_and_still_writes_every_page(tmp_path, attndocs_cache, capsys):
    out = tmp_path / "out"
    status = build_main(["-W", "-q", "-b", "html", "-D", f"attention_cache_dir={attndocs_cache}", str(ROOTS / "test-errors"), str(out), "-d", str(tmp_path / "doctrees")])
    assert status == 1
    assert "[attndocs.options]" in plain(capsys.readouterr().err)
    assert (out / "index.html").is_file()


def test_raise_on_error_fails_at_the_end_naming_every_failed_figure(build):
    app = build("errors", confoverrides={"attention_raise_on_error": True}, do_build=False)
    with pytest.raises(ExtensionError) as caught:
        app.build()
    message = str(caught.value)
    assert "7 attention figure(s) failed" in message
    for line, _, _ in EXPECTED:
        assert f"index.rst:{line}: " in message
    assert (app.outdir / "index.html").is_file()  # raised after writing, not instead of it


def test_frozen_mode_turns_a_miss_into_a_cache_warning_and_loads_no_model(build, tmp_path):
    app = build("basic", confoverrides={"attention_execution_mode": "frozen", "attention_cache_dir": str(tmp_path / "empty")})
    warnings = warnings_of(app)
    assert len(warnings) == 3
    assert all("[attndocs.cache]" in w and "execution mode is frozen" in w for w in warnings)
    assert any(re.search(r"index\.rst:9: WARNING", w) for w in warnings)
    assert any(re.search(r"sub/page\.rst:6: WARNING", w) for w in warnings)
    assert summary_of(app) == {"figures": 3, "cached": 0, "computed": 0, "failed": 3, "models_loaded": 0}
    assert "no cached record for this figure" in (app.outdir / "index.html").read_text()


def test_a_failed_figure_is_tried_again_without_editing_its_page(build, tmp_path):
    cache = str(tmp_path / "cache")
    first = build("basic", builddir=tmp_path / "b", confoverrides={"attention_execution_mode": "frozen", "attention_cache_dir": cache})
    assert summary_of(first)["failed"] == 3
    again = build("basic", builddir=tmp_path / "b", freshenv=False, confoverrides={"attention_cache_dir": cache})
    assert summary_of(again) | {"models_loaded": None} == {"figures": 3, "cached": 0, "computed": 3, "failed": 0, "models_loaded": None}
    assert "attndocs-failed" not in (again.outdir / "index.html").read_text()


def test_execution_mode_off_shows_placeholders_without_warnings(build, tmp_path):
    app = build("basic", confoverrides={"attention_execution_mode": "off", "attention_cache_dir": str(tmp_path / "none")})
    assert warnings_of(app) == []
    html = (app.outdir / "index.html").read_text()
    assert html.count("attndocs-failed") == 2 and "attention_execution_mode is &#39;off&#39;" in html
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("attention_execution_mode", "fast", r"attention_execution_mode = 'fast' in conf.py is not valid: expected one of auto, force, frozen, off"),
        ("attention_embed", "cdn", r"attention_embed = 'cdn' .* expected one of auto, inline, file"),
        ("attention_model_aliases", ["bert"], r"attention_model_aliases = \['bert'\] .* expected a mapping of names to model ids"),
        ("attention_max_tokens", 0, r"attention_max_tokens = 0 .* expected an integer from 1 to 4,096"),
    ],
)
def test_a_bad_setting_stops_the_build_at_once_naming_it(build, name, value, expected):
    with pytest.raises(ConfigError, match=expected):
        build("basic", confoverrides={name: value}, do_build=False)


def test_myst_pages_report_bad_options_with_their_line(build, tmp_path):
    srcdir = tmp_path / "myst-errors"
    srcdir.mkdir()
    (srcdir / "conf.py").write_text('extensions = ["myst_parser", "attndocs.sphinx_ext"]\n')
    (srcdir / "index.md").write_text(
        "# Bad figures\n\n```{attention}\n:colour: red\n\nThe cat sat.\n```\n\n```{attention}\n---\nlayer: two\n---\nThe cat sat.\n```\n"
    )
    app = build(srcdir=srcdir)
    warnings = warnings_of(app)
    assert len(warnings) == 2
    assert re.search(r"index\.md:3: WARNING: attention figure: unknown option 'colour' .*\[attndocs\.options\]$", warnings[0])
    assert re.search(r"index\.md:9: WARNING: attention figure: option 'layer' has value 'two'.*\[attndocs\.options\]$", warnings[1])


def test_a_cache_inside_the_output_folder_is_refused(build, tmp_path):
    builddir = tmp_path / "out"
    # SphinxTestApp writes HTML to <builddir>/html: a cache there would be published with it.
    cache = builddir / "html" / "_cache"
    with pytest.raises(ConfigError, match=r"attention_cache_dir .* is inside the output folder .* it would be published"):
        build("basic", builddir=builddir, confoverrides={"attention_cache_dir": str(cache)}, do_build=False)
    assert not cache.exists()
