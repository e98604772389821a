"""AutomagicCAME's update rule as sympy expressions: the single source of truth
(spec/automagic_came.md). CAME's lines (spec.came) with Automagic's mask (spec.automagic)."""

from __future__ import annotations

import sympy as sp

from spec import symbols as s
from spec.adafactor import clipped, second_moment
from spec.ademamix import ema
from spec.automagic import STAGE_SYMBOLS, VARIANTS, bumped_mask, stager, write
from spec.came import confidence
from spec.hparams.automagic_came import ALL as HYPERPARAMETERS
from spec.hparams.automagic_came import CONSTRAINTS

__all__ = ["CONSTRAINTS", "HYPERPARAMETERS", "STAGE_SYMBOLS", "VARIANTS", "rule"]


def rule(*, factored: bool = True, first_step: bool = False, staged: bool = False) -> dict[str, sp.Expr]:
    """One AutomagicCAME step for one element: CAME's lines up to m and its confidence factor,
    the polarity of the raw gradient q = [g > 0], the mask L and U = L m / sqrt(residual
    estimate) (U = L m for 0-d and 1-D tensors)."""
    out, stage = stager(staged)
    V = second_moment(stage, s.beta2, s.eps1, factored=factored)
    u = stage("u", s.g / sp.sqrt(V))
    u_hat = stage("u_hat", clipped(u))
    m = stage("m", ema(s.m, u_hat, s.beta1))
    direction = m * confidence(stage, u_hat, m) if factored else m
    q = stage("q", sp.Piecewise((1, s.g > 0), (0, True)))
    L = bumped_mask(stage, q, first_step=first_step)
    write(stage, L, stage("U", L * direction))
    return out
