"""Automagic's per-element learning-rate mask (spec/automagic.md), shared by Automagic and
AutomagicCAME: the bump inside the step kernel, the re-coding when the bounds change, the
learning rates a trainer logs."""

from __future__ import annotations

from typing import Any

import torch

from fast.factored_family import FactoredFamily
from fast.mask_code import decode_mask, encode_mask, params
from fast.storage import NEAREST_DRAW
from spec.hparams.automagic import mask_format
from spec.storage_layout import Format

BOUNDS_KEY = "lr_mask_bounds"  # the (min_lr, max_lr) the 8-bit mask's codes were written with


def bumped(L: torch.Tensor, positive: torch.Tensor, last: torch.Tensor, lr0: torch.Tensor, low: torch.Tensor,
           high: torch.Tensor, bump: torch.Tensor, first_step: bool) -> torch.Tensor:
    """L_t = clamp(L_{t-1} +- bump, low, high): + where ``positive`` equals the last polarity
    (False before the first step); L_{t-1} = lr0 on the first step."""
    before = lr0 if first_step else L
    agree = positive == (last > 0.5) if not first_step else ~positive
    return torch.clamp(torch.where(agree, before + bump, before - bump), low, high)


class MaskFamily(FactoredFamily):
    """The mask's shell: its storage format (``mask_precision``), its bounds, the logged rates."""

    def formats(self, p: torch.Tensor, group: dict[str, Any]) -> tuple[Format | None, ...]:
        out = list(super().formats(p, group))
        out[[s.name for s in self.SLOTS].index("lr_mask")] = mask_format(group)
        return tuple(out)

    def mask_scalars(self, group: dict[str, Any]) -> tuple[float, ...]:
        return (group["lr"], group["min_lr"], group["max_lr"], group["lr_bump"])

    def requantise(self, group: dict[str, Any], state: dict) -> None:
        """If the group's bounds changed since the 8-bit mask was written, re-code it once for the
        new bounds (clamped, to the nearer level); afterwards record the bounds in use."""
        new = mask_format(group).bounds
        old = state.get(BOUNDS_KEY)
        if new is not None and old is not None and tuple(old) != new:
            codes = state["lr_mask"]
            L = decode_mask(codes, params(tuple(old))).clamp(*new)
            codes.copy_(encode_mask(L, params(new), torch.full_like(codes, NEAREST_DRAW, dtype=torch.int32)))
        if new is None:
            state.pop(BOUNDS_KEY, None)
        else:
            state[BOUNDS_KEY] = new

    @torch.no_grad()
    def get_learning_rates(self) -> list[float]:
        """Per param group, the mean over its tensors of each tensor's mean learning rate (the
        decoded mask; ``lr`` for a tensor not stepped yet): the number ai-toolkit logs."""
        out = []
        for group in self.param_groups:
            means = []
            for p in group["params"]:
                if p.numel() == 0:
                    continue
                state = self.state.get(p, {})
                if state.get("step", 0) == 0:
                    means.append(torch.tensor(float(group["lr"]), dtype=torch.float64))
                    continue
                fmt = self.formats(p, group)[[s.name for s in self.SLOTS].index("lr_mask")]
                mask = state["lr_mask"]
                values = mask if fmt.kind == "dense" else decode_mask(mask, params(fmt.bounds))
                means.append(values.to(torch.float64).mean().cpu())
            out.append(torch.stack(means).mean() if means else torch.tensor(float(group["lr"]), dtype=torch.float64))
        return torch.stack(out).tolist() if out else []

    def get_avg_learning_rate(self) -> float:
        """The mean of ``get_learning_rates()`` over the param groups."""
        lrs = self.get_learning_rates()
        return sum(lrs) / len(lrs)
