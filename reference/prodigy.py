"""Prodigy in float64 NumPy, written to read like spec/prodigy.md, and the d-adaptation
machinery that ProdigyLion shares (reference/prodigy_lion.py).

One step is a single pass: every parameter with a gradient adds its statistics (from its
value before this step's update) and takes its update with the d of the current step; after
the last parameter, ``end_step`` turns the summed statistics into the next d. The sums are
float64 (everything here is), so no cancellation is lost in ``p0 - p``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from reference.adamw import resolved_eps
from reference.ademamix import ademamix_alpha, ademamix_beta3, simplified_lr
from reference.directions import mask_numerator, orthograd, second_moment_beta
from reference.optimizer import ReferenceOptimizer
from reference.storage import StateStore
from reference.weight_decay import apply_update
from spec.hparams.prodigy import ALL, CONSTRAINTS, GROUP_STATE, SLOTS, kept_slots

ATAN2_SCALE = 4 / math.pi
D_LIMIT = 2.0**0.25  # d_limiter: a new estimate is at most d * 2^(1/4)


def resolved_beta3(h: Mapping[str, Any]) -> float:
    """The decay of the statistics: ``beta3``, or sqrt(beta2) when it is None."""
    return math.sqrt(h["betas"][1]) if h["beta3"] is None else h["beta3"]


def step_scalars(group: Mapping[str, Any], *, bias_correction: bool) -> dict[str, float]:
    """bc1, bc and the d-scaled learning rate dlr = d * lr * bc of ``group`` for this step.

    bc = sqrt(1 - beta2^(k+1)) / (1 - beta1^(k+1)) uses the group counter k (all groups share
    it), not the parameter's own step; each group uses its own lr.
    """
    bc1, bc = 1.0, 1.0
    if bias_correction:
        beta1, beta2 = group["betas"]
        k = group["k"]
        bc1 = 1.0 - beta1 ** (k + 1)
        bc = math.sqrt(1.0 - beta2 ** (k + 1)) / bc1
    return {"bc1": bc1, "bc": bc, "dlr": group["d"] * group["lr"] * bc}


def statistics_quantities(
    p_s: np.ndarray, g_s: np.ndarray, p0: np.ndarray, s: np.ndarray, dlr: float, h: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """One parameter's statistics on its slice: ``delta_r`` (its terms of the numerator, to be
    summed) and the new ``s``. ``p_s`` is the slice before this step's update."""
    d, d0 = h["d"], h["d0"]
    delta_r = (d / d0) * dlr * g_s * (p0 - p_s)
    weight = d if h["safeguard_warmup"] else dlr
    s_new = resolved_beta3(h) * s + (d / d0) * weight * g_s
    return {"delta_r": delta_r, "s": s_new}


def d_update_quantities(
    h: Mapping[str, Any], delta_r: float, denominator: float, *, frozen: bool
) -> dict[str, float]:
    """The group scalars after a step (keys r, d_hat, d_max, d), from the group ``h`` before it.

    Frozen: unchanged. Otherwise r = beta3*r + delta_r and, when the denominator is positive,
    d_hat = d_coef*r/denominator (at most d*2^(1/4) with d_limiter); the first estimate above d0
    is taken at once, later growth is limited to the factor growth_rate; d never decreases.
    """
    d, d_max, r = h["d"], h["d_max"], h["d_numerator"]
    if frozen:
        return {"r": r, "d_max": d_max, "d": d}
    r = resolved_beta3(h) * r + delta_r
    if not denominator > 0:  # no statistics yet (e.g. all gradients zero): d cannot be estimated
        return {"r": r, "d_max": d_max, "d": d}
    d_hat = h["d_coef"] * r / denominator
    if h["d_limiter"]:
        d_hat = min(d_hat, d * D_LIMIT)
    if d == h["d0"]:
        d = max(d, d_hat)
    d_max = max(d_max, d_hat)
    d = min(d_max, d * h["growth_rate"])
    return {"r": r, "d_hat": d_hat, "d_max": d_max, "d": d}


def prodigy_quantities(
    p: np.ndarray, g: np.ndarray, m: np.ndarray | None, v: np.ndarray, m_slow: np.ndarray | None, t: int,
    scalars: Mapping[str, float], h: Mapping[str, Any],
) -> dict[str, Any]:
    """Every intermediate of one parameter's Prodigy update (keys m, v, alpha_t, beta3_t, m_slow,
    n, D, dlr_s, U, p of ``spec.prodigy.rule``): Adam on the gradient d*g, eps scaled by d.

    ``g`` is the gradient after OrthoGrad. ``m is None`` when betas[0] = 0, ``m_slow is None``
    without AdEMAMix; ``t`` is the parameter's 1-based step, ``scalars`` the step's bc1 and dlr
    (``step_scalars``), ``h`` the parameter's group (with the group scalars and, with
    Kourkoutas-beta, the beta2_t that decays v; dlr keeps the static betas[1]). Grams or Cautious
    rewrite the numerator (m of d*g, after Nesterov) against sign(g) before the slow EMA joins it.
    """
    beta1 = h["betas"][0]
    beta2, _ = second_moment_beta(h, t)
    d, dlr = h["d"], scalars["dlr"]
    dg = d * g
    out: dict[str, Any] = {}
    if m is not None:
        m = beta1 * m + dg if h["Simplified_AdEMAMix"] else beta1 * m + (1.0 - beta1) * dg
        out["m"] = m
    v = beta2 * v + (1.0 - beta2) * dg * dg
    out["v"] = v
    if h["Simplified_AdEMAMix"]:
        n = m + h["alpha_grad"] * dg
    elif m is not None and h["nesterov"]:
        c = beta1 if h["nesterov_coef"] is None else h["nesterov_coef"]
        n = c * m + (1.0 - c) * dg
    else:
        n = dg if m is None else m
    n = mask_numerator(n, g, h)
    if m_slow is not None:
        out["alpha_t"], out["beta3_t"] = ademamix_alpha(t, h), ademamix_beta3(t, beta1, h)
        m_slow = out["beta3_t"] * m_slow + (1.0 - out["beta3_t"]) * dg
        out["m_slow"] = m_slow
        # dlr divides by bc1 = 1 - beta1^(k+1); multiplying first leaves the slow EMA uncorrected.
        n = n + out["alpha_t"] * scalars["bc1"] * m_slow
    out["n"] = n
    if h["Simplified_AdEMAMix"]:
        dlr = simplified_lr(dlr, beta1, t, h["alpha_grad"])
        out["dlr_s"] = dlr
    if h["use_atan2"]:
        D = np.sqrt(v)
        U = dlr * ATAN2_SCALE * np.arctan2(n, D)
    else:
        D = np.sqrt(v) + d * resolved_eps(h["eps"], p.size)
        U = dlr * n / D
    out["D"], out["U"] = D, U
    out["p"] = apply_update(p, U, {**h, "lr": dlr})
    return out


class DAdaptation(ReferenceOptimizer):
    """The shared d-adaptation: group scalars ``d``, ``d_max``, ``d_numerator`` and ``k`` in
    every param group (equal in all), per-parameter statistics ``s`` and ``p0`` (plain float64
    arrays of the slice, never compressed), and the d update in ``end_step``.

    Subclasses implement ``update`` and call ``self.statistics`` before computing the update.
    """

    USES_BIAS_CORRECTION = True

    def __init__(self, params: Sequence[Any], **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        d0 = self.defaults["d0"]
        initial = {"d": d0, "d_max": d0, "d_numerator": 0.0, "k": 0}
        for group in self.param_groups:
            group.update({key: initial[key] for key in GROUP_STATE})
        self._delta_r = 0.0  # this step's sums over all parameters
        self._denominator = 0.0

    def frozen(self) -> bool:
        """d stops adapting once k reaches prodigy_steps (0: never)."""
        steps = self.defaults["prodigy_steps"]
        return steps > 0 and self.param_groups[0]["k"] >= steps

    def scalars(self, group: Mapping[str, Any]) -> dict[str, float]:
        """This step's bc1, bc and dlr for ``group`` (ProdigyLion has no bias correction)."""
        bias_correction = self.USES_BIAS_CORRECTION and group["use_bias_correction"]
        return step_scalars(group, bias_correction=bias_correction)

    def statistics(self, p: np.ndarray, g: np.ndarray, state: dict[str, Any], group: Mapping[str, Any],
                   dlr: float) -> dict[str, np.ndarray] | None:
        """Add this parameter's terms to the step's sums (``p`` before its update), creating
        ``s`` and ``p0`` with the state; once frozen, free them instead and return None."""
        if self.frozen():
            state.pop("s", None)
            state.pop("p0", None)
            return None
        sl = group["slice_p"]
        p_s, g_s = p.reshape(-1)[::sl], g.reshape(-1)[::sl]
        if "s" not in state:
            state["s"] = np.zeros(p_s.shape)
            state["p0"] = p_s.copy()
        q = statistics_quantities(p_s, g_s, state["p0"], state["s"], dlr, group)
        state["s"] = q["s"]
        self._delta_r += float(np.sum(q["delta_r"]))
        self._denominator += float(np.sum(np.abs(q["s"])))
        return q

    def end_step(self) -> None:
        """The new d, d_max and d_numerator in every group (unless frozen), then k += 1."""
        first = self.param_groups[0]
        q = d_update_quantities(first, self._delta_r, self._denominator, frozen=self.frozen())
        for group in self.param_groups:
            group.update(d=q["d"], d_max=q["d_max"], d_numerator=q["r"], k=group["k"] + 1)
        self._delta_r, self._denominator = 0.0, 0.0


class Prodigy(DAdaptation):
    """Float64 Prodigy (decoupled weight decay), literal to spec/prodigy.md: Adam whose step
    size is multiplied by d, an estimate of the distance to the solution that only grows.

    State per parameter: ``step`` (int), ``exp_avg`` (absent when betas[0] = 0), ``exp_avg_sq``
    and ``exp_avg_slow`` (with use_AdEMAMix) in the format ``state_precision`` selects
    (spec/state_storage.md), plus ``s`` and ``p0`` (float64 arrays of every slice_p-th element
    of the flattened parameter, removed once d is frozen). Every param group holds the shared
    scalars ``d``, ``d_max``, ``d_numerator`` and ``k``.

    Direction features (spec/directions.md): ``orthograd`` (its g' feeds the moments and the
    statistics), ``cautious``, ``grams``, ``use_atan2`` and Kourkoutas-beta (``kourkoutas_beta``,
    ``beta2_min``, ``ema_alpha``, ``tiny_spike``, ``k_warmup_steps`` and the optimizer argument
    ``layer_key_fn``; states ``kourkoutas_r`` and ``kourkoutas_beta2_prod``, as in
    reference.adamw.AdamW). Kourkoutas-beta's beta2 decays v only: the shared d*lr*bc keeps betas[1].

    Examples:
        >>> import numpy as np
        >>> opt = Prodigy([np.ones(3)], slice_p=1)
        >>> opt.step([np.array([1.0, -1.0, 0.0])])
        >>> opt.params[0].round(8).tolist(), opt.param_groups[0]["d"]
        ([0.99999684, 1.00000316, 1.0], 1e-06)
        >>> opt.step([np.array([1.0, -1.0, 0.0])])
        >>> round(opt.param_groups[0]["d"] / 1e-6, 4)  # p0 - p > 0 along -g: d grows
        1.5815
    """

    HYPERPARAMETERS = ALL
    CONSTRAINTS = CONSTRAINTS
    SLOTS = SLOTS
    KEPT_SLOTS = staticmethod(kept_slots)

    def update(self, p: np.ndarray, g: np.ndarray, store: StateStore, hyper: Mapping[str, Any]) -> np.ndarray:
        store.state["step"] += 1
        scalars = self.scalars(hyper)
        g = orthograd(p, g, hyper["orthograd"])
        self.statistics(p, g, store.state, hyper, scalars["dlr"])
        m = store.load("exp_avg") if "exp_avg" in store.formats else None
        m_slow = store.load("exp_avg_slow") if "exp_avg_slow" in store.formats else None
        q = prodigy_quantities(p, g, m, store.load("exp_avg_sq"), m_slow, store.state["step"], scalars, hyper)
        for name, key in (("exp_avg", "m"), ("exp_avg_sq", "v"), ("exp_avg_slow", "m_slow")):
            if name in store.formats:
                store.save(name, q[key])
        return q["p"]
