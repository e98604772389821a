"""CAME (spec/came.md) with came-pytorch's semantics, on the shared step."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from fast import compile as kernels
from fast import storage
from fast.factored_family import FactoredFamily
from fast.factored_moments import factor_update, inverse_sqrt_factors, times_factors
from fast.optimizer import constructor_arguments
from spec.hparams.adafactor import factored
from spec.hparams.came import CONSTRAINTS, FACTORS, GROUP, RUNTIME, SLOTS
from spec.storage_layout import Format


def make_residual_kernel(fmt: Format, dtype: torch.dtype):
    """``kernel(g, m, row, col, scale, R, C, s) -> (row_res, col_res)`` for a factored tensor
    ((B, r, c)): the new first moment m = beta1 m + (1 - beta1) u_hat from the stored one
    (``fmt``'s views, not written here), the residual (u_hat - m)^2 + eps2 and its factors R, C
    updated in place; returns their inverse square-root parts. ``s`` = [0, beta1, 1 - beta1,
    beta3, 1 - beta3, eps2]; ``dtype`` (the parameter's) is only a cache key."""

    def residual_kernel(g, m, row, col, scale, R, C, s):
        _, beta1, one_m_beta1, beta3, one_m_beta3, eps2 = s.unbind(0)
        G = g.to(s.dtype)
        u_hat = scale * times_factors(G, row, col)
        m_new = beta1 * storage.decode(fmt, m, G.numel(), s.dtype, G.shape) + one_m_beta1 * u_hat
        diff = u_hat - m_new
        R_new, C_new = factor_update(R, C, diff * diff + eps2, beta3, one_m_beta3)
        R.copy_(R_new)
        C.copy_(C_new)
        return inverse_sqrt_factors(R_new, C_new)

    return residual_kernel


def make_came_math(factored: bool):
    """``math(G, (m, v), s, noise, aux) -> (U, (m, v), None)``; ``s`` = [beta1, 1 - beta1, beta2,
    1 - beta2, eps1, lr]; ``aux`` = (row, col, scale, row_res, col_res) factored, else (scale,)."""

    def came_math(G, states, s, noise, aux):
        m, v = states
        beta1, one_m_beta1, beta2, one_m_beta2, eps1, lr = s.unbind(0)
        v_new = None
        if factored:
            row, col, scale, row_res, col_res = aux
            u_hat = scale * times_factors(G, row, col)
        else:
            (scale,) = aux
            v_new = beta2 * v + one_m_beta2 * (G * G + eps1)
            u_hat = scale * G * v_new.rsqrt()
        m_new = beta1 * m + one_m_beta1 * u_hat
        U = lr * (times_factors(m_new, row_res, col_res) if factored else m_new)
        return U, (m_new, v_new), None

    return came_math


class CAME(FactoredFamily):
    r"""CAME, confidence-guided adaptive memory-efficient optimisation, with came-pytorch's
    semantics and argument names, fused.

    Adafactor's factored second moment normalises the gradient (RMS-clipped); its EMA m is the
    step direction, and each element's step is divided by the square root of a factored EMA of
    the instability :math:`(\hat u - m)^2`: coordinates whose update disagrees with its average
    take smaller steps. ``state_precision`` applies to m (and to the dense second moment of 0-d
    and 1-D tensors), so OneTrainer's "CAME 8-bit" is ``CAME(..., state_precision="int8_sr")``.

    Symbols: :math:`\eta` = ``lr``, :math:`(\beta_1, \beta_2, \beta_3)` = ``betas``,
    :math:`(\epsilon_1, \epsilon_2)` = ``eps``, :math:`d` = ``clip_threshold``,
    :math:`\lambda` = ``weight_decay``.

    Update rule (factored; :math:`\widehat{V}` is Adafactor's estimate
    :math:`R_i C_j / \overline{R}` of the EMA of its argument's row and column means):

    .. math::
        u_t = g / \sqrt{\widehat{V}_{\beta_2}[g^2 + \epsilon_1]},\quad
        \hat u_t = u_t / \max(1, \mathrm{RMS}(u_t)/d),\quad
        m_t = \beta_1 m_{t-1} + (1-\beta_1)\hat u_t

        U_t = \eta\, m_t / \sqrt{\widehat{V}_{\beta_3}[(\hat u_t - m_t)^2 + \epsilon_2]},\quad
        p_t = p_{t-1} - \eta\lambda p_{t-1} - U_t

    0-d and 1-D tensors keep v dense and step along :math:`U_t = \eta m_t`.

    Args:
        params: parameters or param-group dicts.
        lr: learning rate :math:`\eta` >= 0. Default 1e-4.
        eps: :math:`(\epsilon_1, \epsilon_2)`. Default (1e-30, 1e-16).
        clip_threshold: :math:`d` > 0, the RMS clip of the normalised gradient. Default 1.0.
        betas: :math:`(\beta_1, \beta_2, \beta_3)`, each in [0, 1). Default (0.9, 0.999, 0.9999).
        weight_decay: decoupled :math:`\lambda` >= 0 (times lr). Default 0.
        state_precision: storage of ``exp_avg`` (and of ``exp_avg_sq`` of 0-d / 1-D tensors):
            'auto', 'fp32', 'bf16_sr', 'fp16', 'int8_sr' or 'int4'. Default 'auto'.
        stochastic_rounding: write bf16 parameters with stochastic rounding. Default True.
        seed: seed of the counter-based random draws. Default 0.
        compiled_optimizer: run the step as ``torch.compile``'d kernels. Default True.

    State per parameter: ``step``, ``rng_key``, ``exp_avg`` and, for >= 2 dims,
    ``exp_avg_sq_row``/``_col`` and ``exp_avg_res_row``/``_col`` (fp32; shapes ``shape[:-1]``
    and ``shape[:-2] + shape[-1:]``), else ``exp_avg_sq``.

    Examples:
        >>> import torch, fast
        >>> model = torch.nn.Linear(4, 2)
        >>> opt = fast.CAME(model.parameters(), lr=2e-4, weight_decay=1e-2, compiled_optimizer=False)
        >>> model(torch.randn(8, 4)).square().mean().backward()
        >>> opt.step()
        >>> sorted(opt.state[model.weight])
        ['exp_avg', 'exp_avg_res_col', 'exp_avg_res_row', 'exp_avg_sq_col', 'exp_avg_sq_row', 'rng_key', 'step']
        >>> eight_bit = fast.CAME(model.parameters(), state_precision="int8_sr", compiled_optimizer=False)

    References:
        Luo et al., CAME (ACL 2023, arXiv 2307.02047); came-pytorch 0.1.3 ``CAME``.

    Deviations:
        From came-pytorch: ``lr`` has a default (came-pytorch's ``lr=None`` fails its own
        assertion); betas must lie in [0, 1) (came-pytorch accepts 1, which freezes the EMAs
        at 0 and divides by zero); the state ``RMS`` (stored, never read) is not kept; bf16
        parameters are updated on an fp32 copy and written with stochastic rounding
        (came-pytorch updates them in bf16); ``state_precision`` is new.
    """

    HYPERPARAMETERS = GROUP
    RUNTIME = RUNTIME
    CONSTRAINTS = CONSTRAINTS
    SLOTS = SLOTS
    FACTORS = FACTORS

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = GROUP["lr"].default,
        eps: tuple[float, float] = GROUP["eps"].default,
        clip_threshold: float = GROUP["clip_threshold"].default,
        betas: tuple[float, float, float] = GROUP["betas"].default,
        weight_decay: float = GROUP["weight_decay"].default,
        state_precision: str = GROUP["state_precision"].default,
        stochastic_rounding: bool = RUNTIME["stochastic_rounding"].default,
        seed: int = RUNTIME["seed"].default,
        compiled_optimizer: bool = RUNTIME["compiled_optimizer"].default,
    ) -> None:
        super().__init__(params, **constructor_arguments(locals()))

    def _update(self, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], state: dict) -> None:
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
                aux = (row, col, scale, *self.residual(p, grad, state, formats[0], row, col, scale,
                                                       (beta1, 1.0 - beta1, beta3, 1.0 - beta3, eps2)))
        scalars = self.scalars(p, group["lr"] * group["weight_decay"],
                               (beta1, 1.0 - beta1, beta2, 1.0 - beta2, eps1, group["lr"]))
        self._run_step(p, grad, group, state, make_came_math, (fac,), scalars, aux=aux, shape=self.kernel_shape(p))

    def residual(self, p: torch.Tensor, grad: torch.Tensor, state: dict, fmt: Format, row: torch.Tensor,
                 col: torch.Tensor, scale: torch.Tensor, values: tuple[float, ...]) -> tuple[torch.Tensor, ...]:
        """The residual kernel (its factors updated in place): (row_res, col_res)."""
        shape = self.kernel_shape(p)
        m = storage.kernel_views(fmt, [state[k] for k in fmt.keys("exp_avg")], shape)
        R, C = state["exp_avg_res_row"], state["exp_avg_res_col"]
        fn = kernels.kernel(make_residual_kernel, (fmt, p.dtype), self.compiled_optimizer, static_shape=shape,
                            vectorise=True)
        return fn(grad.reshape(shape), m, row, col, scale, R.view(shape[0], shape[1]), C.view(shape[0], shape[2]),
                  self.scalars(p, 0.0, values))
