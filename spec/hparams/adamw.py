"""AdamW's hyperparameters: the one definition used by reference, fast and docs."""

from spec.hparams.common import RUNTIME as COMMON_RUNTIME
from spec.hparams.common import WRITE
from spec.hparams.core import Hyperparameter, Kind
from spec.hparams.directions import (
    KOURKOUTAS,
    KOURKOUTAS_RUNTIME,
    MASKS,
    ORTHOGRAD_FEATURE,
    kourkoutas_constraints,
    mask_constraints,
)
from spec.hparams.features import ADEMAMIX, NESTEROV, NESTEROV_COEF, ademamix_constraints, nesterov_constraints
from spec.hparams.storage import CONSTRAINTS as STORAGE_CONSTRAINTS
from spec.hparams.storage import STORAGE
from spec.storage_layout import Slot

BETAS = Hyperparameter(
    "betas", r"(\beta_1, \beta_2)", (0.9, 0.999), Kind.BETAS,
    "EMA coefficients of the first and second moment", low=0.0, high=1.0, high_inclusive=False,
)
EPS = Hyperparameter(
    "eps", r"\epsilon", 1e-8, Kind.OPTIONAL_FLOAT,
    "added to the denominator; None means the scale-invariant 1/sqrt(numel(p))", low=0.0,
)
USE_BIAS_CORRECTION = Hyperparameter(
    "use_bias_correction", r"\mathrm{bc}", True, Kind.BOOL,
    "divide the moments by 1 - beta^t (False sets both corrections to 1)",
)
USE_ATAN2 = Hyperparameter(
    "use_atan2", r"\mathrm{atan2}", False, Kind.BOOL,
    "Adam-atan2: bounded, eps-free direction (4/pi)*atan2(n, sqrt(v_hat))",
)
NORMED_MOMENTUM = Hyperparameter(
    "normed_momentum", r"\mathrm{normed}", False, Kind.BOOL,
    "normalise the gradient by the Adam denominator before the first-moment EMA",
)

GROUP = {
    h.name: h
    for h in (
        WRITE["lr"], BETAS, EPS, WRITE["weight_decay"], WRITE["cautious_wd"],
        USE_BIAS_CORRECTION, NESTEROV, NESTEROV_COEF, USE_ATAN2, NORMED_MOMENTUM,
    )
} | ADEMAMIX | ORTHOGRAD_FEATURE | MASKS | KOURKOUTAS | STORAGE
RUNTIME = COMMON_RUNTIME | KOURKOUTAS_RUNTIME
ALL = {**GROUP, **RUNTIME}

EXP_AVG = Slot("exp_avg", signed=True, second_moment=False)  # only when betas[0] > 0
EXP_AVG_SQ = Slot("exp_avg_sq", signed=False, second_moment=True)
EXP_AVG_SLOW = Slot("exp_avg_slow", signed=True, second_moment=False)  # only with use_AdEMAMix
SLOTS = (EXP_AVG, EXP_AVG_SQ, EXP_AVG_SLOW)


def kept_slots(h) -> tuple[Slot, ...]:
    """The Adam family's states under the values ``h``: exp_avg only when betas[0] > 0,
    exp_avg_slow only with AdEMAMix (AdamW, Adopt, Prodigy)."""
    return tuple(s for s, kept in zip(SLOTS, (h["betas"][0] > 0, True, h["use_AdEMAMix"])) if kept)

CONSTRAINTS = (
    *STORAGE_CONSTRAINTS, *nesterov_constraints("betas"), *ademamix_constraints(), *mask_constraints("betas"),
    *kourkoutas_constraints(),
)
