"""Adafactor's update rule as sympy expressions: the single source of truth (spec/adafactor.md).

One element of one tensor. The factored variant's row and column means, the mean of the new
row factors and the RMS values are tensor-wide reductions; they appear as symbols
(spec.symbols) whose values the conformance suite computes from the earlier lines.
"""

from __future__ import annotations

import sympy as sp

from spec import symbols as s
from spec.ademamix import ema
from spec.hparams.adafactor import ALL as HYPERPARAMETERS
from spec.hparams.adafactor import CONSTRAINTS
from spec.write import decayed

__all__ = ["CONSTRAINTS", "HYPERPARAMETERS", "STAGE_SYMBOLS", "VARIANTS", "clipped", "rule", "second_moment"]

STAGE_SYMBOLS = {
    "rho": r"\rho_t", "lr_t": r"\eta_t", "beta2_t": r"\beta_{2,t}", "R": "R_{i,t}", "C": "C_{j,t}",
    "v": "v_t", "u": "u_t", "u_hat": r"\hat{u}_t", "m": "m_t", "U": "U_t", "p": "p_t",
}
RELATIVE_STEP_CAP = sp.Rational(1, 100)  # rho_t = min(1e-2, 1/sqrt(t))
WARMUP_SLOPE = sp.Rational(1, 10**6)  # with warmup_init: min(1e-6 t, 1/sqrt(t))

# ``factored``: the tensor has two or more dims; ``first_moment``: beta1 is not None.
VARIANTS = ("factored", "first_moment", "relative_step", "scale_parameter", "warmup_init")


# (R before, C before, row mean, column mean, mean of the new R) of the squared gradient
SQUARED_GRADIENT = (s.R, s.C, s.row_mean, s.col_mean, s.R_mean)


def second_moment(stage, beta: sp.Expr, eps: sp.Expr, *, factored: bool, key: str = "",
                  x: sp.Expr = s.g**2, dense: sp.Expr = s.v, symbols: tuple = SQUARED_GRADIENT) -> sp.Expr:
    """Adafactor's estimate of the EMA of ``x + eps`` after this step (``stage`` records the
    lines): factored, R_i and C_j are EMAs of the row and column means of x + eps and the
    estimate is R_i C_j / mean(R); else an EMA of x + eps itself (``dense`` before the step).
    ``key`` prefixes the stage names and ``symbols`` are the factors' symbols: CAME uses the same
    estimator for its residual."""
    R0, C0, row_mean, col_mean, R_mean = symbols
    if factored:
        R = stage(f"{key}R", ema(R0, row_mean, beta))
        C = stage(f"{key}C", ema(C0, col_mean, beta))
        return R * C / R_mean
    return stage(f"{key}v", ema(dense, x + eps, beta))


def clipped(u: sp.Expr) -> sp.Expr:
    """``u / max(1, RMS(u) / d)``: the update's RMS is clipped to d."""
    return u / sp.Max(1, s.rms_u / s.clip_d)


def rule(
    *,
    factored: bool = True,
    first_moment: bool = False,
    relative_step: bool = True,
    scale_parameter: bool = True,
    warmup_init: bool = False,
    staged: bool = False,
) -> dict[str, sp.Expr]:
    """The quantities of one Adafactor step for one element: rho (the relative step, or lr),
    lr_t, beta2_t, the new factors R and C (or v), u, u_hat, m (with beta1), U and p."""
    if warmup_init and not relative_step:
        raise ValueError("warmup_init needs relative_step")
    out: dict[str, sp.Expr] = {}

    def stage(key: str, expr: sp.Expr) -> sp.Expr:
        out[key] = expr
        return sp.Symbol(STAGE_SYMBOLS[key], real=True) if staged else expr

    if relative_step:
        start = WARMUP_SLOPE * s.t if warmup_init else RELATIVE_STEP_CAP
        rho = stage("rho", sp.Min(start, 1 / sp.sqrt(s.t)))
    else:
        rho = stage("rho", s.lr)
    lr_t = stage("lr_t", sp.Max(s.eps2, s.rms_p) * rho if scale_parameter else rho)
    beta2 = stage("beta2_t", 1 - s.t**s.decay_gamma)
    V = second_moment(stage, beta2, s.eps1, factored=factored)
    u = stage("u", s.g / sp.sqrt(V))
    step = lr_t * stage("u_hat", clipped(u))
    U = stage("U", stage("m", ema(s.m, step, s.beta1)) if first_moment else step)
    stage("p", decayed(s.p, U, cautious_wd=False, decay_rate=lr_t * s.wd) - U)
    return out
