"""Automagic's and AutomagicCAME's update rules and the 8-bit code of their learning-rate mask,
as sympy expressions: the single source of truth (spec/automagic.md).

One element of one tensor; the factored means and RMS values are tensor-wide reductions given
as symbols, as on the Adafactor page.
"""

from __future__ import annotations

import sympy as sp

from spec import symbols as s
from spec.adafactor import clipped, second_moment
from spec.codes import fl32
from spec.hparams.automagic import ALL as HYPERPARAMETERS
from spec.hparams.automagic import CONSTRAINTS
from spec.storage_layout import SR_BITS
from spec.write import decayed

__all__ = ["CONSTRAINTS", "HYPERPARAMETERS", "MASK_CODE", "MASK_LEVEL", "STAGE_SYMBOLS", "VARIANTS", "bumped_mask",
           "rule", "stager", "write"]

STAGE_SYMBOLS = {
    "R": "R_{i,t}", "C": "C_{j,t}", "v": "v_t", "u": "u_t", "u_hat": r"\hat{u}_t", "m": "m_t",
    "res": "r_t", "res_R": r"R^{\mathrm{res}}_{i,t}", "res_C": r"C^{\mathrm{res}}_{j,t}",
    "q": "q_t", "L": "L_t", "U": "U_t", "p": "p_t",
}

# ``factored``: the tensor has two or more dims; ``first_step``: t = 1, the mask starts at lr.
VARIANTS = ("factored", "first_step")

# -- the 8-bit mask code ------------------------------------------------------------------------
k = sp.Symbol("k", integer=True, nonnegative=True)  # a code, 0 .. T
x = sp.Symbol("x", positive=True)  # the new mask value L_t, in [l_0, l_T]
r = sp.Symbol("r", integer=True, nonnegative=True)  # its 16-bit draw
level_k = sp.Symbol("l_k", positive=True)  # the largest level <= x (k <= T - 1)
level_k1 = sp.Symbol("l_{k+1}", positive=True)
bottom = sp.Symbol("a", positive=True)  # l_0: fl32(min_lr), inside the bounds
top_level = sp.Symbol("b", positive=True)  # l_T: fl32(max_lr), inside the bounds
m = sp.Symbol("m", integer=True, positive=True)  # mantissa bits: 8 - ceil(log2(E + 1))
# Level k: 2^m levels per binade above a, as a float format anchored at a (exact in float32
# arithmetic: the kernels compute it; spec.storage_layout.mask_code gives a, b, m and T).
MASK_LEVEL = sp.Min(fl32(bottom * 2 ** sp.floor(k / 2**m) * (1 + sp.Mod(k, 2**m) / 2**m)), top_level)
# The stored code of x: the level below it, plus one with probability (x - l_k) / (l_{k+1} - l_k).
MASK_CODE = k + sp.Piecewise((1, r < 2**SR_BITS * (x - level_k) / (level_k1 - level_k)), (0, True))


# -- the rules --------------------------------------------------------------------------------
def bumped_mask(stage, q: sp.Expr, *, first_step: bool) -> sp.Expr:
    """L_t: the mask moved by +delta where the polarity q agrees with the last one (q_{t-1}, 0
    on the first step), by -delta elsewhere, clamped to [min_lr, max_lr]; L_{t-1} = lr at t = 1."""
    before = s.lr0 if first_step else s.L
    moved = sp.Piecewise((before + s.lr_bump, sp.Eq(q, 0 if first_step else s.polarity)),
                         (before - s.lr_bump, True))
    return stage("L", sp.Min(sp.Max(moved, s.lr_min), s.lr_max))


def stager(staged: bool):
    out: dict[str, sp.Expr] = {}

    def stage(key: str, expr: sp.Expr) -> sp.Expr:
        out[key] = expr
        return sp.Symbol(STAGE_SYMBOLS[key], real=True) if staged else expr

    return out, stage


def write(stage, L: sp.Expr, U: sp.Expr) -> None:
    stage("p", decayed(s.p, U, cautious_wd=False, decay_rate=s.wd * L) - U)


def rule(*, factored: bool = True, first_step: bool = False, staged: bool = False) -> dict[str, sp.Expr]:
    """One Automagic step for one element: the new factors R, C (or v), u, the clipped u_hat,
    the polarity q = [u_hat > 0], the mask L, U = L u_hat and p (weight decay lambda L p)."""
    out, stage = stager(staged)
    V = second_moment(stage, s.beta2, s.eps1, factored=factored)
    u = stage("u", s.g / sp.sqrt(V))
    u_hat = stage("u_hat", clipped(u))
    q = stage("q", sp.Piecewise((1, u_hat > 0), (0, True)))
    L = bumped_mask(stage, q, first_step=first_step)
    write(stage, L, stage("U", L * u_hat))
    return out
