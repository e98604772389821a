"""AutomagicCAME's hyperparameters (spec/automagic_came.md): Automagic's mask with CAME's names
and defaults for the rest."""

from spec.hparams.adafactor import CLIP_THRESHOLD, EXP_AVG, EXP_AVG_SQ, FAMILY_STATE_PRECISION
from spec.hparams.automagic import CONSTRAINTS, LAST_POLARITY, LR_MASK, MASK, MASK_PRECISION
from spec.hparams.came import BETAS, EPS, FACTORS
from spec.hparams.common import RUNTIME, WRITE

GROUP = {
    h.name: h
    for h in (*MASK, EPS, CLIP_THRESHOLD, BETAS, WRITE["weight_decay"], MASK_PRECISION, FAMILY_STATE_PRECISION)
}
ALL = {**GROUP, **RUNTIME}
SLOTS = (LR_MASK, LAST_POLARITY, EXP_AVG, EXP_AVG_SQ)  # exp_avg_sq only for 0-d and 1-D tensors

__all__ = ["ALL", "CONSTRAINTS", "FACTORS", "GROUP", "RUNTIME", "SLOTS"]
