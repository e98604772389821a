"""Adafactor (spec/adafactor.md) with transformers' semantics, on the shared step."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from fast.factored_family import FactoredFamily
from fast.factored_moments import times_factors
from fast.optimizer import constructor_arguments
from spec.hparams.adafactor import CONSTRAINTS, GROUP, RUNTIME, SLOTS, factored, kept_slots


def make_adafactor_math(factored: bool, first_moment: bool):
    """``math(G, (m, v), s, noise, aux) -> (U, (m, v), lr_t)``; ``s`` = [beta1, 1 - beta1,
    beta2, 1 - beta2, eps1], ``aux`` = (row, col, scale, lr_t) from the second-moment kernel.
    lr_t scales the weight decay (the kernel's first scalar is weight_decay)."""

    def adafactor_math(G, states, s, noise, aux):
        m, v = states
        beta1, one_m_beta1, beta2, one_m_beta2, eps1 = s.unbind(0)
        row, col, scale, lr_t = aux
        v_new = None
        if factored:
            u = times_factors(G, row, col)
        else:
            v_new = beta2 * v + one_m_beta2 * (G * G + eps1)
            u = G * v_new.rsqrt()
        U = scale * u
        m_new = None
        if first_moment:
            m_new = beta1 * m + one_m_beta1 * U
            U = m_new
        return U, (m_new, v_new), lr_t

    return adafactor_math


def relative_step_size(group: dict[str, Any], t: int) -> float:
    """rho_t: min(1e-2, 1/sqrt(t)) (warmup_init: min(1e-6 t, 1/sqrt(t))), or lr."""
    if not group["relative_step"]:
        return group["lr"]
    return min(1e-6 * t if group["warmup_init"] else 1e-2, 1.0 / math.sqrt(t))


class Adafactor(FactoredFamily):
    r"""Adafactor with Hugging Face transformers' semantics and argument names, fused.

    The second moment of a tensor with two or more dims is kept as the EMAs of its row and
    column means over the last two dims (leading dims are batch dims); 0-d and 1-D tensors keep
    it dense. The update is clipped to RMS ``clip_threshold``; the step size is either the
    relative step :math:`\rho_t = \min(10^{-2}, 1/\sqrt t)` or ``lr``, times the parameter's RMS
    with ``scale_parameter``. bf16 parameters are written with stochastic rounding.

    Symbols: :math:`\eta` = ``lr``, :math:`(\epsilon_1, \epsilon_2)` = ``eps``, :math:`d` =
    ``clip_threshold``, :math:`\gamma` = ``decay_rate``, :math:`\beta_1` = ``beta1``,
    :math:`\lambda` = ``weight_decay``, :math:`t` = the parameter's step count.

    Update rule (factored; :math:`i, j` an element's row and column):

    .. math::
        \eta_t = \max(\epsilon_2, \mathrm{RMS}(p_{t-1}))\,\rho_t,\quad \beta_{2,t} = 1 - t^{\gamma}

        R_{i,t} = \beta_{2,t} R_{i,t-1} + (1-\beta_{2,t})\,\overline{(g^2+\epsilon_1)}_{i\cdot},\quad
        C_{j,t} = \beta_{2,t} C_{j,t-1} + (1-\beta_{2,t})\,\overline{(g^2+\epsilon_1)}_{\cdot j}

        u_t = g \Big/ \sqrt{R_{i,t} C_{j,t} / \overline{R}_t},\quad
        U_t = \eta_t\,u_t / \max(1, \mathrm{RMS}(u_t)/d)

        p_t = p_{t-1} - \lambda\eta_t p_{t-1} - U_t

    With ``beta1`` the update is smoothed: :math:`m_t = \beta_1 m_{t-1} + (1-\beta_1) U_t`,
    :math:`U_t \leftarrow m_t`. The full, generated rule is on the Adafactor spec page.

    Args:
        params: parameters or param-group dicts.
        lr: external learning rate, or None with ``relative_step=True`` (required then). Default None.
        eps: :math:`(\epsilon_1, \epsilon_2)`: added to :math:`g^2`, and the floor of RMS(p). Default (1e-30, 1e-3).
        clip_threshold: :math:`d` > 0, the update's RMS clip. Default 1.0.
        decay_rate: :math:`\gamma` <= 0 in :math:`\beta_{2,t} = 1 - t^\gamma`. Default -0.8.
        beta1: first-moment EMA coefficient in [0, 1), or None (no first moment). Default None.
        weight_decay: :math:`\lambda` >= 0, applied as :math:`\lambda\eta_t p`. Default 0.
        scale_parameter: multiply the step size by max(eps2, RMS(p)). Default True.
        relative_step: use :math:`\rho_t` instead of ``lr``. Default True.
        warmup_init: :math:`\rho_t = \min(10^{-6} t, 1/\sqrt t)`; needs ``relative_step``. Default False.
        state_precision: storage of ``exp_avg`` and of the dense ``exp_avg_sq`` of 0-d / 1-D
            tensors: 'auto', 'fp32', 'bf16_sr', 'fp16', 'int8_sr' or 'int4' (the factors are
            always fp32). Default 'auto'.
        stochastic_rounding: write bf16 parameters with stochastic rounding. Default True.
        seed: seed of the counter-based random draws. Default 0.
        compiled_optimizer: run the step as ``torch.compile``'d kernels. Default True.

    State per parameter: ``step``, ``rng_key``, ``RMS`` (with ``scale_parameter``; 0-d: RMS(p)
    before the last step),
    ``exp_avg_sq_row``/``exp_avg_sq_col`` (>= 2 dims, shapes ``shape[:-1]`` and
    ``shape[:-2] + shape[-1:]``) or ``exp_avg_sq``, and ``exp_avg`` with ``beta1``.

    Examples:
        >>> import torch, fast
        >>> model = torch.nn.Linear(4, 2)
        >>> opt = fast.Adafactor(model.parameters(), compiled_optimizer=False)  # relative step
        >>> model(torch.randn(8, 4)).square().mean().backward()
        >>> opt.step()
        >>> sorted(opt.state[model.weight])
        ['RMS', 'exp_avg_sq_col', 'exp_avg_sq_row', 'rng_key', 'step']
        >>> low_memory_adamw = fast.Adafactor(model.parameters(), lr=1e-3, relative_step=False,
        ...                                   scale_parameter=False, beta1=0.9, compiled_optimizer=False)

    References:
        Shazeer & Stern, Adafactor (arXiv 1804.04235); ``transformers.optimization.Adafactor``.

    Deviations:
        From transformers: ``lr=None`` with ``relative_step=False`` raises at construction
        (transformers fails in the first step); the math of bf16 and fp16 parameters runs on an
        fp32 copy (as transformers does) but bf16 is written back with counter-based stochastic
        rounding (``stochastic_rounding=True``), as OneTrainer's and kohya's patches add;
        ``state_precision`` is new; the state ``RMS`` is a 0-d tensor, not a Python float, and
        is kept only with ``scale_parameter`` (the only rule that reads it).
        ``torch.optim.Adafactor`` is a different algorithm (no relative step, no RMS clip).
    """

    HYPERPARAMETERS = GROUP
    RUNTIME = RUNTIME
    CONSTRAINTS = CONSTRAINTS
    SLOTS = SLOTS
    KEPT_SLOTS = staticmethod(kept_slots)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float | None = GROUP["lr"].default,
        eps: tuple[float, float] = GROUP["eps"].default,
        clip_threshold: float = GROUP["clip_threshold"].default,
        decay_rate: float = GROUP["decay_rate"].default,
        beta1: float | None = GROUP["beta1"].default,
        weight_decay: float = GROUP["weight_decay"].default,
        scale_parameter: bool = GROUP["scale_parameter"].default,
        relative_step: bool = GROUP["relative_step"].default,
        warmup_init: bool = GROUP["warmup_init"].default,
        state_precision: str = GROUP["state_precision"].default,
        stochastic_rounding: bool = RUNTIME["stochastic_rounding"].default,
        seed: int = RUNTIME["seed"].default,
        compiled_optimizer: bool = RUNTIME["compiled_optimizer"].default,
    ) -> None:
        super().__init__(params, **constructor_arguments(locals()))

    def _update(self, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], state: dict) -> None:
        t = state.get("step", 0) + 1
        formats = self.formats(p, group)
        self.init_state(p, state, formats, group)
        beta2 = 1.0 - t ** group["decay_rate"]
        eps1, eps2 = group["eps"]
        aux = None
        if p.numel():
            aux = self.second_moment(p, grad, group, state, formats, (beta2, 1.0 - beta2, eps1, group["clip_threshold"],
                                                             relative_step_size(group, t), eps2))
        beta1 = group["beta1"] if group["beta1"] is not None else 0.0
        scalars = self.scalars(p, group["weight_decay"], (beta1, 1.0 - beta1, beta2, 1.0 - beta2, eps1))
        self._run_step(p, grad, group, state, make_adafactor_math, (factored(p.dim()), group["beta1"] is not None),
                       scalars, aux=aux, shape=self.kernel_shape(p))

    def keeps_rms(self, group: dict[str, Any]) -> bool:
        return group["scale_parameter"]

    def step_size(self, group: dict[str, Any], state: dict) -> float:
        """The step size lr_t of the last step of the parameter whose ``state`` this is (what
        transformers' ``_get_lr`` returns): rho_t times max(eps2, RMS(p)) with scale_parameter."""
        t = max(state.get("step", 0), 1)
        rho = relative_step_size(group, t)
        if not group["scale_parameter"]:
            return rho
        return max(group["eps"][1], float(state["RMS"])) * rho if "RMS" in state else group["eps"][1] * rho
