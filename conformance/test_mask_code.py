"""The learning-rate mask's 8-bit code (spec/automagic.md, "The 8-bit mask"): spec ⇄ reference
⇄ fast bit for bit, the bounds it promises, unbiasedness over every draw, re-coding when the
bounds change, and the learning rates a trainer logs."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch

import fast
import reference
from conformance.compare import assert_close
from conformance.harness import build, step_both
from conformance.mask_checks import check_recode
from conformance.registry import AUTOMAGIC, AUTOMAGIC_CAME
from fast import mask_code as fast_code
from reference import mask_code as ref_code
from spec import automagic as spec
from spec import symbols as s
from spec.storage_layout import MASK_LEVELS, SR_BITS, mask_levels

FL32 = {"fl32": lambda v: np.float64(np.float32(v))}
# Bounds: the default, a narrow one, a wide one, one whose ends are not float32 numbers, equal ends.
BOUNDS = [(1e-7, 1e-3), (5e-4, 5e-3), (1e-30, 1.0), (3.3e-6, 7.7e-6), (2e-4, 2e-4)]


def values_and_draws(bounds, n=4099, seed=0):
    """Values across the range (the ends, exact levels, just outside), and 16-bit draws."""
    rng = np.random.default_rng(seed)
    lo, hi = bounds
    lv = np.asarray(mask_levels(*bounds))
    x = np.exp(rng.uniform(np.log(lo), np.log(hi), size=n))
    x[:6] = [lo, hi, lo * 0.5, hi * 2.0, lv[1], lv[-2]]
    x[6:6 + 256] = lv
    r = rng.integers(0, 2**SR_BITS, size=n)
    r[:32] = [0, 2**SR_BITS - 1] * 16
    return x, r


@pytest.mark.parametrize("bounds", BOUNDS, ids=str)
def test_spec_levels_are_the_storage_levels(bounds):
    formula = sp.lambdify([s.lr_min, s.lr_max, spec.k], spec.MASK_LEVEL, modules=[FL32, "numpy"])
    levels = np.asarray(mask_levels(*bounds))
    assert levels.shape == (MASK_LEVELS,)
    lo, hi = bounds
    for k in range(MASK_LEVELS):
        raw = float(formula(lo, hi, k)) if 0 < k < MASK_LEVELS - 1 else float(np.float32(lo if k == 0 else hi))
        up, down = (float(np.nextafter(np.float32(raw), np.float32(v))) for v in (np.inf, 0))
        if raw < lo and up <= hi:  # the one float32 step inside the bounds that the spec states
            raw = up
        if raw > hi and down >= lo:
            raw = down
        assert levels[k] == raw, f"level {k} of {bounds}: {levels[k]!r} != {raw!r}"
    assert np.all(np.diff(levels) >= 0)
    if fits_float32(bounds):
        assert levels[0] >= lo and levels[-1] <= hi
    else:
        assert np.all(levels == float(np.float32(lo)))


def fits_float32(bounds):
    lo, hi = bounds
    f = np.float32(lo)
    return lo <= float(f) <= hi or float(np.nextafter(f, np.float32(np.inf))) <= hi


@pytest.mark.parametrize("bounds", BOUNDS, ids=str)
def test_spec_code_is_the_reference_code(bounds):
    x, r = values_and_draws(bounds)
    lv = np.asarray(mask_levels(*bounds))
    codes = ref_code.encode_mask(x, bounds, r)
    formula = sp.lambdify([spec.k, spec.r, spec.x, spec.level_k, spec.level_k1], spec.MASK_CODE, modules="numpy")
    xc = np.clip(x, lv[0], lv[-1])
    k = np.array([max(i for i in range(MASK_LEVELS - 1) if lv[i] <= v) for v in xc])
    gap = lv[k + 1] - lv[k]
    expected = np.where(gap > 0, formula(k, r, xc, lv[k], np.where(gap > 0, lv[k + 1], lv[k] + 1.0)), k)
    np.testing.assert_array_equal(codes.astype(np.int64), expected.astype(np.int64))


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=pytest.mark.compiled)])
@pytest.mark.parametrize("bounds", BOUNDS, ids=str)
def test_fast_code_is_the_reference_code_bit_for_bit(bounds, compiled):
    x, r = values_and_draws(bounds, seed=1)
    xf = torch.tensor(x, dtype=torch.float32)
    expected = ref_code.encode_mask(xf.double().numpy(), bounds, r)  # the kernel sees float32 values
    table = fast_code.table(bounds, torch.device("cpu"))
    encode = torch.compile(fast_code.encode_mask, fullgraph=True) if compiled else fast_code.encode_mask
    codes = encode(xf, table, torch.tensor(r, dtype=torch.int32))
    assert codes.dtype == torch.uint8
    np.testing.assert_array_equal(codes.numpy(), expected)
    decoded = fast_code.decode_mask(codes, table).double().numpy()
    np.testing.assert_array_equal(decoded, ref_code.decode_mask(expected, bounds))


@pytest.mark.parametrize("bounds", BOUNDS, ids=str)
def test_every_code_decodes_inside_the_bounds(bounds):
    lo, hi = bounds
    if not fits_float32(bounds):  # equal bounds float32 cannot hold: the nearest float32
        lo = hi = float(np.float32(lo))
    every = ref_code.decode_mask(np.arange(MASK_LEVELS), bounds)
    assert every.min() >= lo and every.max() <= hi, (every.min(), every.max())
    table = fast_code.table(bounds, torch.device("cpu")).double().numpy()
    assert table.min() >= lo and table.max() <= hi


@pytest.mark.parametrize("bounds", BOUNDS[:4], ids=str)
def test_rounding_is_unbiased_over_every_draw(bounds):
    """Over all 2^16 draws the mean decoded value is x to within 2^-16 of its level step, so no
    bump is lost to the code's resolution (rounding to nearest would lose every bump below half
    a step)."""
    lv = np.asarray(mask_levels(*bounds))
    rng = np.random.default_rng(3)
    k = rng.integers(0, MASK_LEVELS - 1, size=24)
    x = lv[k] + rng.uniform(0.0, 1.0, size=24) * (lv[k + 1] - lv[k])
    x[0] = lv[k[0]] + (lv[k[0] + 1] - lv[k[0]]) * 1e-3  # a bump far below the resolution
    draws = np.arange(2**SR_BITS)
    for xi, ki in zip(x, k):
        mean = ref_code.decode_mask(ref_code.encode_mask(np.full(draws.shape, xi), bounds, draws), bounds).mean()
        step = lv[ki + 1] - lv[ki]
        assert abs(mean - xi) <= step * 2.0**-SR_BITS * 1.01, (xi, mean, step)
    nearest = ref_code.decode_mask(ref_code.encode_mask(np.array([x[0]]), bounds, np.array([ref_code.NEAREST])),
                                   bounds)
    assert nearest[0] == lv[k[0]]  # the nearest level drops the small bump: what the draws keep


@pytest.mark.parametrize("entry", [AUTOMAGIC, AUTOMAGIC_CAME], ids=lambda e: e.name)
def test_new_bounds_recode_the_mask_once(entry):
    check_recode(entry)


@pytest.mark.parametrize("entry", [AUTOMAGIC, AUTOMAGIC_CAME], ids=lambda e: e.name)
@pytest.mark.parametrize("sample", ["default", "exact"])
def test_learning_rates_match_the_reference(entry, sample):
    name = "default" if sample == "default" else next(k for k in entry.samples if k.startswith("exact"))
    pair = build(entry, name, "float32")
    assert pair.fast.get_learning_rates() == pair.ref.learning_rates()
    for t in range(4):
        step_both(pair, t)
        got, want = pair.fast.get_learning_rates(), pair.ref.learning_rates()
        assert len(got) == len(pair.fast.param_groups) == 2
        assert_close(np.asarray(got), np.asarray(want), pair.tid("fp32.state"), f"learning rates at step {t + 1}")
        assert pair.fast.get_avg_learning_rate() == pytest.approx(sum(got) / 2)
    lr0 = [g["lr"] for g in pair.fast.param_groups]
    assert all(a != b for a, b in zip(got, lr0))  # the mask moved: the logged rates follow it


def test_get_learning_rates_before_any_step_is_lr():
    p = torch.nn.Parameter(torch.ones(3, 4))
    opt = fast.Automagic([p], lr=2e-6)
    assert opt.get_learning_rates() == [2e-6] and opt.get_avg_learning_rate() == 2e-6
    ref = reference.Automagic([np.ones((3, 4))], lr=2e-6)
    assert ref.learning_rates() == [2e-6]
