"""CAME's hyperparameters (spec/came.md), with came-pytorch's names and defaults."""

from spec.hparams.adafactor import CLIP_THRESHOLD, EXP_AVG, EXP_AVG_SQ, FAMILY_STATE_PRECISION
from spec.hparams.common import RUNTIME, WRITE
from spec.hparams.core import Hyperparameter, Kind
from spec.hparams.features import with_default

BETAS = Hyperparameter(
    "betas", r"(\beta_1, \beta_2, \beta_3)", (0.9, 0.999, 0.9999), Kind.TRIPLE,
    "EMA coefficients of the update, the squared gradient and the instability (residual)",
    low=0.0, high=1.0, high_inclusive=False,
)
EPS = Hyperparameter(
    "eps", r"(\epsilon_1, \epsilon_2)", (1e-30, 1e-16), Kind.BETAS,
    "added to g^2 and to the squared residual before their factored EMAs", low=0.0,
)

GROUP = {
    h.name: h
    for h in (with_default(WRITE["lr"], 1e-4), EPS, CLIP_THRESHOLD, BETAS, WRITE["weight_decay"],
              FAMILY_STATE_PRECISION)
}
ALL = {**GROUP, **RUNTIME}

SLOTS = (EXP_AVG, EXP_AVG_SQ)  # exp_avg always; exp_avg_sq only for 0-d and 1-D tensors
FACTORS = ("exp_avg_sq", "exp_avg_res")  # tensors with >= 2 dims: row and column factors of each
CONSTRAINTS = ()
