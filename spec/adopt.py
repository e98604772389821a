"""Adopt's update rule as sympy expressions: the single source of truth (spec/adopt.md).

Elementwise in one coordinate of one tensor, like spec/adamw.py. ``t`` is the parameter's
1-based step count and ``k = t - 1`` the 0-based one of the ADOPT paper; ``v_{t-1}`` is the
second moment *before* the step: Adopt normalises the gradient by the previous v and updates
v only afterwards. At state creation ``v_0 = g^2`` (the first gradient), so with atan2 the
first step evaluates this rule with ``v_{t-1} = g^2``; without atan2 the first step is the
``first_step=True`` variant and only stores that v.
"""

from __future__ import annotations

import sympy as sp

from spec import symbols as s
from spec.ademamix import alpha_schedule, beta3_schedule, ema, simplified_step_size
from spec.hparams.adopt import ALL as HYPERPARAMETERS
from spec.hparams.adopt import CONSTRAINTS
from spec.write import decayed

__all__ = ["CONSTRAINTS", "HYPERPARAMETERS", "SCALE_INVARIANT_EPS", "STAGE_SYMBOLS", "VARIANTS", "rule"]

SCALE_INVARIANT_EPS = 1 / sp.sqrt(s.N)  # the eps used when eps=None

STAGE_SYMBOLS = {
    "D": "D_t", "clip": r"\mathrm{clip}_t", "g_hat": r"\hat{g}_t", "m": "m_t", "alpha_t": r"\alpha_t",
    "beta3_t": r"\beta_{3,t}", "m_slow": r"m^{\mathrm{slow}}_t", "n": "n_t", "lr_t": r"\eta_t", "U": "U_t",
    "v": "v_t", "p": "p_t",
}

# Flags that change the shape of the rule. ``clip`` is clip_lambda is not None; ``first_step``
# is the step t = 1 without atan2 (it only initialises v).
VARIANTS = ("first_moment", "clip", "nesterov", "use_atan2", "use_AdEMAMix", "Simplified_AdEMAMix",
            "cautious_wd", "first_step")


def rule(
    *,
    first_moment: bool = True,
    clip: bool = True,
    nesterov: bool = False,
    use_atan2: bool = False,
    use_AdEMAMix: bool = False,
    Simplified_AdEMAMix: bool = False,
    cautious_wd: bool = False,
    first_step: bool = False,
    staged: bool = False,
) -> dict[str, sp.Expr]:
    """The quantities of one Adopt step for one element.

    Keys: D, clip (with the clip, without atan2), g_hat, m (if betas[0] > 0), alpha_t, beta3_t,
    m_slow (AdEMAMix), n, lr_t (Simplified AdEMAMix's step size), U, v, p; ``first_step=True``
    has only v and p. ``staged=True`` writes each quantity in terms of the earlier ones' symbols.
    """
    if first_step and use_atan2:
        raise ValueError("with use_atan2 the first step is an ordinary step (first_step=False)")
    out: dict[str, sp.Expr] = {}

    def stage(key: str, expr: sp.Expr) -> sp.Expr:
        out[key] = expr
        return sp.Symbol(STAGE_SYMBOLS[key], real=True) if staged else expr

    if first_step:  # v_0 = g^2; no update, no weight decay
        stage("v", s.g**2)
        stage("p", s.p)
        return out

    if use_atan2:  # bounded and scale-free: no eps, no clip
        D = stage("D", sp.sqrt(s.v))
        g_hat = stage("g_hat", sp.atan2(s.g, D))
    else:
        D = stage("D", sp.Max(sp.sqrt(s.v), s.eps))
        g_hat = s.g / D
        if clip:
            bound = stage("clip", (s.t - 1) ** s.q)
            g_hat = sp.Max(-bound, sp.Min(g_hat, bound))
        g_hat = stage("g_hat", g_hat)

    if first_moment:
        m_new = stage("m", s.beta1 * s.m + g_hat if Simplified_AdEMAMix else ema(s.m, g_hat, s.beta1))
        n = s.c * m_new + (1 - s.c) * g_hat if nesterov else m_new
    else:
        n = g_hat
    if Simplified_AdEMAMix:
        n = n + s.alpha_g * g_hat
    if use_AdEMAMix:
        alpha_t = stage("alpha_t", alpha_schedule())
        beta3_t = stage("beta3_t", beta3_schedule(s.beta1))
        n = n + alpha_t * stage("m_slow", ema(s.m_slow, g_hat, beta3_t))
    n = stage("n", n)
    lr_t = stage("lr_t", simplified_step_size(s.lr, s.beta1)) if Simplified_AdEMAMix else s.lr
    U = stage("U", (s.ATAN2_SCALE if use_atan2 else 1) * lr_t * n)
    stage("v", ema(s.v, s.g**2, s.beta2))
    # The decay uses the step size the update uses (adv_optm passes it to its write).
    stage("p", decayed(s.p, U, cautious_wd=cautious_wd, decay_rate=lr_t * s.wd) - U)
    return out
