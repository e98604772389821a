# All set-up happens here: a local virtual environment, torch==2.13.0 only if torch is not
# already importable in it (a CPU wheel on CI machines), then the project in editable mode.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.advopt-installed

.PHONY: venv bench-deps test test-full demo demo-docs bench bench-family bench-factored bench-automagic-mask bench-fused-backward bench-features bench-quality bench-codes docs lint conformance clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

# The benchmarks compare with adv_optm 2.5.16; --no-deps: its only dependency, torch, is already
# installed, and resolving it again could pull a CUDA wheel.
BENCH_STAMP := $(VENV)/.advopt-bench-installed
bench-deps: $(BENCH_STAMP)

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q --no-deps adv-optm==2.5.16
	touch $(BENCH_STAMP)

lint: venv
	$(PY) -m ruff check .

conformance: venv
	$(PY) -m pytest conformance

test: venv
	$(PY) -m ruff check .
	$(PY) -m pytest
	$(MAKE) docs

# Every combination, the compiled ones included (the default run checks a seeded sample of those).
test-full: venv
	$(PY) -m ruff check .
	ADVOPT_FULL=1 $(PY) -m pytest
	$(MAKE) docs

docs: venv
	$(PY) docs/generate.py
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict -q

# The demo writes to results/demo/ (untracked); demo-docs regenerates the docs' copies.
demo: venv
	$(PY) benchmarks/demo.py

demo-docs: venv
	$(PY) benchmarks/demo.py --out benchmarks/results

bench: bench-deps
	$(PY) benchmarks/step_time.py

bench-family: bench-deps
	$(PY) benchmarks/family.py

# Adafactor, CAME, Automagic vs transformers, came-pytorch and ai-toolkit (from AI_TOOLKIT_DIR, a checkout, or the
# git snapshot AI_TOOLKIT_GIT; without either those rows are skipped). BENCH_ARGS="--quick" is a smoke test.
bench-factored: venv
	$(PY) benchmarks/factored_family.py $(BENCH_ARGS)

# Automagic's mask over 1,000 steps x 3 seeds: 8-bit vs fp32 vs ai-toolkit's absmax int8 (in bounds? tracking?).
bench-automagic-mask: venv
	$(PY) benchmarks/automagic_mask.py $(BENCH_ARGS)

# Peak memory of a training step with and without fast.fuse_backward.
bench-fused-backward: venv
	$(PY) benchmarks/fused_backward.py $(BENCH_ARGS)

# BENCH_ARGS: e.g. BENCH_ARGS="--size 1024" (a quicker CPU run) or BENCH_ARGS="--device cuda".
bench-features: bench-deps
	$(PY) benchmarks/features.py $(BENCH_ARGS)

# Held-out loss of every state format on two small CPU tasks; BENCH_ARGS="--quick" is a ~1 minute smoke test.
bench-quality: bench-deps
	$(PY) benchmarks/quality.py $(BENCH_ARGS)

# Held-out loss of alternative 8-bit / 4-bit codes (how the codes in spec/storage_layout.py were chosen).
bench-codes: bench-deps
	$(PY) benchmarks/code_choice.py $(BENCH_ARGS)

clean:
	rm -rf site docs/generated results
