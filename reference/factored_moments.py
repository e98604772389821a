"""Adafactor's factored second moment in float64 NumPy, as transformers and came-pytorch
compute it (spec/adafactor.md): shared by Adafactor, CAME and Automagic."""

from __future__ import annotations

import numpy as np


def rms(x: np.ndarray) -> float:
    """||x||_2 / sqrt(numel)."""
    return float(np.sqrt(np.sum(np.square(x)) / x.size))


def factor_update(R: np.ndarray, C: np.ndarray, sq: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """The EMAs of the row means (over the last dim) and the column means (over the second
    last) of ``sq``; leading dims are batch dims."""
    return beta * R + (1.0 - beta) * sq.mean(axis=-1), beta * C + (1.0 - beta) * sq.mean(axis=-2)


def estimate(R: np.ndarray, C: np.ndarray) -> np.ndarray:
    """The factored estimate R_i C_j / mean(R) in the tensor's shape (mean over each batch
    matrix's rows)."""
    return R[..., :, None] * C[..., None, :] / R.mean(axis=-1)[..., None, None]


def clip_rms(u: np.ndarray, threshold: float) -> np.ndarray:
    """``u / max(1, RMS(u) / threshold)``."""
    return u / max(1.0, rms(u) / threshold)

