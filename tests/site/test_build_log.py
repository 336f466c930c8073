"""The build log: one progress counter from start to end, in every front-end, and no other bars.

A build shows ``[done/total]`` over all its figures, cached and computed alike: the count
only rises, every line has the same total, and ``[N/N]`` comes once, last. Nothing else in
the log is a progress display (no tqdm or transformers bar fragments, no carriage returns).
Each host is built twice on a site whose cache holds some of its figures: a mixed build,
then a fully cached one, which shows one line, ``[N/N]``.
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import pytest
import yaml

from attndocs.cli import main

COUNTER = re.compile(r"\[(\d+)/(\d+)\]")
# What third-party bars leave in a log: tqdm's "45%|####  | 9/20 [00:01<00:02, 8.1it/s]".
BAR_FRAGMENT = re.compile(r"\d+%\||it/s|s/it|\r|█")


def fence(model: Path, text: str) -> str:
    return f"```attention\nmodel: {model}\n\n{text}\n```\n"


def pages(bert: Path, gpt2: Path, *, extra: bool) -> dict[str, str]:
    """Two models, five figures (two of them one record); with ``extra`` a page of two more."""
    out = {
        "index.md": "# Home\n\n" + fence(bert, "The cat sat.") + "\n" + fence(gpt2, "The dog ran.") + "\n" + fence(bert, "The cat sat."),
        "more.md": "# More\n\n" + fence(bert, "A bird sang.") + "\n" + fence(gpt2, "A fish swam."),
    }
    if extra:
        out["new.md"] = "# New\n\n" + fence(bert, "Snow fell.") + "\n" + fence(gpt2, "Rain fell.")
    return out


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")


def check_one_counter(log: str, figures: int) -> list[tuple[int, int]]:
    """The counter's readings in ``log``, checked: one total, rising, ``[N/N]`` once and last."""
    assert not BAR_FRAGMENT.search(log), f"a progress bar fragment in the log:\n{log}"
    readings = [(int(done), int(total)) for done, total in COUNTER.findall(log)]
    assert readings, f"no progress counter in the log:\n{log}"
    assert {total for _, total in readings} == {figures}, readings
    assert [done for done, _ in readings] == sorted(done for done, _ in readings), readings
    assert readings[-1] == (figures, figures) and readings.count((figures, figures)) == 1, readings
    return readings


@pytest.fixture
def models(tiny_model_dir) -> tuple[Path, Path]:
    return tiny_model_dir("bert"), tiny_model_dir("gpt2")


def test_attndocs_build(models, tmp_path, capfd):
    src, cache = tmp_path / "src", str(tmp_path / "cache")
    write(src, pages(*models, extra=False))
    args = ["build", str(src), "-o", str(tmp_path / "out"), "--cache-dir", cache]
    assert main(args) == 0
    capfd.readouterr()
    write(src, pages(*models, extra=True))
    assert main(args) == 0
    mixed = capfd.readouterr()
    readings = check_one_counter(mixed.err + mixed.out, 7)
    assert readings[0] == (5, 7), "the first line counts what the cache served"
    assert "7 figure(s), 5 from the cache, 2 to compute" in mixed.err
    assert main(args) == 0
    cached = capfd.readouterr()
    assert check_one_counter(cached.err + cached.out, 7) == [(7, 7)]


def test_mkdocs_plugin(models, tmp_path, capfd):
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    root = tmp_path / "project"
    config = {"site_name": "Log", "plugins": [{"attndocs": {"cache_dir": str(tmp_path / "cache")}}]}
    (root).mkdir()
    (root / "mkdocs.yml").write_text(yaml.safe_dump(config), encoding="utf-8")

    def run() -> str:
        records: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
        logger = logging.getLogger("mkdocs")
        level, logger.level = logger.level, logging.INFO  # as `mkdocs build` sets it
        logger.addHandler(handler)
        try:
            build(load_config(str(root / "mkdocs.yml")))
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
        captured = capfd.readouterr()
        return "\n".join(records) + captured.err + captured.out

    write(root / "docs", pages(*models, extra=False))
    run()
    write(root / "docs", pages(*models, extra=True))
    assert check_one_counter(run(), 7)[0] == (5, 7)
    assert check_one_counter(run(), 7) == [(7, 7)]


def test_sphinx(models, tmp_path, capfd, monkeypatch):
    from sphinx.application import Sphinx
    from sphinx.util.docutils import docutils_namespace, patch_docutils

    # Under CI=true Sphinx redraws its own "reading sources" line with ESC[2K and CR: Sphinx's
    # progress, not a third-party bar in attndocs' log, and not there without colour.
    monkeypatch.setenv("NO_COLOR", "1")

    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(
        f'extensions = ["attndocs.sphinx_ext", "myst_parser"]\nattention_cache_dir = {str(tmp_path / "cache")!r}\n'
        'attention_override_admonition = True\n'
    )
    myst = {name: text.replace("```attention", "```{attention}") for name, text in pages(*models, extra=True).items()}

    def run(docs: dict[str, str], outdir: str) -> str:
        write(src, {**docs, "index.md": docs["index.md"] + "\n```{toctree}\n" + "\n".join(n[:-3] for n in docs if n != "index.md") + "\n```\n"})
        status = io.StringIO()
        with patch_docutils(src), docutils_namespace():
            app = Sphinx(str(src), str(src), str(tmp_path / outdir), str(tmp_path / outdir / ".doctrees"), "html", status=status, warning=status, freshenv=True)
            app.build()
        captured = capfd.readouterr()
        return re.sub(r"\x1b\[[0-9;]*m", "", status.getvalue()) + captured.err + captured.out

    run({k: v for k, v in myst.items() if k != "new.md"}, "first")
    (src / "new.md").unlink(missing_ok=True)
    log = run(myst, "second")
    assert check_one_counter(log, 7)[0] == (5, 7), log
    assert check_one_counter(run(myst, "third"), 7) == [(7, 7)]
