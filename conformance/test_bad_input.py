"""Invalid constructions raise errors that name the argument, the value and the range."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fast
import reference

# (kwargs, exception, words the message must contain)
BAD = [
    ({"lr": -1e-3}, ValueError, ["lr", "-0.001", "[0, inf)"]),
    ({"lr": float("nan")}, ValueError, ["lr", "nan"]),
    ({"lr": float("inf")}, ValueError, ["lr", "inf", "[0, inf)"]),
    ({"weight_decay": float("inf")}, ValueError, ["weight_decay", "inf"]),
    ({"betas": (0.9, float("inf"))}, ValueError, ["betas"]),
    ({"lr": "0.1"}, ValueError, ["lr"]),
    ({"betas": (1.0, 0.999)}, ValueError, ["betas", "[0, 1)"]),
    ({"betas": (0.9, -0.1)}, ValueError, ["betas"]),
    ({"betas": (0.9,)}, ValueError, ["betas"]),
    ({"eps": -1e-8}, ValueError, ["eps"]),
    ({"weight_decay": -0.1}, ValueError, ["weight_decay"]),
    ({"nesterov": True, "nesterov_coef": 1.5}, ValueError, ["nesterov_coef", "[0, 1]"]),
    ({"nesterov_coef": 0.5}, ValueError, ["nesterov_coef", "nesterov"]),
    ({"nesterov": True, "betas": (0.0, 0.9)}, ValueError, ["nesterov", "betas"]),
    ({"use_atan2": "yes"}, ValueError, ["use_atan2"]),
    ({"cautious_wd": 1}, ValueError, ["cautious_wd"]),
    ({"seed": -1}, ValueError, ["seed"]),
    ({"seed": 1.5}, ValueError, ["seed"]),
    ({"stochastic_rounding": 1}, ValueError, ["stochastic_rounding"]),
    ({"amsgrad": True}, TypeError, ["amsgrad"]),
    ({"state_precision": "int2"}, ValueError, ["state_precision", "'int2'", "'int4'", "'factored'"]),
    ({"state_precision": "FP32"}, ValueError, ["state_precision"]),
    ({"state_precision": None}, ValueError, ["state_precision"]),
    ({"state_precision": "factored", "factored_2nd": True}, ValueError, ["factored_2nd", "state_precision"]),
    ({"vector_reshape": True}, ValueError, ["vector_reshape", "state_precision", "factored_2nd"]),
    ({"vector_reshape": True, "state_precision": "int8_sr"}, ValueError, ["vector_reshape"]),
    ({"factored_2nd": "yes"}, ValueError, ["factored_2nd"]),
]


@pytest.mark.parametrize(("kwargs", "exc", "words"), BAD, ids=lambda x: str(x)[:40])
def test_fast_rejects(kwargs, exc, words):
    with pytest.raises(exc) as info:
        fast.AdamW([torch.zeros(2, requires_grad=True)], **kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize(("kwargs", "exc", "words"), BAD, ids=lambda x: str(x)[:40])
def test_reference_rejects(kwargs, exc, words):
    with pytest.raises(exc) as info:
        reference.AdamW([np.zeros(2)], **kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_group_override_is_validated():
    with pytest.raises(ValueError, match="lr"):
        fast.AdamW([{"params": [torch.zeros(2, requires_grad=True)], "lr": -1.0}])
    with pytest.raises(ValueError, match="nesterov_coef"):
        fast.AdamW([{"params": [torch.zeros(2, requires_grad=True)], "nesterov_coef": 0.3}])
    opt = fast.AdamW([torch.zeros(2, requires_grad=True)])
    with pytest.raises(ValueError, match="betas"):
        opt.add_param_group({"params": [torch.zeros(3, requires_grad=True)], "betas": (0.9, 1.5)})
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize("dtype", [torch.complex64, torch.int64])
def test_non_real_float_parameters_are_rejected(dtype):
    with pytest.raises(ValueError, match="dtype"):
        fast.AdamW([torch.zeros(2, dtype=dtype)])


def test_sparse_gradients_are_rejected():
    p = torch.zeros(4, requires_grad=True)
    opt = fast.AdamW([p], compiled_optimizer=False)
    p.grad = torch.zeros(4).to_sparse()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()


def test_reference_rejects_bad_param_dtype():
    with pytest.raises(ValueError, match="param_dtype"):
        reference.AdamW([np.zeros(2)], param_dtype="int8")


def test_numbers_as_torch_takes_them():
    """NumPy scalars (a config read with NumPy, np.float32(1e-3)) are numbers: accepted, stored
    as Python floats, the same optimizer as with the Python numbers."""
    np_kw = {"lr": np.float32(1e-3), "betas": (np.float64(0.8), np.float32(0.99)), "weight_decay": np.int64(0)}
    a = fast.AdamW([torch.zeros(2, requires_grad=True)], **np_kw)
    b = reference.AdamW([np.zeros(2)], **np_kw)
    for group in (a.param_groups[0], b.param_groups[0]):
        assert type(group["lr"]) is float and group["lr"] == float(np.float32(1e-3))
        assert all(type(x) is float for x in group["betas"]) and type(group["weight_decay"]) is float
