"""The shell of the Adafactor family (Adafactor, CAME, Automagic, AutomagicCAME): the state
layout of spec/hparams/adafactor.py and the second-moment kernel of fast.factored_moments."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from fast import compile as kernels
from fast import storage
from fast.factored_moments import batch_shape, make_second_moment_kernel
from fast.optimizer import DTYPE_NAMES, FastOptimizer
from fast.write import compute_dtype
from spec.hparams.adafactor import factor_shapes, factored, storage_view
from spec.storage_layout import Format, resolve


class FactoredFamily(FastOptimizer):
    """Tensors with >= 2 dims keep each second moment of ``FACTORS`` (state-name prefixes) as
    row and column factors in the compute dtype (fp32; fp64 for fp64 parameters), outside the
    storage layer; ``SECOND_MOMENT_SLOTS`` are the dense states such tensors do not keep."""

    FACTORS: ClassVar[tuple[str, ...]] = ("exp_avg_sq",)
    SECOND_MOMENT_SLOTS: ClassVar[tuple[str, ...]] = ("exp_avg_sq",)

    def formats(self, p: torch.Tensor, group: dict[str, Any]) -> tuple[Format | None, ...]:
        active = self.active_slots(group)
        drop = self.SECOND_MOMENT_SLOTS if factored(p.dim()) else ()
        h = storage_view(group)
        return tuple(
            resolve(slot, DTYPE_NAMES[p.dtype], p.dim(), p.numel(), h, self.stochastic_rounding)
            if slot in active and slot.name not in drop else None
            for slot in self.SLOTS
        )

    def init_state(self, p: torch.Tensor, state: dict, formats: tuple[Format | None, ...],
                   group: dict[str, Any]) -> None:
        new = "step" not in state
        super().init_state(p, state, formats, group)
        if not new:
            return
        cdt = compute_dtype(p.dtype)
        if self.keeps_rms(group):
            state["RMS"] = torch.zeros((), dtype=cdt, device=p.device)
        if factored(p.dim()):
            rows, cols = factor_shapes(p.shape)
            for name in self.FACTORS:
                state[f"{name}_row"] = torch.zeros(rows, dtype=cdt, device=p.device)
                state[f"{name}_col"] = torch.zeros(cols, dtype=cdt, device=p.device)

    def keeps_rms(self, group: dict[str, Any]) -> bool:
        """Whether the step scales by RMS(p) and keeps it as the state ``RMS`` (Adafactor's
        scale_parameter)."""
        return False

    def kernel_shape(self, p: torch.Tensor) -> tuple[int, ...] | None:
        """The working shape of a factored tensor's kernels, (batch, rows, columns); None (the
        storage layer's) for 0-d and 1-D tensors."""
        return batch_shape(p.shape) if factored(p.dim()) else None

    def second_moment(self, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], state: dict,
                      formats: tuple[Format | None, ...], values: tuple[float, ...]) -> tuple[torch.Tensor | None, ...]:
        """Run the second-moment kernel (factored: the factors are updated in place) and store
        RMS(p) if kept; returns (row, col, scale, lr_t) for the step kernel. ``values`` are the
        kernel's scalars after the first: beta2, 1 - beta2, eps1, clip_threshold, rho, eps2."""
        scaled = self.keeps_rms(group)
        fac = factored(p.dim())
        shape = batch_shape(p.shape) if fac else storage.working_shape(p.numel(), formats)
        slot = [s.name for s in self.SLOTS].index(self.SECOND_MOMENT_SLOTS[0])
        fmt = formats[slot]
        s = self.scalars(p, 0.0, values)
        flat = p.detach().reshape(shape)
        g = grad.reshape(shape)
        if fac:
            R, C = state[f"{self.FACTORS[0]}_row"], state[f"{self.FACTORS[0]}_col"]
            args = (R.view(shape[0], shape[1]), C.view(shape[0], shape[2]), None)
        else:
            args = (None, None, storage.kernel_views(fmt, [state[k] for k in fmt.keys(self.SLOTS[slot].name)], shape))
        fn = kernels.kernel(make_second_moment_kernel, (fac, scaled, fmt, p.dtype), self.compiled_optimizer,
                            static_shape=shape)
        row, col, scale, lr_t, rms_p = fn(flat, g, *args, s)
        if scaled:
            state["RMS"].copy_(rms_p)
        return row, col, scale, lr_t
