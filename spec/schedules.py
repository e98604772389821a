"""Per-step scalar schedules in plain Python (no sympy), shared by ``reference`` and ``fast``
so both compute the identical float64 numbers: AdEMAMix's alpha/beta3 warm-ups and Simplified
AdEMAMix's step size (spec/ademamix.md)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def half_life_index(beta: float) -> float:
    """f(beta) = ln(0.5)/ln(beta) - 1 (f(0) = -1: an EMA with beta = 0 has no memory)."""
    return -1.0 if beta == 0.0 else math.log(0.5) / math.log(beta) - 1.0


def ademamix_alpha(t: int, h: Mapping[str, Any]) -> float:
    """alpha(t) = alpha * min(1, t / t_alpha); alpha when t_alpha is None."""
    if h["t_alpha"] is None:
        return h["alpha"]
    return h["alpha"] * min(1.0, t / h["t_alpha"])


def ademamix_beta3(t: int, beta_start: float, h: Mapping[str, Any]) -> float:
    """beta3(t): the half-life index moves linearly from f(beta_start) to f(beta3_ema) over
    t_beta3 steps, beta3(t) = 0.5^(1/(f_t + 1)); beta3_ema from then on (or when t_beta3 is None)."""
    beta_end, T = h["beta3_ema"], h["t_beta3"]
    if T is None or t >= T:
        return beta_end
    a = t / T
    f_t = (1.0 - a) * half_life_index(beta_start) + a * half_life_index(beta_end)
    return 0.0 if f_t + 1.0 <= 0.0 else 0.5 ** (1.0 / (f_t + 1.0))


def simplified_lr(lr: float, beta1: float, t: int, alpha_grad: float) -> float:
    """Simplified AdEMAMix's step size lr / (S_t + alpha_grad), S_t = (1 - beta1^t)/(1 - beta1)
    the total weight of an accumulator m = beta1*m + g after t steps."""
    return lr / ((1.0 - beta1**t) / (1.0 - beta1) + alpha_grad)


def simplified_beta1(t: int, h: Mapping[str, Any]) -> float:
    """SimplifiedAdEMAMix's beta1 at step t: with ``beta1_warmup`` W and t < W the half-life
    warm-up from ``min_beta1`` to betas[0] (adv_optm 2.2.3 takes the logarithm of beta + 1e-8,
    kept here), else betas[0]."""
    beta_end, W = h["betas"][0], h["beta1_warmup"]
    if W is None or t >= W:
        return beta_end

    def f(beta: float) -> float:
        return math.log(0.5) / math.log(beta + 1e-8) - 1.0

    a = t / W
    return 0.5 ** (1.0 / ((1.0 - a) * f(h["min_beta1"]) + a * f(beta_end) + 1.0))
