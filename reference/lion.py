"""Lion (and Lion-K) in float64 NumPy, written to read like spec/lion.md."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from reference.lion_k import lion_k_direction
from reference.optimizer import ReferenceOptimizer
from reference.storage import StateStore
from reference.weight_decay import apply_update
from spec.hparams.lion import ALL, CONSTRAINTS, SLOTS


def lion_quantities(p: np.ndarray, g: np.ndarray, m: np.ndarray, h: Mapping[str, Any]) -> dict[str, Any]:
    """Every intermediate of one Lion step (the keys of ``spec.lion.rule``; ``s`` and its
    tensor norm ``s_norm`` only for kappa_p != 1)."""
    beta1, beta2 = h["betas"]
    kappa = h["kappa_p"]
    c = beta1 * m + (1.0 - beta1) * g
    out: dict[str, Any] = {"c": c}
    if kappa != 1.0:
        s = c if kappa == 2.0 else np.sign(c) * np.abs(c) ** (kappa - 1.0)
        out["s"], out["s_norm"] = s, float(np.sqrt(np.sum(s * s)))
    U = h["lr"] * lion_k_direction(c, kappa)
    out["U"] = U
    out["m"] = beta2 * m + (1.0 - beta2) * g
    out["p"] = apply_update(p, U, dict(h))
    return out


class Lion(ReferenceOptimizer):
    """Float64 Lion with decoupled weight decay and the Lion-K direction, literal to spec/lion.md.

    State per parameter: ``step`` (int) and ``exp_avg`` (always kept: even with betas[0] = 0,
    where the update does not read it, as lion-pytorch and adv_optm keep it), stored as
    ``state_precision`` selects.

    Examples:
        >>> import numpy as np
        >>> opt = Lion([np.ones(3)], lr=0.1, weight_decay=0.5)
        >>> opt.step([np.array([2.0, -1.0, 0.0])])
        >>> opt.params[0].round(6).tolist()
        [0.85, 1.05, 0.95]
    """

    HYPERPARAMETERS = ALL
    CONSTRAINTS = CONSTRAINTS
    SLOTS = SLOTS

    def update(self, p: np.ndarray, g: np.ndarray, store: StateStore, hyper: Mapping[str, Any]) -> np.ndarray:
        store.state["step"] += 1
        q = lion_quantities(p, g, store.load("exp_avg"), hyper)
        store.save("exp_avg", q["m"])
        return q["p"]
