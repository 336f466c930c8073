extensions = ["attndocs.sphinx_ext"]
project = "Test: named head roles"
exclude_patterns = ["_build"]
