"""fast ⇄ the world: fast in fp32 against the canonical packages in fp32 (lion-pytorch, torch-adopt,
prodigyopt) on the suite's tensors, 10 steps without re-sync. The float64 links (reference ⇄
package: test_external_family.py, test_external_prodigy.py; fast ⇄ reference: the registry)
are the exact ones; this checks the end-to-end claim that fast, as a user runs it, stays within
the documented tolerance of each package."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fast
from conformance.compare import assert_close
from conformance.inputs import SLOTS, grads_for_step, initial_values

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch._utils.is_compiling` is deprecated:UserWarning"),
    pytest.mark.filterwarnings("ignore:Use _accelerator_graph_capture_health_check instead:DeprecationWarning"),
]

STEPS = 10
ACTIVE = [i for i, slot in enumerate(SLOTS) if not slot.frozen]


def _pair(seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    values = [initial_values(seed)[i] for i in ACTIVE]
    ours = [torch.tensor(v, dtype=torch.float32, requires_grad=True) for v in values]
    theirs = [torch.tensor(v, dtype=torch.float32, requires_grad=True) for v in values]
    return ours, theirs


def _run(ours, theirs, opt, oracle, states: dict[str, str], consistent: float = 0.0) -> None:
    for step in range(STEPS):
        grads = grads_for_step(step, 6, consistent)
        for ps in (ours, theirs):
            for p, i in zip(ps, ACTIVE):
                g = grads[i]
                p.grad = None if g is None else torch.tensor(g, dtype=torch.float32)
        opt.step()
        oracle.step()
    for i, (p, q) in enumerate(zip(ours, theirs)):
        assert_close(p, q, "external.fp32", f"param {i} {tuple(p.shape)}")
        for key, their_key in states.items():
            if q in oracle.state and their_key in oracle.state[q]:
                assert_close(opt.state[p][key], oracle.state[q][their_key], "external.fp32", f"{key} {i}")


def test_fast_lion_matches_lion_pytorch_fp32():
    lion_pytorch = pytest.importorskip("lion_pytorch")
    config = {"lr": 1e-2, "betas": (0.8, 0.95), "weight_decay": 0.2}
    ours, theirs = _pair(21)
    _run(ours, theirs, fast.Lion(ours, compiled_optimizer=False, **config), lion_pytorch.Lion(theirs, **config),
         {"exp_avg": "exp_avg"})


def test_fast_adopt_matches_torch_adopt_fp32():
    adopt = pytest.importorskip("adopt")
    config = {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-4, "weight_decay": 0.3}
    ours, theirs = _pair(22)
    oracle = adopt.ADOPT(theirs, clip_lambda=lambda k: k**0.25, decouple=True, foreach=False, **config)
    _run(ours, theirs, fast.Adopt(ours, compiled_optimizer=False, clip_lambda=0.25, **config), oracle,
         {"exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq"})


def test_fast_prodigy_matches_prodigyopt_fp32():
    prodigyopt = pytest.importorskip("prodigyopt")
    config = {"d0": 1e-4, "d_coef": 2.0, "betas": (0.8, 0.95), "weight_decay": 0.1, "use_bias_correction": True}
    ours, theirs = _pair(23)
    opt = fast.Prodigy(ours, compiled_optimizer=False, slice_p=1, **config)
    oracle = prodigyopt.Prodigy(theirs, decouple=True, slice_p=1, **config)
    _run(ours, theirs, opt, oracle, {"exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq"}, consistent=1.0)
    assert opt.param_groups[0]["d"] > 1e-4, "d never moved: the check would not see the d-adaptation"
    assert_close(np.asarray(opt.param_groups[0]["d"]), np.asarray(oracle.param_groups[0]["d"]), "external.fp32", "d")
