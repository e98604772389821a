"""SimplifiedAdEMAMix's hyperparameters (spec/simplified_ademamix.md)."""

from dataclasses import replace

from spec.hparams.adamw import BETAS, EPS, EXP_AVG, EXP_AVG_SQ, USE_BIAS_CORRECTION
from spec.hparams.common import RUNTIME as COMMON_RUNTIME
from spec.hparams.common import WRITE
from spec.hparams.core import Constraint, Hyperparameter, Kind
from spec.hparams.directions import KOURKOUTAS, KOURKOUTAS_RUNTIME, ORTHOGRAD_FEATURE, kourkoutas_constraints
from spec.hparams.features import ALPHA_GRAD, with_default
from spec.hparams.storage import CONSTRAINTS as STORAGE_CONSTRAINTS
from spec.hparams.storage import STORAGE

BETA1_WARMUP = Hyperparameter(
    "beta1_warmup", r"T_{\beta_1}", None, Kind.OPTIONAL_INT,
    "move beta1's half-life from min_beta1's to betas[0]'s over this many steps; None: no warm-up", low=1,
)
MIN_BETA1 = Hyperparameter(
    "min_beta1", r"\beta_{1,\min}", 0.9, Kind.FLOAT, "beta1 at the start of the beta1 warm-up",
    low=0.0, high=1.0, high_inclusive=False,
)
SIMPLIFIED_BETAS = Hyperparameter(
    "betas", BETAS.symbol, (0.99, 0.999), BETAS.kind,
    "decay of the accumulator (beta1 > 0) and of the second-moment EMA",
    low=0.0, high=1.0, high_inclusive=False,
)

SIMPLIFIED_BIAS_CORRECTION = replace(
    USE_BIAS_CORRECTION, meaning="keep the bias sums num = beta1*num + 1 and den = beta2*den + 1 - beta2 "
    "(False: num = den = 1)",
)

GROUP = {
    h.name: h
    for h in (
        with_default(WRITE["lr"], 1e-5), SIMPLIFIED_BETAS, EPS, WRITE["weight_decay"], WRITE["cautious_wd"],
        ALPHA_GRAD, BETA1_WARMUP, MIN_BETA1, SIMPLIFIED_BIAS_CORRECTION,
    )
} | ORTHOGRAD_FEATURE | KOURKOUTAS | STORAGE
RUNTIME = COMMON_RUNTIME | KOURKOUTAS_RUNTIME
ALL = {**GROUP, **RUNTIME}

SLOTS = (EXP_AVG, EXP_AVG_SQ)

CONSTRAINTS = (
    *STORAGE_CONSTRAINTS,
    Constraint(("betas",), "the accumulator needs betas[0] > 0", lambda h: h["betas"][0] > 0),
    Constraint(("min_beta1", "beta1_warmup"), "min_beta1 only matters with a beta1_warmup",
               lambda h: h["beta1_warmup"] is not None or h["min_beta1"] == MIN_BETA1.default),
    *kourkoutas_constraints(),
)
