extensions = ["attndocs.sphinx_ext"]
project = "Test: vision"
exclude_patterns = ["_build"]
# attention_model_aliases = {"tinyvit": <the tiny ViT's folder>} comes from the test (tests/sphinx/test_vision_sphinx.py).
