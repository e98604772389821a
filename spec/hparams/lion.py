"""Lion's hyperparameters (spec/lion.md)."""

from spec.hparams.adamw import BETAS, EXP_AVG
from spec.hparams.common import RUNTIME, WRITE
from spec.hparams.core import Hyperparameter, Kind
from spec.hparams.directions import (
    CAUTIOUS,
    ORTHOGRAD_FEATURE,
    PREV_SIGN,
    SIGN_FEATURES,
    kept_prev_sign,
    sign_constraints,
)
from spec.hparams.features import with_default
from spec.hparams.storage import CONSTRAINTS as STORAGE_CONSTRAINTS
from spec.hparams.storage import STORAGE, no_second_moment

LION_BETAS = Hyperparameter(
    "betas", r"(\beta_1, \beta_2)", (0.9, 0.99), BETAS.kind,
    "interpolation of the update direction (beta1) and decay of the momentum (beta2)",
    low=0.0, high=1.0, high_inclusive=False,
)
KAPPA_P = Hyperparameter(
    "kappa_p", r"\kappa", 1.0, Kind.FLOAT,
    "Lion-K exponent: 1 is the sign (Lion), 2 the L2-normalised direction, between them sign*|c|^(k-1) "
    "normalised; both scaled to the RMS of a sign vector", low=1.0, high=2.0,
)

GROUP = {
    h.name: h
    for h in (with_default(WRITE["lr"], 1e-4), LION_BETAS, WRITE["weight_decay"], WRITE["cautious_wd"], KAPPA_P)
} | ORTHOGRAD_FEATURE | {"cautious": CAUTIOUS} | SIGN_FEATURES | STORAGE
ALL = {**GROUP, **RUNTIME}

SLOTS = (EXP_AVG, PREV_SIGN)


def kept_slots(h) -> tuple:
    """exp_avg always; prev_sign with freeze_on_flip (Lion and ProdigyLion)."""
    return (EXP_AVG, *kept_prev_sign(h))


CONSTRAINTS = (*STORAGE_CONSTRAINTS, no_second_moment("Lion"), *sign_constraints(kappa=True, normed=False))
