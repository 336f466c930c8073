# The tests set html_theme (alabaster, furo, sphinx_rtd_theme, pydata_sphinx_theme, sphinx_book_theme).
extensions = ["myst_parser", "attndocs.sphinx_ext"]
project = "Test: themes"
numfig = True
exclude_patterns = ["_build"]
