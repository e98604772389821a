# All set-up happens here: a local virtual environment, torch==2.13.0 only if torch is not
# already importable in it (a CPU wheel on CI machines), then the project in editable mode.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.advopt-installed

.PHONY: venv test demo bench bench-family bench-features docs lint conformance clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

lint: venv
	$(PY) -m ruff check .

conformance: venv
	$(PY) -m pytest conformance

test: venv
	$(PY) -m ruff check .
	$(PY) -m pytest
	$(MAKE) docs

docs: venv
	$(PY) docs/generate.py
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict -q

demo: venv
	$(PY) benchmarks/demo.py

bench: venv
	$(PY) benchmarks/step_time.py

bench-family: venv
	$(PY) benchmarks/family.py

# BENCH_ARGS: e.g. BENCH_ARGS="--size 1024" (a quicker CPU run) or BENCH_ARGS="--device cuda".
bench-features: venv
	$(PY) benchmarks/features.py $(BENCH_ARGS)

clean:
	rm -rf site docs/generated results
