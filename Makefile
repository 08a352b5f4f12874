PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

demo: $(STAMP)  ## set up and run Engram end to end on the embedded default
	$(BIN)/engram demo

test: $(TEST_STAMP)  ## set up and run the whole test suite
	$(BIN)/python -m pytest -q

bench: $(STAMP)  ## ingest and search benchmarks (slow; see docs/benchmarks.md)
	$(BIN)/engram bench ingest
	$(BIN)/engram bench search

clean:
	rm -rf $(VENV) .pytest_cache
