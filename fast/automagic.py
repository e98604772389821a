"""Automagic (ai-toolkit v1) and AutomagicCAME (spec/automagic.md) on the shared step."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from fast.came import CAME
from fast.factored_moments import times_factors
from fast.lr_mask import MaskFamily, bumped
from fast.optimizer import constructor_arguments
from spec.hparams import automagic_came
from spec.hparams.adafactor import factored
from spec.hparams.automagic import CONSTRAINTS, GROUP, RUNTIME, SLOTS


def make_automagic_math(factored: bool, first_step: bool):
    """``math(G, (L, last, v), s, noise, aux) -> (U, (L, last, v), L)``; ``s`` = [lr, min_lr,
    max_lr, lr_bump, beta2, 1 - beta2, eps1]; ``aux`` = (row, col, scale) factored, else
    (scale,). The new mask scales the weight decay (the kernel's first scalar is weight_decay)."""

    def automagic_math(G, states, s, noise, aux):
        L, last, v = states
        lr0, low, high, bump, beta2, one_m_beta2, eps1 = s.unbind(0)
        v_new = None
        if factored:
            row, col, scale = aux
            u_hat = scale * times_factors(G, row, col)
        else:
            (scale,) = aux
            v_new = beta2 * v + one_m_beta2 * (G * G + eps1)
            u_hat = scale * G * v_new.rsqrt()
        positive = G > 0  # the sign of u_hat (every factor is positive), cheaper to pack
        L_new = bumped(L, positive, last, lr0, low, high, bump, first_step)
        return L_new * u_hat, (L_new, positive.to(G.dtype), v_new), L_new

    return automagic_math


def make_automagic_came_math(factored: bool, first_step: bool):
    """``math(G, (L, last, m, v), s, noise, aux) -> (U, states, L)``; ``s`` = [lr, min_lr, max_lr,
    lr_bump, beta1, 1 - beta1, beta2, 1 - beta2, eps1]; ``aux`` = (row, col, scale, row_res,
    col_res) factored, else (scale,)."""

    def automagic_came_math(G, states, s, noise, aux):
        L, last, m, v = states
        lr0, low, high, bump, beta1, one_m_beta1, beta2, one_m_beta2, eps1 = s.unbind(0)
        v_new = None
        if factored:
            row, col, scale, row_res, col_res = aux
            u_hat = scale * times_factors(G, row, col)
        else:
            (scale,) = aux
            v_new = beta2 * v + one_m_beta2 * (G * G + eps1)
            u_hat = scale * G * v_new.rsqrt()
        m_new = beta1 * m + one_m_beta1 * u_hat
        direction = times_factors(m_new, row_res, col_res) if factored else m_new
        positive = G > 0
        L_new = bumped(L, positive, last, lr0, low, high, bump, first_step)
        return L_new * direction, (L_new, positive.to(G.dtype), m_new, v_new), L_new

    return automagic_came_math


class Automagic(MaskFamily):
    r"""Automagic (ai-toolkit v1): Adafactor's factored, RMS-clipped normalisation with a fixed
    beta2 and no momentum, times a per-element learning-rate mask that grows by ``lr_bump``
    where the gradient's sign agrees with the previous step's and shrinks where it flips,
    clamped to [``min_lr``, ``max_lr``], fused.

    The mask is stored in 8 bits: levels from min_lr to max_lr, 2^m per binade (a small float
    format anchored at min_lr), written with stochastic rounding, so that every stored rate lies
    in the bounds and the stored mask's expectation is the exact bumped value (no bump is lost
    to the code's resolution);
    ``mask_precision="fp32"`` keeps it exact. The last polarity is one bit per element.

    Symbols: :math:`\eta_0` = ``lr``, :math:`[\eta_{\min}, \eta_{\max}]` = ``[min_lr, max_lr]``,
    :math:`\delta` = ``lr_bump``, :math:`\beta_2` = ``beta2``, :math:`\epsilon_1` = ``eps[0]``,
    :math:`d` = ``clip_threshold``, :math:`\lambda` = ``weight_decay``.

    Update rule (factored; :math:`\widehat{V}` is Adafactor's :math:`R_i C_j / \overline{R}`):

    .. math::
        \hat u_t = \frac{g / \sqrt{\widehat{V}_{\beta_2}[g^2 + \epsilon_1]}}{\max(1, \mathrm{RMS}(u_t)/d)},\quad
        q_t = [\hat u_t > 0]

        L_t = \mathrm{clamp}\big(L_{t-1} + \delta\,(q_t = q_{t-1}\ ?\ 1 : -1),\ \eta_{\min}, \eta_{\max}\big),
        \quad L_0 = \eta_0,\ q_0 = 0

        p_t = p_{t-1} - \lambda L_t p_{t-1} - L_t \hat u_t

    Args:
        params: parameters or param-group dicts.
        lr: the mask's starting value :math:`\eta_0`, in [min_lr, max_lr]. Default 1e-6.
        min_lr: the mask's lower bound, > 0. Default 1e-7.
        max_lr: the mask's upper bound. Default 1e-3.
        lr_bump: the mask's step :math:`\delta` >= 0. Default 1e-6.
        eps: :math:`(\epsilon_1, \epsilon_2)`; eps1 is added to :math:`g^2`, eps2 is unused (ai-toolkit's
            signature). Default (1e-30, 1e-3).
        clip_threshold: :math:`d` > 0. Default 1.0.
        beta2: the second moment's EMA coefficient in [0, 1). Default 0.999.
        weight_decay: :math:`\lambda` >= 0, applied as :math:`\lambda L_t p`. Default 0.
        mask_precision: 'int8_sr' (1 byte per element) or 'fp32' (exact). Default 'int8_sr'.
        state_precision: storage of the dense second moment of 0-d and 1-D tensors. Default 'auto'.
        stochastic_rounding: write bf16 parameters with stochastic rounding. Default True.
        seed: seed of the counter-based random draws (the mask's rounding included). Default 0.
        compiled_optimizer: run the step as ``torch.compile``'d kernels. Default True.

    State per parameter: ``step``, ``rng_key``, ``lr_mask`` (uint8 codes, flat; fp32 in the
    parameter's shape with mask_precision='fp32'), ``lr_mask_bounds`` (the codes' (min_lr,
    max_lr)), ``last_polarity`` (packed bits), ``exp_avg_sq_row``/``_col`` (>= 2 dims) or
    ``exp_avg_sq``. A scheduler's changes to ``lr`` have no effect after a tensor's first step:
    the mask is the learning rate. ``get_learning_rates()`` reports it per group.

    Examples:
        >>> import torch, fast
        >>> model = torch.nn.Linear(4, 2)
        >>> opt = fast.Automagic(model.parameters(), lr=1e-4, compiled_optimizer=False)
        >>> model(torch.randn(8, 4)).square().mean().backward()
        >>> opt.step()
        >>> sorted(opt.state[model.weight])
        ['exp_avg_sq_col', 'exp_avg_sq_row', 'last_polarity', 'lr_mask', 'lr_mask_bounds', 'rng_key', 'step']
        >>> [round(x, 6) for x in opt.get_learning_rates()]  # each rate moved by +-1e-6
        [0.0001]

    References:
        ostris/ai-toolkit ``toolkit/optimizers/automagic.py`` (v1); Shazeer & Stern, Adafactor.

    Deviations:
        From ai-toolkit: the mask's 8-bit code (ai-toolkit: per-tensor absmax int8 rounded to
        nearest, which decodes small rates below min_lr, even to 0, and loses bumps smaller than
        max/127); ``lr`` outside [min_lr, max_lr] raises (ai-toolkit silently replaces lr > 1e-3
        by 1e-6); the factors are fp32 from the first step (ai-toolkit runs the first step's in
        the parameter dtype); stochastic rounding uses the optimizer's seeded counter-based
        draws; gradient accumulation is not built in (``fast.accumulate_grads`` does it for
        every optimizer); parameter swapping is not offered.
    """

    HYPERPARAMETERS = GROUP
    RUNTIME = RUNTIME
    CONSTRAINTS = CONSTRAINTS
    SLOTS = SLOTS

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = GROUP["lr"].default,
        min_lr: float = GROUP["min_lr"].default,
        max_lr: float = GROUP["max_lr"].default,
        lr_bump: float = GROUP["lr_bump"].default,
        eps: tuple[float, float] = GROUP["eps"].default,
        clip_threshold: float = GROUP["clip_threshold"].default,
        beta2: float = GROUP["beta2"].default,
        weight_decay: float = GROUP["weight_decay"].default,
        mask_precision: str = GROUP["mask_precision"].default,
        state_precision: str = GROUP["state_precision"].default,
        stochastic_rounding: bool = RUNTIME["stochastic_rounding"].default,
        seed: int = RUNTIME["seed"].default,
        compiled_optimizer: bool = RUNTIME["compiled_optimizer"].default,
    ) -> None:
        super().__init__(params, **constructor_arguments(locals()))

    def _update(self, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], state: dict) -> None:
        first = state.get("step", 0) == 0
        formats = self.formats(p, group)
        self.init_state(p, state, formats, group)
        beta2, eps1 = group["beta2"], group["eps"][0]
        aux = None
        if p.numel():
            row, col, scale, _ = self.second_moment(p, grad, group, state, formats,
                                                    (beta2, 1.0 - beta2, eps1, group["clip_threshold"], 1.0, 0.0))
            aux = (row, col, scale) if factored(p.dim()) else (scale,)
            self.requantise(group, state)
        scalars = self.scalars(p, group["weight_decay"], (*self.mask_scalars(group), beta2, 1.0 - beta2, eps1))
        self._run_step(p, grad, group, state, make_automagic_math, (factored(p.dim()), first), scalars, aux=aux,
                       shape=self.kernel_shape(p))


class AutomagicCAME(MaskFamily, CAME):
    r"""AutomagicCAME, our variant: Automagic's learning-rate mask over CAME's
    confidence-guided update, fused.

    CAME's direction :math:`m_t / \sqrt{\widehat{V}_{\beta_3}[(\hat u_t - m_t)^2 + \epsilon_2]}`
    (:math:`m_t` for 0-d and 1-D tensors) takes the place of Automagic's :math:`\hat u_t`; the
    mask moves by the agreement of the raw gradient's sign with the previous step's (the
    direction's sign lags through m). Storage, bounds and logging as in :class:`Automagic`.

    Symbols: as :class:`Automagic`, plus :math:`(\beta_1, \beta_2, \beta_3)` = ``betas`` and
    :math:`(\epsilon_1, \epsilon_2)` = ``eps`` (CAME's).

    Update rule (factored):

    .. math::
        \hat u_t = \mathrm{clip}_d\big(g / \sqrt{\widehat{V}_{\beta_2}[g^2 + \epsilon_1]}\big),\quad
        m_t = \beta_1 m_{t-1} + (1-\beta_1)\hat u_t,\quad q_t = [g > 0]

        L_t = \mathrm{clamp}\big(L_{t-1} \pm \delta,\ \eta_{\min}, \eta_{\max}\big),\quad
        p_t = p_{t-1} - \lambda L_t p_{t-1} - L_t\, m_t / \sqrt{\widehat{V}_{\beta_3}[(\hat u_t - m_t)^2 + \epsilon_2]}

    Args:
        params: parameters or param-group dicts.
        lr, min_lr, max_lr, lr_bump, mask_precision: the mask, as :class:`Automagic`.
        eps: :math:`(\epsilon_1, \epsilon_2)`. Default (1e-30, 1e-16).
        clip_threshold: :math:`d` > 0. Default 1.0.
        betas: :math:`(\beta_1, \beta_2, \beta_3)`, each in [0, 1). Default (0.9, 0.999, 0.9999).
        weight_decay: :math:`\lambda` >= 0, applied as :math:`\lambda L_t p`. Default 0.
        state_precision: storage of ``exp_avg`` (and of ``exp_avg_sq`` of 0-d / 1-D tensors). Default 'auto'.
        stochastic_rounding, seed, compiled_optimizer: as :class:`Automagic`.

    State per parameter: Automagic's mask states, ``exp_avg``, and CAME's factors
    ``exp_avg_sq_row``/``_col``, ``exp_avg_res_row``/``_col`` (or ``exp_avg_sq``).

    Examples:
        >>> import torch, fast
        >>> model = torch.nn.Linear(4, 2)
        >>> opt = fast.AutomagicCAME(model.parameters(), lr=1e-4, compiled_optimizer=False)
        >>> model(torch.randn(8, 4)).square().mean().backward()
        >>> opt.step()
        >>> "exp_avg_res_row" in opt.state[model.weight]
        True

    References:
        Luo et al., CAME (arXiv 2307.02047); ai-toolkit's Automagic v1; the community
        Automagic_Came / Automagic_CameAMP optimizers (gesen2egee, in kohya sd-scripts forks).

    Deviations:
        Not an upstream optimizer. The community versions differ: Automagic_Came replaces weight
        decay by selective projection decay and stores the mask as ai-toolkit does;
        Automagic_CameAMP adds gradient regularisation, torque-aware momentum, Grams, OrthoGrad
        and freezes the mask after a warm-up. This one is exactly CAME's update times the mask.
    """

    HYPERPARAMETERS = automagic_came.GROUP
    RUNTIME = RUNTIME
    CONSTRAINTS = CONSTRAINTS
    SLOTS = automagic_came.SLOTS
    FACTORS = automagic_came.FACTORS

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = automagic_came.GROUP["lr"].default,
        min_lr: float = automagic_came.GROUP["min_lr"].default,
        max_lr: float = automagic_came.GROUP["max_lr"].default,
        lr_bump: float = automagic_came.GROUP["lr_bump"].default,
        eps: tuple[float, float] = automagic_came.GROUP["eps"].default,
        clip_threshold: float = automagic_came.GROUP["clip_threshold"].default,
        betas: tuple[float, float, float] = automagic_came.GROUP["betas"].default,
        weight_decay: float = automagic_came.GROUP["weight_decay"].default,
        mask_precision: str = automagic_came.GROUP["mask_precision"].default,
        state_precision: str = automagic_came.GROUP["state_precision"].default,
        stochastic_rounding: bool = RUNTIME["stochastic_rounding"].default,
        seed: int = RUNTIME["seed"].default,
        compiled_optimizer: bool = RUNTIME["compiled_optimizer"].default,
    ) -> None:
        MaskFamily.__init__(self, params, **constructor_arguments(locals()))

    def _update(self, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], state: dict) -> None:
        first = state.get("step", 0) == 0
        formats = self.formats(p, group)
        self.init_state(p, state, formats, group)
        beta1, beta2, beta3 = group["betas"]
        eps1, eps2 = group["eps"]
        fac = factored(p.dim())
        aux = None
        if p.numel():
            row, col, scale, _ = self.second_moment(p, grad, group, state, formats, (beta2, 1.0 - beta2, eps1,
                                                                             group["clip_threshold"], 1.0, 0.0))
            aux = (scale,)
            if fac:
                m_fmt = formats[[s.name for s in self.SLOTS].index("exp_avg")]
                aux = (row, col, scale, *self.residual(p, grad, state, m_fmt, row, col, scale,
                                                       (beta1, 1.0 - beta1, beta3, 1.0 - beta3, eps2)))
            self.requantise(group, state)
        scalars = self.scalars(p, group["weight_decay"],
                               (*self.mask_scalars(group), beta1, 1.0 - beta1, beta2, 1.0 - beta2, eps1))
        self._run_step(p, grad, group, state, make_automagic_came_math, (fac, first), scalars, aux=aux,
                       shape=self.kernel_shape(p))
