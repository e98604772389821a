"""The learning-rate mask's 8-bit code (spec/automagic.md) inside the fused kernels.

The 256 levels are a small float32 table (``table``) passed to the kernel: decoding is a
gather, encoding a search in the sorted table (``torch.bucketize``, exact, so the codes match
``reference.mask_code`` bit for bit given the same value and draw) and one comparison with
the 16-bit draw.
"""

from __future__ import annotations

import torch

from spec.storage_layout import SR_BITS, mask_levels

_TABLES: dict[tuple[float, float, torch.device], torch.Tensor] = {}


def table(bounds: tuple[float, float], device: torch.device) -> torch.Tensor:
    """``mask_levels(*bounds)`` as a float32 tensor on ``device`` (cached)."""
    key = (*bounds, device)
    t = _TABLES.get(key)
    if t is None:
        if len(_TABLES) > 64:
            _TABLES.clear()
        t = _TABLES[key] = torch.tensor(mask_levels(*bounds), dtype=torch.float32, device=device)
    return t


def encode_mask(x: torch.Tensor, levels: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """uint8 codes of ``x`` (clamped to the table's ends) with the int32 draws ``r``."""
    x = torch.clamp(x.to(torch.float32), levels[0], levels[-1])
    k = torch.bucketize(x, levels[1:-1], right=True)
    lo, hi = levels[k], levels[k + 1]
    gap = hi - lo
    frac = torch.where(gap > 0, (x - lo) / torch.where(gap > 0, gap, 1.0), 0.0)
    up = r.to(torch.float32) < frac * float(2**SR_BITS)
    return (k + up.to(k.dtype)).to(torch.uint8)


def decode_mask(c: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    return levels[c.to(torch.int64)]
