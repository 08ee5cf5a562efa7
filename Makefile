# The human commands. `make demo` and `make test` work on a fresh machine with only Python.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo run test lint fix bench mutation clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo run: $(STAMP)
	$(BIN)/trackops demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider
	TZ=Asia/Tokyo $(BIN)/python -m pytest -q -p no:cacheprovider $$(cat tests/non_utc.txt)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

fix: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python benchmarks/register_bulk.py
	$(BIN)/python benchmarks/engine_apply.py
	$(BIN)/python benchmarks/webhook_ingest.py
	$(BIN)/python benchmarks/slack_ack.py

mutation:
	benchmarks/mutation.sh

clean:
	rm -rf $(VENV) build *.egg-info
