"""Identities of the Prodigy reference: with d fixed at d0 Prodigy is AdamW and ProdigyLion is
Lion, both with the learning rate lr*d0; freezing, shared group scalars and the statistics'
shapes (spec/prodigy.md and spec/prodigy_lion.md, "Properties")."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conformance.compare import assert_close
from conformance.inputs import NONE_GRAD_AT, SLOTS, grads_for_step, group_split, initial_values
from reference.adamw import AdamW
from reference.prodigy import Prodigy
from reference.prodigy_lion import ProdigyLion
from spec.hparams.core import Kind

STEPS = 8
LR = (1.0, 0.4)  # per group: each group's dlr is d * its own lr
WD = (0.1, 0.3)
# d_coef this small keeps every estimate below d0, so d stays d0 (asserted each step).
FIXED_D = {"d0": 1e-3, "d_coef": 1e-6, "growth_rate": 1.0, "slice_p": 2}


def _groups(values, **per_group):
    return [{"params": vals, **{k: v[i] for k, v in per_group.items()}} for i, vals in enumerate(group_split(values))]


def _grads(step: int, fill_none: bool) -> list:
    grads = grads_for_step(step, 7)
    if fill_none:  # bias correction uses the group counter k: every live parameter must step each time
        i = NONE_GRAD_AT[1]
        grads[i] = np.zeros(SLOTS[i].shape) if step == NONE_GRAD_AT[0] else grads[i]
    return grads


ADAM_CASES = [
    {"betas": (0.8, 0.95), "eps": 1e-6, "nesterov": True, "nesterov_coef": 0.7, "cautious_wd": True},
    {"betas": (0.9, 0.99), "use_atan2": True},
    {"betas": (0.0, 0.99), "eps": None},
    {"betas": (0.85, 0.98), "eps": 1e-4, "use_bias_correction": True},
]


@pytest.mark.parametrize("case", ADAM_CASES, ids=str)
def test_prodigy_with_fixed_d_is_adamw_with_lr_times_d0(case):
    """With d = d0 throughout: m = d0*m_Adam, v = d0^2*v_Adam, and U = d0*lr*bc*m/(sqrt(v)+d0*eps)
    = d0*lr*bc*m_Adam/(sqrt(v_Adam)+eps). Without bias correction that is AdamW(lr = d0*lr) with
    bias correction off; with it, bc = sqrt(bc2)/bc1 gives AdamW(lr = d0*lr) with eps/sqrt(bc2)
    in place of eps and weight_decay*bc in place of weight_decay, where bc2 = 1 - beta2^t
    (t = k+1 while every parameter steps every time): Prodigy decays with dlr = d0*lr*bc."""
    bias = case.get("use_bias_correction", False)
    values = initial_values(7)
    d0 = FIXED_D["d0"]
    prodigy = Prodigy(_groups(values, lr=LR, weight_decay=WD), **FIXED_D, **case)
    adam_case = {k: v for k, v in case.items() if k != "use_bias_correction"}
    adam = AdamW(_groups(values, lr=[d0 * lr for lr in LR], weight_decay=WD), use_bias_correction=bias, **adam_case)
    for step in range(STEPS):
        grads = _grads(step, fill_none=bias)
        if bias:
            beta1, beta2 = case["betas"]
            bc = math.sqrt(1 - beta2 ** (step + 1)) / (1 - beta1 ** (step + 1))
            for group, wd in zip(adam.param_groups, WD):
                group["eps"] = case["eps"] / math.sqrt(1 - beta2 ** (step + 1))
                group["weight_decay"] = wd * bc  # Prodigy decays with dlr = d*lr*bc
        prodigy.step(grads)
        adam.step(grads)
        assert all(group["d"] == d0 for group in prodigy.param_groups), "precondition: d stayed d0"
        for i, (ps, st) in enumerate(zip(prodigy.state, adam.state)):
            assert_close(prodigy.params[i], adam.params[i], "spec.reference", f"param {i}, step {step + 1}")
            if st:
                assert_close(ps["exp_avg_sq"], d0**2 * st["exp_avg_sq"], "spec.reference", f"v {i}")
                if "exp_avg" in st:
                    assert_close(ps["exp_avg"], d0 * st["exp_avg"], "spec.reference", f"m {i}")
    assert prodigy.param_groups[0]["d_numerator"] != 0.0, "the statistics ran (and kept d̂ below d0)"


def _lion_direction(c: np.ndarray, kappa: float) -> np.ndarray:
    if kappa == 1.0:
        return np.sign(c)
    q = np.sign(c) * np.abs(c) ** (kappa - 1.0)
    return q / max(float(np.sqrt(np.sum(q * q))), 1e-12) * math.sqrt(c.size)


@pytest.mark.parametrize("kappa", [1.0, 1.5])
@pytest.mark.parametrize("cautious_wd", [False, True])
def test_prodigy_lion_with_fixed_d_is_lion_with_lr_times_d0(kappa, cautious_wd):
    """With d = d0: c and m are d0 times Lion's, the direction is scale-free (sign, or
    normalised), so U = d0*lr*direction(c_Lion): Lion with lr = d0*lr, written out here."""
    values = initial_values(8)
    d0, betas = FIXED_D["d0"], (0.85, 0.97)
    opt = ProdigyLion(_groups(values, lr=LR, weight_decay=WD), betas=betas, kappa_p=kappa,
                      cautious_wd=cautious_wd, **FIXED_D)
    params = [v.copy() for v in values]
    momentum: list[np.ndarray | None] = [None] * len(values)
    group_of = [g for g, vals in enumerate(group_split(list(range(len(values))))) for _ in vals]
    for step in range(STEPS):
        grads = grads_for_step(step, 8)
        opt.step(grads)
        for i, g in enumerate(grads):
            if g is None:
                continue
            m = np.zeros_like(g) if momentum[i] is None else momentum[i]
            lr, wd = d0 * LR[group_of[i]], WD[group_of[i]]
            U = lr * _lion_direction(betas[0] * m + (1 - betas[0]) * g, kappa)
            decay = lr * wd * params[i]
            if cautious_wd:
                decay = np.where(U * params[i] >= 0, decay, 0.0)
            params[i] = params[i] - decay - U
            momentum[i] = betas[1] * m + (1 - betas[1]) * g
        assert all(group["d"] == d0 for group in opt.param_groups), "precondition: d stayed d0"
        for i, p in enumerate(params):
            assert_close(opt.params[i], p, "spec.reference", f"param {i}, step {step + 1}")
            if momentum[i] is not None:
                assert_close(opt.state[i]["exp_avg"], d0 * momentum[i], "spec.reference", f"m {i}")


GROWING = {"d_coef": 3.0, "d_limiter": False, "slice_p": 3}  # d grows at every step from the second on


def _pull(opt, step: int) -> list:
    """Gradients of a quadratic pull toward 0.5 (plus noise): d grows steadily."""
    noise = grads_for_step(step, 9)
    return [None if n is None else (p - 0.5) + 0.01 * n for p, n in zip(opt.params, noise)]


@pytest.mark.parametrize("cls", [Prodigy, ProdigyLion])
def test_growth_rate_one_takes_the_first_estimate_then_holds_d(cls):
    """growth_rate=1 does not keep d at d0: the first estimate above d0 is taken at once (as in
    prodigyopt and adv_optm), after which d = min(d_max, d*1) never moves."""
    opt = cls(initial_values(9), growth_rate=1.0, **GROWING)
    history = []
    for step in range(STEPS):
        opt.step(_pull(opt, step))
        history.append(opt.param_groups[0]["d"])
    first = next(i for i, d in enumerate(history) if d != opt.defaults["d0"])
    assert history[first] > opt.defaults["d0"] * 1.0, "the first jump is not limited by growth_rate = 1"
    assert all(d == history[first] for d in history[first:])
    assert opt.param_groups[0]["d_max"] > history[first], "d_max keeps rising; d does not follow"


@pytest.mark.parametrize("cls", [Prodigy, ProdigyLion])
def test_prodigy_steps_freezes_d_and_frees_the_statistics(cls):
    steps = 3
    opt = cls(initial_values(9), prodigy_steps=steps, **GROWING)
    for step in range(STEPS):
        before = {k: opt.param_groups[0][k] for k in ("d", "d_max", "d_numerator")}
        params_before = [p.copy() for p in opt.params]
        opt.step(_pull(opt, step))
        after = {k: opt.param_groups[0][k] for k in ("d", "d_max", "d_numerator")}
        live = [st for st in opt.state if st]
        if step < steps:
            assert after["d"] != before["d"] or step == 0, f"d adapts at step {step + 1}"
            assert all("s" in st and "p0" in st for st in live)
        else:
            assert after == before, f"d frozen at step {step + 1}"
            assert not any("s" in st or "p0" in st for st in live)
        assert opt.param_groups[0]["k"] == step + 1
        assert any(np.any(p != q) for p, q in zip(opt.params, params_before)), "parameters keep moving"


@pytest.mark.parametrize("cls", [Prodigy, ProdigyLion])
def test_all_param_groups_share_d_and_every_group_feeds_it(cls):
    values = initial_values(10)
    opt = cls(_groups(values, lr=LR, weight_decay=WD), **GROWING)
    alone = cls([{"params": group_split(values)[0], "lr": LR[0], "weight_decay": WD[0]}], **GROWING)
    for step in range(STEPS):
        grads = _pull(opt, step)
        opt.step(grads)
        alone.step(group_split(grads)[0])
        first = opt.param_groups[0]
        for group in opt.param_groups[1:]:
            assert {k: group[k] for k in ("d", "d_max", "d_numerator", "k")} == {
                k: first[k] for k in ("d", "d_max", "d_numerator", "k")
            }
    assert first["d"] != alone.param_groups[0]["d"], "group 1's statistics enter the shared d"


def _other_value(h):
    if h.kind is Kind.BOOL:
        return not h.default
    if h.kind is Kind.BETAS:
        return (0.5, 0.9)
    if h.kind is Kind.INT:
        return h.default + 1
    if h.default is None:
        return 0.5
    return 2.0 if math.isinf(h.default) else h.default * 2


@pytest.mark.parametrize("cls", [Prodigy, ProdigyLion])
def test_a_group_overriding_a_shared_hyperparameter_raises_naming_it(cls):
    shared = [h for h in cls.HYPERPARAMETERS.values() if not h.group_level]
    assert "d0" in {h.name for h in shared}
    for h in shared:
        with pytest.raises(ValueError, match=h.name):
            cls([{"params": [np.zeros(3)]}, {"params": [np.zeros(2)], h.name: _other_value(h)}])


@pytest.mark.parametrize("cls", [Prodigy, ProdigyLion])
def test_statistics_are_float64_slices_taken_when_the_state_is_created(cls):
    """s and p0 hold every slice_p-th element of the flattened parameter (0-d, empty and prime
    sizes included); p0 is the value before the first update and never changes."""
    shapes = [(), (0, 4), (13,), (3, 5, 7)]
    values = [np.random.default_rng(11).normal(size=s) for s in shapes]
    opt = cls([v.copy() for v in values], slice_p=4)
    for step in range(3):
        opt.step([np.full(s, 0.5 - step) for s in shapes])
        for v, st in zip(values, opt.state):
            expected = v.reshape(-1)[::4]
            assert st["p0"].dtype == np.float64 and st["s"].dtype == np.float64
            assert st["s"].shape == expected.shape
            assert np.array_equal(st["p0"], expected)


@pytest.mark.parametrize("cls", [Prodigy, ProdigyLion])
def test_factored_states_equal_dense_when_the_gradients_are_rank_one(cls):
    """Gradients a_t*u*v^T keep every moment a multiple of u*v^T (or of its square), which the
    factored format stores exactly, so factored and dense runs agree. ProdigyLion's momentum must
    decay with beta2 there too (adv_optm 2.2.3's factored path uses beta1: that run would differ).
    d0 = 1e-2: with the default 1e-6, v = d^2*v_Adam sums to less than the factorisation's
    normalisation floor (1e-12, spec/state_storage.md) and is not stored exactly."""
    rng = np.random.default_rng(12)
    u, v, start = rng.normal(size=6), rng.normal(size=5), rng.normal(size=(6, 5))
    betas = (0.9, 0.6) if cls is ProdigyLion else (0.8, 0.95)
    dense = cls([start.copy()], betas=betas, d0=1e-2, **GROWING)
    factored = cls([start.copy()], betas=betas, d0=1e-2, state_precision="factored", **GROWING)
    for step in range(STEPS):
        g = rng.normal() * np.outer(u, v)
        dense.step([g])
        factored.step([g])
        assert "exp_avg_row" in factored.state[0], "the states are factored"
        assert_close(factored.params[0], dense.params[0], "spec.reference", f"param, step {step + 1}")
        assert factored.param_groups[0]["d"] == pytest.approx(dense.param_groups[0]["d"], rel=1e-12)


def test_docstring_examples_run():
    import doctest

    import reference.prodigy
    import reference.prodigy_lion

    for module in (reference.prodigy, reference.prodigy_lion):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__
