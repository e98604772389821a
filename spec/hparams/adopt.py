"""Adopt's hyperparameters (spec/adopt.md)."""

from dataclasses import replace

from spec.hparams.adamw import (
    BETAS,
    EPS,
    EXP_AVG,
    EXP_AVG_SLOW,
    EXP_AVG_SQ,
    USE_ATAN2,
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
    simplified_constraints,
    with_default,
)
from spec.hparams.storage import CONSTRAINTS as STORAGE_CONSTRAINTS
from spec.hparams.storage import STORAGE

CLIP_LAMBDA = Hyperparameter(
    "clip_lambda", "q", 0.25, Kind.OPTIONAL_FLOAT,
    "exponent of the clip of the normalised gradient to [-k^q, k^q] at 0-based step k; None: no clip",
    low=0.0,
)

ADOPT_EPS = replace(
    EPS, default=1e-6, meaning="floor of sqrt(v) in the normalisation g / max(sqrt(v), eps); None means "
    "the scale-invariant 1/sqrt(numel(p))",
)
ADOPT_ATAN2 = replace(
    USE_ATAN2, meaning="normalise with atan2(g, sqrt(v)) instead of g / max(sqrt(v), eps): bounded, eps-free, "
    "no clip, and the first step is a real step",
)

GROUP = {
    h.name: h
    for h in (
        with_default(WRITE["lr"], 1e-4), with_default(BETAS, (0.9, 0.9999)), ADOPT_EPS,
        WRITE["weight_decay"], WRITE["cautious_wd"], CLIP_LAMBDA, ADOPT_ATAN2,
    )
} | NESTEROV_FEATURE | ADEMAMIX | SIMPLIFIED_ADEMAMIX | ORTHOGRAD_FEATURE | MASKS | KOURKOUTAS | STORAGE
RUNTIME = COMMON_RUNTIME | KOURKOUTAS_RUNTIME
ALL = {**GROUP, **RUNTIME}

SLOTS = (EXP_AVG, EXP_AVG_SQ, EXP_AVG_SLOW)

CONSTRAINTS = (
    *STORAGE_CONSTRAINTS, *nesterov_constraints("betas"), *ademamix_constraints(),
    *simplified_constraints("betas", ("use_AdEMAMix", "nesterov", "use_atan2")),
    *mask_constraints("betas"), *simplified_mask_constraints(), *kourkoutas_constraints(),
)
