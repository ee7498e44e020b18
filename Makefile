# Genesis: two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
APP    := $(VENV)/.installed-app
STAMP  := $(VENV)/.installed

.PHONY: install install-app run test lint unit fuzz bench soak vendor clean

# `make run` installs what the server needs; `make test` (and the other targets) add the dev tools.
$(APP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(APP)

$(STAMP): $(APP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install-app: $(APP) ## Create .venv and install Genesis (the server and its command line only)

install: $(STAMP) ## Create .venv and install Genesis with its dev tools

run: install-app ## Start the API on http://127.0.0.1:8000 (SQLite and logs under ./var)
	@echo "The genesis command is $(BIN)/genesis (or run '. $(BIN)/activate' to have it on PATH)."
	$(BIN)/genesis serve

lint: install ## ruff, mypy, the import-layer contracts and the declared dependencies
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/deptry .

unit: install ## The test suite only
	$(BIN)/pytest

test: lint unit ## Everything CI runs

fuzz: install ## A longer schemathesis run
	GENESIS_FUZZ_EXAMPLES=500 $(BIN)/pytest tests/reliability -k fuzz

soak: install ## A 60-second soak at 500 req/s, then 100 kill-and-check runs
	$(BIN)/python -m bench.soak --seconds 60 --rate 500 --threads 12
	GENESIS_KILL_RUNS=100 $(BIN)/pytest tests/reliability/test_faults_kill.py

bench: install ## Benchmarks against same-run anchors; writes bench/results.json
	$(BIN)/python -m bench

vendor: ## Re-fetch the vendored browser assets from the npm registry (pinned, checksummed; output is committed)
	bash scripts/vendor.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info
