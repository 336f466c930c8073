"""The hostile corpus through the command line: a correct figure or a clear error, and nothing runs.

`attndocs render` is the front-end closest to the core: every case of hostile_corpus.py goes
through it (in this process, so the model loads once; argument parsing and error handling
are the CLI's own). Every page written is opened in Chromium twice, once as shipped and
once with its Content-Security-Policy removed, so the escaping is tested on its own (the
short form opens only that one).
"""

from __future__ import annotations

import re
import subprocess

import pytest
from hostile_corpus import INJECTION, INVALID_UTF8, all_cases
from reliability_helpers import PYTHON, REPO, full_form, inspect_page, worker_env

from attndocs.cli import main as cli_main
from attndocs.record import AttentionRecord

CASES = all_cases()
_CSP = re.compile(r'<meta http-equiv="Content-Security-Policy"[^>]*>')


def _run(capfd: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str]:
    capfd.readouterr()
    try:
        code = cli_main(args)
    except SystemExit as exc:  # argparse refuses unknown flags this way
        code = int(exc.code or 0)
    return code, capfd.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_render_gives_a_figure_or_a_clear_error(case, tmp_path, capfd, chromium):
    page = tmp_path / "page.html"
    # `attndocs render` names the matrix view's `mode` --matrix-mode (its --mode is the execution mode).
    flags = [item for key, value in case.options.items() for item in (f"--{'matrix-mode' if key == 'mode' else key}", value)]
    code, err = _run(capfd, ["render", "--cache-dir", str(tmp_path.parent / "hostile-cache"), *flags, "-o", str(page), "--", case.text])
    assert "Traceback" not in err
    if not case.expects_figure:
        assert code == 1, f"expected a refusal, got exit {code}: {err}"
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("attndocs: error: "), err
        assert re.search(case.error, lines[0], re.IGNORECASE), lines[0]
        assert not page.exists()
        return
    assert code == 0, err
    html = page.read_text(encoding="utf-8")
    # Without the page's CSP the escaping alone must hold; the full form also opens the page as
    # shipped. The short form opens the pages of markup-bearing cases only: the odd-text cases
    # (RTL, emoji, CJK, ...) are opened in Chromium by the front-end tests and the token test below.
    variants = [("without CSP", _CSP.sub("", html))] + ([("as shipped", html)] if full_form() else [])
    if not full_form() and not _carries_markup(case):
        variants = []
    for variant, text in variants:
        path = tmp_path / f"{variant.replace(' ', '-')}.html"
        path.write_text(text, encoding="utf-8")
        report = inspect_page(chromium, path.as_uri())
        assert report.canary == [] and report.dialogs == [], f"{variant}: injected code ran: {report.canary} {report.dialogs}"
        assert report.page_errors == [], f"{variant}: {report.page_errors}"
        assert report.blocked == [], f"{variant}: the page tried to load {report.blocked}"
        assert (report.ready, report.failed) == (1, 0), f"{variant}: figure not drawn ({report})"
        for literal in case.literal:
            assert report.shows(literal), f"{variant}: {literal!r} is not shown as written"


def _carries_markup(case) -> bool:  # type: ignore[no-untyped-def]
    return any(ch in value for value in [case.text, *case.options.values()] for ch in "<>\"'`$")


@pytest.mark.parametrize("case", [c for c in CASES if c.name in ("script-close", "rtl", "cjk", "emoji", "zero-width")],
                         ids=lambda c: c.name)
def test_the_figure_shows_the_models_tokens_as_text(case, tmp_path, capfd, chromium):
    """A correct figure: the tokens on screen are the record's, character for character."""
    record_path = tmp_path / "record.safetensors"
    code, err = _run(capfd, ["extract", "--cache-dir", str(tmp_path.parent / "hostile-cache"), "-o", str(record_path), "--", case.text])
    assert code == 0, err
    tokens = AttentionRecord.load(record_path).sides["encoder"].display
    page = tmp_path / "page.html"
    assert _run(capfd, ["render", "--cache-dir", str(tmp_path.parent / "hostile-cache"), "-o", str(page), "--", case.text])[0] == 0
    browser_page = chromium.new_page()
    browser_page.route("**/*", lambda r: r.continue_() if r.request.url == page.as_uri() else r.abort())
    browser_page.goto(page.as_uri())
    browser_page.wait_for_selector('.attndocs-figure[data-attndocs-status="ready"]')
    shown = browser_page.evaluate(
        "() => [...document.querySelectorAll('.attndocs-token[data-side=\"q\"]')].map(t => t.textContent)")
    browser_page.close()
    assert shown == tokens


def test_unknown_options_are_refused_with_their_name(capfd, tmp_path):
    code, err = _run(capfd, ["render", "--colour", "red", "-o", str(tmp_path / "p.html"), "text"])
    assert code == 2 and "--colour" in err and "Traceback" not in err


@pytest.mark.parametrize("where", ["stdin", "argv"])
def test_invalid_utf8_input_is_a_clear_error_not_a_crash(where, tmp_path):
    """Text that is not UTF-8 (a file piped in, or bytes on the command line) gives one clear line."""
    cmd = [PYTHON, "-m", "attndocs.cli", "extract", "--cache-dir", str(tmp_path / "cache"), "-o", str(tmp_path / "r.safetensors")]
    if where == "stdin":
        proc = subprocess.run([*cmd, "-"], input=INVALID_UTF8, capture_output=True, env=worker_env(), cwd=str(REPO), timeout=300)
    else:
        proc = subprocess.run([*[c.encode() for c in cmd], INVALID_UTF8], capture_output=True, env=worker_env(), cwd=str(REPO),
                              timeout=300)
    err = proc.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err, err
    if proc.returncode != 0:
        assert proc.returncode == 1 and err.startswith("attndocs: error: ") and re.search(r"utf-?8|encod|decod", err, re.I), err
    else:
        # Accepted: then the record holds the text with the bad bytes replaced, and is valid.
        assert AttentionRecord.load(tmp_path / "r.safetensors").text


def test_a_hostile_page_title_is_shown_as_written(tmp_path, capfd, chromium):
    page = tmp_path / "page.html"
    code, err = _run(capfd, ["render", "--cache-dir", str(tmp_path.parent / "hostile-cache"), "--title", INJECTION,
                             "-o", str(page), "The cat sat on the mat."])
    assert code == 0, err
    report = inspect_page(chromium, page.as_uri())
    assert report.canary == [] and report.dialogs == [] and report.page_errors == []
    assert report.shows(INJECTION)


@pytest.mark.parametrize("view", ["head_view", "model_view"])
def test_the_notebook_api_shows_hostile_tokens_as_written(view, chromium, tmp_path):
    """BertViz-style calls with token strings from anywhere (a tokenizer, a user's list)."""
    import numpy as np

    import attndocs

    tokens = ["[CLS]", INJECTION, "</script><script>window.__pwned='tok'</script>", "שלום", "🐈", "猫", "a\u200bb", "[SEP]"]
    n = len(tokens)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 1, 3, n, n)).astype(np.float32)
    weights = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    attention = tuple(weights[layer] for layer in range(2))
    html = getattr(attndocs, view)(attention, tokens, prettify_tokens=False, html_action="return").data
    path = tmp_path / "notebook.html"
    path.write_text(_CSP.sub("", html), encoding="utf-8")
    report = inspect_page(chromium, path.as_uri())
    assert report.canary == [] and report.dialogs == [] and report.page_errors == []
    assert (report.ready, report.failed) == (1, 0)
    if view == "model_view":
        # The model view shows tokens once a thumbnail is opened.
        page = chromium.new_page()
        page.route("**/*", lambda r: r.continue_() if r.request.url == path.as_uri() else r.abort())
        page.goto(path.as_uri())
        page.wait_for_selector('.attndocs-figure[data-attndocs-status="ready"]')
        page.locator('[aria-label="Layer 0, head 0"]').first.click()
        text = page.evaluate("() => document.body.innerText")
        ran = page.evaluate("() => window.__pwned || null")
        page.close()
        assert ran is None
        shown = [token for token in tokens[1:3] if token in text]
    else:
        shown = [token for token in tokens[1:3] if report.shows(token)]
    assert shown == tokens[1:3], f"not shown as written: {set(tokens[1:3]) - set(shown)}"
