"""spec ⇄ reference for Prodigy and ProdigyLion: the sympy rules, lambdified in float64, equal
every intermediate the reference computes and the state after a whole reference step (slicing,
sums over the slice, group scalars), for every valid combination of the variant flags."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import sympy as sp

from conformance.compare import assert_close
from reference.adamw import resolved_eps
from reference.prodigy import (
    Prodigy,
    d_update_quantities,
    prodigy_quantities,
    resolved_beta3,
    statistics_quantities,
    step_scalars,
)
from reference.prodigy_lion import ProdigyLion, prodigy_lion_quantities
from spec import prodigy as P
from spec import prodigy_lion as PL
from spec import symbols as s

SHAPE, SLICE_P = (5, 13), 3  # 65 elements, a prime-sized slice of 22
STATS = ("delta_r", "s")
D_KEYS = ("r", "d_hat", "d_max", "d")


def _valid(hyper: dict, constraints) -> bool:
    try:
        for c in constraints:
            c.check(hyper)
    except ValueError:
        return False
    return True


def _flag_sets(module, constraints, defaults: dict):
    for values in itertools.product([False, True], repeat=len(module.VARIANTS)):
        flags = dict(zip(module.VARIANTS, values))
        if _valid({**defaults, **_hyper_flags(flags)}, constraints):
            yield flags


def _hyper_flags(flags: dict) -> dict:
    """The hyperparameters a variant flag stands for (first_moment and frozen are not ones)."""
    out = {k: v for k, v in flags.items() if k not in ("first_moment", "frozen", "lion_k")}
    if "first_moment" in flags:
        out["betas"] = (0.8 if flags["first_moment"] else 0.0, 0.95)
        out["nesterov_coef"] = 0.6 if flags["nesterov"] else None
    return out


def _ids(flags: dict) -> str:
    return "-".join(k for k, v in flags.items() if v) or "none"


def _inputs(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    d, d0 = 3e-4, 1e-4
    p = rng.normal(size=SHAPE)
    n_s = p.reshape(-1)[::SLICE_P].size
    return {
        "p": p, "g": rng.normal(size=SHAPE), "m": d * rng.normal(size=SHAPE), "v": d**2 * rng.random(SHAPE) * 2,
        "m_slow": d * rng.normal(size=SHAPE), "s": 1e-3 * rng.normal(size=n_s),
        "p0": p.reshape(-1)[::SLICE_P] + 0.05 * rng.normal(size=n_s),
        "group": {"d": d, "d0": d0, "d_max": 5e-4, "d_numerator": 2e-7, "k": 4},
    }


_LAMBDAS: dict[sp.Expr, tuple] = {}


def _lambda(expr: sp.Expr) -> tuple:
    """``expr`` lambdified over its free symbols, cached: the staged lines repeat across variants."""
    if expr not in _LAMBDAS:
        args = sorted(expr.free_symbols, key=str)
        _LAMBDAS[expr] = (args, sp.lambdify(args, expr, modules="numpy"))
    return _LAMBDAS[expr]


def _evaluate(module, flags: dict, values: dict, sliced: dict) -> dict:
    """The rule as the docs print it (``staged=True``), evaluated line by line in float64: each
    line sees the inputs and the values of the lines before it. The statistics lines see the
    slice of p and g; the d update sees their sums over the slice, Lion-K's U the norm of q."""
    staged = module.rule(staged=True, **flags)
    env, env_sliced, out = dict(values), dict(sliced), {}
    for key, expr in staged.items():
        if key == "r" and "s" in out:
            env[P.DELTA_R] = np.sum(out["delta_r"])
            env[P.DENOMINATOR] = np.sum(np.abs(out["s"]))
        if key == "U" and "q" in out:  # Lion-K: the tensor-wide norm of the rule's own q
            env[PL.LION_K_NORM] = math.sqrt(np.sum(out["q"] ** 2))
        args, fn = _lambda(expr)
        scope = env_sliced if key in STATS else env
        with np.errstate(divide="ignore", invalid="ignore"):
            out[key] = fn(*(np.float64(scope[a]) if np.isscalar(scope[a]) else scope[a] for a in args))
        symbol = sp.Symbol(module.STAGE_SYMBOLS[key], real=True)
        env[symbol] = env_sliced[symbol] = out[key]
    return out


def _compare(got: dict, expected: dict, keys, what: str) -> None:
    for key in keys:
        if key in expected:
            e = np.asarray(expected[key], dtype=np.float64)
            a = np.asarray(got[key], dtype=np.float64)
            assert_close(a, np.broadcast_to(e, a.shape), "spec.reference", f"{key} with {what}")


def _d_symbols(h: dict) -> dict:
    return {
        P.d: h["d"], P.d0: h["d0"], P.d_max: h["d_max"], P.r_prev: h["d_numerator"], P.k: h["k"],
        P.beta3: resolved_beta3(h), P.d_coef: h["d_coef"], P.growth: h["growth_rate"],
    }


def _check_step(opt, inputs: dict, expected: dict, frozen: bool, what: str, slots: dict) -> None:
    """Run one reference step from the prepared state (the parameter's step 3, the group's k = 4);
    compare the parameter, its states and the group scalars with the rule's values."""
    group = opt.param_groups[0]
    group.update(inputs["group"])
    state = opt.state[0]
    state.update({"step": 2, "s": inputs["s"].copy(), "p0": inputs["p0"].copy()})
    state.update({name: inputs[key].copy() for name, key in slots.items()})
    opt.step([inputs["g"]])
    assert_close(opt.params[0], expected["p"], "spec.reference", f"param after a step with {what}")
    for name, key in slots.items():
        assert_close(state[name], expected[key], "spec.reference", f"{name} after a step with {what}")
    if frozen:
        assert "s" not in state and "p0" not in state
    else:
        assert_close(state["s"], expected["s"], "spec.reference", f"s after a step with {what}")
    for name, key in (("d", "d"), ("d_max", "d_max"), ("d_numerator", "r")):
        assert_close(group[name], expected[key], "spec.reference", f"group {name} after a step with {what}")
    assert group["k"] == inputs["group"]["k"] + 1


PRODIGY_BASE = {h.name: h.default for h in P.HYPERPARAMETERS.values()}


@pytest.mark.parametrize("flags", list(_flag_sets(P, P.CONSTRAINTS, PRODIGY_BASE)), ids=_ids)
def test_prodigy_rule_matches_reference(flags):
    x = _inputs(1)
    hyper = {
        **_hyper_flags(flags), "lr": 0.7, "eps": None if flags["cautious_wd"] else 1e-3, "weight_decay": 0.2,
        "beta3": None if flags["safeguard_warmup"] else 0.97, "slice_p": SLICE_P, "d0": x["group"]["d0"],
        "d_coef": 0.8, "growth_rate": 1.5, "prodigy_steps": 3 if flags["frozen"] else 9, "alpha": 4.0,
        "t_alpha": 10 if flags["use_AdEMAMix"] and not flags["safeguard_warmup"] else None,
        "t_beta3": 8 if flags["use_AdEMAMix"] and not flags["cautious_wd"] else None,
        "beta3_ema": 0.995, "alpha_grad": 7.0,
    }
    opt = Prodigy([x["p"]], **hyper)
    h = {**opt.param_groups[0], **x["group"]}
    t = 3  # the parameter's own step differs from the group's k + 1 = 5
    beta1 = h["betas"][0]
    values = {
        s.p: x["p"], s.g: x["g"], s.m: x["m"], s.v: x["v"], s.t: t, s.N: x["p"].size, s.lr: h["lr"],
        s.wd: h["weight_decay"], s.beta1: beta1, s.beta2: h["betas"][1], s.eps: resolved_eps(h["eps"], x["p"].size),
        s.c: 0.6, **_d_symbols(h), P.s_prev: x["s"], P.p0: x["p0"], s.m_slow: x["m_slow"], s.alpha: h["alpha"],
        s.beta3: h["beta3_ema"], s.T_alpha: h["t_alpha"] or 1, s.T_beta3: h["t_beta3"] or 1,  # None: no warm-up
        s.alpha_g: h["alpha_grad"], P.DELTA_R: 0.0, P.DENOMINATOR: 0.0,
    }
    sliced = {**values, s.p: x["p"].reshape(-1)[::SLICE_P], s.g: x["g"].reshape(-1)[::SLICE_P]}
    expected = _evaluate(P, flags, values, sliced)

    scalars = step_scalars(h, bias_correction=flags["use_bias_correction"])
    got = dict(scalars)
    if not flags["frozen"]:
        got.update(statistics_quantities(sliced[s.p], sliced[s.g], x["p0"], x["s"], scalars["dlr"], h))
    m = x["m"] if flags["first_moment"] else None
    m_slow = x["m_slow"] if flags["use_AdEMAMix"] else None
    got.update(prodigy_quantities(x["p"], x["g"], m, x["v"], m_slow, t, scalars, h))
    delta = float(np.sum(got.get("delta_r", 0.0)))
    got.update(d_update_quantities(h, delta, float(np.sum(np.abs(got.get("s", 0.0)))), frozen=flags["frozen"]))
    assert set(expected) == set(got), f"spec quantities {sorted(expected)} vs reference {sorted(got)}"
    _compare(got, expected, expected, str(flags))

    slots = {"exp_avg_sq": "v"} | ({"exp_avg": "m"} if m is not None else {})
    slots |= {"exp_avg_slow": "m_slow"} if m_slow is not None else {}
    _check_step(opt, x, expected, flags["frozen"], str(flags), slots)


LION_BASE = {h.name: h.default for h in PL.HYPERPARAMETERS.values()}


LION_CASES = [
    (flags, kappa)
    for flags in _flag_sets(PL, PL.CONSTRAINTS, LION_BASE)
    for kappa in ((1.5, 2.0) if flags["lion_k"] else (1.0,))
]


@pytest.mark.parametrize(("flags", "kappa"), LION_CASES, ids=[f"{_ids(f)}-kappa{k}" for f, k in LION_CASES])
def test_prodigy_lion_rule_matches_reference(flags, kappa):
    x = _inputs(2)
    hyper = {
        **_hyper_flags(flags), "lr": 0.7, "betas": (0.8, 0.95), "weight_decay": 0.2,
        "beta3": None if flags["safeguard_warmup"] else 0.97, "slice_p": SLICE_P, "d0": x["group"]["d0"],
        "d_coef": 0.8, "growth_rate": 1.5, "prodigy_steps": 3 if flags["frozen"] else 0,
        "kappa_p": kappa,
    }
    opt = ProdigyLion([x["p"]], **hyper)
    h = {**opt.param_groups[0], **x["group"]}
    values = {
        s.p: x["p"], s.g: x["g"], s.m: x["m"], s.N: x["p"].size, s.lr: h["lr"], s.wd: h["weight_decay"],
        s.beta1: 0.8, s.beta2: 0.95, **_d_symbols(h), P.s_prev: x["s"], P.p0: x["p0"], s.kappa: h["kappa_p"],
        PL.LION_K_NORM: 0.0, P.DELTA_R: 0.0, P.DENOMINATOR: 0.0,
    }
    sliced = {**values, s.p: x["p"].reshape(-1)[::SLICE_P], s.g: x["g"].reshape(-1)[::SLICE_P]}
    expected = _evaluate(PL, flags, values, sliced)

    dlr = step_scalars(h, bias_correction=False)["dlr"]
    got = {"dlr": dlr}
    if not flags["frozen"]:
        got.update(statistics_quantities(sliced[s.p], sliced[s.g], x["p0"], x["s"], dlr, h))
    got.update(prodigy_lion_quantities(x["p"], x["g"], x["m"], dlr, h))
    if "q_norm" in got:
        assert got.pop("q_norm") == pytest.approx(math.sqrt(np.sum(expected["q"] ** 2)), rel=1e-12)
    delta = float(np.sum(got.get("delta_r", 0.0)))
    got.update(d_update_quantities(h, delta, float(np.sum(np.abs(got.get("s", 0.0)))), frozen=flags["frozen"]))
    assert set(expected) == set(got), f"spec quantities {sorted(expected)} vs reference {sorted(got)}"
    _compare(got, expected, expected, f"{flags}, kappa={kappa}")
    _check_step(opt, x, expected, flags["frozen"], str(flags), {"exp_avg": "m"})


D_SCENARIOS = [  # (d, d_max, r_prev, delta_r, denominator, growth_rate): every branch of the d update
    (d, d_max, r, dr, den, gr)
    for d, d_max in ((1e-4, 1e-4), (2e-4, 2e-4), (2e-4, 6e-4))
    for r, dr in ((3e-9, 4e-9), (3e-9, -9e-9), (0.0, 1e-12), (5e-8, 9e-8))
    for den in (0.0, 1e-4, 1e-2)
    for gr in (1.0, 1.05, math.inf)
]


@pytest.mark.parametrize("module", [P, PL], ids=["Prodigy", "ProdigyLion"])
@pytest.mark.parametrize(("d_limiter", "frozen"), list(itertools.product([False, True], repeat=2)))
def test_d_update_matches_reference_on_every_branch(module, d_limiter, frozen):
    """d == d0 or not, no statistics (denominator 0), estimates below d, between d and the
    limit, above d_max, and growth_rate 1, finite and inf."""
    rule = module.rule(d_limiter=d_limiter, frozen=frozen)
    keys = [k for k in D_KEYS if k in rule]
    fn = sp.lambdify([P.d, P.d0, P.d_max, P.r_prev, P.beta3, P.d_coef, P.growth, P.DELTA_R, P.DENOMINATOR],
                     [rule[k] for k in keys], modules="numpy")
    branches = set()
    for d, d_max, r, dr, den, gr in D_SCENARIOS:
        h = {"d": d, "d0": 1e-4, "d_max": d_max, "d_numerator": r, "betas": (0.9, 0.99), "beta3": 0.9,
             "d_coef": 0.7, "growth_rate": gr, "d_limiter": d_limiter}
        got = d_update_quantities(h, dr, den, frozen=frozen)
        with np.errstate(divide="ignore", invalid="ignore"):
            args = np.array([d, 1e-4, d_max, r, 0.9, 0.7, gr, dr, den])  # float64: x/0 is inf, not an error
            expected = dict(zip(keys, fn(*args)))
        if den == 0:
            expected.pop("d_hat", None)  # undefined; the reference does not compute it
        assert set(got) == set(expected), (set(got), set(expected))
        _compare(got, expected, got, f"d update {h}, delta_r={dr}, denominator={den}")
        branches.add((got["d"] > d, got["d_max"] > d_max, "d_hat" in got and got["d_hat"] < d))
    if not frozen:
        assert len(branches) >= 4, f"the scenarios reach too few branches: {branches}"


def test_scale_invariant_eps_and_beta3_default_match_reference():
    for n in (1, 17, 4096):
        assert resolved_eps(None, n) == pytest.approx(float(P.SCALE_INVARIANT_EPS.subs(s.N, n)), rel=1e-15)
    for beta2 in (0.999, 0.95):
        h = {"betas": (0.9, beta2), "beta3": None}
        assert resolved_beta3(h) == pytest.approx(float(P.BETA3_DEFAULT.subs(s.beta2, beta2)), rel=1e-15)
    assert resolved_beta3({"betas": (0.9, 0.95), "beta3": 0.5}) == 0.5


@pytest.mark.parametrize(("module", "base"), [(P, PRODIGY_BASE), (PL, LION_BASE)], ids=["Prodigy", "ProdigyLion"])
def test_every_stage_has_a_symbol_for_the_docs(module, base):
    for flags in _flag_sets(module, module.CONSTRAINTS, base):
        staged = module.rule(staged=True, **flags)
        assert set(staged) <= set(module.STAGE_SYMBOLS)
        assert set(staged) == set(module.rule(**flags))


@pytest.mark.parametrize(("module", "flags"), [
    (P, {}), (P, {"nesterov": True, "use_AdEMAMix": True, "use_bias_correction": True, "d_limiter": True}),
    (P, {"Simplified_AdEMAMix": True, "cautious_wd": True, "safeguard_warmup": True}),
    (PL, {"lion_k": True, "d_limiter": False}),
], ids=str)
def test_substituted_rule_equals_the_staged_lines(module, flags):
    """``rule()`` (everything substituted, what other layers may evaluate) and the staged lines
    the docs print and the tests above evaluate are the same function."""
    staged = module.rule(staged=True, **flags)
    full: dict[str, sp.Expr] = {}
    for key, expr in staged.items():
        full[key] = expr.xreplace({sp.Symbol(module.STAGE_SYMBOLS[k], real=True): v for k, v in full.items()})
    for key, expr in module.rule(**flags).items():
        assert sp.simplify(full[key] - expr) == 0, key


@pytest.mark.parametrize(("cls", "module"), [(Prodigy, P), (ProdigyLion, PL)], ids=["Prodigy", "ProdigyLion"])
def test_hyperparameter_defaults_are_the_spec_defaults(cls, module):
    opt = cls([np.zeros(2)])
    assert {k: opt.defaults[k] for k in module.HYPERPARAMETERS} == {
        k: h.default for k, h in module.HYPERPARAMETERS.items()
    }
    group = opt.param_groups[0]
    assert (group["d"], group["d_max"], group["d_numerator"], group["k"]) == (1e-6, 1e-6, 0.0, 0)
