"""`attndocs build` test sites: a folder of Markdown pages in a temporary folder, built in-process."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from site_probe import open_site, site_browser  # noqa: E402,F401  (open_site(root, page, via=...) -> SiteProbe)


@pytest.fixture
def tiny_bert(tiny_model_dir: Callable[[str], Path]) -> Path:
    return tiny_model_dir("bert")


@pytest.fixture
def markdown_site(tmp_path: Path) -> Callable[..., Path]:
    """``markdown_site({"index.md": "...", "guide/a.md": "..."}, toml=None)`` -> the source folder."""

    def make(pages: dict[str, str | bytes], *, toml: str | None = None, folder: str = "src") -> Path:
        root = tmp_path / folder
        for name, content in pages.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
        if toml is not None:
            (root / "attndocs.toml").write_text(toml, encoding="utf-8")
        return root

    return make
