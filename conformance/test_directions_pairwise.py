"""The all-pairs design over every flag of every optimizer (conformance/pairwise.py): each valid
row runs fast against reference (fp32, per-step re-sync, every parameter and state); each value
or pair that no valid configuration has raises ValueError in both implementations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conformance.features import compatible_group1
from conformance.harness import run_per_step
from conformance.pairwise import FlagSpace, design, label, non_default
from conformance.registry import ENTRIES

DESIGNS = {name: design(FlagSpace.of(e)) for name, e in ENTRIES.items()}
ROWS = [(ENTRIES[n], non_default(d.space, row)) for n, d in DESIGNS.items() for row in d.rows]
INVALID = [(ENTRIES[n], non_default(d.space, c)) for n, d in DESIGNS.items() for c in d.invalid]


def _id(x):
    return getattr(x, "name", None) or label(x)


@pytest.mark.parametrize("name", list(DESIGNS))
def test_design_covers_every_feasible_pair(name):
    d = DESIGNS[name]
    assert d.rows, name
    assert not d.feasible_pairs - d.covered(), f"{name}: uncovered pairs"
    for row in d.rows:
        assert d.space.completion(row) == row, f"{name}: invalid row {label(row)}"
    again = design(FlagSpace.of(ENTRIES[name]))
    assert again.rows == d.rows and again.invalid == d.invalid, "the design is not deterministic"


@pytest.mark.parametrize(("entry", "hyper"), ROWS, ids=_id)
def test_pairwise_row(entry, hyper):
    run_per_step(entry, "pairwise", "float32", steps=3, hyper=hyper, group1=compatible_group1(entry, hyper))


@pytest.mark.parametrize(("entry", "hyper"), INVALID, ids=_id)
def test_invalid_combination_raises(entry, hyper):
    with pytest.raises(ValueError):
        entry.fast([torch.zeros(2, 3, requires_grad=True)], compiled_optimizer=False, **hyper)
    with pytest.raises(ValueError):
        entry.reference([np.zeros((2, 3))], **hyper)


@pytest.mark.compiled
def test_compiled_smoke():
    """One compiled combination: Lion's design row with the most flags on, bf16 (the sign
    features, OrthoGrad and the stochastic write in one compiled kernel)."""
    entry, space = ENTRIES["Lion"], DESIGNS["Lion"].space
    hyper = max((non_default(space, r) for r in DESIGNS["Lion"].rows), key=len)
    run_per_step(entry, "pairwise", "bfloat16", steps=2, compiled=True, hyper=hyper,
                 group1=compatible_group1(entry, hyper))
