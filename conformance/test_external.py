"""reference ⇄ the world: reference.AdamW equals torch.optim.AdamW in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import reference
from conformance.compare import assert_close
from conformance.inputs import SLOTS, grads_for_step, initial_values

CONFIGS = [
    {"weight_decay": 0.0},  # torch's default weight_decay is 0.01; ours (adv_optm's) is 0
    {"lr": 3e-2, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1},
    {"lr": 1e-2, "betas": (0.5, 0.9), "eps": 1e-3, "weight_decay": 0.7},
]


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_reference_equals_torch_adamw_float64(config):
    values = [v for v, s in zip(initial_values(3), SLOTS) if not s.frozen]
    ref = reference.AdamW(values, **config)
    params = [torch.tensor(v, requires_grad=True) for v in values]
    oracle = torch.optim.AdamW(params, foreach=False, **config)
    for step in range(10):
        grads = [g for g, s in zip(grads_for_step(step, 3), SLOTS) if not s.frozen]
        for p, g in zip(params, grads):
            p.grad = None if g is None else torch.tensor(g)
        oracle.step()
        ref.step(grads)
    for i, p in enumerate(params):
        assert_close(ref.params[i], p, "adamw.torch_oracle", f"param {i}")
        st = oracle.state.get(p)
        if st:
            assert_close(ref.state[i]["exp_avg"], st["exp_avg"], "adamw.torch_oracle", f"m {i}")
            assert_close(ref.state[i]["exp_avg_sq"], st["exp_avg_sq"], "adamw.torch_oracle", f"v {i}")
            assert ref.state[i]["step"] == int(st["step"])
        else:
            assert not ref.state[i] or values[i].size == 0


def test_reference_and_numpy_literal_one_step():
    """A hand-written first step: m/bc1 = g and sqrt(v/bc2) = |g|, so U = lr*g/(|g|+eps)."""
    g = np.array([2.0, -0.5, 0.0])
    ref = reference.AdamW([np.ones(3)], lr=0.1, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.5)
    ref.step([g])
    expected = 1 - 0.1 * 0.5 - 0.1 * g / (np.abs(g) + 1e-8)
    assert_close(ref.params[0], expected, "spec.reference", "hand-written first step")
