"""Tolerance-checked comparison of arrays, driven by the tolerance table."""

from __future__ import annotations

import math

import numpy as np
import torch

from conformance.tolerances import Tolerance, tol


def as_array(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if torch.is_tensor(x):
        return x.detach().to("cpu", torch.float64).numpy().copy()  # never alias fast memory
    return np.asarray(x, dtype=np.float64)


def violations(actual: np.ndarray, expected: np.ndarray, t: Tolerance) -> np.ndarray:
    """Boolean mask of elements outside ``t`` (NaN must meet NaN)."""
    nan_a, nan_e = np.isnan(actual), np.isnan(expected)
    with np.errstate(invalid="ignore"):
        scale = float(np.max(np.abs(expected[np.isfinite(expected)]), initial=0.0)) if t.atol_of_max else 0.0
        far = ~(np.abs(actual - expected) <= t.atol + t.atol_of_max * scale + t.rtol * np.abs(expected))
    return (nan_a != nan_e) | (far & ~(nan_a & nan_e) & (actual != expected))  # equal infinities agree


def assert_close(actual, expected, tol_id: str, what: str, one_ulp_id: str | None = None) -> None:
    """Raise AssertionError naming ``what`` unless ``actual`` matches within ``tol_id``.

    With ``one_ulp_id``, the elements that ``tol_id``'s error budget lets through must still
    lie within that (looser) tolerance.
    """
    a, e = as_array(actual), as_array(expected)
    if a.shape != e.shape:
        raise AssertionError(f"{what}: shape {a.shape} != expected {e.shape}")
    t = tol(tol_id)
    bad = violations(a, e, t)
    allowed = math.ceil(t.max_error_rate * a.size)
    n_bad = int(bad.sum())
    if n_bad > allowed:
        diff = np.nan_to_num(np.abs(a - e), nan=np.inf)  # a NaN mismatch is the worst
        worst = np.unravel_index(np.argmax(np.where(bad, diff, -1.0)), a.shape) if a.ndim else ()
        raise AssertionError(
            f"{what}: {n_bad}/{a.size} elements outside {tol_id} (rtol={t.rtol}, atol={t.atol}, "
            f"allowed {allowed}); worst at {worst}: {a[worst]!r} vs expected {e[worst]!r}"
        )
    if one_ulp_id is not None and n_bad:
        assert_close(a[bad], e[bad], one_ulp_id, f"{what} (elements past {tol_id})")
