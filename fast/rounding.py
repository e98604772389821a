"""Stochastic rounding fp32 -> bf16 with injectable random bits (spec/stochastic_rounding.md)."""

from __future__ import annotations

import torch

_HIGH_HALF = -65536  # 0xFFFF0000 as a signed int32


def stochastic_round_bf16(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``bits(out) = (bits(x) + r) & 0xFFFF0000`` on the fp32 pattern; ``r`` int32 in [0, 2^16).

    Unbiased: over all 2^16 values of r the mean is exactly x. NaN is kept (the bit trick
    alone would turn a NaN with payload only in the low half into Inf).
    """
    rounded = ((x.view(torch.int32) + r) & _HIGH_HALF).view(torch.float32)
    return torch.where(torch.isnan(x), x, rounded).to(torch.bfloat16)


def draw_bits(numel: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """One uniform draw in [0, 2^16) per element, from the optimizer's own generator."""
    return torch.randint(0, 2**16, (numel,), generator=generator, device=device, dtype=torch.int32)
