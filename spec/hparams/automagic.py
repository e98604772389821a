"""Automagic's and AutomagicCAME's hyperparameters (spec/automagic.md), with ai-toolkit's names
and defaults.

Both keep a per-element learning-rate mask (``lr_mask``) and the sign of the last gradient
(``last_polarity``, one bit per element); the mask is stored in ``mask_precision``: the 8-bit
code of spec.storage_layout.MaskCode (default) or fp32, the exact mode.
"""

import math

from spec.hparams.adafactor import CLIP_THRESHOLD, EXP_AVG_SQ, FAMILY_STATE_PRECISION
from spec.hparams.common import RUNTIME, WRITE
from spec.hparams.core import Constraint, Hyperparameter, Kind
from spec.storage_layout import Format, Slot

LR = Hyperparameter(
    "lr", r"\eta_0", 1e-6, Kind.FLOAT,
    "the starting value of every element of the learning-rate mask (the mask then moves by "
    "lr_bump; a scheduler's changes to lr have no effect after the first step)",
    low=0.0, low_inclusive=False, high=math.inf, high_inclusive=False,
)
MIN_LR = Hyperparameter(
    "min_lr", r"\eta_{\min}", 1e-7, Kind.FLOAT, "the mask's lower bound", low=0.0, low_inclusive=False,
    high=math.inf, high_inclusive=False,
)
MAX_LR = Hyperparameter(
    "max_lr", r"\eta_{\max}", 1e-3, Kind.FLOAT, "the mask's upper bound", low=0.0, low_inclusive=False,
    high=math.inf, high_inclusive=False,
)
LR_BUMP = Hyperparameter(
    "lr_bump", r"\delta", 1e-6, Kind.FLOAT,
    "added to a mask element whose gradient sign agrees with the previous step's, subtracted otherwise",
    low=0.0, high=math.inf, high_inclusive=False,
)
EPS = Hyperparameter(
    "eps", r"(\epsilon_1, \epsilon_2)", (1e-30, 1e-3), Kind.BETAS,
    "eps1 is added to g^2 before its factored EMA; eps2 is accepted for ai-toolkit's signature and unused",
    low=0.0,
)
BETA2 = Hyperparameter(
    "beta2", r"\beta_2", 0.999, Kind.FLOAT, "EMA coefficient of the factored second moment (fixed)",
    low=0.0, high=1.0, high_inclusive=False,
)
MASK_PRECISION = Hyperparameter(
    "mask_precision", r"\mathrm{mp}", "int8_sr", Kind.CHOICE,
    "storage of the learning-rate mask: 'int8_sr' (1 byte per element: levels from min_lr to max_lr, "
    "2^m per binade, written with stochastic rounding, so the stored mask is unbiased) or 'fp32' "
    "(exact, 4 bytes per element)",
    choices=("int8_sr", "fp32"),
)

MASK = (LR, MIN_LR, MAX_LR, LR_BUMP)
GROUP = {
    h.name: h
    for h in (*MASK, EPS, CLIP_THRESHOLD, BETA2, WRITE["weight_decay"], MASK_PRECISION, FAMILY_STATE_PRECISION)
}
ALL = {**GROUP, **RUNTIME}

LR_MASK = Slot("lr_mask", signed=False, second_moment=False)
LAST_POLARITY = Slot("last_polarity", signed=False, second_moment=False, bits=True)
SLOTS = (LR_MASK, LAST_POLARITY, EXP_AVG_SQ)  # exp_avg_sq only for 0-d and 1-D tensors

CONSTRAINTS = (
    Constraint(
        ("min_lr", "lr", "max_lr"),
        "the mask starts at lr and stays in [min_lr, max_lr]; choose min_lr <= lr <= max_lr",
        lambda h: h["min_lr"] <= h["lr"] <= h["max_lr"],
    ),
)


def mask_format(h) -> Format:
    """The learning-rate mask's storage: the 8-bit code between the group's bounds, or fp32."""
    if h["mask_precision"] == "fp32":
        return Format("dense", False, "float32")
    return Format("mask8", False, bounds=(float(h["min_lr"]), float(h["max_lr"])))
