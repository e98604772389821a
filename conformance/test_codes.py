"""The 8-bit and 4-bit codes and the scaled float16 states (spec/state_storage.md): spec (sympy,
lambdified) = reference (NumPy, from the definitions) = fast (integer operations on float32
patterns, eager and compiled), bit for bit; the bounds over every code; unbiased stochastic
rounding; no underflow of second moments."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch

from conformance import storage_checks as sc
from conformance.compare import assert_close
from fast import codes as fc
from reference import codes as rc
from spec import codes as S
from spec.storage_layout import CODES, SR_BITS, Code

IDS = [f"{kind}-{'signed' if signed else 'unsigned'}" for kind, signed in CODES]
ALL_CODES = list(CODES.values())
FL32 = {"fl32": lambda v: np.float64(np.float32(v))}


def _spec_code(code: Code):
    expr = S.instantiate(S.SIGNED_CODE if code.signed else S.UNSIGNED_CODE, code)
    return sp.lambdify([S.y, S.R], expr, modules=[FL32, "numpy"])


def _edge_values(code: Code) -> np.ndarray:
    """Levels, one float32 ulp either side of them, zero, the range ends and far below it."""
    levels = np.array([float(v) for v in S.levels(code)], dtype=np.float32)
    around = np.concatenate([levels, np.nextafter(levels, np.float32(0)), np.nextafter(levels, np.float32(4))])
    tiny = np.array([0.0, 2.0**-40, 2.0**-126, code.smallest_normal / 3, code.top * 1.0000001], dtype=np.float32)
    return np.concatenate([around, tiny]).astype(np.float32)


@pytest.mark.parametrize("code", ALL_CODES, ids=IDS)
def test_levels_spec_reference_fast_over_every_code(code):
    """Every stored byte value (all 2^8 or 2^4 codes, sign bit included) decodes to the same
    number in the three implementations; the levels increase strictly; unsigned codes have no 0."""
    spec_levels = np.array([float(v) for v in S.levels(code)])
    assert np.array_equal(spec_levels, rc.level(np.arange(code.magnitudes), code))
    assert np.all(np.diff(spec_levels) > 0)
    every = np.arange(2**code.bits)
    want = rc.decode(every, np.ones(1), code)
    got = fc.decode(torch.from_numpy(every.astype(np.int32)), torch.ones(1), code).numpy()
    assert np.array_equal(got.astype(np.float64), want)
    if not code.signed:
        assert spec_levels.min() > 0, "a non-negative code must not have a zero level"


@pytest.mark.parametrize("code", ALL_CODES, ids=IDS)
def test_spec_code_equals_reference(code):
    rng = np.random.default_rng(code.bits * 7 + code.signed)
    y = np.concatenate([_edge_values(code),
                        (np.abs(rng.normal(size=600)) * np.exp(rng.normal(size=600) * 4)).astype(np.float32)])
    y = np.minimum(y, np.float32(code.top * 1.0000001))
    for r in (np.full(y.size, 2**15), np.zeros(y.size, dtype=np.int64), rng.integers(0, 2**SR_BITS, size=y.size)):
        spec_fn = _spec_code(code)
        with np.errstate(divide="ignore", invalid="ignore"):
            got = np.array([float(spec_fn(float(a), int(b))) for a, b in zip(y, r)])
        want = rc.magnitude_code(y, r, code)
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, f"spec and reference differ at y={y[bad][:3]}, r={r[bad][:3]}"


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("code", ALL_CODES, ids=IDS)
def test_fast_codes_equal_reference_bit_for_bit(code, compiled):
    """Whole encodes (scales, sign bits, clamping, partial and zero blocks) on sizes that hit
    every block case, in eager and compiled fast."""
    fn = torch.compile(fc.encode, dynamic=False, fullgraph=True) if compiled else fc.encode
    rng = np.random.default_rng(code.block)
    torch._dynamo.reset()  # one static graph per size and code: stay inside the recompile limit
    for n in (1, 7, code.block - 1, code.block, 2 * code.block + 77):
        x = (rng.normal(size=n) * np.exp(rng.normal(size=n) * 3)).astype(np.float32)
        x = x if code.signed else np.abs(x)
        x[: min(n, 3)] = 0.0
        r = rng.integers(0, 2**SR_BITS, size=n)
        want_c, want_s = rc.encode(x, code, r)
        c, s = fn(torch.from_numpy(x), code, torch.from_numpy(r.astype(np.int32)))
        assert np.array_equal(c.numpy().astype(np.uint8), want_c), f"{n} elements: codes"
        assert np.array_equal(s.numpy(), want_s), f"{n} elements: scales"


def test_contrasting_blocks_through_the_storage_layer():
    sc.check_codes()


@pytest.mark.parametrize("code", ALL_CODES, ids=IDS)
def test_relative_error_bound_over_the_range(code):
    """Rounded down (r = 0, the worst draw), every value from the smallest normal level to the
    top decodes to at least ``smallest_fraction`` of itself: the bound proven over all codes."""
    fraction = float(S.smallest_fraction(code))
    assert fraction == pytest.approx(1 / (1 + 2.0**-code.man_bits))
    lo = float(S.range_of(code)) * code.top
    y = np.geomspace(lo, code.top, 4001).astype(np.float32)
    y = y[(y >= lo) & (y <= code.top)]
    x = np.concatenate([[code.top], y]).astype(np.float32)  # the block maximum first: scale 1
    c, s = rc.encode(x, Code(code.exp_bits, code.man_bits, code.signed, x.size), np.zeros(x.size, dtype=np.int64))
    decoded = rc.decode(c, s, Code(code.exp_bits, code.man_bits, code.signed, x.size))
    ratio = decoded / x
    assert ratio.min() >= fraction * (1 - 2**-22), ratio.min()
    assert ratio.max() <= 1 + 2**-22


def test_int8_second_moment_down_to_2_pow_minus_24():
    """The 8-bit code of v keeps >= 8/9 of every value down to 2^-24 of its block maximum, with
    every draw (rounded up or down), and never decodes a nonzero value to 0, however small."""
    code = CODES[("int8", False)]
    v = np.concatenate([[1.0], np.geomspace(2.0**-24, 1.0, 300), [1e-30, 1e-38, 2.0**-149]]).astype(np.float32)
    for r in (0, 2**15, 2**16 - 1):
        c, s = fc.encode(torch.from_numpy(v), code, torch.full((v.size,), r, dtype=torch.int32))
        decoded = fc.decode(c, s, code).numpy().astype(np.float64)
        assert np.all(decoded > 0), f"draw {r}: a nonzero second moment decoded to 0"
        ratio = decoded[:-3] / v[:-3]
        assert ratio.min() >= 8 / 9 * (1 - 2**-22), (r, ratio.min())


@pytest.mark.parametrize("code", ALL_CODES, ids=IDS)
def test_stochastic_rounding_is_unbiased_over_all_draws(code):
    """The mean over all 2^16 draws of the decoded value equals y up to 2^-16 of the level step
    (the draws' resolution); round to nearest is off by up to half a step."""
    levels = [float(v) for v in S.levels(code)]
    ys = [levels[1] + 0.3 * (levels[2] - levels[1]), levels[-2] + 0.77 * (levels[-1] - levels[-2]),
          levels[len(levels) // 2] * (1 + 2.0**-(code.man_bits + 3))]
    draws = np.arange(2**SR_BITS)
    for yv in ys:
        y32 = np.float32(yv)
        x = np.concatenate([[code.top], np.full(draws.size, y32)]).astype(np.float32)
        r = np.concatenate([[0], draws])
        c, s = fc.encode(torch.from_numpy(x), Code(code.exp_bits, code.man_bits, code.signed, x.size),
                         torch.from_numpy(r.astype(np.int32)))
        decoded = fc.decode(c, s, Code(code.exp_bits, code.man_bits, code.signed, x.size)).numpy()
        lo = max(v for v in levels if v <= y32)
        step = min(v for v in levels if v > y32) - lo
        mean = decoded[1:].astype(np.float64).mean()
        assert_close(np.array((mean - lo) / step), np.array((float(y32) - lo) / step), "adamw.code.mean",
                     f"mean of all draws at y={float(y32)}")


def test_scaled_fp16_keeps_tiny_second_moments():
    """Plain float16 stores (1 - beta2) g^2 as 0 below |g| ~ 5e-3; the scaled format keeps
    11 significant bits for values down to 2^-28 of the block maximum."""
    g = np.geomspace(1e-9, 1.0, 500)
    v = (0.001 * g * g).astype(np.float32)
    assert np.mean(v.astype(np.float16) == 0) > 0.5  # the failure the scale avoids
    values, scales = fc.encode_fp16(torch.from_numpy(v), signed=False)
    decoded = fc.decode_fp16(values, scales, torch.float32).numpy()
    keep = v >= v.max() * 2.0**-28
    assert np.all(np.abs(decoded[keep] / v[keep] - 1) <= 2.0**-11)
    assert np.all(decoded[v > 0] > 0)
