# Two commands on a fresh machine (Python >= 3.11 with venv):
#   make demo   - install into .venv, then ingest the bundled sample hospital and print the run summary
#   make test   - install into .venv, then lint, type-check and run the whole test suite
# .ci/run calls `make test`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_BUNDLE ?= sample_logs/hospital_demo
DEMO_OUT ?= demo-out

.PHONY: install demo test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/phi-detector ingest $(DEMO_BUNDLE) --out $(DEMO_OUT)
	@echo "outputs: $(DEMO_OUT)/ (canonical Parquet tables, rejects.csv, summary.json)"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: install
	$(BIN)/python benchmarks/bench_ingest.py --rows 10000000

clean:
	rm -rf $(DEMO_OUT) bench-data .pytest_cache .mypy_cache .ruff_cache
