"""CAME in float64 NumPy, written to read like spec/came.md (came-pytorch's ``CAME``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from reference.adafactor import FactoredFamily
from reference.factored_moments import clip_rms, estimate, factor_update
from reference.storage import StateStore
from spec.hparams.adafactor import factored
from spec.hparams.came import ALL, CONSTRAINTS, FACTORS, SLOTS


def came_direction(p: np.ndarray, g: np.ndarray, store: StateStore, h: Mapping[str, Any],
                   family: FactoredFamily) -> tuple[np.ndarray, np.ndarray]:
    """(u_hat, m * confidence) of one CAME step (the confidence factor is 1 for 0-d and 1-D
    tensors); updates the second moment, the residual factors and stores m."""
    beta1, beta2, beta3 = h["betas"]
    eps1, eps2 = h["eps"]
    V = family.second_moment(p, g * g + eps1, beta2, store)
    u_hat = clip_rms(g / np.sqrt(V), h["clip_threshold"])
    m = beta1 * store.load("exp_avg") + (1.0 - beta1) * u_hat
    store.save("exp_avg", m)
    if not factored(p.ndim):
        return u_hat, m
    st = store.state
    res = (u_hat - m) ** 2 + eps2
    st["exp_avg_res_row"], st["exp_avg_res_col"] = factor_update(st["exp_avg_res_row"], st["exp_avg_res_col"],
                                                                 res, beta3)
    return u_hat, m / np.sqrt(estimate(st["exp_avg_res_row"], st["exp_avg_res_col"]))


class CAME(FactoredFamily):
    """Float64 CAME (Luo et al.), literal to spec/came.md and came-pytorch.

    State per parameter: ``step``, ``rng_key``, ``exp_avg`` (in ``state_precision``) and, for
    tensors with >= 2 dims, ``exp_avg_sq_row``/``_col`` and ``exp_avg_res_row``/``_col``; 0-d and
    1-D tensors keep ``exp_avg_sq`` instead (no residual: they step along m).

    Examples:
        >>> import numpy as np
        >>> opt = CAME([np.ones(3)], lr=0.1)
        >>> opt.step([np.array([2.0, -1.0, 0.0])])
        >>> opt.params[0].round(6).tolist()
        [0.987753, 1.012247, 1.0]
    """

    HYPERPARAMETERS = ALL
    CONSTRAINTS = CONSTRAINTS
    SLOTS = SLOTS
    FACTORS = FACTORS

    def update(self, p: np.ndarray, g: np.ndarray, store: StateStore, hyper: Mapping[str, Any]) -> np.ndarray:
        store.state["step"] += 1
        self.init_factors(p, store.state, hyper)
        if p.size == 0:
            return p
        _, direction = came_direction(p, g, store, hyper, self)
        U = hyper["lr"] * direction
        return p - hyper["weight_decay"] * hyper["lr"] * p - U
