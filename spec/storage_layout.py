"""The storage layout of optimizer states, in plain Python (``fast`` imports it; no sympy).

spec/state_storage.md defines every format; this module holds its constants and the
decisions that pick a format for one state of one parameter.
"""

from __future__ import annotations

import functools
import math
import struct
from dataclasses import dataclass

NORM_FLOOR = 1e-12  # the normalised factor is divided by max(sum, NORM_FLOOR)
SR_BITS = 16  # every stochastic draw is a uniform integer in [0, 2^16)
FP16_BLOCK = 2048  # float16 states: one power-of-two scale per block
FP16_TOP_EXPONENT = 14  # s_b = 2^(floor(log2 max|x|) - 14): the block's largest |x| / s_b lies in [2^14, 2^15)
FP16_TINY = 2.0**-24  # the smallest positive float16: what a positive second moment stores at least
MIN_NORMAL_EXPONENT = 1  # the biased float32 exponent of 2^-126: scales stay normal numbers
STATE_FORMAT_VERSION = 2  # 1: the linear 8-bit code s = max/255 (before 2026-12); 2: the minifloat codes
DENSE_PRECISIONS = {"fp32": ("float32", False), "bf16_sr": ("bfloat16", True)}


@dataclass(frozen=True)
class Code:
    """A blockwise minifloat code of ``exp_bits`` exponent and ``man_bits`` mantissa bits
    (plus a sign bit when ``signed``) and one fp32 scale per ``block`` elements
    (spec/state_storage.md, "8-bit and 4-bit codes").

    Level ``c`` (the magnitude code) is ``2^(a - bias) (1 + f / 2^man_bits)`` with
    ``a = c >> man_bits``, ``f`` the low bits and ``bias = 2^exp_bits - 1``, so the top binade
    is [1, 2) and the largest level is ``top = 2 - 2^-man_bits``. Unsigned codes are zero-free:
    ``a = 0`` is a binade like the others and values below it store its smallest level.
    Signed codes are IEEE-like: ``a = 0`` holds the subnormals ``f 2^(1 - bias - man_bits)``,
    0 included; the sign is the bit above the magnitude (sign-magnitude, never set on 0).
    """

    exp_bits: int
    man_bits: int
    signed: bool
    block: int

    @property
    def bits(self) -> int:
        return self.exp_bits + self.man_bits + self.signed

    @property
    def bias(self) -> int:
        return 2**self.exp_bits - 1

    @property
    def magnitudes(self) -> int:
        """How many magnitude codes there are: 2^(exp_bits + man_bits)."""
        return 2 ** (self.exp_bits + self.man_bits)

    @property
    def top(self) -> float:
        """The largest level, to which each block's largest |x| is scaled."""
        return 2.0 - 2.0**-self.man_bits

    @property
    def smallest_normal(self) -> float:
        """The bottom of the lowest normal binade: a = 0 unsigned, a = 1 signed."""
        return 2.0 ** (int(self.signed) - self.bias)


# 4-bit codes are packed two per byte within groups of this many elements: byte j of a group
# holds element j and element j + ceil(L / 2) of its L elements (spec/state_storage.md). A
# multiple of every 4-bit block, so each block is a contiguous run of low or high nibbles.
NIBBLE_GROUP = 256

# The codes of each format, chosen by measurement (spec/state_storage.md, "Rationale").
CODES = {
    ("int8", False): Code(5, 3, False, 2048),  # v: 32 binades, 8 levels each, never 0
    ("int8", True): Code(4, 3, True, 2048),  # m: e4m3 with subnormals
    ("int4", False): Code(4, 0, False, 256),  # v: powers of two over 16 binades, never 0
    ("int4", True): Code(2, 1, True, 128),  # m: e2m1 with subnormals (0, 1/8 .. 3/2)
}
QUANTIZED = ("int8", "int4")
BLOCKWISE = (*QUANTIZED, "fp16")  # formats with a scale per block


@dataclass(frozen=True)
class Slot:
    """One state an optimizer keeps per parameter."""

    name: str
    signed: bool  # may be negative (a first moment) or not (a second moment)
    second_moment: bool  # factored by ``factored_2nd``
    bits: bool = False  # a boolean per element, packed 8 per byte whatever state_precision says


@dataclass(frozen=True)
class Format:
    """How one state of one parameter is stored.

    ``kind`` is "bits" (one boolean per element, packed little-endian 8 per byte over the
    flattened order, ``numpy.packbits(bitorder="little")``), "dense" (``dtype``: float64,
    float32, bfloat16 or float16; ``stochastic``: bf16 written with stochastic rounding), "int8"
    / "int4" (blockwise minifloat codes, ``CODES``, one per byte or two per byte, and fp32
    scales),
    "factored" (fp32 row and column factors, plus packed signs when ``signed``) or "mask8" (one
    byte per element, a code of ``mask_code(*bounds)``, written with stochastic rounding).
    """

    kind: str
    signed: bool
    dtype: str = "float32"
    stochastic: bool = False
    bounds: tuple[float, float] | None = None  # "mask8": the levels' (low, high)

    def keys(self, name: str) -> tuple[str, ...]:
        """The state-dict keys this format stores for a state called ``name``."""
        if self.kind in BLOCKWISE:
            return (name, f"{name}_scale")
        if self.kind == "factored":
            return (f"{name}_row", f"{name}_col") + ((f"{name}_sign",) if self.signed else ())
        return (name,)  # dense and bits

    def label(self) -> str:
        if self.kind == "dense":
            return f"{self.dtype}{' SR' if self.stochastic else ''}"
        if self.kind == "bits":
            return "packed bits"
        if self.kind == "mask8":
            return "8-bit binade levels SR"
        return f"{self.kind} {'signed' if self.signed else 'non-negative'}"

    @property
    def code(self) -> Code:
        return CODES[(self.kind, self.signed)]

    @property
    def block(self) -> int:
        return FP16_BLOCK if self.kind == "fp16" else self.code.block


MASK_LEVELS = 256  # the learning-rate mask's 8-bit code: codes 0 .. 255 (those up to T written)


def _fp32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


def _fp32_step(x: float, up: bool) -> float:
    """The next float32 after the float32 ``x`` (towards +inf if ``up``), for positive ``x``."""
    bits = struct.unpack("I", struct.pack("f", x))[0]
    return struct.unpack("f", struct.pack("I", bits + (1 if up else -1)))[0]


@dataclass(frozen=True)
class MaskCode:
    """The learning-rate mask's 8-bit code for one pair of bounds (spec/automagic.md).

    Code c stands for l_c = min(fl32(a 2^e (1 + j / 2^m)), b) with e = c >> m and j = c mod 2^m:
    2^m levels per binade above a, like a float format anchored at a, so that a kernel computes
    every level exactly with float32 operations. ``top`` (T) is the first code whose level
    reaches b; codes above it are never written (they would decode to b)."""

    low: float  # a: the bottom level, a float32 in [min_lr, max_lr]
    high: float  # b: the top level, a float32 in [min_lr, max_lr]
    mantissa_bits: int  # m
    top: int  # T

    def level(self, c: int) -> float:
        q = 2.0 ** (c >> self.mantissa_bits) * (1 + (c & ((1 << self.mantissa_bits) - 1)) / 2**self.mantissa_bits)
        v = self.low * q  # exact in float64 (24 + 8 significant bits)
        return self.high if v >= self.high else min(_fp32(v), self.high)

    @property
    def levels(self) -> tuple[float, ...]:
        return tuple(self.level(c) for c in range(self.top + 1))


def _inside(x: float, low: float, high: float) -> float:
    """The float32 ``x`` moved one float32 step into [low, high] where rounding left it outside
    and such a step exists."""
    if x < low and _fp32_step(x, up=True) <= high:
        x = _fp32_step(x, up=True)
    if x > high and _fp32_step(x, up=False) >= low:
        x = _fp32_step(x, up=False)
    return x


@functools.lru_cache(maxsize=64)
def mask_code(low: float, high: float) -> MaskCode:
    """The code for bounds ``0 < low <= high``: a = fl32(low), b = fl32(high), each moved one
    float32 step inside [low, high] where rounding took it outside (if no float32 lies in
    [low, high], a = b = fl32(low)); E = floor(log2(b / a)) + 1 binades hold the range, and
    m = 8 - ceil(log2(E + 1)) mantissa bits leave room for E + 1 binades, so the top code's
    level reaches b."""
    a = _inside(_fp32(low), low, high)
    b = _inside(_fp32(high), low, high)
    if b < a:  # no float32 in [low, high]: the one nearest to both
        b = a
    binades = math.frexp(b / a)[1]  # floor(log2(b / a)) + 1
    m = 8 - binades.bit_length()
    if m < 1:
        raise ValueError(f"max_lr / min_lr = {high / low:g}: the 8-bit mask code spans at most 2^126")
    code = MaskCode(a, b, m, MASK_LEVELS - 1)
    top = next(c for c in range(MASK_LEVELS) if code.level(c) >= b)
    return MaskCode(a, b, m, top)


def mask_levels(low: float, high: float) -> tuple[float, ...]:
    """l_0 .. l_T of ``mask_code(low, high)``: non-decreasing, in [low, high] (or all fl32(low)
    where no float32 lies in the bounds), l_0 = a and l_T = b."""
    return mask_code(low, high).levels


def factor_shape(numel: int) -> tuple[int, int]:
    """``(d1, d2) = (n / i, i)``, i the largest divisor of n with i <= floor(sqrt(n))."""
    if numel < 1:
        raise ValueError(f"cannot factor a tensor of {numel} elements")
    for i in range(math.isqrt(numel), 0, -1):
        if numel % i == 0:
            return numel // i, i
    raise AssertionError("unreachable: 1 divides every n")


def packed_width(d2: int) -> int:
    """Bytes per row of packed signs: ceil(d2 / 8)."""
    return (d2 + 7) // 8


def n_blocks(numel: int, block: int) -> int:
    return (numel + block - 1) // block


def code_bytes(numel: int, code: Code) -> int:
    """Bytes of the codes of ``numel`` elements: one per byte, or two per byte (4-bit)."""
    return numel if code.bits == 8 else (numel + 1) // 2


def is_factored(slot: Slot, ndim: int, numel: int, h: dict) -> bool:
    """Factored storage applies to matrices (and to vectors with ``vector_reshape``)."""
    wanted = h["state_precision"] == "factored" or (h["factored_2nd"] and slot.second_moment)
    return wanted and numel > 0 and (ndim >= 2 or h["vector_reshape"])


def resolve(slot: Slot, param_dtype: str, ndim: int, numel: int, h: dict, stochastic_rounding: bool) -> Format:
    """The format of ``slot`` for a parameter of ``param_dtype`` in a group with hyperparameters ``h``.

    Dense fallbacks of ``factored`` (vectors, empty tensors) use 'auto'. 'auto' is the
    parameter dtype; bf16 states then round stochastically iff ``stochastic_rounding``.
    """
    if slot.bits:
        return Format("bits", False)
    if is_factored(slot, ndim, numel, h):
        return Format("factored", slot.signed)
    precision = h["state_precision"]
    if precision == "factored":
        precision = "auto"
    if precision == "int8_sr":
        return Format("int8", slot.signed)
    if precision == "int4":
        return Format("int4", slot.signed)
    if precision == "fp16" or (precision == "auto" and param_dtype == "float16"):
        return Format("fp16", slot.signed, "float16")
    if precision == "auto":
        stochastic = param_dtype == "bfloat16" and stochastic_rounding
        return Format("dense", slot.signed, param_dtype, stochastic)
    dtype, stochastic = DENSE_PRECISIONS[precision]
    return Format("dense", slot.signed, dtype, stochastic)
