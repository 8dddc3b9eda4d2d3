# The task runner. A newcomer needs two commands: `make call` and `make test` (see README.md); both install first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# Present once `make setup` has installed everything; redone when the dependency lists change.
INSTALLED := $(VENV)/.installed
TIERS := unit integration infra e2e

.PHONY: setup chromium lint typecheck test $(addprefix test-,$(TIERS)) synth deploy call phone bench bench-load bench-profile profiles clean

setup: $(INSTALLED) chromium ## venv + the project (editable) with its dev tools and the analysts' `calls` + the pinned CDK CLI

# The softphone's browser test drives Debian's chromium package; without it (no apt-get, no root and no sudo -n) the
# test is skipped and says why.
chromium: ## Debian's chromium, where apt-get can install it (root, or sudo without a password)
	@if [ -x /usr/bin/chromium ]; then exit 0; fi; \
	if ! command -v apt-get > /dev/null; then echo "no apt-get: the softphone's browser test will be skipped"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then as_root=""; elif sudo -n true 2> /dev/null; then as_root="sudo -n"; else \
	  echo "apt-get needs root (or sudo -n): chromium not installed, the softphone's browser test will be skipped"; exit 0; fi; \
	mkdir -p $(VENV); echo "installing Debian's chromium (apt-get) for the softphone's browser test"; \
	install="$$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium"; \
	$$install > $(VENV)/chromium.log 2>&1 || { $$as_root apt-get update -q >> $(VENV)/chromium.log 2>&1 && \
	  $$install >> $(VENV)/chromium.log 2>&1; } || \
	  echo "chromium could not be installed (see $(VENV)/chromium.log): the softphone's browser test will be skipped"

$(INSTALLED): pyproject.toml package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip > $(VENV)/setup.log 2>&1 || { cat $(VENV)/setup.log; exit 1; }
	@# The speech parts of the local voice model are optional: without them `make call` uses the scripted model.
	$(PY) -m pip install --quiet -e '.[dev,analyst,voice]' >> $(VENV)/setup.log 2>&1 || { \
	  echo "speech parts (.[voice]) could not be installed: make call will use the scripted model"; \
	  $(PY) -m pip install --quiet -e '.[dev,analyst]' >> $(VENV)/setup.log 2>&1 || { cat $(VENV)/setup.log; exit 1; }; }
	npm ci --no-audit --no-fund --loglevel=error
	@echo "setup done: $$($(PY) --version), CDK CLI $$(npx --no-install cdk --version 2>/dev/null)"
	touch $@

lint: $(INSTALLED) ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(INSTALLED) ## mypy (strict) over the whole tree
	$(BIN)/mypy .

# Each tier runs on its own so a failure names its tier; pytest exit 5 ("no tests collected") is not a failure.
# A static pattern rule: make never applies plain pattern rules to .PHONY targets.
$(addprefix test-,$(TIERS)): test-%: $(INSTALLED)
	@echo "=== $* tests ==="; rc=0; $(BIN)/pytest -m $* -q $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "($* tier is empty)"; elif [ $$rc -ne 0 ]; then exit $$rc; fi

test: lint typecheck $(addprefix test-,$(TIERS)) synth ## everything CI runs

synth: $(INSTALLED) ## cdk synth offline (no Docker); cdk-nag fails it on any unacknowledged finding
	npx --no-install cdk synth --quiet

# CTX: the deploy's context, as for cdk, e.g. CTX="-c profilesDir=profiles -c alarmEmail=ops@example.com".
ENV_FILE ?= .env
CTX ?=
deploy: $(INSTALLED) ## deploy from .env (the team's keys): secrets filled, relay restarted, numbers wired; safe to rerun
	$(PY) -m deploy --env-file $(ENV_FILE) $(CTX)

call: $(INSTALLED) ## the main job: one complete phone call through every part, locally, no accounts (PROFILE=path)
	$(PY) -m local.call --profile $(or $(PROFILE),profiles/example.toml)

PORT ?= 8765
phone: $(INSTALLED) ## the softphone: the local stack and a page on http://127.0.0.1:$(PORT) to talk to the agent (PROFILE=path)
	$(PY) -m local.phone --port $(PORT) --profile $(or $(PROFILE),profiles/example.toml)

profiles: $(INSTALLED) ## validate every receptionist profile in profiles/ and print its effective settings
	$(PY) -m callcore.profiles

bench: $(INSTALLED) ## greeting/turn latency, barge-in accuracy, calls per core, Lambda cold starts
	$(PY) bench/relay_latency.py
	$(PY) bench/lambda_cold_start.py

CALLS ?= 100
DURATION ?= 30
WARMUP ?= 2
RELAYS ?= ours,seeds,bridge,floor
RELAY_LOAD_HARNESS ?= $(abspath ../shared/bench/relay_load.py)
bench-load: $(INSTALLED) ## our relay, the seeds-style Node relay and the published bridge under ../shared/bench's load harness (CALLS, DURATION, WARMUP, RELAYS)
	RELAY_LOAD_HARNESS=$(RELAY_LOAD_HARNESS) $(PY) bench/relay_load_side_by_side.py --calls $(CALLS) --duration-s $(DURATION) --warmup-s $(WARMUP) --relays $(RELAYS)

bench-profile: $(INSTALLED) ## py-spy samples our relay under the load harness: its top functions (CALLS, DURATION, WARMUP)
	RELAY_LOAD_HARNESS=$(RELAY_LOAD_HARNESS) $(PY) bench/relay_profile.py --calls $(CALLS) --duration-s $(DURATION) --warmup-s $(WARMUP)

clean:
	rm -rf cdk.out build .pytest_cache .mypy_cache .ruff_cache $(INSTALLED)
