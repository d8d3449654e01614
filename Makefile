# bananaweb: `make run` to try it, `make test` to test it. Both set themselves up.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONDONTWRITEBYTECODE := 1

# The first Python >= 3.12 found: $BANANAWEB_PYTHON, then the PATH, then pyenv's versions.
define find_python
for c in "$${BANANAWEB_PYTHON:-}" python3.13 python3.12 python3 \
    $$(ls -d "$$(pyenv root 2>/dev/null || echo $$HOME/.pyenv)"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV); do \
  [ -n "$$c" ] && "$$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { command -v "$$c"; exit 0; }; \
done; exit 1
endef

.PHONY: help run test lint bench wrk loadtest scaletest venv browser clean

help:
	@echo "make run   - set up and run bananaweb with the bundled simulator (SQLite, local files)"
	@echo "make test  - set up and run every test"
	@echo "make lint  - check style (ruff) and the import contracts (import-linter, in pyproject.toml)"
	@echo "make bench - pages against Django's floor under wrk, written to docs/PERFORMANCE.md (SHORT=1: CI's quick one)"
	@echo "make loadtest - the whole stack under load, with faults and a killed worker (LOAD_SECONDS=60)"
	@echo "make scaletest - 2 gunicorns, 3 workers, PostgreSQL and moto S3; a worker killed (SCALE_REQUESTS=200)"

$(PY):
	@python=$$($(find_python)) || { echo "bananaweb needs Python 3.12 or newer and found none (tried \$$BANANAWEB_PYTHON, python3.13, python3.12, python3 and pyenv's versions). Install one, or set BANANAWEB_PYTHON to its path." >&2; exit 1; }; \
	echo "Creating $(VENV) with $$python"; \
	"$$python" -m venv $(VENV) && $(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet ".[test]"
	@touch $@

venv: $(VENV)/.installed

# BANANAWEB_DEV=1: development keys and plain HTTP, for this machine only.
run: export BANANAWEB_DEV := 1
run: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py ensure_signin
	$(PY) manage.py runstack

test: venv browser
	$(PY) -m pytest

# What the browser tests need besides Python: Debian's Chromium (installed as root with
# apt-get where it is missing) and axe-core from npm. Without them those tests skip, loudly.
AXE_CORE_VERSION := 4.14.1
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian's chromium for the browser tests"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	      || echo "!!! Chromium could not be installed: the browser tests will skip."; \
	  else \
	    echo "!!! No /usr/bin/chromium, and no root apt-get to install it: the browser tests will skip."; \
	  fi; \
	fi
	@if ! grep -qs '"version": "$(AXE_CORE_VERSION)"' $(VENV)/npm/node_modules/axe-core/package.json; then \
	  if command -v npm >/dev/null; then \
	    echo "Installing axe-core $(AXE_CORE_VERSION) from npm for the browser tests"; \
	    npm install --no-save --no-audit --no-fund --silent --prefix $(VENV)/npm axe-core@$(AXE_CORE_VERSION) \
	      || echo "!!! axe-core could not be installed: the browser tests will skip."; \
	  else \
	    echo "!!! No npm to install axe-core: the browser tests will skip."; \
	  fi; \
	fi

# All three run, so one pass reports every problem; `ruff format .` and `ruff check --fix .` fix most.
lint: venv
	@status=0; \
	$(VENV)/bin/ruff check . || status=1; \
	$(VENV)/bin/ruff format --check . || status=1; \
	$(VENV)/bin/lint-imports --no-logo || status=1; \
	exit $$status

# tests/benchmarks/run.py: a throwaway PostgreSQL database (DATABASE_URL's server, else
# 127.0.0.1:5432) seeded with 100,000 requests, gunicorn with the production settings
# and wrk on loopback; prints each page's ratio to the floor, writes docs/PERFORMANCE.md
# and fails when one misses its goal. SHORT=1 (CI): a small seed, 3 s a line, writes
# var/bench-last.md, fails only below half a goal. More options: BENCH_ARGS=--help.
BENCH_ARGS ?=
bench: venv wrk
	$(PY) -m tests.benchmarks.run $(if $(SHORT),--short) $(BENCH_ARGS)

# Debian's wrk, installed as root with apt-get where it is missing.
wrk:
	@if ! command -v wrk >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian's wrk for the benchmark"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } \
	      || echo "!!! wrk could not be installed: make bench can't run."; \
	  else \
	    echo "!!! No wrk, and no root apt-get to install it: install wrk for make bench."; \
	  fi; \
	fi

# tests/load/run.py: a throwaway PostgreSQL database (DATABASE_URL's server, else
# 127.0.0.1:5432), simulator, gunicorn and two task workers on loopback, Locust for
# LOAD_SECONDS; prints the figures, writes var/loadtest-last.md, fails on a 5xx, a
# lost request or one sent upstream twice. CI runs LOAD_SECONDS=15.
LOAD_SECONDS ?= 60
LOAD_USERS ?= 50
loadtest: venv
	$(PY) -m tests.load.run --seconds $(LOAD_SECONDS) --users $(LOAD_USERS)

# tests/scale/run.py: two gunicorn processes (requests spread over both), three task
# workers, a throwaway PostgreSQL database, media in a bucket of moto's S3 server, the
# simulator; SCALE_REQUESTS from SCALE_USERS users through the form and the API, a task
# worker SIGKILLed half-way and started again. Fails unless every request ended, was
# sent upstream once and its image stored once in the bucket. CI runs 60 from 6.
SCALE_REQUESTS ?= 200
SCALE_USERS ?= 20
scaletest: venv
	$(PY) -m tests.scale.run --requests $(SCALE_REQUESTS) --users $(SCALE_USERS)

clean:
	rm -rf $(VENV) var
