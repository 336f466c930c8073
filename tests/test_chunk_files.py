"""Side files of figures in chunks, through all three front-ends: every chunk a script beside the first.

With ``embed: file`` a figure's chunks are scripts named by their content; the page names
the first, and attndocs.js finds the others in the same folder by the names in the header.
Built with Sphinx (reStructuredText and MyST), MkDocs and `attndocs build`, with the
payload's size limit lowered so that a tiny model's figures split as a large one's do.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "reliability"))

from frontends import FRONTENDS, build_in_process, read_tree, write_site  # noqa: E402
from hostile_corpus import Case  # noqa: E402

import attndocs.payload as payload_module  # noqa: E402
from attndocs.render import figure_payloads  # noqa: E402

CASES = [Case("heads", "The cat sat on the mat.", {"view": "head"}), Case("neuron", "A dog lay on the rug.", {"view": "neuron"})]


def _embed_file(site) -> None:
    if site.frontend == "sphinx":
        conf = site.src / "conf.py"
        conf.write_text(conf.read_text() + 'attention_embed = "file"\n')
    elif site.frontend == "mkdocs":
        config = site.src / "mkdocs.yml"
        config.write_text(config.read_text() + "      embed: file\n")
    else:
        config = site.src / "attndocs.toml"
        config.write_text(config.read_text() + 'embed = "file"\n')


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_every_chunk_is_written_beside_the_first(frontend, tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(payload_module, "SINGLE_CHUNK", 0)
    site = write_site(frontend, tmp_path, CASES, model=str(tiny_model_dir("bert")))
    _embed_file(site)
    build_in_process(site)
    assert site.failed is None and not [w for w in site.warnings if "attndocs" in w.lower()], site.warnings
    found = 0
    for page in site.pages():
        for shipped in figure_payloads(page.read_text(encoding="utf-8")):
            assert shipped["body"] is None and shipped["src"].endswith(".js")
            first = (page.parent / shipped["src"]).resolve()
            chunks = shipped["header"]["chunks"]
            assert len(chunks) > 1
            for chunk in chunks:
                script = first.parent / f"attndocs-{chunk['id']}.js"
                text = script.read_text(encoding="ascii")
                assert re.fullmatch(r'attndocs\.chunk\("' + chunk["id"] + r'","[A-Za-z0-9+/=]*"\);\n', text)
            found += 1
    assert found == len(site.placed)
    # Rebuilt, the site is the same bytes: chunk names come from their content.
    before = read_tree(site.out)
    build_in_process(site)
    assert read_tree(site.out) == before
