# targetd — two commands do everything on a fresh clone:
#   make run    create the virtualenv, install, start the service on the offline default
#   make test   install what tests need, check protos, lint, type-check and run every test
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: differential node-sdk docs help install compile lock protos protos-baseline check-protos lint buf-lint buf-breaking ruff mypy test test-python test-node run clean bench

help:
	@echo "make run | make test | make compile | make protos | make check-protos | make lint | make clean"

# constraints.txt pins every runtime and dev dependency (make lock); the Dockerfile installs with it too.
$(STAMP): pyproject.toml api/python/pyproject.toml clients/python/pyproject.toml tools/edge/pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e api/python -e clients/python -e tools/edge -e '.[dev]'
	touch $(STAMP)

## The hot modules compiled with mypyc, in place (tools/compile.py; docs/architecture.md, *Compiled
## modules*): again whenever one of their sources changes. `python tools/compile.py --clean` undoes it.
NATIVE := server/targetd_server/_native.json
NATIVE_SOURCES := $(shell $(PYTHON) tools/compile.py --sources)
$(NATIVE): $(STAMP) tools/compile.py $(NATIVE_SOURCES)
	$(BIN)/python tools/compile.py

compile: $(NATIVE)

install: $(STAMP) $(NATIVE)

## Regenerate constraints.txt from the pyproject.toml files (constraints.in lists them) after adding or
## changing a dependency; versions already pinned are kept (make lock LOCK_ARGS=--upgrade moves them all).
LOCAL_PACKAGES := targetd-api targetd-client targetd-edge targetd-server
lock: $(STAMP)
	$(BIN)/uv pip compile constraints.in --universal --python-version 3.11 --quiet $(LOCK_ARGS) \
	  $(foreach p,$(LOCAL_PACKAGES),--no-emit-package $(p)) --custom-compile-command "make lock" -o constraints.txt

## Regenerate the committed Python stubs (+ .pyi) and the Node client's message types from protos/.
protos: $(STAMP)
	VENV_BIN=$(abspath $(BIN)) protos/generate.sh
	$(MAKE) -C clients/node types

## Fail when the committed stubs differ from what the protos generate.
check-protos: $(STAMP)
	@tmp=$$(mktemp -d); VENV_BIN=$(abspath $(BIN)) protos/generate.sh $$tmp >/dev/null; \
	if diff -r -q -x __pycache__ $$tmp/targetd/v1 api/python/src/targetd/v1; then echo "generated stubs are fresh"; rm -rf $$tmp; \
	else rm -rf $$tmp; echo "generated stubs are stale: run 'make protos' and commit the result" >&2; exit 1; fi

## Refresh the configuration table in README.md from the Settings definition.
docs: $(STAMP)
	$(BIN)/python -m targetd_server.config --write-readme README.md

buf-lint: $(STAMP)
	$(BIN)/buf lint

## buf breaking against the last released protocol, the committed image protos/baseline.binpb: fails when a
## change breaks the wire or the generated code of a released client (tests/protocol/test_buf_breaking.py).
buf-breaking: $(STAMP)
	$(BIN)/buf breaking --against protos/baseline.binpb

## Update protos/baseline.binpb on purpose, at a release (commit it with the release): what buf-breaking
## compares with from then on.
protos-baseline: $(STAMP)
	$(BIN)/buf build --exclude-source-info -o protos/baseline.binpb

ruff: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

mypy: $(STAMP)
	$(BIN)/mypy

lint: check-protos buf-lint buf-breaking ruff mypy

## Adobe's Target Node SDK 2.4.3, `npm ci` from tests/differential/package-lock.json: one install shared by the
## differential test (tests/differential) and the HTTP edge's Node SDK test (tests/http_edge/test_node_sdk.py).
NODE_SDK := tests/differential/node_modules/.installed-stamp
$(NODE_SDK): $(wildcard tests/differential/package.json tests/differential/package-lock.json)
	@if [ -f tests/differential/package-lock.json ]; then npm ci --prefix tests/differential --no-audit --no-fund && touch $@; \
	else echo "tests/differential/package-lock.json missing: the Node SDK tests will fail" >&2; fi

node-sdk: $(NODE_SDK)

## The differential run against Adobe's Node SDK outside pytest, N cases per artifact (default 1000):
## prints the agreement table (tests/differential/run.py). `make test` runs 150 per artifact.
N ?= 1000
differential: $(STAMP) node-sdk
	$(BIN)/python tests/differential/run.py --count $(N)

test-python: $(STAMP) $(NATIVE) node-sdk
	$(BIN)/pytest $(PYTEST_ARGS)

test-node: $(STAMP) $(NATIVE)
	@# PYTHONPATH: the targetd processes the Node tests start get the tests' loopback-only network guard.
	@if [ -f clients/node/package.json ]; then PYTHONPATH=$(abspath tests/netguard) $(MAKE) -C clients/node test PYTHON_BIN=$(abspath $(BIN)); \
	else echo "no Node client yet"; fi

test: lint test-python test-node

## Start targetd on the offline default (the bundled sample artifact, on-device), with the LOCAL Target
## stand-in `targetd-edge` (tools/edge) on 127.0.0.1:8087 answering artifact, geo and Delivery API calls
## (docs/remote.md).
run: $(STAMP) $(NATIVE)
	@$(BIN)/targetd-edge --root deploy/sample --listen 127.0.0.1:8087 --data-dir .targetd-data/edge & \
	edge=$$!; trap 'kill $$edge 2>/dev/null' EXIT INT TERM; \
	for i in $$(seq 50); do $(BIN)/python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8087/_edge/health', timeout=1)" 2>/dev/null && break; sleep 0.1; done; \
	$(BIN)/targetd serve --config deploy/dev.yaml

## Benchmarks, not part of `make test`: targetd against the gRPC floor and Adobe's SDK (bench/README.md).
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)
	$(BIN)/python bench/delivery.py

clean:
	$(PYTHON) tools/compile.py --clean
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
