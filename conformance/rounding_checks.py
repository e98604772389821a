"""Exact checks of stochastic rounding, shared by the tests and the suite's self-test.

Each function raises AssertionError on a violation. ``round_fn(x_fp32, r_int32) -> bf16``
is the fast implementation under test (looked up at call time so mutants are seen).
"""

from __future__ import annotations

import numpy as np
import torch

import fast.counter_rng
import fast.rounding
from reference.rounding import stochastic_round_bf16 as ref_round
from spec import counter_rng as spec_rng

ALL_R = torch.arange(2**16, dtype=torch.int32)

# Curated fp32 inputs: exact bf16 values, one fp32 ulp off them, binade edges, subnormals,
# both signs, and values whose low 16 bits are 0x0001, 0x8000 and 0xFFFF.
CURATED_BITS = [
    0x3F800000, 0x3F800001, 0x3F808000, 0x3F80FFFF, 0x3FFFFFFF, 0x3FFF0000, 0x40490FDB,
    0x00000001, 0x00008000, 0x007FFFFF, 0x00800000, 0x7F7E1234, 0x3DCCCCCD, 0x42F6E979,
]
CURATED = [b | sign for b in CURATED_BITS for sign in (0, 0x80000000)]


def _from_bits(bits: list[int]) -> torch.Tensor:
    return torch.tensor(np.array(bits, dtype=np.uint32).view(np.int32)).view(torch.float32)


def check_exhaustive(round_fn=None) -> None:
    """For every curated x and all 2^16 values of r: mean exactly x, only the two bf16
    neighbours, and the number of round-ups equals the low 16 bits of x."""
    round_fn = round_fn or fast.rounding.stochastic_round_bf16
    for bits in CURATED:
        x = _from_bits([bits])
        out = round_fn(x.expand(2**16).contiguous(), ALL_R).to(torch.float64)
        xv = float(x)
        down = float(_from_bits([bits & 0xFFFF0000]))
        values = set(out.tolist())
        assert values <= {down, _next_away(bits)}, f"x bits {bits:#010x}: outputs {sorted(values)[:4]}"
        n_up = int((out != down).sum())
        assert n_up == bits & 0xFFFF, f"x bits {bits:#010x}: {n_up} round-ups, expected {bits & 0xFFFF}"
        mean = float(out.sum()) / 2**16  # exact: a sum of 2^16 bf16 values fits in float64
        assert mean == xv, f"x bits {bits:#010x}: mean {mean!r} != x {xv!r}"


def _next_away(bits: int) -> float:
    """The bf16 neighbour one ulp further from zero than the truncation of ``bits``."""
    return float(_from_bits([(bits & 0xFFFF0000) + 0x10000]))


def check_special_values(round_fn=None) -> None:
    """±0 and ±Inf are kept; every NaN (payload in the high or only the low half) stays NaN."""
    round_fn = round_fn or fast.rounding.stochastic_round_bf16
    r = torch.tensor([0, 1, 0x7FFF, 0xFFFF], dtype=torch.int32)
    for bits in (0x00000000, 0x80000000, 0x7F800000, 0xFF800000):
        x = _from_bits([bits]).expand(4).contiguous()
        out = round_fn(x, r).view(torch.int16).to(torch.int32) & 0xFFFF
        assert (out == bits >> 16).all(), f"special value {bits:#010x} changed"
    for bits in (0x7F800001, 0x7FC00000, 0xFF800001, 0x7FFFFFFF):
        out = round_fn(_from_bits([bits]).expand(4).contiguous(), r)
        assert torch.isnan(out).all(), f"NaN {bits:#010x} did not stay NaN"


def check_matches_reference(round_fn=None, n: int = 20000, seed: int = 0) -> None:
    """fast and reference agree bit for bit on random x (all exponents) and random r."""
    round_fn = round_fn or fast.rounding.stochastic_round_bf16
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**32, size=n, dtype=np.uint64).astype(np.uint32)
    bits = bits[(bits & 0x7F800000) != 0x7F800000]  # finite values (special values above)
    x = torch.from_numpy(bits.view(np.int32)).view(torch.float32)
    r = rng.integers(0, 2**16, size=bits.size)
    got = round_fn(x, torch.from_numpy(r.astype(np.int32))).to(torch.float64).numpy()
    expected = ref_round(x.numpy(), r)
    same = (got == expected) | (np.isinf(got) & np.isinf(expected) & (np.sign(got) == np.sign(expected)))
    assert same.all(), f"{int((~same).sum())} of {bits.size} roundings differ from the reference"


def check_counter_stream(optimizer_cls, seed: int = 7) -> None:
    """The kernels' draws are spec.counter_rng's: each parameter's key is its position, each
    step's keys are stream_key(seed, key, step, purpose), and fast's element draws of every
    purpose equal the spec's element by element (so bits are fresh across elements, steps,
    parameters and purposes exactly as the spec's streams are)."""
    params = [torch.zeros(5, dtype=torch.bfloat16, requires_grad=True),
              torch.zeros(3, 4, dtype=torch.bfloat16, requires_grad=True)]
    opt = optimizer_cls(params, lr=1e-3, seed=seed, compiled_optimizer=False)
    for step in (1, 2):
        for p in params:
            p.grad = torch.ones_like(p)
        opt.step()
        for position, p in enumerate(params):
            state = opt.state[p]
            assert state["rng_key"] == position and state["step"] == step, (state["rng_key"], state["step"])
            keys = opt.stream_keys(p, state)
            index = fast.counter_rng.element_index(p.shape, keys)
            for purpose in range(keys.numel() - 1):  # (the last entry is the index multiplier)
                key = spec_rng.stream_key(seed, position, step, purpose)
                assert int(keys[purpose]) & spec_rng.MASK32 == key, f"param {position} step {step} purpose {purpose}"
                got = fast.counter_rng.draws(index, keys[purpose]).reshape(-1).tolist()
                want = [spec_rng.draw(key, i) for i in range(p.numel())]
                assert got == want, f"param {position} step {step} purpose {purpose}: draws differ from the spec"
