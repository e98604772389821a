"""Checks of Automagic's 8-bit learning-rate mask that the per-step comparison cannot make
(it never changes a group's bounds): shared by test_mask_code.py and the mutant self-test."""

from __future__ import annotations

import numpy as np
import torch

from conformance.harness import build, step_both
from conformance.registry import Entry
from fast import mask_code as fast_code
from reference import mask_code as ref_code
from spec.storage_layout import SR_BITS, mask_levels

# The defaults, narrow, wide, tiny and equal bounds, and three whose level estimates are one too
# high just below some levels (found by a search over random bounds): with 7 mantissa bits
# (max_lr < 2 min_lr) a level step is small enough that the largest draw then tells the exact
# level below from the estimate, so the correction is observable.
CODE_BOUNDS = ((1e-7, 1e-3), (5e-4, 5e-3), (1e-30, 1.0), (3.3e-6, 7.7e-6), (2e-4, 2e-4),
               (1.7638044353639132e-05, 0.12793385243091351), (0.0009251572636262479, 0.0013272742668921866),
               (9.514594829923424e-07, 1.7041809456898532e-06))


def adversarial_values(bounds: tuple[float, float], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 values where an estimate of the level is most easily off by one (every level and
    its float32 neighbours, the bounds and beyond), random ones between, and their 16-bit draws."""
    lv = np.asarray(mask_levels(*bounds), dtype=np.float32)
    rng = np.random.default_rng(seed)
    lo, hi = bounds
    near = np.concatenate([lv, np.nextafter(lv, np.float32(0)), np.nextafter(lv, np.float32(np.inf))])
    between = np.exp(rng.uniform(np.log(lo), np.log(hi), size=2000)).astype(np.float32)
    x = np.concatenate([near, between, np.float32([lo, hi, lo / 2, hi * 2])])
    r = rng.integers(0, 2**SR_BITS, size=x.size)
    # Just below a level the value is ~1 - 2^-15 of the way up its step: only the largest draws
    # round it down, and only the exact level below (not an estimate one too high) does that.
    r[lv.size: 2 * lv.size] = 2**SR_BITS - 1
    r[2 * lv.size: 3 * lv.size] = 0
    return x, r


def check_code_exact() -> None:
    """fast's codes are the reference's, bit for bit, on adversarial values for several bounds."""
    for bounds in CODE_BOUNDS:
        x, r = adversarial_values(bounds)
        expected = ref_code.encode_mask(x.astype(np.float64), bounds, r)
        got = fast_code.encode_mask(torch.from_numpy(x), fast_code.params(bounds), torch.from_numpy(r).to(torch.int32))
        assert got.dtype == torch.uint8
        np.testing.assert_array_equal(got.numpy(), expected, err_msg=f"mask codes for bounds {bounds}")
        levels = fast_code.decode_mask(torch.arange(len(mask_levels(*bounds)), dtype=torch.uint8),
                                       fast_code.params(bounds))
        np.testing.assert_array_equal(levels.double().numpy(), mask_levels(*bounds), err_msg=f"levels {bounds}")


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
