"""fast's direction features as a user meets them: p.grad untouched, the fused-backward path,
Kourkoutas-beta buckets, and clear errors."""

import pytest
import torch

import fast
from spec.hparams.directions import FEATURES_OF

ON = {"orthograd": "iterative", "cautious": True, "grams": True, "use_atan2": True, "kourkoutas_beta": True,
      "stochastic_sign": True, "freeze_on_flip": True, "projected_adaptivity": True}


def _params(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g).requires_grad_() for s in ((6, 5), (7,), ())]


def _set_grads(ps: list[torch.Tensor], seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for p in ps:
        p.grad = torch.randn(p.shape, generator=g)


@pytest.mark.parametrize(("name", "feature"), [(n, f) for n, fs in FEATURES_OF.items() for f in fs])
def test_gradients_are_never_modified(name: str, feature: str) -> None:
    ps = _params()
    opt = getattr(fast, name)(ps, compiled_optimizer=False, weight_decay=0.1, **{feature: ON[feature]})
    for step in range(3):
        _set_grads(ps, step)
        before = [p.grad.clone() for p in ps]
        opt.step()
        assert all(torch.equal(p.grad, b) for p, b in zip(ps, before))


@pytest.mark.parametrize("name", [n for n, fs in FEATURES_OF.items() if "kourkoutas_beta" in fs])
def test_kourkoutas_step_parameter_matches_step(name: str) -> None:
    """The fused-backward path (one tensor per bucket) gives what step() gives."""
    a, b = _params(), _params()
    opt_a = getattr(fast, name)(a, compiled_optimizer=False, kourkoutas_beta=True, k_warmup_steps=2)
    opt_b = getattr(fast, name)(b, compiled_optimizer=False, kourkoutas_beta=True, k_warmup_steps=2)
    for step in range(4):
        _set_grads(a, step)
        _set_grads(b, step)
        opt_a.step()
        for p in b:
            opt_b.step_parameter(p, opt_b.param_groups[0])
        if hasattr(opt_b, "end_step"):
            opt_b.end_step()
    for x, y in zip(a, b):
        assert torch.equal(x, y)
        assert opt_a.state[x]["kourkoutas_beta2_prod"] == opt_b.state[y]["kourkoutas_beta2_prod"]


def test_kourkoutas_bucket_of_several_tensors_needs_step() -> None:
    ps = _params()
    opt = fast.AdamW(ps, compiled_optimizer=False, kourkoutas_beta=True, layer_key_fn=lambda p: p.dim() >= 1)
    _set_grads(ps, 0)
    opt.step()
    assert opt.state[ps[0]]["kourkoutas_r"] == opt.state[ps[1]]["kourkoutas_r"] != opt.state[ps[2]]["kourkoutas_r"]
    with pytest.raises(RuntimeError, match="layer_key_fn bucket holds 2 tensors"):
        opt.step_parameter(ps[0], opt.param_groups[0])


def test_layer_key_fn_without_kourkoutas_raises() -> None:
    with pytest.raises(ValueError, match="layer_key_fn"):
        fast.AdamW(_params(), layer_key_fn=lambda p: 0)


@pytest.mark.parametrize("value", [True, "disabled", "Flattened"])
def test_orthograd_takes_a_mode_name(value) -> None:
    with pytest.raises(ValueError, match=r"orthograd=.*'flattened', 'iterative'"):
        fast.Lion(_params(), orthograd=value)


def test_unsupported_feature_is_an_unknown_argument() -> None:
    with pytest.raises(TypeError, match="grams"):
        fast.Lion(_params(), grams=True)
