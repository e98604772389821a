"""The generated parts of the registry and the tolerance classes are complete and consistent."""

from __future__ import annotations

import pytest

from conformance.features import (
    FEATURE_CLASSES,
    TOLERANCE_CLASSES,
    feature_settings,
    feature_tolerances,
    valid,
)
from conformance.registry import ENTRIES
from conformance.tolerances import TOLERANCES
from spec.hparams.directions import FEATURES_OF


@pytest.mark.parametrize("entry", list(ENTRIES.values()), ids=lambda e: e.name)
def test_every_feature_has_a_valid_sample(entry):
    for feature in FEATURES_OF[entry.name]:
        for label, setting in feature_settings(feature).items():
            sample = entry.samples[f"feature_{label}"]
            assert valid(entry, sample), (entry.name, label)
            assert all(sample[k] == v for k, v in setting.items()), (entry.name, label)


@pytest.mark.parametrize("entry", list(ENTRIES.values()), ids=lambda e: e.name)
def test_feature_samples_move_other_hyperparameters(entry):
    """Each feature runs with the rest of the optimizer off its defaults where compatible."""
    for name, sample in entry.samples.items():
        if name.startswith("feature_"):
            moved = {k for k, v in sample.items() if v != entry.hyperparameters[k].default}
            assert len(moved) >= 4, (entry.name, name, sorted(moved))


def test_every_class_and_direction_id_resolves():
    names = {c for c, _, _ in TOLERANCE_CLASSES}
    assert set(FEATURE_CLASSES) <= set(FEATURES_OF["AdamW"]) and all(
        c in names for cs in FEATURE_CLASSES.values() for c in cs)
    plain = {k.split(".", 1)[1] for k in TOLERANCES}
    for key in TOLERANCES:  # a class id replaces a plain id some optimizer has
        parts = key.split(".")
        if parts[1] in names:
            assert ".".join(parts[2:]) in plain, key
    for name, features in FEATURES_OF.items():
        for f in features:
            assert all(k in TOLERANCES for k in feature_tolerances(name, f)), (name, f)
