"""The counter-based draws of spec/counter_rng.py in NumPy uint32 arithmetic (which wraps
modulo 2^32, as the spec's operations do)."""

from __future__ import annotations

import numpy as np

from spec.counter_rng import DRAW_BITS, INDEX_MULTIPLIER, MIX_MULTIPLIERS, MIX_SHIFTS, stream_key


def mix(h: np.ndarray) -> np.ndarray:
    """lowbias32 (spec.counter_rng.mix) of every element."""
    h = np.asarray(h, dtype=np.uint32)
    h = h ^ (h >> np.uint32(MIX_SHIFTS[0]))
    h = h * np.uint32(MIX_MULTIPLIERS[0])
    h = h ^ (h >> np.uint32(MIX_SHIFTS[1]))
    h = h * np.uint32(MIX_MULTIPLIERS[1])
    return h ^ (h >> np.uint32(MIX_SHIFTS[2]))


def draws(seed: int, param_key: int, step: int, purpose: int, n: int) -> np.ndarray:
    """The ``n`` 16-bit draws (int64 values in [0, 2^16)) of one stream, element 0 first."""
    key = np.uint32(stream_key(seed, param_key, step, purpose))
    index = np.arange(n, dtype=np.uint32) * np.uint32(INDEX_MULTIPLIER)
    return (mix(index ^ key) >> np.uint32(32 - DRAW_BITS)).astype(np.int64)
