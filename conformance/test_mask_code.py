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
from conformance.mask_checks import check_code_exact, check_recode
from conformance.registry import AUTOMAGIC, AUTOMAGIC_CAME
from fast import mask_code as fast_code
from reference import mask_code as ref_code
from spec import automagic as spec
from spec.storage_layout import MASK_LEVELS, SR_BITS, mask_code, mask_levels

ORIGINAL_ENCODE = fast_code.encode_mask
FL32 = {"fl32": lambda v: np.float64(np.float32(v))}
# Bounds: the default, a narrow one, a wide one, one whose ends are not float32 numbers, equal ends.
BOUNDS = [(1e-7, 1e-3), (5e-4, 5e-3), (1e-30, 1.0), (3.3e-6, 7.7e-6), (2e-4, 2e-4)]


def values_and_draws(bounds, n=4099, seed=0):
    """Values across the range (the ends, exact levels, just outside), and 16-bit draws."""
    rng = np.random.default_rng(seed)
    lo, hi = bounds
    lv = np.asarray(mask_levels(*bounds))
    x = np.exp(rng.uniform(np.log(lo), np.log(hi), size=n))
    x[:6] = [lo, hi, lo * 0.5, hi * 2.0, lv[min(1, lv.size - 1)], lv[max(lv.size - 2, 0)]]
    x[6:6 + lv.size] = lv
    r = rng.integers(0, 2**SR_BITS, size=n)
    r[:32] = [0, 2**SR_BITS - 1] * 16
    return x, r


def fits_float32(bounds):
    lo, hi = bounds
    f = np.float32(lo)
    return lo <= float(f) <= hi or float(np.nextafter(f, np.float32(np.inf))) <= hi


@pytest.mark.parametrize("bounds", BOUNDS, ids=str)
def test_spec_levels_are_the_storage_levels(bounds):
    """MASK_LEVEL with spec.storage_layout.mask_code's a, b, m is every level l_0 .. l_T; the
    ends are the bounds (inside them), the levels strictly increase and a level step is at most
    2^-m of its level (the resolution the rationale quotes)."""
    code = mask_code(*bounds)
    formula = sp.lambdify([spec.bottom, spec.top_level, spec.m, spec.k], spec.MASK_LEVEL, modules=[FL32, "numpy"])
    levels = np.asarray(mask_levels(*bounds))
    assert levels.shape == (code.top + 1,) and code.top <= MASK_LEVELS - 1
    for c in range(code.top + 1):
        assert levels[c] == float(formula(code.low, code.high, code.mantissa_bits, c)), c
    lo, hi = bounds
    assert levels[0] == code.low and levels[-1] == code.high
    if fits_float32(bounds):
        assert lo <= code.low and code.high <= hi
        assert float(np.float32(lo)) in (code.low, float(np.nextafter(np.float32(code.low), np.float32(0))))
    else:
        assert code.low == code.high == float(np.float32(lo)) and code.top == 0
    steps = np.diff(levels)
    assert np.all(steps > 0)
    assert np.all(steps <= levels[:-1] * 2.0**-code.mantissa_bits * (1 + 1e-6))


@pytest.mark.parametrize("bounds", BOUNDS, ids=str)
def test_spec_code_is_the_reference_code(bounds):
    x, r = values_and_draws(bounds)
    lv = np.asarray(mask_levels(*bounds))
    codes = ref_code.encode_mask(x, bounds, r)
    formula = sp.lambdify([spec.k, spec.r, spec.x, spec.level_k, spec.level_k1], spec.MASK_CODE, modules="numpy")
    xc = np.clip(x, lv[0], lv[-1])
    if lv.size == 1:  # one level
        assert not codes.any()
        return
    k = np.array([max(i for i in range(lv.size - 1) if lv[i] <= v) for v in xc])
    expected = formula(k, r, xc, lv[k], lv[k + 1])
    np.testing.assert_array_equal(codes.astype(np.int64), expected.astype(np.int64))


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=pytest.mark.compiled)])
@pytest.mark.parametrize("bounds", BOUNDS, ids=str)
def test_fast_code_is_the_reference_code_bit_for_bit(bounds, compiled):
    x, r = values_and_draws(bounds, seed=1)
    xf = torch.tensor(x, dtype=torch.float32)
    expected = ref_code.encode_mask(xf.double().numpy(), bounds, r)  # the kernel sees float32 values
    code = fast_code.params(bounds)
    encode = torch.compile(fast_code.encode_mask, fullgraph=True) if compiled else fast_code.encode_mask
    codes = encode(xf, code, torch.tensor(r, dtype=torch.int32))
    assert codes.dtype == torch.uint8
    np.testing.assert_array_equal(codes.numpy(), expected)
    every = torch.arange(mask_code(*bounds).top + 1, dtype=torch.uint8)
    np.testing.assert_array_equal(fast_code.decode_mask(every, code).double().numpy(), mask_levels(*bounds))


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=pytest.mark.compiled)])
def test_fast_code_on_level_neighbours_is_the_reference_code(compiled):
    """Every level and its float32 neighbours, where the level estimate is off by one."""
    if compiled:  # one graph per bounds and size: a fresh dynamo cache for this function
        torch._dynamo.reset()
        fast_code.encode_mask = torch.compile(ORIGINAL_ENCODE, fullgraph=True)
    try:
        check_code_exact()
    finally:
        fast_code.encode_mask = ORIGINAL_ENCODE


@pytest.mark.parametrize("bounds", BOUNDS, ids=str)
def test_every_code_decodes_inside_the_bounds(bounds):
    lo, hi = bounds
    if not fits_float32(bounds):  # equal bounds float32 cannot hold: the nearest float32
        lo = hi = float(np.float32(lo))
    every = ref_code.decode_mask(np.arange(mask_code(*bounds).top + 1), bounds)
    assert every.min() >= lo and every.max() <= hi, (every.min(), every.max())
    # fast decodes every byte, also the codes above T that are never written, inside the bounds.
    fast_all = fast_code.decode_mask(torch.arange(256, dtype=torch.uint8), fast_code.params(bounds)).double()
    assert float(fast_all.min()) >= lo and float(fast_all.max()) <= hi


@pytest.mark.parametrize("bounds", BOUNDS[:4], ids=str)
def test_rounding_is_unbiased_over_every_draw(bounds):
    """Over all 2^16 draws the mean decoded value is x to within 2^-16 of its level step, so no
    bump is lost to the code's resolution (rounding to nearest would lose every bump below half
    a step)."""
    lv = np.asarray(mask_levels(*bounds))
    rng = np.random.default_rng(3)
    k = rng.integers(0, lv.size - 1, size=24)
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
