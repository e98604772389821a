"""bf16 training: round-to-nearest stalls where stochastic rounding tracks fp32.

Every update (~lr) is far below half a bf16 ulp of the weights, so a round-to-nearest write
throws it away; stochastic rounding keeps it in expectation.
"""

from __future__ import annotations

import pytest
import torch

import fast
from conformance.tolerances import tol

STEPS = 400
LR = 1e-4


def _final_loss(dtype: torch.dtype, stochastic_rounding: bool) -> tuple[float, float]:
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(256, 32, generator=gen)
    w_true = torch.randn(32, 1, generator=gen)
    y = X @ w_true
    w = (w_true + 0.5 + 0.1 * torch.randn(32, 1, generator=gen)).to(dtype).requires_grad_()
    opt = fast.AdamW([w], lr=LR, stochastic_rounding=stochastic_rounding, compiled_optimizer=False)

    def loss_fn() -> torch.Tensor:
        return ((X @ w.float() - y) ** 2).mean()

    with torch.no_grad():
        start = float(loss_fn())
    for _ in range(STEPS):
        opt.zero_grad()
        loss_fn().backward()
        opt.step()
    with torch.no_grad():
        return start, float(loss_fn())


@pytest.fixture(scope="module")
def runs():
    return {
        "fp32": _final_loss(torch.float32, True),
        "sr": _final_loss(torch.bfloat16, True),
        "rne": _final_loss(torch.bfloat16, False),
    }


def _drop(run: tuple[float, float]) -> float:
    return run[0] - run[1]


def test_stochastic_rounding_tracks_fp32(runs):
    gap = abs(_drop(runs["sr"]) - _drop(runs["fp32"])) / _drop(runs["fp32"])
    assert gap <= tol("sr.training.sr_gap").rtol, f"SR loss drop off fp32's by {gap:.1%}"


def test_round_to_nearest_stalls(runs):
    progress = _drop(runs["rne"]) / _drop(runs["fp32"])
    assert progress < tol("sr.training.rne_progress").rtol, f"RNE made {progress:.1%} of fp32 progress"
