"""ProdigyLion's update rule as sympy expressions (spec/prodigy_lion.md): Lion on the gradient
d*g with step size d*lr, and Prodigy's d-adaptation (shared with spec/prodigy.py).

As in spec/prodigy.py, ``rule(**flags)`` returns the step's scalar, one sliced element's
statistics, one element's update and the end-of-step group scalars. Lion-K's direction is
normalised over the whole tensor; that norm enters as the symbol ``LION_K_NORM``, the L2 norm
of the rule's own ``q`` over the tensor (as spec/lion.py's ``s_norm``; ``s`` is Prodigy's
statistic here, so the power is called ``q``).
"""

from __future__ import annotations

import sympy as sp

from spec import prodigy
from spec import symbols as s
from spec.ademamix import ema
from spec.hparams.prodigy_lion import ALL as HYPERPARAMETERS
from spec.hparams.prodigy_lion import CONSTRAINTS
from spec.prodigy import d, d_update, statistics
from spec.write import decayed

__all__ = ["CONSTRAINTS", "HYPERPARAMETERS", "LION_K_NORM", "NORM_FLOOR", "STAGE_SYMBOLS", "VARIANTS", "rule"]

LION_K_NORM = sp.Symbol(r"\lVert q_{t} \rVert_{2}", nonnegative=True)  # sqrt of the sum of q^2 over the tensor
NORM_FLOOR = sp.Float("1e-12")  # the norm is clamped below at this before dividing

STAGE_SYMBOLS = {**prodigy.STAGE_SYMBOLS, "c": "c_t", "q": "q_t"}

# ``lion_k`` is kappa_p != 1 (kappa_p = 1 is the sign); ``frozen`` as in spec/prodigy.py.
VARIANTS = ("lion_k", "cautious_wd", "safeguard_warmup", "d_limiter", "frozen")


def rule(
    *,
    lion_k: bool = False,
    cautious_wd: bool = False,
    safeguard_warmup: bool = False,
    d_limiter: bool = True,
    frozen: bool = False,
    staged: bool = False,
) -> dict[str, sp.Expr]:
    """The quantities of one ProdigyLion step.

    Keys: dlr, delta_r and s (not when frozen), c, q (Lion-K), U, m, p, then r, d_hat (not
    when frozen), d_max, d. There is no bias correction: dlr = d*lr. ``staged`` as in spec.prodigy.rule.
    """
    out: dict[str, sp.Expr] = {}
    stage = prodigy.stager(out, staged, STAGE_SYMBOLS)
    dlr = stage("dlr", d * s.lr)
    if not frozen:
        statistics(stage, dlr, safeguard_warmup=safeguard_warmup)
    dg = d * s.g
    c = stage("c", ema(s.m, dg, s.beta1))
    if lion_k:  # kappa = 2 gives q = c; both rescaled to the L2 norm sqrt(N) of a sign vector
        q = stage("q", sp.sign(c) * sp.Abs(c) ** (s.kappa - 1))
        U = stage("U", dlr * q / sp.Max(LION_K_NORM, NORM_FLOOR) * sp.sqrt(s.N))
    else:
        U = stage("U", dlr * sp.sign(c))
    stage("m", ema(s.m, dg, s.beta2))
    stage("p", decayed(s.p, U, cautious_wd=cautious_wd, decay_rate=dlr * s.wd) - U)
    d_update(stage, d_limiter=d_limiter, frozen=frozen)
    return out

