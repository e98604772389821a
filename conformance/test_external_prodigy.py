"""reference ⇄ the world: reference.Prodigy equals prodigyopt 1.1.2 (``decouple=True``,
``slice_p=1``) in float64, parameters, states and the group scalars, over 10 steps.

prodigyopt computes the eps term of the step with the d it has just updated; the reference
uses the d of the current step (spec/prodigy.md, Deviations). ``test_reference_equals_prodigyopt``
removes that one difference by handing the reference eps*d_new/d for the step, so everything
else must agree to float64 rounding over the whole run; ``test_one_step_difference_is_the_d_of_the_step``
runs both as written, re-synced before every step, and checks that they differ by exactly that
term (and, with betas[0] = 0, by prodigyopt's d_new*g).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conformance.compare import assert_close
from conformance.inputs import SLOTS, grads_for_step, group_split, initial_values
from reference.prodigy import Prodigy

prodigyopt = pytest.importorskip("prodigyopt")

STEPS = 10
CONFIGS = [
    {},  # the defaults of both (growth_rate inf, d0 1e-6, no bias correction)
    {"d0": 1e-4, "d_coef": 2.0, "growth_rate": 1.05, "beta3": 0.9, "betas": (0.8, 0.95), "eps": 1e-6,
     "weight_decay": 0.1, "use_bias_correction": True},
    {"lr": 0.5, "d_coef": 0.5, "safeguard_warmup": True, "betas": (0.5, 0.99), "weight_decay": 0.01},
    {"d0": 1e-5, "d_coef": 5.0, "growth_rate": 1.02, "beta3": 0.95, "safeguard_warmup": True,
     "use_bias_correction": True, "eps": 1e-4, "weight_decay": 0.3},
]
FIRST_MOMENT_FREE = {"betas": (0.0, 0.99), "d_coef": 1.5, "weight_decay": 0.02}
GROUP_WD = (None, 0.05)  # group 1 overrides weight_decay (a group-level hyperparameter)


def _setup(config: dict, seed: int):
    values = initial_values(seed)
    live = [not s.frozen for s in SLOTS]
    ref_groups = [{"params": vals} for vals in group_split(values)]
    tensors = [torch.tensor(v, dtype=torch.float64, requires_grad=ok) for v, ok in zip(values, live)]
    oracle_groups = [{"params": ts} for ts in group_split(tensors)]
    for ref_group, oracle_group, wd in zip(ref_groups, oracle_groups, GROUP_WD):
        if wd is not None:
            ref_group["weight_decay"] = oracle_group["weight_decay"] = wd
    ref = Prodigy(ref_groups, slice_p=1, **config)
    oracle = prodigyopt.Prodigy(oracle_groups, decouple=True, slice_p=1, **config)
    return ref, oracle, tensors


def _grads(ref, step: int, seed: int) -> list[np.ndarray | None]:
    """A quadratic pull of every parameter toward 0.5 plus the suite's noisy gradients (their
    None grads and exact zeros kept), so that d has a distance to adapt to."""
    noise = grads_for_step(step, seed)
    return [None if n is None else np.where(n == 0, 0.0, (p - 0.5) + 0.1 * n) for p, n in zip(ref.params, noise)]


def _oracle_step(oracle, tensors, grads) -> None:
    for p, g in zip(tensors, grads):
        p.grad = None if g is None else torch.tensor(g, dtype=torch.float64)
    oracle.step()


def _compare(ref, oracle, tensors, what: str, params: bool = True) -> None:
    for key in ("d", "d_max", "d_numerator", "k"):
        for ref_group, oracle_group in zip(ref.param_groups, oracle.param_groups):
            assert_close(ref_group[key], oracle_group[key], "prodigy.external", f"group {key} {what}")
    for i, p in enumerate(tensors):
        if params:
            assert_close(ref.params[i], p, "prodigy.external", f"param {i} {what}")
        st = oracle.state.get(p, {})
        if not st:
            assert not ref.state[i], f"param {i} has reference state but none in prodigyopt"
            continue
        assert ref.state[i]["step"] == st["step"], f"param {i} step"
        if st["p0"].numel() == p.numel():  # prodigyopt keeps a scalar 0 for an all-zero parameter
            assert_close(ref.state[i]["p0"], st["p0"], "prodigy.external", f"p0 {i} {what}")
        for name in ("exp_avg", "exp_avg_sq", "s"):
            if name in st:
                assert_close(ref.state[i][name], st[name].reshape(-1) if name == "s" else st[name],
                             "prodigy.external", f"{name} {i} {what}")
            else:
                assert name not in ref.state[i]


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_reference_equals_prodigyopt(config):
    """Same d trajectory, parameters and states, with prodigyopt's eps*d_new handed to the
    reference as eps_step = eps*d_new/d (so its d*eps_step equals prodigyopt's term)."""
    ref, oracle, tensors = _setup(config, seed=4)
    eps = config.get("eps", 1e-8)
    for step in range(STEPS):
        grads = _grads(ref, step, 4)
        d_old = oracle.param_groups[0]["d"]
        _oracle_step(oracle, tensors, grads)
        for group in ref.param_groups:
            group["eps"] = eps * oracle.param_groups[0]["d"] / d_old
        ref.step(grads)
        _compare(ref, oracle, tensors, f"after step {step + 1}")
    assert oracle.param_groups[0]["d"] > 1.1 * ref.defaults["d0"], "d must have adapted for the test to mean much"


def _resync(ref, oracle, tensors) -> None:
    """Copy prodigyopt's parameters, states and group scalars into the reference."""
    for i, p in enumerate(tensors):
        ref.params[i] = p.detach().numpy().copy()
        for name, value in oracle.state.get(p, {}).items():
            if name in ("exp_avg", "exp_avg_sq", "s"):
                ref.state[i][name] = value.numpy().copy()
    for ref_group, oracle_group in zip(ref.param_groups, oracle.param_groups):
        ref_group.update({key: oracle_group[key] for key in ("d", "d_max", "d_numerator", "k")})


@pytest.mark.parametrize("config", [*CONFIGS, FIRST_MOMENT_FREE], ids=str)
def test_one_step_difference_is_the_d_of_the_step(config):
    """Re-synced to prodigyopt before every step, one step of each differs exactly by the d used
    after the statistics: prodigyopt divides by sqrt(v) + d_new*eps and, with betas[0] = 0,
    multiplies g by d_new; the reference uses the current d in both (spec/prodigy.md,
    Deviations). Everything else (states, statistics, d) agrees to rounding."""
    ref, oracle, tensors = _setup(config, seed=5)
    beta1 = config.get("betas", (0.9, 0.999))[0]
    group_of = [g for g, group in enumerate(ref.param_groups) for _ in group["indices"]]
    for step in range(STEPS):
        grads = _grads(ref, step, 5)
        _resync(ref, oracle, tensors)
        before = [p.detach().numpy().copy() for p in tensors]
        d, dlr = ref.param_groups[0]["d"], ref.param_groups[0]["d"] * ref.param_groups[0]["lr"]
        if config.get("use_bias_correction"):
            k = ref.param_groups[0]["k"]
            dlr *= np.sqrt(1 - ref.defaults["betas"][1] ** (k + 1)) / (1 - beta1 ** (k + 1))
        _oracle_step(oracle, tensors, grads)
        ref.step(grads)
        d_new = oracle.param_groups[0]["d"]
        for i, p in enumerate(tensors):
            if grads[i] is None:
                assert_close(ref.params[i], p, "prodigy.external", f"param {i} without gradient")
                continue
            st = oracle.state[p]
            eps = ref.param_groups[group_of[i]]["eps"]
            root = np.sqrt(st["exp_avg_sq"].numpy())
            n_ref, n_up = (st["exp_avg"].numpy(),) * 2 if beta1 > 0 else (d * grads[i], d_new * grads[i])
            predicted = dlr * (n_up / (root + d_new * eps) - n_ref / (root + d * eps))  # U_prodigyopt - U_ref
            # compare the updates (p_before - p_after), not the parameters, whose size would hide them
            assert_close(before[i] - ref.params[i], before[i] - p.detach().numpy() - predicted,
                         "prodigy.external", f"update {i}, step {step + 1}")
        _compare(ref, oracle, tensors, f"states after step {step + 1}", params=False)



def test_zero_denominator_step_still_updates_parameters():
    """A first step whose gradients are all zero gives no statistics (denominator 0).
    prodigyopt returns before touching the parameters or k; the reference, as adv_optm, takes
    the step (here: only the weight decay moves p), advances k and keeps d = d0
    (spec/prodigy.md, Deviations)."""
    start = np.array([1.0, -2.0, 0.5])
    p = torch.tensor(start, requires_grad=True)
    oracle = prodigyopt.Prodigy([p], weight_decay=0.1, decouple=True, slice_p=1)
    ref = Prodigy([start.copy()], weight_decay=0.1, slice_p=1)
    _oracle_step(oracle, [p], [np.zeros(3)])
    ref.step([np.zeros(3)])
    assert torch.equal(p.detach(), torch.tensor(start)) and oracle.param_groups[0]["k"] == 0
    assert_close(ref.params[0], start - 1e-6 * 1.0 * 0.1 * start, "spec.reference", "decayed parameter")
    group = ref.param_groups[0]
    assert (group["k"], group["d"], group["d_max"], group["d_numerator"]) == (1, 1e-6, 1e-6, 0.0)


def test_group_learning_rates_are_each_groups_own():
    """prodigyopt takes dlr from the largest lr and rejects groups whose lr is neither that nor
    0; the reference (as adv_optm) scales each group by its own lr: on the first step a
    coordinate moves by d0*lr_group*(1-beta1)g/(sqrt(1-beta2)|g| + eps)."""
    with pytest.raises(RuntimeError):
        params = [torch.zeros(2, dtype=torch.float64, requires_grad=True) for _ in range(2)]
        oracle = prodigyopt.Prodigy([{"params": params[:1]}, {"params": params[1:], "lr": 0.5}], slice_p=1)
        _oracle_step(oracle, params, [np.ones(2), np.ones(2)])
    ref = Prodigy([{"params": [np.zeros(2)]}, {"params": [np.zeros(2)], "lr": 0.5}], slice_p=1)
    g = np.array([2.0, -1.0])
    ref.step([g, g])
    for p, lr in zip(ref.params, (1.0, 0.5)):
        expected = -1e-6 * lr * 0.1 * g / (math.sqrt(0.001) * np.abs(g) + 1e-8)
        assert_close(p, expected, "spec.reference", f"first step of the group with lr={lr}")
