"""The learning-rate mask's 8-bit code (spec/automagic.md, "The 8-bit mask"), in NumPy.

A code c in 0..T stands for the level l_c of ``spec.storage_layout.mask_code(low, high)``. A
value x in [l_k, l_{k+1}] is written as k + 1 with probability (x - l_k) / (l_{k+1} - l_k) and
as k otherwise, so the decoded mask's expectation is x (to 2^-16 of a level step) and no bump
is lost to the code's resolution; every decoded value lies in [low, high].
"""

from __future__ import annotations

import numpy as np

from spec.storage_layout import SR_BITS, mask_levels

NEAREST = 2 ** (SR_BITS - 1)  # the draw that rounds to the nearer level (ties to the lower one)


def levels(bounds: tuple[float, float]) -> np.ndarray:
    return np.asarray(mask_levels(*bounds), dtype=np.float64)


def encode_mask(x: np.ndarray, bounds: tuple[float, float], r: np.ndarray) -> np.ndarray:
    """The codes of ``x`` (clamped to [l_0, l_T]) with the 16-bit draws ``r``."""
    lv = levels(bounds)
    x = np.clip(np.asarray(x, dtype=np.float64), lv[0], lv[-1])
    if lv.size == 1:  # one level: equal bounds
        return np.zeros(x.shape, dtype=np.uint8)
    k = np.searchsorted(lv[1:-1], x, side="right")  # the largest k <= T - 1 with l_k <= x
    lo, hi = lv[k], lv[k + 1]
    up = np.asarray(r, dtype=np.float64) < (x - lo) / (hi - lo) * 2.0**SR_BITS
    return (k + up).astype(np.uint8)


def decode_mask(c: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    return levels(bounds)[np.asarray(c, dtype=np.int64)]
