"""The storage layout of optimizer states, in plain Python (``fast`` imports it; no sympy).

spec/state_storage.md defines every format; this module holds its constants and the
decisions that pick a format for one state of one parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BLOCK = 2048  # int8_sr block length
NORM_FLOOR = 1e-12  # the normalised factor is divided by max(sum, NORM_FLOOR)
INT8_MAX = {True: 127, False: 255}  # signed states: int8 codes in [-127, 127]; others uint8
SR_BITS = 16  # every stochastic draw is a uniform integer in [0, 2^16)
DENSE_PRECISIONS = {"fp32": ("float32", False), "bf16_sr": ("bfloat16", True), "fp16": ("float16", False)}


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
    (blockwise codes and fp32 scales) or
    "factored" (fp32 row and column factors, plus packed signs when ``signed``).
    """

    kind: str
    signed: bool
    dtype: str = "float32"
    stochastic: bool = False

    def keys(self, name: str) -> tuple[str, ...]:
        """The state-dict keys this format stores for a state called ``name``."""
        if self.kind == "int8":
            return (name, f"{name}_scale")
        if self.kind == "factored":
            return (f"{name}_row", f"{name}_col") + ((f"{name}_sign",) if self.signed else ())
        return (name,)  # dense and bits

    def label(self) -> str:
        if self.kind == "dense":
            return f"{self.dtype}{' SR' if self.stochastic else ''}"
        if self.kind == "bits":
            return "packed bits"
        return f"{self.kind} {'signed' if self.signed else 'non-negative'}"


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


def n_blocks(numel: int) -> int:
    return (numel + BLOCK - 1) // BLOCK


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
    if precision == "auto":
        stochastic = param_dtype == "bfloat16" and stochastic_rounding
        return Format("dense", slot.signed, param_dtype, stochastic)
    dtype, stochastic = DENSE_PRECISIONS[precision]
    return Format("dense", slot.signed, dtype, stochastic)
