"""Cache entries that are intact files but wrong records, through every front-end.

A committed cache passes through merges, hand copies and other tools. An entry can keep
valid checksums and still be wrong: another figure's record filed under this figure's
key (its key metadata rewritten), or a record whose token count does not match its
attention. Sphinx (reStructuredText and MyST), MkDocs and `attndocs build` each build a
site, then the cache is damaged that way and the site built again: the build goes on, a
warning names the entry and the page and line of the figure, the figure is recomputed
from the model and is right again, and every other figure is served from the cache.
"""

from __future__ import annotations

import copy
import re

import pytest
from frontends import FRONTENDS, build_in_process, from_attndocs, python_crash, write_site
from hostile_corpus import Case

from attndocs.cache import RecordCache
from attndocs.record import AttentionRecord, metadata_checksum, safetensors_bytes, tensor_checksum

REKEYED = Case("rekeyed", "The cat sat on the mat.")
DONOR = Case("donor", "A dog barked at the moon.")
SHORT = Case("short", "Birds sing in the morning.")
BYSTANDER = Case("bystander", "Rain fell on the quiet town.")
CASES = [REKEYED, DONOR, SHORT, BYSTANDER]


def _bytes_with_valid_checksums(record: AttentionRecord) -> bytes:
    """What a hand edit leaves when it recomputes the checksums: they cannot give it away.

    Written in the cache's own form (schema 2), as a merge or a copy of a committed cache would be.
    """
    tensors, meta = record.cache_parts()
    meta["checksum"] = tensor_checksum(tensors)
    meta["metadata_checksum"] = metadata_checksum(meta)
    return safetensors_bytes(tensors, meta)


def _damage(cache: RecordCache) -> dict[str, tuple[str, str]]:
    """Damage two entries; case name -> (its key, what the warning must say)."""
    by_text = {entry.text: entry.key for entry in cache.entries()}
    records = {case.name: cache.get(by_text[case.text]) for case in CASES}
    victim, donor = records[REKEYED.name], records[DONOR.name]
    forged = copy.deepcopy(donor)
    forged.key, forged.key_parts = victim.key, victim.key_parts  # filed, and described, as the victim
    cache.path_for(victim.key).write_bytes(_bytes_with_valid_checksums(forged))
    short = copy.deepcopy(records[SHORT.name])
    side = next(iter(short.sides.values()))
    side.tokens, side.display, side.special = side.tokens[:-1], side.display[:-1], side.special[:-1]
    cache.path_for(short.key).write_bytes(_bytes_with_valid_checksums(short))
    return {REKEYED.name: (victim.key, "another text"), SHORT.name: (short.key, "covers")}


def _names_place(warning: str, page: str, first: int, last: int) -> bool:
    for match in re.finditer(re.escape(page) + r"[\"']?(?::|, line |:line )(\d+)", warning):
        if first <= int(match.group(1)) <= last:
            return True
    return False


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_a_damaged_entry_is_named_recomputed_and_the_other_figures_stay(frontend, tmp_path, rel_models):
    site = write_site(frontend, tmp_path, CASES, model=str(rel_models["bert"]))
    build_in_process(site)
    assert site.failed is None, site.failed
    cache = RecordCache(site.cache)
    damaged = _damage(cache)
    assert len(cache.verify()) == 2

    build_in_process(site)  # Sphinx: into a fresh build folder, so every page is read again
    text = "\n".join(site.warnings)
    assert site.failed is None, f"{frontend}: a damaged entry stopped the build: {site.failed}"
    assert not python_crash(text), text
    for placed in site.placed:
        named = [w for w in site.warnings if _names_place(w, placed.page, placed.first, placed.last) and from_attndocs(w)]
        if placed.case.name in damaged:
            continue
        assert not named, f"{frontend}: an intact figure ({placed.case.name}) warned: {named}"
    for name, (key, says) in damaged.items():
        places = [p for p in site.placed if p.case.name == name]
        hits = [w for w in site.warnings if key[:12] in w and says in w and any(_names_place(w, p.page, p.first, p.last) for p in places)]
        assert hits, f"{frontend}: no warning names entry {key[:12]} ({says}) with the page and line of {name}:\n{text}"
    # Recomputed and stored right, never served wrong again; the others were never touched.
    assert cache.verify() == []
    for case in CASES:
        entry = next(e for e in cache.entries() if e.text == case.text)
        record = cache.get(entry.key)
        assert record is not None and record.text == case.text
    shown = sum(page.read_text(encoding="utf-8").count('class="attndocs-placeholder') for page in site.pages())
    assert shown == 0, f"{frontend}: {shown} figure(s) replaced by a placeholder"
