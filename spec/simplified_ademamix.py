"""Simplified AdEMAMix's update rule as sympy expressions: the single source of truth
(spec/simplified_ademamix.md; the shared pieces are in spec/ademamix.py).

Elementwise in one coordinate of one tensor. ``num_{t-1}`` and ``den_{t-1}`` are the
per-tensor bias sums before the step (both start at 0): the total weight the accumulator and
the second-moment EMA have given their inputs.
"""

from __future__ import annotations

import sympy as sp

from spec import symbols as s
from spec.ademamix import SIMPLIFIED_HALF_LIFE_OFFSET, ema, half_life_warmup, simplified_step_size
from spec.hparams.simplified_ademamix import ALL as HYPERPARAMETERS
from spec.hparams.simplified_ademamix import CONSTRAINTS
from spec.write import decayed

__all__ = ["CONSTRAINTS", "HYPERPARAMETERS", "SCALE_INVARIANT_EPS", "STAGE_SYMBOLS", "VARIANTS", "rule"]

SCALE_INVARIANT_EPS = 1 / sp.sqrt(s.N)  # the eps used when eps=None

STAGE_SYMBOLS = {
    "beta1_t": r"\beta_{1,t}", "num": r"\mathrm{num}_t", "den": r"\mathrm{den}_t", "m": "m_t", "v": "v_t",
    "lr_t": r"\eta_t", "D": "D_t", "n": "n_t", "U": "U_t", "p": "p_t",
}

# ``beta1_warmup`` is beta1_warmup is not None (the half-life warm-up of beta1).
VARIANTS = ("use_bias_correction", "beta1_warmup", "cautious_wd")


def rule(
    *,
    use_bias_correction: bool = True,
    beta1_warmup: bool = False,
    cautious_wd: bool = False,
    staged: bool = False,
) -> dict[str, sp.Expr]:
    """The quantities of one Simplified AdEMAMix step for one element: beta1_t (warm-up only),
    num, den, m, v, lr_t, D, n, U, p.

    With bias correction the update is scaled by sqrt(den/num) and eps by sqrt(den): the
    denominator then reads sqrt(den)*(sqrt(v/den) + eps), the same shape as Adam's
    sqrt(v/bc2) + eps. Without it num = den = 1.
    """
    out: dict[str, sp.Expr] = {}

    def stage(key: str, expr: sp.Expr) -> sp.Expr:
        out[key] = expr
        return sp.Symbol(STAGE_SYMBOLS[key], real=True) if staged else expr

    if beta1_warmup:
        beta1 = stage("beta1_t", half_life_warmup(s.beta1_min, s.beta1, s.T_beta1, SIMPLIFIED_HALF_LIFE_OFFSET))
    else:
        beta1 = s.beta1
    if use_bias_correction:
        num = stage("num", beta1 * s.num + 1)
        den = stage("den", ema(s.den, 1, s.beta2))
    else:
        num, den = stage("num", sp.Integer(1)), stage("den", sp.Integer(1))
    m_new = stage("m", beta1 * s.m + s.g)
    v_new = stage("v", ema(s.v, s.g**2, s.beta2))
    lr_t = stage("lr_t", simplified_step_size(s.lr, beta1))
    D = stage("D", sp.sqrt(v_new) + sp.sqrt(den) * s.eps)
    n = stage("n", m_new + s.alpha_g * s.g)
    U = stage("U", lr_t * sp.sqrt(den / num) * n / D)
    # The decay uses the scaled step size lr_t, as adv_optm passes it to its write.
    stage("p", decayed(s.p, U, cautious_wd=cautious_wd, decay_rate=lr_t * s.wd) - U)
    return out
