"""The Adam-family elementwise math shared by AdamW, Prodigy and SimplifiedAdEMAMix.

One function covers them because they differ only in numbers: Prodigy is Adam on the
gradient scaled by d with eps scaled by d (spec/prodigy.md), SimplifiedAdEMAMix is Adam with
an accumulating first moment whose bias terms fold into the step size and sqrt(bc2)
(spec/simplified_ademamix.md). The features (Nesterov, atan2, normed momentum, AdEMAMix,
Simplified AdEMAMix) are static flags, so each combination compiles to its own kernel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch

from fast import directions
from spec.schedules import ademamix_alpha, ademamix_beta3

ATAN2_SCALE = 4 / math.pi


class AdamFlags(NamedTuple):
    first_moment: bool
    nesterov: bool
    use_atan2: bool
    normed_momentum: bool
    ademamix: bool = False
    simplified: bool = False
    cautious: bool = False
    grams: bool = False


class AdamScalars(NamedTuple):
    """The kernel's scalars after lr*wd, in order. Complements are formed in float64 on the
    host: 1 - beta2 formed in fp32 from fp32(0.999) is off by 1.3e-5 relative."""

    step_size: float  # includes 1/bc1 and, with atan2, 4/pi
    beta1: float
    a1: float  # weight of the new term in the first moment: 1 - beta1, or 1 (accumulator)
    beta2: float
    a2: float  # 1 - beta2
    sqrt_bc2: float
    eps: float
    c: float
    one_m_c: float
    g_scale: float = 1.0  # Prodigy's d
    beta3: float = 0.0
    one_m_beta3: float = 1.0
    alpha: float = 0.0  # AdEMAMix's alpha(t) * bc1 (the slow EMA is not bias-corrected)
    alpha_grad: float = 0.0


def make_adam_math(first_moment: bool, nesterov: bool, use_atan2: bool, normed_momentum: bool,
                   ademamix: bool = False, simplified: bool = False, cautious: bool = False, grams: bool = False):
    """``math(G, (m, v, m2), s, noise) -> (U, (m, v, m2), None)`` on compute-dtype tensors, ``s``
    laid out as :class:`AdamScalars`. Grams and Cautious rewrite the first-moment term, before
    AdEMAMix's slow term joins it and before the normalisation (spec/directions.md)."""

    def adam_math(G, states, s, noise=None):
        m, v, m2 = states if len(states) == 3 else (*states, None)  # SimplifiedAdEMAMix keeps no m2
        (step_size, beta1, a1, beta2, a2, sqrt_bc2, eps, c, one_m_c, g_scale, beta3, one_m_beta3, alpha,
         alpha_grad) = s.unbind(0)
        G = g_scale * G
        v_new = beta2 * v + a2 * G * G
        D = v_new.sqrt() / sqrt_bc2
        if not use_atan2:
            D = D + eps

        def normalise(x):
            return torch.atan2(x, D) if use_atan2 else x / D

        x = normalise(G) if normed_momentum else G
        m_new = None
        if first_moment:
            m_new = beta1 * m + a1 * x
            n = c * m_new + one_m_c * x if nesterov else m_new
        else:
            n = x
        if grams:
            n = directions.grams(n, G)
        if cautious:
            n = directions.cautious(n, G)
        if simplified:
            n = m_new + alpha_grad * x
        m2_new = None
        if ademamix:
            m2_new = beta3 * m2 + one_m_beta3 * x
            n = n + alpha * m2_new
        U = step_size * (n if normed_momentum else normalise(n))
        return U, (m_new, v_new, m2_new), None

    return adam_math


def adam_flags(group: Mapping[str, Any]) -> AdamFlags:
    return AdamFlags(group["betas"][0] > 0, group["nesterov"], group["use_atan2"],
                     group.get("normed_momentum", False), group.get("use_AdEMAMix", False),
                     group.get("Simplified_AdEMAMix", False), group.get("cautious", False), group.get("grams", False))


def scale_invariant_eps(eps: float | None, numel: int) -> float:
    return 1 / math.sqrt(max(numel, 1)) if eps is None else eps


def ademamix_scalars(group: Mapping[str, Any], t: int, bc1: float) -> dict[str, float]:
    """beta3(t), 1 - beta3(t) and alpha(t)*bc1 of spec/ademamix.md (empty without AdEMAMix)."""
    if not group.get("use_AdEMAMix", False):
        return {}
    beta3 = ademamix_beta3(t, group["betas"][0], group)
    return {"beta3": beta3, "one_m_beta3": 1 - beta3, "alpha": ademamix_alpha(t, group) * bc1}
