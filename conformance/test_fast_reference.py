"""reference ⇄ fast: every sample × parameter dtype, every parameter and every state tensor,
compared after every step (re-synced), plus multi-step drift and the compiled kernels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conformance.compare import assert_close
from conformance.harness import build, run_drift, run_per_step, step_both
from conformance.registry import ENTRIES
from conformance.sampling import sample

CASES = [(e, s, d) for e in ENTRIES.values() for s in e.samples for d in e.dtypes]


@pytest.mark.parametrize(("entry", "sample", "dtype"), CASES, ids=lambda x: getattr(x, "name", x))
def test_per_step_eager(entry, sample, dtype, device):
    run_per_step(entry, sample, dtype, steps=5, device=device)


DRIFT = [(e, s) for e in ENTRIES.values() for s in e.drift()]


@pytest.mark.parametrize(("entry", "sample"), DRIFT, ids=lambda x: getattr(x, "name", x))
def test_drift_without_resync(entry, sample):
    run_drift(entry, sample, steps=25)


# Compilation dominates these: the default run checks a seeded sample (conformance/sampling.py).
COMPILED = sample([(e, s, d) for e in ENTRIES.values() for s in e.compiled_samples for d in e.compiled_dtypes],
                  6, "per_step_compiled")


@pytest.mark.compiled
@pytest.mark.parametrize(("entry", "sample", "dtype"), COMPILED, ids=lambda x: getattr(x, "name", x))
def test_per_step_compiled(entry, sample, dtype, device):
    run_per_step(entry, sample, dtype, steps=3, compiled=True, device=device)


# The compiled storage kernels: each format once, with bf16 parameters (stochastic write and
# stochastic states in one graph); compilation dominates the cost, so one sample each.
COMPILED_STORAGE = sample([(e, s) for e in ENTRIES.values() for s in e.compiled_storage if s in e.storage],
                          2, "storage_compiled")


@pytest.mark.compiled
@pytest.mark.parametrize(("entry", "storage"), COMPILED_STORAGE, ids=lambda x: getattr(x, "name", x))
def test_storage_compiled(entry, storage, device):
    run_per_step(entry, entry.rich_sample(), "bfloat16", steps=3, compiled=True, device=device, storage=storage)


@pytest.mark.compiled
# AdamW: the step kernels every optimizer shares; Prodigy: its statistics kernel besides.
@pytest.mark.parametrize("entry", sample([ENTRIES["AdamW"], ENTRIES["Prodigy"]], 1, "compiled_equals_eager"),
                         ids=lambda e: e.name)
def test_compiled_equals_eager(entry):
    """The compiled kernel and the same function run eagerly agree to a few ulps."""
    runs = {}
    for compiled in (False, True):
        pair = build(entry, entry.rich_sample(), "float32", compiled=compiled)
        for step in range(3):
            step_both(pair, step)
        runs[compiled] = pair
    eager, comp = runs[False], runs[True]
    for i, (p, q) in enumerate(zip(eager.fast_params, comp.fast_params)):
        assert_close(q, p, entry.tol_id("compiled_vs_eager"), f"param {i}")
        for key, value in eager.fast.state.get(p, {}).items():
            if torch.is_tensor(value):
                assert_close(comp.fast.state[q][key], value, entry.tol_id("compiled_vs_eager"), f"param {i} {key}")


def test_empty_and_frozen_parameters_are_handled():
    """The empty tensor advances its step but has no math; the frozen one gets no state."""
    from conformance.inputs import SLOTS
    from conformance.registry import ADAMW

    pair = build(ADAMW, "default", "float32")
    for step in range(2):
        step_both(pair, step)
    empty = next(i for i, s in enumerate(SLOTS) if 0 in s.shape)
    frozen = next(i for i, s in enumerate(SLOTS) if s.frozen)
    assert pair.fast.state[pair.fast_params[empty]]["step"] == 2
    assert pair.fast_params[frozen] not in pair.fast.state
    assert np.array_equal(pair.ref.params[frozen], pair.fast_params[frozen].detach().double().numpy())
