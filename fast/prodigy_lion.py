"""ProdigyLion: Lion with Prodigy's d-adapted step size (spec/prodigy_lion.md)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from fast.d_adaptation import DAdaptation
from fast.lion import lion_flags, lion_values, make_lion_math
from fast.optimizer import constructor_arguments, orthograd_gradient
from spec.hparams.common import RUNTIME
from spec.hparams.prodigy_lion import CONSTRAINTS, GROUP, SLOTS, kept_slots


class ProdigyLion(DAdaptation):
    r"""Lion whose learning rate is multiplied by Prodigy's adapted distance estimate d.

    Symbols: :math:`\eta` = ``lr``, :math:`(\beta_1, \beta_2)` = ``betas``, :math:`\lambda` =
    ``weight_decay``, :math:`\kappa` = ``kappa_p``; d, its statistics and hyperparameters as
    in :class:`fast.Prodigy`.

    Update rule (elementwise, kappa = 1, with the d of the current step):

    .. math::
        c_t = \beta_1 m_{t-1} + d(1-\beta_1) g,\quad U_t = d\eta\,\mathrm{sign}(c_t),\quad
        m_t = \beta_2 m_{t-1} + d(1-\beta_2) g

        p_t = p_{t-1} - d\eta\lambda p_{t-1} - U_t

    and d is updated after all parameters exactly as Prodigy's (without bias correction).

    Args:
        params: parameters or param-group dicts.
        lr: learning rate multiplier :math:`\eta`, >= 0. Default 1.0.
        betas: :math:`(\beta_1, \beta_2)`, each in [0, 1); shared. Default (0.9, 0.99).
        weight_decay: decoupled decay (times d*lr), >= 0. Default 0.
        cautious_wd: decay only where the update and the weight agree in sign. Default False.
        kappa_p: Lion-K exponent in [1, 2]. Default 1.0.
        beta3: decay of the statistics, in [0, 1) or None for sqrt(beta2); shared. Default None.
        d0: initial d, > 0; shared. Default 1e-6.
        d_coef: multiplier of the estimate, > 0; shared. Default 1.0.
        growth_rate: d = min(d_max, growth_rate*d), >= 1; shared. Default inf.
        safeguard_warmup: accumulate s with d instead of d*lr; shared. Default False.
        slice_p: statistics on every slice_p-th element, >= 1; shared. Default 11.
        prodigy_steps: freeze d after this many steps (0: never); shared. Default 0.
        d_limiter: limit each estimate to d*2^(1/4); shared. Default True.
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
        state_precision: storage of ``exp_avg``. Default 'auto'.
        factored_2nd: not available (no second moment): True raises. Default False.
        vector_reshape: factor 0-d and 1-D tensors too. Default False.
        stochastic_rounding: write bf16 parameters with stochastic rounding. Default True.
        seed: seed of the counter-based random draws (with each parameter's key and step). Default 0.
        compiled_optimizer: run the step as a ``torch.compile``'d fused kernel. Default True.

    State per parameter: ``step``, ``rng_key`` (its random streams' key), ``exp_avg``, ``s`` and
    ``p0``; every param group holds ``d``, ``d_max``, ``d_numerator`` and ``k``. Call
    ``end_step()`` after ``step_parameter`` (``step()`` does it).

    Examples:
        >>> import torch, fast
        >>> model = torch.nn.Linear(4, 2)
        >>> opt = fast.ProdigyLion(model.parameters(), compiled_optimizer=False)
        >>> model(torch.randn(8, 4)).square().mean().backward()
        >>> opt.step()
        >>> sorted(opt.state[model.weight])
        ['exp_avg', 'p0', 'rng_key', 's', 'step']

    References:
        adv_optm 2.2.3 ``Lion_Prodigy_adv``; Chen et al., Lion (arXiv 2302.06675); Mishchenko &
        Defazio, Prodigy (arXiv 2306.06101).

    Deviations:
        From adv_optm 2.2.3: the momentum uses beta2 in every storage format (adv's factored
        path uses beta1); the statistics are float64 and ``s`` fp32; the stochastic-rounding
        draws depend on ``seed``, not on any global generator; every state_precision is available.
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
    USES_BIAS_CORRECTION = False

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
        beta3: float | None = GROUP["beta3"].default,
        d0: float = GROUP["d0"].default,
        d_coef: float = GROUP["d_coef"].default,
        growth_rate: float = GROUP["growth_rate"].default,
        safeguard_warmup: bool = GROUP["safeguard_warmup"].default,
        slice_p: int = GROUP["slice_p"].default,
        prodigy_steps: int = GROUP["prodigy_steps"].default,
        d_limiter: bool = GROUP["d_limiter"].default,
        state_precision: str = GROUP["state_precision"].default,
        factored_2nd: bool = GROUP["factored_2nd"].default,
        vector_reshape: bool = GROUP["vector_reshape"].default,
        stochastic_rounding: bool = RUNTIME["stochastic_rounding"].default,
        seed: int = RUNTIME["seed"].default,
        compiled_optimizer: bool = RUNTIME["compiled_optimizer"].default,
    ) -> None:
        super().__init__(params, **constructor_arguments(locals()))

    def _update(self, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], state: dict) -> None:
        dlr = self.dlr(group)
        grad = orthograd_gradient(p, grad, group, self.compiled_optimizer)
        self.statistics(p, grad, group, state, dlr)
        values = lion_values(dlr, group["betas"], group["d"], group["kappa_p"], p.numel(), state.get("step", 0) + 1)
        self._run_step(p, grad, group, state, make_lion_math, lion_flags(group, p),
                       self.scalars(p, dlr * group["weight_decay"], values), ortho=False)
