"""The Lion-K direction (spec/lion.md): the sign for kappa = 1, otherwise a normalised power."""

from __future__ import annotations

import math

import numpy as np

NORM_FLOOR = 1e-12  # the L2 norm is clamped below at this before dividing


def lion_k_direction(c: np.ndarray, kappa: float) -> np.ndarray:
    """kappa = 1: sign(c) (sign(0) = 0). Otherwise s = sign(c)|c|^(kappa-1) (s = c for kappa = 2),
    rescaled to the L2 norm sqrt(N) of a dense sign vector: s / max(||s||_2, 1e-12) * sqrt(N)."""
    if kappa == 1.0:
        return np.sign(c)
    s = c if kappa == 2.0 else np.sign(c) * np.abs(c) ** (kappa - 1.0)
    return s / max(float(np.sqrt(np.sum(s * s))), NORM_FLOOR) * math.sqrt(c.size)
