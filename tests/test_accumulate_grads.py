"""fast.accumulate_grads: micro-batch gradients summed in fp32 for bf16 / fp16 parameters.

The core demonstration: 256 micro-batches whose gradients are about 1/256 of their sum. Autograd
alone adds them into a bf16 .grad and drifts by tens of ulps (each addition rounds to the running
sum's grid, the same way every time for a steady gradient); the handle sums them in fp32 (exact
here: bf16 values within a 2^18 range fit fp32's 24 bits) and rounds once, so its error is under
one bf16 ulp ('sr', unbiased) or at most half of one ('nearest'), and 'fp32' hands the sum itself.
"""

from __future__ import annotations

import doctest

import pytest
import torch

import fast
import fast.accumulate as acc_mod
from fast.accumulate import ROUNDING_PURPOSE, stochastic_round_fp16
from spec.counter_rng import FIRST_STATE_PURPOSE, draw, stream_key

N_MICRO, WIDTH = 256, 1024


def _micro_grads(n_micro: int = N_MICRO, width: int = WIDTH, noise: float = 0.1, seed: int = 0) -> list[torch.Tensor]:
    """Per-micro-batch bf16 gradients: a steady per-element gradient of about 2^-8 with 10% noise."""
    g = torch.Generator().manual_seed(seed)
    base = (torch.rand(width, generator=g) + 0.5) * 2**-8
    return [(base * (1 + noise * torch.randn(width, generator=g))).to(torch.bfloat16) for _ in range(n_micro)]


def _feed(p: torch.Tensor, grads: list[torch.Tensor]) -> None:
    """One backward per micro-batch; d/dp (p * c).sum() = c exactly, so p receives exactly ``grads``."""
    for c in grads:
        (p * c).sum().backward()


def _exact(grads: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([c.double() for c in grads]).sum(0)


def _bf16_ulp(x: torch.Tensor) -> torch.Tensor:
    """The bf16 spacing at |x| (8 significant bits)."""
    return 2.0 ** (torch.floor(torch.log2(x.abs())) - 7)


def _accumulated(grads: list[torch.Tensor], dtype: torch.dtype = torch.bfloat16, **kw) -> torch.Tensor:
    p = torch.nn.Parameter(torch.zeros(grads[0].shape, dtype=dtype))
    handle = fast.accumulate_grads([p], **kw)
    _feed(p, grads)
    assert handle.write_grads() == len(grads)
    g = p.grad.clone()
    handle.remove()
    return g


# -- the core demonstration ---------------------------------------------------------------------------
def test_plain_bf16_accumulation_drifts_and_the_helper_does_not():
    grads = _micro_grads()
    exact = _exact(grads)
    ulp = _bf16_ulp(exact)

    plain = torch.nn.Parameter(torch.zeros(WIDTH, dtype=torch.bfloat16))
    _feed(plain, grads)
    plain_err = (plain.grad.double() - exact).abs() / ulp
    # measured: max 30.6 ulps (15% of the sum), median 6.5 ulps
    assert plain_err.max() > 16 and plain_err.median() > 3

    sr = _accumulated(grads, mode="sr").double()
    # one stochastic rounding of the exact sum: strictly inside the bracketing bf16 ulp (measured 0.965)
    assert ((sr - exact).abs() / ulp).max() < 1.0

    nearest = _accumulated(grads, mode="nearest").double()
    assert ((nearest - exact).abs() / ulp).max() <= 0.5

    fp32 = _accumulated(grads, mode="fp32")
    assert fp32.dtype == torch.float32
    # fp32 sequential sum: at most (n - 1) roundings of 2^-24 relative to the partial sums (measured: exact)
    bound = (N_MICRO - 1) * 2.0**-24 * torch.stack([c.double().abs() for c in grads]).sum(0)
    assert ((fp32.double() - exact).abs() <= bound).all()
    assert torch.equal(fp32.double(), exact)


def test_stochastic_rounding_is_unbiased_over_seeds():
    grads = _micro_grads(n_micro=64)
    exact = _exact(grads)
    ulp = _bf16_ulp(exact)
    seeds = 64
    errs = torch.stack([(_accumulated(grads, mode="sr", seed=s).double() - exact) / ulp for s in range(seeds)])
    assert errs.abs().max() < 1.0
    # each error lies in (-1, 1) ulp with mean 0 (std <= 0.5): the mean of 64 has std <= 1/16 per element,
    # and of all 64 x 1024 about 0.002; measured 0.20 and 8e-4
    assert (errs.mean(0).abs() < 0.35).all()
    assert abs(errs.mean()) < 0.01
    # the per-seed results really differ: the mean is not one of them
    assert (errs.mean(0).abs() < errs.abs().mean(0)).float().mean() > 0.9


# -- the random source ------------------------------------------------------------------------------
def test_same_seed_is_bit_identical_and_another_seed_differs():
    grads = _micro_grads(n_micro=16)
    a, b = _accumulated(grads, mode="sr", seed=7), _accumulated(grads, mode="sr", seed=7)
    c = _accumulated(grads, mode="sr", seed=8)
    assert torch.equal(a.view(torch.int16), b.view(torch.int16))
    assert not torch.equal(a, c)


def test_each_hand_over_draws_afresh_and_step_resumes_a_stream():
    grads = _micro_grads(n_micro=16, width=256)
    p = torch.nn.Parameter(torch.zeros(256, dtype=torch.bfloat16))
    handle = fast.accumulate_grads([p], mode="sr", seed=3)
    outs = []
    for _ in range(2):
        _feed(p, grads)
        handle.write_grads()
        outs.append(p.grad.clone())
        p.grad = None
    assert handle.step == 2 and not torch.equal(outs[0], outs[1])
    handle.remove()
    resumed = torch.nn.Parameter(torch.zeros(256, dtype=torch.bfloat16))
    with fast.accumulate_grads([resumed], mode="sr", seed=3) as h:
        h.step = 1
        _feed(resumed, grads)
        h.write_grads()
    assert torch.equal(resumed.grad, outs[1])


def _spec_sr_bf16(x: torch.Tensor, key: int) -> list[int]:
    """The spec's construction element by element: bits(out) = (bits(x) + draw(key, i)) & 0xFFFF0000."""
    bits = [b & 0xFFFFFFFF for b in x.reshape(-1).view(torch.int32).tolist()]
    return [((b + draw(key, i)) & 0xFFFF0000) >> 16 for i, b in enumerate(bits)]


def test_draws_are_the_spec_streams_across_chunks(monkeypatch):
    monkeypatch.setattr(acc_mod, "CHUNK", 7)  # chunk boundaries inside the tensors
    g = torch.Generator().manual_seed(1)
    ps = [torch.nn.Parameter(torch.zeros(s, dtype=torch.bfloat16)) for s in ((5, 6), (11,))]
    handle = fast.accumulate_grads(ps, mode="sr", seed=12345)
    sums = [torch.zeros(p.shape) for p in ps]
    for _ in range(3):
        cs = [torch.randn(p.shape, generator=g).to(torch.bfloat16) for p in ps]
        sum(((p * c).sum() for p, c in zip(ps, cs)), torch.zeros(())).backward()
        for s, c in zip(sums, cs):
            s.add_(c)
    handle.write_grads()
    for pos, (p, s) in enumerate(zip(ps, sums)):
        expected = _spec_sr_bf16(s, stream_key(12345, pos, 0, ROUNDING_PURPOSE))
        assert [b & 0xFFFF for b in p.grad.reshape(-1).view(torch.int16).tolist()] == expected


def test_rounding_purpose_is_used_by_no_optimizer():
    for name in fast.__all__:
        cls = getattr(fast, name)
        if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer):
            assert FIRST_STATE_PURPOSE + len(cls.SLOTS) <= ROUNDING_PURPOSE, name


# -- fp16 -------------------------------------------------------------------------------------------
def test_fp16_stochastic_rounding_brackets_and_is_unbiased():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4096, generator=g) * torch.exp2(torch.randint(-14, 13, (4096,), generator=g).float())
    near = x.to(torch.float16)
    # the two fp16 neighbours, from torch.nextafter (not the bit step the implementation takes)
    lo = torch.where(near.float() <= x, near, torch.nextafter(near, torch.full_like(near, -float("inf")))).float()
    hi = torch.where(near.float() >= x, near, torch.nextafter(near, torch.full_like(near, float("inf")))).float()
    draws = torch.stack([
        stochastic_round_fp16(x, torch.randint(0, 1 << 16, x.shape, generator=g, dtype=torch.int32)).float()
        for _ in range(256)])
    assert ((draws == lo) | (draws == hi)).all()
    spacing = hi - lo
    # 256 draws of a two-point distribution one spacing wide: std <= spacing / 32
    assert ((draws.mean(0) - x).abs() <= spacing / 6).all()
    special = torch.tensor([0.0, -0.0, 1.0, -65504.0, 70000.0, -1e6, float("inf"), float("nan"), 65510.0])
    out = stochastic_round_fp16(special, torch.full(special.shape, 65535, dtype=torch.int32))
    assert out[:4].tolist() == [0.0, -0.0, 1.0, -65504.0] and torch.signbit(out[1])
    assert out[4] == float("inf") and out[5] == -float("inf") and out[6] == float("inf")
    assert torch.isnan(out[7]) and out[8] == 65504.0


def test_fp16_parameter_modes():
    grads = [c.to(torch.float16) for c in _micro_grads(n_micro=64)]
    exact = _exact(grads)
    spacing = 2.0 ** (torch.floor(torch.log2(exact.abs())) - 10)
    sr = _accumulated(grads, dtype=torch.float16, mode="sr")
    assert sr.dtype == torch.float16 and ((sr.double() - exact).abs() < spacing).all()
    nearest = _accumulated(grads, dtype=torch.float16, mode="nearest")
    assert ((nearest.double() - exact).abs() <= spacing / 2).all()
    assert torch.equal(_accumulated(grads, dtype=torch.float16, mode="fp32").double(), exact)


# -- optimizers ---------------------------------------------------------------------------------------
OPTIMIZERS = [n for n in fast.__all__ if isinstance(getattr(fast, n), type)
              and issubclass(getattr(fast, n), torch.optim.Optimizer)]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_fast_optimizers_read_fp32_grads_of_bf16_params(name):
    """'fp32' hands the optimizer an fp32 gradient: with values that bf16 holds exactly, the steps
    must be those of the bf16 gradient, bit for bit."""
    results = []
    for grad_dtype in (torch.bfloat16, torch.float32):
        g = torch.Generator().manual_seed(1)
        ps = [torch.nn.Parameter(torch.randn(s, generator=g).to(torch.bfloat16)) for s in ((6, 5), (5,))]
        for p in ps:
            p.grad_dtype = grad_dtype
        opt = getattr(fast, name)(ps, compiled_optimizer=False)
        for _ in range(3):
            for p in ps:
                p.grad = torch.randn(p.shape, generator=g).to(torch.bfloat16).to(grad_dtype)
            opt.step()
        results.append([p.detach().clone() for p in ps])
    assert all(torch.equal(a, b) for a, b in zip(*results))


def _linear(seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    return torch.nn.Linear(6, 3).to(torch.bfloat16)


def _batches(steps: int, micro: int) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    g = torch.Generator().manual_seed(5)
    return [[(torch.randn(4, 6, generator=g).to(torch.bfloat16), torch.randn(4, 3, generator=g).to(torch.bfloat16))
             for _ in range(micro)] for _ in range(steps)]


def _loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (model(x) - y).square().mean()


def _micro_batch_grads(model: torch.nn.Module, batch) -> list[list[torch.Tensor]]:
    """Each micro-batch's own gradients (bf16, as autograd makes them), from a plain copy of ``model``."""
    out = []
    for x, y in batch:
        model.zero_grad(set_to_none=True)
        _loss(model, x, y).backward()
        out.append([p.grad.clone() for p in model.parameters()])
    model.zero_grad(set_to_none=True)
    return out


def _fp32_sum(grads: list[torch.Tensor]) -> torch.Tensor:
    """The handle's summation order: the first gradient converted, then each added in fp32."""
    s = grads[0].float()
    for g in grads[1:]:
        s = s + g
    return s


def _train_twins(make_opt, mode: str, steps: int = 3, micro: int = 4, **kw):
    """The handle's model ('fp32' mode) and a twin fed the expected fp32 gradient by hand."""
    model, twin = _linear(), _linear()
    opt, twin_opt = make_opt(model.parameters()), make_opt(twin.parameters())
    handle = fast.accumulate_grads(model, mode=mode, seed=9, **kw)
    for batch in _batches(steps, micro):
        per_micro = _micro_batch_grads(twin, batch)
        for x, y in batch:
            _loss(model, x, y).backward()
            assert all(p.grad is None for p in model.parameters())
        assert handle.write_grads() == micro
        for i, p in enumerate(twin.parameters()):
            expected = _fp32_sum([m[i] for m in per_micro]) * kw.get("scale", 1.0)
            if kw.get("average"):
                expected = expected / micro
            p.grad_dtype = torch.float32
            p.grad = expected
        opt.step()
        twin_opt.step()
        opt.zero_grad()
        twin_opt.zero_grad()
    handle.remove()
    return model, twin


def test_fast_adamw_end_to_end_fp32_mode_matches_the_exact_mean():
    model, twin = _train_twins(lambda ps: fast.AdamW(ps, lr=1e-2, compiled_optimizer=False), "fp32",
                                  average=True)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q)
    assert model.weight.grad_dtype == torch.bfloat16  # restored


def test_fast_automagic_end_to_end_fp32_mode():
    model, twin = _train_twins(lambda ps: fast.Automagic(ps, lr=1e-3, compiled_optimizer=False), "fp32",
                                  scale=0.5)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q)


def test_fast_adafactor_end_to_end_sr_mode_against_the_spec_rounding():
    """'sr' end to end: the handed gradient is the spec's stochastic rounding of the fp32 mean with
    the (seed, position, step) stream, and the optimizer steps from it."""
    model, twin = _linear(), _linear()
    opt = fast.Adafactor(model.parameters(), compiled_optimizer=False)
    twin_opt = fast.Adafactor(twin.parameters(), compiled_optimizer=False)
    handle = fast.accumulate_grads(model, mode="sr", seed=9, average=True)
    for step, batch in enumerate(_batches(3, 4)):
        per_micro = _micro_batch_grads(twin, batch)
        for x, y in batch:
            _loss(model, x, y).backward()
        handle.write_grads()
        for pos, (p, q) in enumerate(zip(model.parameters(), twin.parameters())):
            mean = _fp32_sum([m[pos] for m in per_micro]) / 4
            exact = torch.stack([m[pos].double() for m in per_micro]).sum(0) / 4
            assert ((p.grad.double() - exact).abs() < _bf16_ulp(exact)).all()
            bits = _spec_sr_bf16(mean, stream_key(9, pos, step, ROUNDING_PURPOSE))
            q.grad = torch.tensor([b - (1 << 16) if b >= 1 << 15 else b for b in bits],
                                  dtype=torch.int16).view(torch.bfloat16).view(q.shape)
            assert torch.equal(p.grad, q.grad)
        opt.step()
        twin_opt.step()
        opt.zero_grad()
        twin_opt.zero_grad()
        for p, q in zip(model.parameters(), twin.parameters()):
            assert torch.equal(p, q)
    handle.remove()


def test_torch_sgd_end_to_end():
    # lr = 1/4: lr * grad is exact, so the step is one rounding of p - lr * grad
    for mode in ("fp32", "sr"):
        model = _linear()
        opt = torch.optim.SGD(model.parameters(), lr=0.25)
        with fast.accumulate_grads(model, mode=mode, average=True) as handle:
            for batch in _batches(2, 4):
                for x, y in batch:
                    _loss(model, x, y).backward()
                handle.write_grads()
                expected = [(p.float() - 0.25 * p.grad.float()).to(torch.bfloat16) for p in model.parameters()]
                assert all(p.grad.dtype == (torch.float32 if mode == "fp32" else torch.bfloat16)
                           for p in model.parameters())
                opt.step()
                opt.zero_grad()
                assert all(torch.equal(p, e) for p, e in zip(model.parameters(), expected))


def test_torch_adamw_needs_sr_mode():
    """As documented: torch.optim.AdamW refuses an fp32 gradient on a bf16 parameter; 'sr' works."""
    model = _linear()
    x, y = _batches(1, 1)[0][0]
    with fast.accumulate_grads(model, mode="fp32") as handle:
        _loss(model, x, y).backward()
        handle.write_grads()
        with pytest.raises(RuntimeError):
            torch.optim.AdamW(model.parameters(), lr=1e-3).step()
    model = _linear()
    before = model.weight.detach().clone()
    with fast.accumulate_grads(model, mode="sr") as handle:
        _loss(model, x, y).backward()
        handle.write_grads()
        torch.optim.AdamW(model.parameters(), lr=1e-2).step()
    assert not torch.equal(model.weight, before)


# -- lifecycle ------------------------------------------------------------------------------------------
def test_remove_restores_plain_autograd_accumulation():
    grads = _micro_grads(n_micro=3, width=64)
    p = torch.nn.Parameter(torch.zeros(64, dtype=torch.bfloat16))
    handle = fast.accumulate_grads([p])
    assert p.grad_dtype == torch.float32
    _feed(p, grads[:1])
    handle.remove()  # the pending sum is dropped
    handle.remove()  # twice is fine
    assert handle.removed and p.grad is None and p.grad_dtype == torch.bfloat16
    _feed(p, grads)
    assert p.grad.dtype == torch.bfloat16
    assert torch.equal(p.grad, (grads[0] + grads[1]) + grads[2])  # bf16 additions, as without the handle
    with pytest.raises(RuntimeError, match="removed"):
        handle.write_grads()


def test_remove_rounds_a_handed_fp32_grad_to_the_param_dtype():
    p = torch.nn.Parameter(torch.zeros(3, dtype=torch.bfloat16))
    handle = fast.accumulate_grads([p])
    (p * torch.tensor([1.0, 2.0, 3.0], dtype=torch.bfloat16)).sum().backward()
    handle.write_grads()
    assert p.grad.dtype == torch.float32
    handle.remove()
    assert p.grad.dtype == torch.bfloat16 and p.grad.tolist() == [1.0, 2.0, 3.0]


def test_context_manager_removes_on_exit_and_on_error():
    p = torch.nn.Parameter(torch.zeros(4, dtype=torch.bfloat16))
    with fast.accumulate_grads([p], mode="sr") as handle:
        p.sum().backward()
        assert p.grad is None and handle.micro_batches == 1
    assert handle.removed
    p.sum().backward()
    assert p.grad is not None
    p.grad = None
    with pytest.raises(KeyError), fast.accumulate_grads([p], mode="sr") as handle:
        raise KeyError("boom")
    assert handle.removed
    with pytest.raises(RuntimeError, match="removed"), handle:
        pass


def test_average_and_scale():
    cs = [torch.full((2,), v, dtype=torch.bfloat16) for v in (1.0, 2.0, 3.0, 6.0)]
    p = torch.nn.Parameter(torch.zeros(2, dtype=torch.bfloat16))
    for kw, expected in (({}, 12.0), ({"average": True}, 3.0), ({"scale": 0.5}, 6.0),
                         ({"average": True, "scale": 2.0}, 6.0)):
        with fast.accumulate_grads([p], **kw) as handle:
            _feed(p, cs)
            assert handle.micro_batches == 4
            assert handle.write_grads() == 4 and handle.micro_batches == 0
            assert p.grad.tolist() == [expected, expected], kw
            p.grad = None
            _feed(p, cs)
            handle.write_grads(scale=0.25)  # this call only
            assert p.grad.tolist() == [12.0 * 0.25 / (4 if kw.get("average") else 1)] * 2
            p.grad = None


def test_write_grads_without_micro_batches_raises():
    p = torch.nn.Parameter(torch.zeros(2, dtype=torch.bfloat16))
    handle = fast.accumulate_grads([p])
    with pytest.raises(RuntimeError, match="no micro-batch"):
        handle.write_grads()
    p.sum().backward()
    handle.write_grads()
    with pytest.raises(RuntimeError, match="no micro-batch"):
        handle.write_grads()
    with pytest.raises(ValueError, match="scale=0"):
        handle.write_grads(scale=0)


def test_bad_arguments_name_the_argument():
    p = torch.nn.Parameter(torch.zeros(2, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match=r"mode='bf16': expected one of 'fp32', 'sr', 'nearest'"):
        fast.accumulate_grads([p], mode="bf16")
    with pytest.raises(ValueError, match="mode=None"):
        fast.accumulate_grads([p], mode=None)
    for seed in ("1", True, 1.0):
        with pytest.raises(TypeError, match="seed="):
            fast.accumulate_grads([p], seed=seed)
    with pytest.raises(TypeError, match="average="):
        fast.accumulate_grads([p], average=1)
    for scale in (float("nan"), float("inf"), 0.0, "2", True):
        with pytest.raises(ValueError, match="scale="):
            fast.accumulate_grads([p], scale=scale)
    with pytest.raises(ValueError, match="params_or_model: no tensor requires grad"):
        fast.accumulate_grads(torch.nn.Linear(2, 2).requires_grad_(False))
    with pytest.raises(ValueError, match="params_or_model: no tensor requires grad"):
        fast.accumulate_grads([])
    with pytest.raises(ValueError, match=r"params_or_model: item 0 .* not a leaf"):
        fast.accumulate_grads([p * 2])
    with pytest.raises(TypeError, match="params_or_model: item 1 is a str"):
        fast.accumulate_grads([p, "w"])
    with pytest.raises(TypeError, match=r"params_or_model: expected an nn\.Module"):
        fast.accumulate_grads(5)
    assert p.grad_dtype == torch.bfloat16 and p._post_accumulate_grad_hooks in (None, {})


def test_fp32_mode_is_refused_without_grad_dtype(monkeypatch):
    monkeypatch.setattr(acc_mod, "HAS_GRAD_DTYPE", False)
    bf16 = torch.nn.Parameter(torch.zeros(2, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match=r"mode='fp32'.*valid choices here: 'sr', 'nearest'"):
        fast.accumulate_grads([bf16])
    fast.accumulate_grads([torch.nn.Parameter(torch.zeros(2))]).remove()  # nothing needs grad_dtype


def test_inputs_param_groups_duplicates_and_frozen_tensors():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 1)).to(torch.bfloat16)
    model[0].bias.requires_grad_(False)
    opt = fast.AdamW(model.parameters(), compiled_optimizer=False)
    for source in (model, opt.param_groups, [model[1].weight, model[1].weight, model[0].weight, model[1].bias],
                   model[1].weight):
        with fast.accumulate_grads(source) as handle:
            model(torch.ones(2, 3, dtype=torch.bfloat16)).sum().backward()
            assert handle.write_grads() == 1
            handled = [p for p in model.parameters() if p.grad is not None and p.grad.dtype == torch.float32]
            assert len(handled) == len(handle._params)
            model.zero_grad()
    handle = fast.accumulate_grads(model[1].weight)
    assert "params=1" in repr(handle)
    handle.remove()
    assert "removed" in repr(handle)


# -- mixed dtypes and missing gradients -----------------------------------------------------------------
@pytest.mark.parametrize("mode", ["fp32", "sr", "nearest"])
def test_full_precision_params_are_summed_in_their_dtype_and_handed_unchanged(mode):
    g = torch.Generator().manual_seed(2)
    low = torch.nn.Parameter(torch.zeros(8, dtype=torch.bfloat16))
    full = torch.nn.Parameter(torch.zeros(8))
    double = torch.nn.Parameter(torch.zeros(8, dtype=torch.float64))
    cs = [[torch.randn(8, generator=g).to(t.dtype) for t in (low, full, double)] for _ in range(5)]
    plain = [torch.nn.Parameter(torch.zeros(8, dtype=t.dtype)) for t in (full, double)]
    for c in cs:
        sum((q * ci).sum().to(torch.float64) for q, ci in zip(plain, c[1:])).backward()
    with fast.accumulate_grads([low, full, double], mode=mode, average=True) as handle:
        for c in cs:
            sum((t * ci).sum().to(torch.float64) for t, ci in zip((low, full, double), c)).backward()
            assert low.grad is None and full.grad is None and double.grad is None
        handle.write_grads()
        assert full.grad.dtype == torch.float32 and double.grad.dtype == torch.float64
        # the same fp32 / fp64 additions autograd makes, then the mean
        assert torch.equal(full.grad, plain[0].grad / 5) and torch.equal(double.grad, plain[1].grad / 5)
        assert full.grad_dtype == torch.float32 and low.grad.dtype == (torch.float32 if mode == "fp32"
                                                                        else torch.bfloat16)


def test_params_missing_from_some_micro_batches():
    a = torch.nn.Parameter(torch.ones(3, dtype=torch.bfloat16))
    b = torch.nn.Parameter(torch.ones(3, dtype=torch.bfloat16))
    unused = torch.nn.Parameter(torch.ones(3, dtype=torch.bfloat16))
    opt = fast.AdamW([a, b, unused], lr=0.1, compiled_optimizer=False)
    with fast.accumulate_grads([a, b, unused], average=True) as handle:
        (a * 2).sum().backward()  # only a
        ((a * 4).sum() + (b * 6).sum() + (b * 2).sum()).backward()  # b twice in one graph: one gradient
        assert handle.micro_batches == 2
        handle.write_grads()
        assert a.grad.tolist() == [3.0] * 3 and b.grad.tolist() == [4.0] * 3  # b's missing one counts as 0
        assert unused.grad is None
        opt.step()
    assert unused not in opt.state and torch.equal(unused, torch.ones(3, dtype=torch.bfloat16))
    assert not torch.equal(a, torch.ones(3, dtype=torch.bfloat16))


def test_a_grad_present_at_creation_joins_the_next_sum():
    p = torch.nn.Parameter(torch.zeros(2, dtype=torch.bfloat16))
    p.grad = torch.tensor([1.0, 1.0], dtype=torch.bfloat16)
    with fast.accumulate_grads([p]) as handle:
        assert p.grad.dtype == torch.float32  # converted so that grad_dtype could change
        (p * 2).sum().backward()
        handle.write_grads()
        assert p.grad.tolist() == [3.0, 3.0]


def test_sparse_gradients_are_refused():
    emb = torch.nn.Embedding(5, 2, sparse=True)
    with fast.accumulate_grads(emb), pytest.raises(RuntimeError, match="dense gradients only"):
        emb(torch.tensor([1, 2])).sum().backward()


def test_docstring_examples_run():
    result = doctest.testmod(acc_mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_fp32_grads_reach_the_compiled_kernels():
    """compiled_optimizer=True (the default): the fp32 gradients of bf16 parameters pass through
    the compiled step (dynamo copies a parameter with its grad unless the kernel gets it
    detached) and give the same step as the same fp32 gradients assigned directly."""
    torch.manual_seed(0)
    models = [torch.nn.Linear(16, 4).to(torch.bfloat16) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    xs = [torch.randn(8, 16, dtype=torch.bfloat16) for _ in range(3)]
    opts = [fast.AdamW(m.parameters(), lr=1e-2, seed=1) for m in models]
    with fast.accumulate_grads(models[0]) as acc:
        for x in xs:
            models[0](x).float().square().mean().backward()
        acc.write_grads()
        grads = [p.grad.clone() for p in models[0].parameters()]
        assert all(g.dtype == torch.float32 for g in grads)
        opts[0].step()
    for p, g in zip(models[1].parameters(), grads):
        p.grad_dtype = torch.float32
        p.grad = g.clone()
    opts[1].step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.equal(a, b)
