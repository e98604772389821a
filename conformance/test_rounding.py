"""Stochastic rounding, exactly: all 2^16 random values for curated inputs, special values,
bitwise agreement with the reference, and the optimizer's seeded, checkpointed stream."""

import numpy as np
import torch

import fast
import reference.rounding as ref
from conformance import rounding_checks as rc


def test_fast_exhaustive():
    rc.check_exhaustive()


def test_reference_exhaustive():
    def ref_fn(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(ref.stochastic_round_bf16(x.numpy(), r.numpy().astype(np.int64)))

    rc.check_exhaustive(ref_fn)


def test_special_values():
    rc.check_special_values()


def test_fast_matches_reference_bitwise():
    rc.check_matches_reference()


def test_top_of_range_may_round_to_inf():
    """Documented: the largest finite fp32 values round up to +Inf with probability low/2^16."""
    x = torch.full((2,), torch.finfo(torch.float32).max)
    out = fast.rounding.stochastic_round_bf16(x, torch.tensor([0, 0xFFFF], dtype=torch.int32))
    assert out[0] == torch.finfo(torch.bfloat16).max and torch.isinf(out[1])


def test_generator_stream():
    rc.check_counter_stream(fast.AdamW)


def test_seed_changes_and_fixes_the_result():
    def run(seed):
        p = torch.ones(64, dtype=torch.bfloat16, requires_grad=True)
        opt = fast.AdamW([p], lr=1e-4, seed=seed, compiled_optimizer=False)
        for _ in range(3):
            p.grad = torch.linspace(-1, 1, 64, dtype=torch.bfloat16)
            opt.step()
        return p.detach().clone()

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_nearest_rounding_matches_reference():
    rng = np.random.default_rng(1)
    x = rng.normal(size=4096).astype(np.float32) * 10.0 ** rng.integers(-30, 30, 4096)
    expected = ref.round_bf16_nearest(x)
    got = torch.from_numpy(x).to(torch.bfloat16).double().numpy()
    assert np.array_equal(got, expected)
