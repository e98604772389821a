"""AdamW as one fused elementwise kernel per parameter (spec/adamw.md)."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable
from typing import Any

import torch

from fast.adam_math import (
    ATAN2_SCALE,
    AdamScalars,
    adam_flags,
    ademamix_scalars,
    make_adam_math,
    scale_invariant_eps,
)
from fast.optimizer import FastOptimizer, constructor_arguments
from spec.hparams.adamw import CONSTRAINTS, GROUP, RUNTIME, SLOTS, kept_slots


class AdamW(FastOptimizer):
    r"""AdamW with decoupled weight decay, as one fused (compiled) kernel per parameter.

    Adam's moment estimates with bias correction and weight decay decoupled from the
    gradient (Loshchilov & Hutter). Variants: scale-invariant eps, Nesterov look-ahead,
    Adam-atan2, normalise-then-momentum, cautious weight decay. bfloat16 parameters are
    updated in fp32 and written back with stochastic rounding.

    Symbols: :math:`\eta` = ``lr``, :math:`(\beta_1, \beta_2)` = ``betas``,
    :math:`\epsilon` = ``eps``, :math:`\lambda` = ``weight_decay``, :math:`c` =
    ``nesterov_coef`` (default :math:`\beta_1`), :math:`t` = the parameter's step count.

    Update rule (elementwise, for the default flags):

    .. math::
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g^2,\quad m_t = \beta_1 m_{t-1} + (1-\beta_1) g

        D_t = \sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon,\quad
        U_t = \frac{\eta}{1-\beta_1^t}\,\frac{m_t}{D_t}

        p_t = p_{t-1} - \eta\lambda p_{t-1} - U_t

    Nesterov uses :math:`n_t = c\,m_t + (1-c)g`; atan2 uses
    :math:`U_t = \frac{4}{\pi}\frac{\eta}{1-\beta_1^t}\operatorname{atan2}(n_t, \sqrt{v_t/(1-\beta_2^t)})`;
    normed momentum applies the EMA to :math:`\hat g = g/D_t`; AdEMAMix adds a slow EMA
    :math:`m^{(2)}_t = \beta_3 m^{(2)}_{t-1} + (1-\beta_3) g` to the numerator as
    :math:`(m_t/(1-\beta_1^t) + \alpha m^{(2)}_t)/D_t` (the slow EMA is not bias-corrected). The full, generated rule is
    on the AdamW spec page.

    Args:
        params: parameters or param-group dicts (any group-level argument may be overridden).
        lr: learning rate :math:`\eta`, >= 0. Default 1e-3.
        betas: :math:`(\beta_1, \beta_2)`, each in [0, 1). ``betas[0] = 0`` drops the first
            moment (no ``exp_avg`` state). Default (0.9, 0.999).
        eps: denominator term, >= 0, or None for the scale-invariant 1/sqrt(numel(p)).
            Ignored with ``use_atan2``. Default 1e-8.
        weight_decay: decoupled decay :math:`\lambda`, >= 0. Default 0.
        cautious_wd: decay only where the update and the weight agree in sign. Default False.
        use_bias_correction: divide by :math:`1-\beta^t`. Default True.
        nesterov: Nesterov look-ahead numerator. Needs ``betas[0] > 0``. Default False.
        nesterov_coef: :math:`c` in [0, 1], or None for :math:`\beta_1`; only with
            ``nesterov=True``. Default None.
        use_atan2: Adam-atan2 direction (bounded, eps-free). Default False.
        normed_momentum: EMA of the normalised gradient. Default False.
        use_AdEMAMix: add :math:`\alpha` times a slow EMA (decay ``beta3_ema``) of the
            gradient to the numerator (state ``exp_avg_slow``). Default False.
        beta3_ema: :math:`\beta_3` in [0, 1), the slow EMA's decay. Default 0.9999.
        alpha: :math:`\alpha` >= 0, the slow EMA's weight. Default 5.0.
        t_alpha: ramp :math:`\alpha` linearly from 0 over this many steps, or None. Default None.
        t_beta3: move the slow EMA's half-life from :math:`\beta_1`'s to :math:`\beta_3`'s
            over this many steps, or None. Default None.
        stochastic_rounding: write bf16 parameters with stochastic rounding. Default True.
        seed: seed of the counter-based random draws (with each parameter's key and step). Default 0.
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
        state_precision: storage of ``exp_avg``/``exp_avg_sq``: 'auto' (the parameter dtype;
            bf16 states round stochastically when ``stochastic_rounding``), 'fp32', 'bf16_sr',
            'fp16', 'int8_sr' (blockwise 8-bit, stochastic rounding) or 'factored' (SMMF rank-1
            factors + 1-bit signs, ~0.13 B/param for both moments). Default 'auto'.
        factored_2nd: factor only ``exp_avg_sq``; ``exp_avg`` stays dense in
            ``state_precision`` (which must not be 'factored'). Default False.
        vector_reshape: factor 0-d and 1-D tensors too. Needs a factored mode. Default False.
        compiled_optimizer: run the step as a ``torch.compile``'d fused kernel; False runs
            the same function eagerly (no compiler needed). Default True.
        layer_key_fn: ``f(p) -> key``; tensors with equal keys share one Kourkoutas bucket
            (one gradient norm, one EMA). None: one bucket per tensor. Needs kourkoutas_beta.

    State per parameter: ``step`` and ``rng_key`` (ints: its step count and random streams'
    key), ``exp_avg`` (absent if ``betas[0] = 0``), ``exp_avg_sq``, in the format
    ``state_precision`` selects: dense under their own names, int8 codes plus ``<name>_scale``,
    or factored ``<name>_row``/``<name>_col`` (fp32) and ``exp_avg_sign`` (uint8, packed like
    ``numpy.packbits(bitorder="little")``). All math is fp32 (fp64 for fp64 parameters); see the
    state storage spec page.

    Examples:
        >>> import torch, fast
        >>> model = torch.nn.Linear(4, 2)
        >>> opt = fast.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01,
        ...                  compiled_optimizer=False)
        >>> model(torch.randn(8, 4)).square().mean().backward()
        >>> opt.step()
        >>> opt.state[model.weight]["step"]
        1
        >>> small = fast.AdamW(model.parameters(), state_precision="factored",
        ...                    compiled_optimizer=False)
        >>> small.step()
        >>> sorted(small.state[model.weight])
        ['exp_avg_col', 'exp_avg_row', 'exp_avg_sign', 'exp_avg_sq_col', 'exp_avg_sq_row', 'rng_key', 'step']

    References:
        Kingma & Ba, Adam (arXiv 1412.6980); Pagliardini et al., AdEMAMix (arXiv 2409.03137);
        Loshchilov & Hutter, Decoupled Weight Decay
        (arXiv 1711.05101); Everett et al., Adam-atan2 (arXiv 2407.05872); adv_optm 2.5.16
        ``AdamW_adv``; ``torch.optim.AdamW``; SMMF (arXiv 2412.08894).

    Deviations:
        From adv_optm 2.5.16: ``p.grad`` is never modified (adv writes the normalised gradient
        into it with ``normed_momentum``); the stochastic-rounding draws are counter-based, a
        function of ``seed``, the parameter's key and its step (adv uses a global
        generator reset to 42 by every constructor); ``nesterov_coef`` without ``nesterov``,
        and ``nesterov`` with ``betas[0] = 0``, raise instead of being ignored; every
        stochastic state draws its own random bits (adv reuses the parameter's); int8 states
        quantise with the scale they store (adv clamps it at 1e-12 for encoding only); 'fp16'
        states work with bf16 parameters; ``factored_2nd`` with 'factored' and
        ``vector_reshape`` without a factored mode raise. ``compiled_optimizer`` defaults to
        True; AdEMAMix's slow EMA is not divided by the bias correction (adv_optm 2.2.3 divides
        it). From ``torch.optim.AdamW``: no amsgrad,
        maximize, capturable or differentiable; complex parameters are rejected.
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
        use_bias_correction: bool = GROUP["use_bias_correction"].default,
        nesterov: bool = GROUP["nesterov"].default,
        nesterov_coef: float | None = GROUP["nesterov_coef"].default,
        use_atan2: bool = GROUP["use_atan2"].default,
        normed_momentum: bool = GROUP["normed_momentum"].default,
        use_AdEMAMix: bool = GROUP["use_AdEMAMix"].default,
        beta3_ema: float = GROUP["beta3_ema"].default,
        alpha: float = GROUP["alpha"].default,
        t_alpha: int | None = GROUP["t_alpha"].default,
        t_beta3: int | None = GROUP["t_beta3"].default,
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
        self._run_step(p, grad, group, state, make_adam_math, adam_flags(group), self._step_scalars(group, t, p, state))

    def _step_scalars(self, group: dict[str, Any], t: int, p: torch.Tensor, state: dict) -> torch.Tensor:
        beta1 = group["betas"][0]
        beta2, bc2 = self.beta2_and_bc2(p, group, state, t)
        lr = group["lr"]
        bc1, bc2 = (1 - beta1**t, bc2) if group["use_bias_correction"] else (1.0, 1.0)
        c = beta1 if group["nesterov_coef"] is None else group["nesterov_coef"]
        scale = ATAN2_SCALE if group["use_atan2"] else 1.0
        values = AdamScalars(
            scale * lr / bc1, beta1, 1 - beta1, beta2, 1 - beta2, math.sqrt(bc2),
            scale_invariant_eps(group["eps"], p.numel()), c, 1 - c, **ademamix_scalars(group, t, bc1),
        )
        return self.scalars(p, lr * group["weight_decay"], values)
