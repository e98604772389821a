"""reference ⇄ the world for Lion and Adopt: reference.Lion equals lion-pytorch's Lion and
reference.Adopt equals torch-adopt's ADOPT(decouple=True), both run in float64 on the suite's
tensors (1-D, 2-D, 3-D, non-contiguous, prime numel, 0-d, empty; one step with a None grad)
for 10 steps, parameters and every state compared after every step."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest
import torch

from conformance.compare import assert_close
from conformance.inputs import SLOTS, grads_for_step, initial_values
from reference.adopt import Adopt
from reference.lion import Lion
from reference.optimizer import ReferenceOptimizer

# torch-adopt 0.1.0 calls torch functions that newer torch deprecates; nothing to act on here.
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch._utils.is_compiling` is deprecated:UserWarning"),
    pytest.mark.filterwarnings("ignore:Use _accelerator_graph_capture_health_check instead:DeprecationWarning"),
]

STEPS = 10
ACTIVE = [i for i, slot in enumerate(SLOTS) if not slot.frozen]

LION_CONFIGS = [
    {"lr": 3e-2, "betas": (0.8, 0.95), "weight_decay": 0.2},
    {"lr": 1e-2, "betas": (0.5, 0.999), "weight_decay": 0.05},
    {"lr": 7e-3, "betas": (0.0, 0.9), "weight_decay": 0.0},  # beta1 = 0: the update is sign(g)
]

# clip_lambda is our exponent q; torch-adopt takes the callable k -> k^q (None: no clip).
ADOPT_CONFIGS = [
    {"lr": 2e-2, "betas": (0.8, 0.99), "eps": 1e-4, "weight_decay": 0.3, "clip_lambda": 0.25},
    {"lr": 5e-3, "betas": (0.5, 0.9), "eps": 1e-6, "weight_decay": 0.0, "clip_lambda": None},
    {"lr": 1e-2, "betas": (0.0, 0.95), "eps": 1e-2, "weight_decay": 0.1, "clip_lambda": 0.4},
    {"lr": 3e-2, "betas": (0.9, 0.9999), "eps": 1e-8, "weight_decay": 0.5, "clip_lambda": 0.1},
]


def run_against(
    ref: ReferenceOptimizer, oracle: torch.optim.Optimizer, params: list[torch.Tensor],
    states: Mapping[str, str], tol_id: str, present_only: bool = False,
) -> None:
    """Step both with the suite's gradients; after every step compare each parameter, each
    state (``states``: reference key -> oracle key) and the step counts. ``present_only``: only
    the keys the reference keeps for that tensor (which depend on its shape), and never those of
    an empty tensor (the oracles' means over no elements are NaN; ours stay at zero)."""
    for step in range(STEPS):
        all_grads = grads_for_step(step, 5)
        grads = [all_grads[i] for i in ACTIVE]
        for p, g in zip(params, grads):
            p.grad = None if g is None else torch.tensor(g, dtype=torch.float64)
        oracle.step()
        ref.step(grads)
        for i, p in enumerate(params):
            where = f"step {step + 1}, tensor {i} {tuple(p.shape)}"
            assert_close(ref.params[i], p, tol_id, f"param at {where}")
            st = oracle.state.get(p, {})
            if not st:  # no gradient yet
                assert ref.state[i] == {}, where
                continue
            if "step" in st:  # lion-pytorch keeps no step count
                assert ref.state[i]["step"] == int(st["step"]), where
            for ours, theirs in states.items():
                if present_only and (ours not in ref.state[i] or p.numel() == 0):
                    continue
                assert_close(ref.state[i][ours], torch.as_tensor(st[theirs]), tol_id, f"{ours} at {where}")


def suite_params(seed: int) -> tuple[list[np.ndarray], list[torch.Tensor]]:
    values = [initial_values(seed)[i] for i in ACTIVE]
    params = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    params[3] = params[3].detach().t().contiguous().t().requires_grad_()  # the non-contiguous view
    return values, params


@pytest.mark.parametrize("config", LION_CONFIGS, ids=str)
def test_reference_lion_equals_lion_pytorch_float64(config: dict[str, Any]):
    lion_pytorch = pytest.importorskip("lion_pytorch")
    values, params = suite_params(11)
    ref = Lion(values, **config)
    oracle = lion_pytorch.Lion(params, **config)  # its weight decay is p *= 1 - lr*wd (decoupled)
    run_against(ref, oracle, params, {"exp_avg": "exp_avg"}, "external.float64")


def adopt_clip(q: float | None) -> Callable[[float], float] | None:
    return None if q is None else (lambda k: k**q)


@pytest.mark.parametrize("config", ADOPT_CONFIGS, ids=str)
def test_reference_adopt_equals_torch_adopt_float64(config: dict[str, Any]):
    adopt = pytest.importorskip("adopt")
    values, params = suite_params(12)
    ref = Adopt(values, **config)
    theirs = {k: v for k, v in config.items() if k != "clip_lambda"}
    oracle = adopt.ADOPT(params, clip_lambda=adopt_clip(config["clip_lambda"]), decouple=True, foreach=False, **theirs)
    states = {"exp_avg_sq": "exp_avg_sq"} | ({"exp_avg": "exp_avg"} if config["betas"][0] > 0 else {})
    run_against(ref, oracle, params, states, "external.float64")
