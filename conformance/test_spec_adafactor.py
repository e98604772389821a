"""spec ⇄ reference for Adafactor and CAME: each sympy rule, lambdified in float64 and evaluated
line by line on whole tensors (the tensor-wide means and RMS values computed from the lines
before, as the rule's symbols define them), gives the reference's parameters and states after
every one of three steps, for every variant the constraints allow."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy as sp

from conformance.compare import assert_close
from reference.adafactor import Adafactor
from reference.came import CAME
from spec import adafactor as spec_adafactor
from spec import came as spec_came
from spec import symbols as s

SHAPES = {True: (6, 5), False: (7,)}


def rms(x):
    return float(np.sqrt(np.mean(x * x)))


def evaluate(module, flags, env, hooks):
    """Every line of the staged rule in order; ``hooks[key](env, value)`` adds the reductions
    a line's value defines."""
    out = {}
    for key, expr in module.rule(staged=True, **flags).items():
        names = sorted(expr.free_symbols, key=str)
        missing = [n for n in names if n not in env]
        assert not missing, f"{key}: no value for {missing}"
        value = np.asarray(sp.lambdify(names, expr, modules="numpy")(*(env[n] for n in names)), dtype=np.float64)
        out[key] = value
        env[sp.Symbol(module.STAGE_SYMBOLS[key], real=True)] = value
        if key in hooks:
            hooks[key](env, value)
    return out


def steps(seed, shape, n=3):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=shape)
    grads = [rng.normal(size=shape) * rng.choice([0.01, 1.0, 5.0]) for _ in range(n)]
    return p, grads


def factor_values(R, C, sq, factored):
    """The factors before the step and this step's row and column means, broadcastable over the
    matrix (none for a vector)."""
    if not factored:
        return {}
    return {s.R: R[:, None], s.C: C[None, :], s.row_mean: sq.mean(-1)[:, None], s.col_mean: sq.mean(-2)[None, :]}


def reductions(shape, extra=None):
    """The hooks that define R's mean and RMS(u) from their lines (plus ``extra``)."""
    hooks = {"R": lambda e, x: e.__setitem__(s.R_mean, float(np.mean(x))),
             "u": lambda e, x: e.__setitem__(s.rms_u, rms(np.broadcast_to(x, shape)))}
    return {**hooks, **(extra or {})}


def came_values(h, residual, factored):
    """CAME's symbols beyond Adafactor's: the residual factors (before the step), eps2, betas."""
    Rr, Cr = residual
    return {**({s.R_res: Rr[:, None], s.C_res: Cr[None, :]} if factored else {}),
            s.eps2: h["eps"][1], s.beta1: h["betas"][0], s.beta2: h["betas"][1], s.beta3: h["betas"][2]}


def came_hooks(shape, eps2):
    """The residual's row and column means and its R factor's mean, from their lines."""
    def residual_means(e, x):
        r = np.broadcast_to(x, shape) + eps2
        e[s.res_row_mean], e[s.res_col_mean] = r.mean(-1)[:, None], r.mean(-2)[None, :]

    return {"res": residual_means, "res_R": lambda e, x: e.__setitem__(s.R_res_mean, float(np.mean(x)))}


def check_came_states(ref, out, shape, t, factored, factors, residual, v):
    """p, m and CAME's factors (or v) of ``ref`` equal the rule's lines; the next step's values."""
    p, m = np.broadcast_to(out["p"], shape), np.broadcast_to(out["m"], shape)
    assert_close(ref.params[0], p, "spec.reference", f"p at t={t}")
    assert_close(ref.state[0]["exp_avg"], m, "spec.reference", f"m at t={t}")
    if factored:
        factors, residual = (out["R"][:, 0], out["C"][0, :]), (out["res_R"][:, 0], out["res_C"][0, :])
        for key, x in zip(("exp_avg_sq_row", "exp_avg_sq_col", "exp_avg_res_row", "exp_avg_res_col"),
                          (*factors, *residual)):
            assert_close(ref.state[0][key], x, "spec.reference", f"{key} at t={t}")
    else:
        v = out["v"]
        assert_close(ref.state[0]["exp_avg_sq"], v, "spec.reference", f"v at t={t}")
    return p, m, factors, residual, v


ADAFACTOR_VARIANTS = [f for f in (dict(zip(spec_adafactor.VARIANTS, v)) for v in
                                  itertools.product([False, True], repeat=len(spec_adafactor.VARIANTS)))
                      if not (f["warmup_init"] and not f["relative_step"])]


@pytest.mark.parametrize("f", ADAFACTOR_VARIANTS, ids=lambda f: "-".join(k for k, v in f.items() if v) or "none")
def test_adafactor_rule_matches_reference(f):
    shape = SHAPES[f["factored"]]
    h = {"lr": None if f["relative_step"] else 0.03, "relative_step": f["relative_step"],
         "scale_parameter": f["scale_parameter"], "warmup_init": f["warmup_init"],
         "beta1": 0.8 if f["first_moment"] else None, "eps": (1e-20, 2e-3), "clip_threshold": 0.7,
         "decay_rate": -0.6, "weight_decay": 0.15}
    p, grads = steps(1, shape)
    ref = Adafactor([p.copy()], **h)
    R, C = np.zeros(shape[:-1]), np.zeros(shape[-1:])
    m, v = np.zeros(shape), np.zeros(shape)
    for t, g in enumerate(grads, start=1):
        sq = g * g + h["eps"][0]
        env = {s.g: g, s.p: p, s.m: m, s.v: v, s.t: t, s.rms_p: rms(p), **factor_values(R, C, sq, f["factored"]),
               s.eps1: h["eps"][0], s.eps2: h["eps"][1], s.clip_d: h["clip_threshold"], s.decay_gamma: h["decay_rate"],
               s.beta1: h["beta1"] or 0.0, s.wd: h["weight_decay"], s.lr: h["lr"] or 0.0}
        out = evaluate(spec_adafactor, f, env, reductions(shape))
        ref.step([g])
        p = np.broadcast_to(out["p"], shape)
        assert_close(ref.params[0], p, "spec.reference", f"p at t={t}")
        if f["factored"]:
            R, C = out["R"][:, 0], out["C"][0, :]
            assert_close(ref.state[0]["exp_avg_sq_row"], R, "spec.reference", f"R at t={t}")
            assert_close(ref.state[0]["exp_avg_sq_col"], C, "spec.reference", f"C at t={t}")
        else:
            v = out["v"]
            assert_close(ref.state[0]["exp_avg_sq"], v, "spec.reference", f"v at t={t}")
        if f["first_moment"]:
            m = np.broadcast_to(out["m"], shape)
            assert_close(ref.state[0]["exp_avg"], m, "spec.reference", f"m at t={t}")


@pytest.mark.parametrize("factored", [True, False])
def test_came_rule_matches_reference(factored):
    shape = SHAPES[factored]
    h = {"lr": 0.02, "betas": (0.7, 0.9, 0.95), "eps": (1e-20, 1e-8), "clip_threshold": 0.6, "weight_decay": 0.2}
    p, grads = steps(2, shape)
    ref = CAME([p.copy()], **h)
    factors = residual = (np.zeros(shape[:-1]), np.zeros(shape[-1:]))
    m, v = np.zeros(shape), np.zeros(shape)
    for t, g in enumerate(grads, start=1):
        sq = g * g + h["eps"][0]
        env = {s.g: g, s.p: p, s.m: m, s.v: v, **factor_values(*factors, sq, factored),
               **came_values(h, residual, factored), s.eps1: h["eps"][0], s.clip_d: h["clip_threshold"],
               s.wd: h["weight_decay"], s.lr: h["lr"]}
        out = evaluate(spec_came, {"factored": factored}, env, reductions(shape, came_hooks(shape, h["eps"][1])))
        ref.step([g])
        p, m, factors, residual, v = check_came_states(ref, out, shape, t, factored, factors, residual, v)
