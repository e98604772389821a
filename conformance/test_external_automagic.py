"""reference and fast ⇄ ai-toolkit's own Automagic (``toolkit/optimizers/automagic.py``, v1) with
the exact (fp32) mask, on the suite's tensors (1-D, 2-D, 3-D, non-contiguous, prime numel, 0-d,
empty; one step with a None grad), every state after every step, and the learning rates it
logs.

ai-toolkit is not a package: these tests run when ``AI_TOOLKIT_DIR`` names a checkout of it
(e.g. ``git clone https://github.com/ostris/ai-toolkit``). Its module imports two things that a
plain environment lacks, replaced here by what they do for fp32 parameters: ``Auto8bitTensor``
(its 8-bit mask holder) by an exact fp32 holder, so that its arithmetic is compared and not its
absmax int8 rounding (benchmarks/automagic_mask.py measures that), ``copy_stochastic`` by a copy
(never reached with fp32 parameters), and the grad-accumulation hook and ``optimum.quanto``'s
``QBytesTensor`` by inert stand-ins. ai-toolkit computes in fp32 whatever the parameters' dtype,
so the reference (float64) is compared at an fp32 tolerance.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import fast
from conformance.compare import assert_close
from conformance.inputs import grads_for_step, initial_values
from conformance.test_external_family import ACTIVE, STEPS
from reference.automagic import Automagic
from reference.storage import StateStore

CONFIGS = [
    {},  # ai-toolkit's defaults: lr 1e-6 inside [1e-7, 1e-3], bump 1e-6
    {"lr": 5e-4, "min_lr": 1e-4, "max_lr": 1e-3, "lr_bump": 1e-4, "weight_decay": 0.1, "clip_threshold": 0.5,
     "beta2": 0.9, "eps": (1e-20, 1e-3)},
]
STATES = ("exp_avg_sq_row", "exp_avg_sq_col", "exp_avg_sq", "lr_mask", "last_polarity")


class _ExactMask:
    """Auto8bitTensor's interface over an exact fp32 copy."""

    def __init__(self, data: torch.Tensor) -> None:
        self.data = data.detach().to(torch.float32).clone()

    def to(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.data.to(*args, **kwargs)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"data": self.data}


@pytest.fixture
def upstream(monkeypatch):
    root = os.environ.get("AI_TOOLKIT_DIR")
    if not root:
        pytest.skip("AI_TOOLKIT_DIR does not name an ai-toolkit checkout")
    path = Path(root) / "toolkit" / "optimizers" / "automagic.py"
    if not path.is_file():
        pytest.fail(f"AI_TOOLKIT_DIR={root!r} has no toolkit/optimizers/automagic.py")
    utils = types.ModuleType("toolkit.optimizers.optimizer_utils")
    utils.Auto8bitTensor = _ExactMask
    utils.copy_stochastic = lambda target, source: target.copy_(source)
    utils.stochastic_grad_accummulation = lambda param: None
    quanto = types.ModuleType("optimum.quanto")
    quanto.QBytesTensor = type("QBytesTensor", (), {})
    for name in ("toolkit", "toolkit.optimizers", "optimum"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "toolkit.optimizers.optimizer_utils", utils)
    monkeypatch.setitem(sys.modules, "optimum.quanto", quanto)
    spec = importlib.util.spec_from_file_location("_ai_toolkit_automagic", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Automagic


def tolerance(key: str) -> str:
    return "automagic.external_mask" if key == "lr_mask" else "automagic.external"


def upstream_state(st: dict[str, Any], key: str) -> torch.Tensor:
    value = st[key]
    if isinstance(value, _ExactMask):
        return value.data
    return value.to(torch.float32) if value.dtype == torch.bool else value


def fp32_params(seed: int) -> list[torch.Tensor]:
    values = [initial_values(seed)[i] for i in ACTIVE]
    params = [torch.tensor(v, dtype=torch.float32, requires_grad=True) for v in values]
    params[3] = params[3].detach().t().contiguous().t().requires_grad_()  # the non-contiguous view
    return params


def set_grads(params: list[torch.Tensor], step: int) -> list[np.ndarray | None]:
    all_grads = grads_for_step(step, 9)
    grads = [all_grads[i] for i in ACTIVE]
    for p, g in zip(params, grads):
        p.grad = None if g is None else torch.tensor(g, dtype=torch.float32)
    return [None if g is None else p.grad.double().numpy() for p, g in zip(params, grads)]


def unpack_bits(packed: torch.Tensor, n: int) -> torch.Tensor:
    """Bit k of byte b is element 8 b + k (the packed-bits format, spec.storage_layout)."""
    return ((packed.to(torch.int32)[:, None] >> torch.arange(8)) & 1).reshape(-1)[:n]


def reference_state(ref: Automagic, i: int, key: str) -> np.ndarray:
    st = ref.state[i]
    if key != "last_polarity":
        return st[key]
    group = next(g for g in ref.param_groups if i in g["indices"])
    return StateStore(st, ref.formats(i, group), ref.params[i].shape, lambda *_: None).load(key)


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_reference_automagic_equals_ai_toolkit(upstream, config: dict[str, Any]):
    theirs = fp32_params(41)
    oracle = upstream(theirs, **config)
    ref = Automagic([p.detach().double().numpy().copy() for p in theirs], mask_precision="fp32", **config)
    for step in range(STEPS):
        ref.step(set_grads(theirs, step))
        oracle.step()
        for i, q in enumerate(theirs):
            where = f"step {step + 1}, tensor {i} {tuple(q.shape)}"
            assert_close(ref.params[i], q.detach(), "automagic.external", f"param at {where}")
            st = oracle.state.get(q, {})
            assert ("step" in st) == ("step" in ref.state[i]), where
            if not st or q.numel() == 0:
                continue
            assert st["step"] == ref.state[i]["step"], where
            for key in STATES:
                if key in st:
                    assert_close(reference_state(ref, i, key), upstream_state(st, key), tolerance(key),
                                 f"{key} at {where}")


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_fast_automagic_equals_ai_toolkit(upstream, config: dict[str, Any]):
    ours, theirs = fp32_params(42), fp32_params(42)
    opt = fast.Automagic(ours, mask_precision="fp32", compiled_optimizer=False, **config)
    oracle = upstream(theirs, **config)
    for step in range(STEPS):
        set_grads(ours, step)
        set_grads(theirs, step)
        opt.step()
        oracle.step()
    for i, (p, q) in enumerate(zip(ours, theirs)):
        assert_close(p, q, "automagic.external", f"param {i} {tuple(p.shape)}")
        st = oracle.state.get(q, {})
        if q.numel() == 0:
            continue
        for key in STATES:
            if key in st:
                actual = opt.state[p][key]
                if key == "last_polarity":
                    actual = unpack_bits(actual, p.numel()).view(p.shape)
                assert_close(actual.to(torch.float32), upstream_state(st, key), tolerance(key), f"{key} {i}")
    full = [i for i, q in enumerate(theirs) if q.numel()]
    lrs = opt.get_learning_rates()
    means = torch.stack([opt.state[ours[i]]["lr_mask"].double().mean() for i in full])
    assert_close(torch.tensor(lrs), means.mean().reshape(1), "automagic.external_mask",
                 "per-group mean of tensor means")
    upstream_means = torch.stack([oracle.state[theirs[i]]["avg_lr"].double() for i in full])
    assert_close(means, upstream_means, "automagic.external_mask", "each tensor's mean rate")


def test_logged_learning_rates_equal_ai_toolkits(upstream):
    """With every tensor stepped and none empty, ai-toolkit's get_learning_rates is ours (it counts
    a tensor without state as 0 and an empty one as NaN; ours skips empty ones and counts lr for
    a tensor not stepped yet)."""
    config = CONFIGS[1]
    keep = [i for i, p in enumerate(fp32_params(43)) if p.numel()]
    ours, theirs = ([fp32_params(43)[i] for i in keep] for _ in range(2))
    opt = fast.Automagic(ours, mask_precision="fp32", compiled_optimizer=False, **config)
    oracle = upstream(theirs, **config)
    for step in range(4):
        for ps in (ours, theirs):
            grads = grads_for_step(step, 9)
            for p, i in zip(ps, keep):
                p.grad = torch.tensor(grads[ACTIVE[i]] if grads[ACTIVE[i]] is not None else
                                      np.ones(p.shape), dtype=torch.float32)
        opt.step()
        oracle.step()
        assert_close(torch.tensor(opt.get_learning_rates()), torch.tensor(oracle.get_learning_rates()),
                     "automagic.external_mask", f"get_learning_rates at step {step + 1}")
    assert opt.get_avg_learning_rate() != config["lr"]
