"""Fixtures of the reliability suite: its models, clean reference records, one Chromium.

The suite runs in two sizes. `make test` runs the short form: a handful of randomised
trials, the pipeline-level races and rebuilds, the hostile corpus through every front-end
in this process. `make reliability` sets RELIABILITY_TRIALS=60 for the full form: >= 50
SIGKILL trials, more concurrent rounds, and the front-end builds raced and rebuilt as
separate processes (tests marked ``reliability_full``, deselected in the short form).
RELIABILITY_SEED replays a run's random choices.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from reliability_helpers import Figure, figure_set, full_form  # noqa: E402

from attndocs.options import SiteSettings  # noqa: E402
from attndocs.pipeline import Pipeline  # noqa: E402
from attndocs.record import AttentionRecord  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "reliability_full: part of the full reliability suite only (make reliability)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the suite; in the short form, deselect (not skip) what only the full form runs."""
    here = Path(__file__).parent
    keep, dropped = [], []
    for item in items:
        if Path(str(item.fspath)).parent == here:
            item.add_marker(pytest.mark.reliability)
            if item.get_closest_marker("reliability_full") and not full_form():
                dropped.append(item)
                continue
        keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(scope="session")
def rel_models(tiny_model_dir: Callable[[str], Path]) -> dict[str, Path]:
    """Tiny model folders of the families the builds use."""
    return {family: tiny_model_dir(family) for family in ("bert", "gpt2", "t5", "llama")}


@pytest.fixture(scope="session")
def rel_figures(rel_models: dict[str, Path]) -> list[Figure]:
    """Every figure of the suite's builds, the long minilm one included."""
    return figure_set(rel_models)


@pytest.fixture(scope="session")
def build_figures(rel_models: dict[str, Path]) -> list[Figure]:
    """The figures of the concurrent and reproducible builds: tiny models in the short form, all in the full form."""
    return figure_set(rel_models, minilm="long" if full_form() else "none")


@pytest.fixture(scope="session")
def references(rel_figures: list[Figure], tmp_path_factory: pytest.TempPathFactory) -> dict[str, AttentionRecord]:
    """Clean records of every figure, by cache key, computed once into a cache no one else touches."""
    cache = tmp_path_factory.mktemp("reference-cache")
    pipeline = Pipeline(SiteSettings.from_mapping({"cache_dir": str(cache)}))
    results = pipeline.run([f.options() for f in rel_figures], qk=[f.qk for f in rel_figures])
    failed = [str(r.error) for r in results if r.error is not None]
    assert not failed, failed
    return {r.record.key: r.record for r in results}


@pytest.fixture(scope="session")
def rng_seed() -> int:
    seed = int(os.environ.get("RELIABILITY_SEED") or random.SystemRandom().randrange(1 << 30))
    # Printed with -s, and shown in the failure report: RELIABILITY_SEED=<seed> replays it.
    print(f"\nreliability: RELIABILITY_SEED={seed}")
    return seed

# The browser is the suite's one `chromium` fixture (tests/conftest.py): Playwright allows one
# sync session per process, and `make test` runs every folder in one process.
