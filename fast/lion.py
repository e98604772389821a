"""Lion and Lion-K as one fused kernel per parameter (spec/lion.md)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from fast.directions import NO_SIGN_FEATURES, SignFlags, sign_pipeline
from fast.optimizer import FastOptimizer, constructor_arguments
from spec.hparams.common import RUNTIME
from spec.hparams.lion import CONSTRAINTS, GROUP, SLOTS, kept_slots

NORM_FLOOR = 1e-12


def kappa_mode(kappa: float) -> str:
    """The static shape of the Lion-K direction: the sign, the L2 direction or the power."""
    return "sign" if kappa == 1.0 else "l2" if kappa == 2.0 else "power"


def make_lion_math(mode: str, flags: SignFlags = NO_SIGN_FEATURES):
    """``math(G, (m, prev), s, noise) -> (U, (m, bits), ell)``; ``s`` = [step_size, beta1, 1-beta1,
    beta2, 1-beta2, g_scale, kappa, sqrt(numel), have_prev]. ``g_scale`` is ProdigyLion's d (1 for
    Lion); ``prev``/``bits`` are freeze-on-flip's previous and new signs (None without it)."""

    def lion_math(G, states, s, noise=None):
        m, prev = states
        step_size, beta1, one_m_beta1, beta2, one_m_beta2, g_scale, kappa, sqrt_n, have_prev = s.unbind(0)
        Gd = g_scale * G
        c = beta1 * m + one_m_beta1 * Gd
        direction = None
        if mode != "sign":
            x = c if mode == "l2" else torch.sign(c) * c.abs().pow(kappa - 1)
            # A whole-tensor norm: the only reduction in the step, needed only for kappa != 1.
            direction = x / torch.linalg.vector_norm(x).clamp_min(NORM_FLOOR) * sqrt_n
        # Projected adaptivity's l reads c / d, in gradient units (the step stays linear in d); the
        # other features read only signs, the same for c and c / d.
        x = c / g_scale if flags.projected else c
        direction, ell, bits = sign_pipeline(x, G, flags, noise, prev, have_prev, direction)
        return step_size * direction, (beta2 * m + one_m_beta2 * Gd, bits), ell

    return lion_math


def lion_values(step_size: float, betas: tuple[float, float], g_scale: float, kappa: float, numel: int,
                t: int = 1):
    beta1, beta2 = betas
    return (step_size, beta1, 1 - beta1, beta2, 1 - beta2, g_scale, kappa, math.sqrt(max(numel, 1)),
            1.0 if t > 1 else 0.0)


def lion_flags(group: dict[str, Any], p: torch.Tensor) -> tuple:
    """The static flags of the Lion kernel for ``p`` under ``group``."""
    return (kappa_mode(group["kappa_p"]), sign_flags(group, p, cautious=group["cautious"]))


def sign_flags(group: dict[str, Any], p: torch.Tensor, cautious: bool = False) -> SignFlags:
    matrix = any(group[k] for k in ("stochastic_sign", "projected_adaptivity"))
    return SignFlags(cautious, group["stochastic_sign"], group["freeze_on_flip"], group["projected_adaptivity"],
                     p.shape[0] if matrix and p.dim() >= 2 else 0)


class Lion(FastOptimizer):
    r"""Lion (EvoLved Sign Momentum) and its Lion-K generalisation, one fused kernel per parameter.

    The update is the sign of an interpolation between the momentum and the gradient, so every
    coordinate moves by exactly the learning rate; the momentum is a slower EMA of the gradient.
    ``kappa_p`` between 1 and 2 moves continuously from the sign to the L2-normalised direction.

    Symbols: :math:`\eta` = ``lr``, :math:`(\beta_1, \beta_2)` = ``betas``, :math:`\lambda` =
    ``weight_decay``, :math:`\kappa` = ``kappa_p``, :math:`N` = numel of the parameter.

    Update rule (elementwise, kappa = 1):

    .. math::
        c_t = \beta_1 m_{t-1} + (1-\beta_1) g,\quad U_t = \eta\,\mathrm{sign}(c_t),\quad
        m_t = \beta_2 m_{t-1} + (1-\beta_2) g

        p_t = p_{t-1} - \eta\lambda p_{t-1} - U_t

    Lion-K: :math:`s = \mathrm{sign}(c)|c|^{\kappa-1}` (:math:`s = c` for :math:`\kappa = 2`),
    :math:`U = \eta\,\sqrt{N}\,s/\max(\lVert s\rVert_2, 10^{-12})`.

    Args:
        params: parameters or param-group dicts.
        lr: learning rate :math:`\eta`, >= 0. Default 1e-4.
        betas: :math:`(\beta_1, \beta_2)`, each in [0, 1). Default (0.9, 0.99).
        weight_decay: decoupled decay :math:`\lambda`, >= 0. Default 0.
        cautious_wd: decay only where the update and the weight agree in sign. Default False.
        kappa_p: :math:`\kappa` in [1, 2]. Default 1.0 (Lion).
        orthograd: OrthoGrad on the gradient before anything reads it: 'flattened' (remove the
            component along the whole weight tensor, keep the norm), 'iterative' (rows and columns,
            3 rounds; vectors use 'flattened') or None. ``p.grad`` is never modified. Default None.
        cautious: keep only the direction coordinates whose sign agrees with the gradient,
            rescaled by 1/max(mean kept, 1e-3). Default False.
        stochastic_sign: matrices take sign(x + xi) of x scaled to max |x| = 1 per row, then
            per column, xi uniform in (-1, 1) from the optimizer's random draws (E = x); vectors keep
            the sign. Default False.
        freeze_on_flip: zero the update where the direction's sign flipped since the previous
            step (state ``prev_sign``, 1 bit per element). Default False.
        projected_adaptivity: scale the sign update and the weight decay by the L1 magnitude of
            the direction (mean |x|; rank-1 row x column means for matrices). Default False.
        state_precision: storage of ``exp_avg`` ('auto', 'fp32', 'bf16_sr', 'fp16', 'int8_sr',
            'factored'); see the state storage spec page. Default 'auto'.
        factored_2nd: not available (Lion has no second moment): True raises. Default False.
        vector_reshape: factor 0-d and 1-D tensors too; needs 'factored'. Default False.
        stochastic_rounding: write bf16 parameters with stochastic rounding. Default True.
        seed: seed of the counter-based random draws (with each parameter's key and step). Default 0.
        compiled_optimizer: run the step as a ``torch.compile``'d fused kernel. Default True.

    State per parameter: ``step``, ``rng_key`` (its random streams' key) and ``exp_avg`` (in its
    ``state_precision`` format).

    Examples:
        >>> import torch, fast
        >>> model = torch.nn.Linear(4, 2)
        >>> opt = fast.Lion(model.parameters(), lr=1e-3, weight_decay=0.1, compiled_optimizer=False)
        >>> model(torch.randn(8, 4)).square().mean().backward()
        >>> opt.step()
        >>> sorted(opt.state[model.weight])
        ['exp_avg', 'rng_key', 'step']

    References:
        Chen et al., Symbolic Discovery of Optimization Algorithms (arXiv 2302.06675);
        Chen et al., Lion Secretly Solves Constrained Optimization (Lion-K, arXiv 2310.05898);
        lion-pytorch 0.2.5; adv_optm 2.5.16 ``Lion_adv``.

    Deviations:
        From adv_optm 2.5.16: ``compiled_optimizer`` is honoured (adv's Lion ignores it); the
        stochastic-rounding draws are a function of ``seed``, the parameter's key and its step; every
        state_precision is available (adv's Lion only has its factored mode); ``auto_kappa_p``
        is not provided. From lion-pytorch: none for ``kappa_p = 1`` (checked in float64).
        Direction features (spec/directions.md): stochastic-sign noise is a counter-based stream
        (seed, key, step), so a resume reproduces it; freeze-on-flip and projected adaptivity follow the
        OneTrainer PR 1344 description (no adv_optm release has them); projected adaptivity's
        matrix scale is the rank-1 estimate row mean x column mean / mean of |x|.
    """

    HYPERPARAMETERS = GROUP
    RUNTIME = RUNTIME
    CONSTRAINTS = CONSTRAINTS
    SLOTS = SLOTS
    KEPT_SLOTS = staticmethod(kept_slots)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = GROUP["lr"].default,
        betas: tuple[float, float] = GROUP["betas"].default,
        weight_decay: float = GROUP["weight_decay"].default,
        cautious_wd: bool = GROUP["cautious_wd"].default,
        kappa_p: float = GROUP["kappa_p"].default,
        orthograd: str | None = GROUP["orthograd"].default,
        cautious: bool = GROUP["cautious"].default,
        stochastic_sign: bool = GROUP["stochastic_sign"].default,
        freeze_on_flip: bool = GROUP["freeze_on_flip"].default,
        projected_adaptivity: bool = GROUP["projected_adaptivity"].default,
        state_precision: str = GROUP["state_precision"].default,
        factored_2nd: bool = GROUP["factored_2nd"].default,
        vector_reshape: bool = GROUP["vector_reshape"].default,
        stochastic_rounding: bool = RUNTIME["stochastic_rounding"].default,
        seed: int = RUNTIME["seed"].default,
        compiled_optimizer: bool = RUNTIME["compiled_optimizer"].default,
    ) -> None:
        super().__init__(params, **constructor_arguments(locals()))

    def _update(self, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], state: dict) -> None:
        lr = group["lr"]
        values = lion_values(lr, group["betas"], 1.0, group["kappa_p"], p.numel(), state.get("step", 0) + 1)
        self._run_step(p, grad, group, state, make_lion_math, lion_flags(group, p),
                       self.scalars(p, lr * group["weight_decay"], values))
