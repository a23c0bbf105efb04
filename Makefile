# The two commands: `make run` (the platform on its embedded defaults) and
# `make test` (the whole suite against a real Redis and a real Cassandra).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/notifactor serve

lint: $(STAMP)
	$(BIN)/ruff check src tests bench infra
	$(BIN)/ruff format --check src tests bench infra
	$(BIN)/mypy

test: lint
	$(BIN)/python -m infra.local.cassandra_server fetch
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit tests/actors tests/supervisors

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
