extensions = ["attndocs.sphinx_ext"]
project = "Test: words"
exclude_patterns = ["_build"]
attention_default_model = "minilm"
