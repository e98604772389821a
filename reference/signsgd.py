"""SignSGD (Signum) in float64 NumPy, written to read like spec/signsgd.md."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from reference.directions import orthograd, signed_update
from reference.lion import sign_inputs
from reference.optimizer import ReferenceOptimizer
from reference.storage import StateStore
from reference.weight_decay import apply_update
from spec.hparams.signsgd import ALL, CONSTRAINTS, SLOTS, kept_slots


def signsgd_quantities(
    p: np.ndarray, g: np.ndarray, m: np.ndarray | None, h: Mapping[str, Any], *, t: int = 1,
    prev_bits: np.ndarray | None = None, u: np.ndarray | None = None,
) -> dict[str, Any]:
    """Every intermediate of one SignSGD step (the keys of ``spec.signsgd.rule``; ``ell`` and
    ``prev_sign`` with projected adaptivity and freeze-on-flip).

    ``g`` is the gradient after OrthoGrad, ``m`` the momentum before the step (None when
    momentum = 0); ``t``, ``prev_bits`` and ``u`` as in reference.lion.lion_quantities. The sign
    features act on the raw direction n (the momentum, its Nesterov or Simplified mix, or g when
    momentum = 0); normed momentum takes none (a constraint).
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
    if normed:
        U = h["lr"] * n
    else:
        U = signed_update(n, g, h, h["lr"], out, u=u, prev_bits=prev_bits, first_step=t == 1)
    out["U"] = U
    out["p"] = apply_update(p, U, dict(h), scale=out.get("ell"))
    return out


class SignSGD(ReferenceOptimizer):
    """Float64 SignSGD with momentum (Signum) and decoupled weight decay, literal to spec/signsgd.md.

    State per parameter: ``step`` (int) and, when momentum > 0, ``exp_avg``, stored as
    ``state_precision`` selects (momentum = 0 keeps no state, with every storage format); with
    ``freeze_on_flip`` also ``prev_sign`` (packed bits of [n > 0], as in reference.lion.Lion).

    Direction features (spec/directions.md): ``orthograd``, ``stochastic_sign`` (draw purpose
    "sign"), ``freeze_on_flip`` and ``projected_adaptivity`` (l of |n|, scaling the update and
    the weight decay); SignSGD has no Cautious.

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
        g = orthograd(p, g, hyper["orthograd"])
        m = store.load("exp_avg") if "exp_avg" in store.formats else None
        q = signsgd_quantities(p, g, m, hyper, **sign_inputs(p, store, hyper))
        if m is not None:
            store.save("exp_avg", q["m"])
        if "prev_sign" in q:
            store.save("prev_sign", q["prev_sign"])
        return q["p"]
