"""CAME's update rule as sympy expressions: the single source of truth (spec/came.md).

One element of one tensor; the factored means and RMS values are tensor-wide reductions given
as symbols, as on the Adafactor page.
"""

from __future__ import annotations

import sympy as sp

from spec import symbols as s
from spec.adafactor import clipped, second_moment
from spec.ademamix import ema
from spec.hparams.came import ALL as HYPERPARAMETERS
from spec.hparams.came import CONSTRAINTS
from spec.write import new_param

__all__ = ["CONSTRAINTS", "HYPERPARAMETERS", "RESIDUAL", "STAGE_SYMBOLS", "VARIANTS", "confidence", "rule"]

STAGE_SYMBOLS = {
    "R": "R_{i,t}", "C": "C_{j,t}", "v": "v_t", "u": "u_t", "u_hat": r"\hat{u}_t", "m": "m_t",
    "res": "r_t", "res_R": r"R^{\mathrm{res}}_{i,t}", "res_C": r"C^{\mathrm{res}}_{j,t}", "U": "U_t", "p": "p_t",
}
RESIDUAL = (s.R_res, s.C_res, s.res_row_mean, s.res_col_mean, s.R_res_mean)


# ``factored``: the tensor has two or more dims (1-D tensors step along m itself).
VARIANTS = ("factored",)


def confidence(stage, u_hat: sp.Expr, m: sp.Expr) -> sp.Expr:
    """CAME's confidence factor 1/sqrt(estimate of the EMA of (u_hat - m)^2 + eps2), factored."""
    r = stage("res", (u_hat - m) ** 2)
    return 1 / sp.sqrt(second_moment(stage, s.beta3, s.eps2, factored=True, key="res_", x=r, symbols=RESIDUAL))


def rule(*, factored: bool = True, staged: bool = False) -> dict[str, sp.Expr]:
    """The quantities of one CAME step for one element: the new factors R, C (or v), u,
    u_hat, m, the residual and its factors (factored), U and p."""
    out: dict[str, sp.Expr] = {}

    def stage(key: str, expr: sp.Expr) -> sp.Expr:
        out[key] = expr
        return sp.Symbol(STAGE_SYMBOLS[key], real=True) if staged else expr

    V = second_moment(stage, s.beta2, s.eps1, factored=factored)
    u = stage("u", s.g / sp.sqrt(V))
    u_hat = stage("u_hat", clipped(u))
    m = stage("m", ema(s.m, u_hat, s.beta1))
    U = stage("U", s.lr * (m * confidence(stage, u_hat, m) if factored else m))
    stage("p", new_param(U, cautious_wd=False))
    return out
