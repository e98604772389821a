"""Decoupled (optionally cautious) weight decay, literally (spec/weight_decay.md)."""

import numpy as np


def decoupled_weight_decay(
    P: np.ndarray, U: np.ndarray, *, lr: float, weight_decay: float, cautious: bool,
    scale: np.ndarray | None = None,
) -> np.ndarray:
    """``P - lr*wd*P`` (``lr*wd*scale*P`` with an elementwise ``scale``: projected adaptivity's
    l); cautious: only where ``U*P >= 0`` (zeros agree), not renormalised."""
    decay = lr * weight_decay * P if scale is None else lr * weight_decay * scale * P
    if cautious:
        decay = np.where(U * P >= 0, decay, 0.0)
    return P - decay


def apply_update(P: np.ndarray, U: np.ndarray, hyper: dict, scale: np.ndarray | None = None) -> np.ndarray:
    """Weight decay (times ``scale`` when given), then subtract the update (which already holds
    the learning rate)."""
    P = decoupled_weight_decay(
        P, U, lr=hyper["lr"], weight_decay=hyper["weight_decay"], cautious=hyper["cautious_wd"], scale=scale
    )
    return P - U
