"""Optimizer-state storage (spec/state_storage.md): decode before the update, encode after.

``decode``/``encode`` run inside the fused (compiled) step kernel on tensors in the working
shape; a factored state's factors and signs are reductions of its new value in a second
kernel (``factor_sums``, run first); ``finish`` stores them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fast import codes, mask_code
from fast.rounding import stochastic_round_bf16
from spec.storage_layout import (
    BLOCKWISE,
    NIBBLE_GROUP,
    NORM_FLOOR,
    QUANTIZED,
    STATE_FORMAT_VERSION,
    Format,
    code_bytes,
    factor_shape,
    n_blocks,
    packed_width,
)

DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
NEAREST_DRAW = 2**15  # the draw that rounds a code to nearest (ties away from zero)

Stored = tuple[torch.Tensor, ...]


def allocate(fmt: Format, p: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Zero states of ``fmt`` for ``p``, in the order of ``fmt.keys``."""
    dev = p.device
    if fmt.kind == "bits":
        return (torch.zeros(packed_width(p.numel()), dtype=torch.uint8, device=dev),)
    if fmt.kind == "mask8":
        return (torch.zeros(p.numel(), dtype=torch.uint8, device=dev),)
    if fmt.kind == "factored":
        d1, d2 = factor_shape(p.numel())
        sign = (torch.zeros(d1, packed_width(d2), dtype=torch.uint8, device=dev),) if fmt.signed else ()
        return (torch.zeros(d1, device=dev), torch.zeros(d2, device=dev), *sign)
    if fmt.kind in QUANTIZED:
        stored = torch.zeros(code_bytes(p.numel(), fmt.code), dtype=torch.uint8, device=dev)
        return (stored, torch.zeros(n_blocks(p.numel(), fmt.block), device=dev))
    if fmt.kind == "fp16":
        values = torch.zeros(p.shape, dtype=torch.float16, device=dev)
        return (values, torch.zeros(n_blocks(p.numel(), fmt.block), device=dev))
    return (torch.zeros(p.shape, dtype=DTYPES[fmt.dtype], device=dev),)


FORMAT_KEY = "state_format"
CHANGED_IN_VERSION_2 = ("int8_sr", "fp16")  # the linear 8-bit code and unscaled float16 states


def check_format_version(owner: str, saved: dict) -> None:
    """Refuse a state_dict whose stored states were written in an older format.

    Version 1 (no ``state_format`` entry) stored ``int8_sr`` states as linear codes and
    ``fp16`` states unscaled; reading those bytes as the current codes would silently corrupt
    the moments. Other formats did not change and load as before."""
    version = saved.get(FORMAT_KEY, 1)
    if version == STATE_FORMAT_VERSION:
        return
    if version > STATE_FORMAT_VERSION:
        raise ValueError(f"{owner}.load_state_dict: the state_dict has state format version {version}; this "
                         f"release reads version {STATE_FORMAT_VERSION}. Upgrade to resume it.")
    for i, group in enumerate(saved["param_groups"]):
        precision = group.get("state_precision", "auto")
        if precision in CHANGED_IN_VERSION_2 and any(saved["state"].get(k) for k in group["params"]):
            raise ValueError(
                f"{owner}.load_state_dict: param group {i} was saved with state_precision={precision!r} in "
                f"state format version {version} (the linear 8-bit code / unscaled float16 states); this "
                f"release stores version {STATE_FORMAT_VERSION} (minifloat codes, scaled float16) and cannot "
                "convert them. Resume with the release that wrote the checkpoint, or restart the optimizer "
                "states (load the model weights only).")


def kernel_views(fmt: Format, tensors: list[torch.Tensor], shape: tuple[int, ...]) -> Stored:
    """The kernel arguments of one state: dense values viewed as ``shape`` (the kernel's
    working shape), blockwise formats flat (blocks run over the flat order), factors as stored."""
    if fmt.kind == "factored":
        return tuple(tensors)
    if fmt.kind == "bits":
        n = 1
        for d in shape:
            n *= d
        if n % 8 == 0:  # whole bytes: unpacked and packed inside the kernel
            return (tensors[0],)
        # A partial last byte: unpacked outside the kernel (packing it inside needs a pad).
        padded = _bit_table(tensors[0].device)[tensors[0].long()].view(-1)  # 8 bytes of 0/1 per byte
        return (padded[:n].view(shape), tensors[0], padded)
    if fmt.kind == "mask8":  # the codes and the code's constants (Python numbers: part of the graph)
        return (tensors[0].view(shape), mask_code.params(fmt.bounds))
    if fmt.kind in BLOCKWISE:
        if not block_rows(shape, fmt):
            return (tensors[0].view(-1), tensors[1])
        if fmt.kind == "int4":  # two codes per byte: a row of bytes per row of the working shape
            return (tensors[0].view(shape[0], -1), tensors[1])
        return (tensors[0].view(shape), tensors[1])
    return (tensors[0].view(shape),)


def block_rows(shape: tuple[int, ...], fmt: Format) -> bool:
    """Whether the working ``shape`` has rows of whole blocks of ``fmt`` (else it is read flat):
    (rows, B), or (rows, k, b) with B = b or k b."""
    if len(shape) == 2:
        return shape[1] % fmt.block == 0
    return len(shape) == 3 and fmt.block in (shape[2], shape[1] * shape[2])


def needs_bits(fmt: Format) -> bool:
    return fmt.kind in (*QUANTIZED, "mask8") or (fmt.kind == "dense" and fmt.stochastic)


# -- inside the kernels ----------------------------------------------------------------------
def working_shape(numel: int, formats: tuple[Format | None, ...]) -> tuple[int, ...]:
    """The shape every full-size tensor of a step is viewed as.

    Factored states: (d1, d2), split as (d1, d2 / 8, 8) when 8 divides d2 so that each sign
    byte covers the last axis (unpack is a broadcast, pack a sum over that axis: both
    vectorise). Blockwise states (8-bit, 4-bit, float16), when their largest block divides n:
    (n / B, B), one block per row, so the block reductions and their broadcasts index simply
    (with a flat view and a symbolic n inductor emits scalar code with modulo arithmetic, ~10x
    slower); with two sizes B > b (4-bit: the 256-element v blocks and nibble groups, the
    128-element m blocks) (n / B, B / b, b), so that either block is a run of trailing axes
    and no view of a computed tensor splits an axis. Otherwise flat."""
    if any(f is not None and f.kind == "factored" for f in formats):
        d1, d2 = factor_shape(numel)
        return (d1, d2 // 8, 8) if d2 % 8 == 0 else (d1, d2)
    sizes = {f.block for f in formats if f is not None and f.kind in BLOCKWISE}
    sizes |= {NIBBLE_GROUP for f in formats if f is not None and f.kind == "int4"}
    if sizes and numel and numel % max(sizes) == 0:
        big, small = max(sizes), min(sizes)
        if big == small:
            return (numel // big, big)
        if len(sizes) == 2 and big % small == 0:
            return (numel // big, big // small, small)
    return (numel,)


def _bit_values(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    k = torch.arange(8, device=device, dtype=torch.int32)
    return k, torch.pow(2.0, k.to(torch.float32))


def _unpack_groups(packed: torch.Tensor) -> torch.Tensor:
    """(d1, w) bytes -> (d1, w, 8) booleans, bit k of each byte at position k."""
    k, _ = _bit_values(packed.device)
    return ((packed.to(torch.int32)[:, :, None] >> k) & 1) == 1


def _pack_groups(positive: torch.Tensor) -> torch.Tensor:
    """(d1, w, 8) booleans -> (d1, w) byte values (as floats: an exact sum of distinct powers
    of two, which inductor vectorises; the copy into the uint8 tensor converts)."""
    _, weight = _bit_values(positive.device)
    return torch.where(positive, weight, torch.zeros_like(weight)).sum(-1)


_TABLES: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}


def _bit_tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(256, 8) bits as 0/1 bytes, bit k of byte b at [b, k]; and the weights 2^k as uint8."""
    if device not in _TABLES:
        k = torch.arange(8, device=device)
        # uint8 rather than bool: inductor's CPU code for bool loads and stores is not vectorised
        table = ((torch.arange(256, device=device)[:, None] >> k) & 1).to(torch.uint8)
        _TABLES[device] = (table, (1 << k).to(torch.uint8))
    return _TABLES[device]


def _bit_table(device: torch.device) -> torch.Tensor:
    return _bit_tables(device)[0]


def _bit_weights(device: torch.device) -> torch.Tensor:
    return _bit_tables(device)[1]


def pack_bytes(positive: torch.Tensor) -> torch.Tensor:
    """Booleans (8 | numel) -> bytes, element 8 b + k at bit k of byte b. Shifts and ors of the
    eight strided slices: inductor's CPU code vectorises these, not a weighted sum over a dim of 8
    in integers (10x slower)."""
    x = positive.reshape(-1, 8).to(torch.int32)
    acc = x[:, 0]
    for k in range(1, 8):
        acc = acc | (x[:, k] << k)
    return acc.to(torch.uint8)


def unpack_signs(packed: torch.Tensor, d2: int) -> torch.Tensor:
    """Bit j % 8 of byte j // 8, as booleans of shape (d1, d2)."""
    return _unpack_groups(packed).reshape(packed.shape[0], -1)[:, :d2]


def pack_signs(positive: torch.Tensor) -> torch.Tensor:
    """numpy.packbits(positive, axis=1, bitorder="little") of a (d1, d2) boolean tensor."""
    d1, d2 = positive.shape
    width = packed_width(d2)
    if width * 8 != d2:
        positive = F.pad(positive, (0, width * 8 - d2))
    return _pack_groups(positive.view(d1, width, 8)).to(torch.uint8)


def decode(fmt: Format, t: Stored, n: int, cdt: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    """The state's ``n`` values in the compute dtype, in the working ``shape``."""
    if fmt.kind == "bits":
        if len(t) == 1:
            k, _ = _bit_values(t[0].device)
            return ((t[0].to(torch.int32)[:, None] >> k) & 1).view(shape).to(cdt)
        return t[0].to(cdt)
    if fmt.kind == "mask8":
        return mask_code.decode_mask(t[0], t[1]).to(cdt)
    if fmt.kind == "factored":
        row, col = t[0].to(cdt), t[1].to(cdt)
        if len(shape) == 3:
            mag = row[:, None, None] * col.view(1, shape[1], 8)
            positive = _unpack_groups(t[2]) if fmt.signed else None
        else:
            mag = row[:, None] * col[None, :]
            positive = unpack_signs(t[2], col.shape[0]) if fmt.signed else None
        return mag if positive is None else torch.where(positive, mag, -mag)
    if fmt.kind in QUANTIZED:
        c = t[0].to(torch.int32) if fmt.kind == "int8" else codes.unpack_nibbles(t[0], n)
        return codes.decode(c, t[1], fmt.code).to(cdt).reshape(shape)
    if fmt.kind == "fp16":
        return codes.decode_fp16(t[0], t[1], cdt).reshape(shape)
    return t[0].to(cdt).view(shape)


def encode(fmt: Format, x: torch.Tensor, t: Stored, bits: torch.Tensor | None) -> None:
    """Store the new value ``x`` (compute dtype, the kernel's working shape) into ``t``."""
    if fmt.kind == "factored":  # stored by finish, from factor_sums
        return
    if fmt.kind == "bits":
        if len(t) == 1:
            t[0].copy_(pack_bytes(x > 0.5))
        else:  # packed by finish
            t[0].copy_((x > 0.5).to(torch.uint8))
        return
    if fmt.kind == "mask8":
        t[0].copy_(mask_code.encode_mask(x, t[1], bits))
        return
    if fmt.kind in QUANTIZED:
        r = torch.full_like(x, NEAREST_DRAW, dtype=torch.int32) if bits is None else bits
        x32 = x.to(torch.float32)
        rows = x32 if block_rows(tuple(x32.shape), fmt) else x32.reshape(-1)
        c, scales = codes.encode(rows, fmt.code, r.reshape(rows.shape))
        t[0].copy_((c if fmt.kind == "int8" else codes.pack_nibbles(c)).reshape(t[0].shape))
        t[1].copy_(scales)
        return
    if fmt.kind == "fp16":
        x32 = x.to(torch.float32)
        values, scales = codes.encode_fp16(x32 if block_rows(tuple(x32.shape), fmt) else x32.reshape(-1), fmt.signed)
        t[0].copy_(values.reshape(t[0].shape))
        t[1].copy_(scales)
        return
    if fmt.stochastic:
        t[0].copy_(stochastic_round_bf16(x.to(torch.float32), bits.view(x.shape)))
    else:
        t[0].copy_(x.to(t[0].dtype))


# -- the factors (a kernel of their own) -----------------------------------------------------
def factor_sums(x: torch.Tensor, signed: bool) -> tuple[torch.Tensor, ...]:
    """Reductions of the new value ``x`` (working shape) for its factors: the row sums of |x|
    (for the 3-D shape per sign byte, (d1, d2/8), summed by ``finish``), its column sums over
    blocks of R rows (d1/R, d2) and, if ``signed``, its packed signs. They run in a kernel of
    their own: on CPU any reduction inside the step kernel splits its loop nest (~3x slower).
    """
    d1 = x.shape[0]
    block = next(r for r in (32, 16, 8, 4, 2, 1) if d1 % r == 0)
    mag = x.abs()
    sums = (mag.sum(-1), mag.reshape(d1 // block, block, -1).sum(1))
    if not signed:
        return sums
    return (*sums, _pack_groups(x > 0) if x.dim() == 3 else pack_signs(x > 0))


def finish(fmt: Format, t: Stored, sums: tuple[torch.Tensor, ...] | None) -> None:
    """Store the ``factor_sums``: the row sums, the column sums normalised by their total and
    the signs (after the step kernel, which decodes the old ones)."""
    if fmt.kind == "bits":  # the kernel wrote the first n of the padded booleans; the pad stays 0
        if len(t) == 1:  # packed by the kernel
            return
        weights = _bit_weights(t[2].device)
        t[1].copy_((t[2].view(-1, 8) * weights).sum(-1, dtype=torch.uint8))
        return
    if fmt.kind != "factored":
        return
    t[0].copy_(sums[0] if sums[0].dim() == 1 else sums[0].sum(1))
    if fmt.signed:
        t[2].copy_(sums[2])
    c = sums[1].sum(0)
    t[1].copy_(c / c.sum().clamp_min(NORM_FLOOR))
