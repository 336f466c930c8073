"""Reading what a Sphinx test build printed and wrote."""

from __future__ import annotations

import re
from pathlib import Path

from sphinx.testing.util import SphinxTestApp

ROOTS = Path(__file__).resolve().parent.parent / "roots"


def summary_of(app: SphinxTestApp) -> dict[str, int]:
    """The numbers of the end-of-build line ``attndocs: N figure(s): a from the cache, ...``."""
    match = re.search(
        r"attndocs: (\d+) figure\(s\): (\d+) from the cache, (\d+) computed, (\d+) failed.*?(\d+) model load\(s\)",
        plain(app.status.getvalue()),
    )
    assert match, "no attndocs summary line in the build output:\n" + app.status.getvalue()
    figures, cached, computed, failed, loads = map(int, match.groups())
    return {"figures": figures, "cached": cached, "computed": computed, "failed": failed, "models_loaded": loads}


def plain(text: str) -> str:
    """``text`` without terminal control sequences.

    Under CI=true Sphinx's console also erases and rewrites progress lines (ESC[2K, \r),
    not only colours them.
    """
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text).replace("\r", "")


def warnings_of(app: SphinxTestApp) -> list[str]:
    return [line for line in plain(app.warning.getvalue()).splitlines() if line.strip()]


def read_output(outdir: Path, *, skip: tuple[str, ...] = (".doctrees", ".buildinfo")) -> dict[str, bytes]:
    """Every output file (relative path -> bytes), without Sphinx's own bookkeeping."""
    return {
        str(p.relative_to(outdir)): p.read_bytes()
        for p in sorted(outdir.rglob("*"))
        if p.is_file() and not any(part in skip for part in p.relative_to(outdir).parts)
    }
