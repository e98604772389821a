"""Which optimizer takes which direction feature, and the contradictions between features.

A feature that ``FEATURES_OF`` does not list for an optimizer (and every hyperparameter that
belongs to it) is an unknown argument: TypeError in fast and reference. Each spec constraint of
spec/hparams/directions.py (and the shell's layer_key_fn rule) is violated once, by a
configuration found by search that breaks that constraint alone: ValueError in both, naming
every hyperparameter of the constraint.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from conformance.features import Values, broken, defaults_of
from conformance.pairwise import LAYER_KEY_RULE, FlagSpace
from conformance.registry import ENTRIES
from spec.hparams import directions
from spec.hparams.adamw import USE_ATAN2

# Each feature's hyperparameters (the flag first), from spec.
FEATURE_HPARAMS = {
    "orthograd": tuple(directions.ORTHOGRAD_FEATURE),
    "cautious": ("cautious",),
    "grams": ("grams",),
    "use_atan2": (USE_ATAN2.name,),
    "kourkoutas_beta": (*directions.KOURKOUTAS, *directions.KOURKOUTAS_RUNTIME),
    **{name: (name,) for name in directions.SIGN_FEATURES},
}
# A value other than the default for each of them (for layer_key_fn: any callable).
ON = {"orthograd": "flattened", "beta2_min": 0.5, "ema_alpha": 0.5, "tiny_spike": 1e-6, "k_warmup_steps": 2,
      "layer_key_fn": id}
# Values a constraint witness may need besides the flag domains (betas[1] at or below beta2_min).
WITNESS_VALUES = {"betas": ((0.9, 0.5),)}


def test_feature_table_covers_every_direction_feature():
    assert set(FEATURE_HPARAMS) == set(directions.DIRECTION_FEATURES)
    assert set(directions.FEATURES_OF) == set(ENTRIES)


@pytest.mark.parametrize("entry", list(ENTRIES.values()), ids=lambda e: e.name)
def test_tables_match_features_of(entry):
    """An optimizer's spec table holds exactly the hyperparameters of the features it takes."""
    for feature, names in FEATURE_HPARAMS.items():
        supported = feature in directions.FEATURES_OF[entry.name]
        for name in names:
            assert (name in entry.hyperparameters) == supported, (entry.name, feature, name)


UNSUPPORTED = [(e, name) for e in ENTRIES.values() for f, names in FEATURE_HPARAMS.items()
               if f not in directions.FEATURES_OF[e.name] for name in names]


@pytest.mark.parametrize(("entry", "name"), UNSUPPORTED, ids=lambda x: getattr(x, "name", x))
def test_unsupported_feature_is_a_type_error(entry, name):
    value = ON.get(name, True)
    with pytest.raises(TypeError, match=name):
        entry.fast([torch.zeros(2, 3, requires_grad=True)], **{name: value})
    with pytest.raises(TypeError, match=name):
        entry.reference([np.zeros((2, 3))], **{name: value})


def _constraints(entry) -> tuple:
    """spec's constraints of ``entry`` and the shell's layer_key_fn rule (pairwise.FlagSpace's)."""
    return FlagSpace.of(entry).constraints


def _is_direction_rule(c) -> bool:
    return c.holds.__module__ == directions.__name__ or c is LAYER_KEY_RULE


def witness(entry, constraint) -> dict | None:
    """Hyperparameters (off their defaults) that break ``constraint`` and no other constraint."""
    space, defaults = FlagSpace.of(entry), defaults_of(entry.hyperparameters)
    candidates = []
    for name in constraint.names:
        values = space.values_of(name) if name in space.names else (defaults[name],)
        candidates.append((*values, *WITNESS_VALUES.get(name, ())))
    others = [c for c in _constraints(entry) if c is not constraint]
    for values in itertools.product(*candidates):
        config = dict(zip(constraint.names, values))
        full = Values(defaults, config)
        if broken([constraint], full) and not broken(others, full):
            return {k: v for k, v in config.items() if not (v == defaults[k] and type(v) is type(defaults[k]))}
    return None


CONTRADICTIONS = [(e, c) for e in ENTRIES.values() for c in _constraints(e) if _is_direction_rule(c)]


@pytest.mark.parametrize(("entry", "constraint"), CONTRADICTIONS,
                         ids=lambda x: getattr(x, "name", None) or "-".join(x.names))
def test_contradiction_raises_naming_every_flag(entry, constraint):
    hyper = witness(entry, constraint)
    assert hyper is not None, f"{entry.name}: no configuration breaks {constraint.names} alone"
    for build in (lambda: entry.fast([torch.zeros(2, 3, requires_grad=True)], **hyper),
                  lambda: entry.reference([np.zeros((2, 3))], **hyper)):
        with pytest.raises(ValueError) as info:
            build()
        for name in constraint.names:
            assert name in str(info.value), (name, str(info.value))
