"""AdEMAMix and Simplified AdEMAMix (spec/ademamix.md), shared by AdamW, Adopt and Prodigy.

The AdEMAMix schedules and Simplified AdEMAMix's step size are defined once in spec.schedules
(plain Python) so that reference and fast compute identical float64 numbers; Simplified
AdEMAMix's beta1 warm-up is written here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from spec.schedules import ademamix_alpha, ademamix_beta3, half_life_index, simplified_lr

__all__ = ["ademamix_alpha", "ademamix_beta3", "half_life_index", "simplified_beta1", "simplified_lr"]

BETA1_WARMUP_OFFSET = 1e-8  # adv_optm's warm-up takes ln(beta + 1e-8), not ln(beta)


def simplified_beta1(t: int, h: Mapping[str, Any]) -> float:
    """Simplified AdEMAMix's beta1 at 1-based step t: betas[0], or during a ``beta1_warmup`` of
    W steps (t < W) the beta whose index f = ln(0.5)/ln(beta + 1e-8) - 1 lies a fraction t/W of
    the way from min_beta1's to betas[0]'s, beta = 0.5^(1/(f_t + 1)) (adv_optm 2.2.3's
    linear_hl_warmup_scheduler, offset included so that the numbers are adv's)."""
    beta_end, W = h["betas"][0], h["beta1_warmup"]
    if W is None or t >= W:
        return beta_end

    def index(beta: float) -> float:
        return math.log(0.5) / math.log(beta + BETA1_WARMUP_OFFSET) - 1.0

    a = t / W
    f_t = (1.0 - a) * index(h["min_beta1"]) + a * index(beta_end)
    return 0.5 ** (1.0 / (f_t + 1.0))
