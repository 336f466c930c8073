extensions = ["attndocs.sphinx_ext"]
project = "Test: the attention admonition"
exclude_patterns = ["_build"]
