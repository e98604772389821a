"""The direction features of spec/directions.md in float64 NumPy, one small function each.

OrthoGrad replaces the gradient; Cautious and Grams rewrite the Adam family's numerator (and
Cautious Lion's signed direction); the stochastic sign, freeze-on-flip and projected adaptivity
act on the sign optimizers' direction; Kourkoutas-beta supplies a dynamic beta2. The
optimizers call them in the order spec/directions.md gives ("Where each feature acts");
:func:`sign_direction` is that order for Lion, ProdigyLion and SignSGD.
conformance/test_spec_directions.py checks each against the sympy rules of spec/directions.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

ORTHO_PARALLEL = 1e-12  # ||g_perp||^2 <= 1e-12 ||g||^2: g is parallel to w and g' = 0
ORTHO_FLOOR = 1e-30  # added to ||w||^2 and ||g_perp|| (flattened) and to the slice sums (iterative)
ORTHO_RELAX = 1.01  # the iterative projection's over-relaxation (adv_optm 2.5.16)
ORTHO_ROUNDS = 3
CAUTIOUS_FLOOR = 1e-3  # the kept fraction is divided by max(mean(phi), 1e-3)
SIGN_FLOOR = 1e-12  # the stochastic sign's row / column maxima are clamped below at this
NOISE_SCALE = 2.0**-15  # xi = (u + 1/2) * 2^-15 - 1: the 2^16 midpoints of (-1, 1)
PROJECTED_FLOOR = 1e-30  # the rank-1 estimate divides by max(mean|x|, 1e-30)


def matrix_view(x: np.ndarray) -> np.ndarray:
    """The (shape[0], -1) view in which the matrix features see a tensor with >= 2 dims."""
    return x.reshape(x.shape[0], -1)


# -- OrthoGrad ---------------------------------------------------------------------------------


def orthograd_flattened(w: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``g_perp = g - <w,g>/(||w||^2 + 1e-30) w``, rescaled to ``||g||``: the whole tensor as one vector."""
    wf, gf = w.reshape(-1), g.reshape(-1)
    g_perp = gf - float(np.dot(wf, gf)) / (float(np.dot(wf, wf)) + ORTHO_FLOOR) * wf
    gg, perp_sq = float(np.dot(gf, gf)), float(np.dot(g_perp, g_perp))
    if perp_sq <= ORTHO_PARALLEL * gg:  # parallel to w: g_perp is rounding residue, its direction noise
        return np.zeros_like(g)
    scale = math.sqrt(gg) / (math.sqrt(perp_sq) + ORTHO_FLOOR)
    return (g_perp * scale).reshape(g.shape)


def orthograd_iterative(w: np.ndarray, g: np.ndarray) -> np.ndarray:
    """adv_optm 2.5.16's alternating projection on the (m, n) = (shape[0], -1) view: three rounds
    of, for the axis k = dim (0 if m > n, else 1) and then the other one, removing each slice's
    component along w (over-relaxed by 1.01) and restoring the slice norms of the original g
    (both floored at 1/sqrt(size along k)). 0-d and 1-D tensors, and tensors whose view has a side
    of 1 (a vector in disguise), use the flattened form."""
    if g.ndim < 2 or 1 in matrix_view(g).shape:
        return orthograd_flattened(w, g)
    w2, x = matrix_view(w), matrix_view(g)
    first = 0 if x.shape[0] > x.shape[1] else 1
    axes = (first, 1 - first)
    floor = {k: 1.0 / math.sqrt(x.shape[k]) for k in axes}
    target = {k: np.maximum(np.sqrt(np.sum(x * x, axis=k, keepdims=True)), floor[k]) for k in axes}
    w_sq = {k: np.sum(w2 * w2, axis=k, keepdims=True) + ORTHO_FLOOR for k in axes}
    for _ in range(ORTHO_ROUNDS):
        for k in axes:
            x = x - ORTHO_RELAX * (np.sum(w2 * x, axis=k, keepdims=True) / w_sq[k]) * w2
            x = x * (target[k] / np.maximum(np.sqrt(np.sum(x * x, axis=k, keepdims=True)), floor[k]))
    return x.reshape(g.shape)


def orthograd(p: np.ndarray, g: np.ndarray, mode: str | None) -> np.ndarray:
    """OrthoGrad's ``g'`` (a new array; ``g`` itself when ``mode`` is None or the tensor has at most
    one element: a single coordinate has no direction orthogonal to w, and the literal formula
    would rescale rounding residue to ||g||)."""
    if mode is None or g.size <= 1:
        return g
    if mode == "iterative":
        return orthograd_iterative(p, g)
    return orthograd_flattened(p, g)


# -- Cautious and Grams -----------------------------------------------------------------------


def cautious(n: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``n * phi / max(mean(phi), 1e-3)`` with ``phi = [n*g > 0]`` (an empty tensor: unchanged)."""
    if n.size == 0:
        return n
    phi = (n * g > 0).astype(np.float64)
    return n * phi / max(float(np.mean(phi)), CAUTIOUS_FLOOR)


def grams(n: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The gradient's sign with the numerator's magnitude: ``sign(g) * |n|``."""
    return np.sign(g) * np.abs(n)


def mask_numerator(n: np.ndarray, g: np.ndarray, h: Mapping[str, Any]) -> np.ndarray:
    """The Adam family's numerator after Grams or Cautious (whichever ``h`` enables; at most one).
    ``.get``: hand-built hyperparameter dicts written before these features lack the keys."""
    if h.get("grams", False):
        return grams(n, g)
    if h.get("cautious", False):
        return cautious(n, g)
    return n


# -- the sign features ------------------------------------------------------------------------


def stochastic_sign(x: np.ndarray, u: np.ndarray | None) -> np.ndarray:
    """0-d and 1-D: ``sign(x)`` (``u`` unused). >= 2 dims, on the (shape[0], -1) view: rows, then
    columns divided by their max |x| (clamped at 1e-12), then ``sign(x + xi)`` with
    ``xi = (u + 1/2) 2^-15 - 1`` from the 16-bit integers ``u`` (one per element, flat order)."""
    if x.ndim < 2 or x.size == 0:
        return np.sign(x)
    y = matrix_view(x)
    y = y / np.maximum(np.max(np.abs(y), axis=1, keepdims=True), SIGN_FLOOR)
    y = y / np.maximum(np.max(np.abs(y), axis=0, keepdims=True), SIGN_FLOOR)
    xi = (np.asarray(u, dtype=np.float64).reshape(y.shape) + 0.5) * NOISE_SCALE - 1.0
    return np.sign(y + xi).reshape(x.shape)


def freeze(direction: np.ndarray, x: np.ndarray, prev_bits: np.ndarray,
           first_step: bool) -> tuple[np.ndarray, np.ndarray]:
    """Freeze-on-flip: ``(direction, bits)`` with the direction zeroed where ``[x > 0]`` differs
    from ``prev_bits`` (1.0/0.0 of the previous step; ignored on the first step) and the new bits
    ``[x > 0]`` as 1.0/0.0 (the raw ones, also where the direction was zeroed)."""
    positive = x > 0
    if not first_step:
        direction = np.where(positive != (np.asarray(prev_bits) > 0.5), 0.0, direction)
    return direction, positive.astype(np.float64)


def projected_scale(x: np.ndarray) -> np.ndarray:
    """Projected adaptivity's l in the shape of ``x``: ``mean|x|`` for 0-d and 1-D tensors; for
    >= 2 dims, on the (shape[0], -1) view, ``row_mean_i * col_mean_j / max(mean|x|, 1e-30)`` of |x|
    (the rank-1 estimate of |x|). An empty tensor gives an empty l."""
    a = np.abs(x)
    if a.size == 0:
        return np.zeros(x.shape)
    if x.ndim < 2:
        return np.full(x.shape, float(np.mean(a)))
    a2 = matrix_view(a)
    ell = np.mean(a2, axis=1, keepdims=True) * np.mean(a2, axis=0, keepdims=True)
    return (ell / max(float(np.mean(a2)), PROJECTED_FLOOR)).reshape(x.shape)


def sign_direction(
    x: np.ndarray, g: np.ndarray, h: Mapping[str, Any], *, direction: np.ndarray | None = None,
    u: np.ndarray | None = None, prev_bits: np.ndarray | None = None, first_step: bool = True,
    cautious_on: bool = False,
) -> dict[str, Any]:
    """The sign optimizers' direction from the raw direction ``x`` (spec/directions.md, steps 4-5):
    ``sign(x)`` (``direction`` when given: Lion-K's; the stochastic sign with the draws ``u``),
    Cautious against ``g'`` (``cautious_on``: Lion and ProdigyLion), freeze-on-flip against
    ``prev_bits`` and projected adaptivity. Returns ``dir`` (not yet scaled by l or the learning
    rate), ``ell`` (None without projected adaptivity) and ``bits`` (the new prev_sign, None
    without freeze-on-flip). ``.get``: hand-built dicts may predate these features."""
    if direction is None:
        direction = stochastic_sign(x, u) if h.get("stochastic_sign", False) else np.sign(x)
    if cautious_on:
        direction = cautious(direction, g)
    bits = None
    if h.get("freeze_on_flip", False):
        direction, bits = freeze(direction, x, prev_bits, first_step)
    ell = projected_scale(x) if h.get("projected_adaptivity", False) else None
    return {"dir": direction, "ell": ell, "bits": bits}


def signed_update(x: np.ndarray, g: np.ndarray, h: Mapping[str, Any], step_size: float, out: dict[str, Any],
                  **kw: Any) -> np.ndarray:
    """``step_size * dir`` (times l with projected adaptivity) of :func:`sign_direction`, recording
    ``ell`` and the new ``prev_sign`` bits in ``out`` when those features are on."""
    d = sign_direction(x, g, h, **kw)
    if d["ell"] is not None:
        out["ell"] = d["ell"]
    if d["bits"] is not None:
        out["prev_sign"] = d["bits"]
    return step_size * (d["dir"] if d["ell"] is None else d["dir"] * d["ell"])


# -- Kourkoutas-beta --------------------------------------------------------------------------


def kourkoutas_r(rho: float, r: float, alpha: float) -> float:
    """The bucket's EMA of its gradient norm after this step: ``alpha r + (1 - alpha) rho`` (r_0 = 0)."""
    return alpha * r + (1.0 - alpha) * rho


def kourkoutas_beta2_from_r(rho: float, r_new: float, t: int, h: Mapping[str, Any]) -> float:
    """beta2_t from the bucket's norm ``rho``, its EMA ``r_new`` (this step's included) and the
    parameter's 1-based step ``t``: ``x = rho / (r_new + tiny_spike)``, ``sun = x / (1 + x)``, the
    target ``betas[1] - (betas[1] - beta2_min) sun``, blended in from betas[1] over k_warmup_steps."""
    beta2 = h["betas"][1]
    x = rho / (r_new + h["tiny_spike"])
    sun = x / (1.0 + x)
    target = beta2 - (beta2 - h["beta2_min"]) * sun
    warmup = h["k_warmup_steps"]
    w = 1.0 if warmup == 0 else min(1.0, t / warmup)
    return (1.0 - w) * beta2 + w * target


def kourkoutas_beta2(rho: float, r: float, t: int, h: Mapping[str, Any]) -> tuple[float, float]:
    """``(beta2_t, r_new)`` from the bucket's gradient norm ``rho`` this step, its EMA ``r`` before
    the step and the parameter's 1-based step ``t`` (a bucket of one tensor, or of one group)."""
    r_new = kourkoutas_r(rho, r, h["ema_alpha"])
    return kourkoutas_beta2_from_r(rho, r_new, t, h), r_new


def second_moment_beta(h: Mapping[str, Any], t: int) -> tuple[float, float]:
    """``(beta2, prod)``: the decay of this step's second-moment EMA and the product of every
    decay so far (bias correction ``1 - prod``): Kourkoutas-beta's dynamic values, handed in by
    the optimizer as ``kourkoutas_beta2_t`` and ``kourkoutas_beta2_prod``, else ``betas[1]``
    and ``betas[1]^t``."""
    if h.get("kourkoutas_beta", False):
        return h["kourkoutas_beta2_t"], h["kourkoutas_beta2_prod"]
    beta2 = h["betas"][1]
    return beta2, beta2**t
