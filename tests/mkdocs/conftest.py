"""MkDocs test projects: a mkdocs.yml and pages written into a temporary folder, built in-process.

``mkdocs_project(pages, ...)`` writes a project and returns a :class:`Project`; its
``build()`` runs MkDocs' own build command the way ``mkdocs build`` does and returns the
attndocs plugin object (whose ``last`` holds the build's outcome). Figures use the tiny
random BERT from tests/tiny_models.py, so no real model is loaded.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parents[1] / "site"))

from site_probe import open_site, site_browser  # noqa: E402,F401  (open_site(root, page, via=...) -> SiteProbe)


@dataclass
class Project:
    root: Path
    config: dict[str, Any]
    log: list[logging.LogRecord] = field(default_factory=list)

    @property
    def docs(self) -> Path:
        return self.root / "docs"

    @property
    def site(self) -> Path:
        return self.root / "site"

    def write_config(self, text: str | None = None) -> None:
        (self.root / "mkdocs.yml").write_text(text if text is not None else yaml.safe_dump(self.config), encoding="utf-8")

    def build(self, *, strict: bool = False) -> Any:
        """``mkdocs build [--strict]``; raises mkdocs' Abort when the build aborts."""
        from mkdocs.commands.build import build
        from mkdocs.config import load_config

        config = load_config(str(self.root / "mkdocs.yml"), strict=strict)
        handler = _ListHandler(self.log)
        logger = logging.getLogger("mkdocs")
        logger.addHandler(handler)
        try:
            build(config)
        finally:
            logger.removeHandler(handler)
        return config.plugins["attndocs"]

    def warnings(self) -> list[str]:
        return [r.getMessage() for r in self.log if r.levelno >= logging.WARNING]

    def html(self, page: str) -> str:
        return (self.site / page).read_text(encoding="utf-8")


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record)


@pytest.fixture
def tiny_bert(tiny_model_dir: Callable[[str], Path]) -> Path:
    return tiny_model_dir("bert")


@pytest.fixture
def mkdocs_project(tmp_path: Path, tiny_bert: Path) -> Callable[..., Project]:
    def make(
        pages: dict[str, str],
        *,
        theme: str | dict = "mkdocs",
        superfences: bool = False,
        plugin: dict[str, Any] | None = None,
        **extra: Any,
    ) -> Project:
        root = tmp_path / "project"
        for name, text in pages.items():
            path = root / "docs" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        config: dict[str, Any] = {
            "site_name": "Test site",
            "theme": {"name": theme} if isinstance(theme, str) else theme,
            "markdown_extensions": ["admonition"] + (["pymdownx.superfences"] if superfences else ["fenced_code"]),
            # search too: the mkdocs theme's scripts expect its dialog to be there
            "plugins": ["search", {"attndocs": {"default_model": str(tiny_bert), **(plugin or {})}}],
            **extra,
        }
        project = Project(root, config)
        project.write_config()
        return project

    return make
