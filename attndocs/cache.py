"""Content-addressed store of AttentionRecords on disk, and the `attndocs cache` commands.

Layout: ``<root>/<key[:2]>/<key>.safetensors``, one record file per entry. The guarantees
a documentation build relies on, including builds killed with SIGKILL and two builds
sharing one folder:

* A file appears under its final name only complete: it is written to a temporary file
  in the same folder (unique per writer), fsynced, then ``os.replace``-d into place.
  Readers never see a partial file; two writers of one key both succeed and the last
  complete file wins (both hold the same content, the key being a hash of the inputs).
* Every read is bounded and verified: the file is opened without following symbolic
  links, must be a regular file exactly as long as its header declares, and must pass
  the tensor and metadata checksums, the key, format and schema, the record's own
  consistency (AttentionRecord.check: shapes, token counts, sides, value ranges, query/key
  vectors) and, where stored or asked for, the inputs its key was computed from. A damaged
  entry is removed before :class:`DamagedEntryError` is raised, so it is never served.
* Temporary files a killed writer left behind are invisible to reads and listings, and
  are removed by ``prune`` / ``clear`` / ``verify --fix`` once no live writer can own them.
* An entry holds what the views need at the precision they show (record.py's cache form,
  schema 2: attention as 8-bit square-root codes, query/key as float32, keys once per
  key/value head), two to four times smaller than the float32 public record. An entry written
  by an older attndocs (schema 1, float32) is still found under its key: it is verified,
  converted to that precision (what a new entry would give) and rewritten in the compact
  form where the cache is writable. The first one read in a process is reported as one
  line on the ``attndocs`` logger (not a build warning: nothing is wrong with the figure);
  ``converted`` lists them all.
* Removal touches only what attndocs wrote, so pointing the cache at the wrong folder
  cannot delete someone's files: a file counts as an entry only under a key's exact name
  (``<2 hex>/<64 hex>.safetensors``), and then only when its header says it is an attndocs
  record, or when no header can be read at all (a damaged entry: only attndocs names files
  that way). Any other file, including a safetensors file of another program under such a
  name, is left alone and mentioned, and a folder is only removed when a ``clear`` emptied
  it of entries.

This module imports numpy and safetensors (through record.py), never torch or
transformers: a build whose figures are all cached must not load them.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import logging
import os
import re
import secrets
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from .errors import CacheError, DamagedEntryError, OptionError
from .processes import local_process_ended
from .record import (
    CACHE_SCHEMA_VERSION,
    FORMAT_NAME,
    AttentionRecord,
    RecordFile,
    RecordFormatError,
    metadata_checksum,
    read_metadata_bytes,
    read_record_file,
)
from .text import escape_text

__all__ = [
    "LOCAL_FOLDER",
    "CacheEntry",
    "RecordCache",
    "VerifyReport",
    "add_cache_commands",
    "cache_key",
    "default_cache_dir",
    "old_format_message",
]

log = logging.getLogger("attndocs")

SUFFIX = ".safetensors"
# What a key's parts mean. Not the storage schema of an entry: when only the storage changes
# (schema 1 float32 -> schema 2 compact), old entries keep their keys, so they are found and
# converted instead of silently becoming misses that need the model again.
KEY_SCHEMA = 1
# The storage schema of entries written before the compact form: the float32 form that the
# public record (record.SCHEMA_VERSION) still has.
OLD_SCHEMA = 1
# Written by the cache on top of record.py's tensor checksum, which does not cover the
# metadata: without it a flipped byte inside the text or the tokens would be served.
METADATA_CHECKSUM = "metadata_checksum"
# A temporary file older than this is stale even when its writer cannot be checked
# (another host on a shared folder); a real write takes seconds.
STALE_TEMP_S = 3600.0
# What a key's parts name as the model of a local folder: the folder is known by its
# content hash (the revision), not by where it lies.
LOCAL_FOLDER = "local folder"
# A key is a sha256 in lower-case hex, as cache_key() gives it: safe as a file name on
# every file system, unable to climb out of the root, and a name no other program gives
# a file in a folder named by its first two characters (what makes an entry ours).
_KEY_RE = re.compile(r"[0-9a-f]{64}")
_SHARD_RE = re.compile(r"[0-9a-f]{2}")
_TEMP_RE = re.compile(r"\.(?P<key>[0-9a-f]{64})\.(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-f]+\.tmp")
_WRITABLE_HINT = "set attention_cache_dir / --cache-dir to a writable folder"
_READABLE_HINT = "make it readable, or set attention_cache_dir / --cache-dir to another folder"
# Cache folders whose old-format entries this process has mentioned: one line per build,
# however many entries and however many RecordCache objects a front-end makes (Sphinx
# makes one per lookup of a page it did not read again).
_TOLD_OLD_FORMAT: set[str] = set()
_HOST = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def cache_key(parts: Mapping[str, Any]) -> str:
    """The cache key of one extraction: sha256 of the canonical JSON of ``parts``.

    ``parts`` holds everything that changes the record (model id, resolved revision or
    content hash, text, text_b, target, tokenizer options, dtype, extraction options).
    The key schema is added as ``"schema"`` (overriding any given): it changes only when the
    same parts must stop finding old entries, not when the storage form does. Key order, at
    any depth, does not matter.
    """
    payload = dict(parts)
    payload["schema"] = KEY_SCHEMA
    try:
        text = _canonical_json(payload)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cache key parts must be plain JSON values: {exc}") from exc
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def default_cache_dir() -> Path:
    """``$ATTNDOCS_CACHE_DIR``, else ``./.cache/attndocs`` (what the CLI uses)."""
    return Path(os.environ.get("ATTNDOCS_CACHE_DIR") or Path.cwd() / ".cache" / "attndocs")


@dataclass
class CacheEntry:
    """One cache entry as its header describes it (tensors are not read).

    ``mtime`` is the last use: a hit touches it, so pruning by age or size removes the
    least recently used entries. ``problem`` is set, and the descriptive fields left
    empty, when the header cannot be read.
    """

    key: str
    path: Path
    size: int
    mtime: float
    model_id: str = ""
    revision: str = ""
    model_type: str = ""
    kind: str = ""
    sections: tuple[str, ...] = ()
    tokens: int = 0
    side_tokens: dict[str, int] = field(default_factory=dict)
    text: str = ""
    text_b: str | None = None
    target: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    has_qk: bool = False
    schema: str = ""
    problem: str | None = None

    @property
    def damaged(self) -> bool:
        return self.problem is not None

    @property
    def old_format(self) -> bool:
        """Written by an older attndocs in the float32 form: served after conversion, larger on disk."""
        return not self.damaged and self.schema == str(OLD_SCHEMA)

    @property
    def preview(self) -> str:
        """The start of the text, one line, control and invisible characters escaped."""
        return _preview(self.text)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "path": str(self.path),
            "size": self.size,
            "last_used": self.mtime,
            "last_used_iso": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.mtime)),
            "model_id": self.model_id,
            "revision": self.revision,
            "model_type": self.model_type,
            "kind": self.kind,
            "sections": list(self.sections),
            "tokens": self.tokens,
            "side_tokens": self.side_tokens,
            "text": self.text,
            "text_b": self.text_b,
            "target": self.target,
            "versions": self.versions,
            "has_qk": self.has_qk,
            "schema": self.schema,
            "old_format": self.old_format,
            "damaged": self.damaged,
            "problem": self.problem,
        }


class _Damaged(Exception):
    """An entry's bytes are not a valid record for its key (internal; becomes CacheError)."""


@dataclass
class VerifyReport:
    """What :meth:`RecordCache.verify_all` found: damaged entries, and entries of an older format.

    An old-format entry is not damaged: it is read and converted, never served wrong.
    """

    damaged: list[tuple[Path, str]] = field(default_factory=list)
    old: list[Path] = field(default_factory=list)


class RecordCache:
    """The on-disk record cache rooted at ``root``. Creating one does not touch the disk."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        # Entries of an older format that get() converted, and whether each was rewritten
        # in the compact form (not where the cache is read-only), in the order read.
        self.converted: list[tuple[str, bool]] = []

    def __repr__(self) -> str:
        return f"RecordCache({str(self.root)!r})"

    # -- paths --------------------------------------------------------------------------
    def path_for(self, key: str) -> Path:
        """Where the entry for ``key`` lives: ``root / key[:2] / f"{key}.safetensors"``."""
        _check_key(key)
        return self.root / key[:2] / f"{key}{SUFFIX}"

    # -- read -----------------------------------------------------------------------------
    def get(self, key: str, parts: Mapping[str, Any] | None = None) -> AttentionRecord | None:
        """The verified record for ``key``, or None on a miss.

        ``parts``, when given, are what the caller computed ``key`` from (cache_key's
        argument): the record must have been made from those inputs (model, revision,
        text, text B, target), not merely be filed under their key.

        A damaged entry is removed, then :class:`DamagedEntryError` is raised naming it, so
        the caller can warn and recompute. It is never served: on a read-only cache it
        stays in place and raises again on every read. A file attndocs did not write is
        never served and never removed.
        """
        path = self.path_for(key)
        if parts is not None and cache_key(parts) != key:
            raise ValueError(f"the key parts given do not give the key {key[:12]}")
        try:
            opened = _open_entry(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._read_error(exc, path) from exc
        if opened.state == "foreign":
            raise DamagedEntryError(
                f"the cache entry {key[:12]} is {opened.problem}, not written by attndocs; it is left in place and not used: {path}",
                "move it out of the cache folder",
            )
        if opened.state == "damaged":
            self._damaged(key, path, opened.problem or "", opened.identity)
        assert opened.found is not None
        try:
            record, schema = _decode(opened.found.data, key, parts)
        except _Damaged as exc:
            self._damaged(key, path, str(exc), opened.identity)
        if schema == str(OLD_SCHEMA):
            # Verified in full above; converted, it is exactly what a new entry would hold.
            record = record.as_cached()
            self.converted.append((key, self._rewrite(record)))
            if str(self.root) not in _TOLD_OLD_FORMAT:
                _TOLD_OLD_FORMAT.add(str(self.root))
                log.warning("attndocs: %s", old_format_message(key, self.converted[-1][1]))
            return record
        try:
            # Last use, for least-recently-used pruning. A read-only cache (committed,
            # or mounted read-only in CI) still serves its entries.
            os.utime(path)
        except OSError:
            pass
        return record

    def _rewrite(self, record: AttentionRecord) -> bool:
        """Store a converted old-format entry in the compact form; False where the cache is read-only."""
        try:
            self.put(record)
        except (CacheError, OSError, ValueError):
            return False  # still served: the old file is correct, only larger
        return True

    def _damaged(self, key: str, path: Path, problem: str, identity: tuple[int, int] | None) -> NoReturn:
        if identity is not None and self._discard(path, identity):
            # The pipeline appends "; it is not used and the figure is recomputed".
            raise DamagedEntryError(f"damaged cache entry {key[:12]} ({problem}): {path}")
        raise DamagedEntryError(
            f"cache entry {key[:12]} is damaged ({problem}) and cannot be removed: {path}",
            "run `attndocs cache verify --fix` where the cache is writable",
        )

    # -- write ----------------------------------------------------------------------------
    def put(self, record: AttentionRecord) -> Path:
        """Store ``record`` under ``record.key`` atomically and return the entry's path.

        The entry holds the record at the cache's precision (AttentionRecord.to_cache_bytes);
        a later get() returns what ``record.as_cached()`` returns now. A record that
        contradicts itself (AttentionRecord.check) is refused with :class:`CacheError`:
        every read would refuse it again.
        """
        if not isinstance(record.key, str) or not record.key:
            raise ValueError("record.key must be set (use cache_key()) before the record is cached")
        path = self.path_for(record.key)
        if record.key_parts is not None and cache_key(record.key_parts) != record.key:
            raise ValueError(f"record.key_parts do not give record.key {record.key[:12]}")
        try:
            record.check()
        except RecordFormatError as exc:
            raise CacheError(f"the record for {record.key[:12]} is not cached: {exc}") from None
        data = _encode(record)
        # A concurrent `clear` may remove the shard folder or our temporary file between
        # two steps; writing again is correct, since nothing partial is ever visible.
        for attempt in range(3):
            try:
                self._write(path, data)
                return path
            except FileNotFoundError:
                if attempt == 2:
                    raise CacheError(
                        f"could not write cache entry {path}: its folder kept disappearing",
                        "is another process clearing the cache?",
                    ) from None
            except OSError as exc:
                raise self._write_error(exc, path) from exc
        raise AssertionError("unreachable")

    def _write(self, path: Path, data: bytes) -> None:
        self._make_folder(path.parent)
        if os.path.lexists(path):
            self._check_replaceable(path)
        temp = path.with_name(_temp_name(path.stem))
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        # 0o666 minus the umask, like any file the user creates (mkstemp's 0o600 would
        # make a shared cache unreadable to the rest of the group).
        fd = os.open(temp, flags, 0o666)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            try:
                os.unlink(temp)
            except OSError:
                pass  # already gone (a concurrent clear), or the original error says why
            raise
        _fsync_dir(path.parent)

    def _make_folder(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except FileNotFoundError:
            # clear() never removes the root, so where the nearest existing folder is still
            # there, no other process took the way away: this file system makes no folders
            # (/proc, /sys), whatever errno it says it with.
            existing = next((p for p in folder.parents if os.path.lexists(p)), None)
            if existing is None or not existing.is_dir():
                raise
            raise CacheError(
                f"cannot write to cache folder {self.root}: {existing} is not a writable folder (no folder can be created in it)",
                _WRITABLE_HINT,
            ) from None

    def _check_replaceable(self, path: Path) -> None:
        """Refuse to replace what lies at an entry's path unless attndocs wrote it."""
        try:
            opened = _open_entry(path, header_only=True)
        except OSError:
            return  # gone meanwhile, or unreadable: os.replace says what is wrong
        if opened.state == "foreign":
            raise CacheError(
                f"cannot write cache entry {path}: {opened.problem}, not written by attndocs, is in its place",
                "move it out of the cache folder",
            )

    # -- listing ----------------------------------------------------------------------------
    def entries(self) -> Iterator[CacheEntry]:
        """Every entry, described from its header alone (cheap); damaged ones flagged.

        Files under an entry's name that attndocs did not write are not entries (see
        :meth:`strangers`).
        """
        for path in self._entry_paths():
            try:
                opened = _open_entry(path, header_only=True)
            except FileNotFoundError:
                continue  # removed meanwhile by another process
            except OSError as exc:
                if isinstance(exc, PermissionError):
                    raise self._read_error(exc, path) from exc
                opened = _Opened("damaged", problem=f"cannot be read ({exc.strerror or exc})")
            if opened.state == "foreign":
                continue
            if opened.state == "damaged":
                try:
                    status = os.lstat(path)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise self._read_error(exc, path) from exc
                yield CacheEntry(path.stem, path, status.st_size, status.st_mtime, problem=f"unreadable ({opened.problem})")
                continue
            assert opened.found is not None
            yield _entry_from_meta(path, opened.found.stat, opened.found.meta)

    def verify(self) -> list[tuple[Path, str]]:
        """Read and verify every entry in full; the (path, problem) of each damaged one.

        Files attndocs did not write are looked at no further than their header and never
        reported as damaged, so never removed (:meth:`strangers` lists them). Entries of an
        older format are not damaged (:meth:`verify_all` lists them).
        """
        return self.verify_all().damaged

    def verify_all(self) -> VerifyReport:
        """Read and verify every entry in full: the damaged ones, and those of an older format."""
        report = VerifyReport()
        problems = report.damaged
        for path in self._entry_paths():
            try:
                opened = _open_entry(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                problems.append((path, f"cannot be read ({exc.strerror or exc})"))
                continue
            if opened.state == "foreign":
                continue
            if opened.state == "damaged":
                problems.append((path, opened.problem or "damaged"))
                continue
            assert opened.found is not None
            try:
                _, schema = _decode(opened.found.data, path.stem)
            except _Damaged as exc:
                problems.append((path, str(exc)))
                continue
            if schema == str(OLD_SCHEMA):
                report.old.append(path)
        return report

    def upgrade(self, paths: list[Path]) -> list[tuple[Path, int, int]]:
        """Rewrite old-format entries in the compact form: (path, bytes before, bytes after) of each.

        Only entries of this cache that read back as good old-format records are rewritten;
        the rest are left as they are (``verify`` reports them).
        """
        done = []
        for path in paths:
            if not (path.parent.parent == self.root and _is_entry_name(path.name, path.parent.name)):
                continue
            try:
                opened = _open_entry(path)
                if opened.state != "ok" or opened.found is None:
                    continue
                record, schema = _decode(opened.found.data, path.stem)
            except (OSError, _Damaged):
                continue
            if schema != str(OLD_SCHEMA):
                continue
            before = opened.found.stat.st_size
            self.put(record.as_cached())
            done.append((path, before, path.stat().st_size))
        return done

    def strangers(self) -> list[tuple[Path, str]]:
        """What lies in the cache folder that attndocs did not write, and why it is not taken for an entry.

        Only the root and its two-letter folders are looked at (a cache goes no deeper).
        The maintenance commands mention these, and leave them alone.
        """
        found: list[tuple[Path, str]] = []
        try:
            with os.scandir(self.root) as it:
                top = sorted(it, key=lambda e: e.name)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise self._read_error(exc, self.root) from exc
        for item in top:
            if not (_SHARD_RE.fullmatch(item.name) and item.is_dir(follow_symlinks=False)):
                found.append((Path(item.path), "not named like a cache folder"))
                continue
            for inner in self._shard_files(Path(item.path)):
                path = Path(inner.path)
                if _TEMP_RE.fullmatch(inner.name):
                    continue
                if not _is_entry_name(inner.name, item.name):
                    found.append((path, "not named like a cache entry"))
                    continue
                try:
                    opened = _open_entry(path, header_only=True)
                except OSError:
                    continue  # gone, or unreadable: an entry by its name, which verify reports
                if opened.state == "foreign":
                    found.append((path, opened.problem or "not an attndocs record"))
        return found

    def find(self, prefix: str) -> Path:
        """The entry whose key starts with ``prefix`` (at least 6 characters, unique)."""
        prefix = prefix.strip().lower()
        if not re.fullmatch(r"[0-9a-z]+", prefix):
            raise CacheError(f"{prefix!r} is not a cache key", "`attndocs cache ls` lists the keys")
        if len(prefix) < 6:
            raise CacheError(f"key prefix {prefix!r} is too short", "give at least 6 characters of the key")
        matches = [path for path in self._entry_paths(shard=prefix[:2]) if path.stem.startswith(prefix)]
        if not matches:
            raise CacheError(f"no cache entry has a key starting with {prefix!r} in {self.root}", "`attndocs cache ls` lists the keys")
        if len(matches) > 1:
            shown = ", ".join(p.stem[:16] for p in matches[:4])
            raise CacheError(f"key prefix {prefix!r} matches {len(matches)} entries ({shown})", "give more characters of the key")
        return matches[0]

    def read_entry(self, path: Path) -> tuple[AttentionRecord, dict[str, str]]:
        """Record and raw metadata of one entry, verified, without removing or touching it."""
        try:
            opened = _open_entry(path)
        except OSError as exc:
            raise self._read_error(exc, path) from exc
        if opened.state == "foreign":
            raise CacheError(f"{path} is {opened.problem}, not written by attndocs", "attndocs leaves it alone")
        try:
            if opened.state == "damaged":
                raise _Damaged(opened.problem or "damaged")
            assert opened.found is not None
            return _decode(opened.found.data, path.stem)[0], opened.found.meta
        except _Damaged as exc:
            raise CacheError(f"cache entry {path} is damaged: {exc}", "`attndocs cache verify --fix` removes it") from None

    # -- removal -------------------------------------------------------------------------
    def prune(
        self,
        *,
        older_than_s: float | None = None,
        model: str | None = None,
        max_bytes: int | None = None,
        dry_run: bool = False,
    ) -> list[Path]:
        """Remove entries; returns the paths removed (or that would be, with ``dry_run``).

        ``older_than_s`` and ``model`` select entries (both must match when both are
        given). ``max_bytes`` then removes the least recently used of the rest until the
        cache fits. Stale temporary files of killed writers are removed too (and listed).
        """
        return [path for path, _ in self._prune(older_than_s=older_than_s, model=model, max_bytes=max_bytes, dry_run=dry_run)]

    def _prune(
        self,
        *,
        older_than_s: float | None,
        model: str | None,
        max_bytes: int | None,
        dry_run: bool,
    ) -> list[tuple[Path, int]]:
        now = time.time()
        entries = list(self.entries())
        chosen: list[CacheEntry] = []
        kept: list[CacheEntry] = []
        filtering = older_than_s is not None or model is not None
        for entry in entries:
            selected = filtering
            if older_than_s is not None and not now - entry.mtime > older_than_s:
                selected = False
            if model is not None and entry.model_id != model:
                selected = False
            (chosen if selected else kept).append(entry)
        if max_bytes is not None:
            total = sum(e.size for e in kept)
            for entry in sorted(kept, key=lambda e: e.mtime):
                if total <= max_bytes:
                    break
                chosen.append(entry)
                total -= entry.size
        removed = [(e.path, e.size) for e in chosen]
        removed += [(p, s) for p, s in self._stray_files(stale_only=True)]
        if not dry_run:
            for path, _ in removed:
                _unlink_quietly(path)
        return removed

    def remove_damaged(self, problems: list[tuple[Path, str]]) -> list[Path]:
        """Remove the damaged entries ``verify`` found and stale temporary files."""
        removed = []
        for path, _ in problems:
            # Only an entry's name inside this cache: whatever list is handed in, nothing
            # else is ever removed.
            if path.parent.parent == self.root and _is_entry_name(path.name, path.parent.name) and _unlink_quietly(path):
                removed.append(path)
        for path, _ in self._stray_files(stale_only=True):
            if _unlink_quietly(path):
                removed.append(path)
        return removed

    def clear(self) -> int:
        """Remove every entry and temporary file; returns how many entries were removed.

        Files attndocs did not write stay (:meth:`strangers`), and so does every folder
        this clear did not empty of entries: an empty ``db/`` or ``js/`` is someone's.
        """
        count = 0
        emptied: set[Path] = set()
        for entry in list(self.entries()):
            if _unlink_quietly(entry.path):
                count += 1
                emptied.add(entry.path.parent)
        # All temporary files: a writer that loses one mid-put simply writes again.
        for path, _ in self._stray_files(stale_only=False):
            if _unlink_quietly(path):
                emptied.add(path.parent)
        for shard in sorted(emptied):
            try:
                shard.rmdir()
            except OSError:
                pass  # not empty: a concurrent put, or files that are not ours
        return count

    # -- internals --------------------------------------------------------------------------
    def _shards(self, only: str | None = None) -> list[Path]:
        try:
            if only is not None:
                shard = self.root / only
                return [shard] if _SHARD_RE.fullmatch(only) and shard.is_dir() and not shard.is_symlink() else []
            with os.scandir(self.root) as it:
                found = [Path(e.path) for e in it if _SHARD_RE.fullmatch(e.name) and e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise self._read_error(exc, self.root) from exc
        return sorted(found)

    def _shard_files(self, shard: Path) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(shard) as it:
                return sorted(it, key=lambda e: e.name)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise self._read_error(exc, shard) from exc

    def _entry_paths(self, shard: str | None = None) -> list[Path]:
        paths = []
        for folder in self._shards(shard):
            for item in self._shard_files(folder):
                if _is_entry_name(item.name, folder.name):
                    paths.append(Path(item.path))
        return paths

    def _stray_files(self, *, stale_only: bool) -> list[tuple[Path, int]]:
        now = time.time()
        found = []
        for folder in self._shards():
            for item in self._shard_files(folder):
                match = _TEMP_RE.fullmatch(item.name)
                if not match:
                    continue
                try:
                    stat = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stale_only and not _temp_is_stale(match, now - stat.st_mtime):
                    continue
                found.append((Path(item.path), stat.st_size))
        return found

    def _discard(self, path: Path, identity: tuple[int, int]) -> bool:
        """Remove the damaged file we read, but not a good one a writer put there since.

        False when it cannot be removed (a read-only cache): it is still never served,
        since every read verifies.
        """
        # Renaming first makes "is it still the file we read?" and the removal one step
        # as far as other processes can see.
        aside = path.with_name(_temp_name(path.stem))
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return True  # another reader removed it already
        except OSError:
            return False
        try:
            if _identity(os.lstat(aside)) == identity:
                os.unlink(aside)
            else:
                # A writer replaced it with a complete file after our read: put it back.
                os.replace(aside, path)
        except OSError:
            pass  # `aside` is named like a temporary file: prune removes it later
        return True

    def _read_error(self, exc: OSError, path: Path) -> CacheError:
        if isinstance(exc, NotADirectoryError) or exc.errno == errno.ENOTDIR:
            return CacheError(f"cache folder {self.root} is not a folder (a file is in the way)", _WRITABLE_HINT)
        if isinstance(exc, PermissionError):
            return CacheError(f"cannot read the cache at {path}: permission denied", _READABLE_HINT)
        return CacheError(f"cannot read the cache at {path}: {exc.strerror or exc}", _READABLE_HINT)

    def _write_error(self, exc: OSError, path: Path) -> CacheError:
        if isinstance(exc, (NotADirectoryError, FileExistsError)) or exc.errno == errno.ENOTDIR:
            return CacheError(f"cannot write to cache folder {self.root}: a file is in the way", _WRITABLE_HINT)
        if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
            return CacheError(
                f"cannot write cache entry {path}: no space left on the device",
                "free some space, or run `attndocs cache prune --max-size 500MB`",
            )
        if isinstance(exc, PermissionError) or exc.errno in (errno.EROFS, errno.EACCES):
            return CacheError(f"cannot write to cache folder {self.root}: {exc.strerror or 'permission denied'}", _WRITABLE_HINT)
        return CacheError(f"cannot write cache entry {path}: {exc.strerror or exc}", _WRITABLE_HINT)


# -- encoding and verification --------------------------------------------------------------
def _encode(record: AttentionRecord) -> bytes:
    return record.to_cache_bytes()


def _decode(data: bytes, key: str, parts: Mapping[str, Any] | None = None) -> tuple[AttentionRecord, str]:
    """The record in ``data`` and its storage schema, if it is a complete, undamaged, consistent entry for ``key``.

    ``parts``: what the reader computed ``key`` from; the record must come from those inputs.
    An old-format entry (schema 1) comes back as it was written, float32: the caller converts.
    """
    try:
        meta = read_metadata_bytes(data, whole=True)
    except Exception as exc:
        raise _Damaged(f"not a readable safetensors file ({_one_line(exc)})") from None
    if meta.get("format") != FORMAT_NAME:
        raise _Damaged("not an attndocs record")
    schema = meta.get("schema")
    if schema not in (str(CACHE_SCHEMA_VERSION), str(OLD_SCHEMA)):
        raise _Damaged(f"record schema {_one_line(schema)}, this attndocs reads schema {CACHE_SCHEMA_VERSION} (and {OLD_SCHEMA})")
    if meta.get(METADATA_CHECKSUM) != metadata_checksum(meta):
        raise _Damaged("its metadata does not match its checksum")
    if meta.get("cache_key") != key:
        raise _Damaged(f"it holds the record for key {_one_line(meta.get('cache_key'))[:16]}, not {key[:16]}")
    try:
        record = AttentionRecord.from_bytes(data, source="the file")
    except CacheError as exc:
        raise _Damaged(_one_line(exc.message).removeprefix("the file is damaged: ")) from None
    except Exception as exc:  # malformed but checksummed metadata: still never served
        raise _Damaged(f"unreadable record ({type(exc).__name__}: {_one_line(exc)})") from None
    if record.key_parts is not None:
        # Checksums are recomputed by whoever rewrites an entry; the inputs the key was
        # computed from are not, unless the record is rewritten to match them too.
        try:
            stored = cache_key(record.key_parts)
        except TypeError:
            raise _Damaged("its key parts are not plain JSON values") from None
        if stored != key:
            raise _Damaged(f"it was computed for the key {stored[:16]}, not {key[:16]} (an entry copied under another key)")
        _check_origin(record, record.key_parts)
    if parts is not None:
        _check_origin(record, parts)
    return record, str(schema)


def old_format_message(key: str, rewritten: bool) -> str:
    """What a build says, once, when it read entries written by an older attndocs."""
    then = (
        "it was rewritten in the compact format, several times smaller: commit the rewritten cache"
        if rewritten
        else "the cache is read-only here, so it stays as it is: `attndocs cache verify --fix` where it is writable rewrites such entries"
    )
    return (
        f"cache entry {key[:12]} (and any others like it in this build) was written by an older attndocs "
        f"(float32, schema {OLD_SCHEMA}); it was verified and converted to the cache's precision, not recomputed; {then}"
    )


# The key parts that name a record field, and how a message calls them.
_ORIGIN_FIELDS = (("model", "model_id", "model"), ("revision", "revision", "revision"), ("text", "text", "text"),
                  ("text_b", "text_b", "text B"), ("target", "target", "target"))


def _check_origin(record: AttentionRecord, parts: Mapping[str, Any]) -> None:
    """The record was made from the inputs ``parts`` names (those it names; others pass)."""
    for part, attr, label in _ORIGIN_FIELDS:
        if part not in parts:
            continue
        want, have = parts[part], getattr(record, attr)
        if part == "model" and want == LOCAL_FOLDER:
            continue  # a local folder is named by its content hash, the revision
        if want != have:
            raise _Damaged(f"it holds the record of another {label} ({_origin_preview(have)}, not {_origin_preview(want)})")
    extraction = parts.get("extraction")
    if isinstance(extraction, Mapping) and "qk" in extraction and "qk" in record.extraction:
        if bool(extraction["qk"]) != bool(record.extraction["qk"]):
            raise _Damaged("its query/key vectors were asked for differently from its key")


def _origin_preview(value: object) -> str:
    return "none" if value is None else f'"{_preview(str(value), 32)}"'


def _is_entry_name(name: str, folder: str) -> bool:
    """``name`` is the file name of an entry inside the shard folder named ``folder``."""
    stem = name[: -len(SUFFIX)]
    return name.endswith(SUFFIX) and bool(_KEY_RE.fullmatch(stem)) and stem[:2] == folder


@dataclass
class _Opened:
    """A file at an entry's name: whose it is, and what was read of it.

    ``state`` is "ok" (an attndocs header, ``found`` read), "damaged" (an entry that cannot
    be read as a file: only attndocs gives a file that name, so it is ours to remove) or
    "foreign" (a folder, or a safetensors file of another program: never ours).
    """

    state: str
    found: RecordFile | None = None
    problem: str | None = None
    identity: tuple[int, int] | None = None


def _open_entry(path: Path, *, header_only: bool = False) -> _Opened:
    """Read the file at an entry's name, bounded (record.read_record_file), and say whose it is.

    ``FileNotFoundError`` and other ``OSError`` pass through.
    """
    try:
        found = read_record_file(path, header_only=header_only)
    except RecordFormatError as exc:
        if exc.folder:
            return _Opened("foreign", problem="a folder")
        if exc.meta is not None and exc.meta.get("format") != FORMAT_NAME:
            return _Opened("foreign", problem="a safetensors file of another program")
        identity = _identity(exc.status) if exc.status is not None else _lidentity(path)  # the link itself
        return _Opened("damaged", problem=_one_line(exc), identity=identity)
    if found.meta.get("format") != FORMAT_NAME:
        return _Opened("foreign", problem="a safetensors file of another program")
    return _Opened("ok", found=found, identity=_identity(found.stat))


def _lidentity(path: Path) -> tuple[int, int] | None:
    try:
        return _identity(os.lstat(path))
    except OSError:
        return None


def _entry_from_meta(path: Path, stat: os.stat_result, meta: dict[str, str]) -> CacheEntry:
    base = CacheEntry(path.stem, path, stat.st_size, stat.st_mtime)
    if meta.get("format") != FORMAT_NAME:
        base.problem = "not an attndocs record"
        return base
    try:
        tokens = json.loads(meta.get("tokens", "{}"))
        sections = json.loads(meta.get("sections", "{}"))
        neuron = json.loads(meta.get("neuron", "{}"))
        versions = json.loads(meta.get("versions", "{}"))
        side_tokens = {str(side): len(items) for side, items in tokens.items()}
        entry = CacheEntry(
            key=path.stem,
            path=path,
            size=stat.st_size,
            mtime=stat.st_mtime,
            model_id=str(meta.get("model_id", "")),
            revision=str(meta.get("revision", "")),
            model_type=str(meta.get("model_type", "")),
            kind=str(meta.get("kind", "")),
            sections=tuple(str(name) for name in sections),
            tokens=sum(side_tokens.values()),
            side_tokens=side_tokens,
            text=str(json.loads(meta.get("text", '""')) or ""),
            text_b=json.loads(meta.get("text_b", "null")),
            target=json.loads(meta.get("target", "null")),
            versions={str(k): str(v) for k, v in versions.items()},
            has_qk=bool(isinstance(neuron, dict) and neuron.get("available")),
            schema=str(meta.get("schema", "")),
        )
    except (ValueError, TypeError, AttributeError) as exc:
        base.problem = f"unreadable metadata ({_one_line(exc)})"
        return base
    if meta.get("cache_key") != path.stem:
        entry.problem = "its metadata holds a different key"
    return entry


# -- small helpers ----------------------------------------------------------------------------
def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise ValueError(f"not a cache key: {key!r} (expected 64 lower-case hex digits, as cache_key() returns)")


def _temp_name(key: str) -> str:
    # The host and pid let `prune` tell a killed writer's leftovers from a live write.
    return f".{key}.{_HOST}-{os.getpid()}-{secrets.token_hex(6)}.tmp"


def _temp_is_stale(match: re.Match[str], age_s: float) -> bool:
    if age_s > STALE_TEMP_S:
        return True
    if match["host"] != _HOST:
        return False  # cannot ask another machine whether it lives
    return local_process_ended(int(match["pid"]))


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return (stat.st_dev, stat.st_ino)


def _unlink_quietly(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise CacheError(f"cannot remove {path}: {exc.strerror or exc}", _WRITABLE_HINT) from exc
    return True


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (power loss); not possible everywhere, so best effort."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def _preview(text: str, width: int = 40) -> str:
    escaped = escape_text(text)
    return escaped if len(escaped) <= width else escaped[: width - 1] + "…"


# -- human units --------------------------------------------------------------------------------
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3, "t": 1000**4, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}  # fmt: skip
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str) -> int:
    """``500MB``, ``1.5GB``, ``200KiB``, ``1024`` (bytes) -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match[2].lower() not in _SIZE_UNITS:
        raise OptionError(f"--max-size: {text!r} is not a size", "use a number with B, KB, MB, GB (or KiB, MiB, GiB), e.g. 500MB")
    return int(float(match[1]) * _SIZE_UNITS[match[2].lower()])


def parse_duration(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if not match:
        raise OptionError(f"--older-than: {text!r} is not a duration", "use a number followed by s, m, h, d or w, e.g. 30d, 12h, 90m")
    return float(match[1]) * _DURATION_UNITS[match[2]]


def format_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _format_age(mtime: float, now: float) -> str:
    age = max(0.0, now - mtime)
    if age < 60:
        return "just now"
    for limit, unit, div in ((3600, "m", 60), (86400, "h", 3600), (float("inf"), "d", 86400)):
        if age < limit:
            return f"{int(age // div)}{unit} ago"
    raise AssertionError("unreachable")


# -- the `attndocs cache` commands -----------------------------------------------------------------
def add_cache_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``attndocs cache ls | info | verify | prune | clear`` to the CLI's subparsers."""
    cache = sub.add_parser("cache", help="Inspect and maintain the attention record cache.", description="Inspect and maintain the attention record cache.")
    cache.set_defaults(func=lambda args: _cmd_help(cache))
    commands = cache.add_subparsers(dest="cache_command", metavar="CACHE_COMMAND")

    def add(name: str, help: str, func: Any) -> argparse.ArgumentParser:
        p = commands.add_parser(name, help=help, description=help)
        p.add_argument("--cache-dir", default=None, metavar="DIR", help="Cache folder (default: $ATTNDOCS_CACHE_DIR or ./.cache/attndocs).")
        p.set_defaults(func=func)
        return p

    p = add("ls", "List entries, most recently used first.", _cmd_ls)
    p.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    p = add("info", "Show everything about one entry.", _cmd_info)
    p.add_argument("key", metavar="KEY", help="The entry's key, or a unique prefix of at least 6 characters.")
    p = add("verify", "Read every entry in full and report damaged ones (exit 1 if any).", _cmd_verify)
    p.add_argument("--fix", action="store_true", help="Remove damaged entries and leftover temporary files.")
    p = add("prune", "Remove entries by age, model or total size.", _cmd_prune)
    p.add_argument("--older-than", metavar="AGE", help="Entries not used for this long: 30d, 12h, 90m.")
    p.add_argument("--model", metavar="ID", help="Entries of this model id.")
    p.add_argument("--max-size", metavar="SIZE", help="Then remove least recently used entries until the cache fits: 500MB, 2GB.")
    p.add_argument("--dry-run", action="store_true", help="Only print what would be removed.")
    p = add("clear", "Remove every entry.", _cmd_clear)
    p.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")


def _cmd_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _cache_from_args(args: argparse.Namespace) -> RecordCache:
    return RecordCache(args.cache_dir or default_cache_dir())


def _missing(cache: RecordCache) -> bool:
    if cache.root.exists():
        if not cache.root.is_dir():
            raise CacheError(f"cache folder {cache.root} is not a folder", "pass --cache-dir with a folder")
        return False
    print(f"the cache folder {cache.root} does not exist yet (a build creates it)")
    return True


def _cmd_ls(args: argparse.Namespace) -> int:
    cache = _cache_from_args(args)
    if args.json:
        exists = cache.root.is_dir()
        entries = sorted(cache.entries(), key=lambda e: e.mtime, reverse=True) if exists else []
        data = {
            "root": str(cache.root),
            "exists": exists,
            "entries": [e.to_json() for e in entries],
            "total_bytes": sum(e.size for e in entries),
        }
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    if _missing(cache):
        return 0
    entries = sorted(cache.entries(), key=lambda e: e.mtime, reverse=True)
    if not entries:
        print(f"the cache at {cache.root} is empty")
        return 0
    now = time.time()
    rows = []
    for e in entries:
        if e.damaged:
            rows.append([e.key[:12], "DAMAGED", "", "", "", format_size(e.size), _format_age(e.mtime, now), escape_text(e.problem or "")])
            continue
        tokens = "+".join(str(n) for n in e.side_tokens.values()) if len(e.side_tokens) > 1 else str(e.tokens)
        qk = ("+qk" if e.has_qk else "") + (" (old format)" if e.old_format else "")
        rows.append(
            [
                e.key[:12],
                escape_text(e.model_id),
                escape_text(e.revision[:12]),
                f"{tokens} tok",
                ",".join(e.sections) + qk,
                format_size(e.size),
                _format_age(e.mtime, now),
                f'"{e.preview}"',
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(7)]
    for row in rows:
        cells = [row[i].rjust(widths[i]) if i in (3, 5) else row[i].ljust(widths[i]) for i in range(7)]
        print("  ".join(cells + [row[7]]).rstrip())
    damaged = sum(e.damaged for e in entries)
    total = f"{len(entries)} {'entry' if len(entries) == 1 else 'entries'}, {format_size(sum(e.size for e in entries))} in {cache.root}"
    if damaged:
        total += f"; {damaged} damaged (`attndocs cache verify --fix` removes them)"
    old = sum(e.old_format for e in entries)
    if old:
        total += f"; {old} in the older float32 format (`attndocs cache verify --fix` rewrites them, smaller)"
    print(total)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    cache = _cache_from_args(args)
    path = cache.find(args.key)
    record, meta = cache.read_entry(path)
    stat = path.stat()
    stored = _stored_tensors(path)
    lines = [
        ("key", path.stem),
        ("path", str(path)),
        ("size", f"{format_size(stat.st_size)} ({stat.st_size} bytes)"),
        ("last used", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stat.st_mtime)) + f" ({_format_age(stat.st_mtime, time.time())})"),
        ("model", escape_text(record.model_id)),
        ("revision", escape_text(record.revision)),
        ("model type", escape_text(record.model_type)),
        ("kind", escape_text(record.kind)),
        ("format", _format_line(meta)),
        ("text", escape_text(record.text)),
    ]
    if record.text_b is not None:
        lines.append(("text b", escape_text(record.text_b)))
    if record.target is not None:
        lines.append(("target", escape_text(record.target)))
    for name, side in record.sides.items():
        extra = f", text B from {side.text_b_start}" if side.text_b_start is not None else ""
        lines.append((f"{name} tokens", f"{len(side)}{extra}: " + " ".join(escape_text(t) for t in side.tokens)))
    lines.append(("neuron view", escape_text(_canonical_json(record.neuron))))
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        print(f"{label.ljust(width)}  {value}")
    print("tensors (as stored):")
    for name, dtype, shape in stored:
        print(f"  {name}  {dtype}  [{', '.join(str(n) for n in shape)}]")
    print("metadata:")
    for name in sorted(meta):
        print(f"  {name}: {escape_text(meta[name])}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    cache = _cache_from_args(args)
    if _missing(cache):
        return 0
    report = cache.verify_all()
    problems = report.damaged
    count = sum(1 for _ in cache.entries())
    for path, problem in problems:
        print(f"damaged: {path}: {escape_text(problem)}")
    for path in report.old:
        print(f"old format: {path}: written by an older attndocs (float32, schema {OLD_SCHEMA}); builds read and convert it")
    if args.fix:
        for path in cache.remove_damaged(problems):
            what = "leftover temporary file" if path.name.startswith(".") else "damaged entry"
            print(f"removed {what} {path}")
        for path, before, after in cache.upgrade(report.old):
            print(f"rewrote {path} in the compact format ({format_size(before)} -> {format_size(after)})")
    _mention_strangers(cache)
    summary = f"checked {count} {'entry' if count == 1 else 'entries'} in {cache.root}: {len(problems)} damaged"
    if report.old:
        summary += f", {len(report.old)} in the older format" + (" (rewritten)" if args.fix else "")
    print(summary)
    if problems and not args.fix:
        print("`attndocs cache verify --fix` removes damaged entries; the next build recomputes them")
    if report.old and not args.fix:
        print("`attndocs cache verify --fix` rewrites old-format entries in the compact format, without the model")
    return 1 if problems else 0


def _format_line(meta: dict[str, str]) -> str:
    schema = meta.get("schema", "")
    if schema == str(OLD_SCHEMA):
        return f"float32, schema {schema} (written by an older attndocs; `attndocs cache verify --fix` rewrites it compact)"
    try:
        storage = json.loads(meta.get("storage") or "{}")
    except ValueError:
        storage = {}
    older = isinstance(storage, dict) and storage.get("vectors") == "float16"
    vectors = "float16 (an older attndocs; a neuron figure recomputes it)" if older else "float32"
    return f"compact, schema {escape_text(schema)}: attention 8-bit square-root codes, query/key {vectors}"


def _stored_tensors(path: Path) -> list[tuple[str, str, list[int]]]:
    """(name, dtype, shape) of each tensor as the entry's header lists it."""
    head = read_record_file(path, header_only=True).data
    size = int.from_bytes(head[:8], "little")
    header = json.loads(head[8 : 8 + size].decode("utf-8"))
    names = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "U8": "uint8", "I8": "int8"}
    return [
        (name, names.get(info["dtype"], info["dtype"].lower()), list(info["shape"]))
        for name, info in sorted(header.items())
        if name != "__metadata__"
    ]


def _cmd_prune(args: argparse.Namespace) -> int:
    if args.older_than is None and args.model is None and args.max_size is None:
        raise OptionError("cache prune needs at least one of --older-than, --model, --max-size", "e.g. `attndocs cache prune --older-than 30d`")
    older = parse_duration(args.older_than) if args.older_than is not None else None
    size = parse_size(args.max_size) if args.max_size is not None else None
    cache = _cache_from_args(args)
    if _missing(cache):
        return 0
    removed = cache._prune(older_than_s=older, model=args.model, max_bytes=size, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    entries = 0
    for path, nbytes in removed:
        if path.name.startswith("."):
            print(f"{verb} leftover temporary file {path} ({format_size(nbytes)})")
        else:
            entries += 1
            print(f"{verb} {path.stem[:12]} ({format_size(nbytes)})")
    freed = sum(n for _, n in removed)
    if not removed:
        print("nothing to prune")
    else:
        tail = "would be freed" if args.dry_run else "freed"
        print(f"{verb} {entries} {'entry' if entries == 1 else 'entries'}; {format_size(freed)} ({freed} bytes) {tail}")
    return 0


def _cmd_clear(args: argparse.Namespace) -> int:
    cache = _cache_from_args(args)
    if _missing(cache):
        return 0
    if not args.yes:
        if not _interactive():
            raise CacheError(f"refusing to clear {cache.root} without confirmation", "pass --yes")
        entries = list(cache.entries())
        answer = input(f"remove all {len(entries)} entries ({format_size(sum(e.size for e in entries))}) from {cache.root}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing removed")
            return 1
    count = cache.clear()
    _mention_strangers(cache)
    print(f"removed {count} {'entry' if count == 1 else 'entries'} from {cache.root}")
    return 0


def _mention_strangers(cache: RecordCache, shown: int = 5) -> None:
    """Say what was left alone: pointing the cache at the wrong folder should be noticed."""
    strangers = cache.strangers()
    if not strangers:
        return
    noun = "file or folder" if len(strangers) == 1 else "files and folders"
    print(f"left alone: {len(strangers)} {noun} in {cache.root} that attndocs did not write")
    for path, why in strangers[:shown]:
        print(f"  {escape_text(path.relative_to(cache.root).as_posix())} ({why})")
    if len(strangers) > shown:
        print(f"  ... and {len(strangers) - shown} more")


def _interactive() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):  # closed or replaced stdin
        return False
