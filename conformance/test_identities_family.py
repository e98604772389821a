"""Identities (metamorphic tests) of the reference for AdEMAMix, Adopt, Lion, SignSGD and
Simplified AdEMAMix: a feature switched to its neutral value equals the rule without it, and
first steps equal their hand-derived closed forms. Plus every state precision on every class."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from conformance.compare import assert_close
from conformance.inputs import SLOTS, grads_for_step, initial_values
from reference.adamw import AdamW
from reference.adopt import Adopt
from reference.lion import Lion
from reference.optimizer import ReferenceOptimizer
from reference.signsgd import SignSGD
from reference.simplified_ademamix import SimplifiedAdEMAMix

STEPS = 6


def case_id(x: Any) -> str:
    """pytest ids: a class by name, a dict by its items."""
    return x.__name__ if isinstance(x, type) else "-".join(f"{k}={v}" for k, v in x.items()) or "defaults"


def suite(seed: int) -> tuple[list[np.ndarray], list[list[np.ndarray | None]]]:
    """The suite's non-frozen tensors and STEPS steps of their gradients (one None)."""
    active = [i for i, slot in enumerate(SLOTS) if not slot.frozen]
    values = [initial_values(seed)[i] for i in active]
    grads = [[grads_for_step(step, seed)[i] for i in active] for step in range(STEPS)]
    return values, grads


def run(cls: type[ReferenceOptimizer], seed: int, **hyper: Any) -> ReferenceOptimizer:
    values, grads = suite(seed)
    opt = cls(values, **hyper)
    for g in grads:
        opt.step(g)
    return opt


def assert_same_run(a: ReferenceOptimizer, b: ReferenceOptimizer, states: tuple[str, ...]) -> None:
    """Bit-identical parameters and ``states`` (the neutral feature adds exactly 0)."""
    for i, (pa, pb) in enumerate(zip(a.params, b.params)):
        np.testing.assert_array_equal(pa, pb, err_msg=f"param {i}")
        for name in states:
            if name in b.state[i]:
                np.testing.assert_array_equal(a.state[i][name], b.state[i][name], err_msg=f"{name} {i}")


ADAMW_VARIANTS = [
    {}, {"nesterov": True, "nesterov_coef": 0.3}, {"use_atan2": True}, {"normed_momentum": True},
    {"betas": (0.0, 0.97)}, {"use_bias_correction": False, "eps": None}, {"normed_momentum": True, "use_atan2": True},
]


@pytest.mark.parametrize("variant", ADAMW_VARIANTS, ids=str)
def test_ademamix_with_alpha_zero_is_adamw(variant):
    base = {"lr": 2e-2, "betas": (0.8, 0.95), "weight_decay": 0.1} | variant
    plain = run(AdamW, 21, **base)
    mixed = run(AdamW, 21, **base, use_AdEMAMix=True, alpha=0.0, beta3_ema=0.99, t_alpha=3, t_beta3=4)
    assert_same_run(mixed, plain, ("exp_avg", "exp_avg_sq"))
    assert all("exp_avg_slow" in st for st in mixed.state if st)  # the slow EMA ran alongside
    assert not any("exp_avg_slow" in st for st in plain.state)


@pytest.mark.parametrize("variant", [{}, {"nesterov": True}, {"use_atan2": True}, {"betas": (0.0, 0.99)}], ids=str)
def test_adopt_ademamix_with_alpha_zero_is_adopt(variant):
    base = {"lr": 2e-2, "betas": (0.8, 0.99), "weight_decay": 0.2, "clip_lambda": 0.3} | variant
    plain = run(Adopt, 22, **base)
    mixed = run(Adopt, 22, **base, use_AdEMAMix=True, alpha=0.0, t_beta3=5)
    assert_same_run(mixed, plain, ("exp_avg", "exp_avg_sq"))


def lion_literal(p: np.ndarray, m: np.ndarray, g: np.ndarray, lr: float, wd: float, betas: tuple[float, float]):
    """Lion as lion-pytorch writes it (decay, sign of the interpolation, then the momentum)."""
    beta1, beta2 = betas
    P = p - lr * wd * p
    p_new = P - lr * np.sign(beta1 * m + (1.0 - beta1) * g)
    return p_new, beta2 * m + (1.0 - beta2) * g


def test_lion_k_with_kappa_one_is_lion():
    values, grads = suite(23)
    hyper = {"lr": 3e-2, "betas": (0.75, 0.9), "weight_decay": 0.3}
    opt = Lion(values, kappa_p=1.0, **hyper)
    p, m = [v.copy() for v in values], [np.zeros_like(v) for v in values]
    for g in grads:
        opt.step(g)
        for i, gi in enumerate(g):
            if gi is not None:
                p[i], m[i] = lion_literal(p[i], m[i], gi, hyper["lr"], hyper["weight_decay"], hyper["betas"])
            np.testing.assert_array_equal(opt.params[i], p[i], err_msg=f"param {i}")
            np.testing.assert_array_equal(opt.state[i].get("exp_avg", m[i]), m[i], err_msg=f"m {i}")


@pytest.mark.parametrize("kappa", [1.25, 1.6, 2.0])
def test_lion_k_step_has_the_norm_of_a_sign_step(kappa):
    """For kappa > 1 the update keeps the sign of c and is rescaled to ||U||_2 = lr*sqrt(N),
    the norm of a sign step without zeros; kappa = 2 is c itself, normalised."""
    rng = np.random.default_rng(24)
    p, g = rng.normal(size=(9, 7)), rng.normal(size=(9, 7)) * 5
    opt = Lion([p], lr=0.1, betas=(0.6, 0.9), kappa_p=kappa)
    opt.step([g])
    U = p - opt.params[0]
    c = 0.4 * g  # (1 - beta1)*g: m starts at 0
    np.testing.assert_array_equal(np.sign(U), np.sign(c))
    assert_close(np.sqrt(np.sum(U * U)), 0.1 * math.sqrt(g.size), "spec.reference", f"||U|| kappa={kappa}")
    if kappa == 2.0:
        assert_close(U, 0.1 * c / np.sqrt(np.sum(c * c)) * math.sqrt(g.size), "spec.reference", "kappa=2 is c/||c||")


@pytest.mark.parametrize("normed_momentum", [False, True])
@pytest.mark.parametrize("cautious_wd", [False, True])
def test_signsgd_without_momentum_is_the_sign_of_the_gradient(normed_momentum, cautious_wd):
    """Also on a 4-D (conv) tensor, which adv_optm 2.2.3 (auto_kappa_p) steps along c/||c||."""
    values, grads = suite(25)
    rng = np.random.default_rng(25)
    values.append(rng.normal(size=(3, 2, 3, 3)))
    for g in grads:
        g.append(rng.normal(size=(3, 2, 3, 3)))
    lr, wd = 2e-2, 0.4
    opt = SignSGD(values, lr=lr, momentum=0.0, weight_decay=wd, normed_momentum=normed_momentum,
                  cautious_wd=cautious_wd)
    p = [v.copy() for v in values]
    for g in grads:
        opt.step(g)
        for i, gi in enumerate(g):
            if gi is not None:
                U = lr * np.sign(gi)
                decay = lr * wd * p[i]
                p[i] = p[i] - (np.where(U * p[i] >= 0, decay, 0.0) if cautious_wd else decay) - U
            np.testing.assert_array_equal(opt.params[i], p[i], err_msg=f"param {i}")
    assert all(set(st) <= {"step", "rng_key"} for st in opt.state)  # momentum 0 keeps no state


@pytest.mark.parametrize("state_precision", ["auto", "factored", "int8_sr"])
def test_adopt_first_step_only_stores_v(state_precision):
    values, grads = suite(26)
    opt = Adopt(values, lr=0.1, weight_decay=0.5, betas=(0.7, 0.9), use_AdEMAMix=True,
                state_precision=state_precision, vector_reshape=state_precision == "factored")
    opt.step(grads[0])
    for i, (p, g) in enumerate(zip(values, grads[0])):
        np.testing.assert_array_equal(opt.params[i], p, err_msg=f"param {i} moved on the first step")
        if state_precision == "auto" and g is not None:
            np.testing.assert_array_equal(opt.state[i]["exp_avg_sq"], g * g, err_msg=f"v {i}")
            np.testing.assert_array_equal(opt.state[i]["exp_avg"], 0.0 * g, err_msg=f"m {i}")
            np.testing.assert_array_equal(opt.state[i]["exp_avg_slow"], 0.0 * g, err_msg=f"m_slow {i}")
    assert [st.get("step", 0) for st in opt.state] == [0 if g is None else 1 for g in grads[0]]


def test_adopt_first_step_with_atan2_is_a_signed_step():
    """With atan2 the first step normalises g by sqrt(v_0) = |g|: atan2(g, |g|) = sign(g)*pi/4,
    so U = lr*(4/pi)*(1-beta1)*sign(g)*pi/4 = lr*(1-beta1)*sign(g)."""
    values, grads = suite(27)
    lr, wd, beta1 = 0.1, 0.5, 0.7
    opt = Adopt(values, lr=lr, weight_decay=wd, betas=(beta1, 0.9), use_atan2=True)
    opt.step(grads[0])
    for i, (p, g) in enumerate(zip(values, grads[0])):
        expected = p if g is None else p - lr * wd * p - lr * (1 - beta1) * np.sign(g)
        assert_close(opt.params[i], expected, "spec.reference", f"param {i}")
        if g is not None:  # beta2*g^2 + (1-beta2)*g^2, equal to g^2 up to rounding
            assert_close(opt.state[i]["exp_avg_sq"], g * g, "spec.reference", f"v {i}")


@pytest.mark.parametrize("cls, hyper", [
    (Adopt, {"lr": 1e-2, "betas": (0.8, 0.99)}),
    (SimplifiedAdEMAMix, {"lr": 1e-3, "betas": (0.9, 0.99), "alpha_grad": 3.0}),
    (AdamW, {"lr": 1e-2, "use_AdEMAMix": True, "t_alpha": 2}),
], ids=case_id)
def test_eps_none_is_one_over_sqrt_numel(cls, hyper):
    """Per tensor (eps differs between tensors), so one tensor per optimizer."""
    values, grads = suite(28)
    for i, p in enumerate(values):
        a, b = cls([p], eps=None, **hyper), cls([p], eps=1 / math.sqrt(max(p.size, 1)), **hyper)
        for g in grads:
            a.step([g[i]])
            b.step([g[i]])
        np.testing.assert_array_equal(a.params[0], b.params[0], err_msg=f"tensor {i} {p.shape}")


def test_simplified_ademamix_first_step_closed_form():
    """t = 1 with bias correction: num = 1, den = 1-beta2, m = g, v = (1-beta2) g^2, so
    U = lr/(1 + alpha_g) * (1 + alpha_g) g / (|g| + eps): every coordinate moves by about lr."""
    values, grads = suite(29)
    lr, wd, eps = 0.05, 0.2, 1e-3
    opt = SimplifiedAdEMAMix(values, lr=lr, weight_decay=wd, eps=eps, alpha_grad=9.0, betas=(0.95, 0.99))
    opt.step(grads[0])
    for i, (p, g) in enumerate(zip(values, grads[0])):
        if g is None:
            continue
        lr_t = lr / 10.0
        assert_close(opt.params[i], p - lr_t * wd * p - lr * g / (np.abs(g) + eps), "spec.reference", f"param {i}")
        assert (opt.state[i]["num_sum"], opt.state[i]["den_sum"]) == (1.0, 1.0 - 0.99)


STORAGE = [
    {"state_precision": "fp32"}, {"state_precision": "bf16_sr"}, {"state_precision": "fp16"},
    {"state_precision": "int8_sr"}, {"state_precision": "factored", "vector_reshape": True},
]
CLASSES = [
    (Adopt, {"use_AdEMAMix": True, "lr": 1e-2}), (Adopt, {"Simplified_AdEMAMix": True, "lr": 1e-2}),
    (Lion, {"kappa_p": 1.5}), (SignSGD, {"nesterov": True}), (SignSGD, {"momentum": 0.0}),
    (SimplifiedAdEMAMix, {"beta1_warmup": 3, "min_beta1": 0.5}), (AdamW, {"use_AdEMAMix": True, "t_beta3": 3}),
]


@pytest.mark.parametrize("storage", STORAGE, ids=case_id)
@pytest.mark.parametrize("cls, hyper", CLASSES, ids=case_id)
def test_every_state_precision_runs_and_keeps_only_active_states(cls, hyper, storage):
    values, grads = suite(30)
    opt = cls(values, param_dtype="bfloat16", **hyper, **storage)
    for g in grads[:3]:
        opt.step(g)
    for i, st in enumerate(opt.state):
        assert np.all(np.isfinite(opt.params[i])), i
        if not st:
            continue
        formats = opt.formats(i, opt.param_groups[0])
        expected = {"step", "rng_key"} | {k for name, fmt in formats.items() for k in fmt.keys(name)}
        expected |= {"num_sum", "den_sum"} if cls is SimplifiedAdEMAMix else set()
        assert set(st) == expected, (i, sorted(st))
