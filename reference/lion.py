"""Lion (and Lion-K) in float64 NumPy, written to read like spec/lion.md."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from reference.directions import orthograd, signed_update
from reference.lion_k import lion_k_direction
from reference.optimizer import ReferenceOptimizer
from reference.storage import StateStore
from reference.weight_decay import apply_update
from spec.hparams.lion import ALL, CONSTRAINTS, SLOTS, kept_slots


def lion_quantities(
    p: np.ndarray, g: np.ndarray, m: np.ndarray, h: Mapping[str, Any], *, t: int = 1,
    prev_bits: np.ndarray | None = None, u: np.ndarray | None = None,
) -> dict[str, Any]:
    """Every intermediate of one Lion step (the keys of ``spec.lion.rule``; ``s`` and its
    tensor norm ``s_norm`` only for kappa_p != 1; ``ell`` with projected adaptivity and
    ``prev_sign``, the bits to store, with freeze-on-flip).

    ``g`` is the gradient after OrthoGrad; ``t`` the 1-based step, ``prev_bits`` the stored
    prev_sign (1.0/0.0), ``u`` the 16-bit draws of the stochastic sign. The sign features act on
    the direction in the order of spec/directions.md (reference.directions.sign_direction).
    """
    beta1, beta2 = h["betas"]
    kappa = h["kappa_p"]
    c = beta1 * m + (1.0 - beta1) * g
    out: dict[str, Any] = {"c": c}
    if kappa != 1.0:
        s = c if kappa == 2.0 else np.sign(c) * np.abs(c) ** (kappa - 1.0)
        out["s"], out["s_norm"] = s, float(np.sqrt(np.sum(s * s)))
    lion_k = lion_k_direction(c, kappa) if kappa != 1.0 else None
    U = signed_update(c, g, h, h["lr"], out, direction=lion_k, u=u, prev_bits=prev_bits, first_step=t == 1,
                      cautious_on=h.get("cautious", False))
    out["U"] = U
    out["m"] = beta2 * m + (1.0 - beta2) * g
    out["p"] = apply_update(p, U, dict(h), scale=out.get("ell"))
    return out


class Lion(ReferenceOptimizer):
    """Float64 Lion with decoupled weight decay and the Lion-K direction, literal to spec/lion.md.

    State per parameter: ``step`` (int) and ``exp_avg`` (always kept: even with betas[0] = 0,
    where the update does not read it, as lion-pytorch and adv_optm keep it), stored as
    ``state_precision`` selects; with ``freeze_on_flip`` also ``prev_sign`` (uint8, the signs
    [c > 0] of the previous step packed 8 per byte, little-endian over the flat order).

    Direction features (spec/directions.md): ``orthograd``, ``cautious`` (on the signed
    direction), ``stochastic_sign`` (random integers of draw purpose "sign", injectable through
    ``step(grads, draws=[{"sign": ...}])``), ``freeze_on_flip`` and ``projected_adaptivity``
    (which scales the update and the weight decay by l of |c|).

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
    KEPT_SLOTS = staticmethod(kept_slots)

    def update(self, p: np.ndarray, g: np.ndarray, store: StateStore, hyper: Mapping[str, Any]) -> np.ndarray:
        store.state["step"] += 1
        g = orthograd(p, g, hyper["orthograd"])
        q = lion_quantities(p, g, store.load("exp_avg"), hyper, **sign_inputs(p, store, hyper))
        store.save("exp_avg", q["m"])
        if "prev_sign" in q:
            store.save("prev_sign", q["prev_sign"])
        return q["p"]


def sign_inputs(p: np.ndarray, store: StateStore, hyper: Mapping[str, Any]) -> dict[str, Any]:
    """The sign features' inputs for one parameter: its step ``t``, the stored ``prev_bits``
    (freeze-on-flip) and the draws ``u`` (stochastic sign of a tensor with >= 2 dims)."""
    stochastic = hyper["stochastic_sign"] and p.ndim >= 2
    return {
        "t": store.state["step"],
        "prev_bits": store.load("prev_sign") if "prev_sign" in store.formats else None,
        "u": store.draw("sign", p.size) if stochastic else None,
    }
