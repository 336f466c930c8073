# The tests map these aliases to tiny random models built in a temporary folder:
# attention_model_aliases = {"tiny-gpt2": ..., "tiny-llama": ..., "tiny-bart": ..., "tiny-t5": ..., "tiny-bert": ...}
extensions = ["attndocs.sphinx_ext"]
project = "Test: model families"
exclude_patterns = ["_build"]
