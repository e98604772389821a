"""spec ⇄ reference for Automagic and AutomagicCAME: each sympy rule, lambdified in float64 and
evaluated line by line on whole tensors (the tensor-wide means and RMS values computed from the
lines before, as on the Adafactor page), gives the reference's parameters, factors, mask and
polarity after each of four steps (the first step's variant, then the general one), factored and
not, with the exact (fp32) mask; the 8-bit mask's code is checked in test_mask_code.py."""

from __future__ import annotations

import numpy as np
import pytest

from conformance.compare import assert_close
from conformance.test_spec_adafactor import (
    SHAPES,
    came_hooks,
    came_values,
    check_came_states,
    evaluate,
    factor_values,
    reductions,
    steps,
)
from reference.automagic import Automagic, AutomagicCAME
from reference.storage import StateStore
from spec import automagic as spec_automagic
from spec import automagic_came as spec_automagic_came
from spec import symbols as s

MASK = {"lr": 2e-3, "min_lr": 1.1e-3, "max_lr": 3.3e-3, "lr_bump": 4e-4, "mask_precision": "fp32",
        "weight_decay": 0.15, "eps": (1e-20, 1e-3), "clip_threshold": 0.7}


def polarity(opt, shape):
    st = opt.state[0]
    store = StateStore(st, opt.formats(0, opt.param_groups[0]), shape, lambda *_: None)
    return store.load("last_polarity")


def mask_env(h, L, q):
    return {s.lr0: h["lr"], s.lr_min: h["min_lr"], s.lr_max: h["max_lr"], s.lr_bump: h["lr_bump"], s.L: L,
            s.polarity: q, s.wd: h["weight_decay"], s.eps1: h["eps"][0], s.clip_d: h["clip_threshold"]}


def check_mask(opt, out, shape, t):
    L = np.broadcast_to(out["L"], shape)
    stored = opt.state[0]["lr_mask"]
    assert_close(stored, L, "spec.reference", f"L at t={t}")
    q = np.broadcast_to(out["q"], shape)
    np.testing.assert_array_equal(polarity(opt, shape), q, err_msg=f"polarity at t={t}")
    assert np.any(L != MASK["lr"]) and np.all((L >= MASK["min_lr"]) & (L <= MASK["max_lr"]))
    return stored, q


@pytest.mark.parametrize("factored", [True, False], ids=["factored", "vector"])
def test_automagic_rule_matches_reference(factored):
    shape = SHAPES[factored]
    h = {**MASK, "beta2": 0.9}
    p, grads = steps(3, shape, n=4)
    ref = Automagic([p.copy()], **h)
    R, C, v = np.zeros(shape[:-1]), np.zeros(shape[-1:]), np.zeros(shape)
    L, q = np.full(shape, h["lr"]), np.zeros(shape)
    for t, g in enumerate(grads, start=1):
        sq = g * g + h["eps"][0]
        env = {s.g: g, s.p: p, s.v: v, s.beta2: h["beta2"], **factor_values(R, C, sq, factored), **mask_env(h, L, q)}
        flags = {"factored": factored, "first_step": t == 1}
        out = evaluate(spec_automagic, flags, env, reductions(shape))
        ref.step([g])
        p = np.broadcast_to(out["p"], shape)
        assert_close(ref.params[0], p, "spec.reference", f"p at t={t}")
        if factored:
            R, C = out["R"][:, 0], out["C"][0, :]
            assert_close(ref.state[0]["exp_avg_sq_row"], R, "spec.reference", f"R at t={t}")
            assert_close(ref.state[0]["exp_avg_sq_col"], C, "spec.reference", f"C at t={t}")
        else:
            v = out["v"]
            assert_close(ref.state[0]["exp_avg_sq"], v, "spec.reference", f"v at t={t}")
        L, q = check_mask(ref, out, shape, t)


@pytest.mark.parametrize("factored", [True, False], ids=["factored", "vector"])
def test_automagic_came_rule_matches_reference(factored):
    shape = SHAPES[factored]
    h = {**MASK, "betas": (0.7, 0.9, 0.95), "eps": (1e-20, 1e-8)}
    p, grads = steps(4, shape, n=4)
    ref = AutomagicCAME([p.copy()], **h)
    factors = residual = (np.zeros(shape[:-1]), np.zeros(shape[-1:]))
    m, v = np.zeros(shape), np.zeros(shape)
    L, q = np.full(shape, h["lr"]), np.zeros(shape)
    for t, g in enumerate(grads, start=1):
        sq = g * g + h["eps"][0]
        env = {s.g: g, s.p: p, s.m: m, s.v: v, **factor_values(*factors, sq, factored), **mask_env(h, L, q),
               **came_values(h, residual, factored)}
        out = evaluate(spec_automagic_came, {"factored": factored, "first_step": t == 1}, env,
                       reductions(shape, came_hooks(shape, h["eps"][1])))
        ref.step([g])
        p, m, factors, residual, v = check_came_states(ref, out, shape, t, factored, factors, residual, v)
        L, q = check_mask(ref, out, shape, t)
        assert np.array_equal(q, (g > 0).astype(np.float64))  # the raw gradient's polarity
