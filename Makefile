# One command to set up and run the system, one to set up and run the tests.
#   make run    installs what is needed and starts everything on embedded defaults
#   make test   installs what is needed (Python packages, Node modules, Chromium) and tests

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test test-backend test-frontend lint bench clean frontend-build

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/uv pip install -q --python $(BIN)/python -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/python -m backend.local

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check backend tests

bench: setup
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .data
