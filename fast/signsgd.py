"""SignSGD (Signum) as one fused kernel per parameter (spec/signsgd.md)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from fast.directions import NO_SIGN_FEATURES, SignFlags, sign_pipeline
from fast.lion import sign_flags
from fast.optimizer import FastOptimizer, constructor_arguments
from spec.hparams.common import RUNTIME
from spec.hparams.signsgd import CONSTRAINTS, GROUP, SLOTS, kept_slots


def make_signsgd_math(momentum: bool, nesterov: bool, normed_momentum: bool, simplified: bool,
                      flags: SignFlags = NO_SIGN_FEATURES):
    """``math(G, (m, prev), s, noise) -> (U, (m, bits), ell)``; ``s`` = [lr, mu, a, c, 1-c,
    alpha_grad, have_prev] with ``a`` the weight of the new term (1 - mu, or 1 for the Simplified
    AdEMAMix accumulator). The sign features act on the raw direction x that is signed."""

    def signsgd_math(G, states, s, noise=None):
        m, prev = states
        lr, mu, a, c, one_m_c, alpha_grad, have_prev = s.unbind(0)
        x = torch.sign(G) if normed_momentum else G
        m_new = None
        if not momentum:
            n = x
        else:
            m_new = mu * m + a * x
            if simplified:
                n = m_new + alpha_grad * x
            elif nesterov:
                # Normed momentum mixes sign(g) at the magnitude of the previous momentum (adv_optm).
                n = c * m_new + one_m_c * (m.abs() * x if normed_momentum else x)
            else:
                n = m_new
        if normed_momentum:
            return lr * n, (m_new, None), None
        direction, ell, bits = sign_pipeline(n, G, flags, noise, prev, have_prev)
        return lr * direction, (m_new, bits), ell

    return signsgd_math


class SignSGD(FastOptimizer):
    r"""Signed SGD with momentum (Signum), one fused kernel per parameter.

    Every coordinate steps by the learning rate in the direction of the sign of an EMA of the
    gradient (or of the gradient itself when ``momentum = 0``). Variants: Nesterov look-ahead,
    normed momentum (the EMA of sign(g), followed without a sign), Simplified AdEMAMix
    accumulator.

    Symbols: :math:`\eta` = ``lr``, :math:`\mu` = ``momentum``, :math:`\lambda` =
    ``weight_decay``, :math:`c` = ``nesterov_coef`` (default :math:`\mu`), :math:`\alpha_g` =
    ``alpha_grad``.

    Update rule (elementwise):

    .. math::
        m_t = \mu m_{t-1} + (1-\mu) g,\quad U_t = \eta\,\mathrm{sign}(m_t),\quad
        p_t = p_{t-1} - \eta\lambda p_{t-1} - U_t

    Nesterov: :math:`U = \eta\,\mathrm{sign}(c m_t + (1-c) g)`. Normed momentum:
    :math:`m_t = \mu m_{t-1} + (1-\mu)\mathrm{sign}(g)`, :math:`U = \eta m_t` (with Nesterov
    :math:`U = \eta(c m_t + (1-c)|m_{t-1}|\mathrm{sign}(g))`). Simplified AdEMAMix:
    :math:`m_t = \mu m_{t-1} + g`, :math:`U = \eta\,\mathrm{sign}(m_t + \alpha_g g)`.

    Args:
        params: parameters or param-group dicts.
        lr: learning rate :math:`\eta`, >= 0. Default 1e-4.
        momentum: :math:`\mu` in [0, 1); 0 keeps no state. Default 0.9.
        weight_decay: decoupled decay :math:`\lambda`, >= 0. Default 0.
        cautious_wd: decay only where the update and the weight agree in sign. Default False.
        normed_momentum: EMA of sign(g), stepped along without a sign. Default False.
        nesterov: look-ahead numerator; needs momentum > 0. Default False.
        nesterov_coef: :math:`c` in [0, 1] or None for :math:`\mu`; only with nesterov. Default None.
        Simplified_AdEMAMix: accumulate m = mu*m + g and step along sign(m + alpha_grad*g);
            needs momentum > 0; contradicts nesterov and normed_momentum. Default False.
        alpha_grad: :math:`\alpha_g` >= 0. Default 1.0.
        orthograd: OrthoGrad on the gradient before anything reads it: 'flattened' (remove the
            component along the whole weight tensor, keep the norm), 'iterative' (rows and columns,
            3 rounds; vectors use 'flattened') or None. ``p.grad`` is never modified. Default None.
        stochastic_sign: matrices take sign(x + xi) of x scaled to max |x| = 1 per row, then
            per column, xi uniform in (-1, 1) from the optimizer's random draws (E = x); vectors keep
            the sign. Default False.
        freeze_on_flip: zero the update where the direction's sign flipped since the previous
            step (state ``prev_sign``, 1 bit per element). Default False.
        projected_adaptivity: scale the sign update and the weight decay by the L1 magnitude of
            the direction (mean |x|; rank-1 row x column means for matrices). Default False.
        state_precision: storage of ``exp_avg``; see the state storage spec page. Default 'auto'.
        factored_2nd: not available (no second moment): True raises. Default False.
        vector_reshape: factor 0-d and 1-D tensors too; needs 'factored'. Default False.
        stochastic_rounding: write bf16 parameters with stochastic rounding. Default True.
        seed: seed of the counter-based random draws (with each parameter's key and step). Default 0.
        compiled_optimizer: run the step as a ``torch.compile``'d fused kernel. Default True.

    State per parameter: ``step``, ``rng_key`` (its random streams' key) and, when momentum > 0,
    ``exp_avg``.

    Examples:
        >>> import torch, fast
        >>> model = torch.nn.Linear(4, 2)
        >>> opt = fast.SignSGD(model.parameters(), lr=1e-3, momentum=0.9, compiled_optimizer=False)
        >>> model(torch.randn(8, 4)).square().mean().backward()
        >>> opt.step()
        >>> sorted(opt.state[model.weight])
        ['exp_avg', 'rng_key', 'step']

    References:
        Bernstein et al., signSGD (arXiv 1802.04434); adv_optm 2.5.16 ``SignSGD_adv`` (2.2.3 for
        Simplified AdEMAMix).

    Deviations:
        From adv_optm 2.5.16: ``momentum = 0`` with 'factored' states works (adv crashes); the
        stochastic-rounding draws are a function of ``seed``, the parameter's key and its step;
        ``nesterov_coef`` without ``nesterov`` and the Simplified AdEMAMix contradictions raise.
        ``snr_cond`` and ``geometric_wd`` are not provided.
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
        momentum: float = GROUP["momentum"].default,
        weight_decay: float = GROUP["weight_decay"].default,
        cautious_wd: bool = GROUP["cautious_wd"].default,
        normed_momentum: bool = GROUP["normed_momentum"].default,
        nesterov: bool = GROUP["nesterov"].default,
        nesterov_coef: float | None = GROUP["nesterov_coef"].default,
        Simplified_AdEMAMix: bool = GROUP["Simplified_AdEMAMix"].default,
        alpha_grad: float = GROUP["alpha_grad"].default,
        orthograd: str | None = GROUP["orthograd"].default,
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
        mu, lr = group["momentum"], group["lr"]
        c = mu if group["nesterov_coef"] is None else group["nesterov_coef"]
        a = 1.0 if group["Simplified_AdEMAMix"] else 1 - mu
        flags = (mu > 0, group["nesterov"], group["normed_momentum"], group["Simplified_AdEMAMix"],
                 sign_flags(group, p))
        values = (lr, mu, a, c, 1 - c, group["alpha_grad"], 1.0 if state.get("step", 0) > 0 else 0.0)
        self._run_step(p, grad, group, state, make_signsgd_math, flags,
                       self.scalars(p, lr * group["weight_decay"], values))
