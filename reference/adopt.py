"""Adopt in float64 NumPy, written to read like spec/adopt.md."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from reference.adamw import resolved_eps
from reference.ademamix import ademamix_alpha, ademamix_beta3, simplified_lr
from reference.directions import mask_numerator, orthograd, second_moment_beta
from reference.optimizer import ReferenceOptimizer
from reference.storage import StateStore
from reference.weight_decay import decoupled_weight_decay
from spec.hparams.adopt import ALL, CONSTRAINTS, SLOTS, kept_slots

ATAN2_SCALE = 4 / math.pi


def adopt_quantities(
    p: np.ndarray, g: np.ndarray, m: np.ndarray | None, v: np.ndarray, m_slow: np.ndarray | None, t: int,
    h: Mapping[str, Any],
) -> dict[str, Any]:
    """Every intermediate of one Adopt step (the keys of ``spec.adopt.rule``).

    ``g`` is the gradient after OrthoGrad. ``v`` is the second moment before the step (g^2 at
    t = 1: v_0 = g_1^2), ``m is None`` when betas[0] = 0, ``m_slow`` is AdEMAMix's slow EMA (None
    without it), ``t`` the 1-based step. Kourkoutas-beta's beta2_t (handed in with ``h``) decays v
    from the second step on; Adopt has no bias correction. Grams or Cautious rewrite m (or its
    Nesterov mix) against g before the slow EMA joins it.
    """
    beta1 = h["betas"][0]
    beta2, _ = second_moment_beta(h, t)
    if t == 1 and not h["use_atan2"]:
        # The first gradient only initialises v: normalising g by sqrt(g^2) would give a pure
        # sign step. The parameter is returned as it is, without weight decay.
        return {"v": g * g, "p": p}
    out: dict[str, Any] = {}
    if h["use_atan2"]:
        D = np.sqrt(v)
        g_hat = np.arctan2(g, D)
    else:
        # The paper's max(sqrt(v), eps), not adv_optm's sqrt(v) + eps.
        D = np.maximum(np.sqrt(v), resolved_eps(h["eps"], p.size))
        g_hat = g / D
        if h["clip_lambda"] is not None:
            k = t - 1  # the 0-based step count of the ADOPT paper
            bound = float(k) ** h["clip_lambda"]
            out["clip"] = bound
            g_hat = np.clip(g_hat, -bound, bound)
    out["D"], out["g_hat"] = D, g_hat

    simplified = h["Simplified_AdEMAMix"]
    if m is not None:
        m_new = beta1 * m + g_hat if simplified else beta1 * m + (1.0 - beta1) * g_hat
        out["m"] = m_new
        c = beta1 if h["nesterov_coef"] is None else h["nesterov_coef"]
        n = c * m_new + (1.0 - c) * g_hat if h["nesterov"] else m_new  # mixes g_hat, not the raw g
    else:
        n = g_hat
    n = mask_numerator(n, g, h)
    if simplified:
        n = n + h["alpha_grad"] * g_hat
    if h["use_AdEMAMix"]:
        alpha_t, beta3_t = ademamix_alpha(t, h), ademamix_beta3(t, beta1, h)
        m_slow_new = beta3_t * m_slow + (1.0 - beta3_t) * g_hat
        out["alpha_t"], out["beta3_t"], out["m_slow"] = alpha_t, beta3_t, m_slow_new
        n = n + alpha_t * m_slow_new
    out["n"] = n

    lr_t = simplified_lr(h["lr"], beta1, t, h["alpha_grad"]) if simplified else h["lr"]
    if simplified:
        out["lr_t"] = lr_t
    U = (ATAN2_SCALE if h["use_atan2"] else 1.0) * lr_t * n
    out["U"] = U
    out["v"] = beta2 * v + (1.0 - beta2) * g * g
    # The decay uses the step size the update uses, as adv_optm does (Simplified: the scaled lr).
    P = decoupled_weight_decay(p, U, lr=lr_t, weight_decay=h["weight_decay"], cautious=h["cautious_wd"])
    out["p"] = P - U
    return out


class Adopt(ReferenceOptimizer):
    """Float64 ADOPT (decoupled weight decay), literal to spec/adopt.md.

    State per parameter: ``step`` (int), ``exp_avg`` (absent when betas[0] = 0), ``exp_avg_sq``
    and, with ``use_AdEMAMix``, ``exp_avg_slow``, stored as ``state_precision`` selects. The
    first step (without atan2) stores v = g^2 and leaves the parameter and m unchanged.

    Direction features (spec/directions.md): ``orthograd``, ``cautious``, ``grams``,
    ``use_atan2`` and Kourkoutas-beta (``kourkoutas_beta``, ``beta2_min``, ``ema_alpha``,
    ``tiny_spike``, ``k_warmup_steps`` and the optimizer argument ``layer_key_fn``; states
    ``kourkoutas_r`` and ``kourkoutas_beta2_prod``, as in reference.adamw.AdamW).

    Examples:
        >>> import numpy as np
        >>> opt = Adopt([np.ones(2)], lr=0.1, weight_decay=0.5)
        >>> opt.step([np.array([2.0, -1.0])])
        >>> opt.params[0].tolist(), opt.state[0]["exp_avg_sq"].tolist()
        ([1.0, 1.0], [4.0, 1.0])
    """

    HYPERPARAMETERS = ALL
    CONSTRAINTS = CONSTRAINTS
    SLOTS = SLOTS
    KEPT_SLOTS = staticmethod(kept_slots)

    def update(self, p: np.ndarray, g: np.ndarray, store: StateStore, hyper: Mapping[str, Any]) -> np.ndarray:
        store.state["step"] += 1
        t = store.state["step"]
        g = orthograd(p, g, hyper["orthograd"])
        # v_0 = g^2 is created with the state, so the first step reads it exactly (it is
        # encoded once, at the end of this step, like every other state).
        v = g * g if t == 1 else store.load("exp_avg_sq")
        m = store.load("exp_avg") if "exp_avg" in store.formats else None
        m_slow = store.load("exp_avg_slow") if "exp_avg_slow" in store.formats else None
        q = adopt_quantities(p, g, m, v, m_slow, t, hyper)
        if "m" in q:
            store.save("exp_avg", q["m"])
        store.save("exp_avg_sq", q["v"])
        if "m_slow" in q:
            store.save("exp_avg_slow", q["m_slow"])
        return q["p"]
