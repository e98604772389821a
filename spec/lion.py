"""Lion's update rule as sympy expressions: the single source of truth (spec/lion.md).

Elementwise in one coordinate of one tensor, except Lion-K's normalisation: ``s_norm`` is the
L2 norm of the whole tensor's ``s`` (a reduction the element cannot see; the conformance
suite evaluates it from this rule's own ``s`` over the tensor).
"""

from __future__ import annotations

import sympy as sp

from spec import symbols as s
from spec.ademamix import ema
from spec.hparams.lion import ALL as HYPERPARAMETERS
from spec.hparams.lion import CONSTRAINTS
from spec.write import new_param

__all__ = ["CONSTRAINTS", "HYPERPARAMETERS", "NORM_FLOOR", "STAGE_SYMBOLS", "VARIANTS", "rule"]

NORM_FLOOR = sp.Float("1e-12")  # Lion-K divides by max(||s||_2, NORM_FLOOR)

STAGE_SYMBOLS = {"c": "c_t", "s": "s_t", "U": "U_t", "m": "m_t", "p": "p_t"}

# ``lion_k`` is kappa_p != 1 (the normalised power instead of the sign).
VARIANTS = ("lion_k", "cautious_wd")


def rule(*, lion_k: bool = False, cautious_wd: bool = False, staged: bool = False) -> dict[str, sp.Expr]:
    """The quantities of one Lion step for one element: c, s (Lion-K only), U, m, p.

    The update direction interpolates with beta1 but the momentum is stored with beta2, so
    the step sees more of the current gradient than the state remembers.
    """
    out: dict[str, sp.Expr] = {}

    def stage(key: str, expr: sp.Expr) -> sp.Expr:
        out[key] = expr
        return sp.Symbol(STAGE_SYMBOLS[key], real=True) if staged else expr

    c = stage("c", ema(s.m, s.g, s.beta1))
    if lion_k:
        # kappa = 2 gives s = c (rotation invariant); both are rescaled to the L2 norm sqrt(N)
        # that a sign vector without zeros has, so one lr suits every kappa.
        s_t = stage("s", sp.sign(c) * sp.Abs(c) ** (s.kappa - 1))
        U = stage("U", s.lr * s_t / sp.Max(s.s_norm, NORM_FLOOR) * sp.sqrt(s.N))
    else:
        U = stage("U", s.lr * sp.sign(c))
    stage("m", ema(s.m, s.g, s.beta2))
    stage("p", new_param(U, cautious_wd=cautious_wd))
    return out
