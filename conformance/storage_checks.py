"""Checks of the storage layer's building blocks, fast and reference against independent
definitions: numpy.packbits for the sign packing, a closed-form rank-1 factorization, and the
int8 code formula. Each raises AssertionError (the mutation self-test runs them)."""

from __future__ import annotations

import numpy as np
import torch

from conformance.compare import assert_close
from fast import storage as fs
from reference import storage as rs
from spec.storage_layout import BLOCK, Format, factor_shape

SHAPES = ((1, 1), (3, 5), (7, 8), (4, 17), (97, 47), (17, 1))
FACTOR_SHAPES = {1: (1, 1), 15: (5, 3), 17: (17, 1), 56: (8, 7), 4559: (97, 47), 2048 * 2048: (2048, 2048),
                 2048 * 8192: (4096, 4096), 6 * 5: (6, 5), 2 * 3 * 5 * 7: (15, 14)}


def check_packing_against_numpy() -> None:
    """fast and reference pack exactly like numpy.packbits(axis=1, bitorder="little"), and
    unpacking inverts it; zero counts as negative (bit 0)."""
    rng = np.random.default_rng(11)
    for shape in SHAPES:
        x = rng.normal(size=shape)
        x[rng.random(shape) < 0.2] = 0.0
        bits = x > 0
        expected = np.packbits(bits, axis=1, bitorder="little")
        got_ref = rs.pack_signs(bits)
        got_fast = fs.pack_signs(torch.from_numpy(x) > 0).numpy()
        for name, got in (("reference", got_ref), ("fast", got_fast)):
            if got.dtype != np.uint8 or not np.array_equal(got, expected):
                raise AssertionError(f"{name} sign packing of {shape} differs from numpy.packbits")
        if not np.array_equal(rs.unpack_signs(expected, shape[1]), bits):
            raise AssertionError(f"reference unpack of {shape} does not invert numpy.packbits")
        unpacked = fs.unpack_signs(torch.from_numpy(expected), shape[1]).numpy()
        if not np.array_equal(unpacked, bits):
            raise AssertionError(f"fast unpack of {shape} does not invert numpy.packbits")


def _fast_roundtrip(M: np.ndarray, signed: bool) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Encode ``M`` with fast's factored format and decode it again."""
    d1, d2 = M.shape
    fmt = Format("factored", signed)
    t = fs.allocate(fmt, torch.zeros(d1 * d2))
    shape = fs.working_shape(d1 * d2, True)
    x = torch.from_numpy(M.copy()).view(shape)
    sums = fs.factor_sums(x, signed)
    fs.encode(fmt, x, t, None)
    fs.finish(fmt, t, sums)
    names = ("row", "col", "sign")[: len(t)]
    decoded = fs.decode(fmt, t, d1 * d2, torch.float64, shape).numpy().reshape(d1, d2)
    return {k: v.numpy().copy() for k, v in zip(names, t)}, decoded


def check_factorization() -> None:
    """Against the closed form r_i = sum_j M_ij, c_j = sum_i M_ij / sum M, on several shapes:
    stored factors equal it (fp32), signed rank-1 moments come back exactly (to fp32), zero
    comes back zero, and the factor shape is the near-square rule."""
    rng = np.random.default_rng(12)
    for n, expected_shape in FACTOR_SHAPES.items():
        if factor_shape(n) != expected_shape:
            raise AssertionError(f"factor_shape({n}) = {factor_shape(n)}, expected {expected_shape}")
    for n in (1, 15, 56, 68, 4559, 17):
        shape = factor_shape(n)
        a, b = rng.uniform(0.1, 2.0, shape[0]), rng.uniform(0.1, 2.0, shape[1])
        signs = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
        M = np.outer(a, b) * signs
        factors, decoded = _fast_roundtrip(M, signed=True)
        S = np.abs(M).sum()
        assert_close(factors["row"], np.abs(M).sum(axis=1), "adamw.factor", f"fast row factor {shape}")
        assert_close(factors["col"], np.abs(M).sum(axis=0) / S, "adamw.factor", f"fast column factor {shape}")
        assert_close(decoded, M, "adamw.factor", f"fast rank-1 roundtrip {shape}")
        r, c = rs.factorize(np.abs(M))
        assert_close(rs.reconstruct(r, c), np.abs(M), "spec.reference", f"reference rank-1 roundtrip {shape}")
        if not np.array_equal(factors["sign"], np.packbits(M > 0, axis=1, bitorder="little")):
            raise AssertionError(f"fast signs of {shape} differ from numpy.packbits(M > 0)")
        zero_factors, zero = _fast_roundtrip(np.zeros(shape), signed=True)
        if np.any(zero != 0) or np.any(zero_factors["sign"] != 0):
            raise AssertionError(f"zero moment of {shape} does not stay zero with sign bits 0")


def check_int8() -> None:
    """Codes and scales equal floor(x/s + u) with s = max|x|/qmax per 2048-block, in fast and
    reference, with the same u; a zero block has scale 0 and codes 0."""
    rng = np.random.default_rng(13)
    n = 2 * BLOCK + 77
    for signed in (True, False):
        x = rng.normal(size=n) * np.repeat([1e-3, 10.0, 0.0], [BLOCK, BLOCK, 77])
        x = x if signed else np.abs(x)
        r = rng.integers(0, 2**16, size=n)
        qmax = 127 if signed else 255
        blocks = [x[k:k + BLOCK] for k in range(0, n, BLOCK)]
        s = np.array([np.max(np.abs(b)) / qmax for b in blocks]).astype(np.float32)
        s_el = np.repeat(s.astype(np.float64), [b.size for b in blocks])
        y = np.divide(x, s_el, out=np.zeros(n), where=s_el > 0)
        expected = np.clip(np.floor(y + r / 2.0**16), -qmax if signed else 0, qmax)
        codes_ref, scales_ref = rs.quantize_int8(x, signed, r / 2.0**16)
        codes_fast, scales_fast = fs.quantize(torch.from_numpy(x), signed, torch.from_numpy(r).to(torch.int32))
        codes_fast = codes_fast.to(torch.int8 if signed else torch.uint8)
        runs = (("reference", codes_ref, scales_ref), ("fast", codes_fast.numpy(), scales_fast.numpy()))
        for name, codes, scales in runs:
            assert_close(scales, s, "adamw.fp32.state", f"{name} int8 scales (signed={signed})")
            assert_close(codes, expected, "adamw.int8.code", f"{name} int8 codes (signed={signed})",
                         "adamw.int8.one_code")
            if codes.dtype != (np.int8 if signed else np.uint8):
                raise AssertionError(f"{name} int8 codes have dtype {codes.dtype}")
        if np.any(codes_fast.numpy()[2 * BLOCK:] != 0):
            raise AssertionError("a zero block must quantise to codes 0")
