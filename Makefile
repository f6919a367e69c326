# One command to set up, one to test (see README). Works on a fresh Debian machine with Python >= 3.11.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup test models

setup:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@if command -v npm >/dev/null; then npm ci --prefix tests/reference --no-audit --no-fund --loglevel=error; \
	  else echo "npm not found: the TF.js reference check will be skipped"; fi
	$(BIN)/faceprint models fetch

test:
	$(BIN)/pytest -q

models:
	$(BIN)/faceprint models fetch
