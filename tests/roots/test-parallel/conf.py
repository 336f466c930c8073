extensions = ["myst_parser", "attndocs.sphinx_ext"]
project = "Test: parallel"
numfig = True
exclude_patterns = ["_build"]
