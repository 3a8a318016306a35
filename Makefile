# Two commands on a fresh machine (Python >= 3.11 with venv):
#   make demo   - install into .venv, then run detection (batch, then night by night) on the bundled sample
#                 hospital and score its queues
#   make test   - install into .venv, then lint, type-check and run the whole test suite
# .ci/run calls `make test`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_BUNDLE ?= sample_logs/hospital_demo
DEMO_OUT ?= demo-out

.PHONY: install demo test lint bench bench-nightly clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/phi-detector ingest $(DEMO_BUNDLE) --out $(DEMO_OUT)/canonical
	$(BIN)/phi-detector run $(DEMO_BUNDLE) --since 2026-03-16 --out $(DEMO_OUT)/detect
	$(BIN)/phi-detector evaluate $(DEMO_BUNDLE)/ground_truth.json $(DEMO_OUT)/detect/alerts.jsonl --per-day 5
	test -f $(DEMO_OUT)/workspace/workspace.toml || $(BIN)/phi-detector init --workspace $(DEMO_OUT)/workspace --bundle $(DEMO_BUNDLE)
	$(BIN)/phi-detector nightly --workspace $(DEMO_OUT)/workspace --from 2026-02-23 --to 2026-03-22 --quiet
	$(BIN)/phi-detector evaluate $(DEMO_BUNDLE)/ground_truth.json $(DEMO_OUT)/workspace/runs --per-day 5
	$(BIN)/phi-detector case list --workspace $(DEMO_OUT)/workspace --limit 10
	@echo "outputs: $(DEMO_OUT)/canonical (tables, rejects.csv, summary.json), $(DEMO_OUT)/detect (alerts.jsonl, report.html, summary.json, model.zip), $(DEMO_OUT)/workspace (the nightly job: runs/DATE/alerts.jsonl and report.html, cases.duckdb, metrics/)"
	@echo "next: phi-detector case show CASE_ID --workspace $(DEMO_OUT)/workspace; phi-detector investigate user|patient ID --workspace $(DEMO_OUT)/workspace"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: install
	$(BIN)/python benchmarks/bench_ingest.py --rows 10000000
	$(BIN)/python benchmarks/bench_scoring.py --rows 1000000 --threads 2
	$(BIN)/python benchmarks/eval_detection.py --seeds 1 2 3 --scale 1.0 --days 35 --per-day 5

# The nightly job at hospital volume: 30 nights of 10M rows (about 40 min), then the naive pandas pipeline.
bench-nightly: install
	$(BIN)/python benchmarks/bench_nightly.py --naive

clean:
	rm -rf $(DEMO_OUT) bench-data .pytest_cache .mypy_cache .ruff_cache
