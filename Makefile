# Baetyl-Py developer entry points. `make demo` and `make test` work on a fresh
# Debian/Ubuntu machine with Python >= 3.11: they install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CACHE_DIR ?= $(HOME)/.cache/baetyl-py
export PIP_CACHE_DIR ?= $(CACHE_DIR)/pip
PYTEST_ARGS ?=
# Test processes (pytest-xdist). Most tests wait on brokers, servers and child processes, so
# four workers keep a 2-core machine busy; measured in docs/development.md.
TEST_WORKERS ?= 4
BENCH_ARGS ?=
# `make test` is a pass/fail gate: Hypothesis runs repeatable and without wall-clock limits
# (tests/conftest.py); a plain `pytest` keeps the exploring `dev` profile.
export HYPOTHESIS_PROFILE ?= ci
# The agent wheel the cloud serves to nodes: a file target, rebuilt only when a source changed.
VERSION := $(shell sed -n 's/^version *= *//p' setup.cfg)
WHEEL := dist/baetyl_py-$(VERSION)-py3-none-any.whl
WHEEL_SOURCES := setup.cfg pyproject.toml $(shell find agent cloud function_proxy -type f \
	\( -name '*.py' -o -name '*.tmpl' -o -name '*.c' -o -name py.typed \) -not -path '*/__pycache__/*')

.PHONY: help venv install system-deps test test-fast lint demo demo-stop bench bench-report migrations wheel kube-build kube-up kube-down kube-binaries clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

venv: $(BIN)/python  ## create .venv/ at the repo root

$(BIN)/python:
	@bash tools/ensure-python.sh "$(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(STAMP)  ## install the packages in editable mode with every extra (cloud, kube, postgres, s3, test, dev)

# The tests' plug-in package (docs/plugins.md) is a distribution of its own, so that the tests
# find its plug-ins through real entry points; editable, so only its metadata needs a reinstall.
TEST_PLUGINS := tests/plugins/baetyl_test_plugins

$(STAMP): $(BIN)/python setup.cfg pyproject.toml $(TEST_PLUGINS)/pyproject.toml
	@echo "==> installing baetyl-py with the cloud's, the tests' and the tools' dependencies into $(VENV)"
	$(BIN)/python -m pip install --quiet -e '.[cloud,kube,postgres,s3,test,dev]'
	$(BIN)/python -m pip install --quiet --no-deps -e $(TEST_PLUGINS)
	@touch $(STAMP)

system-deps:  ## install what the tests start (mosquitto, postgresql) with apt-get when missing
	@bash tools/system-deps.sh

test: install system-deps kube-binaries  ## run the whole suite (real Mosquitto, SQLite, PostgreSQL, Kubernetes)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not kube" $(PYTEST_ARGS)
	@echo "==> the Kubernetes tests on the local node, in one process (one cluster a machine)"
	$(BIN)/python -m pytest -p no:xdist -m kube $(PYTEST_ARGS)
	@echo "==> the REST API suite again on PostgreSQL (one database backend per process)"
	BAETYL_TEST_DB=postgres $(BIN)/python -m pytest -n $(TEST_WORKERS) tests/cloud/api $(PYTEST_ARGS)

# The Kubernetes tests need the binaries; where the build is impossible they skip and say why.
kube-binaries:
	@bash tools/kube/build.sh || echo "==> WARNING: the Kubernetes build failed (see ~/.cache/baetyl-py/kube/build.log); the Kubernetes tests will skip"

test-fast: install system-deps  ## the suite without the `slow` tests (end to end, benchmark smoke, the 60 s outage)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not slow and not kube" $(PYTEST_ARGS)

kube-build:  ## build the local Kubernetes binaries from Debian's source package, once (~/.cache/baetyl-py/kube)
	@bash tools/kube/build.sh

KUBE_DIR ?= var/kube
kube-up: install kube-build  ## start a local Kubernetes (control plane on 127.0.0.1, one real node) in $(KUBE_DIR)
	@bash tools/system-deps.sh kube
	$(BIN)/python -m tools.kube.cluster up --dir $(KUBE_DIR)

kube-down: install  ## stop the local Kubernetes and clean the host (KUBE_ARGS=--purge also removes $(KUBE_DIR))
	$(BIN)/python -m tools.kube.cluster down --dir $(KUBE_DIR) $(KUBE_ARGS)

lint: install  ## ruff, mypy --strict and the import rules of DESIGN §2
	$(BIN)/ruff check agent cloud function_proxy tests bench tools examples
	$(BIN)/ruff format --check agent cloud function_proxy tests bench tools examples
	$(BIN)/mypy
	$(BIN)/lint-imports

# MODE=kube: the node runs the Kubernetes backend on a local Kubernetes (built once, ~10 min).
MODE ?= native
demo: install  ## cloud + node + the hello app in var/demo/ (MODE=kube: on a local Kubernetes; DEMO_ARGS='--app-port N')
	@bash tools/system-deps.sh demo
	@if [ "$(MODE)" = kube ]; then bash tools/system-deps.sh kube && bash tools/kube/build.sh; fi
	@$(BIN)/python tools/demo.py up --mode $(MODE) --python $(PYTHON) $(DEMO_ARGS)

demo-stop: install  ## stop what `make demo` started, the local Kubernetes included (data and logs stay in var/demo/)
	@$(BIN)/python tools/demo.py down $(DEMO_ARGS)

bench: install system-deps kube-binaries  ## run bench/* (~55 min), rewrite docs/benchmarks.md + plots (BENCH_ARGS='--quick')
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

bench-report: install  ## redraw docs/benchmarks.md and its plots from bench/results/ without measuring
	$(BIN)/python bench/report.py

migrations: install  ## write a migration for model changes (NAME=short_name)
	$(BIN)/tortoise -c cloud.store.migration_config.TORTOISE_ORM makemigrations $(if $(NAME),-n $(NAME))

wheel: $(WHEEL)  ## build the wheel into dist/ when a source changed (baetyl-cloud serves it to nodes)

$(WHEEL): $(WHEEL_SOURCES) | $(BIN)/python
	rm -rf build  # setuptools would reuse stale modules from an earlier build
	$(BIN)/python -m pip wheel --quiet --no-deps -w dist .
	@touch $@
	@echo $@

clean:  ## remove the venv, caches and build output
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
