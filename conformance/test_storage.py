"""Every storage format × parameter dtype: fast against reference on the stored codes,
scales, factors and sign bits themselves and on the parameters, after every step."""

from __future__ import annotations

import pytest

from conformance.harness import run_per_step
from conformance.registry import ENTRIES

CASES = [
    (e, sample, storage, dtype)
    for e in ENTRIES.values()
    for storage in e.storage
    for sample in e.storage_samples
    for dtype in e.storage_dtypes
]


@pytest.mark.parametrize(("entry", "sample", "storage", "dtype"), CASES, ids=lambda x: getattr(x, "name", x))
def test_storage_per_step(entry, sample, storage, dtype, device):
    run_per_step(entry, sample, dtype, steps=4, device=device, storage=storage)


# Every feature of every optimizer (each sample) with factored states, fp32 and bf16 + SR: the
# issue's optimizer x feature x {fp32, bf16+SR} x {dense, factored} grid (dense: test_fast_reference).
FACTORED = [
    (e, sample, dtype)
    for e in ENTRIES.values() if "factored" in e.storage
    for sample in e.samples if sample not in e.storage_samples
    for dtype in e.storage_dtypes
]


@pytest.mark.parametrize(("entry", "sample", "dtype"), FACTORED, ids=lambda x: getattr(x, "name", x))
def test_every_feature_factored(entry, sample, dtype, device):
    run_per_step(entry, sample, dtype, steps=4, device=device, storage="factored")
