"""Optimizer-state storage, literal to spec/state_storage.md, in float64 NumPy.

Each function is the written definition, element by element where that reads clearer;
:class:`StateStore` applies them to the states of one parameter. Values handed to and
returned from the store are float64 arrays of the parameter's shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from reference import codes
from reference.mask_code import decode_mask, encode_mask
from reference.rounding import round_bf16_nearest, stochastic_round_bf16
from spec.storage_layout import NORM_FLOOR, QUANTIZED, SR_BITS, Format, factor_shape, n_blocks, packed_width

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


class StateStore:
    """The states of one parameter: ``load(name)`` decodes, ``save(name, value)`` encodes.

    A "bits" state (freeze-on-flip's ``prev_sign``) loads as 1.0/0.0 in the parameter's shape
    and saves ``value > 0.5``, packed one bit per element; a "mask8" state (Automagic's mask)
    is one code per element (reference.mask_code).

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
            elif fmt.kind == "mask8":
                self.state[name] = np.zeros(self.numel, dtype=np.uint8)
            elif fmt.kind == "factored":
                d1, d2 = factor_shape(self.numel)
                self.state[f"{name}_row"] = np.zeros(d1)
                self.state[f"{name}_col"] = np.zeros(d2)
                if fmt.signed:
                    self.state[f"{name}_sign"] = np.zeros((d1, packed_width(d2)), dtype=np.uint8)
            elif fmt.kind in (*QUANTIZED, "fp16"):
                size = self.numel if fmt.kind == "int8" else (self.numel + 1) // 2
                self.state[name] = (np.zeros(self.shape, dtype=np.float16) if fmt.kind == "fp16"
                                    else np.zeros(size, dtype=np.uint8))
                self.state[f"{name}_scale"] = np.zeros(n_blocks(self.numel, fmt.block))
            else:
                self.state[name] = np.zeros(self.shape)

    def load(self, name: str) -> np.ndarray:
        fmt, st = self.formats[name], self.state
        if fmt.kind == "bits":
            return unpack_bits(st[name], self.numel).astype(np.float64).reshape(self.shape)
        if fmt.kind == "mask8":
            return decode_mask(st[name], fmt.bounds).reshape(self.shape)
        if fmt.kind == "factored":
            M = reconstruct(st[f"{name}_row"], st[f"{name}_col"])
            if fmt.signed:
                M = np.where(unpack_signs(st[f"{name}_sign"], M.shape[1]), M, -M)
            return M.reshape(self.shape)
        if fmt.kind in QUANTIZED:
            c = st[name] if fmt.kind == "int8" else codes.unpack_nibbles(st[name], self.numel)
            return codes.decode(c, st[f"{name}_scale"], fmt.code).reshape(self.shape)
        if fmt.kind == "fp16":
            return codes.decode_fp16(st[name], st[f"{name}_scale"]).reshape(self.shape)
        return np.array(st[name], dtype=np.float64)

    def save(self, name: str, value: np.ndarray) -> None:
        fmt, st = self.formats[name], self.state
        value = np.asarray(value, dtype=np.float64)
        if fmt.kind == "bits":
            st[name] = pack_bits(value.reshape(-1) > 0.5)
        elif fmt.kind == "mask8":
            st[name] = encode_mask(value.reshape(-1), fmt.bounds, self.draw(name, self.numel))
        elif fmt.kind == "factored":
            M = value.reshape(factor_shape(self.numel))
            st[f"{name}_row"], st[f"{name}_col"] = factorize(np.abs(M))
            if fmt.signed:
                st[f"{name}_sign"] = pack_signs(M > 0)
        elif fmt.kind in QUANTIZED:
            c, st[f"{name}_scale"] = codes.encode(value, fmt.code, self.draw(name, self.numel))
            st[name] = c if fmt.kind == "int8" else codes.pack_nibbles(c)
        elif fmt.kind == "fp16":
            values, st[f"{name}_scale"] = codes.encode_fp16(value, fmt.signed)
            st[name] = values.reshape(self.shape)
        else:
            st[name] = dense_store(value, fmt, lambda: self.draw(name, self.numel))


def dense_store(value: np.ndarray, fmt: Format, bits: Callable[[], np.ndarray]) -> np.ndarray:
    """float64/float32 states keep the exact value (the comparison tolerance covers fp32);
    bf16 and fp16 states hold the rounded value, as the fast path stores it."""
    if fmt.dtype in ("float64", "float32"):
        return value
    p32 = value.astype(np.float32)
    if fmt.stochastic:
        return stochastic_round_bf16(p32, np.asarray(bits()).reshape(value.shape))
    return round_bf16_nearest(p32)
