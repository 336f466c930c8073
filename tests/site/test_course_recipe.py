"""The publishing recipe of the course's page 05, followed literally in a fresh copy of example_site.

The commands come from the page's own code block, so the page cannot drift from what
works. The copy gets this repository's .gitignore, which excludes .cache/, as a reader's
own repository may: the recipe must commit the cache anyway. A clone of the commit then
builds in frozen mode in a process where torch and transformers cannot be imported.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from attndocs.fence import find_blocks

pytestmark = pytest.mark.real

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "example_site"
PAGE = EXAMPLE / "docs" / "06-writing-figures.md"
SECTION = "## Computing once, publishing anywhere"


def recipe() -> list[str]:
    """The command lines of the ```sh block in the page's publishing section, comments removed."""
    text = PAGE.read_text(encoding="utf-8")
    section = text[text.index(SECTION):]
    section = section[: section.find("\n## ", 1)] if "\n## " in section[1:] else section
    blocks = re.findall(r"^```sh\n(.*?)^```", section, flags=re.S | re.M)
    assert len(blocks) == 1, "the publishing section should hold exactly one sh block"
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in blocks[0].splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"`{command}` failed in {cwd} ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture
def shell_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(
        GIT_AUTHOR_NAME="Reader", GIT_AUTHOR_EMAIL="reader@example.org",
        GIT_COMMITTER_NAME="Reader", GIT_COMMITTER_EMAIL="reader@example.org",
        GIT_CONFIG_GLOBAL=str(tmp_path / "gitconfig"), GIT_CONFIG_NOSYSTEM="1",
    )
    env.pop("ATTNDOCS_CACHE_DIR", None)
    env.pop("ATTNDOCS_EXECUTION_MODE", None)
    (tmp_path / "gitconfig").write_text("[init]\n\tdefaultBranch = main\n", encoding="utf-8")
    return env


def test_the_recipe_commits_the_cache_and_a_clone_builds_frozen_without_torch(tmp_path, shell_env):
    commands = recipe()
    assert any(c.startswith("attndocs precompute") for c in commands)
    assert any("git add" in c and ".cache/attndocs" in c for c in commands)

    # `cp -r example_site my-course`: what a reader copies (a cache from `make site` included,
    # which only saves the models' run), with the .gitignore of a repository that excludes .cache/.
    site = tmp_path / "my-course"
    shutil.copytree(EXAMPLE, site, ignore=shutil.ignore_patterns("_build", "site"))
    shutil.copy(ROOT / ".gitignore", site / ".gitignore")
    assert ".cache/" in (site / ".gitignore").read_text(encoding="utf-8").splitlines()

    for command in commands:
        run(command, site, shell_env)

    cache = site / ".cache" / "attndocs"
    entries = {p.relative_to(site).as_posix() for p in cache.rglob("*.safetensors")}
    pages = list((EXAMPLE / "docs").glob("*.md"))
    figures = sum(len(find_blocks(p.read_text(encoding="utf-8"))) for p in pages)
    assert entries, "precompute left no cache entries"
    committed = set(run("git ls-tree -r --name-only HEAD", site, shell_env).stdout.split())
    assert entries <= committed, f"not committed: {sorted(entries - committed)}"
    assert {"mkdocs.yml", "attndocs.toml", "docs/index.md"} <= committed
    assert (site / "_build" / "site" / "index.html").is_file(), "the recipe's frozen build wrote no site"

    # A fresh clone of that commit holds only what was committed; it builds from the cache
    # alone, in a process that cannot import torch or transformers.
    clone = tmp_path / "clone"
    run(f"git clone -q {site} {clone}", tmp_path, shell_env)
    no_torch = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None; "
        "from attndocs.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", no_torch, "build", ".", "--mode", "frozen", "--strict", "-o", str(tmp_path / "out")],
        cwd=clone, env=shell_env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    built = sorted(p.name for p in (tmp_path / "out").glob("*.html"))
    assert built == sorted("index.html" if p.stem == "index" else p.stem + ".html" for p in pages)
    drawn = sum(len(re.findall(r'class="attndocs-figure[^"]*" id=', (tmp_path / "out" / name).read_text(encoding="utf-8"))) for name in built)
    assert drawn == figures, f"{drawn} figures in the frozen build, {figures} in the pages"
