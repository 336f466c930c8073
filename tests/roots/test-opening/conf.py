extensions = ["attndocs.sphinx_ext"]
project = "Test: figures that open on their point"
exclude_patterns = ["_build"]
