"""Sphinx configuration of the attndocs documentation (built with attndocs itself)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import attndocs  # noqa: E402

project = "attndocs"
author = "the attndocs authors"
copyright = "2025, the attndocs authors"
version = release = attndocs.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "attndocs.sphinx_ext",
    "attndocs_tables",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", ".cache", "Thumbs.db", ".DS_Store"]
numfig = True

myst_enable_extensions = ["substitution"]
myst_heading_anchors = 3
# The MkDocs page is written with the MkDocs plugin; link to it once it exists.
myst_substitutions = {
    "mkdocs_page": "[the MkDocs page](mkdocs.md)" if (HERE / "mkdocs.md").exists() else "the MkDocs section of the project's README",
}

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True}

# Figures in these pages use the bundled MiniLM; the cache lives in docs/.cache/attndocs.
attention_default_model = "minilm"

html_theme = "furo" if importlib.util.find_spec("furo") else "alabaster"
html_title = "attndocs"
