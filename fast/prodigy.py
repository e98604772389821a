"""Prodigy: Adam with d-adapted step size, one fused kernel per parameter (spec/prodigy.md)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any

import torch

from fast.adam_math import ATAN2_SCALE, AdamScalars, adam_flags, ademamix_scalars, make_adam_math, scale_invariant_eps
from fast.d_adaptation import DAdaptation
from fast.optimizer import constructor_arguments, orthograd_gradient
from spec.hparams.prodigy import CONSTRAINTS, GROUP, RUNTIME, SLOTS, kept_slots
from spec.schedules import simplified_lr


class Prodigy(DAdaptation):
    r"""Prodigy: Adam whose learning rate is multiplied by an estimate d of the distance to the
    solution, adapted every step (learning-rate-free Adam; use ``lr=1``).

    d grows from ``d0`` as the correlation between the gradients and the distance travelled
    from the initial weights accumulates. One d serves all param groups.

    Symbols: :math:`\eta` = ``lr``, :math:`(\beta_1, \beta_2)` = ``betas``, :math:`\beta_3` =
    ``beta3`` (default :math:`\sqrt{\beta_2}`), :math:`\epsilon` = ``eps``, :math:`\lambda` =
    ``weight_decay``, :math:`d_0` = ``d0``, :math:`k` = the optimizer's 0-based step.

    Update rule (elementwise, per parameter, with the d of the current step):

    .. math::
        m_t = \beta_1 m_{t-1} + d(1-\beta_1) g,\quad v_t = \beta_2 v_{t-1} + d^2(1-\beta_2) g^2,\quad
        U_t = d\,\eta\,\mathrm{bc}\,\frac{m_t}{\sqrt{v_t} + d\epsilon}

        p_t = p_{t-1} - d\eta\,\mathrm{bc}\,\lambda p_{t-1} - U_t

    with :math:`\mathrm{bc} = \sqrt{1-\beta_2^{k+1}}/(1-\beta_1^{k+1})` when
    ``use_bias_correction``, else 1. After all parameters,
    :math:`\hat d = d_\mathrm{coef} N / \sum\lVert s\rVert_1` from the statistics
    :math:`N \leftarrow \beta_3 N + \sum (d/d_0)\, d\eta\mathrm{bc}\,\langle g, p_0 - p\rangle` and
    :math:`s \leftarrow \beta_3 s + (d/d_0)\, d\eta\mathrm{bc}\, g` (on every ``slice_p``-th
    element), and :math:`d \leftarrow \min(\max(d_\max, \hat d), \gamma d)`. The full rule,
    including the limiter and the first growth, is on the Prodigy spec page.

    Args:
        params: parameters or param-group dicts (lr, eps, weight decay and the flags may differ
            per group; everything the d estimate reads is shared and may not).
        lr: learning rate multiplier :math:`\eta`, >= 0. Default 1.0.
        betas: :math:`(\beta_1, \beta_2)`, each in [0, 1); shared. Default (0.9, 0.999).
        eps: denominator term (times d), >= 0, or None for 1/sqrt(numel). Default 1e-8.
        weight_decay: decoupled decay :math:`\lambda` (times d*lr*bc), >= 0. Default 0.
        cautious_wd: decay only where the update and the weight agree in sign. Default False.
        use_bias_correction: Adam's bias correction folded into the step size; shared. Default False.
        use_atan2: bounded, eps-free direction. Default False.
        nesterov: Nesterov look-ahead numerator c*m + (1-c)*d*g. Default False.
        nesterov_coef: c in [0, 1], or None for beta1. Default None.
        use_AdEMAMix: add alpha times a slow EMA of d*g to the numerator. Default False.
        beta3_ema: the slow EMA's decay, in [0, 1). Default 0.9999.
        alpha: the slow EMA's weight, >= 0. Default 5.0.
        t_alpha: alpha warm-up steps, or None. Default None.
        t_beta3: beta3_ema half-life warm-up steps, or None. Default None.
        Simplified_AdEMAMix: accumulator first moment m = beta1*m + d*g. Default False.
        alpha_grad: weight of d*g in the Simplified numerator, >= 0. Default 100.0.
        beta3: decay of the statistics, in [0, 1) or None for sqrt(beta2); shared. Default None.
        d0: initial d, > 0; shared. Default 1e-6.
        d_coef: multiplier of the estimate, > 0; shared. Default 1.0.
        growth_rate: d = min(d_max, growth_rate*d) (the first estimate above d0 is taken whole),
            >= 1; shared. Default inf.
        safeguard_warmup: accumulate s with d instead of d*lr*bc; shared. Default False.
        slice_p: statistics on every slice_p-th element, >= 1; shared. Default 11.
        prodigy_steps: freeze d after this many steps (0: never); shared. Default 0.
        d_limiter: limit each estimate to d*2^(1/4); shared. Default False.
        orthograd: OrthoGrad on the gradient before anything reads it: 'flattened' (remove the
            component along the whole weight tensor, keep the norm), 'iterative' (rows and columns,
            3 rounds; vectors use 'flattened') or None. ``p.grad`` is never modified. Default None.
        cautious: keep only the numerator coordinates whose sign agrees with the gradient,
            rescaled by 1/max(mean kept, 1e-3); needs betas[0] > 0. Default False.
        grams: numerator sign(g)*|m| (Grams); contradicts ``cautious``. Default False.
        kourkoutas_beta: Kourkoutas-beta: per bucket, beta2 falls from betas[1] towards
            ``beta2_min`` as the gradient norm spikes above its EMA; the bias correction uses
            the product of the dynamic beta2s. Default False.
        beta2_min: beta2 at a full spike, < betas[1]. Default 0.9.
        ema_alpha: decay of the EMA of the bucket's gradient norm, in [0, 1). Default 0.95.
        tiny_spike: added to that EMA in the spike ratio, > 0. Default 1e-9.
        k_warmup_steps: blend beta2 in from betas[1] over this many steps. Default 0.
        state_precision: storage of the moments (not of s and p0); see the state storage page.
            Default 'auto'.
        factored_2nd: factor only ``exp_avg_sq``. Default False.
        vector_reshape: factor 0-d and 1-D tensors too. Default False.
        stochastic_rounding: write bf16 parameters with stochastic rounding. Default True.
        seed: seed of the counter-based random draws (with each parameter's key and step). Default 0.
        compiled_optimizer: run the step as a ``torch.compile``'d fused kernel. Default True.
        layer_key_fn: ``f(p) -> key``; tensors with equal keys share one Kourkoutas bucket
            (one gradient norm, one EMA). None: one bucket per tensor. Needs kourkoutas_beta.

    State per parameter: ``step``, ``rng_key`` (its random streams' key), ``exp_avg`` (if
    betas[0] > 0), ``exp_avg_sq``, ``exp_avg_slow`` (AdEMAMix), ``s`` (fp32) and ``p0``
    (parameter dtype) on the slice, freed when d freezes. Every param group holds ``d``,
    ``d_max``, ``d_numerator`` and ``k``.

    ``step()`` updates d after the last parameter; when stepping parameters one by one with
    ``step_parameter`` (backward hooks), call ``end_step()`` once per step after the last one.

    Examples:
        >>> import torch, fast
        >>> model = torch.nn.Linear(4, 2)
        >>> opt = fast.Prodigy(model.parameters(), lr=1.0, compiled_optimizer=False)
        >>> for _ in range(3):
        ...     model(torch.randn(8, 4)).square().mean().backward()
        ...     opt.step()
        >>> opt.param_groups[0]["d"] >= 1e-6
        True

    References:
        Mishchenko & Defazio, Prodigy (arXiv 2306.06101); prodigyopt 1.1.2; adv_optm 2.5.16
        ``Prodigy_adv`` (2.2.3 for AdEMAMix and Simplified AdEMAMix).

    Deviations:
        The eps term uses the d of the current step (prodigyopt: the updated d); the statistics
        are float64 on the slice and ``s`` is fp32 whatever the parameter dtype (adv: fp32
        products and s in the parameter dtype); each group's lr enters its own d*lr
        (prodigyopt: the largest lr); parameters are updated even when the denominator is 0
        (prodigyopt skips the step); stochastic-rounding draws depend on ``seed``, not on any global generator.
        Factored second moments hold d^2-scaled values: while d is tiny (d0 = 1e-6) their sum can
        fall below the factorization's 1e-12 floor and be under-stored (as in adv_optm); start
        factored Prodigy with a larger d0.
        Direction features (spec/directions.md): OrthoGrad takes its mode as a string or None
        (adv's boolean crashes) and never writes ``p.grad``; Kourkoutas-beta uses the current step's
        gradient norms and one bucket per tensor by default (adv lags one step and buckets
        same-shape tensors) and bias-corrects with the product of the dynamic beta2s (adv uses
        the static beta2); Cautious with Grams raises (adv 2.2.3 silently drops Cautious). Prodigy's shared
        d*lr*bc keeps the static beta2.
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
        eps: float | None = GROUP["eps"].default,
        weight_decay: float = GROUP["weight_decay"].default,
        cautious_wd: bool = GROUP["cautious_wd"].default,
        use_bias_correction: bool = GROUP["use_bias_correction"].default,
        use_atan2: bool = GROUP["use_atan2"].default,
        nesterov: bool = GROUP["nesterov"].default,
        nesterov_coef: float | None = GROUP["nesterov_coef"].default,
        use_AdEMAMix: bool = GROUP["use_AdEMAMix"].default,
        beta3_ema: float = GROUP["beta3_ema"].default,
        alpha: float = GROUP["alpha"].default,
        t_alpha: int | None = GROUP["t_alpha"].default,
        t_beta3: int | None = GROUP["t_beta3"].default,
        Simplified_AdEMAMix: bool = GROUP["Simplified_AdEMAMix"].default,
        alpha_grad: float = GROUP["alpha_grad"].default,
        orthograd: str | None = GROUP["orthograd"].default,
        cautious: bool = GROUP["cautious"].default,
        grams: bool = GROUP["grams"].default,
        kourkoutas_beta: bool = GROUP["kourkoutas_beta"].default,
        beta2_min: float = GROUP["beta2_min"].default,
        ema_alpha: float = GROUP["ema_alpha"].default,
        tiny_spike: float = GROUP["tiny_spike"].default,
        k_warmup_steps: int = GROUP["k_warmup_steps"].default,
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
        layer_key_fn: Callable[[torch.Tensor], Hashable] | None = RUNTIME["layer_key_fn"].default,
    ) -> None:
        super().__init__(params, **constructor_arguments(locals()))

    def _update(self, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], state: dict) -> None:
        dlr = self.dlr(group)
        grad = orthograd_gradient(p, grad, group, self.compiled_optimizer)
        self.statistics(p, grad, group, state, dlr)
        t = state.get("step", 0) + 1
        beta1 = group["betas"][0]
        beta2, _ = self.beta2_and_bc2(p, group, state, t)  # d*lr*bc keeps the static beta2
        d = group["d"]
        simplified = group["Simplified_AdEMAMix"]
        lr_eff = simplified_lr(dlr, beta1, t, group["alpha_grad"]) if simplified else dlr
        bc1 = 1 - beta1 ** (group["k"] + 1) if group["use_bias_correction"] else 1.0
        c = beta1 if group["nesterov_coef"] is None else group["nesterov_coef"]
        values = AdamScalars(
            lr_eff * (ATAN2_SCALE if group["use_atan2"] else 1.0), beta1, 1.0 if simplified else 1 - beta1, beta2,
            1 - beta2, 1.0, d * scale_invariant_eps(group["eps"], p.numel()), c, 1 - c, d,
            **ademamix_scalars(group, t, bc1), alpha_grad=group["alpha_grad"],
        )
        self._run_step(p, grad, group, state, make_adam_math, adam_flags(group),
                       self.scalars(p, lr_eff * group["weight_decay"], values), ortho=False)
