"""AdamW's hyperparameters: the one definition used by reference, fast and docs."""

from spec.hparams.common import RUNTIME, WRITE
from spec.hparams.core import Constraint, Hyperparameter, Kind
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
NESTEROV = Hyperparameter(
    "nesterov", r"\mathrm{nesterov}", False, Kind.BOOL,
    "use the look-ahead numerator c*m + (1-c)*g",
)
NESTEROV_COEF = Hyperparameter(
    "nesterov_coef", "c", None, Kind.OPTIONAL_FLOAT,
    "Nesterov mixing coefficient; None means beta1", low=0.0, high=1.0,
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
} | STORAGE
ALL = {**GROUP, **RUNTIME}

# exp_avg exists only when betas[0] > 0.
SLOTS = (Slot("exp_avg", signed=True, second_moment=False), Slot("exp_avg_sq", signed=False, second_moment=True))

CONSTRAINTS = (
    *STORAGE_CONSTRAINTS,
    Constraint(
        ("nesterov_coef", "nesterov"),
        "nesterov_coef has no effect unless nesterov=True",
        lambda h: h["nesterov_coef"] is None or h["nesterov"],
    ),
    Constraint(
        ("nesterov", "betas"),
        "Nesterov needs a first moment; betas[0] = 0 disables it",
        lambda h: not h["nesterov"] or h["betas"][0] > 0,
    ),
)
