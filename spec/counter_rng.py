"""The counter-based random source of every stochastic rounding (spec/stochastic_rounding.md).

Plain Python integers, no sympy: ``fast`` imports the constants and the host-side key
derivation; the element function ``draw`` is the definition that ``reference`` (NumPy) and
``fast`` (inside the fused kernel, int32 arithmetic that wraps) implement again and are
checked against, bit for bit.

A draw is a pure function of (seed, the parameter's key, its step, the purpose, the element
index): nothing is stored but the seed and the keys, nothing is materialised, and a resumed
run draws exactly the bits the uninterrupted one would have.

Construction (all arithmetic modulo 2^32 unless said otherwise):

- ``mix`` is Chris Wellons' "lowbias32" integer hash (hash-prospector): a bijection of the
  32-bit integers with strong avalanche (bias 0.17).
- the seed is spread to 64 bits by splitmix64: ``S = splitmix64(seed mod 2^64)``, ``S_a`` its
  low and ``S_b`` its high 32 bits.
- the stream key of (parameter key ``q``, step ``t``, purpose ``c``) is
  ``k = mix(((t << 4) | c) ^ S_a) ^ mix(q ^ S_b)``. For a fixed seed, step and purpose it is
  injective in ``q`` (two parameters never share a stream); for a fixed parameter it is
  injective in (t, c) while ``t < 2^28`` (no stream repeats across steps or purposes).
- element ``i`` of the stream draws ``r_i = mix((i * C) ^ k) >> 16``, the high 16 bits, with
  the odd constant ``C = 0x9E3779B9``: for a fixed ``k`` the map ``i -> mix((i*C) ^ k)`` is a
  bijection, so no 32-bit value repeats within a stream, and streams of different keys differ
  at every element.
"""

from __future__ import annotations

MASK32 = 0xFFFFFFFF
MASK64 = 0xFFFFFFFFFFFFFFFF
INDEX_MULTIPLIER = 0x9E3779B9  # odd: i -> i * C is a bijection modulo 2^32
MIX_MULTIPLIERS = (0x7FEB352D, 0x846CA68B)  # lowbias32
MIX_SHIFTS = (16, 15, 16)
PURPOSE_BITS = 4
MAX_STEP = 2 ** (32 - PURPOSE_BITS)  # keys stay injective in the step below this
DRAW_BITS = 16

# Purposes: the parameter write, the stochastic sign, then each stored state by its index in
# the optimizer's SLOTS (purpose 2 + j); the last one rounds fast.accumulate_grads' summed
# gradients, so a gradient accumulator and an optimizer sharing a seed never share draws.
PARAM_PURPOSE = 0
SIGN_PURPOSE = 1
FIRST_STATE_PURPOSE = 2
MAX_PURPOSES = 2**PURPOSE_BITS
GRAD_SUM_PURPOSE = MAX_PURPOSES - 1


def mix(h: int) -> int:
    """lowbias32: ``h ^= h >> 16; h *= 0x7feb352d; h ^= h >> 15; h *= 0x846ca68b; h ^= h >> 16``."""
    h &= MASK32
    h ^= h >> MIX_SHIFTS[0]
    h = (h * MIX_MULTIPLIERS[0]) & MASK32
    h ^= h >> MIX_SHIFTS[1]
    h = (h * MIX_MULTIPLIERS[1]) & MASK32
    h ^= h >> MIX_SHIFTS[2]
    return h


def splitmix64(x: int) -> int:
    """One output of Vigna's splitmix64 for state ``x`` (the seed spreader)."""
    z = (x + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def seed_words(seed: int) -> tuple[int, int]:
    """``(S_a, S_b)``: the low and high 32 bits of splitmix64(seed mod 2^64)."""
    s = splitmix64(seed & MASK64)
    return s & MASK32, s >> 32


def state_purpose(slot_index: int) -> int:
    """The purpose of the stored state at ``slot_index`` of the optimizer's SLOTS."""
    purpose = FIRST_STATE_PURPOSE + slot_index
    if purpose >= GRAD_SUM_PURPOSE:
        raise ValueError(f"slot index {slot_index}: at most {GRAD_SUM_PURPOSE - FIRST_STATE_PURPOSE} stored states")
    return purpose


def stream_key(seed: int, param_key: int, step: int, purpose: int) -> int:
    """``k = mix(((t << 4) | c) ^ S_a) ^ mix(q ^ S_b)`` as an unsigned 32-bit integer."""
    if not 0 <= step < MAX_STEP:
        raise ValueError(f"step={step}: the random streams are defined for 0 <= step < {MAX_STEP}")
    if not 0 <= purpose < MAX_PURPOSES:
        raise ValueError(f"purpose={purpose}: expected 0 <= purpose < {MAX_PURPOSES}")
    if not 0 <= param_key <= MASK32:
        raise ValueError(f"param_key={param_key}: expected 0 <= param_key < 2**32")
    s_a, s_b = seed_words(seed)
    return mix(((step << PURPOSE_BITS) | purpose) ^ s_a) ^ mix(param_key ^ s_b)


def draw(key: int, index: int) -> int:
    """Element ``index``'s 16-bit draw of the stream with key ``key``: ``mix((i*C) ^ k) >> 16``."""
    return mix(((index * INDEX_MULTIPLIER) & MASK32) ^ key) >> (32 - DRAW_BITS)


def as_int32(u: int) -> int:
    """An unsigned 32-bit integer as the signed int32 with the same bits (the kernel's dtype)."""
    u &= MASK32
    return u - (1 << 32) if u >= 1 << 31 else u
