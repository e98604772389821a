"""spec ⇄ reference for optimizer-state storage (spec/state_storage.md).

The symbolic proofs of spec/state_storage.py run as tests; every formula, lambdified in
float64, equals what reference/storage.py computes on random inputs, stage by stage.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from conformance.compare import assert_close
from reference import storage as ref
from spec import state_storage as S
from spec import storage_layout as layout
from spec.storage_layout import SR_BITS, Format

# d1 x d2 views (d1 >= d2): several blocks of columns, a prime (vector_reshape), one element,
# a width that is not a multiple of 8 (sign padding) and one just above it.
SHAPES = [(97, 47), (17, 1), (1, 1), (5, 3), (9, 9)]
# Numbers of elements for 8-bit states: one, a full block, one past it, three partial blocks.
# For the index arithmetic of blocks and bytes: floor() of exact ratios as an integer index, and
# mod() as float, so that 2^-(j mod 8) is a float power (numpy has no negative integer powers).
INTEGER_INDEX = {"floor": lambda a: np.floor(a).astype(np.int64), "mod": lambda a, m: np.mod(a, m).astype(np.float64)}


def fn(args, expr, integer: bool = False, **sizes):
    """``expr`` with the constants and ``sizes`` substituted, lambdified over ``args``."""
    expr = expr.subs({**S.VALUES, **{getattr(S, key): value for key, value in sizes.items()}})
    return sp.lambdify(args, expr, modules=[INTEGER_INDEX, "numpy"] if integer else "numpy")


def grid(d1: int, d2: int):
    return np.arange(d1)[:, None], np.arange(d2)[None, :]


# -- proofs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(1, 1), (3, 1), (2, 2), (3, 2), (4, 3)])
def test_proof_rank1_reconstruction_is_exact(size):
    residuals = S.proof_rank1_exact(*size)
    assert residuals and all(res == 0 for res in residuals), residuals


@pytest.mark.parametrize("size", [(2, 2), (3, 2)])
def test_proof_marginals_are_preserved(size):
    residuals = S.proof_marginals_preserved(*size)
    assert residuals and all(res == 0 for res in residuals), residuals


def test_proof_zero_matrix_reconstructs_to_zero():
    floored, unfloored = S.proof_zero_matrix(3, 2)
    assert floored == sp.zeros(3, 2)
    assert all(e is sp.nan for e in unfloored), "without the floor the zero matrix gives 0/0"


@pytest.mark.parametrize("signs", [
    [[1, -1], [-1, 1], [1, 1]],
    [[(-1) ** (e + e // 3) for e in range(9)]],  # 9 columns: two bytes, 7 padding bits
], ids=["3x2", "1x9"])
def test_proof_signed_rank1_is_exact(signs):
    residuals = S.proof_signed_rank1_exact(sp.Matrix(signs))
    assert residuals and all(res == 0 for res in residuals), residuals


def test_proof_stochastic_floor_is_unbiased():
    assert S.proof_stochastic_floor_unbiased() == 0


def test_proof_rounding_error_is_below_one_level_step():
    assert S.proof_quantisation_error() == [True, True]


def test_factor_shape_expression_matches_layout():
    for numel in [*range(1, 80), 4559, 65536, 10007]:  # 10007 is prime
        assert S.factor_shape(numel) == layout.factor_shape(numel), numel
    assert layout.factor_shape(2048 * 2048) == (2048, 2048)
    assert layout.factor_shape(47 * 97) == (97, 47)
    assert layout.factor_shape(17) == (17, 1)


# -- factors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("zero", [False, True], ids=["random", "zero"])
def test_factors_match_reference(shape, zero):
    d1, d2 = shape
    rng = np.random.default_rng(d1 * 100 + d2)
    M = np.zeros(shape) if zero else rng.random(shape) * rng.choice([1e-3, 1.0, 1e3])
    r_ref, c_ref = ref.factorize(M)
    ii, jj = grid(d1, d2)
    r = fn([S.M, S.i], S.ROW_SUM, d2=d2)(M, ii[:, 0])
    col = fn([S.M, S.j], S.COL_SUM, d1=d1)(M, jj[0])
    cbar = fn([S.c, S.j], S.COL_FACTOR, d2=d2)(col, jj[0])
    assert_close(r, r_ref, "spec.reference", f"row factor {shape}")
    assert_close(cbar, c_ref, "spec.reference", f"column factor {shape}")
    rec = fn([S.r, S.cbar, S.i, S.j], S.RECONSTRUCTION)(r_ref, c_ref, ii, jj)
    assert_close(rec, ref.reconstruct(r_ref, c_ref), "spec.reference", f"reconstruction {shape}")
    if zero:
        assert not rec.any()
    if d2 == 1 and not zero:  # an (n, 1) view is stored losslessly
        assert_close(rec, M, "spec.reference", f"lossless (n, 1) {shape}")


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_signs_match_reference(shape):
    d1, d2 = shape
    rng = np.random.default_rng(d1 + d2)
    X = rng.normal(size=shape) * (rng.random(shape) < 0.8)  # about 20% exact zeros
    width = layout.packed_width(d2)
    padded = np.hstack([X, np.zeros((d1, 8 * width - d2))])
    ii, hh = grid(d1, width)
    packed = fn([S.X, S.i, S.h], S.PACKED)(padded, ii, hh).astype(np.uint8)
    np.testing.assert_array_equal(packed, ref.pack_signs(X > 0))
    np.testing.assert_array_equal(packed, np.packbits(X > 0, axis=1, bitorder="little"))
    ii, jj = grid(d1, d2)
    bits = fn([S.P, S.i, S.j], S.UNPACKED, integer=True)(packed, ii, jj)
    np.testing.assert_array_equal(bits == 1, ref.unpack_signs(packed, d2))

    state: dict = {}
    store = ref.StateStore(state, {"m": Format("factored", True)}, (d1 * d2,), draw=None)
    store.save("m", X.reshape(-1))
    expected = store.load("m").reshape(shape)
    got = fn([S.P, S.r, S.cbar, S.i, S.j], S.SIGNED_RECONSTRUCTION, integer=True)(
        state["m_sign"], state["m_row"], state["m_col"], ii, jj)
    assert_close(got, expected, "spec.reference", f"signed reconstruction {shape}")
    zeros = expected == 0
    np.testing.assert_array_equal(np.signbit(got[zeros]), np.signbit(expected[zeros]))
    assert np.signbit(got[X == 0]).all(), "an entry that was 0 comes back negative (or -0)"


def test_sign_packing_round_trips_every_pattern():
    """Exhaustive over every bit pattern of widths 1..10 (one to two bytes, all paddings)."""
    for d2 in range(1, 11):
        bits = (np.arange(2**d2)[:, None] >> np.arange(d2)[None, :]) & 1 == 1
        width = layout.packed_width(d2)
        padded = np.hstack([bits.astype(np.float64), np.zeros((bits.shape[0], 8 * width - d2))])
        ii, hh = grid(bits.shape[0], width)
        packed = fn([S.X, S.i, S.h], S.PACKED)(padded, ii, hh).astype(np.uint8)
        np.testing.assert_array_equal(packed, np.packbits(bits, axis=1, bitorder="little"))
        ii, jj = grid(bits.shape[0], d2)
        back = fn([S.P, S.i, S.j], S.UNPACKED, integer=True)(packed, ii, jj)
        np.testing.assert_array_equal(back == 1, bits)


def test_stochastic_floor_over_all_draws():
    """With u = r/2^16 over all 2^16 draws r, the mean of floor(p + u) is k + floor(2^16 f)/2^16
    for p = k + f: unbiased up to the 2^-16 resolution of the draws (exact in float64). This is
    the rounding of a value's position among a code's levels (spec/codes.py)."""
    draws = np.arange(2**SR_BITS)
    for p in (0.0, 0.25, 3.7, 126.999, 2.0 + 2.0**-17, 126.5):
        mean = np.floor(p + draws / 2.0**SR_BITS).mean()
        whole = np.floor(p)
        assert mean == whole + np.floor((p - whole) * 2**SR_BITS) / 2**SR_BITS, p


# -- layout, bytes, float16 -------------------------------------------------------------------


FORMATS = [Format("dense", True, "float32"), Format("dense", False, "bfloat16", True), Format("fp16", True, "float16"),
           Format("int8", True), Format("int8", False), Format("int4", True), Format("int4", False),
           Format("factored", True), Format("factored", False)]


@pytest.mark.parametrize("fmt", FORMATS, ids=Format.label)
def test_stored_tensors_match_reference_layout(fmt):
    shape = (47, 97)
    numel = 47 * 97
    dd1, dd2 = layout.factor_shape(numel)
    state: dict = {}
    ref.StateStore(state, {"exp_avg": fmt}, shape, draw=None).init()
    listed = S.stored_tensors(fmt, "exp_avg")
    assert [key for key, _, _ in listed] == list(fmt.keys("exp_avg")) == list(state)
    sizes = {S.n: numel, S.d1: dd1, S.d2: dd2, S.B: fmt.block if fmt.kind in layout.BLOCKWISE else 1}
    total = 0
    for key, dtype, sym_shape in listed:
        want = shape if sym_shape is S.PARAM_SHAPE else tuple(int(d.subs(sizes)) for d in sym_shape)
        assert state[key].shape == want, key
        if dtype in ("int8", "uint8", "float16"):
            assert state[key].dtype == np.dtype(dtype), key
        total += S.ITEMSIZE[dtype] * int(np.prod(want))
    assert S.stored_bytes(fmt).subs(sizes) == total


def test_fp16_thresholds():
    beta2 = 0.999
    under = float(S.FP16_UNDERFLOW_G.subs(S.beta2, sp.Rational(999, 1000)))
    flush = float(S.FP16_FLUSH_G.subs(S.beta2, sp.Rational(999, 1000)))
    assert_close(np.array(under), np.array(2.0**-12 / np.sqrt(1 - beta2)), "spec.reference", "2^-12/sqrt(1-beta2)")

    def stored(g: float) -> float:
        return float(np.float16(np.float32((1 - beta2) * g * g)))

    assert stored(np.nextafter(flush, 0)) == 0.0 and stored(flush * (1 + 2**-20)) == 2.0**-24
    assert 0.0 < stored(np.nextafter(under, 0)) <= 2.0**-24 <= stored(under)
    assert float(np.finfo(np.float16).smallest_subnormal) == float(S.FP16_TINY)
