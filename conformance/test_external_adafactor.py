"""reference and fast ⇄ the world for the Adafactor family: reference.Adafactor equals
transformers' Adafactor and reference.CAME equals came-pytorch's CAME in float64 on the suite's
tensors (1-D, 2-D, 3-D, non-contiguous, prime numel, 0-d, empty; one step with a None grad),
every state after every step; fast in fp32 against the packages in fp32 after 10 steps; and
fast.AdafactorSchedule reports what transformers' AdafactorSchedule reports."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import fast
from conformance.compare import assert_close
from conformance.inputs import grads_for_step, initial_values
from conformance.test_external_family import ACTIVE, STEPS, run_against, suite_params
from reference.adafactor import Adafactor
from reference.came import CAME

ADAFACTOR_CONFIGS = [
    {},  # relative step, scale_parameter: transformers' defaults
    {"lr": 1e-2, "relative_step": False, "scale_parameter": False, "beta1": 0.9, "weight_decay": 0.1},
    {"warmup_init": True, "beta1": 0.5, "clip_threshold": 0.5, "decay_rate": -0.6, "eps": (1e-20, 1e-2),
     "weight_decay": 0.2},
    {"lr": 3e-2, "relative_step": False, "weight_decay": 0.05},
]
CAME_CONFIGS = [
    {"lr": 2e-3},
    {"lr": 1e-2, "betas": (0.8, 0.95, 0.99), "eps": (1e-20, 1e-10), "clip_threshold": 0.5, "weight_decay": 0.1},
]


def adafactor_states(values, config) -> dict[str, str]:
    """The reference's state keys that transformers keeps under the same names, for every tensor
    (the factors of 2-D+ tensors, exp_avg_sq of the others, exp_avg with beta1, RMS when used)."""
    keys = {"exp_avg_sq_row", "exp_avg_sq_col", "exp_avg_sq"}
    if config.get("beta1") is not None:
        keys.add("exp_avg")
    if config.get("scale_parameter", True):
        keys.add("RMS")
    return {k: k for k in keys}


def transformers_adafactor():
    optimization = pytest.importorskip("transformers.optimization")
    return optimization


@pytest.mark.parametrize("config", ADAFACTOR_CONFIGS, ids=str)
def test_reference_adafactor_equals_transformers_float64(config: dict[str, Any]):
    hf = transformers_adafactor()
    values, params = suite_params(31)
    ref = Adafactor(values, **config)
    oracle = hf.Adafactor(params, **config)
    run_against(ref, oracle, params, adafactor_states(values, config), "external.float64", present_only=True)


@pytest.mark.parametrize("config", CAME_CONFIGS, ids=str)
def test_reference_came_equals_came_pytorch_float64(config: dict[str, Any]):
    came_pytorch = pytest.importorskip("came_pytorch")
    values, params = suite_params(32)
    ref = CAME(values, **config)
    oracle = came_pytorch.CAME(params, **config)
    keys = ("exp_avg", "exp_avg_sq", "exp_avg_sq_row", "exp_avg_sq_col", "exp_avg_res_row", "exp_avg_res_col")
    run_against(ref, oracle, params, {k: k for k in keys}, "external.float64", present_only=True)


def _fp32_pair(seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    values = [initial_values(seed)[i] for i in ACTIVE]
    return ([torch.tensor(v, dtype=torch.float32, requires_grad=True) for v in values],
            [torch.tensor(v, dtype=torch.float32, requires_grad=True) for v in values])


def _run_fp32(ours, theirs, opt, oracle, keys, after_step=None) -> None:
    for step in range(STEPS):
        grads = grads_for_step(step, 7)
        for ps in (ours, theirs):
            for p, i in zip(ps, ACTIVE):
                p.grad = None if grads[i] is None else torch.tensor(grads[i], dtype=torch.float32)
        opt.step()
        oracle.step()
        if after_step is not None:
            after_step()
    for i, (p, q) in enumerate(zip(ours, theirs)):
        assert_close(p, q, "external.fp32", f"param {i} {tuple(p.shape)}")
        for key in keys:
            if p.numel() and key in opt.state.get(p, {}) and key in oracle.state.get(q, {}):
                assert_close(opt.state[p][key], torch.as_tensor(oracle.state[q][key]), "external.fp32", f"{key} {i}")


@pytest.mark.parametrize("config", ADAFACTOR_CONFIGS[:2], ids=str)
def test_fast_adafactor_and_its_schedule_match_transformers_fp32(config: dict[str, Any]):
    hf = transformers_adafactor()
    ours, theirs = _fp32_pair(33)
    opt = fast.Adafactor(ours, compiled_optimizer=False, **config)
    oracle = hf.Adafactor(theirs, **config)
    if not config.get("relative_step", True):  # transformers' schedule would write 0.0 into lr
        _run_fp32(ours, theirs, opt, oracle, adafactor_states(None, config))
        return
    schedules = (fast.AdafactorSchedule(opt), hf.AdafactorSchedule(oracle))
    assert schedules[0].get_last_lr() == schedules[1].get_last_lr()

    def compare_schedules():
        for s in schedules:
            s.step()
        assert_close(torch.tensor(schedules[0].get_last_lr()), torch.tensor(schedules[1].get_last_lr()),
                     "external.fp32", "AdafactorSchedule's reported lr")

    _run_fp32(ours, theirs, opt, oracle, adafactor_states(None, config), compare_schedules)


def test_fast_came_matches_came_pytorch_fp32():
    came_pytorch = pytest.importorskip("came_pytorch")
    config = CAME_CONFIGS[1]
    ours, theirs = _fp32_pair(34)
    keys = ("exp_avg", "exp_avg_sq", "exp_avg_sq_row", "exp_avg_sq_col", "exp_avg_res_row", "exp_avg_res_col")
    _run_fp32(ours, theirs, fast.CAME(ours, compiled_optimizer=False, **config), came_pytorch.CAME(theirs, **config),
              keys)


def test_adafactor_schedule_reports_without_writing_the_learning_rate():
    """transformers' AdafactorSchedule is a LambdaLR: it writes its initial_lr (0.0) into every
    group's lr, which with relative_step=False stops training. Ours only reports."""
    hf = transformers_adafactor()
    config = {"lr": 1e-2, "relative_step": False, "scale_parameter": True}
    w = torch.nn.Parameter(torch.ones(3, 4))
    oracle = hf.Adafactor([torch.nn.Parameter(torch.ones(3, 4))], **config)
    hf.AdafactorSchedule(oracle)
    assert oracle.param_groups[0]["lr"] == 0.0  # the upstream behaviour this avoids
    opt = fast.Adafactor([w], compiled_optimizer=False, **config)
    schedule = fast.AdafactorSchedule(opt)
    w.grad = torch.full((3, 4), 0.5)
    opt.step()
    schedule.step()
    assert opt.param_groups[0]["lr"] == 1e-2
    assert schedule.get_last_lr() == [pytest.approx(1e-2)]  # lr * max(eps2, RMS(p) = 1)
    assert not torch.equal(w.detach(), torch.ones(3, 4))
