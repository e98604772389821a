"""The blockwise 8-bit and 4-bit minifloat codes and the scaled float16 states, literal to
spec/state_storage.md, in NumPy.

Written from the definitions (levels, binades, floor of a position plus a uniform draw) with
``numpy.frexp`` and float64 arithmetic, which is exact here: every quantity is a float32
value times a power of two. ``fast.codes`` computes the same codes with integer operations on
float32 bit patterns; the suite checks that the two agree bit for bit.
"""

from __future__ import annotations

import numpy as np

from spec.storage_layout import (
    FP16_BLOCK,
    FP16_TINY,
    FP16_TOP_EXPONENT,
    MIN_NORMAL_EXPONENT,
    NIBBLE_GROUP,
    SR_BITS,
    Code,
)


def _f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def block_absmax(x32: np.ndarray, block: int) -> np.ndarray:
    """max |x| over each block of ``block`` consecutive elements (the last one may be short)."""
    flat = np.abs(x32.reshape(-1))
    return np.array([flat[k:k + block].max() for k in range(0, flat.size, block)], dtype=np.float32)


def scales(absmax: np.ndarray, code: Code) -> tuple[np.ndarray, np.ndarray]:
    """``(s, inv)``: the stored scale ``s = fl32(absmax / top)`` and the multiplier
    ``inv = fl32(fl32(1 / absmax) top)`` that normalises (both 0 for an all-zero block)."""
    top = np.float32(code.top)
    safe = np.where(absmax > 0, absmax, np.float32(1)).astype(np.float32)
    inv = np.where(absmax > 0, (np.float32(1) / safe).astype(np.float32) * top, 0).astype(np.float32)
    return (absmax / top).astype(np.float32), inv


def level(c: np.ndarray, code: Code) -> np.ndarray:
    """The value of magnitude code ``c``: ``2^(a - bias) (1 + f/2^m)``, or for signed codes
    with ``a = 0`` the subnormal ``f 2^(1 - bias - m)``."""
    c = np.asarray(c, dtype=np.int64)
    a, f = c >> code.man_bits, c & (2**code.man_bits - 1)
    normal = np.ldexp(1.0 + f / 2.0**code.man_bits, a - code.bias)
    if not code.signed:
        return normal
    sub = np.ldexp(f.astype(np.float64), 1 - code.bias - code.man_bits)
    return np.where(a == 0, sub, normal)


def _normal_code(y: np.ndarray, r: np.ndarray, code: Code) -> np.ndarray:
    """``a 2^m + floor(f + r / 2^16)`` for y in binade a (y >= 2^-bias): f = (y / 2^(a - bias)
    - 1) 2^m is the position inside the binade in level steps; a carry reaches binade a + 1."""
    mant, exp = np.frexp(np.where(y > 0, y, 1.0))  # y = mant 2^exp, mant in [0.5, 1)
    a = exp - 1 + code.bias
    f = (2.0 * mant - 1.0) * 2.0**code.man_bits
    return a * 2**code.man_bits + np.floor(f + r / 2.0**SR_BITS)


def magnitude_code(y: np.ndarray, r: np.ndarray, code: Code) -> np.ndarray:
    """The magnitude code of the normalised ``y = fl32(|x| inv)`` (float32 values) with draws
    ``r`` (16-bit integers; 2^15 rounds to nearest).

    Unsigned (zero-free): below the lowest binade, the smallest level (code 0). Signed: below
    the lowest normal level L1 = 2^(1 - bias), the subnormal steps of size L1 / 2^m, rounded
    as the binade [L1, 2 L1) after adding L1 in float32 (same step, same draw)."""
    y = np.asarray(y, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    low = code.smallest_normal
    if code.signed:
        shifted = (_f32(y) + np.float32(low)).astype(np.float64)
        c = np.where(y >= low, _normal_code(y, r, code), _normal_code(shifted, r, code) - 2**code.man_bits)
    else:
        c = np.where(y >= low, _normal_code(y, r, code), 0)
    return np.clip(c, 0, code.magnitudes - 1).astype(np.int64)


def encode(x: np.ndarray, code: Code, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes (one per element, uint8, unpacked) and fp32 block scales of the float32 value of
    ``x``. A signed code puts the sign in bit ``exp_bits + man_bits``, only on nonzero codes."""
    x32 = _f32(x).reshape(-1)
    s, inv = scales(block_absmax(x32, code.block), code)
    per_element = np.repeat(inv, code.block)[: x32.size]
    y = (np.abs(x32) * per_element).astype(np.float32)  # fl32(|x| inv)
    c = magnitude_code(y, np.asarray(r).reshape(-1), code)
    if code.signed:
        c = np.where((x32 < 0) & (c > 0), c + code.magnitudes, c)
    return c.astype(np.uint8), s


def decode(codes: np.ndarray, s: np.ndarray, code: Code) -> np.ndarray:
    """float64 values ``+-level(c) s_b`` of unpacked ``codes``."""
    c = np.asarray(codes, dtype=np.int64).reshape(-1)
    sign = np.ones(c.size)
    if code.signed:
        sign = np.where(c >= code.magnitudes, -1.0, 1.0)
        c = c % code.magnitudes
    scale = np.repeat(np.asarray(s, dtype=np.float64), code.block)[: c.size]
    return sign * level(c, code) * scale


def _nibble_pairs(n: int) -> list[tuple[int, int, int]]:
    """(byte, low element, high element or -1) of every byte of n packed 4-bit codes: groups of
    NIBBLE_GROUP elements, byte j of a group of L holding elements j and j + ceil(L / 2)."""
    out = []
    for start in range(0, n, NIBBLE_GROUP):
        size = min(NIBBLE_GROUP, n - start)
        half = (size + 1) // 2
        for j in range(half):
            high = start + j + half if j + half < size else -1
            out.append((start // 2 + j, start + j, high))
    return out


def pack_nibbles(codes: np.ndarray) -> np.ndarray:
    """4-bit codes two per byte (spec/state_storage.md): see ``_nibble_pairs``."""
    c = np.asarray(codes, dtype=np.uint8).reshape(-1)
    out = np.zeros((c.size + 1) // 2, dtype=np.uint8)
    for byte, low, high in _nibble_pairs(c.size):
        out[byte] = c[low] | (np.uint8(c[high] << 4) if high >= 0 else np.uint8(0))
    return out


def unpack_nibbles(packed: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.uint8)
    for byte, low, high in _nibble_pairs(n):
        out[low] = packed[byte] & 0xF
        if high >= 0:
            out[high] = packed[byte] >> 4
    return out


# -- scaled float16 -----------------------------------------------------------------------


def fp16_scales(x32: np.ndarray) -> np.ndarray:
    """Per block of FP16_BLOCK: ``2^(floor(log2 absmax) - FP16_TOP_EXPONENT)`` (at least
    2^-126), a power of two that puts the block's largest |x| in [2^14, 2^15), well inside
    float16's normal range, or 0 for an all-zero block."""
    absmax = block_absmax(x32, FP16_BLOCK).astype(np.float64)
    _, exp = np.frexp(np.where(absmax > 0, absmax, 1.0))  # absmax in [2^(exp-1), 2^exp)
    power = np.maximum(exp - 1 - FP16_TOP_EXPONENT, MIN_NORMAL_EXPONENT - 127)
    return np.where(absmax > 0, np.ldexp(1.0, power), 0.0).astype(np.float32)


def encode_fp16(x: np.ndarray, signed: bool) -> tuple[np.ndarray, np.ndarray]:
    """float16 values ``fl16(x / s_b)`` (round to nearest; the division by a power of two is
    exact; 0 for a block with s_b = 0) and the scales. Non-negative states (second moments)
    are zero-free: a positive value that rounds to 0 is stored as the smallest float16, 2^-24."""
    x32 = _f32(x).reshape(-1)
    s = fp16_scales(x32)
    inv = np.where(s > 0, 1.0 / np.where(s > 0, s, 1.0), 0.0)  # a power of two: exact
    scaled = x32 * np.repeat(inv, FP16_BLOCK)[: x32.size]  # (a block of zeros keeps the signs of its zeros)
    h = scaled.astype(np.float32).astype(np.float16)
    if not signed:
        h = np.where((x32 > 0) & (h == 0), np.float16(FP16_TINY), h)
    return h, s


def decode_fp16(values: np.ndarray, s: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    return v * np.repeat(np.asarray(s, dtype=np.float64), FP16_BLOCK)[: v.size]
