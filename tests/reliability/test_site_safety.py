"""`attndocs build` never loses the previous site, never publishes what lies outside the pages.

What a user relies on, each checked on disk:

* a build that crashes, is interrupted (Ctrl-C, SIGKILL) or fills the disk leaves the
  previous site exactly as it was, with no half-written page and nothing left beside it,
  and the next build works without any cleaning by hand;
* a full disk is one line naming the cause and the file, never a traceback (a real tmpfs
  where this machine lets us mount one, and always a per-file size limit in a child
  process: EFBIG, ENOSPC and EDQUOT read the same);
* a cache inside the output folder, an output folder inside the pages: refused up front;
* symlinks out of the source folder (a private file, /proc/self/environ) are not followed,
  link cycles end, FIFOs are never opened: each is a warning naming the file;
* no published file names the build machine's folders.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import pytest
from reliability_helpers import PYTHON, REPO, worker_env

import attndocs.site as site_module
from attndocs.cli import main as cli_main
from attndocs.errors import OptionError, OutputError
from attndocs.site import build_site

TEMP_NAME = re.compile(r"\.attndocs-(new|old)-")  # what the builder's temporary folders are named with
ORIGINAL_WRITE = site_module._SiteWriter.write


def figure(model: Path, text: str = "The cat sat on the mat.", **options: str) -> str:
    lines = [f"model: {model}"] + [f"{k}: {v}" for k, v in options.items()]
    return "```attention\n" + "\n".join(lines) + f"\n\n{text}\n```\n"


def write_pages(src: Path, pages: dict[str, str | bytes]) -> Path:
    for name, content in pages.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return src


def snapshot(out: Path) -> dict[str, bytes]:
    """Every file of a site, hidden ones included (the marker, .nojekyll)."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def leftovers(out: Path) -> list[str]:
    """Temporary folders of builds, beside the output folder or inside it."""
    places = [out.parent] + ([out] if out.is_dir() else [])
    return [p.name for place in places for p in place.iterdir() if TEMP_NAME.search(p.name)]


def dead_pid() -> int:
    """The id of a process that has ended (what a build killed with SIGKILL leaves in its folders' names)."""
    proc = subprocess.Popen([PYTHON, "-c", "pass"])
    proc.wait()
    return proc.pid


def cli(args: list[str]) -> tuple[int, str]:
    err = StringIO()
    with redirect_stderr(err), redirect_stdout(StringIO()):
        code = cli_main(args)
    return code, err.getvalue()


@pytest.fixture(scope="module")
def bert(tiny_model_dir: Callable[[str], Path]) -> Path:
    return tiny_model_dir("bert")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One figure cache for the module: after the first build, figures come from it."""
    return tmp_path_factory.mktemp("site-safety-cache")


@pytest.fixture
def two_versions(tmp_path: Path, bert: Path, cache: Path) -> tuple[Path, Path, dict[str, bytes], Callable[[], None]]:
    """A source folder built once into ``out`` (the previous site), and a function that edits it.

    Returns (src, out, the previous site's files, make the second version).
    """
    src = write_pages(tmp_path / "src", {
        "index.md": "# Version one\n\n" + figure(bert),
        "guide/a.md": "# A\n\nFirst text.\n",
        "guide/picture.png": b"\x89PNG\r\n\x1a\n one",
    })
    out = tmp_path / "out"
    build_site(src, out, overrides={"cache_dir": str(cache)})
    before = snapshot(out)
    assert "index.html" in before and ".attndocs-build" in before

    def second_version() -> None:
        write_pages(src, {
            "index.md": "# Version two\n\n" + figure(bert),
            "guide/a.md": "# A\n\nSecond text.\n",
            "guide/b.md": "# B\n\nA new page.\n",
            "guide/picture.png": b"\x89PNG\r\n\x1a\n two",
        })

    return src, out, before, second_version


# -- a build that fails ------------------------------------------------------------------------
def _crash_after(count: int, error: BaseException) -> Callable[..., None]:
    original = ORIGINAL_WRITE
    calls = {"n": 0}

    def write(self: object, rel: object, data: object) -> None:
        calls["n"] += 1
        if calls["n"] > count:
            raise error
        original(self, rel, data)  # type: ignore[arg-type]

    return write


@pytest.mark.parametrize(
    "when",
    ["ctrl-c while computing", "crash after 3 files", "ctrl-c after 3 files", "crash while swapping"],
)
def test_a_failed_or_interrupted_build_leaves_the_previous_site_as_it_was(two_versions, cache, monkeypatch, when):
    src, out, before, second_version = two_versions
    second_version()
    expected: type[BaseException]
    if when == "ctrl-c while computing":
        def interrupted(self: object, pipeline: object) -> None:
            raise KeyboardInterrupt
        monkeypatch.setattr(site_module.FigureBatch, "compute", interrupted)
        expected = KeyboardInterrupt
    elif when == "crash while swapping":
        # The new site is complete, the previous one moved aside: the move in fails.
        real_rename = os.rename
        failed: list[object] = []

        def rename(a: object, b: object) -> None:
            if Path(str(b)) == out.resolve() and Path(str(a)).name.startswith(f".{out.name}.attndocs-new-") and not failed:
                failed.append(a)
                raise OSError(errno.EBUSY, "Device or resource busy")
            real_rename(a, b)  # type: ignore[arg-type]
        monkeypatch.setattr(site_module.os, "rename", rename)
        expected = OutputError
    else:
        error: BaseException = KeyboardInterrupt() if when.startswith("ctrl-c") else RuntimeError("a bug")
        monkeypatch.setattr(site_module._SiteWriter, "write", _crash_after(3, error))
        expected = type(error)
    with pytest.raises(expected) as info:
        build_site(src, out, overrides={"cache_dir": str(cache)})
    if expected is OutputError:
        assert str(info.value).startswith(f"cannot write {out.resolve()}: Device or resource busy")
    assert snapshot(out) == before, "the previous site changed"
    assert leftovers(out) == []
    monkeypatch.undo()
    build_site(src, out, overrides={"cache_dir": str(cache)})
    assert "Second text." in (out / "guide" / "a.html").read_text(encoding="utf-8")
    assert (out / "guide" / "b.html").is_file() and leftovers(out) == []


KILLED_BUILD = """
import sys, time
import attndocs.site as site
original = site._SiteWriter.write
count = 0
def write(self, rel, data):
    global count
    count += 1
    if count == 3:
        print("writing", flush=True)
        time.sleep(600)  # killed here, with two files of the new site written
    original(self, rel, data)
site._SiteWriter.write = write
site.build_site(sys.argv[1], sys.argv[2], overrides={"cache_dir": sys.argv[3]})
"""


def test_sigkill_mid_write_leaves_the_previous_site_and_the_next_build_cleans_up(two_versions, cache):
    src, out, before, second_version = two_versions
    second_version()
    proc = subprocess.Popen([PYTHON, "-c", KILLED_BUILD, str(src), str(out), str(cache)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=worker_env(), cwd=str(REPO))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "writing", proc.stderr.read() if proc.stderr else line
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert snapshot(out) == before
    assert len(leftovers(out)) == 1, "the killed build's folder is there (the next build removes it)"
    build_site(src, out, overrides={"cache_dir": str(cache)})
    assert leftovers(out) == []
    assert "Version two" in (out / "index.html").read_text(encoding="utf-8")


def test_a_build_killed_between_its_two_renames_gets_the_previous_site_back(two_versions, cache, monkeypatch):
    """SIGKILL right after the previous site was moved aside: the next build moves it back first."""
    src, out, before, second_version = two_versions
    aside = out.parent / f".{out.name}.attndocs-old-{dead_pid()}-{site_module._HOST}-0badc0de"
    os.rename(out, aside)
    second_version()
    monkeypatch.setattr(site_module._SiteWriter, "write", _crash_after(0, RuntimeError("a bug")))
    with pytest.raises(RuntimeError):
        build_site(src, out, overrides={"cache_dir": str(cache)})
    assert snapshot(out) == before and leftovers(out) == []


def test_a_folder_of_a_build_still_running_is_left_alone(two_versions, cache):
    src, out, _, _ = two_versions
    running = out.parent / f".{out.name}.attndocs-new-{os.getppid()}-{site_module._HOST}-12345678"
    running.mkdir()
    (running / "page.html").write_text("being written")
    build_site(src, out, overrides={"cache_dir": str(cache)})
    assert (running / "page.html").read_text() == "being written"


@pytest.mark.parametrize("why", ["a mount point", "its parent is not writable"])
def test_an_output_folder_that_cannot_be_renamed_is_replaced_entry_by_entry(two_versions, cache, monkeypatch, why):
    """A container's volume cannot be renamed, and a folder whose parent is read-only has no
    "beside": the new site is staged inside the folder, then moved in once complete."""
    src, out, before, second_version = two_versions
    if why == "a mount point":
        real_ismount = os.path.ismount
        monkeypatch.setattr(site_module.os.path, "ismount", lambda p: Path(p).resolve() == out.resolve() or real_ismount(p))
    else:  # root may write anywhere, so the refusal is played: only the folder beside out is refused
        real_mkdir = Path.mkdir

        def mkdir(self: Path, *args: object, **kwargs: object) -> None:
            if self.parent == out.parent and self.name.startswith(f".{out.name}.attndocs-new-"):
                raise PermissionError(13, "Permission denied", str(self))
            real_mkdir(self, *args, **kwargs)  # type: ignore[arg-type]
        monkeypatch.setattr(Path, "mkdir", mkdir)
    inode = out.stat().st_ino
    second_version()
    monkeypatch.setattr(site_module._SiteWriter, "write", _crash_after(3, RuntimeError("a bug")))
    with pytest.raises(RuntimeError):
        build_site(src, out, overrides={"cache_dir": str(cache)})
    assert snapshot(out) == before and leftovers(out) == []
    monkeypatch.setattr(site_module._SiteWriter, "write", ORIGINAL_WRITE)
    build_site(src, out, overrides={"cache_dir": str(cache)})
    assert out.stat().st_ino == inode, "the folder itself stayed"
    assert "Second text." in (out / "guide" / "a.html").read_text(encoding="utf-8")
    assert (out / "guide" / "b.html").is_file() and leftovers(out) == []


# -- a full disk ---------------------------------------------------------------------------------
def _assert_one_line_disk_error(code: int, err: str, out: Path) -> str:
    assert code == 1, err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("attndocs: error: no space left on the device while writing "), err
    assert str(out) in line, "the message names the file"
    return line


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[Path, str], Path]]:
    """``small_disk(folder, "2m")`` mounts a tmpfs of that size there; skips where mounting is not allowed."""
    mounted: list[Path] = []

    def mount(folder: Path, size: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the size-limit test covers a full disk")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.mark.parametrize("where", ["beside", "mount point"])
def test_a_full_disk_is_one_line_and_the_previous_site_stays(tmp_path, bert, cache, small_disk, where):
    """A real small file system: the output folder on it (beside: the temporary folder is on it
    too; mount point: the output folder is the file system's root, staged inside)."""
    src = write_pages(tmp_path / "src", {"index.md": "# One\n\n" + figure(bert), "notes.md": "# Notes\n"})
    disk = small_disk(tmp_path / "disk" if where == "beside" else tmp_path / "disk" / "site", "1m")
    out = disk / "site" if where == "beside" else disk
    args = ["build", str(src), "-o", str(out), "--cache-dir", str(cache)]
    assert cli(args)[0] == 0
    before = snapshot(out)
    free = os.statvfs(disk).f_bavail

    (src / "data.bin").write_bytes(os.urandom(1_500_000))  # more than the disk holds
    (src / "index.md").write_text("# Two\n\n" + figure(bert), encoding="utf-8")
    line = _assert_one_line_disk_error(*cli(args), out)
    assert "data.bin" in line
    assert snapshot(out) == before and leftovers(out) == []
    assert os.statvfs(disk).f_bavail == free, "the half-written site was removed"

    (src / "data.bin").unlink()
    code, err = cli(args)  # no cleaning by hand: the folder is still a site the builder replaces
    assert code == 0, err
    assert "Two" in (out / "index.html").read_text(encoding="utf-8")


SIZE_LIMITED_BUILD = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails with EFBIG instead of killing
limit = int(sys.argv.pop(1))
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from attndocs.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="POSIX file size limits")
def test_a_page_too_big_to_write_is_one_line_and_nothing_is_half_written(two_versions, cache):
    """A per-file size limit in a child process: the page is cut off mid-write, as on a full disk."""
    src, out, before, second_version = two_versions
    second_version()
    paragraph = "Attention lets every token look at every other token. " * 10 + "\n\n"
    (src / "guide" / "long.md").write_text("# Long\n\n" + paragraph * 1000, encoding="utf-8")  # ~550 kB of HTML
    command = [PYTHON, "-c", SIZE_LIMITED_BUILD, str(300_000), "build", str(src), "-o", str(out), "--cache-dir", str(cache)]
    done = subprocess.run(command, capture_output=True, text=True, env=worker_env(), cwd=str(REPO), timeout=120)
    line = _assert_one_line_disk_error(done.returncode, done.stderr, out)
    assert "long.html (file size limit reached)" in line
    assert snapshot(out) == before and leftovers(out) == []


# -- folders that may not be used --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("layout", "words"),
    [
        ("cache in output", "the cache folder .* is inside the output folder"),
        ("cache is output", "the cache folder .* is inside the output folder"),
        ("output in pages", "the output folder .* is inside the pages folder"),
        ("output is pages", "the output folder .* contains the pages themselves"),
        ("output holds pages", "the output folder .* contains the pages themselves"),
        ("cache is pages", "the cache folder .* is the pages folder"),
    ],
)
def test_folders_that_would_lose_or_publish_files_are_refused_before_anything_runs(two_versions, tmp_path, layout, words):
    src, out, before, _ = two_versions
    choices = {
        "cache in output": (out, out / "cache"),
        "cache is output": (out, out),
        "output in pages": (src / "site", tmp_path / "other-cache"),
        "output is pages": (src, tmp_path / "other-cache"),
        "output holds pages": (tmp_path, tmp_path / "other-cache"),
        "cache is pages": (out, src),
    }
    target, cache_dir = choices[layout]
    code, err = cli(["build", str(src), "-o", str(target), "--cache-dir", str(cache_dir)])
    assert code == 1 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attndocs: error: "), err
    assert re.search(words, lines[0]), lines[0]
    assert snapshot(out) == before, "nothing was removed"
    assert not (tmp_path / "other-cache").exists() and not (out / "cache").exists(), "nothing was computed"
    assert not (src / "site").exists()


def test_a_folder_that_is_not_a_site_is_never_replaced(tmp_path, bert, cache):
    src = write_pages(tmp_path / "src", {"index.md": "# Hi\n"})
    precious = write_pages(tmp_path / "precious", {"thesis.tex": "years of work"})
    with pytest.raises(OptionError, match="not written by attndocs build"):
        build_site(src, precious, overrides={"cache_dir": str(cache)})
    assert snapshot(precious) == {"thesis.tex": b"years of work"} and leftovers(precious) == []


# -- what is published -------------------------------------------------------------------------------
def _build_in_child(src: Path, out: Path, cache: Path, env: dict[str, str] | None = None, timeout: float = 120) -> tuple[int, str]:
    """`attndocs build` as its own process (its /proc/self/environ is its own environment)."""
    command = [PYTHON, "-m", "attndocs.cli", "build", str(src), "-o", str(out), "--cache-dir", str(cache)]
    done = subprocess.run(command, capture_output=True, text=True, env=worker_env(env), cwd=str(REPO), timeout=timeout)
    return done.returncode, done.stderr


def _published_bytes(out: Path) -> bytes:
    return b"\n".join(snapshot(out).values())


def test_symlinks_out_of_the_source_folder_are_not_followed(tmp_path, bert, cache):
    secret = f"attndocs-secret-{uuid.uuid4().hex}"
    private = write_pages(tmp_path / "private", {"key.txt": f"token={secret}\n", "notes.md": f"# Private\n\n{secret}\n"})
    src = write_pages(tmp_path / "src", {"index.md": "# Home\n\n" + figure(bert), "real/page.md": "# Real page\n"})
    links = {
        "environ.txt": Path("/proc/self/environ"),  # the build's environment, its secret included
        "key.txt": private / "key.txt",
        "private.md": private / "notes.md",
        "private-folder": private,
        "escape.txt": Path("../private/key.txt"),  # relative, climbing out
        "alias.md": Path("real/page.md"),  # inside: followed
        "real-again": Path("real"),  # inside: followed
        "nothing.md": Path("missing.md"),
    }
    for name, target in links.items():
        (src / name).symlink_to(target)
    code, err = _build_in_child(src, tmp_path / "out", cache, env={"ATTNDOCS_TEST_SECRET": secret})
    assert code == 0, err
    published = _published_bytes(tmp_path / "out")
    assert secret.encode() not in published, "a secret from outside the source folder was published"
    assert b"ATTNDOCS_TEST_SECRET" not in published
    for name in ("environ.txt", "key.txt", "private.md", "private-folder", "escape.txt"):
        assert f"attndocs: warning: {name}: symlink points outside the source folder; not followed" in err, err
        assert not (tmp_path / "out" / name).exists() and not (tmp_path / "out" / name.replace(".md", ".html")).exists()
    assert "attndocs: warning: nothing.md: symlink points to nothing" in err
    assert "Real page" in (tmp_path / "out" / "alias.html").read_text(encoding="utf-8"), "a link inside is followed"
    assert (tmp_path / "out" / "real-again" / "page.html").is_file()
    assert "Traceback" not in err


def test_link_cycles_end_with_a_warning_and_fifos_are_never_opened(tmp_path, cache):
    src = write_pages(tmp_path / "src", {"index.md": "# Home\n", "sub/page.md": "# Sub\n"})
    (src / "loop-a").symlink_to(".")
    (src / "loop-b").symlink_to(".")
    (src / "sub" / "up").symlink_to("..")
    (src / "alias-1").symlink_to("sub")  # a second name for a folder inside: followed once
    (src / "alias-2").symlink_to("sub")
    (src / "self.md").symlink_to("self.md")
    os.mkfifo(src / "pipe.md")  # reading it would wait forever for a writer
    os.mkfifo(src / "pipe.txt")
    started = time.monotonic()
    code, err = _build_in_child(src, tmp_path / "out", cache, timeout=60)
    assert code == 0, err
    assert time.monotonic() - started < 30
    for name in ("loop-a", "loop-b", "sub/up", "alias-1/up"):
        assert f"attndocs: warning: {name}: symlink to a folder that contains it (a link cycle); not followed" in err, err
    assert "attndocs: warning: alias-2: symlink to a folder already published through another link; not followed" in err
    assert "attndocs: warning: self.md: symlink points to nothing (or to a loop of links)" in err
    for name in ("pipe.md", "pipe.txt"):
        assert f"attndocs: warning: {name}: not a regular file (a device, FIFO or socket); not published" in err
    pages = sorted(p for p in snapshot(tmp_path / "out") if p.endswith(".html"))
    assert pages == ["alias-1/index.html", "alias-1/page.html", "index.html", "sub/index.html", "sub/page.html"]


def _machine_paths_in(out: Path, paths: set[str]) -> list[str]:
    return [f"{name} names {path}" for name, data in snapshot(out).items() for path in paths if path.encode() in data]


def test_no_published_file_names_a_folder_of_the_build_machine(tmp_path, bert, cache):
    """Figures from a local model folder, placeholders naming model folders, links, files: all relative."""
    src = tmp_path / "src"
    (src / "models" / "broken").mkdir(parents=True)
    (src / "models" / "broken" / "config.json").write_text("{}")
    shutil.copytree(bert, src / "models" / "tiny")  # beside the pages, named relative to attndocs.toml
    write_pages(src, {
        "docs/index.md": "# Home\n\nSee [the guide](guide/index.md) and [the data](guide/data.csv).\n",
        "docs/guide/index.md": "# Guide\n\n" + figure(Path("./models/tiny")) + figure(Path("./models/tiny"), view="neuron")
        + figure(Path("./models/broken")) + figure(Path("./models/tiny"), layer="99"),
        "docs/guide/data.csv": "a,b\n1,2\n",
    })
    (src / "attndocs.toml").write_text(f'title = "Course"\ndocs_dir = "docs"\ncache_dir = "{cache}"\n', encoding="utf-8")
    out = tmp_path / "out"
    report = build_site(src, out)
    assert report.failed == 2 and len(report.problems) == 2, report.problems
    assert report.batch is not None and report.batch.cached + report.batch.computed == 2
    paths = {str(tmp_path), str(tmp_path.resolve()), str(Path.home()), str(cache), str(bert)}
    assert _machine_paths_in(out, paths) == []


class _FailingPipeline:
    """Every figure fails with a reason that names folders of this machine, as cache and model errors do."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons

    def run(self, figures: list, qk: list | None = None, *, counts: list | None = None) -> list:  # as Pipeline.run
        from attndocs.errors import CacheError
        from attndocs.pipeline import FigureResult

        return [FigureResult(options, error=CacheError(self.reasons[i % len(self.reasons)])) for i, options in enumerate(figures)]


def test_placeholders_never_publish_the_folders_their_reasons_name(tmp_path, cache):
    src = write_pages(tmp_path / "src", {"docs/index.md": "# Home\n\n" + "".join(figure(Path(f"m{i}"), text=f"Text {i}.") for i in range(4))})
    (src / "attndocs.toml").write_text(f'docs_dir = "docs"\ncache_dir = "{cache}"\n', encoding="utf-8")
    reasons = [
        f"damaged cache entry 0123abcd (bad header): {cache}/01/0123abcd.safetensors",
        f"cannot write to cache folder {cache}: Permission denied",
        f"cannot load model '{src}/models/m1': no config.json",
        f"cannot load model '{Path.home()}/models/m2': no config.json",
    ]
    out = tmp_path / "out"
    report = build_site(src, out, pipeline=_FailingPipeline(reasons))  # type: ignore[arg-type]
    assert report.failed == 4
    assert any(str(cache) in str(p) for p in report.problems), "the build log keeps the full paths"
    page = (out / "index.html").read_text(encoding="utf-8")
    assert _machine_paths_in(out, {str(tmp_path), str(Path.home()), str(cache)}) == []
    for said in ("[cache]/01/0123abcd.safetensors", "cache folder [cache]:", "&#39;models/m1&#39;", "&#39;~/models/m2&#39;"):
        assert said in page, said
