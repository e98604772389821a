"""The registry and the tolerance table themselves: complete, and every id resolvable."""

import pytest

from conformance.harness import DENSE_STATE_TOL, PARAM_TOL, STORAGE_TOL_IDS
from conformance.registry import ENTRIES
from conformance.tolerances import TOLERANCES


@pytest.mark.parametrize("entry", list(ENTRIES.values()), ids=lambda e: e.name)
def test_every_hyperparameter_moves_off_its_default(entry):
    moved = {k for s in entry.samples.values() for k, v in s.items() if v != entry.hyperparameters[k].default}
    moved |= {k for k, v in entry.group1.items() if v != entry.hyperparameters[k].default}
    moved |= {k for s in entry.storage.values() for k, v in s.items() if v != entry.hyperparameters[k].default}
    untested = set(entry.hyperparameters) - moved - {"compiled_optimizer"} - set(entry.rejected)
    # compiled_optimizer: both values, see test_fast_reference
    assert not untested, f"{entry.name}: never off default: {sorted(untested)}"


@pytest.mark.parametrize("entry", list(ENTRIES.values()), ids=lambda e: e.name)
def test_tolerance_ids_exist(entry):
    ids = {entry.tol_id(t) for pair in PARAM_TOL.values() for t in pair if t}
    ids |= {entry.tol_id(t) for pair in DENSE_STATE_TOL.values() for t in pair if t}
    ids |= {entry.tol_id(t) for t in STORAGE_TOL_IDS} | {entry.tol_id("fp32.step"), entry.tol_id("fp32.drift")}
    ids.add(entry.tol_id("compiled_vs_eager"))
    missing = ids - set(TOLERANCES)
    assert not missing, sorted(missing)


def test_every_tolerance_has_a_reason():
    for key, t in TOLERANCES.items():
        assert len(t.reason) > 40, key
        assert t.rtol >= 0 and t.atol >= 0 and 0 <= t.max_error_rate < 1, key
