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

.PHONY: help run test bench venv clean

help:
	@echo "make run   - set up and run bananaweb with the bundled simulator (SQLite, local files)"
	@echo "make test  - set up and run every test"
	@echo "make bench - run the benchmarks"

$(PY):
	@python=$$($(find_python)) || { echo "bananaweb needs Python 3.12 or newer and found none (tried \$$BANANAWEB_PYTHON, python3.13, python3.12, python3 and pyenv's versions). Install one, or set BANANAWEB_PYTHON to its path." >&2; exit 1; }; \
	echo "Creating $(VENV) with $$python"; \
	"$$python" -m venv $(VENV) && $(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet ".[test]"
	@touch $@

venv: $(VENV)/.installed

run: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py ensure_signin
	$(PY) manage.py runstack

test: venv
	$(PY) -m pytest

bench: venv
	$(PY) -m pytest tests/benchmarks -m bench -q -s

clean:
	rm -rf $(VENV) var
