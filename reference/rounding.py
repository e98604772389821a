"""Literal float rounding in NumPy, at the bit level (spec/stochastic_rounding.md).

Parameters of a low-precision dtype are held as float64 arrays whose values are exactly
representable in that dtype; these functions produce such values.
"""

from __future__ import annotations

import numpy as np

PARAM_DTYPES = ("float64", "float32", "bfloat16", "float16")


def fp32_bits(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).view(np.uint32)


def from_fp32_bits(bits: np.ndarray) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint32).view(np.float32).astype(np.float64)


def round_bf16_nearest(x: np.ndarray) -> np.ndarray:
    """fp32 -> bf16 round-to-nearest-even; NaN stays NaN (quietened)."""
    b = fp32_bits(x).astype(np.uint64)
    lsb = (b >> 16) & 1
    rounded = ((b + 0x7FFF + lsb) & 0xFFFF0000).astype(np.uint32)
    out = from_fp32_bits(rounded)
    return np.where(np.isnan(np.asarray(x, dtype=np.float64)), np.nan, out)


def stochastic_round_bf16(x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """SR of fp32 ``x`` to bf16: ``bits(out) = (bits(x) + r) & 0xFFFF0000``, r in [0, 2^16).

    The addition is on the 32-bit pattern; a carry out of the mantissa moves to the next
    binade (or to Inf at the top of the range). NaN is returned as NaN: the plain trick
    would turn a NaN whose payload sits only in the low 16 bits into Inf.
    """
    r = np.asarray(r, dtype=np.uint64)
    if np.any(r >= 2**16):
        raise ValueError("stochastic rounding bits must lie in [0, 2**16)")
    b = fp32_bits(x).astype(np.uint64)
    out = from_fp32_bits(((b + r) & 0xFFFF0000).astype(np.uint32))
    return np.where(np.isnan(np.asarray(x, dtype=np.float64)), np.nan, out)


def write(P: np.ndarray, dtype: str, *, stochastic: bool, bits: np.ndarray | None) -> np.ndarray:
    """The parameter write: float64 result ``P`` stored in ``dtype`` (values held as float64).

    Low-precision parameters are first rounded to fp32 (the fast path's working precision).
    """
    if dtype == "float64":
        return P
    p32 = P.astype(np.float32)
    if dtype == "float32":
        return p32.astype(np.float64)
    if dtype == "float16":
        return p32.astype(np.float16).astype(np.float64)
    if dtype == "bfloat16":
        if stochastic:
            if bits is None:
                raise ValueError("bfloat16 with stochastic rounding needs rounding bits")
            return stochastic_round_bf16(p32, np.asarray(bits).reshape(P.shape))
        return round_bf16_nearest(p32)
    raise ValueError(f"Invalid param_dtype={dtype!r}: expected one of {PARAM_DTYPES}")
