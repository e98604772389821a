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
from conformance.mask_checks import CODE_BOUNDS, adversarial_values, check_code_exact, check_recode
from conformance.registry import AUTOMAGIC, AUTOMAGIC_CAME
from fast import mask_code as fast_code
from reference import mask_code as ref_code
from spec import automagic as spec
from spec.storage_layout import MASK_LEVELS, SR_BITS, mask_code, mask_levels

ORIGINAL_ENCODE = fast_code.encode_mask
FL32 = {"fl32": lambda v: np.float64(np.float32(v))}
def fits_float32(bounds):
    lo, hi = bounds
    f = np.float32(lo)
    return lo <= float(f) <= hi or float(np.nextafter(f, np.float32(np.inf))) <= hi


@pytest.mark.parametrize("bounds", CODE_BOUNDS, ids=str)
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
    assert np.all(np.diff(levels) > 0)
    # The resolution, on the exact factors q_c = 2^e (1 + j/2^m) (dyadic, exact in float64) that
    # the levels are fl32(a q_c) of: a step is at most 2^-m of the lower q, exactly 2^-m at a binade's start.
    m = code.mantissa_bits
    q = np.array([2.0 ** (c >> m) * (1 + (c & ((1 << m) - 1)) / 2**m) for c in range(code.top + 1)])
    assert np.all(np.diff(q) <= q[:-1] * 2.0**-m) and (code.top == 0 or np.any(np.diff(q) == q[:-1] * 2.0**-m))


@pytest.mark.parametrize("bounds", CODE_BOUNDS, ids=str)
def test_spec_code_is_the_reference_code(bounds):
    x, r = adversarial_values(bounds)
    x = x.astype(np.float64)
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
def test_fast_code_is_the_reference_code_bit_for_bit(compiled):
    """Codes and levels, for every bounds of CODE_BOUNDS, on values across the range and on every
    level and its float32 neighbours (where the level estimate is off by one)."""
    if compiled:  # one graph per bounds and size: a fresh dynamo cache for this function
        torch._dynamo.reset()
        fast_code.encode_mask = torch.compile(ORIGINAL_ENCODE, fullgraph=True)
    try:
        check_code_exact()
    finally:
        fast_code.encode_mask = ORIGINAL_ENCODE


@pytest.mark.parametrize("bounds", CODE_BOUNDS, ids=str)
def test_every_code_decodes_inside_the_bounds(bounds):
    lo, hi = bounds
    if not fits_float32(bounds):  # equal bounds float32 cannot hold: the nearest float32
        lo = hi = float(np.float32(lo))
    every = ref_code.decode_mask(np.arange(mask_code(*bounds).top + 1), bounds)
    assert every.min() >= lo and every.max() <= hi, (every.min(), every.max())
    # fast decodes every byte, also the codes above T that are never written, inside the bounds.
    fast_all = fast_code.decode_mask(torch.arange(256, dtype=torch.uint8), fast_code.params(bounds)).double()
    assert float(fast_all.min()) >= lo and float(fast_all.max()) <= hi


@pytest.mark.parametrize("bounds", [b for b in CODE_BOUNDS if b[0] != b[1]], ids=str)
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
