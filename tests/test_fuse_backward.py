"""fast.fuse_backward: stepping inside the backward pass equals the normal step, frees every
gradient, clips per tensor, and refuses what it cannot do."""

import pytest
import torch

import fast


def _mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(7, 16), torch.nn.Tanh(), torch.nn.Linear(16, 5))


def _batches(n: int = 3):
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(12, 7, generator=gen), torch.randn(12, 5, generator=gen)) for _ in range(n)]


def _loss(model, batch):
    x, y = batch
    return (model(x) - y).square().mean()


CASES = [
    (fast.AdamW, {"lr": 1e-2, "weight_decay": 0.1}),
    (fast.AdamW, {"lr": 1e-2, "kourkoutas_beta": True, "k_warmup_steps": 2}),
    (fast.Adafactor, {}),
    (fast.CAME, {"lr": 1e-3}),
    (fast.Automagic, {"lr": 1e-3, "min_lr": 1e-4, "max_lr": 1e-2, "lr_bump": 1e-4}),
    (fast.Prodigy, {"lr": 1.0}),
    (fast.Lion, {"lr": 1e-3, "freeze_on_flip": True}),
]


@pytest.mark.parametrize(("cls", "kw"), CASES, ids=lambda x: getattr(x, "__name__", str(x)))
def test_equals_the_normal_step(cls, kw):
    a, b = _mlp(), _mlp()
    opt_a = cls(a.parameters(), compiled_optimizer=False, **kw)
    opt_b = cls(b.parameters(), compiled_optimizer=False, **kw)
    with fast.fuse_backward(b, opt_b) as fused:
        for batch in _batches():
            _loss(a, batch).backward()
            opt_a.step()
            opt_a.zero_grad()
            _loss(b, batch).backward()
            assert all(p.grad is None for p in b.parameters())  # freed as soon as stepped
            assert fused.end_step() == 4
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
        for key, value in opt_a.state[pa].items():
            other = opt_b.state[pb][key]
            assert torch.equal(value, other) if torch.is_tensor(value) else value == other, key
    for ga, gb in zip(opt_a.param_groups, opt_b.param_groups):  # Prodigy's sums: another order, float64
        for key, value in ga.items():
            if key != "params":
                assert gb[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value), key


def test_prodigy_needs_end_step():
    model = _mlp()
    opt = fast.Prodigy(model.parameters(), lr=1.0, compiled_optimizer=False)
    d0 = opt.param_groups[0]["d"]
    with fast.fuse_backward(model, opt):
        for batch in _batches(3):
            _loss(model, batch).backward()
    assert opt.param_groups[0]["d"] == d0  # no end_step: d never moves


def test_max_grad_norm_clips_each_tensor():
    a, b = _mlp(), _mlp()
    opt_a = fast.AdamW(a.parameters(), lr=1e-2, compiled_optimizer=False)
    opt_b = fast.AdamW(b.parameters(), lr=1e-2, compiled_optimizer=False)
    batch = _batches(1)[0]
    _loss(a, batch).mul(50).backward()
    norms = []
    for p in a.parameters():
        norms.append(float(p.grad.norm()))
        torch.nn.utils.clip_grad_norm_([p], 0.05)
    assert max(norms) > 0.05  # the threshold binds
    opt_a.step()
    with fast.fuse_backward(b, opt_b, max_grad_norm=0.05):
        _loss(b, batch).mul(50).backward()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-6, atol=1e-7)


def test_remove_restores_the_normal_backward():
    model = _mlp()
    opt = fast.AdamW(model.parameters(), lr=1e-2, compiled_optimizer=False)
    before = [p.detach().clone() for p in model.parameters()]
    fused = fast.fuse_backward(model, opt)
    fused.remove()
    _loss(model, _batches(1)[0]).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))


def test_refusals_name_the_problem():
    model = _mlp()
    opt = fast.AdamW(model.parameters(), compiled_optimizer=False)
    with pytest.raises(TypeError, match="step_parameter"):
        fast.fuse_backward(model, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="not in the optimizer"):
        fast.fuse_backward([torch.nn.Parameter(torch.zeros(3))], opt)
    w = next(model.parameters())
    fused = fast.fuse_backward([w, w], opt)  # hooked once: a tensor listed twice steps once
    assert len(fused._handles) == 1
    fused.remove()
    for bad in (0.0, -1.0, float("inf"), "1", True):
        with pytest.raises(ValueError, match="max_grad_norm"):
            fast.fuse_backward(model, opt, max_grad_norm=bad)
    with pytest.raises(ValueError, match="no tensor requires grad"):
        fast.fuse_backward([torch.zeros(2)], opt)
    bucketed = fast.AdamW(model.parameters(), kourkoutas_beta=True, layer_key_fn=lambda p: p.dim(),
                          compiled_optimizer=False)
    with pytest.raises(ValueError, match="layer_key_fn bucket"):
        fast.fuse_backward(model, bucketed)
