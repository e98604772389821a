"""AdEMAMix and Simplified AdEMAMix (spec/ademamix.md), shared by AdamW, Adopt and Prodigy."""

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
