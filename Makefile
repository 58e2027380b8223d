# The two commands: `make run` and `make test`. Both create the venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
URL ?= tcp://127.0.0.1:5555

.PHONY: run test lint screenshots clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

run: $(VENV)/.installed  ## start the server on the per-user default data dir, then a demo client
	$(PY) -m libimchat serve --port 5555 & server=$$!; \
	trap 'kill $$server 2>/dev/null' EXIT INT TERM; \
	$(PY) examples/demo.py $(URL) && wait $$server

test: $(VENV)/.installed lint  ## the whole suite
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(PY) -m ruff check libimchat apps tests examples
	$(PY) -m ruff format --check libimchat apps tests examples
	$(PY) -m mypy

screenshots: $(VENV)/.installed  ## render the GUI's windows under Xvfb into docs/img/
	$(PY) -m imchat_gui.screenshots docs/img

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
