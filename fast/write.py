"""Weight decay and the parameter write, shared by every optimizer (spec/weight_decay.md).

These run inside the fused kernels, on the fp32 (or fp64) working copy.
"""

from __future__ import annotations

from enum import Enum

import torch

from fast.rounding import stochastic_round_bf16


class WriteMode(str, Enum):
    """How the working copy becomes the stored parameter."""

    EXACT = "exact"  # the parameter dtype is the compute dtype
    STOCHASTIC = "stochastic"  # bf16, stochastic rounding with the kernel's counter-based draws
    NEAREST = "nearest"  # bf16 / fp16, round-to-nearest-even


def decay_amount(
    P: torch.Tensor, U: torch.Tensor, lr_wd: torch.Tensor, *, cautious: bool, scale: torch.Tensor | None = None
) -> torch.Tensor:
    """``lr*wd*P`` (times ``scale``: projected adaptivity's l); cautious: only where ``U*P >= 0``
    (zeros agree), not renormalised."""
    decay = lr_wd * P if scale is None else lr_wd * scale * P
    if cautious:
        decay = torch.where(U * P >= 0, decay, torch.zeros_like(decay))
    return decay


def new_param(
    P: torch.Tensor, U: torch.Tensor, lr_wd: torch.Tensor, *, decay: bool, cautious: bool,
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """``P - (decay + U)``: the small terms are summed first so that P is rounded once. Two
    subtractions from P would round twice at P's scale, a 1-ulp error that is a large fraction of
    a step when the step is a few ulps (Prodigy's first steps, d0 ~ 1e-6)."""
    if decay:
        U = decay_amount(P, U, lr_wd, cautious=cautious, scale=scale) + U
    return P - U


def store(P: torch.Tensor, dtype: torch.dtype, mode: WriteMode, bits: torch.Tensor | None) -> torch.Tensor:
    if mode is WriteMode.STOCHASTIC:
        return stochastic_round_bf16(P, bits)
    return P.to(dtype)


def write_mode(dtype: torch.dtype, stochastic_rounding: bool) -> WriteMode:
    if dtype in (torch.float32, torch.float64):
        return WriteMode.EXACT
    if dtype == torch.bfloat16 and stochastic_rounding:
        return WriteMode.STOCHASTIC
    if dtype in (torch.bfloat16, torch.float16):
        return WriteMode.NEAREST
    raise TypeError(f"Unsupported parameter dtype {dtype}: expected float32, float64, bfloat16 or float16")


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """All update math runs in at least fp32; fp64 parameters keep fp64."""
    return torch.float64 if dtype == torch.float64 else torch.float32
