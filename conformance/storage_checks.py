"""Checks of the storage layer's building blocks, fast and reference against independent
definitions: numpy.packbits for the sign packing, a closed-form rank-1 factorization, and the
8-bit / 4-bit codes and scaled float16 against reference.codes bit for bit. Each raises
AssertionError (the mutation self-test runs them)."""

from __future__ import annotations

import numpy as np
import torch

from conformance.compare import assert_close
from fast import storage as fs
from reference import codes as rcodes
from reference import storage as rs
from spec.storage_layout import CODES, FP16_BLOCK, NIBBLE_GROUP, Format, factor_shape

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
    shape = fs.working_shape(d1 * d2, (fmt,))
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


def contrasting_blocks(block: int, signed: bool, seed: int) -> np.ndarray:
    """Three blocks and a partial one of very different magnitudes (1e-3, 10, 0, 1e-30) with
    exact zeros and a negative zero inside: a per-tensor scale or a zero level shows."""
    rng = np.random.default_rng(seed)
    sizes = [block, block, block, 77]
    x = rng.normal(size=sum(sizes)) * np.repeat([1e-3, 10.0, 0.0, 1e-30], sizes)
    x[5] = 0.0
    x[6] = -0.0
    return (x if signed else np.abs(x)).astype(np.float32)


def _fast_format_roundtrip(fmt: Format, x: np.ndarray, r: np.ndarray,
                           shape: tuple[int, ...] | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """fast's stored tensors for ``x`` (through storage.encode, in the working ``shape``: flat
    unless given) and their decoded values (flat)."""
    shape = (x.size,) if shape is None else shape
    t = fs.allocate(fmt, torch.zeros(x.size))
    views = fs.kernel_views(fmt, list(t), shape)
    fs.encode(fmt, torch.from_numpy(x).view(shape), views, torch.from_numpy(r.astype(np.int32)).view(shape))
    decoded = fs.decode(fmt, views, x.size, torch.float32, shape).reshape(-1).numpy()
    return [v.numpy().copy() for v in t], decoded


def _check_row_shape(fmt: Format, x: np.ndarray, r: np.ndarray, label: str) -> None:
    """The kernels' working shape of whole blocks (rows, or rows of sub-blocks for 4-bit) must
    store the same bytes and scales as the flat path."""
    group = max(fmt.block, NIBBLE_GROUP if fmt.kind == "int4" else 0)
    m = x.size // group * group
    shape = fs.working_shape(m, (fmt,))
    if m == 0 or len(shape) < 2:
        raise AssertionError(f"{label}: no working shape of whole blocks for {m} elements ({shape})")
    flat, flat_decoded = _fast_format_roundtrip(fmt, x[:m], r[:m])
    rows, rows_decoded = _fast_format_roundtrip(fmt, x[:m], r[:m], shape)
    if not all(np.array_equal(a, b) for a, b in zip(flat, rows)) or not np.array_equal(flat_decoded, rows_decoded):
        raise AssertionError(f"{label}: working shape {shape} stores other bytes than the flat layout")


def nibbles_by_definition(codes: np.ndarray) -> np.ndarray:
    """The packed bytes as spec/state_storage.md words them, written independently of both
    implementations: per group of NIBBLE_GROUP elements (the last of L may be shorter), byte j
    = element j + 16 * element j + ceil(L / 2), a missing element counting 0."""
    out = []
    for start in range(0, codes.size, NIBBLE_GROUP):
        group = [int(v) for v in codes[start:start + NIBBLE_GROUP]]
        half = (len(group) + 1) // 2
        out += [group[j] + 16 * (group[j + half] if j + half < len(group) else 0) for j in range(half)]
    return np.array(out, dtype=np.uint8)


def check_codes() -> None:
    """Every code and the scaled float16 format, fast (storage.encode, as the kernels call it)
    against reference.codes: identical codes, nibbles and scales, bit for bit, on contrasting
    blocks; decoded values of the stored bytes agree; a zero block decodes to 0 and no nonzero
    second moment decodes to 0; 4-bit nibbles are in the specified order."""
    for (kind, signed), code in CODES.items():
        x = contrasting_blocks(code.block, signed, seed=code.block + signed)
        r = np.random.default_rng(code.bits).integers(0, 2**16, size=x.size)
        expected_codes, expected_scales = rcodes.encode(x, code, r)
        stored, decoded = _fast_format_roundtrip(Format(kind, signed), x, r)
        codes = stored[0] if kind == "int8" else rcodes.unpack_nibbles(stored[0], x.size)
        label = f"{kind} {'signed' if signed else 'non-negative'}"
        if stored[0].dtype != np.uint8 or not np.array_equal(codes, expected_codes):
            raise AssertionError(f"{label}: fast codes differ from reference.codes at "
                                 f"{np.flatnonzero(codes != expected_codes)[:5]}")
        if kind == "int4" and not np.array_equal(stored[0], nibbles_by_definition(expected_codes)):
            raise AssertionError(f"{label}: nibbles not in the specified order")
        _check_row_shape(Format(kind, signed), x, r, label)
        if not np.array_equal(stored[1], expected_scales):
            raise AssertionError(f"{label}: fast block scales differ from reference.codes")
        want = rcodes.decode(expected_codes, expected_scales, code)
        assert_close(decoded, want, "adamw.fp32.state", f"{label}: decoded values")
        zero_block = slice(2 * code.block, 3 * code.block)
        if np.any(decoded[zero_block] != 0):
            raise AssertionError(f"{label}: a block of zeros must decode to 0")
        if not signed and np.any(decoded[x > 0] <= 0):
            raise AssertionError(f"{label}: a nonzero second moment decoded to 0")
    for signed in (True, False):
        x = contrasting_blocks(FP16_BLOCK, signed, seed=16)
        x[-5:] = [1.0, 1e-20, 1e-30, 2.0**-149, 0.0]  # beyond float16's range below the maximum
        values, scales = rcodes.encode_fp16(x, signed)
        no_draws = np.zeros(x.size, dtype=np.int64)
        stored, decoded = _fast_format_roundtrip(Format("fp16", signed, "float16"), x, no_draws)
        same_bits = np.array_equal(stored[0].view(np.uint16), values.view(np.uint16))
        if not (same_bits and np.array_equal(stored[1], scales)):
            raise AssertionError(f"scaled float16 states (signed={signed}) differ from reference.codes")
        if not signed and np.any(decoded[x > 0] <= 0):
            raise AssertionError("a nonzero float16 second moment decoded to 0")
