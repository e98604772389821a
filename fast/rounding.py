"""Stochastic rounding fp32 -> bf16 (spec/stochastic_rounding.md). The random integers are an
argument: the kernels compute them with fast.counter_rng, the exact checks pass chosen ones."""

from __future__ import annotations

import torch

_HIGH_HALF = -65536  # 0xFFFF0000 as a signed int32


def stochastic_round_bf16(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``bits(out) = (bits(x) + r) & 0xFFFF0000`` on the fp32 pattern; ``r`` int32 in [0, 2^16).

    Unbiased: over all 2^16 values of r the mean is exactly x. NaN is kept (the bit trick
    alone would turn a NaN with payload only in the low half into Inf). ``x != x`` is the NaN
    test: inductor's CPU backend vectorises the comparison, while ``torch.isnan`` goes through
    a per-element loop (a third of a bf16 step's time).
    """
    rounded = ((x.view(torch.int32) + r) & _HIGH_HALF).view(torch.float32)
    return torch.where(x != x, x, rounded).to(torch.bfloat16)

