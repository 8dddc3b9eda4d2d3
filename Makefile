# The task runner. A newcomer needs two commands: `make setup` then `make test` (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
TIERS := unit integration infra e2e

.PHONY: setup lint typecheck test test-fast $(addprefix test-,$(TIERS)) synth bench call local-aws clean

setup: ## venv + Python deps (editable) + the pinned CDK CLI
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip > .setup.log 2>&1 || { cat .setup.log; exit 1; }
	$(PY) -m pip install --quiet -e '.[dev]' >> .setup.log 2>&1 || { cat .setup.log; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@echo "setup done: $$($(PY) --version), CDK CLI $$(npx --no-install cdk --version 2>/dev/null)"

lint: ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: ## mypy (strict) over the whole tree
	$(BIN)/mypy .

# Each tier runs on its own so a failure names its tier; pytest exit 5 ("no tests collected") is not a failure.
test-%:
	@echo "=== $* tests ==="; rc=0; $(BIN)/pytest -m $* -q $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "($* tier is empty)"; elif [ $$rc -ne 0 ]; then exit $$rc; fi

test: lint typecheck $(addprefix test-,$(TIERS)) synth ## everything CI runs

synth: ## cdk synth offline (no Docker needed); cdk-nag runs on every synth and fails it on any finding
	npx --no-install cdk synth --quiet

call: ## the main job: one complete phone call through every part, locally, no accounts
	$(PY) -m local.call

bench: ## latency, calls per core, Lambda cold starts: prints the figures the README quotes
	$(PY) bench/relay_latency.py
	$(PY) bench/lambda_cold_start.py

clean:
	rm -rf cdk.out build .pytest_cache .mypy_cache .ruff_cache
