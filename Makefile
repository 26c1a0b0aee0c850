# The two Quick start commands bootstrap the virtualenv on first use (idempotent: the stamp
# file is redone only when pyproject.toml changes).
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed
# The default run and the tests use only packaged weights and bundled data.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: run test test-all venv bench-sweep

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

# The default benchmark: MiniLM on SciFact, 4 MRL dimensions x 6 precisions (ARGS=... adds flags).
run: $(STAMP)
	$(VENV)/bin/bench run $(ARGS)

# The test suite (slow, network and gpu tests excluded; `make test-all` includes slow ones).
test: $(STAMP)
	$(VENV)/bin/python -m pytest -m "not slow and not network and not gpu" $(ARGS)

test-all: $(STAMP)
	$(VENV)/bin/python -m pytest -m "not network and not gpu" $(ARGS)

# Benchmark: the whole default sweep against one float32 cell, both from a cold cache.
bench-sweep: $(STAMP)
	$(VENV)/bin/python benchmarks/sweep_vs_single_cell.py $(ARGS)
