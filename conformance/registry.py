"""What the suite checks, per optimizer: classes, samples, states and tolerance ids.

Adding an optimizer is one ``Entry``. Every hyperparameter is moved off its default in at
least one sample (``test_registry`` enforces it); group 1 always overrides the group-level
numbers so two param groups with different hyperparameters run side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import fast
import reference
from conformance.features import feature_samples
from conformance.tolerances import TOLERANCES
from spec.hparams import adafactor as adafactor_hparams
from spec.hparams import adamw as adamw_hparams
from spec.hparams import adopt as adopt_hparams
from spec.hparams import automagic as automagic_hparams
from spec.hparams import automagic_came as automagic_came_hparams
from spec.hparams import came as came_hparams
from spec.hparams import lion as lion_hparams
from spec.hparams import prodigy as prodigy_hparams
from spec.hparams import prodigy_lion as prodigy_lion_hparams
from spec.hparams import signsgd as signsgd_hparams
from spec.hparams import simplified_ademamix as simplified_hparams


@dataclass(frozen=True)
class Entry:
    name: str
    fast: type
    reference: type
    hyperparameters: dict
    samples: dict[str, dict[str, Any]]
    group1: dict[str, Any]
    constraints: tuple = ()  # spec's CONSTRAINTS of the optimizer (the generated designs obey them)
    dtypes: tuple[str, ...] = ("float64", "float32", "bfloat16", "float16")
    compiled_samples: tuple[str, ...] = ()
    # Compilation dominates the suite's time: AdamW compiles every format and both dtypes; the
    # others their own math once per dtype that matters (bf16 adds the stochastic write) and
    # with factored states (the kernel pair with reductions).
    compiled_dtypes: tuple[str, ...] = ("bfloat16",)
    compiled_storage: tuple[str, ...] = ("factored",)
    # Storage variants (hyperparameters added to a sample), each run on ``storage_samples`` for
    # the fp32 and bf16 parameter dtypes; ``storage_dtypes`` as the issue demands.
    storage: dict[str, dict[str, Any]] = field(default_factory=dict)
    storage_samples: tuple[str, ...] = ()
    storage_dtypes: tuple[str, ...] = ("float32", "bfloat16")
    # Param-group scalars the optimizer keeps (Prodigy's d, ...), compared like states.
    group_state: tuple[str, ...] = ()
    # Hyperparameters whose every non-default value raises for this optimizer (factored_2nd
    # without a second moment): test_bad_input_family covers them instead.
    rejected: tuple[str, ...] = ()
    # Weight of a fixed gradient direction added every step (inputs.grads_for_step).
    consistent_grads: float = 0.0
    # Samples also run 25 steps without re-sync (stable over that many steps); default: the
    # defaults and the first sample off them.
    drift_samples: tuple[str, ...] = ()

    def drift(self) -> tuple[str, ...]:
        return self.drift_samples or ("default", list(self.samples)[1])

    def rich_sample(self) -> str:
        """The sample with the most features on at once (AdamW's "everything"), for the checks
        that run one sample per storage format."""
        return "everything" if "everything" in self.samples else self.storage_samples[0]

    def tol_id(self, what: str) -> str:
        """This optimizer's own tolerance for ``what`` if the table has one, else AdamW's: its
        fp32 chains (EMAs, sqrt, divide, decay) are the longest of the fused kernels, so its
        derived bounds cover the others unless an entry says otherwise."""
        own = f"{self.name.lower()}.{what}"
        return own if own in TOLERANCES else f"adamw.{what}"


# Every state_precision, plus factored with vector_reshape and factored_2nd over dense, int8
# and int4 first moments; fp16 states with bf16 parameters come from ("fp16", "bfloat16").
STORAGE = {
    "fp32": {"state_precision": "fp32"},
    "bf16_sr": {"state_precision": "bf16_sr"},
    "fp16": {"state_precision": "fp16"},
    "int8_sr": {"state_precision": "int8_sr"},
    "int4": {"state_precision": "int4"},
    "factored": {"state_precision": "factored"},
    "factored_vector_reshape": {"state_precision": "factored", "vector_reshape": True},
    "factored_2nd": {"factored_2nd": True},
    "factored_2nd_int8": {"factored_2nd": True, "state_precision": "int8_sr", "vector_reshape": True},
    "factored_2nd_int4": {"factored_2nd": True, "state_precision": "int4"},
}

ADAMW = Entry(
    name="AdamW",
    fast=fast.AdamW,
    reference=reference.AdamW,
    hyperparameters=adamw_hparams.ALL,
    constraints=adamw_hparams.CONSTRAINTS,
    samples={
        "default": {},
        "betas_eps_wd": {"lr": 3e-2, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1},
        "cautious_wd": {"lr": 5e-2, "weight_decay": 0.5, "cautious_wd": True},
        "no_bias_correction": {"lr": 1e-2, "use_bias_correction": False, "eps": 1e-4},
        "nesterov_coef": {"lr": 2e-2, "nesterov": True, "nesterov_coef": 0.7, "betas": (0.85, 0.99)},
        "nesterov_beta1": {"lr": 2e-2, "nesterov": True},
        "atan2": {"lr": 2e-2, "use_atan2": True, "weight_decay": 0.05},
        "normed": {"lr": 2e-2, "normed_momentum": True, "betas": (0.7, 0.9)},
        "normed_atan2_nesterov": {
            "lr": 2e-2, "normed_momentum": True, "use_atan2": True, "nesterov": True,
            "nesterov_coef": 0.3,
        },
        "beta1_zero": {"lr": 1e-2, "betas": (0.0, 0.99), "weight_decay": 0.01},
        "eps_none": {"lr": 1e-2, "eps": None},
        "everything": {
            "lr": 2e-2, "betas": (0.75, 0.97), "eps": None, "weight_decay": 0.2,
            "cautious_wd": True, "nesterov": True, "nesterov_coef": 0.4,
            "normed_momentum": True, "stochastic_rounding": True, "seed": 1234,
        },
        "no_stochastic_rounding": {"lr": 1e-2, "weight_decay": 0.1, "stochastic_rounding": False},
        "ademamix": {"lr": 2e-2, "use_AdEMAMix": True, "beta3_ema": 0.99, "alpha": 3.0, "betas": (0.8, 0.95)},
        "ademamix_schedules": {
            "lr": 2e-2, "use_AdEMAMix": True, "beta3_ema": 0.995, "alpha": 2.0, "t_alpha": 3, "t_beta3": 4,
            "nesterov": True, "weight_decay": 0.1,
        },
        "ademamix_atan2_beta1_zero": {"lr": 2e-2, "use_AdEMAMix": True, "use_atan2": True, "betas": (0.0, 0.99),
                                      "t_beta3": 3, "beta3_ema": 0.9},
    },
    group1={"lr": 1.1e-2, "betas": (0.6, 0.9), "weight_decay": 0.3, "eps": 1e-5},
    compiled_samples=("everything", "atan2", "beta1_zero", "ademamix_schedules"),
    compiled_dtypes=("float32", "bfloat16"),
    compiled_storage=("factored", "int8_sr", "int4", "bf16_sr", "factored_2nd_int8"),
    drift_samples=("default", "everything", "no_bias_correction", "ademamix_schedules"),
    storage=STORAGE,
    storage_samples=("betas_eps_wd", "everything", "beta1_zero", "atan2", "nesterov_coef", "ademamix"),
)

# Lion and SignSGD keep no second moment: factored_2nd raises for them (test_bad_input).
FIRST_MOMENT_STORAGE = {k: v for k, v in STORAGE.items() if not v.get("factored_2nd")}

ADOPT = Entry(
    name="Adopt",
    fast=fast.Adopt,
    reference=reference.Adopt,
    hyperparameters=adopt_hparams.ALL,
    constraints=adopt_hparams.CONSTRAINTS,
    samples={
        "default": {},
        "betas_eps_wd": {"lr": 2e-2, "betas": (0.8, 0.95), "eps": 1e-3, "weight_decay": 0.1, "cautious_wd": True},
        "no_clip": {"lr": 2e-3, "clip_lambda": None, "eps": None},
        "clip_half": {"lr": 2e-2, "clip_lambda": 0.5, "betas": (0.0, 0.99)},
        "atan2": {"lr": 2e-2, "use_atan2": True, "weight_decay": 0.05},
        "nesterov": {"lr": 2e-2, "nesterov": True, "nesterov_coef": 0.6},
        "ademamix": {"lr": 2e-2, "use_AdEMAMix": True, "beta3_ema": 0.99, "alpha": 3.0, "t_alpha": 3, "t_beta3": 4},
        "simplified": {"lr": 2e-2, "Simplified_AdEMAMix": True, "alpha_grad": 5.0, "betas": (0.9, 0.99),
                       "weight_decay": 0.2, "stochastic_rounding": False, "seed": 7},
    },
    group1={"lr": 1.1e-2, "betas": (0.6, 0.9), "weight_decay": 0.3, "eps": 1e-5},
    compiled_samples=("default",),
    # Its step compiles in two variants (the initialising first step), ~50 s per storage format
    # cold: its compiled check is the dense one; its storage formats are checked eagerly.
    compiled_storage=(),
    storage=STORAGE,
    storage_samples=("betas_eps_wd", "atan2", "ademamix"),
)

PRODIGY = Entry(
    name="Prodigy",
    fast=fast.Prodigy,
    reference=reference.Prodigy,
    hyperparameters=prodigy_hparams.ALL,
    constraints=prodigy_hparams.CONSTRAINTS,
    samples={
        "default": {},
        "adapted": {"lr": 0.5, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1, "d0": 1e-3, "d_coef": 30.0,
                    "slice_p": 3, "beta3": 0.9},
        "growth_bc": {"growth_rate": 1.02, "use_bias_correction": True, "d0": 1e-3, "d_coef": 30.0, "slice_p": 1,
                      "cautious_wd": True,
                      "weight_decay": 0.05},
        "safeguard_limiter": {"safeguard_warmup": True, "d_limiter": True, "d0": 1e-3, "d_coef": 30.0, "eps": None},
        "frozen": {"lr": 0.1, "prodigy_steps": 3, "d0": 1e-3, "d_coef": 100.0, "slice_p": 2},
        "atan2_nesterov": {"use_atan2": True, "nesterov": True, "nesterov_coef": 0.5, "d0": 1e-3, "d_coef": 30.0,
                           "betas": (0.9, 0.99)},
        "beta1_zero": {"betas": (0.0, 0.99), "d0": 1e-3},
        "ademamix": {"use_AdEMAMix": True, "beta3_ema": 0.99, "alpha": 3.0, "t_alpha": 3, "t_beta3": 4, "d0": 1e-3,
                     "use_bias_correction": True, "d_coef": 30.0},
        "simplified": {"lr": 0.1, "Simplified_AdEMAMix": True, "alpha_grad": 5.0, "d0": 1e-3, "d_coef": 5.0,
                       "stochastic_rounding": False, "seed": 3},
    },
    group1={"lr": 0.3, "weight_decay": 0.2, "eps": 1e-5},
    compiled_samples=("adapted",),
    storage=STORAGE,
    storage_samples=("adapted", "growth_bc"),
    group_state=prodigy_hparams.GROUP_STATE,
    consistent_grads=1.0,
    drift_samples=("default", "growth_bc"),
)

LION = Entry(
    name="Lion",
    fast=fast.Lion,
    reference=reference.Lion,
    hyperparameters=lion_hparams.ALL,
    constraints=lion_hparams.CONSTRAINTS,
    samples={
        "default": {},
        "betas_wd": {"lr": 1e-2, "betas": (0.8, 0.95), "weight_decay": 0.2, "cautious_wd": True},
        "kappa_l2": {"lr": 1e-2, "kappa_p": 2.0, "weight_decay": 0.1},
        "kappa_power": {"lr": 1e-2, "kappa_p": 1.5, "stochastic_rounding": False, "seed": 11},
    },
    group1={"lr": 3e-3, "betas": (0.5, 0.9), "weight_decay": 0.3},
    compiled_samples=("betas_wd", "kappa_power"),
    storage=FIRST_MOMENT_STORAGE,
    rejected=("factored_2nd",),
    storage_samples=("betas_wd", "kappa_power"),
)

PRODIGY_LION = Entry(
    name="ProdigyLion",
    fast=fast.ProdigyLion,
    reference=reference.ProdigyLion,
    hyperparameters=prodigy_lion_hparams.ALL,
    constraints=prodigy_lion_hparams.CONSTRAINTS,
    samples={
        "default": {},
        "adapted": {"lr": 0.5, "betas": (0.8, 0.95), "weight_decay": 0.1, "d0": 1e-3, "d_coef": 20.0, "slice_p": 3,
                    "beta3": 0.9, "d_limiter": False, "cautious_wd": True},
        "growth_safeguard": {"growth_rate": 1.5, "safeguard_warmup": True, "d0": 1e-3, "d_coef": 5.0, "slice_p": 1,
                             "kappa_p": 1.5},
        "frozen": {"prodigy_steps": 3, "d0": 1e-3, "d_coef": 20.0, "kappa_p": 2.0, "stochastic_rounding": False,
                   "seed": 5},
    },
    group1={"lr": 0.7, "weight_decay": 0.2},
    compiled_samples=("adapted",),
    storage=FIRST_MOMENT_STORAGE,
    rejected=("factored_2nd",),
    storage_samples=("adapted",),
    group_state=prodigy_lion_hparams.GROUP_STATE,
    consistent_grads=1.0,
    drift_samples=("default", "growth_safeguard"),
)

SIGNSGD = Entry(
    name="SignSGD",
    fast=fast.SignSGD,
    reference=reference.SignSGD,
    hyperparameters=signsgd_hparams.ALL,
    constraints=signsgd_hparams.CONSTRAINTS,
    samples={
        "default": {},
        "momentum_wd": {"lr": 1e-2, "momentum": 0.8, "weight_decay": 0.2, "cautious_wd": True},
        "no_momentum": {"lr": 1e-2, "momentum": 0.0, "weight_decay": 0.1},
        "nesterov": {"lr": 1e-2, "nesterov": True, "nesterov_coef": 0.6},
        "normed": {"lr": 1e-2, "normed_momentum": True, "momentum": 0.7},
        "normed_nesterov": {"lr": 1e-2, "normed_momentum": True, "nesterov": True},
        "simplified": {"lr": 1e-2, "Simplified_AdEMAMix": True, "alpha_grad": 3.0, "stochastic_rounding": False,
                       "seed": 9},
    },
    group1={"lr": 3e-3, "momentum": 0.5, "weight_decay": 0.3},
    compiled_samples=("momentum_wd", "normed_nesterov"),
    compiled_storage=(),  # the factored kernel pair is exercised by the Lion entry's identical storage
    storage=FIRST_MOMENT_STORAGE,
    rejected=("factored_2nd",),
    storage_samples=("momentum_wd", "no_momentum", "normed"),
)

SIMPLIFIED_ADEMAMIX = Entry(
    name="SimplifiedAdEMAMix",
    fast=fast.SimplifiedAdEMAMix,
    reference=reference.SimplifiedAdEMAMix,
    hyperparameters=simplified_hparams.ALL,
    constraints=simplified_hparams.CONSTRAINTS,
    samples={
        "default": {"lr": 1e-3},
        "betas_eps_wd": {"lr": 1e-3, "betas": (0.9, 0.95), "eps": 1e-6, "weight_decay": 0.1, "alpha_grad": 10.0,
                         "cautious_wd": True},
        "warmup": {"lr": 1e-3, "beta1_warmup": 4, "min_beta1": 0.5, "eps": None},
        "no_bias_correction": {"lr": 1e-3, "use_bias_correction": False, "stochastic_rounding": False, "seed": 4},
    },
    group1={"lr": 3e-3, "betas": (0.95, 0.9), "weight_decay": 0.3, "alpha_grad": 20.0},
    compiled_samples=("betas_eps_wd",),
    compiled_storage=(),  # AdamW compiles the same Adam-family math with every format
    storage=STORAGE,
    storage_samples=("betas_eps_wd", "warmup"),
)


# The Adafactor family stores its first moment (and the dense second moment of 0-d and 1-D
# tensors) in every dense and quantised format; its factors are its own (no SMMF).
FAMILY_STORAGE = {k: v for k, v in STORAGE.items() if not k.startswith("factored")}

ADAFACTOR = Entry(
    name="Adafactor",
    fast=fast.Adafactor,
    reference=reference.Adafactor,
    hyperparameters=adafactor_hparams.ALL,
    constraints=adafactor_hparams.CONSTRAINTS,
    samples={
        "default": {},
        "beta1_wd_clip": {"beta1": 0.9, "weight_decay": 0.1, "clip_threshold": 0.5},
        "warmup_init": {"warmup_init": True, "decay_rate": -0.5, "eps": (1e-20, 1e-2), "beta1": 0.5},
        "low_memory_adamw": {"lr": 1e-2, "relative_step": False, "scale_parameter": False, "beta1": 0.9,
                             "weight_decay": 0.05},
        "fixed_lr_scaled": {"lr": 0.05, "relative_step": False, "weight_decay": 0.2, "stochastic_rounding": False,
                            "seed": 3},
    },
    group1={"weight_decay": 0.3, "clip_threshold": 2.0, "decay_rate": -0.6},
    # Its kernels compile per shape (the factors' reductions): one compiled sample; the storage
    # formats are the shared layer AdamW compiles, checked here eagerly.
    compiled_samples=("low_memory_adamw",),
    compiled_storage=(),
    storage=FAMILY_STORAGE,
    storage_samples=("beta1_wd_clip", "low_memory_adamw"),
    drift_samples=("default", "low_memory_adamw"),
)

CAME = Entry(
    name="CAME",
    fast=fast.CAME,
    reference=reference.CAME,
    hyperparameters=came_hparams.ALL,
    constraints=came_hparams.CONSTRAINTS,
    samples={
        "default": {},
        "betas_eps_wd": {"lr": 2e-3, "betas": (0.8, 0.95, 0.99), "eps": (1e-20, 1e-10), "weight_decay": 0.1},
        "clip": {"lr": 1e-3, "clip_threshold": 0.3, "stochastic_rounding": False, "seed": 5},
    },
    group1={"lr": 3e-3, "weight_decay": 0.3, "betas": (0.7, 0.9, 0.999)},
    compiled_samples=("betas_eps_wd",),
    compiled_storage=(),  # as Adafactor's
    storage=FAMILY_STORAGE,
    storage_samples=("betas_eps_wd",),
)


# The mask's samples use rates near 1e-3 so that a step moves fp32 parameters by many ulps.
AUTOMAGIC = Entry(
    name="Automagic",
    fast=fast.Automagic,
    reference=reference.Automagic,
    hyperparameters=automagic_hparams.ALL,
    constraints=automagic_hparams.CONSTRAINTS,
    samples={
        "default": {},
        "mask_wd_clip": {"lr": 1e-3, "min_lr": 1e-4, "max_lr": 1e-2, "lr_bump": 5e-4, "weight_decay": 0.1,
                         "clip_threshold": 0.5},
        "exact_mask": {"lr": 2e-3, "min_lr": 5e-4, "max_lr": 5e-3, "lr_bump": 1e-3, "mask_precision": "fp32",
                       "beta2": 0.9, "eps": (1e-20, 1e-2), "stochastic_rounding": False, "seed": 4},
    },
    group1={"lr": 3e-3, "min_lr": 1e-3, "max_lr": 2e-2, "lr_bump": 2e-4, "weight_decay": 0.2},
    # Drift needs the exact mask: over 25 steps the 8-bit mask's stochastic code turns fp32 vs
    # float64 rounding into a whole level now and then (its codes are compared every step).
    drift_samples=("exact_mask",),
    compiled_samples=("mask_wd_clip",),
    compiled_storage=(),  # as Adafactor's
    storage=FAMILY_STORAGE,
    storage_samples=("mask_wd_clip",),
)

AUTOMAGIC_CAME = Entry(
    name="AutomagicCAME",
    fast=fast.AutomagicCAME,
    reference=reference.AutomagicCAME,
    hyperparameters=automagic_came_hparams.ALL,
    constraints=automagic_came_hparams.CONSTRAINTS,
    samples={
        "default": {},
        "mask_betas_wd": {"lr": 1e-3, "min_lr": 1e-4, "max_lr": 1e-2, "lr_bump": 5e-4, "weight_decay": 0.1,
                          "betas": (0.8, 0.95, 0.99), "eps": (1e-20, 1e-10)},
        "exact_mask_clip": {"lr": 2e-3, "min_lr": 5e-4, "max_lr": 5e-3, "lr_bump": 1e-3, "mask_precision": "fp32",
                            "clip_threshold": 0.4, "stochastic_rounding": False, "seed": 6},
    },
    group1={"lr": 3e-3, "min_lr": 1e-3, "max_lr": 2e-2, "lr_bump": 2e-4, "weight_decay": 0.2,
            "betas": (0.7, 0.9, 0.999)},
    drift_samples=("exact_mask_clip",),  # as Automagic's
    compiled_samples=("mask_betas_wd",),
    compiled_storage=(),
    storage=FAMILY_STORAGE,
    storage_samples=("mask_betas_wd",),
)


def with_features(entry: Entry) -> Entry:
    """``entry`` plus one generated sample per direction feature it takes (conformance/features.py):
    each runs in every check that iterates the samples (every dtype, factored states)."""
    return replace(entry, samples={**entry.samples, **feature_samples(entry)})


ALL_ENTRIES = (ADAMW, ADOPT, PRODIGY, LION, PRODIGY_LION, SIGNSGD, SIMPLIFIED_ADEMAMIX, ADAFACTOR, CAME, AUTOMAGIC,
               AUTOMAGIC_CAME)
ENTRIES = {e.name: with_features(e) for e in ALL_ENTRIES}
(ADAMW, ADOPT, PRODIGY, LION, PRODIGY_LION, SIGNSGD, SIMPLIFIED_ADEMAMIX, ADAFACTOR, CAME, AUTOMAGIC,
 AUTOMAGIC_CAME) = ENTRIES.values()
