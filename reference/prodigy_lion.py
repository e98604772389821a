"""ProdigyLion in float64 NumPy, written to read like spec/prodigy_lion.md: Lion on the
gradient d*g with step size d*lr, d adapted as in Prodigy (reference/prodigy.py).

Follows adv_optm 2.2.3 ``Lion_Prodigy_adv``, except that the momentum always decays with
beta2 (adv's factored path decays it with beta1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from reference.directions import orthograd, signed_update
from reference.lion import sign_inputs
from reference.lion_k import lion_k_direction
from reference.prodigy import DAdaptation
from reference.storage import StateStore
from reference.weight_decay import apply_update
from spec.hparams.prodigy_lion import ALL, CONSTRAINTS, SLOTS, kept_slots


def prodigy_lion_quantities(
    p: np.ndarray, g: np.ndarray, m: np.ndarray, dlr: float, h: Mapping[str, Any], *, t: int = 1,
    prev_bits: np.ndarray | None = None, u: np.ndarray | None = None,
) -> dict[str, Any]:
    """Every intermediate of one parameter's update (keys c, q (Lion-K), U, m, p of
    ``spec.prodigy_lion.rule``, and q's tensor norm ``q_norm``; ``ell`` and ``prev_sign`` with
    projected adaptivity and freeze-on-flip): the direction interpolates with beta1, the
    momentum decays with beta2, both on d*g so that m is d times Lion's.

    ``g`` is the gradient after OrthoGrad (Cautious compares the direction with its sign);
    ``t``, ``prev_bits`` and ``u`` as in reference.lion.lion_quantities. Projected adaptivity's
    l is taken from |c|, c being of d*g.
    """
    beta1, beta2 = h["betas"]
    kappa = h["kappa_p"]
    dg = h["d"] * g
    c = beta1 * m + (1.0 - beta1) * dg
    out: dict[str, Any] = {"c": c}
    if kappa != 1.0:
        q = c if kappa == 2.0 else np.sign(c) * np.abs(c) ** (kappa - 1.0)
        out["q"], out["q_norm"] = q, float(np.sqrt(np.sum(q * q)))
    lion_k = lion_k_direction(c, kappa) if kappa != 1.0 else None
    # The sign features read c / d: the same signs, and projected adaptivity's l in gradient units,
    # so that the step stays linear in d like every Prodigy step (spec/directions.md).
    U = signed_update(c / h["d"], g, h, dlr, out, direction=lion_k, u=u, prev_bits=prev_bits,
                      first_step=t == 1, cautious_on=h.get("cautious", False))
    out["U"] = U
    out["m"] = beta2 * m + (1.0 - beta2) * dg
    out["p"] = apply_update(p, U, {**h, "lr": dlr}, scale=out.get("ell"))
    return out


class ProdigyLion(DAdaptation):
    """Float64 ProdigyLion, literal to spec/prodigy_lion.md: Lion (or Lion-K) whose step size
    d*lr adapts like Prodigy's. No bias correction.

    State per parameter: ``step`` (int) and ``exp_avg`` in the format ``state_precision``
    selects, plus ``s`` and ``p0`` (float64 arrays of every slice_p-th element, removed once
    d is frozen); every param group holds ``d``, ``d_max``, ``d_numerator`` and ``k``. With
    ``freeze_on_flip`` also ``prev_sign`` (packed bits, as in reference.lion.Lion).

    Direction features (spec/directions.md), as Lion's: ``orthograd`` (its g' also feeds the
    statistics), ``cautious``, ``stochastic_sign`` (draw purpose "sign"), ``freeze_on_flip`` and
    ``projected_adaptivity`` (l of |c|, scaling the update d*lr*dir and the weight decay).

    Examples:
        >>> import numpy as np
        >>> opt = ProdigyLion([np.zeros(2)], lr=0.5, slice_p=1)
        >>> opt.step([np.array([2.0, -3.0])])
        >>> opt.params[0].tolist()  # d0*lr*sign(g)
        [-5e-07, 5e-07]
    """

    HYPERPARAMETERS = ALL
    CONSTRAINTS = CONSTRAINTS
    SLOTS = SLOTS
    KEPT_SLOTS = staticmethod(kept_slots)
    USES_BIAS_CORRECTION = False

    def update(self, p: np.ndarray, g: np.ndarray, store: StateStore, hyper: Mapping[str, Any]) -> np.ndarray:
        store.state["step"] += 1
        dlr = self.scalars(hyper)["dlr"]
        g = orthograd(p, g, hyper["orthograd"])
        self.statistics(p, g, store.state, hyper, dlr)
        q = prodigy_lion_quantities(p, g, store.load("exp_avg"), dlr, hyper, **sign_inputs(p, store, hyper))
        store.save("exp_avg", q["m"])
        if "prev_sign" in q:
            store.save("prev_sign", q["prev_sign"])
        return q["p"]
