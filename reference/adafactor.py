"""Adafactor in float64 NumPy, written to read like spec/adafactor.md (transformers'
``Adafactor``), and the base class the Adafactor family shares."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from reference.factored_moments import clip_rms, estimate, factor_update, rms
from reference.optimizer import ReferenceOptimizer
from reference.storage import StateStore
from spec.hparams.adafactor import ALL, CONSTRAINTS, SLOTS, factor_shapes, factored, kept_slots, storage_view
from spec.storage_layout import Format, resolve


class FactoredFamily(ReferenceOptimizer):
    """The Adafactor family's state layout: tensors with two or more dims keep their second
    moments (``FACTORS``: state-name prefixes) as fp32-or-better row and column factors outside
    the storage layer; ``SECOND_MOMENT_SLOTS`` are the dense states those tensors do not keep."""

    FACTORS: tuple[str, ...] = ("exp_avg_sq",)
    SECOND_MOMENT_SLOTS: tuple[str, ...] = ("exp_avg_sq",)

    def formats(self, i: int, group: Mapping[str, Any]) -> dict[str, Format]:
        p = self.params[i]
        drop = self.SECOND_MOMENT_SLOTS if factored(p.ndim) else ()
        h = storage_view(group)
        return {
            slot.name: resolve(slot, self.param_dtypes[i], p.ndim, p.size, h, group["stochastic_rounding"])
            for slot in self.active_slots(group) if slot.name not in drop
        }

    def keeps_rms(self, h: Mapping[str, Any]) -> bool:
        """Whether the rule scales by RMS(p) and keeps it as the state ``RMS``."""
        return False

    def init_factors(self, p: np.ndarray, state: dict[str, Any], h: Mapping[str, Any]) -> None:
        """Zero factors (and RMS) on the first step."""
        if state["step"] != 1:
            return
        if self.keeps_rms(h):
            state["RMS"] = np.zeros(())
        if factored(p.ndim):
            rows, cols = factor_shapes(p.shape)
            for name in self.FACTORS:
                state[f"{name}_row"], state[f"{name}_col"] = np.zeros(rows), np.zeros(cols)

    def second_moment(self, p: np.ndarray, sq: np.ndarray, beta: float, store: StateStore,
                      name: str = "exp_avg_sq") -> np.ndarray:
        """The new estimate of the EMA of ``sq`` (factored, or the dense state ``name``)."""
        st = store.state
        if factored(p.ndim):
            st[f"{name}_row"], st[f"{name}_col"] = factor_update(st[f"{name}_row"], st[f"{name}_col"], sq, beta)
            return estimate(st[f"{name}_row"], st[f"{name}_col"])
        v = beta * store.load(name) + (1.0 - beta) * sq
        store.save(name, v)
        return v


def relative_step_size(h: Mapping[str, Any], t: int, rms_p: float) -> float:
    """transformers' ``_get_lr``: rho_t (or lr), times max(eps2, RMS(p)) with scale_parameter."""
    if h["relative_step"]:
        start = 1e-6 * t if h["warmup_init"] else 1e-2
        rho = min(start, 1.0 / math.sqrt(t))
    else:
        rho = h["lr"]
    return max(h["eps"][1], rms_p) * rho if h["scale_parameter"] else rho


class Adafactor(FactoredFamily):
    """Float64 Adafactor (Shazeer & Stern), literal to spec/adafactor.md and transformers.

    State per parameter: ``step``, ``rng_key``, ``RMS`` (with scale_parameter: 0-d, RMS(p)
    before the step, what the step size used), ``exp_avg_sq_row``/``exp_avg_sq_col`` (tensors with >= 2 dims) or
    ``exp_avg_sq`` (0-d, 1-D; in ``state_precision``), ``exp_avg`` with ``beta1``.

    Examples:
        >>> import numpy as np
        >>> opt = Adafactor([np.ones((2, 3))], lr=0.1, relative_step=False, scale_parameter=False)
        >>> opt.step([np.full((2, 3), 2.0)])
        >>> opt.params[0].round(6).tolist()
        [[0.9, 0.9, 0.9], [0.9, 0.9, 0.9]]
    """

    HYPERPARAMETERS = ALL
    CONSTRAINTS = CONSTRAINTS
    SLOTS = SLOTS
    KEPT_SLOTS = staticmethod(kept_slots)

    def keeps_rms(self, h: Mapping[str, Any]) -> bool:
        return h["scale_parameter"]

    def update(self, p: np.ndarray, g: np.ndarray, store: StateStore, hyper: Mapping[str, Any]) -> np.ndarray:
        st = store.state
        st["step"] += 1
        t = st["step"]
        self.init_factors(p, st, hyper)
        if p.size == 0:
            return p
        if hyper["scale_parameter"]:
            st["RMS"] = np.asarray(rms(p))
        lr_t = relative_step_size(hyper, t, rms(p))
        beta2 = 1.0 - t ** hyper["decay_rate"]
        V = self.second_moment(p, g * g + hyper["eps"][0], beta2, store)
        U = lr_t * clip_rms(g / np.sqrt(V), hyper["clip_threshold"])
        if hyper["beta1"] is not None:
            U = hyper["beta1"] * store.load("exp_avg") + (1.0 - hyper["beta1"]) * U
            store.save("exp_avg", U)
        return p - hyper["weight_decay"] * lr_t * p - U
