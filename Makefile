# actorbus: set-up and checks. Needs only python3 (>= 3.11) and access to PyPI.
#   make test   lint (ruff + mypy) and the test suite with branch coverage (fails under the floor)
#   make lint   ruff + mypy only
#   make demo   run examples/demo.py
#   make demo-distributed   3 workers + a producer over Redis, one killed, reconciled in PostgreSQL
#   make bench  run every benchmarks/bench_*.py in turn

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check

# (Re)install only when pyproject.toml changed; the stamps live inside the venv, so a new venv
# reinstalls too.
STAMP       := $(VENV)/.actorbus-installed
BENCH_STAMP := $(VENV)/.actorbus-bench-installed

# Only paths that exist: git does not keep empty directories.
LINT_PATHS := $(wildcard actors supervisor bus tests benchmarks examples)

.PHONY: test lint demo demo-distributed bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[test,testing,lihil]'
	touch $@

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(PIP) install -e '.[test,testing,lihil,bench]'
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/mypy --strict actors supervisor bus

test: lint
	$(BIN)/pytest --cov --cov-report=term

demo: $(STAMP)
	$(BIN)/python examples/demo.py

demo-distributed: $(STAMP)
	$(BIN)/python examples/distributed_demo.py

bench: $(BENCH_STAMP)
	@set -e; benches="$(wildcard benchmarks/bench_*.py)"; \
	if [ -z "$$benches" ]; then echo "no benchmarks/bench_*.py found" >&2; exit 1; fi; \
	for bench in $$benches; do echo "== $$bench"; $(BIN)/python $$bench; done
