"""Automagic's state as a user meets it: bytes per parameter, what the state_dict holds, exact
resume with either mask, and the 8-bit mask keeping bumps far below its resolution while never
leaving its bounds."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import fast
from fast import mask_code
from spec.storage_layout import mask_code as spec_mask_code
from spec.storage_layout import mask_levels

MASK_BYTES = 1.0 + 1 / 8  # the code and the polarity bit


def state_bytes(opt: torch.optim.Optimizer) -> int:
    return sum(v.numel() * v.element_size() for st in opt.state.values() for v in st.values()
               if torch.is_tensor(v) and v.dim() > 0)


def step_with(params, opt, grads):
    for p, g in zip(params, grads):
        p.grad = g.to(p.dtype)
    opt.step()


@pytest.mark.parametrize("cls", [fast.Automagic, fast.AutomagicCAME])
def test_state_bytes_per_parameter(cls):
    """Automagic: the mask, the polarity bits and the factors, at most 1.15 B/param for a layer of
    a fine-tuned model (1.125 plus (d1 + d2) / (d1 d2) x 4 for the factors and a bias's dense
    second moment; ai-toolkit: 2 B for its mask plus a bool polarity and the factors);
    AutomagicCAME adds its first moment in state_precision (int8_sr: 1 byte and the block scales)."""
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(1024, 768)), torch.nn.Parameter(torch.randn(768))]
    n = sum(p.numel() for p in params)
    extra = {"state_precision": "int8_sr"} if cls is fast.AutomagicCAME else {}
    opt = cls(params, compiled_optimizer=False, **extra)
    step_with(params, opt, [torch.randn_like(p) for p in params])
    per_param = state_bytes(opt) / n
    w = opt.state[params[0]]
    assert w["lr_mask"].dtype == torch.uint8 and w["lr_mask"].numel() == params[0].numel()
    assert w["last_polarity"].dtype == torch.uint8 and w["last_polarity"].numel() == params[0].numel() // 8
    if cls is fast.Automagic:
        assert MASK_BYTES < per_param <= 1.15, per_param
    else:
        assert MASK_BYTES + 1.0 < per_param <= MASK_BYTES + 1.05, per_param
    exact = cls(params, mask_precision="fp32", compiled_optimizer=False)
    step_with(params, exact, [torch.randn_like(p) for p in params])
    assert exact.state[params[0]]["lr_mask"].dtype == torch.float32


@pytest.mark.parametrize("mask_precision", ["int8_sr", "fp32"])
@pytest.mark.parametrize("cls", [fast.Automagic, fast.AutomagicCAME])
def test_resume_mid_run_is_bit_identical(cls, mask_precision):
    """The state_dict holds the codes (or the fp32 mask), the packed polarity and the bounds the
    codes were written with; a rebuilt optimizer continues bit for bit (bf16 parameters, SR)."""
    torch.manual_seed(1)
    values = [torch.randn(33, 17), torch.randn(29), torch.randn(())]
    grads = [[torch.randn_like(v) for v in values] for _ in range(6)]
    hyper = {"lr": 1e-3, "min_lr": 1e-4, "max_lr": 1e-2, "lr_bump": 3e-4, "weight_decay": 0.05,
             "mask_precision": mask_precision, "seed": 3, "compiled_optimizer": False}

    def build():
        ps = [torch.nn.Parameter(v.to(torch.bfloat16)) for v in values]
        return ps, cls(ps, **hyper)

    params, opt = build()
    for g in grads[:3]:
        step_with(params, opt, g)
    buf = io.BytesIO()
    torch.save({"params": [p.detach().clone() for p in params], "opt": opt.state_dict()}, buf)
    sd = opt.state_dict()["state"][0]
    assert set(sd) >= {"lr_mask", "last_polarity", "step"}
    assert ("lr_mask_bounds" in sd) == (mask_precision == "int8_sr")
    for g in grads[3:]:
        step_with(params, opt, g)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    resumed, opt2 = build()
    with torch.no_grad():
        for r, s in zip(resumed, saved["params"]):
            r.copy_(s)
    opt2.load_state_dict(saved["opt"])
    for g in grads[3:]:
        step_with(resumed, opt2, g)
    for a, b in zip(params, resumed):
        assert torch.equal(a, b)
        for key, value in opt.state[a].items():
            other = opt2.state[b][key]
            assert torch.equal(value, other) if torch.is_tensor(value) else value == other, key


def decoded(opt, p):
    st = opt.state[p]
    if st["lr_mask"].dtype == torch.float32:
        return st["lr_mask"].double()
    return mask_code.decode_mask(st["lr_mask"], mask_code.params(tuple(st["lr_mask_bounds"]))).double()


def test_bumps_below_the_codes_resolution_are_kept():
    """lr_bump = 1/32 of a level step: rounding to the nearest level would never move the mask;
    the 8-bit mask's mean follows the exact one (each write is unbiased)."""
    lr, low, high, bump = 1e-4, 1e-7, 1e-3, 1e-7
    levels = np.asarray(mask_levels(low, high))
    k = int(np.searchsorted(levels, lr))
    assert bump < (levels[k + 1] - levels[k]) / 25
    ps = [torch.nn.Parameter(torch.zeros(20_000)) for _ in range(2)]
    coded, exact = (fast.Automagic([p], lr=lr, min_lr=low, max_lr=high, lr_bump=bump, mask_precision=m,
                                   compiled_optimizer=False) for p, m in zip(ps, ("int8_sr", "fp32")))
    g = torch.ones(20_000)  # the same sign every step: every element bumps up
    for _ in range(60):
        step_with([ps[0]], coded, [g])
        step_with([ps[1]], exact, [g])
    target = float(exact.state[ps[1]]["lr_mask"].double().mean())
    assert target == pytest.approx(lr + 58 * bump, rel=1e-5)  # step 1 disagrees with the initial False
    got = decoded(coded, ps[0])
    step = levels[k + 1] - levels[k]
    # 20,000 unbiased writes: the mean's standard error is below step / 2 / sqrt(20,000) = step / 283.
    assert abs(float(got.mean()) - target) < step / 40, (float(got.mean()), target, step)
    assert float(got.mean()) - lr > 50 * bump  # round to nearest: 0


def test_decoded_mask_never_leaves_its_bounds():
    """Bumps larger than the whole range, all signs: every decoded element stays in [min_lr,
    max_lr] at every step (ai-toolkit's absmax int8 decodes small rates to 0)."""
    torch.manual_seed(2)
    low, high = 3e-5, 4e-4
    p = torch.nn.Parameter(torch.randn(64, 50))
    opt = fast.Automagic([p], lr=1e-4, min_lr=low, max_lr=high, lr_bump=5e-4, compiled_optimizer=False)
    seen = set()
    for _ in range(30):
        step_with([p], opt, [torch.randn_like(p)])
        values = decoded(opt, p)
        assert float(values.min()) >= low and float(values.max()) <= high
        seen.update(torch.unique(opt.state[p]["lr_mask"]).tolist())
    assert {0, spec_mask_code(low, high).top} <= seen  # both ends reached: the clamp, not luck, kept it inside
