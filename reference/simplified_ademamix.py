"""Simplified AdEMAMix in float64 NumPy, written to read like spec/simplified_ademamix.md."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from reference.adamw import resolved_eps
from reference.ademamix import simplified_beta1, simplified_lr
from reference.directions import orthograd, second_moment_beta
from reference.optimizer import ReferenceOptimizer
from reference.storage import StateStore
from reference.weight_decay import decoupled_weight_decay
from spec.hparams.simplified_ademamix import ALL, CONSTRAINTS, SLOTS


def simplified_ademamix_quantities(
    p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, num: float, den: float, t: int,
    h: Mapping[str, Any],
) -> dict[str, Any]:
    """Every intermediate of one Simplified AdEMAMix step (the keys of
    ``spec.simplified_ademamix.rule``). ``g`` is the gradient after OrthoGrad, ``num`` and ``den``
    the bias sums before the step (0 at the first step), ``t`` the 1-based step. With
    Kourkoutas-beta, v and den decay with this step's beta2_t (handed in with ``h``), so that
    den = 1 - the product of the dynamic beta2s."""
    beta2, _ = second_moment_beta(h, t)
    beta1 = simplified_beta1(t, h)
    out: dict[str, Any] = {}
    if h["beta1_warmup"] is not None:
        out["beta1_t"] = beta1
    if h["use_bias_correction"]:
        num, den = beta1 * num + 1.0, beta2 * den + (1.0 - beta2)
    else:
        num, den = 1.0, 1.0
    out["num"], out["den"] = num, den
    m_new = beta1 * m + g  # an accumulator: its weights sum to num, not to 1
    v_new = beta2 * v + (1.0 - beta2) * g * g
    lr_t = simplified_lr(h["lr"], beta1, t, h["alpha_grad"])
    D = np.sqrt(v_new) + math.sqrt(den) * resolved_eps(h["eps"], p.size)
    n = m_new + h["alpha_grad"] * g
    U = lr_t * math.sqrt(den / num) * n / D
    out.update(m=m_new, v=v_new, lr_t=lr_t, D=D, n=n, U=U)
    # The decay uses the scaled step size lr_t, as adv_optm passes it to its write.
    out["p"] = decoupled_weight_decay(p, U, lr=lr_t, weight_decay=h["weight_decay"], cautious=h["cautious_wd"]) - U
    return out


class SimplifiedAdEMAMix(ReferenceOptimizer):
    """Float64 Simplified AdEMAMix (accumulator momentum plus alpha_grad times the gradient),
    literal to spec/simplified_ademamix.md.

    State per parameter: ``step`` (int), ``exp_avg`` (the accumulator), ``exp_avg_sq``, stored
    as ``state_precision`` selects, and the Python floats ``num_sum`` and ``den_sum`` (the bias
    sums; both stay 1.0 without bias correction).

    Direction features (spec/directions.md): ``orthograd`` and Kourkoutas-beta
    (``kourkoutas_beta``, ``beta2_min``, ``ema_alpha``, ``tiny_spike``, ``k_warmup_steps`` and the
    optimizer argument ``layer_key_fn``; states ``kourkoutas_r`` and ``kourkoutas_beta2_prod``, as
    in reference.adamw.AdamW).

    Examples:
        >>> import numpy as np
        >>> opt = SimplifiedAdEMAMix([np.zeros(2)], lr=0.1, alpha_grad=1.0, eps=0.0)
        >>> opt.step([np.array([3.0, -2.0])])
        >>> opt.params[0].round(6).tolist(), opt.state[0]["num_sum"]
        ([-0.1, 0.1], 1.0)
    """

    HYPERPARAMETERS = ALL
    CONSTRAINTS = CONSTRAINTS
    SLOTS = SLOTS

    def update(self, p: np.ndarray, g: np.ndarray, store: StateStore, hyper: Mapping[str, Any]) -> np.ndarray:
        store.state["step"] += 1
        st = store.state
        g = orthograd(p, g, hyper["orthograd"])
        fresh = 0.0 if hyper["use_bias_correction"] else 1.0
        q = simplified_ademamix_quantities(
            p, g, store.load("exp_avg"), store.load("exp_avg_sq"), st.get("num_sum", fresh), st.get("den_sum", fresh),
            st["step"], hyper,
        )
        st["num_sum"], st["den_sum"] = float(q["num"]), float(q["den"])
        store.save("exp_avg", q["m"])
        store.save("exp_avg_sq", q["v"])
        return q["p"]
