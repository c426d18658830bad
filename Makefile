# recloop: `make demo` runs the main job, `make test` the whole test suite.
# Both create .venv on first use (idempotent: re-running installs nothing new).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
QUIET  := { grep -v "is ignored" || true; }
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup browser demo dashboard lint test bench-deps bench contract clean

setup: $(STAMP) browser

# the dashboard's browser tests drive Debian's chromium with Playwright (whose own browser
# download cannot run here); installed once, as root (as CI runs)
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && apt-get install -y -qq -o DPkg::Lock::Timeout=600 chromium; \
	  else echo "chromium is missing: 'sudo apt-get install chromium' enables the browser tests"; fi; }

# torch==2.13.0 in the same pip command as the project keeps pip on the CPU wheel
# (an unpinned torch resolves to a multi-GB CUDA build); the project itself asks torch>=2.3.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq torch==2.13.0 -e '.[dev]' 2>&1 | $(QUIET)
	$(BIN)/python -c "import recloop, torch; print('recloop', recloop.__version__, 'torch', torch.__version__)"
	@touch $(STAMP)

demo: setup
	$(BIN)/recloop demo

# fit the dashboard's model on MovieLens-100K once (runs/dashboard), serve it, print the URL
dashboard: setup
	$(BIN)/recloop demo --serve

# ruff (lint + format) and mypy; `make test` runs it first, so CI does too
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

# outside baselines for bench/ (not needed by the tests); lightfm's setup.py builds only
# without build isolation, against numpy and scipy already installed (MACHINE.md)
bench-deps: setup
	$(BIN)/python -m pip install -qq setuptools wheel numpy scipy 2>&1 | $(QUIET)
	$(BIN)/python -m pip install -qq --no-build-isolation lightfm 2>&1 | $(QUIET)
	$(BIN)/python -m pip install -qq torch==2.13.0 -e '.[dev,bench,text]' 2>&1 | $(QUIET)

bench: bench-deps
	$(BIN)/python bench/offline.py
	$(BIN)/python bench/stream.py
	$(BIN)/python bench/coldstart.py

contract: setup
	$(BIN)/python ../shared/contract_check.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build dist src/*.egg-info
