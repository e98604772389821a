"""Kourkoutas-beta's dynamic beta2 (spec/directions.md), on the host in float64.

The whole rule is a handful of scalars per bucket of tensors, so it runs in Python: one
``_foreach_norm`` and one device sync per ``step()`` for all buckets, after which each
parameter's beta2 and bias correction enter its kernel as ordinary scalars.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any

import torch

R_KEY = "kourkoutas_r"  # the bucket's EMA of its gradient norm, in every member's state
PROD_KEY = "kourkoutas_beta2_prod"  # the product of this parameter's dynamic beta2s


def beta2_now(rho: float, r: float, t: int, h: Mapping[str, Any]) -> float:
    """beta2_t from the bucket norm ``rho``, its EMA ``r`` (this step's included) and the
    parameter's 1-based step t."""
    x = rho / (r + h["tiny_spike"])
    sun = x / (1 + x)
    beta2_max = h["betas"][1]
    target = beta2_max - (beta2_max - h["beta2_min"]) * sun
    warm = h["k_warmup_steps"]
    w = min(1.0, t / warm) if warm > 0 else 1.0
    return (1 - w) * beta2_max + w * target


class Kourkoutas:
    """The buckets of one optimizer and the norms of the current step."""

    def __init__(self, optimizer: torch.optim.Optimizer, key_fn) -> None:
        self.opt = optimizer
        self.key_fn = key_fn
        self.members: dict[Hashable, list[torch.Tensor]] = {}
        self.bucket_of: dict[torch.Tensor, Hashable] = {}
        self.group_of: dict[Hashable, dict[str, Any]] = {}  # a bucket's EMA uses its first tensor's group
        self.rho: dict[Hashable, float] = {}  # buckets prepared for the current step()
        for group in optimizer.param_groups:
            if group.get("kourkoutas_beta", False):
                for p in group["params"]:
                    key = ("tensor", id(p)) if key_fn is None else ("key", key_fn(p))
                    self.bucket_of[p] = key
                    self.members.setdefault(key, []).append(p)
                    self.group_of.setdefault(key, group)

    def prepare(self) -> None:
        """The norms of every bucket with a gradient, with one device sync."""
        stepping = [p for p in self.bucket_of if p.grad is not None]
        if not stepping:
            return
        by_device: dict[torch.device, list[torch.Tensor]] = {}
        for p in stepping:
            by_device.setdefault(p.grad.device, []).append(p)
        norms: dict[torch.Tensor, float] = {}
        for ps in by_device.values():  # one sync per device
            norms.update(zip(ps, torch.stack([_norm(p.grad).double() for p in ps]).tolist()))
        sums: dict[Hashable, float] = {}
        for p, n in norms.items():
            sums[self.bucket_of[p]] = sums.get(self.bucket_of[p], 0.0) + n * n
        self.rho = {k: math.sqrt(v) for k, v in sums.items()}
        self._advance(self.rho)

    def finish(self) -> None:
        self.rho = {}

    def _advance(self, rho: Mapping[Hashable, float]) -> None:
        """r <- alpha r + (1 - alpha) rho, stored in every member's state."""
        for key, value in rho.items():
            members = self.members[key]
            group = self.group_of[key]
            r = self.opt.state[members[0]].get(R_KEY, 0.0)
            r = group["ema_alpha"] * r + (1 - group["ema_alpha"]) * value
            for p in members:
                self.opt.state[p][R_KEY] = r

    def beta2(self, p: torch.Tensor, group: Mapping[str, Any], state: dict, t: int) -> tuple[float, float]:
        """``(beta2_t, 1 - prod beta2)`` for ``p`` at its step ``t``; records the product."""
        key = self.bucket_of[p]
        if key not in self.rho:
            if len(self.members[key]) > 1:
                raise RuntimeError(
                    "Kourkoutas-beta: step_parameter() on a tensor whose layer_key_fn bucket holds "
                    f"{len(self.members[key])} tensors; the bucket's gradient norm needs all of them: call step()")
            rho = float(_norm(p.grad))
            self._advance({key: rho})
        else:
            rho = self.rho[key]
        beta2 = beta2_now(rho, state[R_KEY], t, group)
        prod = state.get(PROD_KEY, 1.0) * beta2
        state[PROD_KEY] = prod
        return beta2, 1 - prod


def _norm(g: torch.Tensor) -> torch.Tensor:
    """The L2 norm accumulated in at least fp32, without an upcast copy of g."""
    return torch.linalg.vector_norm(g, dtype=torch.float64 if g.dtype == torch.float64 else torch.float32)
