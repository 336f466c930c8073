"""Sphinx edition of the example course: a subset of the pages, with the attndocs directive.

    sphinx-build -W -b html example_site/sphinx _build/site-sphinx

The figures share the cache of the MkDocs and `attndocs build` editions
(example_site/.cache/attndocs), so the same texts are computed once for all three.
"""

project = "How attention works"
author = "the attndocs authors"
copyright = "2026, the attndocs authors"  # Furo's footer: "Copyright © 2026, the attndocs authors"
extensions = ["attndocs.sphinx_ext", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = "How attention works (Sphinx edition)"
# Every figure has a caption and a name, so each is numbered ("Fig. 2") and :numref: works.
numfig = True

attention_default_model = "minilm"
attention_cache_dir = "../.cache/attndocs"
