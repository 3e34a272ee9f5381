# SubsidyHub developer entry points. `make up` runs the platform; `make test` runs every test.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
BIN := $(VENV)/bin
# Python 3.12+: an explicit PYTHON wins, then pyenv's 3.12, then python3.12, then python3.
PYTHON ?= $(shell for c in "$$(PYENV_VERSION=3.12.1 pyenv which python3.12 2>/dev/null)" python3.12 python3.13 python3; do \
  [ -n "$$c" ] && command -v "$$c" >/dev/null 2>&1 && "$$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { command -v "$$c"; break; }; done)

# Test workers: two more than the cores, since many tests wait on hubs, servers, containers and
# outages (docs/testing.md has the figures). `make test PYTEST_ARGS=...` replaces these, e.g.
# `-n 0 -k outage`.
PYTEST_ARGS ?= -n $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 2 ))) --dist loadfile

.PHONY: install up test lint format bench clean images images-lock k8s-hub-venv api-spec

# Python caches compiled bytecode (__pycache__, git-ignored) unless PYTHONDONTWRITEBYTECODE is set,
# as some machines set it. `make test` starts about 150 Python processes (hubs, services, servers,
# four pytest workers that each rewrite and compile every test module); without the cache each of
# them compiles the project's sources again: 3.4 s of CPU per worker at collection alone.
unexport PYTHONDONTWRITEBYTECODE

# The JupyterLab extension every user's server loads (built with npm by hatch-jupyter-builder).
EXT := extensions/jupyterlab-subsidy
EXT_SOURCES := $(EXT)/package.json $(EXT)/package-lock.json $(EXT)/pyproject.toml $(EXT)/openapi.json \
  $(shell find $(EXT)/src $(EXT)/style $(EXT)/schema $(EXT)/jupyter-config $(EXT)/overrides -type f 2>/dev/null)

install: $(VENV)/.installed $(VENV)/.extension

$(VENV)/.installed: pyproject.toml
	@[ -n "$(PYTHON)" ] || { echo "make install: Python 3.12 or newer is needed (set PYTHON=...)" >&2; exit 1; }
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[local,test]'
	@command -v npm >/dev/null || { echo "make install: npm (Node.js) is needed for configurable-http-proxy" >&2; exit 1; }
	npm install --silent --no-audit --no-fund --prefix $(VENV)/node configurable-http-proxy@5
	touch $@

$(VENV)/.extension: $(VENV)/.installed $(EXT_SOURCES)
	$(BIN)/python -m pip install -q -e $(EXT)
	@# jsonschema imports rfc3987-syntax (jupyter-events' format-nongpl extra) at each JupyterHub
	@# and JupyterLab start, compiling 35 Earley parsers: 1.4 s of CPU each time, for IRI formats
	@# no Jupyter schema uses (jupyter_server#1559). Without it jsonschema skips those two formats.
	$(BIN)/python -m pip uninstall -q -y rfc3987-syntax
	touch $@

# The catalog's notebook images (images/README.md), built from Debian's packages and PyPI in a
# private dockerd whose data stays in the image cache; tests/images and tests/docker run them.
# An admin with a registry: `make images IMAGE_ARGS="--engine env --push"` (the pinned Debian).
# Where no private engine can run (dockerd, mmdebstrap, root), `make test` leaves this out and
# the tests that need the images say so in their skip reason.
IMAGES ?= base pytorch edge
IMAGE_ARGS ?= --engine private --debian trixie
IMAGES_HERE := $(shell [ "$$(id -u)" = 0 ] && command -v dockerd >/dev/null && command -v mmdebstrap >/dev/null && echo yes)
images: install
	$(BIN)/python -m subsidyhub.imagebuild $(IMAGE_ARGS) --vcs-ref "$$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" $(IMAGES)

# Re-lock the images' requirements after editing a requirements.in or pyproject's dependencies
# (needs uv; see images/README.md).
images-lock:
	cd images && for image in base pytorch edge; do \
	  case $$image in base) ins="base/requirements.in";; pytorch) ins="base/requirements.in pytorch/requirements.in";; \
	    edge) ins="base/requirements.in pytorch/requirements.in edge/requirements.in";; esac; \
	  uv pip compile --python-version 3.13 --python-platform x86_64-manylinux_2_28 --no-header --quiet --generate-hashes \
	    $$ins -o $$image/requirements.lock; done
	uv pip compile --python-version 3.12 --python-platform x86_64-manylinux_2_28 --no-header --quiet \
	  --generate-hashes pyproject.toml -o images/service/requirements.lock

# z2jh 4.4's hub environment: a venv installed from the frozen requirements of its hub image
# (quay.io/jupyterhub/k8s-hub:4.4.0; JupyterHub 5.5, KubeSpawner 7), then subsidyhub[kubernetes]
# with those pins as constraints, so the install fails if subsidyhub needed any of them changed.
# tests/k8s loads z2jh's real hub config in it; tests/hub run the hub plugin on it (JupyterHub 5.5).
# JupyterLab (also constrained) runs the single-user servers of those hub tests.
# Where the upstream files are: SUBSIDYHUB_Z2JH_HUB_REQUIREMENTS (and SUBSIDYHUB_Z2JH_CHART for the
# chart); .ci/run points both at the vendored copies. Unset: the target and those tests are skipped.
Z2JH_HUB_REQUIREMENTS ?= $(SUBSIDYHUB_Z2JH_HUB_REQUIREMENTS)
K8S_HUB_VENV := $(VENV)/k8s-hub

k8s-hub-venv: $(K8S_HUB_VENV)/.installed

$(K8S_HUB_VENV)/.installed: pyproject.toml $(Z2JH_HUB_REQUIREMENTS)
	@[ -n "$(Z2JH_HUB_REQUIREMENTS)" ] || { echo "k8s-hub-venv: set SUBSIDYHUB_Z2JH_HUB_REQUIREMENTS to z2jh's images/hub/requirements.txt" >&2; exit 1; }
	@[ -f "$(Z2JH_HUB_REQUIREMENTS)" ] || { echo "k8s-hub-venv: $(Z2JH_HUB_REQUIREMENTS) (SUBSIDYHUB_Z2JH_HUB_REQUIREMENTS) does not exist" >&2; exit 1; }
	rm -rf $(K8S_HUB_VENV)
	$(PYTHON) -m venv $(K8S_HUB_VENV)
	$(K8S_HUB_VENV)/bin/python -m pip install -q -r "$(Z2JH_HUB_REQUIREMENTS)"
	$(K8S_HUB_VENV)/bin/python -m pip install -q -c "$(Z2JH_HUB_REQUIREMENTS)" -e '.[kubernetes]'
	$(K8S_HUB_VENV)/bin/python -m pip install -q -c "$(Z2JH_HUB_REQUIREMENTS)" 'jupyterlab>=4.2'
	npm install --silent --no-audit --no-fund --prefix $(K8S_HUB_VENV)/node configurable-http-proxy@5
	touch $@

# The service's OpenAPI, which the JupyterLab extension's TypeScript types are generated from at
# its build; run after changing an answer's shape (subsidyhub/shapes.py), then commit the file.
api-spec: $(VENV)/.installed
	$(BIN)/python -m subsidyhub.service.openapi $(EXT)/openapi.json

up: install
	@echo "make up: runs the platform on the embedded default and prints where to log in"
	$(BIN)/subsidyhub up

test: install $(if $(Z2JH_HUB_REQUIREMENTS),k8s-hub-venv) $(if $(IMAGES_HERE),images)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check hub tests bench images/tests $(EXT)/jupyterlab_subsidy
	$(BIN)/ruff format --check hub tests bench images/tests $(EXT)/jupyterlab_subsidy
	$(BIN)/mypy
	cd $(EXT) && npm run --silent lint

format: install
	$(BIN)/ruff check --fix hub tests bench images/tests $(EXT)/jupyterlab_subsidy
	$(BIN)/ruff format hub tests bench images/tests $(EXT)/jupyterlab_subsidy
	cd $(EXT) && npm run --silent format

bench: install
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache $(EXT)/node_modules $(EXT)/lib $(EXT)/jupyterlab_subsidy/labextension
