"""What the suite checks, per optimizer: classes, samples, states and tolerance ids.

Adding an optimizer is one ``Entry``. Every hyperparameter is moved off its default in at
least one sample (``test_registry`` enforces it); group 1 always overrides the group-level
numbers so two param groups with different hyperparameters run side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import fast
import reference
from spec.hparams import adamw as adamw_hparams


@dataclass(frozen=True)
class Entry:
    name: str
    fast: type
    reference: type
    hyperparameters: dict
    samples: dict[str, dict[str, Any]]
    group1: dict[str, Any]
    dtypes: tuple[str, ...] = ("float64", "float32", "bfloat16", "float16")
    compiled_samples: tuple[str, ...] = ()
    # Storage variants (hyperparameters added to a sample), each run on ``storage_samples`` for
    # the fp32 and bf16 parameter dtypes; ``storage_dtypes`` as the issue demands.
    storage: dict[str, dict[str, Any]] = field(default_factory=dict)
    storage_samples: tuple[str, ...] = ()
    storage_dtypes: tuple[str, ...] = ("float32", "bfloat16")

    def tol_id(self, what: str) -> str:
        return f"{self.name.lower()}.{what}"


# Every state_precision, plus factored with vector_reshape and factored_2nd over dense and
# int8 first moments; fp16 states with bf16 parameters come from ("fp16", "bfloat16").
STORAGE = {
    "fp32": {"state_precision": "fp32"},
    "bf16_sr": {"state_precision": "bf16_sr"},
    "fp16": {"state_precision": "fp16"},
    "int8_sr": {"state_precision": "int8_sr"},
    "factored": {"state_precision": "factored"},
    "factored_vector_reshape": {"state_precision": "factored", "vector_reshape": True},
    "factored_2nd": {"factored_2nd": True},
    "factored_2nd_int8": {"factored_2nd": True, "state_precision": "int8_sr", "vector_reshape": True},
}

ADAMW = Entry(
    name="AdamW",
    fast=fast.AdamW,
    reference=reference.AdamW,
    hyperparameters=adamw_hparams.ALL,
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
    },
    group1={"lr": 1.1e-2, "betas": (0.6, 0.9), "weight_decay": 0.3, "eps": 1e-5},
    compiled_samples=("default", "everything", "atan2", "beta1_zero"),
    storage=STORAGE,
    storage_samples=("betas_eps_wd", "everything", "beta1_zero", "atan2", "nesterov_coef"),
)

ENTRIES = {e.name: e for e in (ADAMW,)}
