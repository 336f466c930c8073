extensions = ["attndocs.sphinx_ext"]
project = "Test: bad figures"
exclude_patterns = ["_build"]
