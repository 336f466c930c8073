"""Sphinx edition of the example course: a subset of the pages, with the attndocs directive.

    sphinx-build -W -b html example_site/sphinx _build/site-sphinx

The figures share the cache of the MkDocs and `attndocs build` editions
(example_site/.cache/attndocs), so the same texts are computed once for all three.
"""

project = "How attention works"
author = "attndocs"
extensions = ["attndocs.sphinx_ext", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_title = "How attention works (Sphinx edition)"

attention_default_model = "minilm"
attention_cache_dir = "../.cache/attndocs"
