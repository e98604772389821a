"""SignSGD's update rule as sympy expressions: the single source of truth (spec/signsgd.md)."""

from __future__ import annotations

import sympy as sp

from spec import symbols as s
from spec.ademamix import ema
from spec.hparams.signsgd import ALL as HYPERPARAMETERS
from spec.hparams.signsgd import CONSTRAINTS
from spec.write import new_param

__all__ = ["CONSTRAINTS", "HYPERPARAMETERS", "STAGE_SYMBOLS", "VARIANTS", "rule"]

STAGE_SYMBOLS = {"g_hat": r"\hat{g}_t", "m": "m_t", "n": "n_t", "U": "U_t", "p": "p_t"}

# ``first_moment`` is momentum > 0 (momentum = 0 keeps no state and steps along sign(g)).
VARIANTS = ("first_moment", "nesterov", "normed_momentum", "Simplified_AdEMAMix", "cautious_wd")


def rule(
    *,
    first_moment: bool = True,
    nesterov: bool = False,
    normed_momentum: bool = False,
    Simplified_AdEMAMix: bool = False,
    cautious_wd: bool = False,
    staged: bool = False,
) -> dict[str, sp.Expr]:
    """The quantities of one SignSGD step for one element: g_hat (normed momentum), m (if
    momentum > 0), n, U, p.

    Normed momentum averages sign(g) and steps along the average itself (a value in [-1, 1]),
    so it is the only variant whose update is not a pure sign. With Nesterov it mixes in
    sign(g) at the magnitude of the previous momentum, |m_{t-1}|, as adv_optm does.
    """
    out: dict[str, sp.Expr] = {}

    def stage(key: str, expr: sp.Expr) -> sp.Expr:
        out[key] = expr
        return sp.Symbol(STAGE_SYMBOLS[key], real=True) if staged else expr

    x = stage("g_hat", sp.sign(s.g)) if normed_momentum else s.g
    if not first_moment:
        n = x
    elif Simplified_AdEMAMix:
        m_new = stage("m", s.mu * s.m + x)
        n = m_new + s.alpha_g * x
    else:
        m_new = stage("m", ema(s.m, x, s.mu))
        if nesterov:
            n = s.c * m_new + (1 - s.c) * (sp.Abs(s.m) * x if normed_momentum else x)
        else:
            n = m_new
    n = stage("n", n)
    U = stage("U", s.lr * (n if normed_momentum else sp.sign(n)))
    stage("p", new_param(U, cautious_wd=cautious_wd))
    return out
