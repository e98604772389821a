"""Optimizer-state storage, literal to spec/state_storage.md, in float64 NumPy.

Each function is the written definition, element by element where that reads clearer;
:class:`StateStore` applies them to the states of one parameter. Values handed to and
returned from the store are float64 arrays of the parameter's shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from reference.rounding import round_bf16_nearest, stochastic_round_bf16
from spec.storage_layout import BLOCK, INT8_MAX, NORM_FLOOR, SR_BITS, Format, factor_shape, packed_width

DrawFn = Callable[[str, int], np.ndarray]


def factorize(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row sums and column sums of the non-negative ``M`` (d1 >= d2); the column factor
    (the shorter side) is divided by its sum, floored at NORM_FLOOR."""
    d1, d2 = M.shape
    r = np.array([sum(M[i, j] for j in range(d2)) for i in range(d1)], dtype=np.float64)
    c = np.array([sum(M[i, j] for i in range(d1)) for j in range(d2)], dtype=np.float64)
    return r, c / max(c.sum(), NORM_FLOOR)


def reconstruct(r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``M_ij = r_i * c_j``: exact when M had rank 1, zero when M was zero."""
    return np.outer(r, c)


def pack_signs(bits: np.ndarray) -> np.ndarray:
    """Bit j of each row goes to bit j % 8 (least significant first) of byte j // 8."""
    d1, d2 = bits.shape
    packed = np.zeros((d1, packed_width(d2)), dtype=np.uint8)
    for j in range(d2):
        packed[:, j // 8] |= (bits[:, j].astype(np.uint8) << (j % 8)).astype(np.uint8)
    return packed


def unpack_signs(packed: np.ndarray, d2: int) -> np.ndarray:
    bits = np.zeros((packed.shape[0], d2), dtype=bool)
    for j in range(d2):
        bits[:, j] = (packed[:, j // 8] >> (j % 8)) & 1 == 1
    return bits


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """A flat boolean array packed 8 per byte, element i at bit i % 8 of byte i // 8: one row of
    :func:`pack_signs` (``numpy.packbits(bits, bitorder="little")``)."""
    return pack_signs(bits.reshape(1, -1)).reshape(-1)


def unpack_bits(packed: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` booleans of :func:`pack_bits`' bytes."""
    return unpack_signs(packed.reshape(1, -1), n).reshape(-1)


def uniform_from_bits(bits: np.ndarray) -> np.ndarray:
    """u = r / 2^16 in [0, 1) from the 16-bit draws r."""
    return np.asarray(bits, dtype=np.float64) / 2.0**SR_BITS


def quantize_int8(x: np.ndarray, signed: bool, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Blockwise (BLOCK elements) codes ``floor(x/s + u)`` clamped to the code range, with
    ``s = max|x| / qmax`` per block; a block of zeros has s = 0 and codes 0."""
    qmax = INT8_MAX[signed]
    lo = -qmax if signed else 0
    x = x.reshape(-1)
    codes = np.zeros(x.size, dtype=np.int8 if signed else np.uint8)
    scales = np.zeros((x.size + BLOCK - 1) // BLOCK, dtype=np.float64)
    for b in range(scales.size):
        block = slice(b * BLOCK, (b + 1) * BLOCK)
        s = np.max(np.abs(x[block])) / qmax
        scales[b] = s
        y = x[block] / s if s > 0 else np.zeros_like(x[block])
        codes[block] = np.clip(np.floor(y + u.reshape(-1)[block]), lo, qmax)
    return codes, scales


def dequantize_int8(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    flat = codes.reshape(-1).astype(np.float64)
    return flat * scales[np.arange(flat.size) // BLOCK]


class StateStore:
    """The states of one parameter: ``load(name)`` decodes, ``save(name, value)`` encodes.

    A "bits" state (freeze-on-flip's ``prev_sign``) loads as 1.0/0.0 in the parameter's shape
    and saves ``value > 0.5``, packed one bit per element.

    ``draw(purpose, n)`` supplies the 16-bit random integers of stochastic formats; the
    purpose is the state's name.
    """

    def __init__(self, state: dict[str, Any], formats: Mapping[str, Format], shape: tuple[int, ...],
                 draw: DrawFn) -> None:
        self.state, self.formats, self.shape, self.draw = state, formats, shape, draw
        self.numel = int(np.prod(shape, dtype=np.int64))

    def init(self) -> None:
        for name, fmt in self.formats.items():
            if fmt.kind == "bits":
                self.state[name] = np.zeros(packed_width(self.numel), dtype=np.uint8)
            elif fmt.kind == "factored":
                d1, d2 = factor_shape(self.numel)
                self.state[f"{name}_row"] = np.zeros(d1)
                self.state[f"{name}_col"] = np.zeros(d2)
                if fmt.signed:
                    self.state[f"{name}_sign"] = np.zeros((d1, packed_width(d2)), dtype=np.uint8)
            elif fmt.kind == "int8":
                self.state[name] = np.zeros(self.shape, dtype=np.int8 if fmt.signed else np.uint8)
                self.state[f"{name}_scale"] = np.zeros((self.numel + BLOCK - 1) // BLOCK)
            else:
                self.state[name] = np.zeros(self.shape)

    def load(self, name: str) -> np.ndarray:
        fmt, st = self.formats[name], self.state
        if fmt.kind == "bits":
            return unpack_bits(st[name], self.numel).astype(np.float64).reshape(self.shape)
        if fmt.kind == "factored":
            M = reconstruct(st[f"{name}_row"], st[f"{name}_col"])
            if fmt.signed:
                M = np.where(unpack_signs(st[f"{name}_sign"], M.shape[1]), M, -M)
            return M.reshape(self.shape)
        if fmt.kind == "int8":
            return dequantize_int8(st[name], st[f"{name}_scale"]).reshape(self.shape)
        return np.array(st[name], dtype=np.float64)

    def save(self, name: str, value: np.ndarray) -> None:
        fmt, st = self.formats[name], self.state
        value = np.asarray(value, dtype=np.float64)
        if fmt.kind == "bits":
            st[name] = pack_bits(value.reshape(-1) > 0.5)
        elif fmt.kind == "factored":
            M = value.reshape(factor_shape(self.numel))
            st[f"{name}_row"], st[f"{name}_col"] = factorize(np.abs(M))
            if fmt.signed:
                st[f"{name}_sign"] = pack_signs(M > 0)
        elif fmt.kind == "int8":
            u = uniform_from_bits(self.draw(name, self.numel))
            codes, st[f"{name}_scale"] = quantize_int8(value, fmt.signed, u)
            st[name] = codes.reshape(self.shape)
        else:
            st[name] = dense_store(value, fmt, lambda: self.draw(name, self.numel))


def dense_store(value: np.ndarray, fmt: Format, bits: Callable[[], np.ndarray]) -> np.ndarray:
    """float64/float32 states keep the exact value (the comparison tolerance covers fp32);
    bf16 and fp16 states hold the rounded value, as the fast path stores it."""
    if fmt.dtype in ("float64", "float32"):
        return value
    p32 = value.astype(np.float32)
    if fmt.dtype == "float16":
        return p32.astype(np.float16).astype(np.float64)
    if fmt.stochastic:
        return stochastic_round_bf16(p32, np.asarray(bits()).reshape(value.shape))
    return round_bf16_nearest(p32)
