"""spec ⇄ reference for AdamW's AdEMAMix variant, Adopt, Lion, SignSGD and Simplified AdEMAMix:
each sympy rule, lambdified in float64, equals every intermediate the reference computes, for
every variant the hyperparameter constraints allow, at steps inside and after the schedules'
warm-ups."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import sympy as sp

from conformance.compare import assert_close
from reference.adamw import adamw_quantities, resolved_eps
from reference.ademamix import ademamix_alpha, ademamix_beta3, simplified_beta1, simplified_lr
from reference.adopt import adopt_quantities
from reference.lion import lion_quantities
from reference.signsgd import signsgd_quantities
from reference.simplified_ademamix import simplified_ademamix_quantities
from spec import adamw as spec_adamw
from spec import ademamix as spec_ademamix
from spec import adopt as spec_adopt
from spec import lion as spec_lion
from spec import signsgd as spec_signsgd
from spec import simplified_ademamix as spec_simplified
from spec import symbols as s
from spec.hparams import adamw as hp_adamw
from spec.hparams import adopt as hp_adopt
from spec.hparams import lion as hp_lion
from spec.hparams import signsgd as hp_signsgd
from spec.hparams import simplified_ademamix as hp_simplified

SHAPE = (37,)  # a prime numel: N enters through eps=None and Lion-K's sqrt(N)
SCHEDULES = ({"t_alpha": 5, "t_beta3": 4}, {"t_alpha": None, "t_beta3": None})  # None evaluates as T = 1


def hyper(table: Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
    """Every hyperparameter of ``table`` at its default, then ``overrides``."""
    return {name: h.default for name, h in table.items()} | overrides


def allowed(constraints, h: Mapping[str, Any]) -> bool:
    return all(c.holds(h) for c in constraints)


def tensors(seed: int) -> dict[str, np.ndarray]:
    """p, g, m, m_slow (signed, some exact zeros) and v (>= 0, some tiny so Adopt's clip and
    eps act)."""
    rng = np.random.default_rng(seed)
    out = {k: rng.normal(size=SHAPE) * rng.choice([0.01, 1.0, 30.0], size=SHAPE) for k in ("p", "g", "m", "m_slow")}
    out["g"][::9] = 0.0
    out["m"][::11] = 0.0
    out["v"] = rng.random(SHAPE) * 2 * np.where(np.arange(SHAPE[0]) % 4 == 0, 1e-7, 1.0)
    return out


def compare(module: ModuleType, flags: Mapping[str, bool], cases: list[tuple[dict, dict]], what: str,
            reductions: Mapping[str, tuple[sp.Symbol, Callable[[np.ndarray], float]]] | None = None) -> list[dict]:
    """``cases``: (symbol values, reference quantities). The rule is evaluated stage by stage:
    each line of ``module.rule(staged=True)`` (the one the docs print) is lambdified once and
    evaluated in float64 with the values the spec itself computed for the earlier lines, then
    compared with the reference's quantity of that name. ``reductions`` maps a stage to the
    symbol of a tensor-wide reduction of it (Lion-K's norm) that later lines use. Returns, per
    case, every symbol's value (inputs, then each line's)."""
    rule = module.rule(staged=True, **flags)
    for _, got in cases:
        assert set(rule) == set(got), f"{what}: spec quantities {sorted(rule)} vs reference {sorted(got)}"
    envs = [dict(values) for values, _ in cases]
    for key, expr in rule.items():
        fn = sp.lambdify(list(envs[0]), expr, modules="numpy")
        for env, (values, got) in zip(envs, cases):
            with np.errstate(divide="ignore"):  # ln(0) = -inf is h(0) = 0 in the half-life
                expected = np.broadcast_to(np.asarray(fn(*env.values()), dtype=np.float64), SHAPE)
            actual = np.broadcast_to(np.asarray(got[key], dtype=np.float64), SHAPE)
            assert_close(actual, expected, "spec.reference", f"{key} at t={values[s.t]} with {what}")
            env[sp.Symbol(module.STAGE_SYMBOLS[key], real=True)] = expected
            if reductions and key in reductions:
                symbol, reduce = reductions[key]
                env[symbol] = reduce(expected)
    return envs


def symbol_values(x: dict[str, np.ndarray], h: Mapping[str, Any], t: int, beta1: float,
                  extra: Mapping[sp.Symbol, Any] | None = None) -> dict:
    eps = h.get("eps", 0.0)
    return {
        s.p: x["p"], s.g: x["g"], s.m: x["m"], s.v: x["v"], s.m_slow: x["m_slow"], s.t: t, s.N: SHAPE[0],
        s.lr: h["lr"], s.wd: h["weight_decay"], s.beta1: beta1, s.beta2: h["betas"][1] if "betas" in h else 0.0,
        s.eps: 1 / np.sqrt(SHAPE[0]) if eps is None else eps,
        s.c: beta1 if h.get("nesterov_coef") is None else h["nesterov_coef"],
        s.alpha: h.get("alpha", 0.0), s.beta3: h.get("beta3_ema", 0.0), s.T_alpha: h.get("t_alpha") or 1,
        s.T_beta3: h.get("t_beta3") or 1, s.alpha_g: h.get("alpha_grad", 0.0), **(extra or {}),
    }


def variants(flags: tuple[str, ...], make: Callable[[dict], dict], constraints) -> Iterator[dict[str, bool]]:
    for values in itertools.product([False, True], repeat=len(flags)):
        f = dict(zip(flags, values))
        if allowed(constraints, make(f)):
            yield f


def flag_id(f: Any) -> str:
    """pytest ids: the flags that are on (a module by its name, anything else unnamed)."""
    if isinstance(f, ModuleType):
        return f.__name__.rsplit(".")[-1]
    return "-".join(k for k, v in f.items() if v) or "none" if isinstance(f, dict) else ""


# -- AdamW with AdEMAMix ---------------------------------------------------------------------


def adamw_hyper(f: dict) -> dict:
    return hyper(
        hp_adamw.ALL, lr=0.03, betas=(0.8 if f["first_moment"] else 0.0, 0.95), eps=1e-3, weight_decay=0.2,
        cautious_wd=f["cautious_wd"], use_bias_correction=f["use_bias_correction"], nesterov=f["nesterov"],
        nesterov_coef=0.6 if f["nesterov"] else None, use_atan2=f["use_atan2"],
        normed_momentum=f["normed_momentum"], use_AdEMAMix=True, alpha=3.5, beta3_ema=0.995,
    )


ADAMW_FLAGS = tuple(k for k in spec_adamw.VARIANTS if k != "use_AdEMAMix")
ADAMW_ALL = dict.fromkeys(ADAMW_FLAGS, False) | {"first_moment": True, "use_bias_correction": True}


def adamw_cases(f: dict) -> list[tuple[dict, dict]]:
    cases = []
    for t, schedule in itertools.product((3, 7), SCHEDULES):
        h, x = adamw_hyper(f) | schedule, tensors(t)
        got = adamw_quantities(x["p"], x["g"], x["m"] if f["first_moment"] else None, x["v"], t, h, x["m_slow"])
        cases.append((symbol_values(x, h, t, h["betas"][0]), got))
    return cases


@pytest.mark.parametrize("f", list(variants(ADAMW_FLAGS, adamw_hyper, hp_adamw.CONSTRAINTS)), ids=flag_id)
def test_adamw_ademamix_rule_matches_reference(f):
    compare(spec_adamw, f | {"use_AdEMAMix": True}, adamw_cases(f), str(f))


# -- Adopt -----------------------------------------------------------------------------------


def adopt_hyper(f: dict) -> dict:
    return hyper(
        hp_adopt.ALL, lr=0.02, betas=(0.85 if f["first_moment"] else 0.0, 0.97), eps=1e-2, weight_decay=0.3,
        cautious_wd=f["cautious_wd"], clip_lambda=0.4 if f["clip"] else None, use_atan2=f["use_atan2"],
        nesterov=f["nesterov"], nesterov_coef=0.55 if f["nesterov"] else None, use_AdEMAMix=f["use_AdEMAMix"],
        alpha=2.5, beta3_ema=0.993, Simplified_AdEMAMix=f["Simplified_AdEMAMix"], alpha_grad=7.0,
    )


ADOPT_ALL = dict.fromkeys(spec_adopt.VARIANTS, False) | {"first_moment": True, "clip": True}


def adopt_variants() -> Iterator[dict[str, bool]]:
    flags = tuple(k for k in spec_adopt.VARIANTS if k != "first_step")
    for f in variants(flags, adopt_hyper, hp_adopt.CONSTRAINTS):
        yield f | {"first_step": False}
        if not f["use_atan2"]:  # the first step only stores v (whatever the other flags)
            yield f | {"first_step": True}


def adopt_cases(f: dict) -> list[tuple[dict, dict]]:
    cases = []
    steps = (1,) if f["first_step"] else (1, 3, 9) if f["use_atan2"] else (3, 9)
    for t, schedule in itertools.product(steps, SCHEDULES if f["use_AdEMAMix"] else SCHEDULES[1:]):
        h, x = adopt_hyper(f) | schedule, tensors(t)
        if t == 1:
            x["v"] = x["g"] ** 2  # v_0 = g^2: what the optimizer hands the first step
        m = x["m"] if f["first_moment"] else None
        got = adopt_quantities(x["p"], x["g"], m, x["v"], x["m_slow"] if f["use_AdEMAMix"] else None, t, h)
        cases.append((symbol_values(x, h, t, h["betas"][0], {s.q: h["clip_lambda"] or 0.0}), got))
    return cases


@pytest.mark.parametrize("f", list(adopt_variants()), ids=flag_id)
def test_adopt_rule_matches_reference(f):
    compare(spec_adopt, f, adopt_cases(f), str(f))


def test_adopt_first_step_with_atan2_is_not_a_variant():
    with pytest.raises(ValueError, match="first_step"):
        spec_adopt.rule(first_step=True, use_atan2=True)


@pytest.mark.parametrize("module", [spec_adopt, spec_simplified], ids=flag_id)
def test_scale_invariant_eps_matches_reference(module):
    for n in (1, 37, 4096):
        assert resolved_eps(None, n) == pytest.approx(float(module.SCALE_INVARIANT_EPS.subs(s.N, n)), rel=1e-15)


# -- Lion ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kappa", [1.0, 1.37, 2.0])
@pytest.mark.parametrize("cautious_wd", [False, True])
def test_lion_rule_matches_reference(kappa, cautious_wd):
    h = hyper(hp_lion.ALL, lr=0.05, betas=(0.7, 0.93), weight_decay=0.4, cautious_wd=cautious_wd, kappa_p=kappa)
    flags = {"lion_k": kappa != 1.0, "cautious_wd": cautious_wd}
    cases, norms = [], []
    for t in (1, 4):
        x = tensors(t)
        got = lion_quantities(x["p"], x["g"], x["m"], h)
        norms.append(got.pop("s_norm", None))  # not a line of the rule: checked below
        cases.append((symbol_values(x, h, t, h["betas"][0], {s.kappa: kappa, s.s_norm: 0.0}), got))
    norm = (s.s_norm, lambda a: float(np.sqrt(np.sum(a * a))))
    envs = compare(spec_lion, flags, cases, f"kappa={kappa} cautious_wd={cautious_wd}", reductions={"s": norm})
    for env, got_norm in zip(envs, norms):
        if flags["lion_k"]:
            assert_close(got_norm, env[s.s_norm], "spec.reference", "Lion-K's ||s||_2 over the tensor")


# -- SignSGD ---------------------------------------------------------------------------------


def signsgd_hyper(f: dict) -> dict:
    return hyper(
        hp_signsgd.ALL, lr=0.04, momentum=0.75 if f["first_moment"] else 0.0, weight_decay=0.25,
        cautious_wd=f["cautious_wd"], normed_momentum=f["normed_momentum"], nesterov=f["nesterov"],
        nesterov_coef=0.35 if f["nesterov"] else None, Simplified_AdEMAMix=f["Simplified_AdEMAMix"], alpha_grad=2.5,
    )


@pytest.mark.parametrize("f", list(variants(spec_signsgd.VARIANTS, signsgd_hyper, hp_signsgd.CONSTRAINTS)),
                         ids=flag_id)
def test_signsgd_rule_matches_reference(f):
    cases = []
    for t in (1, 5):
        h, x = signsgd_hyper(f), tensors(t)
        got = signsgd_quantities(x["p"], x["g"], x["m"] if f["first_moment"] else None, h)
        cases.append((symbol_values(x, h, t, 0.0, {s.mu: h["momentum"], s.c: h["nesterov_coef"] or h["momentum"]}),
                      got))
    compare(spec_signsgd, f, cases, str(f))


# -- Simplified AdEMAMix ---------------------------------------------------------------------


@pytest.mark.parametrize("f", [dict(zip(spec_simplified.VARIANTS, v))
                               for v in itertools.product([False, True], repeat=len(spec_simplified.VARIANTS))],
                         ids=flag_id)
def test_simplified_ademamix_rule_matches_reference(f):
    h = hyper(
        hp_simplified.ALL, lr=0.01, betas=(0.97, 0.9), eps=None, weight_decay=0.15, cautious_wd=f["cautious_wd"],
        alpha_grad=4.0, use_bias_correction=f["use_bias_correction"],
        beta1_warmup=6 if f["beta1_warmup"] else None, min_beta1=0.6 if f["beta1_warmup"] else 0.9,
    )
    cases = []
    for t, num, den in ((1, 0.0, 0.0), (4, 2.7, 0.25), (8, 5.1, 0.5)):
        x = tensors(t)
        if not f["use_bias_correction"]:
            num = den = 1.0
        got = simplified_ademamix_quantities(x["p"], x["g"], x["m"], x["v"], num, den, t, h)
        values = symbol_values(x, h, t, h["betas"][0], {
            s.num: num, s.den: den, s.T_beta1: h["beta1_warmup"] or 1, s.beta1_min: h["min_beta1"]})
        cases.append((values, got))
    compare(spec_simplified, f, cases, str(f))


# -- the printed (staged) rule is the evaluated (substituted) rule ---------------------------


@pytest.mark.parametrize("module, flags, cases", [
    (spec_adamw, {"use_AdEMAMix": True, "nesterov": True}, lambda: adamw_cases(ADAMW_ALL | {"nesterov": True})),
    (spec_adamw, {"use_AdEMAMix": True, "use_atan2": True, "normed_momentum": True},
     lambda: adamw_cases(ADAMW_ALL | {"use_atan2": True, "normed_momentum": True})),
    (spec_adopt, {"use_AdEMAMix": True, "nesterov": True},
     lambda: adopt_cases(ADOPT_ALL | {"use_AdEMAMix": True, "nesterov": True})),
    (spec_adopt, {"Simplified_AdEMAMix": True}, lambda: adopt_cases(ADOPT_ALL | {"Simplified_AdEMAMix": True})),
], ids=flag_id)
def test_staged_rule_is_the_substituted_rule(module, flags, cases):
    """``rule()`` (every line substituted into the next) equals the chain of printed lines
    that the tests above evaluate: the docs show the rule that is checked."""
    cases = cases()
    envs = compare(module, flags, cases, str(flags))
    full = module.rule(**flags)
    for key in ("n", "U", "p"):
        fn = sp.lambdify(list(cases[0][0]), full[key], modules="numpy")
        for env, (values, _) in zip(envs, cases):
            staged = env[sp.Symbol(module.STAGE_SYMBOLS[key], real=True)]
            expected = np.broadcast_to(np.asarray(fn(*values.values()), dtype=np.float64), SHAPE)
            assert_close(staged, expected, "spec.reference", f"{key} at t={values[s.t]}: staged vs substituted")


# -- the schedules, step by step -------------------------------------------------------------


def scalar_function(expr: sp.Expr, symbols: list[sp.Symbol]) -> Callable[..., float]:
    fn = sp.lambdify(symbols, expr, modules="numpy")

    def evaluate(*args: float) -> float:
        with np.errstate(divide="ignore"):  # ln(0) = -inf is h(0) = 0 in the half-life
            return float(fn(*args))

    return evaluate


@pytest.mark.parametrize("beta1", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("T", [None, 1, 2, 7])
def test_ademamix_schedules_match_reference(beta1, T):
    h = {"alpha": 4.0, "beta3_ema": 0.9995, "t_alpha": T, "t_beta3": T}
    symbols = [s.t, s.alpha, s.beta3, s.beta1, s.T_alpha, s.T_beta3]
    alpha = scalar_function(spec_ademamix.alpha_schedule(), symbols)
    beta3 = scalar_function(spec_ademamix.beta3_schedule(s.beta1), symbols)
    for t in range(1, 12):
        args = (t, 4.0, 0.9995, beta1, T or 1, T or 1)
        assert_close(ademamix_alpha(t, h), alpha(*args), "spec.reference", f"alpha({t}) T={T}")
        assert_close(ademamix_beta3(t, beta1, h), beta3(*args), "spec.reference", f"beta3({t}) T={T} beta1={beta1}")


@pytest.mark.parametrize("min_beta1", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("W", [None, 1, 3, 10])
def test_simplified_beta1_warmup_and_step_size_match_reference(min_beta1, W):
    h = {"betas": (0.995, 0.9), "beta1_warmup": W, "min_beta1": min_beta1}
    warmup = scalar_function(
        spec_ademamix.half_life_warmup(s.beta1_min, s.beta1, s.T_beta1, spec_ademamix.SIMPLIFIED_HALF_LIFE_OFFSET),
        [s.t, s.beta1, s.beta1_min, s.T_beta1])
    step_size = scalar_function(spec_ademamix.simplified_step_size(s.lr, s.beta1), [s.t, s.lr, s.beta1, s.alpha_g])
    for t in range(1, 14):
        beta1 = simplified_beta1(t, h)
        assert_close(beta1, warmup(t, 0.995, min_beta1, W or 1), "spec.reference", f"beta1({t}) W={W}")
        assert_close(simplified_lr(0.3, beta1, t, 5.0), step_size(t, 0.3, beta1, 5.0), "spec.reference", f"lr_t({t})")
    assert simplified_beta1(W or 1, h) == 0.995  # the warm-up ends exactly at t = W
