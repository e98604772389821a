"""Prodigy's d-adaptation (spec/prodigy.md), shared by Prodigy and ProdigyLion.

One estimate d for the whole optimizer: each parameter adds to a numerator and a denominator
during the step (on every ``slice_p``-th element), and ``end_step`` turns them into the next d.
The sums are float64 on the parameters' devices and read back once per step (one host sync,
like adv_optm), never per parameter.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from fast import compile as kernels
from fast.optimizer import FastOptimizer
from spec.hparams.prodigy import GROUP_STATE


def make_statistics_kernel(slice_p: int, p_dtype: torch.dtype, g_dtype: torch.dtype):
    """``kernel(p, g, p0, s, c) -> [numerator term, sum |s|]`` (float64) for flat p and g; updates
    s in place. ``c`` = [lr*wd (unused), beta3, s coefficient, numerator coefficient]; the dtypes
    are cache keys only.

    float64 products and sums on the slice: p0 - p is small against p, and the numerator's terms
    cancel across parameters (adv_optm's fp32 loses ~4% of it). One kernel rather than ~8 eager
    ops: each eager op is a parallel region, which is costly on a busy CPU.
    """

    def statistics(p, g, p0, s, c):
        g_s = g[::slice_p].to(torch.float64)
        dot = (g_s * (p0.to(torch.float64) - p[::slice_p].to(torch.float64))).sum()
        s_new = c[1] * s.to(torch.float64) + c[2] * g_s
        s.copy_(s_new.to(s.dtype))
        return torch.stack([c[3] * dot, s.to(torch.float64).abs().sum()])

    return statistics


class DAdaptation(FastOptimizer):
    """Base of the Prodigy optimizers: the group scalars d, d_max, d_numerator, k (in every
    param group, equal in all) and the per-parameter statistics ``s`` and ``p0``."""

    USES_BIAS_CORRECTION = True

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        first = self.param_groups[0]
        initial = {"d": group["d0"], "d_max": group["d0"], "d_numerator": 0.0, "k": 0}
        for key in GROUP_STATE:
            group[key] = first.get(key, initial[key]) if group is not first else initial[key]
        if not hasattr(self, "_sums"):
            self._sums: dict[torch.device, torch.Tensor] = {}

    def frozen(self) -> bool:
        steps = self.defaults["prodigy_steps"]
        return steps > 0 and self.param_groups[0]["k"] >= steps

    def beta3(self) -> float:
        beta3 = self.defaults["beta3"]
        return math.sqrt(self.defaults["betas"][1]) if beta3 is None else beta3

    def dlr(self, group: dict[str, Any]) -> float:
        """d * lr * bc for ``group``, bc = sqrt(1 - beta2^(k+1)) / (1 - beta1^(k+1)) or 1."""
        bc = 1.0
        if self.USES_BIAS_CORRECTION and self.defaults["use_bias_correction"]:
            beta1, beta2 = self.defaults["betas"]
            k = group["k"]
            bc = math.sqrt(1 - beta2 ** (k + 1)) / (1 - beta1 ** (k + 1))
        return group["d"] * group["lr"] * bc

    def statistics(self, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], state: dict, dlr: float) -> None:
        """Add this parameter's terms to the step's numerator and denominator (before its
        update), or free the statistics once d is frozen."""
        if self.frozen():
            state.pop("s", None)
            state.pop("p0", None)
            return
        sl = group["slice_p"]
        p_s = p.detach().reshape(-1)[::sl]
        if "s" not in state:
            state["s"] = torch.zeros(p_s.shape, dtype=torch.float32, device=p.device)
            state["p0"] = p_s.clone()
        d, d0 = group["d"], group["d0"]
        coef_s = (d / d0) * (d if group["safeguard_warmup"] else dlr)
        scalars = self.scalars(p, 0.0, (self.beta3(), coef_s, (d / d0) * dlr), dtype=torch.float64)
        if p.numel() == 0:
            return
        # One compiled graph per slice and dtypes (as the step kernels): dynamic shapes, but the
        # dtypes would otherwise each cost a recompile of a shared code object.
        fn = kernels.kernel(make_statistics_kernel, (sl, p.dtype, grad.dtype), self.compiled_optimizer)
        terms = fn(p.detach().reshape(-1), grad.reshape(-1), state["p0"], state["s"], scalars)
        acc = self._sums.get(p.device)
        self._sums[p.device] = terms if acc is None else acc + terms

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = super().step(closure)
        self.end_step()
        return loss

    def end_step(self) -> None:
        """Turn this step's sums into the next d (call it after the last ``step_parameter``
        when stepping parameters from backward hooks; ``step()`` calls it)."""
        first = self.param_groups[0]
        h = self.defaults
        update = {"k": first["k"] + 1}
        if not self.frozen():
            delta, den = 0.0, 0.0
            for sums in self._sums.values():
                a, b = sums.tolist()
                delta, den = delta + a, den + b
            d, d_max = first["d"], first["d_max"]
            numerator = self.beta3() * first["d_numerator"] + delta
            if den > 0:
                d_hat = h["d_coef"] * numerator / den
                if h["d_limiter"]:
                    d_hat = min(d_hat, d * 2**0.25)
                if d == h["d0"]:
                    d = max(d, d_hat)
                d_max = max(d_max, d_hat)
                d = min(d_max, d * h["growth_rate"])
            update.update(d=d, d_max=d_max, d_numerator=numerator)
        self._sums = {}
        for group in self.param_groups:
            group.update(update)
