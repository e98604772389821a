"""The blockwise minifloat codes and scaled float16 states inside the fused kernels
(spec/state_storage.md, "8-bit and 4-bit codes" and "float16 states").

Codes come from integer operations on float32 bit patterns, which inductor vectorises and
which need no log2 or exp2: the exponent field of ``y`` is the binade and its top mantissa
bits the level, so adding the shifted 16-bit draw before the shift is stochastic rounding
between adjacent levels (a carry moves to the next binade), as for bf16. ``reference.codes``
computes the same codes from the definitions; the suite checks them bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spec.storage_layout import (
    FP16_BLOCK,
    FP16_TINY,
    FP16_TOP_EXPONENT,
    MIN_NORMAL_EXPONENT,
    NIBBLE_GROUP,
    SR_BITS,
    Code,
)

Parts = list[tuple[int, torch.Tensor]]


def blocks(x: torch.Tensor, block: int) -> Parts:
    """Flat ``x`` as (first block index, view) pairs: the full blocks as (n_full, block) and
    the remainder as (1, rest), without padding.

    Per-block values broadcast over the block axis of each view. Other formulations are
    miscompiled by torch 2.13's inductor on CPU: a gather ``v[arange(n) // block]`` reads
    uninitialised memory with dynamic shapes, and a zero-padded (n_blocks, block) view gives
    a wrong last partial block once its result is written into an 8-bit tensor.
    """
    n = x.shape[0]
    full = n // block
    parts = [(0, x[: full * block].view(full, block))] if full else []
    if n > full * block:
        parts.append((full, x[full * block:].view(1, n - full * block)))
    return parts


def block_parts(x: torch.Tensor, block: int) -> Parts:
    """``x`` as block views. A working shape whose rows hold one block, or whose trailing axes
    multiply to one block (``block_dims``), is itself the one part: no reshape, so inductor
    indexes it simply when the number of rows is symbolic. Rows of several blocks are
    reshaped to one block per row; anything else is flattened and split by ``blocks``."""
    if x.dim() == 3 and block_dims(x, block) is not None:
        return [(0, x)]
    if x.dim() == 2 and x.shape[1] % block == 0:
        return [(0, x if x.shape[1] == block else x.reshape(-1, block))]
    return blocks(x.reshape(-1), block)


def block_dims(x: torch.Tensor, block: int) -> tuple[int, ...] | None:
    """The axes of one block of a part: axis 1 of a 2-D part (a block, or the partial last
    one, per row); for 3-D, the trailing axes whose sizes multiply to ``block`` (None if none)."""
    if x.dim() == 2:
        return (1,)
    size = 1
    for d in range(x.dim() - 1, 0, -1):
        size *= x.shape[d]
        if size == block:
            return tuple(range(d, x.dim()))
    return None


def _per_block(values: torch.Tensor, k: int, xb: torch.Tensor, block: int) -> torch.Tensor:
    """The per-block ``values`` (flat, from block ``k`` on) shaped to broadcast over ``xb``."""
    dims = block_dims(xb, block)
    shape = [1 if d in dims else xb.shape[d] for d in range(xb.dim())]
    count = 1
    for d in shape:
        count *= d
    return values[k:k + count].view(shape)


def _joined(parts: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """The per-part results in ``like``'s shape (one part) or flat (several parts)."""
    if len(parts) == 1:
        return parts[0].reshape(like.shape)
    return torch.cat([p.reshape(-1) for p in parts])


def _flat(parts: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([p.reshape(-1) for p in parts]) if len(parts) > 1 else parts[0].reshape(-1)


def _bits(y: torch.Tensor) -> torch.Tensor:
    return y.view(torch.int32)


def _base(code: Code) -> int:
    """The float32 bit pattern of 2^-bias, the bottom of magnitude binade a = 0."""
    return (127 - code.bias) << 23


def _magnitude(y: torch.Tensor, r: torch.Tensor, code: Code) -> torch.Tensor:
    """int32 magnitude codes of ``y >= 0`` (float32) with 16-bit draws ``r``."""
    shift = 23 - code.man_bits
    draw = r << (shift - SR_BITS)  # the draw's 16 bits just below the kept mantissa bits
    c = (_bits(y) - _base(code) + draw) >> shift
    if code.signed:  # subnormals: the binade [L1, 2 L1) shifted down by L1
        low = code.smallest_normal
        sub = ((_bits(y + low) - _base(code) + draw) >> shift) - 2**code.man_bits
        c = torch.where(y >= low, c, sub)
    return c.clamp(0, code.magnitudes - 1)


def _level(c: torch.Tensor, code: Code) -> torch.Tensor:
    """float32 level of int32 magnitude codes ``c``."""
    normal = (_base(code) + (c << (23 - code.man_bits))).view(torch.float32)
    if not code.signed:
        return normal
    sub = c.to(torch.float32) * 2.0 ** (1 - code.bias - code.man_bits)
    return torch.where(c < 2**code.man_bits, sub, normal)


def encode(x: torch.Tensor, code: Code, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int32 codes (one per element, in ``x``'s shape when its rows hold whole blocks, else
    flat) and fp32 scales of the float32 ``x``; ``r`` has ``x``'s shape."""
    top = code.top
    codes, scales = [], []
    for (_, xb), (_, rb) in zip(block_parts(x, code.block), block_parts(r, code.block)):
        absmax = xb.abs().amax(block_dims(xb, code.block), keepdim=True)
        # (1 / A) * T, not T / A: inductor rewrites a division of a constant into exactly this, so
        # eager and compiled kernels (and the reference) round the same way.
        inv = torch.where(absmax > 0, (1.0 / absmax) * top, torch.zeros_like(absmax))
        c = _magnitude(xb.abs() * inv, rb, code)
        if code.signed:  # the sign bit of x, kept only on nonzero codes ((c + mags - 1) >> e+m is c > 0)
            nonzero = (c + (code.magnitudes - 1)) >> (code.bits - 1)
            c = c | ((_bits(xb) >> 31) & nonzero * code.magnitudes)
        codes.append(c)
        scales.append((absmax / top).view(-1))
    return _joined(codes, x), _flat(scales)


def decode(c: torch.Tensor, scales: torch.Tensor, code: Code) -> torch.Tensor:
    """float32 values of the int32 codes ``c`` (shaped as ``encode`` returns them)."""
    out = []
    for k, cb in block_parts(c, code.block):
        s = _per_block(scales, k, cb, code.block)
        if code.signed:
            negative = cb >= code.magnitudes
            mag = _level(cb & (code.magnitudes - 1), code)
            out.append(torch.where(negative, -mag, mag) * s)
        else:
            out.append(_level(cb, code) * s)
    return _joined(out, c)


def pack_nibbles(c: torch.Tensor) -> torch.Tensor:
    """4-bit codes two per byte, in groups of NIBBLE_GROUP elements: byte j of a group holds
    element j (low nibble) and element j + h (high nibble), h = ceil(L / 2) for a group of L
    elements (the last may be shorter; its missing high nibble is 0). Rows of one group
    ((rows, 2, G/2) or (rows, G)) pack to rows of G/2 bytes from two contiguous halves
    (vectorised loads); flat codes pack group by group."""
    g = NIBBLE_GROUP
    if c.dim() >= 2 and c[0].numel() == g:
        halves = c.reshape(-1, 2, g // 2)
        return halves[:, 0, :] | (halves[:, 1, :] << 4)
    c = c.reshape(-1)
    full = c.shape[0] // g
    parts = [pack_nibbles(c[: full * g].view(full, g)).view(-1)] if full else []
    tail = c[full * g:]
    if tail.shape[0]:
        h = (tail.shape[0] + 1) // 2
        parts.append(tail[:h] | (F.pad(tail[h:], (0, 2 * h - tail.shape[0])) << 4))
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def unpack_nibbles(packed: torch.Tensor, n: int) -> torch.Tensor:
    """int32 codes of the nibbles (``pack_nibbles`` inverted): rows of G/2 bytes unpack to
    (rows, 2, G/2) codes; a flat ``packed`` to its ``n`` codes, flat."""
    g = NIBBLE_GROUP
    b = packed.to(torch.int32)
    if b.dim() == 2 and b.shape[1] == g // 2:
        return torch.stack((b & 15, b >> 4), dim=1)
    b = b.reshape(-1)
    full = n // g
    parts = [unpack_nibbles(b[: full * g // 2].view(full, g // 2), 0).view(-1)] if full else []
    if n > full * g:
        tail = b[full * g // 2:]
        parts.append(torch.cat((tail & 15, tail >> 4))[: n - full * g])
    return torch.cat(parts) if len(parts) > 1 else parts[0]


# -- scaled float16 -----------------------------------------------------------------------


def _fp16_scale(absmax: torch.Tensor) -> torch.Tensor:
    """2^(floor(log2 absmax) - FP16_TOP_EXPONENT), at least 2^-126, built from the exponent field."""
    exponent = ((_bits(absmax) >> 23) & 0xFF) - FP16_TOP_EXPONENT
    power = (exponent.clamp_min(MIN_NORMAL_EXPONENT) << 23).view(torch.float32)
    return torch.where(absmax > 0, power, torch.zeros_like(power))


def encode_fp16(x: torch.Tensor, signed: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """float16 ``x / s_b`` (exact division by a power of two, then round to nearest) and scales;
    non-negative states are zero-free: a positive value that rounds to 0 stores 2^-24."""
    values, scales = [], []
    for _, xb in block_parts(x, FP16_BLOCK):
        s = _fp16_scale(xb.abs().amax(1, keepdim=True))
        inv = torch.where(s > 0, 1.0 / s, torch.zeros_like(s))
        h = (xb * inv).to(torch.float16)
        if not signed:
            h = torch.where((xb > 0) & (h == 0), torch.full_like(h, FP16_TINY), h)
        values.append(h)
        scales.append(s.view(-1))
    return _joined(values, x), _flat(scales)


def decode_fp16(values: torch.Tensor, scales: torch.Tensor, cdt: torch.dtype) -> torch.Tensor:
    return _joined([vb.to(cdt) * scales[k:k + vb.shape[0]][:, None].to(cdt)
                    for k, vb in block_parts(values, FP16_BLOCK)], values)
