extensions = ["attndocs.sphinx_ext"]
project = "Test: compare"
exclude_patterns = ["_build"]
