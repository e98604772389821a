"""AdEMAMix and Simplified AdEMAMix as sympy building blocks (spec/ademamix.md).

The features are not optimizers of their own: spec/adamw.py and spec/adopt.py add the slow
EMA with these expressions, spec/adopt.py and spec/simplified_ademamix.py the accumulator's
step size. Keeping the expressions here means every rule that uses a schedule prints and
evaluates the same one. The scalar schedules are step-level numbers (one value per tensor
and step); the reference computes them in plain Python (spec/schedules.py) and the
conformance suite checks both against these expressions.

A warm-up length of ``None`` (no schedule) evaluates as ``T = 1``: every step has t >= 1, so
``min(1, t/1) = 1`` and ``t < 1`` never holds, which is exactly "the final value from the
first step".
"""

from __future__ import annotations

import sympy as sp

from spec import symbols as s

__all__ = [
    "SIMPLIFIED_HALF_LIFE_OFFSET", "alpha_schedule", "beta3_schedule", "ema", "half_life_warmup",
    "simplified_step_size",
]

# adv_optm's (and the Sim-AdEMAMix paper code's) beta1 warm-up computes ln(beta + 1e-8); kept
# for Simplified AdEMAMix only, where adv_optm 2.2.3 defines the warm-up (spec/simplified_ademamix.md).
SIMPLIFIED_HALF_LIFE_OFFSET = sp.Float("1e-8")


def ema(prev: sp.Expr, new: sp.Expr, beta: sp.Expr) -> sp.Expr:
    """``beta*prev + (1-beta)*new``: the exponential moving average every moment uses."""
    return beta * prev + (1 - beta) * new


def half_life_warmup(beta_start: sp.Expr, beta_end: sp.Expr, T: sp.Expr, offset: sp.Expr | int = 0) -> sp.Expr:
    """beta at step t of a warm-up that moves the EMA's half-life linearly from beta_start's to
    beta_end's over T steps, then beta_end.

    The half-life of an EMA with decay beta is h(beta) = ln(1/2) / ln(beta) steps (the paper
    interpolates the index f = h - 1, the same line shifted by one). With a = t/T,
    h_t = (1-a) h(beta_start) + a h(beta_end) and beta_t = (1/2)^(1/h_t); ln(1/2) cancels, so
    ``ln(beta_t) = 1 / ((1-a)/ln(beta_start) + a/ln(beta_end))``, the form written here (a
    weighted harmonic mean of the logarithms). beta = 0 has h = 0 (ln 0 = -inf in float64).
    Linear in the half-life, not in beta: a linear ramp of beta towards 0.9999 would spend
    almost the whole warm-up at short memories. ``offset`` is added inside the logarithms.
    """
    a = s.t / T
    log_beta_t = 1 / ((1 - a) / sp.log(beta_start + offset) + a / sp.log(beta_end + offset))
    return sp.Piecewise((sp.exp(log_beta_t), s.t < T), (beta_end, True))


def alpha_schedule() -> sp.Expr:
    """AdEMAMix's alpha(t) = alpha * min(1, t / T_alpha) (linear warm-up from 0)."""
    return s.alpha * sp.Min(1, s.t / s.T_alpha)


def beta3_schedule(beta_start: sp.Expr) -> sp.Expr:
    """AdEMAMix's beta3(t): half-life warm-up from ``beta_start`` (the optimizer's beta1) to
    beta3_ema over T_beta3 steps."""
    return half_life_warmup(beta_start, s.beta3, s.T_beta3)


def simplified_step_size(lr: sp.Expr, beta1: sp.Expr) -> sp.Expr:
    """Simplified AdEMAMix's step size ``lr / (S_t + alpha_g)`` with S_t = (1 - beta1^t)/(1 - beta1),
    the total weight the accumulator m = beta1*m + g has given its gradients after t steps."""
    return lr / ((1 - beta1**s.t) / (1 - beta1) + s.alpha_g)
