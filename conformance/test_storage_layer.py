"""The storage layer itself: packing against numpy, the factorization against its closed
form, the memory budgets, and the identities of spec/state_storage.md (the 8-bit and 4-bit
codes: test_codes.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fast
import reference
from conformance import storage_checks as sc
from conformance.compare import assert_close
from spec.storage_layout import factor_shape


def test_sign_packing_matches_numpy():
    sc.check_packing_against_numpy()


def test_factorization_matches_closed_form():
    sc.check_factorization()


def _run(hyper: dict, values: list[np.ndarray], grads: list[list[np.ndarray]]):
    params = [torch.tensor(v, dtype=torch.float32, requires_grad=True) for v in values]
    opt = fast.AdamW(params, compiled_optimizer=False, **hyper)
    ref = reference.AdamW([v.copy() for v in values], **hyper)  # float64 parameters
    for step in grads:
        for p, g in zip(params, step):
            p.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
        ref.step(step)
    return params, ref.params


def test_factored_equals_dense_when_grad_squared_is_rank_one():
    """beta1 = 0 and g_t = s_t * a b^T: v stays rank 1, so factored AdamW equals dense AdamW
    (fast: to fp32 rounding of the reconstruction; reference: to float64 rounding)."""
    rng = np.random.default_rng(3)
    shapes = [(6, 5), (97, 47), (3, 5, 7)]
    values = [rng.normal(size=s) for s in shapes]
    # rank 1 in the factored view (d1, d2), which for (3, 5, 7) is (15, 7), not (3, 35)
    views = [factor_shape(int(np.prod(s))) for s in shapes]
    directions = [np.outer(rng.normal(size=d1), rng.normal(size=d2)).reshape(s) for s, (d1, d2) in zip(shapes, views)]
    grads = [[d * scale for d in directions] for scale in (1.0, -0.3, 2.5, 0.01, -1.7)]
    hyper = {"lr": 1e-2, "betas": (0.0, 0.95), "weight_decay": 0.1}
    dense_fast, dense_ref = _run(hyper, values, grads)
    fac_fast, fac_ref = _run({**hyper, "state_precision": "factored"}, values, grads)
    for i in range(len(shapes)):
        assert_close(fac_fast[i], dense_fast[i], "adamw.factored_identity", f"fast {shapes[i]}")
        assert_close(fac_ref[i], dense_ref[i], "adamw.fp64.step", f"reference {shapes[i]}")


def test_prime_vector_factored_as_n_by_1_is_lossless():
    """A prime numel factors as (n, 1): r_i = |m_i|, c = [1], so factored = dense exactly."""
    rng = np.random.default_rng(4)
    values = [rng.normal(size=17), rng.normal(size=(13, 1))]
    grads = [[rng.normal(size=v.shape) for v in values] for _ in range(4)]
    hyper = {"lr": 1e-2, "betas": (0.8, 0.9)}
    dense_fast, dense_ref = _run(hyper, values, grads)
    fac_fast, fac_ref = _run({**hyper, "state_precision": "factored", "vector_reshape": True}, values, grads)
    for i in range(len(values)):
        assert_close(fac_fast[i], dense_fast[i], "adamw.lossless", f"fast {values[i].shape}")
        assert_close(fac_ref[i], dense_ref[i], "adamw.lossless", f"reference {values[i].shape}")


BUDGETS = [  # (state_precision, factored_2nd, bytes per parameter at most)
    ("factored", False, 0.14), ("int8_sr", False, 2.04), ("int4", False, 1.05), ("bf16_sr", False, 4.0),
    ("fp16", False, 4.01), ("fp32", True, 4.01), ("bf16_sr", True, 2.01), ("int8_sr", True, 1.01),
    ("int4", True, 0.54),
]


@pytest.mark.parametrize(("precision", "f2", "limit"), BUDGETS)
def test_state_bytes_per_parameter(precision, f2, limit):
    """The memory budgets on a 2048 x 2048 weight (states of both moments)."""
    p = torch.zeros(2048, 2048, requires_grad=True)
    p.grad = torch.zeros_like(p)
    opt = fast.AdamW([p], state_precision=precision, factored_2nd=f2, compiled_optimizer=False)
    opt.step()
    nbytes = sum(t.numel() * t.element_size() for t in opt.state[p].values() if torch.is_tensor(t))
    assert nbytes / p.numel() <= limit, (precision, nbytes / p.numel())


def test_vector_tensors_stay_dense_unless_reshaped():
    params = [torch.zeros(s, requires_grad=True) for s in ((8,), (), (4, 3))]
    for p in params:
        p.grad = torch.ones_like(p)
    opt = fast.AdamW(params, state_precision="factored", compiled_optimizer=False)
    opt.step()
    assert {"exp_avg", "exp_avg_sq"} <= set(opt.state[params[0]]) and "exp_avg" in opt.state[params[1]]
    assert "exp_avg_row" in opt.state[params[2]] and opt.state[params[2]]["exp_avg_sign"].dtype == torch.uint8
