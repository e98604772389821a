"""spec ⇄ reference: the sympy rule, lambdified in float64, equals every intermediate the
reference computes, for every variant of the rule."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy as sp

from conformance.compare import assert_close
from reference.adamw import adamw_quantities, resolved_eps
from spec import adamw as spec_adamw
from spec import symbols as s

FLAGS = spec_adamw.VARIANTS


def _variants():
    for values in itertools.product([False, True], repeat=len(FLAGS)):
        flags = dict(zip(FLAGS, values))
        if flags["nesterov"] and not flags["first_moment"]:
            continue  # a constraint of the spec: raises at construction (test_bad_input)
        if flags["use_AdEMAMix"]:
            continue  # AdEMAMix's variants: conformance/test_spec_family.py
        yield flags


@pytest.mark.parametrize("flags", list(_variants()), ids=lambda f: "-".join(k for k, v in f.items() if v) or "none")
def test_rule_matches_reference(flags):
    rng = np.random.default_rng(0)
    shape = (64,)
    p, g, m = (rng.normal(size=shape) for _ in range(3))
    v = rng.random(shape) * 2
    t, N = 3, 64
    hyper = {
        "lr": 0.03, "betas": (0.8 if flags["first_moment"] else 0.0, 0.95), "eps": 1e-3,
        "weight_decay": 0.2, "cautious_wd": flags["cautious_wd"],
        "use_bias_correction": flags["use_bias_correction"], "nesterov": flags["nesterov"],
        "nesterov_coef": 0.6 if flags["nesterov"] else None, "use_atan2": flags["use_atan2"],
        "normed_momentum": flags["normed_momentum"],
    }
    got = adamw_quantities(p, g, m if flags["first_moment"] else None, v, t, hyper)
    rule = spec_adamw.rule(**flags)
    values = {
        s.p: p, s.g: g, s.m: m, s.v: v, s.t: t, s.N: N, s.lr: hyper["lr"], s.wd: hyper["weight_decay"],
        s.beta1: hyper["betas"][0], s.beta2: hyper["betas"][1], s.eps: hyper["eps"], s.c: 0.6,
    }
    assert set(rule) == set(got), f"spec quantities {sorted(rule)} vs reference {sorted(got)}"
    for key, expr in rule.items():
        fn = sp.lambdify(list(values), expr, modules="numpy")
        expected = np.broadcast_to(np.asarray(fn(*values.values()), dtype=np.float64), shape)
        actual = np.broadcast_to(np.asarray(got[key], dtype=np.float64), shape)
        assert_close(actual, expected, "spec.reference", f"{key} with {flags}")


def test_scale_invariant_eps_matches_reference():
    for n in (1, 17, 4096):
        expected = float(spec_adamw.SCALE_INVARIANT_EPS.subs(s.N, n))
        assert resolved_eps(None, n) == pytest.approx(expected, rel=1e-15)
    assert resolved_eps(1e-8, 17) == 1e-8


def test_hyperparameter_defaults_are_the_spec_defaults():
    import inspect

    import fast
    import reference

    sig = inspect.signature(fast.AdamW)
    for name, h in spec_adamw.HYPERPARAMETERS.items():
        assert sig.parameters[name].default == h.default, name
    opt = reference.AdamW([np.zeros(2)])
    assert {k: opt.defaults[k] for k in spec_adamw.HYPERPARAMETERS} == {
        k: h.default for k, h in spec_adamw.HYPERPARAMETERS.items()
    }
