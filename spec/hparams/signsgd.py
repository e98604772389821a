"""SignSGD's hyperparameters (spec/signsgd.md)."""

from spec.hparams.adamw import EXP_AVG, NORMED_MOMENTUM
from spec.hparams.common import RUNTIME, WRITE
from spec.hparams.core import Hyperparameter, Kind
from spec.hparams.directions import ORTHOGRAD_FEATURE, PREV_SIGN, SIGN_FEATURES, kept_prev_sign, sign_constraints
from spec.hparams.features import (
    ALPHA_GRAD,
    NESTEROV_FEATURE,
    SIMPLIFIED,
    nesterov_constraints,
    simplified_constraints,
    with_default,
)
from spec.hparams.storage import CONSTRAINTS as STORAGE_CONSTRAINTS
from spec.hparams.storage import STORAGE, no_second_moment

MOMENTUM = Hyperparameter(
    "momentum", r"\mu", 0.9, Kind.FLOAT, "EMA coefficient of the momentum; 0: the sign of the gradient",
    low=0.0, high=1.0, high_inclusive=False,
)
SIGNSGD_NORMED = Hyperparameter(
    "normed_momentum", NORMED_MOMENTUM.symbol, False, Kind.BOOL,
    "take the EMA of sign(g) and step along it (no sign of the EMA)",
)

GROUP = {
    h.name: h
    for h in (with_default(WRITE["lr"], 1e-4), MOMENTUM, WRITE["weight_decay"], WRITE["cautious_wd"], SIGNSGD_NORMED)
} | NESTEROV_FEATURE | {"Simplified_AdEMAMix": SIMPLIFIED, "alpha_grad": with_default(ALPHA_GRAD, 1.0)} \
    | ORTHOGRAD_FEATURE | SIGN_FEATURES | STORAGE
ALL = {**GROUP, **RUNTIME}

SLOTS = (EXP_AVG, PREV_SIGN)


def kept_slots(h) -> tuple:
    """exp_avg only when momentum > 0; prev_sign with freeze_on_flip."""
    return ((EXP_AVG,) if h["momentum"] > 0 else ()) + kept_prev_sign(h)

CONSTRAINTS = (
    *STORAGE_CONSTRAINTS, no_second_moment("SignSGD"), *nesterov_constraints("momentum"),
    *simplified_constraints("momentum", ("nesterov", "normed_momentum")),
    *sign_constraints(kappa=False, normed=True),
)
