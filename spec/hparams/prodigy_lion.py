"""ProdigyLion's hyperparameters (spec/prodigy_lion.md): Lion's with Prodigy's d-adaptation."""

from spec.hparams.common import RUNTIME, WRITE
from spec.hparams.directions import CAUTIOUS, ORTHOGRAD_FEATURE, SIGN_FEATURES, sign_constraints
from spec.hparams.features import shared, with_default
from spec.hparams.lion import KAPPA_P, LION_BETAS, SLOTS, kept_slots
from spec.hparams.prodigy import D_ADAPTATION, D_LIMITER, GROUP_STATE
from spec.hparams.storage import CONSTRAINTS as STORAGE_CONSTRAINTS
from spec.hparams.storage import STORAGE, no_second_moment

GROUP = {
    h.name: h
    for h in (with_default(WRITE["lr"], 1.0), shared(LION_BETAS), WRITE["weight_decay"], WRITE["cautious_wd"], KAPPA_P)
} | D_ADAPTATION | {"d_limiter": with_default(D_LIMITER, True)} | ORTHOGRAD_FEATURE | {"cautious": CAUTIOUS} \
    | SIGN_FEATURES | STORAGE
ALL = {**GROUP, **RUNTIME}

__all__ = ["ALL", "CONSTRAINTS", "GROUP", "GROUP_STATE", "SLOTS", "kept_slots"]

CONSTRAINTS = (
    *STORAGE_CONSTRAINTS, no_second_moment("ProdigyLion"), *sign_constraints(kappa=True, normed=False),
)
