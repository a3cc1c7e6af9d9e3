# backprop-lab: the commands people type. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
comma := ,
# The browser test's extra comes along where the system's Chromium is installed.
EXTRAS := dev$(if $(wildcard /usr/bin/chromium),$(comma)ui-test)
# `=`, not `?=`: a HOST or PORT exported by the shell must not move the UI; only
# `make ui HOST=...` on the command line does, as an explicit choice.
HOST = 127.0.0.1
PORT = 5000
ARGS ?=
EXP ?=
LAUNCHER ?=
SWEEP ?=

.DEFAULT_GOAL := help
.PHONY: help setup run sweep report test ui clean reproduce bench

help: ## list the commands
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo '  overrides go in ARGS, e.g. make run ARGS="optimizer.lr=0.05 model.widths=[8,4]"'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	@touch $(STAMP)

setup: $(STAMP) ## create .venv and install the package with its test tools

# set -f: a list override such as model.widths=[8,4] must reach Hydra unglobbed.
run: $(STAMP) ## train once with the defaults, or with Hydra overrides in ARGS
	set -f; $(PY) -m backprop_lab $(ARGS)

sweep: $(STAMP) ## multirun: EXP=<experiment> LAUNCHER=joblib|submitit_local ARGS=<grid overrides>
	set -f; $(PY) -m backprop_lab -m $(if $(EXP),experiment=$(EXP)) \
		$(if $(LAUNCHER),launcher=$(LAUNCHER)) $(ARGS)

report: $(STAMP) ## a sweep's comparison table: SWEEP=<parent run id>, default the latest sweep
	$(PY) -m backprop_lab.report $(if $(SWEEP),--sweep $(SWEEP))

test: $(STAMP) ## run the test suite
	$(PY) -m pytest $(ARGS)

ui: $(STAMP) ## serve the MLflow UI over the project's store (127.0.0.1:5000; HOST=, PORT=)
	$(PY) -m backprop_lab.ui --host $(HOST) --port $(PORT)

clean: ## remove run outputs and caches; keeps the store (mlflow.db, mlartifacts/) and .venv
	rm -rf outputs multirun .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

reproduce: $(STAMP) ## train run RUN=<run id> again; fails unless the histories match
	@if [ -z "$(RUN)" ]; then echo "usage: make reproduce RUN=<run id> [ARGS=--tolerance=1e-12]" >&2; exit 2; fi
	$(PY) -m backprop_lab.reproduce $(RUN) $(ARGS)

bench: $(STAMP) ## time step, memory, logging, start-up, sweeps side by side (ARGS=--tiny: quick)
	$(PY) -m backprop_lab.bench $(ARGS)
