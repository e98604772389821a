"""Adafactor's factored second moment (spec/adafactor.md) inside compiled kernels, shared by
Adafactor, CAME and Automagic.

A step of the family is two or three kernels over the parameter: one reduces the gradient to
the new row and column factors and the update's RMS (a whole-tensor statistic the clip needs
before any element can be updated), CAME's second reduces its residual, and the last is the
shared fused step (fast.step) with the optimizer's elementwise math, which gets the reduced
statistics as ``aux``. The factors are small fp32 tensors updated in place; no kernel keeps a
full-size temporary.
"""

from __future__ import annotations

import torch

from fast import storage
from spec.storage_layout import Format


def batch_shape(shape: torch.Size | tuple[int, ...]) -> tuple[int, int, int]:
    """A tensor with >= 2 dims as (batch, rows, columns): the leading dims are batch dims."""
    batch = 1
    for d in shape[:-2]:
        batch *= d
    return batch, shape[-2], shape[-1]


ROW_BLOCK = 32  # rows summed together before the column sums go across the blocks


def column_mean(x: torch.Tensor) -> torch.Tensor:
    """``x.mean(-2)`` of (B, r, c), summed over blocks of ROW_BLOCK rows first: inductor's CPU
    code for a plain column reduction walks each column down the rows (2.3x slower); within a
    block the loop runs along the rows' contiguous columns."""
    rows = x.shape[-2]
    whole = rows - rows % ROW_BLOCK
    if whole < 2 * ROW_BLOCK:
        return x.mean(-2)
    B, _, c = x.shape
    total = x[:, :whole].reshape(B, whole // ROW_BLOCK, ROW_BLOCK, c).sum(-2).sum(-2)
    if whole < rows:
        total = total + x[:, whole:].sum(-2)
    return total / rows


def factor_update(R: torch.Tensor, C: torch.Tensor, sq: torch.Tensor, beta: torch.Tensor,
                  one_m_beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The EMAs of the row means (over columns) and column means (over rows) of ``sq`` (B, r, c)."""
    return beta * R + one_m_beta * sq.mean(-1), beta * C + one_m_beta * column_mean(sq)


def inverse_sqrt_factors(R: torch.Tensor, C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """1/sqrt of the estimate R_i C_j / mean(R) as a row part (B, r) and a column part (B, c),
    as transformers computes it: rsqrt(R / mean(R)) and rsqrt(C)."""
    return (R / R.mean(-1, keepdim=True)).rsqrt(), C.rsqrt()


def times_factors(x: torch.Tensor, row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
    """``x`` (B, r, c) times a row part (B, r) and a column part (B, c)."""
    return x * row[:, :, None] * col[:, None, :]


def rms(x: torch.Tensor) -> torch.Tensor:
    return (x * x).mean().sqrt()


def make_second_moment_kernel(factored: bool, scale_parameter: bool, fmt: Format | None,
                              dtype: torch.dtype):
    """``kernel(p, g, R, C, v, s) -> (row, col, scale, lr_t, rms_p)``.

    ``s`` = [0, beta2, 1 - beta2, eps1, clip_threshold, rho, eps2]. Factored (p, g as (B, r, c)):
    updates the factors R, C in place and returns their inverse square-root parts; otherwise
    ``v`` is the dense second moment's stored views in ``fmt`` (decoded here; the step kernel
    recomputes and stores its new value) and row, col are None. ``dtype`` (the parameter's) is
    only a cache key. ``scale`` = lr_t / max(1, RMS(u) / d), with u = g / sqrt(V)
    and lr_t the step size (times max(eps2, RMS(p)) with ``scale_parameter``; rms_p is None without)."""

    def second_moment_kernel(p, g, R, C, v, s):
        _, beta2, one_m_beta2, eps1, clip, rho, eps2 = s.unbind(0)
        G = g.to(s.dtype)
        rms_p = rms(p.to(s.dtype)) if scale_parameter else None
        sq = G * G + eps1
        row = col = None
        if factored:
            R_new, C_new = factor_update(R, C, sq, beta2, one_m_beta2)
            row, col = inverse_sqrt_factors(R_new, C_new)
            u = times_factors(G, row, col)
            R.copy_(R_new)
            C.copy_(C_new)
        else:
            V = storage.decode(fmt, v, G.numel(), s.dtype, G.shape)
            u = G * (beta2 * V + one_m_beta2 * sq).rsqrt()
        lr_t = torch.maximum(eps2, rms_p) * rho if scale_parameter else rho
        scale = lr_t / torch.clamp(rms(u) / clip, min=1.0)
        return row, col, scale, lr_t, rms_p

    return second_moment_kernel
