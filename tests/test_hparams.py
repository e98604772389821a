"""The hyperparameter record's validation and range texts."""

import pytest

from spec.hparams import Hyperparameter, Kind


def test_range_text_and_validation():
    h = Hyperparameter("x", "x", 0.5, Kind.FLOAT, "m", low=0.0, high=1.0, high_inclusive=False)
    assert h.range_text() == "[0, 1)"
    assert h.validate(0.0) == 0.0
    for bad in (1.0, -0.1, float("nan"), True, None, "0.5"):
        with pytest.raises(ValueError, match="x="):
            h.validate(bad)


def test_optional_and_int_kinds():
    h = Hyperparameter("e", "e", None, Kind.OPTIONAL_FLOAT, "m", low=0.0)
    assert h.validate(None) is None and "or None" in h.range_text()
    i = Hyperparameter("s", "s", 0, Kind.INT, "m", low=0.0)
    assert i.validate(3) == 3
    with pytest.raises(ValueError):
        i.validate(3.0)
