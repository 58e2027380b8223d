# The two commands: `make run` and `make test`. Both create the venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
URL ?= tcp://127.0.0.1:5555

.PHONY: run demo test lint fuzz bench screenshots clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

run: $(VENV)/.installed  ## a server on the per-user data dir, then the GUI (or, with no display, the CLI)
	$(PY) -m libimchat key >/dev/null  # the clients find the key there, even before the server is up
	$(PY) -m libimchat serve --port 5555 & server=$$!; \
	trap 'kill $$server 2>/dev/null' EXIT INT TERM; \
	if [ -n "$$DISPLAY" ]; then $(VENV)/bin/imchat gui --url $(URL); \
	else $(VENV)/bin/imchat chat --url $(URL); fi

demo: $(VENV)/.installed  ## a server, and a scripted tour of the library in it
	$(PY) -m libimchat key >/dev/null
	$(PY) -m libimchat serve --port 5555 & server=$$!; \
	trap 'kill $$server 2>/dev/null' EXIT INT TERM; \
	$(PY) examples/demo.py $(URL) && wait $$server

test: $(VENV)/.installed lint  ## the whole suite
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(PY) -m ruff check libimchat apps tests examples bench
	$(PY) -m ruff format --check libimchat apps tests examples bench
	$(PY) -m mypy

fuzz: $(VENV)/.installed  ## the fault suite's fuzz of a live server, for FUZZ_SECONDS (default 600)
	IMCHAT_FUZZ_SECONDS=$(or $(FUZZ_SECONDS),600) $(PY) -m pytest -q -s tests/faults/test_fuzz.py

bench: $(VENV)/.installed  ## benchmarks into docs/BENCH.md (QUICK=1: < 2 min; PEERS=1: also InspIRCd)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(if $(PEERS),command -v inspircd >/dev/null || apt-get install -y -qq inspircd;)
	$(PY) -m bench $(if $(QUICK),--quick) $(if $(PEERS),--peers)

screenshots: $(VENV)/.installed  ## render the GUI's windows under Xvfb into docs/img/
	$(PY) -m imchat_gui.screenshots docs/img

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
