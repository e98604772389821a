"""Prodigy's update rule and d-adaptation as sympy expressions: the single source of truth
(spec/prodigy.md).

``rule(**flags)`` returns, in the order they are computed, the quantities of one step: the
step's scalars (bc, the d-scaled learning rate), the statistics of one sliced element, the
Adam-like update of one element, and the end-of-step update of the group scalars (numerator,
d_hat, d_max, d). The per-element statistics are summed over every ``slice_p``-th element of
every parameter into the symbols ``DELTA_R`` and ``DENOMINATOR`` that the d update reads.
The d-adaptation part is shared with ProdigyLion (spec/prodigy_lion.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import sympy as sp

from spec import symbols as s
from spec.ademamix import alpha_schedule, beta3_schedule, ema, simplified_step_size
from spec.hparams.prodigy import ALL as HYPERPARAMETERS
from spec.hparams.prodigy import CONSTRAINTS
from spec.write import decayed

__all__ = [
    "BETA3_DEFAULT", "CONSTRAINTS", "D_UPDATE_KEYS", "HYPERPARAMETERS", "SCALE_INVARIANT_EPS", "STAGE_SYMBOLS",
    "VARIANTS", "d_update", "rule", "statistics",
]

# Group scalars (equal in every param group) and Prodigy's own hyperparameters.
d = sp.Symbol("d_k", positive=True)  # the estimate used throughout this step
d0 = sp.Symbol("d_0", positive=True)
d_max = sp.Symbol(r"d^{\max}_k", positive=True)  # running maximum of the estimates before this step
r_prev = sp.Symbol("r_{k-1}", real=True)  # the numerator after the previous step (0 at k = 0)
k = sp.Symbol("k", nonnegative=True, integer=True)  # the group's 0-based step count before this step
# resolved: beta3 or sqrt(beta2); not s.beta3, which is AdEMAMix's beta3_ema
beta3 = sp.Symbol(r"\beta_{3}^{(d)}", nonnegative=True)
d_coef = sp.Symbol(r"d_\mathrm{coef}", positive=True)
growth = sp.Symbol(r"\gamma", positive=True)  # growth_rate (may be inf)
# Per sliced element: the statistic s and the parameter at state creation.
s_prev = sp.Symbol("s_{t-1}", real=True)
p0 = sp.Symbol("p_0", real=True)
# Sums over every sliced element of every parameter with a gradient at this step.
DELTA_R = sp.Symbol(r"\Delta r_k", real=True)  # sum of delta_r
DENOMINATOR = sp.Symbol("S_k", nonnegative=True)  # sum of |s_t|: the L1 norm of all s

SCALE_INVARIANT_EPS = 1 / sp.sqrt(s.N)  # the eps used when eps=None
BETA3_DEFAULT = sp.sqrt(s.beta2)  # the beta3 used when beta3=None
D_LIMIT = sp.root(2, 4)  # d_limiter: each estimate is at most d * 2^(1/4)

STAGE_SYMBOLS = {
    "bc1": r"\mathrm{bc}_{1,k}", "bc": r"\mathrm{bc}_k", "dlr": r"\eta_d", "delta_r": r"\delta r", "s": "s_t",
    "m": "m_t", "v": "v_t", "alpha_t": r"\alpha_t", "beta3_t": r"\beta_{3,t}", "m_slow": r"m^{\mathrm{slow}}_t",
    "n": "n_t", "D": "D_t", "dlr_s": r"\tilde\eta_d",
    "U": "U_t", "p": "p_t",
    "r": "r_k", "d_hat": r"\hat d_{k+1}", "d_max": r"d^{\max}_{k+1}", "d": "d_{k+1}",
}
D_UPDATE_KEYS = ("r", "d_hat", "d_max", "d")

# Flags that change the shape of the rule (the rest are numbers). ``first_moment=False`` is
# betas[0] = 0; ``frozen`` is the state after prodigy_steps steps (k >= prodigy_steps > 0).
VARIANTS = ("first_moment", "nesterov", "use_AdEMAMix", "Simplified_AdEMAMix", "use_atan2", "cautious_wd",
            "use_bias_correction", "safeguard_warmup", "d_limiter", "frozen")

Stage = Callable[[str, sp.Expr], sp.Expr]


def stager(out: dict[str, sp.Expr], staged: bool, symbols: Mapping[str, str] = STAGE_SYMBOLS) -> Stage:
    """Record ``out[key] = expr`` and return what later lines use: the stage's symbol when
    ``staged`` (for the docs), else the expression itself (for evaluation)."""

    def stage(key: str, expr: sp.Expr) -> sp.Expr:
        out[key] = expr
        return sp.Symbol(symbols[key], real=True) if staged else expr

    return stage


def statistics(stage: Stage, dlr: sp.Expr, *, safeguard_warmup: bool) -> None:
    """One sliced element's terms, with g and p read before this step's update: its part of
    the numerator (scaled by d/d0 so that small d do not underflow) and the new s."""
    stage("delta_r", (d / d0) * dlr * s.g * (p0 - s.p))
    stage("s", beta3 * s_prev + (d / d0) * (d if safeguard_warmup else dlr) * s.g)


def d_update(stage: Stage, *, d_limiter: bool, frozen: bool) -> None:
    """The group scalars after the step (max and min unevaluated: sympy's simplification of
    them is slow and changes nothing here). Frozen: nothing moves. Otherwise the numerator decays
    by beta3 and gains this step's sum; if the denominator is positive the estimate
    d_coef*r/||s||_1 (limited to d*2^(1/4) with d_limiter) raises d_max, and d grows to it at
    most by the factor gamma, except that the first estimate above d0 is taken at once."""
    if frozen:
        stage("r", r_prev)
        stage("d_max", d_max)
        stage("d", d)
        return
    r = stage("r", beta3 * r_prev + DELTA_R)
    estimate = d_coef * r / DENOMINATOR
    d_hat = stage("d_hat", sp.Min(estimate, D_LIMIT * d, evaluate=False) if d_limiter else estimate)
    progress = DENOMINATOR > 0
    new_max = stage("d_max", sp.Piecewise((sp.Max(d_max, d_hat, evaluate=False), progress), (d_max, True)))
    first_growth = sp.Piecewise((sp.Max(d, d_hat, evaluate=False), sp.Eq(d, d0)), (d, True))
    stage("d", sp.Piecewise((sp.Min(new_max, growth * first_growth, evaluate=False), progress), (d, True)))


def rule(
    *,
    first_moment: bool = True,
    nesterov: bool = False,
    use_AdEMAMix: bool = False,
    Simplified_AdEMAMix: bool = False,
    use_atan2: bool = False,
    cautious_wd: bool = False,
    use_bias_correction: bool = False,
    safeguard_warmup: bool = False,
    d_limiter: bool = False,
    frozen: bool = False,
    staged: bool = False,
) -> dict[str, sp.Expr]:
    """The quantities of one Prodigy step: scalars, one element's statistics and update, and
    the new group scalars.

    Keys: bc1, bc, dlr, delta_r and s (not when frozen), m (if a first moment), v, alpha_t,
    beta3_t and m_slow (AdEMAMix, schedules from spec/ademamix.py), n, D, dlr_s (Simplified
    AdEMAMix), U, p, then r, d_hat (not when frozen), d_max, d. ``staged=True`` writes each
    quantity with the symbols of the earlier ones (for the docs); the default substitutes
    everything (for evaluation).
    """
    if Simplified_AdEMAMix and not first_moment:
        raise ValueError("Simplified_AdEMAMix accumulates the first moment; it needs first_moment=True")
    out: dict[str, sp.Expr] = {}
    stage = stager(out, staged)
    bc1 = stage("bc1", 1 - s.beta1 ** (k + 1) if use_bias_correction else sp.Integer(1))
    bc = stage("bc", sp.sqrt(1 - s.beta2 ** (k + 1)) / bc1 if use_bias_correction else sp.Integer(1))
    dlr = stage("dlr", d * s.lr * bc)
    if not frozen:
        statistics(stage, dlr, safeguard_warmup=safeguard_warmup)

    dg = d * s.g  # the gradient in units of d: every state is d times Adam's
    if first_moment:
        m_new = stage("m", s.beta1 * s.m + dg if Simplified_AdEMAMix else ema(s.m, dg, s.beta1))
    v_new = stage("v", ema(s.v, dg**2, s.beta2))
    if Simplified_AdEMAMix:
        n = m_new + s.alpha_g * dg
    elif first_moment:
        n = s.c * m_new + (1 - s.c) * dg if nesterov else m_new
    else:
        n = dg
    if use_AdEMAMix:
        alpha_t = stage("alpha_t", alpha_schedule())
        beta3_t = stage("beta3_t", beta3_schedule(s.beta1))
        slow = stage("m_slow", ema(s.m_slow, dg, beta3_t))
        n = n + alpha_t * bc1 * slow  # bc divides by bc1 below: the slow EMA is not corrected
    n = stage("n", n)
    if Simplified_AdEMAMix:
        dlr = stage("dlr_s", simplified_step_size(dlr, s.beta1))
    if use_atan2:
        D = stage("D", sp.sqrt(v_new))
        U = stage("U", dlr * s.ATAN2_SCALE * sp.atan2(n, D))
    else:
        D = stage("D", sp.sqrt(v_new) + d * s.eps)
        U = stage("U", dlr * n / D)
    stage("p", decayed(s.p, U, cautious_wd=cautious_wd, decay_rate=dlr * s.wd) - U)
    d_update(stage, d_limiter=d_limiter, frozen=frozen)
    return out
