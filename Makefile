# Two commands do all set-up on a fresh machine (python3, pip, make, g++; nvcc optional):
#   make train   venv + requirements + custom ops + a short default training run
#   make test    venv + requirements + custom ops + the test suite
# Both are idempotent: the venv is rebuilt only when requirements change, the ops only when
# their sources change.

PYTHON3 ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.requirements-installed
# pytest-xdist workers: 2 halves the suite on a 2-core machine (TensorFlow's own ops are small
# here; most of a test is single-threaded Python). 0 runs it in this process.
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?=

.PHONY: all venv ops train test lint format clean

all: test

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	@touch $(STAMP)

venv: $(STAMP)

ops: $(STAMP)
	$(PY) -m custom_ops.build

train: ops
	$(PY) train.py

test: ops
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m black --check .

format: $(STAMP)
	$(PY) -m black .
	$(PY) -m ruff check --fix .

clean:
	rm -rf tfsr/ops/_compiled custom_ops/build
