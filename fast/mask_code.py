"""The learning-rate mask's 8-bit code (spec/automagic.md) inside the fused kernels.

Every level is computed, not looked up: l_c = min(a 2^e (1 + j / 2^m), b) for c = e 2^m + j
is one float32 multiplication of exact factors, so the kernels' levels are the spec's bit for
bit (a table gather costs 3 to 9x the whole fused step on CPU, where inductor cannot vectorise
it). Encoding estimates the level below the value from the float32 bits of x / a (its
exponent and mantissa are e and j, up to rounding), corrects it by one step either way against
the computed levels (the estimate is never further off: a level step is at least 2^-9 of the
value, the rounding a few 2^-24) and compares the 16-bit draw with the value's
position between that level and the next, as ``reference.mask_code`` does.
"""

from __future__ import annotations

import torch

from spec.storage_layout import SR_BITS, mask_code

MaskParams = tuple[float, float, int, int]  # (a, b, m, T) of spec.storage_layout.MaskCode


def params(bounds: tuple[float, float]) -> MaskParams:
    code = mask_code(*bounds)
    return code.low, code.high, code.mantissa_bits, code.top


ONE = 0x3F800000  # the float32 bits of 1.0


def level(c: torch.Tensor, code: MaskParams) -> torch.Tensor:
    """l_c (float32) of the int32 codes ``c``: q = 2^e (1 + j / 2^m) has the float32 bits
    (c << (23 - m)) + bits(1.0), so l_c = min(q a, b) costs three operations."""
    a, b, m, _ = code
    q = ((c << (23 - m)) + ONE).view(torch.float32)
    return torch.clamp_max(q * a, b)


def encode_mask(x: torch.Tensor, code: MaskParams, r: torch.Tensor) -> torch.Tensor:
    """uint8 codes of ``x`` (clamped to [a, b]) with the int32 draws ``r``."""
    a, b, m, top = code
    x = torch.clamp(x.to(torch.float32), a, b)
    if top == 0:  # one level (equal bounds)
        return torch.zeros_like(x, dtype=torch.uint8)
    # The estimate: the code whose q is below fl32(x / a), from its bits (x times the float32 of
    # 1 / a: two roundings, still far inside one level step).
    k = torch.clamp(((x * (1.0 / a)).view(torch.int32) - ONE) >> (23 - m), 0, top - 1)
    k = torch.where(x < level(k, code), (k - 1).clamp_min(0), k)
    k = torch.where((x >= level(k + 1, code)) & (k < top - 1), k + 1, k)
    lo, hi = level(k, code), level(k + 1, code)
    up = r.to(torch.float32) < (x - lo) / (hi - lo) * float(2**SR_BITS)
    return (k + up.to(k.dtype)).to(torch.uint8)


def decode_mask(c: torch.Tensor, code: MaskParams) -> torch.Tensor:
    return level(c.to(torch.int32), code)
