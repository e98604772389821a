"""Adopt as one fused kernel per parameter (spec/adopt.md)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any

import torch

from fast import directions
from fast.adam_math import ATAN2_SCALE, ademamix_scalars, scale_invariant_eps
from fast.optimizer import FastOptimizer, constructor_arguments
from spec.hparams.adopt import CONSTRAINTS, GROUP, RUNTIME, SLOTS, kept_slots
from spec.schedules import simplified_lr


def make_adopt_math(first_moment: bool, first_step: bool, use_atan2: bool, clip: bool, nesterov: bool,
                    ademamix: bool, simplified: bool, cautious: bool = False, grams: bool = False):
    """``math(G, (m, v, m2), s, noise) -> (U, (m, v, m2), None)``; ``s`` = [step_size, beta1, a1, beta2,
    1-beta2, eps, clip, c, 1-c, beta3, 1-beta3, alpha, alpha_grad].

    v starts as g^2: without atan2 that is the first step's only effect (no update, no decay);
    with atan2 the first step is a real step from that v.
    """

    def adopt_math(G, states, s, noise=None):
        m, v, m2 = states
        (step_size, beta1, a1, beta2, one_m_beta2, eps, clip_value, c, one_m_c, beta3, one_m_beta3, alpha,
         alpha_grad) = s.unbind(0)
        if first_step:
            v = G * G
            if not use_atan2:
                return torch.zeros_like(G), (m, v, m2), None
        sqrt_v = v.sqrt()
        if use_atan2:
            x = torch.atan2(G, sqrt_v)
        else:
            x = G / torch.maximum(sqrt_v, eps)
            if clip:
                x = x.clamp(-clip_value, clip_value)
        m_new = m2_new = None
        if first_moment:
            m_new = beta1 * m + a1 * x
            n = c * m_new + one_m_c * x if nesterov else m_new
        else:
            n = x
        if grams:
            n = directions.grams(n, G)
        if cautious:
            n = directions.cautious(n, G)
        if simplified:
            n = m_new + alpha_grad * x
        if ademamix:
            m2_new = beta3 * m2 + one_m_beta3 * x
            n = n + alpha * m2_new
        return step_size * n, (m_new, beta2 * v + one_m_beta2 * G * G, m2_new), None

    return adopt_math


class Adopt(FastOptimizer):
    r"""ADOPT: Adam whose gradient is normalised by the *previous* second moment, one fused
    kernel per parameter.

    Normalising by :math:`v_{t-1}` (which does not contain the current gradient) removes the
    correlation that makes Adam diverge on some problems, for any :math:`\beta_2`. The first
    step only initialises :math:`v = g^2`; later normalised gradients are clipped to
    :math:`\pm k^{q}` (k the 0-based step) for stability in the first steps.

    Symbols: :math:`\eta` = ``lr``, :math:`(\beta_1, \beta_2)` = ``betas``, :math:`\epsilon` =
    ``eps``, :math:`\lambda` = ``weight_decay``, :math:`q` = ``clip_lambda``, :math:`c` =
    ``nesterov_coef``, :math:`k = t - 1`.

    Update rule (elementwise, k >= 1):

    .. math::
        \hat g = \mathrm{clip}\big(g / \max(\sqrt{v_{t-1}}, \epsilon), -k^{q}, k^{q}\big),\quad
        m_t = \beta_1 m_{t-1} + (1-\beta_1)\hat g,\quad U_t = \eta\, m_t

        p_t = p_{t-1} - \eta\lambda p_{t-1} - U_t,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g^2

    atan2: :math:`\hat g = \mathrm{atan2}(g, \sqrt{v_{t-1}})`, :math:`U = \frac{4}{\pi}\eta m_t`,
    no clip, and the first step is a real step. Nesterov: :math:`n = c m_t + (1-c)\hat g`.
    AdEMAMix adds :math:`\alpha m^{(2)}_t`, a slow EMA of :math:`\hat g`; Simplified AdEMAMix
    accumulates :math:`m_t = \beta_1 m_{t-1} + \hat g` and steps along
    :math:`m_t + \alpha_g \hat g` with :math:`\eta/(\sum_{i<t}\beta_1^i + \alpha_g)`.

    Args:
        params: parameters or param-group dicts.
        lr: learning rate :math:`\eta`, >= 0. Default 1e-4.
        betas: :math:`(\beta_1, \beta_2)`, each in [0, 1). Default (0.9, 0.9999).
        eps: floor of :math:`\sqrt{v}`, >= 0, or None for 1/sqrt(numel). Default 1e-6.
        weight_decay: decoupled decay :math:`\lambda`, >= 0. Default 0.
        cautious_wd: decay only where the update and the weight agree in sign. Default False.
        clip_lambda: the clip exponent :math:`q` >= 0 (clip at :math:`k^q`), or None for no
            clip. Default 0.25.
        use_atan2: bounded, eps-free normalisation. Default False.
        nesterov: look-ahead numerator; needs betas[0] > 0. Default False.
        nesterov_coef: :math:`c` in [0, 1] or None for :math:`\beta_1`. Default None.
        use_AdEMAMix: add alpha times a slow EMA of the normalised gradient. Default False.
        beta3_ema: the slow EMA's decay in [0, 1). Default 0.9999.
        alpha: the slow EMA's weight, >= 0. Default 5.0.
        t_alpha: alpha warm-up steps, or None. Default None.
        t_beta3: beta3 half-life warm-up steps, or None. Default None.
        Simplified_AdEMAMix: accumulator first moment with ``alpha_grad``. Default False.
        alpha_grad: weight of the normalised gradient in the Simplified numerator. Default 100.0.
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
        state_precision: storage of the states; see the state storage spec page. Default 'auto'.
        factored_2nd: factor only ``exp_avg_sq``. Default False.
        vector_reshape: factor 0-d and 1-D tensors too. Default False.
        stochastic_rounding: write bf16 parameters with stochastic rounding. Default True.
        seed: seed of the counter-based random draws (with each parameter's key and step). Default 0.
        compiled_optimizer: run the step as a ``torch.compile``'d fused kernel. Default True.
        layer_key_fn: ``f(p) -> key``; tensors with equal keys share one Kourkoutas bucket
            (one gradient norm, one EMA). None: one bucket per tensor. Needs kourkoutas_beta.

    State per parameter: ``step``, ``rng_key`` (its random streams' key), ``exp_avg`` (if
    betas[0] > 0), ``exp_avg_sq``, ``exp_avg_slow`` (AdEMAMix).

    Examples:
        >>> import torch, fast
        >>> model = torch.nn.Linear(4, 2)
        >>> opt = fast.Adopt(model.parameters(), lr=1e-3, compiled_optimizer=False)
        >>> for _ in range(2):
        ...     model(torch.randn(8, 4)).square().mean().backward()
        ...     opt.step()
        >>> opt.state[model.weight]["step"]
        2

    References:
        Taniguchi et al., ADOPT (arXiv 2411.02853); torch-adopt 0.1.0; adv_optm 2.5.16
        ``Adopt_adv`` (2.2.3 for AdEMAMix and Simplified AdEMAMix).

    Deviations:
        The normalisation uses :math:`\max(\sqrt{v}, \epsilon)` as the paper (adv_optm uses
        :math:`\sqrt{v}+\epsilon`); Nesterov mixes the normalised gradient (adv mixes the raw
        one); ``clip_lambda`` is an exponent, not a callable, so that it can be validated and
        saved in a state_dict; stochastic-rounding draws depend on ``seed``, not on any global generator.
        Direction features (spec/directions.md): OrthoGrad takes its mode as a string or None
        (adv's boolean crashes) and never writes ``p.grad``; Kourkoutas-beta uses the current step's
        gradient norms and one bucket per tensor by default (adv lags one step and buckets
        same-shape tensors) and bias-corrects with the product of the dynamic beta2s (adv uses
        the static beta2); Cautious with Grams raises (adv 2.2.3 silently drops Cautious).
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
        clip_lambda: float | None = GROUP["clip_lambda"].default,
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
        beta1 = group["betas"][0]
        beta2, _ = self.beta2_and_bc2(p, group, state, t)
        lr, q, atan2 = group["lr"], group["clip_lambda"], group["use_atan2"]
        simplified = group["Simplified_AdEMAMix"]
        step_size = simplified_lr(lr, beta1, t, group["alpha_grad"]) if simplified else lr
        c = beta1 if group["nesterov_coef"] is None else group["nesterov_coef"]
        ademamix = {"beta3": 0.0, "one_m_beta3": 1.0, "alpha": 0.0, **ademamix_scalars(group, t, 1.0)}
        clip_value = float(t - 1) ** q if q is not None else 0.0
        values = (
            step_size * (ATAN2_SCALE if atan2 else 1.0), beta1, 1.0 if simplified else 1 - beta1, beta2, 1 - beta2,
            scale_invariant_eps(group["eps"], p.numel()), clip_value, c, 1 - c, ademamix["beta3"],
            ademamix["one_m_beta3"], ademamix["alpha"], group["alpha_grad"],
        )
        flags = (beta1 > 0, t == 1, atan2, q is not None and not atan2, group["nesterov"], group["use_AdEMAMix"],
                 simplified, group["cautious"], group["grams"])
        self._run_step(p, grad, group, state, make_adopt_math, flags,
                       self.scalars(p, step_size * group["weight_decay"], values), decay=t > 1 or atan2)
