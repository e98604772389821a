"""AdamW's update rule as sympy expressions: the single source of truth (spec/adamw.md).

Every expression is elementwise in one coordinate of one tensor; ``N`` (numel) only enters
through the scale-invariant eps. ``rule(**flags)`` returns the quantities of one step.
The AdEMAMix variant's schedules come from spec/ademamix.py.
"""

from __future__ import annotations

import sympy as sp

from spec import symbols as s
from spec.ademamix import alpha_schedule, beta3_schedule
from spec.hparams.adamw import ALL as HYPERPARAMETERS
from spec.hparams.adamw import CONSTRAINTS
from spec.write import new_param

__all__ = ["CONSTRAINTS", "HYPERPARAMETERS", "SCALE_INVARIANT_EPS", "VARIANTS", "rule"]

SCALE_INVARIANT_EPS = 1 / sp.sqrt(s.N)  # the eps used when eps=None

STAGE_SYMBOLS = {
    "bc1": r"\mathrm{bc}_1", "bc2": r"\mathrm{bc}_2", "v": "v_t", "D": "D_t", "g_hat": r"\hat{g}_t",
    "m": "m_t", "n": "n_t", "U": "U_t", "p": "p_t",
    "alpha_t": r"\alpha_t", "beta3_t": r"\beta_{3,t}", "m_slow": r"m^{\mathrm{slow}}_t",
}

# Flags that change the shape of the rule (the rest are numbers).
VARIANTS = ("first_moment", "nesterov", "use_atan2", "normed_momentum", "cautious_wd",
            "use_bias_correction", "use_AdEMAMix")


def ema(prev: sp.Expr, new: sp.Expr, beta: sp.Expr) -> sp.Expr:
    return beta * prev + (1 - beta) * new


def rule(
    *,
    first_moment: bool = True,
    nesterov: bool = False,
    use_atan2: bool = False,
    normed_momentum: bool = False,
    cautious_wd: bool = False,
    use_bias_correction: bool = True,
    use_AdEMAMix: bool = False,
    staged: bool = False,
) -> dict[str, sp.Expr]:
    """The quantities of one AdamW step for one element.

    ``first_moment=False`` is the betas[0] = 0 case (no m state; n = g or g_hat).
    Keys: bc1, bc2, v, D, m (if any), g_hat (normed momentum), alpha_t, beta3_t, m_slow
    (AdEMAMix), n, U, p. With atan2, D is sqrt(v/bc2) without eps. AdEMAMix adds
    alpha_t*bc1*m_slow to the numerator, so that after the division by bc1 the slow EMA enters
    uncorrected: U = eta*(m/bc1 + alpha_t*m_slow)/D. ``staged=True`` writes each quantity in
    terms of the symbols of the earlier ones (for the docs); the default substitutes everything
    (for evaluation).
    """
    out: dict[str, sp.Expr] = {}

    def stage(key: str, expr: sp.Expr) -> sp.Expr:
        out[key] = expr
        return sp.Symbol(STAGE_SYMBOLS[key], real=True) if staged else expr

    bc1 = stage("bc1", 1 - s.beta1**s.t if use_bias_correction else sp.Integer(1))
    bc2 = stage("bc2", 1 - s.beta2**s.t if use_bias_correction else sp.Integer(1))
    v_new = stage("v", ema(s.v, s.g**2, s.beta2))
    d_raw = sp.sqrt(v_new) / sp.sqrt(bc2)
    scale = s.ATAN2_SCALE if use_atan2 else sp.Integer(1)
    D = stage("D", d_raw if use_atan2 else d_raw + s.eps)

    def normalise(x: sp.Expr) -> sp.Expr:
        return sp.atan2(x, D) if use_atan2 else x / D

    x = stage("g_hat", normalise(s.g)) if normed_momentum else s.g
    if first_moment:
        m_new = stage("m", ema(s.m, x, s.beta1))
        n = s.c * m_new + (1 - s.c) * x if nesterov else m_new
    else:
        n = x
    if use_AdEMAMix:
        alpha_t = stage("alpha_t", alpha_schedule())
        beta3_t = stage("beta3_t", beta3_schedule(s.beta1))
        m_slow = stage("m_slow", ema(s.m_slow, x, beta3_t))
        n = n + alpha_t * bc1 * m_slow
    n = stage("n", n)
    direction = n if normed_momentum else normalise(n)
    U = stage("U", scale * (s.lr / bc1) * direction)
    stage("p", new_param(U, cautious_wd=cautious_wd))
    return out
