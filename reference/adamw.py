"""AdamW in float64 NumPy, written to read like spec/adamw.md (AdEMAMix: spec/ademamix.md)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from reference.ademamix import ademamix_alpha, ademamix_beta3
from reference.directions import mask_numerator, orthograd, second_moment_beta
from reference.optimizer import ReferenceOptimizer
from reference.storage import StateStore
from reference.weight_decay import apply_update
from spec.hparams.adamw import ALL, CONSTRAINTS, SLOTS, kept_slots

ATAN2_SCALE = 4 / math.pi


def resolved_eps(eps: float | None, numel: int) -> float:
    """``eps=None`` is the scale-invariant eps 1/sqrt(numel) (an empty tensor has no
    coordinates to scale; it gets 1 rather than a division by zero)."""
    return 1.0 / math.sqrt(max(numel, 1)) if eps is None else eps


def adamw_quantities(
    p: np.ndarray, g: np.ndarray, m: np.ndarray | None, v: np.ndarray, t: int, h: Mapping[str, Any],
    m_slow: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Every intermediate of one AdamW step (the keys of ``spec.adamw.rule``).

    ``g`` is the gradient after OrthoGrad (``g'``). ``m is None`` when betas[0] = 0 (no first
    moment). ``t`` is the 1-based step. ``m_slow`` is AdEMAMix's slow EMA before the step (used
    only with ``use_AdEMAMix``). With Kourkoutas-beta, ``h`` carries this step's beta2 and the
    product of the dynamic beta2s (reference.directions.second_moment_beta). Grams or Cautious
    rewrite the numerator after Nesterov, before the slow EMA joins it and before the division.
    """
    beta1 = h["betas"][0]
    beta2, beta2_prod = second_moment_beta(h, t)
    lr = h["lr"]
    if h["use_bias_correction"]:
        bc1, bc2 = 1.0 - beta1**t, 1.0 - beta2_prod
    else:
        bc1, bc2 = 1.0, 1.0
    out: dict[str, Any] = {"bc1": bc1, "bc2": bc2}

    v_new = beta2 * v + (1.0 - beta2) * g * g
    out["v"] = v_new
    if h["use_atan2"]:
        D = np.sqrt(v_new) / math.sqrt(bc2)
        scale = ATAN2_SCALE

        def normalise(x: np.ndarray) -> np.ndarray:
            return np.arctan2(x, D)
    else:
        D = np.sqrt(v_new) / math.sqrt(bc2) + resolved_eps(h["eps"], p.size)
        scale = 1.0

        def normalise(x: np.ndarray) -> np.ndarray:
            return x / D
    out["D"] = D

    c = beta1 if h["nesterov_coef"] is None else h["nesterov_coef"]
    x = normalise(g) if h["normed_momentum"] else g
    if h["normed_momentum"]:
        out["g_hat"] = x
    if m is not None:
        m_new = beta1 * m + (1.0 - beta1) * x
        out["m"] = m_new
        n = c * m_new + (1.0 - c) * x if h["nesterov"] else m_new
    else:
        n = x
    n = mask_numerator(n, g, h)
    # .get: hand-built hyperparameter dicts written before AdEMAMix existed lack the key.
    if h.get("use_AdEMAMix", False):
        # The slow EMA averages what the fast one averages (g, or g_hat with normed momentum)
        # and is not bias-corrected: multiplying it by bc1 here cancels the 1/bc1 of the step.
        alpha_t, beta3_t = ademamix_alpha(t, h), ademamix_beta3(t, beta1, h)
        m_slow_new = beta3_t * m_slow + (1.0 - beta3_t) * x
        out["alpha_t"], out["beta3_t"], out["m_slow"] = alpha_t, beta3_t, m_slow_new
        n = n + alpha_t * bc1 * m_slow_new
    out["n"] = n
    direction = n if h["normed_momentum"] else normalise(n)
    U = scale * (lr / bc1) * direction
    out["U"] = U
    out["p"] = apply_update(p, U, dict(h))
    return out


class AdamW(ReferenceOptimizer):
    """Float64 AdamW (decoupled weight decay), literal to spec/adamw.md, with the direction
    features of spec/directions.md: ``orthograd``, ``cautious``, ``grams``, ``use_atan2`` and
    Kourkoutas-beta (``kourkoutas_beta``, ``beta2_min``, ``ema_alpha``, ``tiny_spike``,
    ``k_warmup_steps``, and the optimizer argument ``layer_key_fn(p) -> key``, called once per
    tensor at construction, which puts tensors with equal keys in one bucket).

    State per parameter: ``step`` (int), ``exp_avg`` (absent when betas[0] = 0),
    ``exp_avg_sq`` and, with ``use_AdEMAMix``, ``exp_avg_slow``, each stored in the format ``state_precision`` selects
    (spec/state_storage.md: dense keys as named, int8 adds ``<name>_scale``, factored
    stores ``<name>_row``, ``<name>_col`` and, for exp_avg, ``<name>_sign``). With
    Kourkoutas-beta also the floats ``kourkoutas_r`` (the bucket's EMA of its gradient norm) and
    ``kourkoutas_beta2_prod`` (the product of the parameter's dynamic beta2s).

    Examples:
        >>> import numpy as np
        >>> opt = AdamW([np.ones(3)], lr=0.1, weight_decay=0.01)
        >>> opt.step([np.array([1.0, -1.0, 0.0])])
        >>> opt.params[0].round(4).tolist()
        [0.899, 1.099, 0.999]
    """

    HYPERPARAMETERS = ALL
    CONSTRAINTS = CONSTRAINTS
    SLOTS = SLOTS
    KEPT_SLOTS = staticmethod(kept_slots)

    def update(self, p: np.ndarray, g: np.ndarray, store: StateStore, hyper: Mapping[str, Any]) -> np.ndarray:
        store.state["step"] += 1
        g = orthograd(p, g, hyper["orthograd"])
        m = store.load("exp_avg") if "exp_avg" in store.formats else None
        m_slow = store.load("exp_avg_slow") if "exp_avg_slow" in store.formats else None
        q = adamw_quantities(p, g, m, store.load("exp_avg_sq"), store.state["step"], hyper, m_slow)
        if m is not None:
            store.save("exp_avg", q["m"])
        store.save("exp_avg_sq", q["v"])
        if m_slow is not None:
            store.save("exp_avg_slow", q["m_slow"])
        return q["p"]
