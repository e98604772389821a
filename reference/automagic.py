"""Automagic and AutomagicCAME in float64 NumPy, written to read like spec/automagic.md
(ai-toolkit's ``automagic.py`` v1, and our CAME variant)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from reference.adafactor import FactoredFamily
from reference.came import came_direction
from reference.factored_moments import clip_rms
from reference.mask_code import NEAREST, decode_mask, encode_mask
from reference.storage import StateStore
from spec.hparams import automagic_came
from spec.hparams.automagic import ALL, CONSTRAINTS, SLOTS, mask_format
from spec.storage_layout import Format

BOUNDS_KEY = "lr_mask_bounds"  # the (min_lr, max_lr) the 8-bit mask's codes were written with


def bumped_mask(positive: np.ndarray, store: StateStore, h: Mapping[str, Any]) -> np.ndarray:
    """L_t: the mask (lr on the first step) moved by +lr_bump where ``positive`` agrees with the
    stored last polarity (all False before the first step), by -lr_bump elsewhere, clamped to
    [min_lr, max_lr]; stores it and the new polarity."""
    st = store.state
    if st["step"] == 1:
        L = np.full(positive.shape, float(h["lr"]))
    else:
        requantise(st, h)
        L = store.load("lr_mask")
    agree = positive == (store.load("last_polarity") > 0.5)
    L_new = np.clip(np.where(agree, L + h["lr_bump"], L - h["lr_bump"]), h["min_lr"], h["max_lr"])
    store.save("lr_mask", L_new)
    store.save("last_polarity", positive.astype(np.float64))
    if store.formats["lr_mask"].kind == "mask8":
        st[BOUNDS_KEY] = store.formats["lr_mask"].bounds
    return L_new


def requantise(st: dict[str, Any], h: Mapping[str, Any]) -> None:
    """If the group's bounds changed since the 8-bit mask was written, re-code it once for the
    new bounds (clamped, to the nearer level)."""
    old = st.get(BOUNDS_KEY)
    new = mask_format(h).bounds
    if old is None or new is None or tuple(old) == new:
        return
    L = np.clip(decode_mask(st["lr_mask"], old), *new)
    st["lr_mask"] = encode_mask(L, new, np.full(L.shape, NEAREST))
    st[BOUNDS_KEY] = new


class _MaskFamily(FactoredFamily):
    def formats(self, i: int, group: Mapping[str, Any]) -> dict[str, Format]:
        out = super().formats(i, group)
        out["lr_mask"] = mask_format(group)
        return out

    def learning_rates(self) -> list[float]:
        """Per group, the mean over its tensors of each tensor's mean mask (lr before a step)."""
        out = []
        for group in self.param_groups:
            means = []
            for i in group["indices"]:
                st = self.state[i]
                if self.params[i].size == 0:
                    continue
                if "lr_mask" not in st or st["step"] == 0:
                    means.append(float(group["lr"]))
                    continue
                store = StateStore(st, self.formats(i, group), self.params[i].shape, lambda *_: None)
                means.append(float(np.mean(store.load("lr_mask"))))
            out.append(float(np.mean(means)) if means else float(group["lr"]))
        return out


class Automagic(_MaskFamily):
    """Float64 Automagic (ai-toolkit v1), literal to spec/automagic.md.

    State per parameter: ``step``, ``rng_key``, ``lr_mask`` (uint8 codes, or fp32 with
    mask_precision='fp32'), ``lr_mask_bounds`` (8-bit mask), ``last_polarity`` (packed bits),
    ``exp_avg_sq_row``/``_col`` (>= 2 dims) or ``exp_avg_sq``.

    Examples:
        >>> import numpy as np
        >>> opt = Automagic([np.ones(3)], lr=1e-4, lr_bump=1e-5, mask_precision="fp32")
        >>> opt.step([np.array([2.0, -1.0, 0.0])])
        >>> opt.state[0]["lr_mask"].tolist()  # g <= 0 agrees with the initial polarity (False)
        [9e-05, 0.00011, 0.00011]
    """

    HYPERPARAMETERS = ALL
    CONSTRAINTS = CONSTRAINTS
    SLOTS = SLOTS

    def update(self, p: np.ndarray, g: np.ndarray, store: StateStore, hyper: Mapping[str, Any]) -> np.ndarray:
        store.state["step"] += 1
        self.init_factors(p, store.state, hyper)
        if p.size == 0:
            return p
        V = self.second_moment(p, g * g + hyper["eps"][0], hyper["beta2"], store)
        u_hat = clip_rms(g / np.sqrt(V), hyper["clip_threshold"])
        L = bumped_mask(u_hat > 0, store, hyper)
        return p - hyper["weight_decay"] * L * p - L * u_hat


class AutomagicCAME(_MaskFamily):
    """Float64 AutomagicCAME (spec/automagic.md): Automagic's mask over CAME's update, the
    polarity from the raw gradient.

    State per parameter: Automagic's mask states, ``exp_avg`` and CAME's factors (or
    ``exp_avg_sq`` for 0-d and 1-D tensors).
    """

    HYPERPARAMETERS = automagic_came.ALL
    CONSTRAINTS = CONSTRAINTS
    SLOTS = automagic_came.SLOTS
    FACTORS = automagic_came.FACTORS

    def update(self, p: np.ndarray, g: np.ndarray, store: StateStore, hyper: Mapping[str, Any]) -> np.ndarray:
        store.state["step"] += 1
        self.init_factors(p, store.state, hyper)
        if p.size == 0:
            return p
        _, direction = came_direction(p, g, store, hyper, self)
        L = bumped_mask(g > 0, store, hyper)
        return p - hyper["weight_decay"] * L * p - L * direction
