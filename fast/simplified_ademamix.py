"""Simplified AdEMAMix as one fused kernel per parameter (spec/simplified_ademamix.md)."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable
from typing import Any

import torch

from fast.adam_math import AdamFlags, AdamScalars, make_adam_math, scale_invariant_eps
from fast.optimizer import FastOptimizer, constructor_arguments
from spec.hparams.simplified_ademamix import CONSTRAINTS, GROUP, RUNTIME, SLOTS
from spec.schedules import simplified_beta1, simplified_lr

FLAGS = AdamFlags(first_moment=True, nesterov=False, use_atan2=False, normed_momentum=False, simplified=True)


class SimplifiedAdEMAMix(FastOptimizer):
    r"""Simplified AdEMAMix: Adam whose first moment is an accumulator of raw gradients with a
    long memory (beta1 near 1), plus a strongly weighted current gradient, one fused kernel per
    parameter.

    Symbols: :math:`\eta` = ``lr``, :math:`(\beta_1, \beta_2)` = ``betas``, :math:`\alpha_g` =
    ``alpha_grad``, :math:`\epsilon` = ``eps``, :math:`\lambda` = ``weight_decay``.

    Update rule (elementwise):

    .. math::
        m_t = \beta_1 m_{t-1} + g,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g^2,\quad
        \mathrm{num}_t = \beta_1 \mathrm{num}_{t-1} + 1,\quad
        \mathrm{den}_t = \beta_2 \mathrm{den}_{t-1} + 1 - \beta_2

        \eta' = \frac{\eta}{(1-\beta_1^t)/(1-\beta_1) + \alpha_g},\quad
        U_t = \eta' \sqrt{\mathrm{den}_t/\mathrm{num}_t}\,
        \frac{m_t + \alpha_g g}{\sqrt{v_t} + \sqrt{\mathrm{den}_t}\,\epsilon}

        p_t = p_{t-1} - \eta'\lambda p_{t-1} - U_t

    ``use_bias_correction=False`` keeps num = den = 1. ``beta1_warmup`` moves beta1's
    half-life from ``min_beta1``'s to ``betas[0]``'s over that many steps.

    Args:
        params: parameters or param-group dicts.
        lr: learning rate :math:`\eta`, >= 0. Default 1e-5.
        betas: :math:`(\beta_1, \beta_2)`, beta1 in (0, 1), beta2 in [0, 1). Default (0.99, 0.999).
        eps: denominator term, >= 0, or None for 1/sqrt(numel). Default 1e-8.
        weight_decay: decoupled decay (times the scaled lr), >= 0. Default 0.
        cautious_wd: decay only where the update and the weight agree in sign. Default False.
        alpha_grad: :math:`\alpha_g` >= 0. Default 100.0.
        beta1_warmup: beta1 warm-up steps, or None. Default None.
        min_beta1: beta1 at the start of the warm-up, in [0, 1). Default 0.9.
        use_bias_correction: keep the num/den bias terms. Default True.
        orthograd: OrthoGrad on the gradient before anything reads it: 'flattened' (remove the
            component along the whole weight tensor, keep the norm), 'iterative' (rows and columns,
            3 rounds; vectors use 'flattened') or None. ``p.grad`` is never modified. Default None.
        kourkoutas_beta: Kourkoutas-beta: per bucket, beta2 falls from betas[1] towards
            ``beta2_min`` as the gradient norm spikes above its EMA; the bias correction uses
            the product of the dynamic beta2s. Default False.
        beta2_min: beta2 at a full spike, < betas[1]. Default 0.9.
        ema_alpha: decay of the EMA of the bucket's gradient norm, in [0, 1). Default 0.95.
        tiny_spike: added to that EMA in the spike ratio, > 0. Default 1e-9.
        k_warmup_steps: blend beta2 in from betas[1] over this many steps. Default 0.
        state_precision: storage of the moments; see the state storage spec page. Default 'auto'.
        factored_2nd: factor only ``exp_avg_sq``. Default False.
        vector_reshape: factor 0-d and 1-D tensors too; needs a factored mode. Default False.
        stochastic_rounding: write bf16 parameters with stochastic rounding. Default True.
        seed: seed of the counter-based random draws (with each parameter's key and step). Default 0.
        compiled_optimizer: run the step as a ``torch.compile``'d fused kernel. Default True.
        layer_key_fn: ``f(p) -> key``; tensors with equal keys share one Kourkoutas bucket
            (one gradient norm, one EMA). None: one bucket per tensor. Needs kourkoutas_beta.

    State per parameter: ``step``, ``rng_key`` (its random streams' key), ``exp_avg``,
    ``exp_avg_sq`` and the floats ``num_sum``, ``den_sum``.

    Examples:
        >>> import torch, fast
        >>> model = torch.nn.Linear(4, 2)
        >>> opt = fast.SimplifiedAdEMAMix(model.parameters(), lr=1e-4, compiled_optimizer=False)
        >>> model(torch.randn(8, 4)).square().mean().backward()
        >>> opt.step()
        >>> opt.state[model.weight]["num_sum"]
        1.0

    References:
        Morwani et al., Connections between Schedule-Free Optimizers, AdEMAMix, and Accelerated
        SGD Variants (arXiv 2502.02431); adv_optm 2.2.3 ``Simplified_AdEMAMix``.

    Deviations:
        The stochastic-rounding draws are a function of ``seed``, the parameter's key and its step; every
        state_precision is available (adv 2.2.3: fp32 or factored); ``betas[0] = 0`` raises.
        Direction features (spec/directions.md): OrthoGrad takes its mode as a string or None
        (adv's boolean crashes) and never writes ``p.grad``; Kourkoutas-beta uses the current step's
        gradient norms and one bucket per tensor by default (adv lags one step and buckets
        same-shape tensors) and bias-corrects with the product of the dynamic beta2s (adv uses
        the static beta2).
    """

    HYPERPARAMETERS = GROUP
    RUNTIME = RUNTIME
    CONSTRAINTS = CONSTRAINTS
    SLOTS = SLOTS

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = GROUP["lr"].default,
        betas: tuple[float, float] = GROUP["betas"].default,
        eps: float | None = GROUP["eps"].default,
        weight_decay: float = GROUP["weight_decay"].default,
        cautious_wd: bool = GROUP["cautious_wd"].default,
        alpha_grad: float = GROUP["alpha_grad"].default,
        beta1_warmup: int | None = GROUP["beta1_warmup"].default,
        min_beta1: float = GROUP["min_beta1"].default,
        use_bias_correction: bool = GROUP["use_bias_correction"].default,
        orthograd: str | None = GROUP["orthograd"].default,
        kourkoutas_beta: bool = GROUP["kourkoutas_beta"].default,
        beta2_min: float = GROUP["beta2_min"].default,
        ema_alpha: float = GROUP["ema_alpha"].default,
        tiny_spike: float = GROUP["tiny_spike"].default,
        k_warmup_steps: int = GROUP["k_warmup_steps"].default,
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
        t = state.get("step", 0) + 1
        beta1 = simplified_beta1(t, group)
        beta2, _ = self.beta2_and_bc2(p, group, state, t)  # den's recursion is the product itself
        if group["use_bias_correction"]:
            num = beta1 * state.get("num_sum", 0.0) + 1.0
            den = beta2 * state.get("den_sum", 0.0) + (1.0 - beta2)
        else:
            num = den = 1.0
        lr = simplified_lr(group["lr"], beta1, t, group["alpha_grad"])
        # (m + a g)/(sqrt(v) + sqrt(den) eps) * sqrt(den/num) = (m + a g)/(sqrt(v/den) + eps) / sqrt(num)
        values = AdamScalars(lr / math.sqrt(num), beta1, 1.0, beta2, 1 - beta2, math.sqrt(den),
                             scale_invariant_eps(group["eps"], p.numel()), 0.0, 1.0, alpha_grad=group["alpha_grad"])
        scalars = self.scalars(p, lr * group["weight_decay"], values)
        self._run_step(p, grad, group, state, make_adam_math, FLAGS, scalars)
        state["num_sum"], state["den_sum"] = num, den
