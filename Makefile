# SubsidyHub developer entry points. `make up` runs the platform; `make test` runs every test.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
BIN := $(VENV)/bin
# Python 3.12+: an explicit PYTHON wins, then pyenv's 3.12, then python3.12, then python3.
PYTHON ?= $(shell for c in "$$(PYENV_VERSION=3.12.1 pyenv which python3.12 2>/dev/null)" python3.12 python3.13 python3; do \
  [ -n "$$c" ] && command -v "$$c" >/dev/null 2>&1 && "$$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { command -v "$$c"; break; }; done)

.PHONY: install up test lint format bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@[ -n "$(PYTHON)" ] || { echo "make install: Python 3.12 or newer is needed (set PYTHON=...)" >&2; exit 1; }
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@command -v npm >/dev/null || { echo "make install: npm (Node.js) is needed for configurable-http-proxy" >&2; exit 1; }
	npm install --silent --no-audit --no-fund --prefix $(VENV)/node configurable-http-proxy@5
	touch $@

up: install
	@echo "make up: runs the platform on the embedded default and prints where to log in"
	$(BIN)/subsidyhub up

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check hub tests bench
	$(BIN)/ruff format --check hub tests bench

format: install
	$(BIN)/ruff check --fix hub tests bench
	$(BIN)/ruff format hub tests bench

bench: install
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
