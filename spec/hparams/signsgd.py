"""SignSGD's hyperparameters (spec/signsgd.md)."""

from spec.hparams.adamw import EXP_AVG, NORMED_MOMENTUM
from spec.hparams.common import RUNTIME, WRITE
from spec.hparams.core import Hyperparameter, Kind
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
} | NESTEROV_FEATURE | {"Simplified_AdEMAMix": SIMPLIFIED, "alpha_grad": with_default(ALPHA_GRAD, 1.0)} | STORAGE
ALL = {**GROUP, **RUNTIME}

SLOTS = (EXP_AVG,)


def kept_slots(h) -> tuple:
    """exp_avg only when momentum > 0."""
    return SLOTS if h["momentum"] > 0 else ()

CONSTRAINTS = (
    *STORAGE_CONSTRAINTS, no_second_moment("SignSGD"), *nesterov_constraints("momentum"),
    *simplified_constraints("momentum", ("nesterov", "normed_momentum")),
)
