extensions = ["attndocs.sphinx_ext"]
project = "Test: basic"
numfig = True
exclude_patterns = ["_build"]
