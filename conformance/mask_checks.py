"""Checks of Automagic's 8-bit learning-rate mask that the per-step comparison cannot make
(it never changes a group's bounds): shared by test_mask_code.py and the mutant self-test."""

from __future__ import annotations

import numpy as np

from conformance.harness import build, step_both
from conformance.registry import Entry
from reference import mask_code as ref_code


def check_recode(entry: Entry) -> None:
    """Narrowing a group's bounds mid-run: fast and reference re-code every code for the new
    bounds (clamped, nearest level), identically, and every decoded value is inside them."""
    pair = build(entry, entry.rich_sample(), "float32")
    for t in range(3):
        step_both(pair, t)
    new = {"min_lr": 3e-4, "max_lr": 2e-3}
    for g in (pair.fast.param_groups[0], pair.ref.param_groups[0]):
        g.update(new)
    step_both(pair, 3)
    recoded = 0
    for i, p in enumerate(pair.fast_params):
        ref_state = pair.ref.state[i]
        if p.numel() == 0 or "lr_mask" not in ref_state:
            continue
        group = next(g for g in pair.fast.param_groups if any(q is p for q in g["params"]))
        bounds = (group["min_lr"], group["max_lr"])
        assert tuple(pair.fast.state[p]["lr_mask_bounds"]) == bounds == tuple(ref_state["lr_mask_bounds"])
        codes = pair.fast.state[p]["lr_mask"].numpy()
        np.testing.assert_array_equal(codes, ref_state["lr_mask"], err_msg=f"param {i}")
        decoded = ref_code.decode_mask(codes, bounds)
        assert decoded.min() >= bounds[0] and decoded.max() <= bounds[1]
        recoded += bounds == (new["min_lr"], new["max_lr"])
    assert recoded >= 4
