# Quick start: `make demo` runs the streaming word count, `make test` runs the tests,
# `make unit` only the fast tier (tests/unit, seconds). All create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test unit bench bench-quick clean

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,sql]'
	touch $@

demo: $(VENV)/.installed
	$(PY) examples/wordcount_demo.py

test: $(VENV)/.installed
	$(PY) -m pytest -q

unit: $(VENV)/.installed
	$(PY) -m pytest -q tests/unit

bench: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m bench

bench-quick: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m bench --quick

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
