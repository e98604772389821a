"""The counter-based random draws of every stochastic rounding, inside the fused kernels
(spec/counter_rng.py defines them; spec/stochastic_rounding.md explains them).

The kernels compute ``r_i = mix((i * C) ^ k) >> 16`` from the element index and one stream key
per purpose, so no random tensor is materialised and nothing but the seed and the keys needs
saving. int32 arithmetic wraps in torch, inductor's C++ and Triton alike (the spec's modulo
2^32); right shifts are masked because ``>>`` on int32 is arithmetic.
"""

from __future__ import annotations

import torch

from spec.counter_rng import (
    DRAW_BITS,
    FIRST_STATE_PURPOSE,
    INDEX_MULTIPLIER,
    MIX_MULTIPLIERS,
    MIX_SHIFTS,
    PARAM_PURPOSE,
    SIGN_PURPOSE,
    as_int32,
    stream_key,
)

_C = as_int32(INDEX_MULTIPLIER)
_M1, _M2 = (as_int32(m) for m in MIX_MULTIPLIERS)


def _shr(h: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int32 bit patterns."""
    return (h >> s) & ((1 << (32 - s)) - 1)


def mix(h: torch.Tensor) -> torch.Tensor:
    """lowbias32 on int32 tensors (spec.counter_rng.mix)."""
    h = h ^ _shr(h, MIX_SHIFTS[0])
    h = h * _M1
    h = h ^ _shr(h, MIX_SHIFTS[1])
    h = h * _M2
    return h ^ _shr(h, MIX_SHIFTS[2])


def element_index(shape: tuple[int, ...] | torch.Size, keys: torch.Tensor) -> torch.Tensor:
    """The flat row-major index of every element of ``shape``, premultiplied by C (int32).

    C is read from ``keys`` (its last entry, see ``key_tensor``) rather than written as a
    constant: inductor folds ``arange(n) * constant`` into ``Vectorized<int32_t>::arange(base,
    C)``, whose lanes are ``base + k * C`` in C++ ``int``, a signed overflow (undefined) that
    GCC compiled to wrong draws in some lanes of short rows. A loaded multiplier keeps the
    product a vector multiply, which wraps.
    """
    n = 1
    for d in shape:
        n *= d
    return (torch.arange(n, dtype=torch.int32, device=keys.device) * keys[-1]).view(shape)


def draws(scaled_index: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """16-bit draws (int32 in [0, 2^16)) of the stream ``key`` (an int32 scalar tensor) at the
    elements ``element_index`` gives."""
    return _shr(mix(scaled_index ^ key), 32 - DRAW_BITS)


# Positions in a kernel's key tensor: the parameter write, the stochastic sign, then the slots.
PARAM_KEY, SIGN_KEY = PARAM_PURPOSE, SIGN_PURPOSE


def slot_key(j: int) -> int:
    return FIRST_STATE_PURPOSE + j


def key_tensor(seed: int, param_key: int, step: int, n_slots: int, device: torch.device) -> torch.Tensor:
    """The stream keys of every purpose of one parameter at one step, as an int32 tensor whose
    position is the purpose (unused purposes cost a few host integer operations), then the
    index multiplier C that ``element_index`` reads."""
    keys = [as_int32(stream_key(seed, param_key, step, purpose)) for purpose in range(FIRST_STATE_PURPOSE + n_slots)]
    return torch.tensor([*keys, _C], dtype=torch.int32, device=device)
