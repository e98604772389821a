"""Prodigy's hyperparameters (spec/prodigy.md). The d-adaptation is one estimate for the whole
optimizer, so everything it reads is shared by all param groups (``group_level=False``)."""

import math
from dataclasses import replace

from spec.hparams.adamw import (
    BETAS,
    EPS,
    EXP_AVG,
    EXP_AVG_SLOW,
    EXP_AVG_SQ,
    USE_ATAN2,
    USE_BIAS_CORRECTION,
    kept_slots,  # noqa: F401  (the Adam family's rule)
)
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
    simplified_mask_constraints,
)
from spec.hparams.features import (
    ADEMAMIX,
    NESTEROV_FEATURE,
    SIMPLIFIED_ADEMAMIX,
    ademamix_constraints,
    nesterov_constraints,
    shared,
    simplified_constraints,
    with_default,
)
from spec.hparams.storage import CONSTRAINTS as STORAGE_CONSTRAINTS
from spec.hparams.storage import STORAGE

BETA3 = Hyperparameter(
    "beta3", r"\beta_{3}^{(d)}", None, Kind.OPTIONAL_FLOAT,
    "decay of Prodigy's numerator and s statistics; None means sqrt(beta2)",
    low=0.0, high=1.0, high_inclusive=False, group_level=False,
)
D0 = Hyperparameter(
    "d0", "d_0", 1e-6, Kind.FLOAT, "initial estimate of the distance to the solution, d",
    low=0.0, low_inclusive=False, group_level=False,
)
D_COEF = Hyperparameter(
    "d_coef", r"d_\mathrm{coef}", 1.0, Kind.FLOAT, "multiplier of the d estimate",
    low=0.0, low_inclusive=False, group_level=False,
)
GROWTH_RATE = Hyperparameter(
    "growth_rate", r"\gamma", float("inf"), Kind.FLOAT,
    "d = min(d_max, growth_rate*d) after each step (the first estimate above d0 is taken whole)",
    low=1.0, high=math.inf, group_level=False,  # inf (the default): no cap
)
SAFEGUARD_WARMUP = Hyperparameter(
    "safeguard_warmup", r"\mathrm{sw}", False, Kind.BOOL,
    "accumulate s with d instead of d*lr*bc (for warm-up schedules that start at lr = 0)",
    group_level=False,
)
SLICE_P = Hyperparameter(
    "slice_p", r"s_p", 11, Kind.INT,
    "compute the d statistics on every slice_p-th element of each flattened parameter",
    low=1, group_level=False,
)
PRODIGY_STEPS = Hyperparameter(
    "prodigy_steps", r"K", 0, Kind.INT,
    "freeze d after this many steps and free the statistics' states; 0: never", low=0, group_level=False,
)
D_LIMITER = Hyperparameter(
    "d_limiter", r"\mathrm{dl}", False, Kind.BOOL, "limit each new estimate to d*2^(1/4)", group_level=False,
)

D_ADAPTATION = {
    h.name: h
    for h in (BETA3, D0, D_COEF, GROWTH_RATE, SAFEGUARD_WARMUP, SLICE_P, PRODIGY_STEPS, D_LIMITER)
}

GROUP = {
    h.name: h
    for h in (
        with_default(WRITE["lr"], 1.0), shared(BETAS), EPS, WRITE["weight_decay"], WRITE["cautious_wd"],
        shared(replace(USE_BIAS_CORRECTION, default=False, meaning="multiply d*lr by sqrt(1 - beta2^(k+1)) / "
                       "(1 - beta1^(k+1)), k the optimizer's 0-based step")), USE_ATAN2,
    )
} | NESTEROV_FEATURE | ADEMAMIX | SIMPLIFIED_ADEMAMIX | D_ADAPTATION | ORTHOGRAD_FEATURE | MASKS | KOURKOUTAS | STORAGE
RUNTIME = COMMON_RUNTIME | KOURKOUTAS_RUNTIME
ALL = {**GROUP, **RUNTIME}

SLOTS = (EXP_AVG, EXP_AVG_SQ, EXP_AVG_SLOW)
# Group scalars, equal in every param group (prodigyopt's names): the estimate d, its running
# maximum, the numerator of the estimate and the 0-based step count k.
GROUP_STATE = ("d", "d_max", "d_numerator", "k")

CONSTRAINTS = (
    *STORAGE_CONSTRAINTS, *nesterov_constraints("betas"), *ademamix_constraints(),
    *simplified_constraints("betas", ("use_AdEMAMix", "nesterov", "use_atan2")),
    *mask_constraints("betas"), *simplified_mask_constraints(), *kourkoutas_constraints(),
)
