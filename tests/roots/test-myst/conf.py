extensions = ["myst_parser", "attndocs.sphinx_ext"]
project = "Test: MyST"
numfig = True
exclude_patterns = ["_build"]
