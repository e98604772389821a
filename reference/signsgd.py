"""SignSGD (Signum) in float64 NumPy, written to read like spec/signsgd.md."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from reference.optimizer import ReferenceOptimizer
from reference.storage import StateStore
from reference.weight_decay import apply_update
from spec.hparams.signsgd import ALL, CONSTRAINTS, SLOTS, kept_slots


def signsgd_quantities(p: np.ndarray, g: np.ndarray, m: np.ndarray | None, h: Mapping[str, Any]) -> dict[str, Any]:
    """Every intermediate of one SignSGD step (the keys of ``spec.signsgd.rule``).

    ``m`` is the momentum before the step, None when momentum = 0.
    """
    mu = h["momentum"]
    normed = h["normed_momentum"]
    out: dict[str, Any] = {}
    x = np.sign(g) if normed else g
    if normed:
        out["g_hat"] = x
    if m is None:
        n = x
    elif h["Simplified_AdEMAMix"]:
        m_new = mu * m + x  # an accumulator, not an EMA
        out["m"] = m_new
        n = m_new + h["alpha_grad"] * x
    else:
        m_new = mu * m + (1.0 - mu) * x
        out["m"] = m_new
        if h["nesterov"]:
            c = mu if h["nesterov_coef"] is None else h["nesterov_coef"]
            # Normed momentum: sign(g) enters at the previous momentum's magnitude (adv_optm's form).
            n = c * m_new + (1.0 - c) * (np.abs(m) * x if normed else x)
        else:
            n = m_new
    out["n"] = n
    U = h["lr"] * (n if normed else np.sign(n))
    out["U"] = U
    out["p"] = apply_update(p, U, dict(h))
    return out


class SignSGD(ReferenceOptimizer):
    """Float64 SignSGD with momentum (Signum) and decoupled weight decay, literal to spec/signsgd.md.

    State per parameter: ``step`` (int) and, when momentum > 0, ``exp_avg``, stored as
    ``state_precision`` selects (momentum = 0 keeps no state, with every storage format).

    Examples:
        >>> import numpy as np
        >>> opt = SignSGD([np.ones(3)], lr=0.1, momentum=0.0, weight_decay=0.5)
        >>> opt.step([np.array([2.0, -1.0, 0.0])])
        >>> opt.params[0].round(6).tolist()
        [0.85, 1.05, 0.95]
    """

    HYPERPARAMETERS = ALL
    CONSTRAINTS = CONSTRAINTS
    SLOTS = SLOTS
    KEPT_SLOTS = staticmethod(kept_slots)

    def update(self, p: np.ndarray, g: np.ndarray, store: StateStore, hyper: Mapping[str, Any]) -> np.ndarray:
        store.state["step"] += 1
        m = store.load("exp_avg") if "exp_avg" in store.formats else None
        q = signsgd_quantities(p, g, m, hyper)
        if m is not None:
            store.save("exp_avg", q["m"])
        return q["p"]
