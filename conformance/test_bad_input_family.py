"""Invalid constructions of every optimizer after AdamW raise errors naming the argument(s)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conformance.registry import ENTRIES

# (optimizer, kwargs, words the message must contain); every case is a ValueError.
BAD = [
    ("Adopt", {"clip_lambda": -0.25}, ["clip_lambda", "[0, inf) or None"]),
    ("Adopt", {"clip_lambda": lambda k: k**0.25}, ["clip_lambda"]),
    ("Adopt", {"Simplified_AdEMAMix": True, "use_AdEMAMix": True}, ["Simplified_AdEMAMix", "use_AdEMAMix"]),
    ("Adopt", {"Simplified_AdEMAMix": True, "betas": (0.0, 0.99)}, ["Simplified_AdEMAMix", "betas"]),
    ("Adopt", {"Simplified_AdEMAMix": True, "nesterov": True}, ["Simplified_AdEMAMix", "nesterov"]),
    ("Adopt", {"Simplified_AdEMAMix": True, "use_atan2": True}, ["Simplified_AdEMAMix", "use_atan2"]),
    ("Adopt", {"t_alpha": 10}, ["t_alpha", "use_AdEMAMix"]),
    ("Adopt", {"use_AdEMAMix": True, "t_beta3": 0}, ["t_beta3", "[1, inf)"]),
    ("Adopt", {"use_AdEMAMix": True, "beta3_ema": 1.0}, ["beta3_ema", "[0, 1)"]),
    ("Adopt", {"nesterov": True, "betas": (0.0, 0.99)}, ["nesterov", "betas"]),
    ("AdamW", {"t_beta3": 5}, ["t_beta3", "use_AdEMAMix"]),
    ("AdamW", {"use_AdEMAMix": True, "alpha": -1.0}, ["alpha", "[0, inf)"]),
    ("Prodigy", {"d0": 0.0}, ["d0", "(0, inf)"]),
    ("Prodigy", {"growth_rate": 0.5}, ["growth_rate", "[1, inf]"]),  # inf (no cap) is valid
    ("Prodigy", {"slice_p": 0}, ["slice_p"]),
    ("Prodigy", {"slice_p": 2.0}, ["slice_p"]),
    ("Prodigy", {"prodigy_steps": -1}, ["prodigy_steps"]),
    ("Prodigy", {"beta3": 1.0}, ["beta3", "[0, 1)"]),
    ("Prodigy", {"d_coef": -1.0}, ["d_coef"]),
    ("Prodigy", {"Simplified_AdEMAMix": True, "use_atan2": True}, ["Simplified_AdEMAMix", "use_atan2"]),
    ("Lion", {"kappa_p": 0.5}, ["kappa_p", "[1, 2]"]),
    ("Lion", {"kappa_p": 2.5}, ["kappa_p"]),
    ("Lion", {"factored_2nd": True}, ["factored_2nd", "second moment"]),
    ("Lion", {"betas": (0.9, 1.0)}, ["betas"]),
    ("ProdigyLion", {"factored_2nd": True}, ["factored_2nd"]),
    ("ProdigyLion", {"kappa_p": 3.0}, ["kappa_p"]),
    ("ProdigyLion", {"d0": -1.0}, ["d0"]),
    ("SignSGD", {"momentum": 1.0}, ["momentum", "[0, 1)"]),
    ("SignSGD", {"nesterov": True, "momentum": 0.0}, ["nesterov", "momentum"]),
    ("SignSGD", {"Simplified_AdEMAMix": True, "momentum": 0.0}, ["Simplified_AdEMAMix", "momentum"]),
    ("SignSGD", {"Simplified_AdEMAMix": True, "normed_momentum": True}, ["Simplified_AdEMAMix", "normed_momentum"]),
    ("SignSGD", {"factored_2nd": True}, ["factored_2nd"]),
    ("SimplifiedAdEMAMix", {"betas": (0.0, 0.999)}, ["betas"]),
    ("SimplifiedAdEMAMix", {"min_beta1": 0.5}, ["min_beta1", "beta1_warmup"]),
    ("SimplifiedAdEMAMix", {"beta1_warmup": 0}, ["beta1_warmup"]),
    ("SimplifiedAdEMAMix", {"alpha_grad": -1.0}, ["alpha_grad"]),
    ("Adafactor", {"lr": None, "relative_step": False}, ["lr=None", "relative_step=False"]),
    ("Adafactor", {"lr": 1e-3}, ["lr=0.001", "relative_step=True"]),
    ("Adafactor", {"lr": 1e-3, "relative_step": False, "warmup_init": True}, ["warmup_init", "relative_step"]),
    ("Adafactor", {"clip_threshold": 0.0}, ["clip_threshold", "(0, inf)"]),
    ("Adafactor", {"decay_rate": 0.5}, ["decay_rate", "(-inf, 0]"]),
    ("Adafactor", {"beta1": 1.0}, ["beta1", "[0, 1)"]),
    ("Adafactor", {"eps": (1e-30,)}, ["eps", "pair"]),
    ("Adafactor", {"eps": (-1.0, 1e-3)}, ["eps", "[0, inf)"]),
    ("Adafactor", {"weight_decay": -0.1}, ["weight_decay"]),
    ("Adafactor", {"state_precision": "int2"}, ["state_precision", "'int2'"]),
    ("CAME", {"betas": (0.9, 0.999)}, ["betas", "triple"]),
    ("CAME", {"betas": (0.9, 0.999, 1.0)}, ["betas", "[0, 1)"]),
    ("CAME", {"eps": (1e-30, -1.0)}, ["eps", "[0, inf)"]),
    ("CAME", {"clip_threshold": -1.0}, ["clip_threshold", "(0, inf)"]),
    ("CAME", {"lr": None}, ["lr", "None"]),
    ("Automagic", {"lr": 2e-3}, ["min_lr", "lr=0.002", "max_lr=0.001"]),
    ("Automagic", {"lr": 1e-8}, ["min_lr=1e-07", "lr=1e-08"]),
    ("Automagic", {"lr": 0.0}, ["lr", "(0, inf)"]),
    ("Automagic", {"min_lr": 0.0}, ["min_lr", "(0, inf)"]),  # ai-toolkit's absmax code decodes to 0: frozen
    ("Automagic", {"min_lr": 1e-2, "max_lr": 1e-3}, ["min_lr=0.01", "max_lr=0.001"]),
    ("Automagic", {"max_lr": float("inf")}, ["max_lr", "(0, inf)"]),
    ("Automagic", {"lr_bump": -1e-6}, ["lr_bump", "[0, inf)"]),
    ("Automagic", {"mask_precision": "int8"}, ["mask_precision", "'int8'", "'int8_sr'", "'fp32'"]),
    ("Automagic", {"beta2": 1.0}, ["beta2", "[0, 1)"]),
    ("Automagic", {"clip_threshold": 0.0}, ["clip_threshold"]),
    ("AutomagicCAME", {"betas": (0.9, 0.999, 1.0)}, ["betas", "[0, 1)"]),
    ("AutomagicCAME", {"mask_precision": "fp16"}, ["mask_precision", "'fp16'"]),
    ("AutomagicCAME", {"lr": 5e-3, "max_lr": 1e-3}, ["lr=0.005", "max_lr=0.001"]),
]


def _ids(case):
    return f"{case[0]}-{'-'.join(case[1])}"


@pytest.mark.parametrize("case", BAD, ids=_ids)
def test_fast_rejects(case):
    name, kwargs, words = case
    with pytest.raises(ValueError) as info:
        ENTRIES[name].fast([torch.zeros(2, requires_grad=True)], **kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize("case", BAD, ids=_ids)
def test_reference_rejects(case):
    name, kwargs, words = case
    with pytest.raises(ValueError) as info:
        ENTRIES[name].reference([np.zeros(2)], **kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


# ai-toolkit's keywords for features this library does not have are not silently ignored.
UNKNOWN = [("Automagic", "do_paramiter_swapping"), ("Automagic", "orthograd"), ("AutomagicCAME", "cautious"),
           ("Adafactor", "cautious"), ("CAME", "amsgrad")]


@pytest.mark.parametrize(("name", "key"), UNKNOWN, ids=str)
def test_unknown_keywords_are_errors(name, key):
    with pytest.raises(TypeError, match=key):
        ENTRIES[name].fast([torch.zeros(2, requires_grad=True)], **{key: True})
    with pytest.raises(TypeError, match=key):
        ENTRIES[name].reference([np.zeros(2)], **{key: True})


@pytest.mark.parametrize(("key", "value"), [("seed", 3), ("stochastic_rounding", False), ("compiled_optimizer", False)])
def test_optimizer_wide_arguments_are_not_per_group(key, value):
    """seed, stochastic_rounding and compiled_optimizer belong to the optimizer: a param group's
    own value would be silently ignored, so it is an error."""
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match=f"{key}=.*one setting of the whole optimizer"):
        ENTRIES["AdamW"].fast([{"params": [p], key: value}])
    with pytest.raises(ValueError, match=key):
        ENTRIES["AdamW"].reference([{"params": [np.zeros(2)], key: value}])
    ENTRIES["AdamW"].fast([{"params": [p], key: ENTRIES["AdamW"].fast([p]).__dict__[key]}])  # its own value: fine


SHARED = [("Prodigy", "d0", 1e-3), ("Prodigy", "betas", (0.5, 0.9)), ("Prodigy", "slice_p", 2),
          ("ProdigyLion", "growth_rate", 2.0), ("Prodigy", "use_bias_correction", True)]


@pytest.mark.parametrize(("name", "key", "value"), SHARED, ids=str)
def test_shared_hyperparameters_cannot_differ_per_group(name, key, value):
    """Prodigy's d is one estimate for the whole optimizer: what it reads may not vary per group."""
    entry = ENTRIES[name]
    with pytest.raises(ValueError, match=f"{key}.*shared by all param groups"):
        entry.fast([{"params": [torch.zeros(2, requires_grad=True)]},
                    {"params": [torch.zeros(3, requires_grad=True)], key: value}])
    with pytest.raises(ValueError, match=f"{key}.*shared by all param groups"):
        entry.reference([{"params": [np.zeros(2)]}, {"params": [np.zeros(3)], key: value}])
