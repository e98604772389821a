"""Deliberately broken variants of ``fast``: the suite's self-test.

A mutant is a textual edit of one function's source, re-executed in its module and patched
over every binding of the original in ``fast``. If an edit no longer matches the source it
raises, so mutants cannot silently stop testing anything.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass

import fast  # noqa: F401  (loads every fast module so bindings can be found)
from fast import (
    adafactor,
    adam_math,
    adamw,
    adopt,
    automagic,
    came,
    codes,
    counter_rng,
    d_adaptation,
    directions,
    factored_moments,
    kourkoutas,
    lion,
    lr_mask,
    mask_code,
    optimizer,
    prodigy,
    rounding,
    signsgd,
    simplified_ademamix,
    step,
    storage,
    write,
)
from spec import schedules


@dataclass(frozen=True)
class Mutant:
    name: str
    target: object  # the original function
    edits: tuple[tuple[str, str], ...]  # (old, new) source fragments
    entry: str = "AdamW"  # the registry entry whose checks run first (the others follow)
    only: bool = False  # run only ``entry``'s checks: the mutant must be caught by that optimizer's samples


M = Mutant
MUTANTS = (
    M("sign_flip", write.new_param, (("return P - U", "return P + U"),)),
    M("swapped_betas", adamw.AdamW._step_scalars,
      (("scale * lr / bc1, beta1, 1 - beta1, beta2, 1 - beta2,",
        "scale * lr / bc1, beta2, 1 - beta2, beta1, 1 - beta1,"),)),
    M("bias_correction_off_by_one", adamw.AdamW._step_scalars,
      (("(1 - beta1**t, bc2)", "(1 - beta1 ** (t + 1), bc2)"),)),
    M("bias_correction2_off_by_one", optimizer.FastOptimizer.beta2_and_bc2,
      (("return beta2, 1 - beta2**t", "return beta2, 1 - beta2 ** (t + 1)"),)),
    M("eps_inside_sqrt", adam_math.make_adam_math, (("D = D + eps", "D = (D * D + eps).sqrt()"),)),
    M("weight_decay_not_decoupled", step.make_step_kernel,
      (("math(G, decoded, s[1:], noise) if aux", "math(G + s[0] / s[1] * P, decoded, s[1:], noise) if aux"),
       ("decay=decay, cautious=cautious_wd", "decay=False, cautious=cautious_wd"))),
    M("sr_wrong_mask", rounding.stochastic_round_bf16, (("& _HIGH_HALF", "& -131072"),)),
    # The counter-based streams (spec/counter_rng.py): keys and in-kernel draws.
    M("sr_step_ignored", counter_rng.key_tensor,
      (("stream_key(seed, param_key, step, purpose)", "stream_key(seed, param_key, 1, purpose)"),)),
    M("sr_stream_shared_by_parameters", counter_rng.key_tensor,
      (("stream_key(seed, param_key, step, purpose)", "stream_key(seed, 0, step, purpose)"),)),
    M("sr_purpose_ignored", counter_rng.key_tensor,
      (("stream_key(seed, param_key, step, purpose)", "stream_key(seed, param_key, step, PARAM_PURPOSE)"),)),
    M("sr_bits_reused_across_elements", counter_rng.element_index, (("* keys[-1]).view(shape)", "* 0).view(shape)"),)),
    M("sr_hash_unmixed", counter_rng.mix, (("h = h * _M2", "h = h * 1"),)),
    M("sr_arithmetic_shift", counter_rng._shr, (("return (h >> s) & ((1 << (32 - s)) - 1)", "return h >> s"),)),
    M("nesterov_coef_ignored", adamw.AdamW._step_scalars,
      (('c = beta1 if group["nesterov_coef"] is None else group["nesterov_coef"]', "c = beta1"),)),
    M("cautious_mask_inverted", write.decay_amount, (("U * P >= 0", "U * P <= 0"),)),
    M("atan2_arguments_swapped", adam_math.make_adam_math, (("torch.atan2(x, D)", "torch.atan2(D, x)"),)),
    M("normed_momentum_on_raw_grad", adam_math.make_adam_math,
      (("x = normalise(G) if normed_momentum else G", "x = G"),)),
    M("sr_nan_guard_missing", rounding.stochastic_round_bf16,
      (("torch.where(x != x, x, rounded)", "rounded"),)),
    M("scale_invariant_eps_wrong", adam_math.scale_invariant_eps,
      (("1 / math.sqrt(max(numel, 1))", "1 / max(numel, 1)"),)),
    M("bias_correction_always_on", adamw.AdamW._step_scalars,
      (('if group["use_bias_correction"] else (1.0, 1.0)', "if True else (1.0, 1.0)"),)),
    M("atan2_scale_dropped", adamw.AdamW._step_scalars,
      (('ATAN2_SCALE if group["use_atan2"] else 1.0', "1.0"),)),
    M("second_moment_of_abs_grad", adam_math.make_adam_math,
      (("a2 * G * G", "a2 * G.abs()"),)),
    # The storage layer (spec/state_storage.md).
    M("sign_bit_order_reversed", storage._pack_groups,
      (("weight, torch.zeros_like", "weight.flip(0), torch.zeros_like"),)),
    M("factored_wrong_side_normalised", storage.finish,
      (("t[0].copy_(sums[0] if sums[0].dim() == 1 else sums[0].sum(1))",
        "r = sums[0] if sums[0].dim() == 1 else sums[0].sum(1)\n    t[0].copy_(r / r.sum().clamp_min(NORM_FLOOR))"),
       ("t[1].copy_(c / c.sum().clamp_min(NORM_FLOOR))", "t[1].copy_(c)"))),
    M("zero_sign_flipped", storage.factor_sums, (("_pack_groups(x > 0) if x.dim() == 3 else pack_signs(x > 0)",
                                                 "_pack_groups(x >= 0) if x.dim() == 3 else pack_signs(x >= 0)"),)),
    M("refactor_from_old_state", step.make_column_kernel,
      (("for f, x in zip(formats, new_states)", "for f, x in zip(formats, _decoded(formats, stored, p, s.dtype))"),)),
    M("int8_scale_per_tensor", codes.encode,
      (("absmax = xb.abs().amax(block_dims(xb, code.block), keepdim=True)",
        "absmax = xb.abs().amax(block_dims(xb, code.block), keepdim=True) * 0 + x.abs().amax()"),)),
    M("int8_round_to_nearest", codes.encode,
      (("c = _magnitude(xb.abs() * inv, rb, code)",
        "c = _magnitude(xb.abs() * inv, torch.full_like(rb, 2**15), code)"),)),
    M("code_with_zero_level", codes._level,
      (("    if not code.signed:\n        return normal",
        "    if not code.signed:\n        return torch.where(c == 0, torch.zeros_like(normal), normal)"),)),
    M("code_subnormals_dropped", codes._magnitude,
      (("c = torch.where(y >= low, c, sub)", "c = torch.where(y >= low, c, 0)"),)),
    M("nibbles_high_first", codes.pack_nibbles,
      (("halves[:, 0, :] | (halves[:, 1, :] << 4)", "halves[:, 1, :] | (halves[:, 0, :] << 4)"),)),
    M("fp16_unscaled", codes._fp16_scale,
      (("return torch.where(absmax > 0, power, torch.zeros_like(power))", "return torch.ones_like(power)"),)),
    M("state_sr_bits_shared", step.make_step_kernel,
      (("keys[counter_rng.slot_key(j)]", "keys[counter_rng.PARAM_KEY]"),)),
    # AdEMAMix (spec/ademamix.md).
    M("ademamix_slow_ema_bias_corrected", adam_math.ademamix_scalars,
      (('"alpha": ademamix_alpha(t, group) * bc1', '"alpha": ademamix_alpha(t, group)'),)),
    M("ademamix_alpha_schedule_ignored", schedules.ademamix_alpha,
      (('if h["t_alpha"] is None:', "if True:"),)),
    M("ademamix_beta3_schedule_linear_in_beta", schedules.ademamix_beta3,
      (("f_t = (1.0 - a) * half_life_index(beta_start) + a * half_life_index(beta_end)",
        "return (1.0 - a) * beta_start + a * beta_end"),)),
    # Adopt (spec/adopt.md).
    M("adopt_normalises_by_new_v", adopt.make_adopt_math,
      (("sqrt_v = v.sqrt()", "sqrt_v = (beta2 * v + one_m_beta2 * G * G).sqrt()"),), "Adopt"),
    M("adopt_first_step_updates", adopt.make_adopt_math,
      (("if not use_atan2:\n                return torch.zeros_like(G), (m, v, m2), None",
        "if False:\n                pass"),),
      "Adopt"),
    M("adopt_eps_added_not_max", adopt.make_adopt_math,
      (("G / torch.maximum(sqrt_v, eps)", "G / (sqrt_v + eps)"),), "Adopt"),
    M("adopt_clip_at_one_based_step", adopt.Adopt._update,
      (("float(t - 1) ** q", "float(t) ** q"),), "Adopt"),
    M("adopt_nesterov_on_raw_grad", adopt.make_adopt_math,
      (("c * m_new + one_m_c * x if nesterov", "c * m_new + one_m_c * G if nesterov"),), "Adopt"),
    # Prodigy (spec/prodigy.md).
    M("prodigy_numerator_sign_flipped", d_adaptation.make_statistics_kernel,
      (("p0.to(torch.float64) - p[::slice_p].to(torch.float64)",
        "p[::slice_p].to(torch.float64) - p0.to(torch.float64)"),),
      "Prodigy"),
    M("prodigy_beta3_is_beta2", d_adaptation.DAdaptation.beta3,
      (('math.sqrt(self.defaults["betas"][1])', 'self.defaults["betas"][1]'),), "Prodigy"),
    M("prodigy_growth_rate_ignored", d_adaptation.DAdaptation.end_step,
      (('d = min(d_max, d * h["growth_rate"])', "d = d_max"),), "Prodigy"),
    M("prodigy_eps_not_scaled_by_d", prodigy.Prodigy._update,
      (('d * scale_invariant_eps(group["eps"], p.numel())', 'scale_invariant_eps(group["eps"], p.numel())'),),
      "Prodigy"),
    M("prodigy_s_with_d_not_dlr", d_adaptation.DAdaptation.statistics,
      (('(d if group["safeguard_warmup"] else dlr)', "d"),), "Prodigy"),
    M("prodigy_first_growth_clause_missing", d_adaptation.DAdaptation.end_step,
      (('if d == h["d0"]:\n                d = max(d, d_hat)', "pass"),), "Prodigy"),
    M("prodigy_bias_correction_k_off_by_one", d_adaptation.DAdaptation.dlr,
      (("math.sqrt(1 - beta2 ** (k + 1)) / (1 - beta1 ** (k + 1))",
        "math.sqrt(1 - beta2**k) / (1 - beta1 ** (k + 1))"),),
      "Prodigy"),
    # Lion and ProdigyLion (spec/lion.md, spec/prodigy_lion.md).
    M("lion_momentum_with_beta1", lion.make_lion_math,
      (("(beta2 * m + one_m_beta2 * Gd, bits)", "(beta1 * m + one_m_beta1 * Gd, bits)"),), "Lion"),
    M("lion_sign_of_momentum", lion.make_lion_math,
      (("c = beta1 * m + one_m_beta1 * Gd", "c = beta2 * m + one_m_beta2 * Gd"),), "Lion"),
    M("lion_k_without_sqrt_n", lion.make_lion_math, (("clamp_min(NORM_FLOOR) * sqrt_n", "clamp_min(NORM_FLOOR)"),),
      "Lion"),
    M("prodigy_lion_momentum_without_d", lion.make_lion_math,
      (("Gd = g_scale * G", "Gd = G"),), "ProdigyLion"),
    # SignSGD (spec/signsgd.md).
    M("signsgd_nesterov_weights_swapped", signsgd.make_signsgd_math,
      (("n = c * m_new + one_m_c *", "n = one_m_c * m_new + c *"),), "SignSGD"),
    M("signsgd_normed_takes_sign", signsgd.make_signsgd_math,
      (("return lr * n, (m_new, None), None", "return lr * torch.sign(n), (m_new, None), None"),), "SignSGD"),
    M("signsgd_simplified_alpha_grad_dropped", signsgd.make_signsgd_math,
      (("n = m_new + alpha_grad * x", "n = m_new"),), "SignSGD"),
    # SimplifiedAdEMAMix (spec/simplified_ademamix.md).
    M("simplified_num_den_swapped", simplified_ademamix.SimplifiedAdEMAMix._update,
      (("lr / math.sqrt(num)", "lr / math.sqrt(den)"),), "SimplifiedAdEMAMix"),
    M("simplified_lr_without_alpha_grad", schedules.simplified_lr,
      (("(1.0 - beta1) + alpha_grad)", "(1.0 - beta1))"),), "SimplifiedAdEMAMix"),
    M("simplified_warmup_on_beta_not_half_life", schedules.simplified_beta1,
      (("return 0.5 ** (1.0 / ((1.0 - a) * f(h[\"min_beta1\"]) + a * f(beta_end) + 1.0))",
        "return (1.0 - a) * h[\"min_beta1\"] + a * beta_end"),), "SimplifiedAdEMAMix"),
    # Direction features (spec/directions.md). Each needs a registry sample with the feature on.
    M("cautious_not_renormalised", directions.cautious,
      (("return torch.where(keep, n, 0.0) / kept.clamp_min(CAUTIOUS_FLOOR)", "return torch.where(keep, n, 0.0)"),)),
    M("grams_sign_of_momentum", directions.grams, (("torch.sign(G) * n.abs()", "torch.sign(n) * n.abs()"),)),
    M("orthograd_projects_on_gradient", directions.orthograd, (("(G - proj * P) * scale", "(G - proj * G) * scale"),)),
    M("orthograd_norm_not_restored", directions.orthograd, (("(G - proj * P) * scale", "(G - proj * P)"),)),
    M("orthograd_coefficient_over_gradient_norm", directions.flattened_coef,
      (("proj = wg / (ww + ORTHO_FLOOR)", "proj = wg / (gg + ORTHO_FLOOR)"),)),
    M("orthograd_iterative_without_column_pass", directions._iterative,
      (("zip(axes, floors, targets, w_sq):", "zip(axes, floors, targets, w_sq):\n            if k == 0:\n"
        "                continue"),)),
    M("orthograd_iterative_projects_on_gradient", directions._iterative,
      (("/ wk) * w", "/ wk) * x"),)),
    M("adopt_atan2_arguments_swapped", adopt.make_adopt_math,
      (("torch.atan2(G, sqrt_v)", "torch.atan2(sqrt_v, G)"),), "Adopt", only=True),
    M("prodigy_atan2_arguments_swapped", adam_math.make_adam_math,
      (("torch.atan2(x, D)", "torch.atan2(D, x)"),), "Prodigy", only=True),
    M("prodigy_statistics_before_orthograd", prodigy.Prodigy._update,
      (("grad = orthograd_gradient(p, grad, group, self.compiled_optimizer)\n"
        "    self.statistics(p, grad, group, state, dlr)",
        "self.statistics(p, grad, group, state, dlr)\n"
        "    grad = orthograd_gradient(p, grad, group, self.compiled_optimizer)"),), "Prodigy"),
    M("kourkoutas_spike_without_ema", kourkoutas.beta2_now,
      (('x = rho / (r + h["tiny_spike"])', 'x = rho / (rho + h["tiny_spike"])'),)),
    M("kourkoutas_bias_correction_static", kourkoutas.Kourkoutas.beta2,
      (("return beta2, 1 - prod", 'return beta2, 1 - group["betas"][1] ** t'),)),
    M("kourkoutas_warmup_ignored", kourkoutas.beta2_now,
      (("w = min(1.0, t / warm) if warm > 0 else 1.0", "w = 1.0"),)),
    M("adopt_kourkoutas_static_beta2", adopt.Adopt._update,
      (("beta2, _ = self.beta2_and_bc2(p, group, state, t)",
        '_ = self.beta2_and_bc2(p, group, state, t)\n    beta2 = group["betas"][1]'),), "Adopt"),
    M("lion_cautious_before_sign", directions.sign_pipeline,
      (("direction = cautious(direction, G)", "direction = cautious(x, G)"),), "Lion"),
    M("stochastic_sign_noise_in_zero_one", directions.stochastic_sign,
      (("* NOISE_SCALE - 1", "* NOISE_SCALE / 2"),), "Lion"),
    M("stochastic_sign_columns_not_scaled", directions.stochastic_sign,
      (("y = y / y.abs().amax(0, keepdim=True).clamp_min(SIGN_FLOOR)", "y = y"),), "Lion"),
    M("freeze_on_flip_not_freezing", directions.sign_pipeline,
      (("direction = torch.where(flipped, torch.zeros_like(direction), direction)", "pass"),), "Lion"),
    M("freeze_on_flip_compares_with_gradient", directions.sign_pipeline,
      (("(positive != (prev > 0.5))", "(positive != (G > 0))"),), "Lion"),
    M("freeze_on_flip_stores_frozen_sign", directions.sign_pipeline,
      (("bits = positive.to(x.dtype)", "bits = (direction > 0).to(x.dtype)"),), "Lion"),
    M("freeze_on_flip_on_first_step", directions.sign_pipeline,
      (("& (have_prev > 0)", ""),), "SignSGD"),
    M("projected_decay_not_scaled", step.make_step_kernel, (("scale=ell)", "scale=None)"),), "Lion"),
    M("projected_scale_not_divided_by_mean", directions.projected_scale,
      (("/ a2.mean().clamp_min(PROJECTED_FLOOR)", ""),), "SignSGD"),
    # The Adafactor family (spec/adafactor.md, spec/came.md).
    M("adafactor_no_rms_clip", factored_moments.make_second_moment_kernel,
      (("torch.clamp(rms(u) / clip, min=1.0)", "1.0"),), "Adafactor", only=True),
    M("adafactor_row_factor_not_normalised", factored_moments.inverse_sqrt_factors,
      (("(R / R.mean(-1, keepdim=True)).rsqrt()", "R.rsqrt()"),), "Adafactor", only=True),
    M("adafactor_decay_rate_off_by_one_step", adafactor.Adafactor._update,
      (("beta2 = 1.0 - t ** group", "beta2 = 1.0 - (t + 1) ** group"),), "Adafactor", only=True),
    M("adafactor_decay_with_lr_not_lr_t", adafactor.make_adafactor_math,
      (("return U, (m_new, v_new), lr_t", "return U, (m_new, v_new), None"),), "Adafactor", only=True),
    M("came_residual_with_old_moment", came.make_residual_kernel,
      (("diff = u_hat - m_new", "diff = u_hat - storage.decode(fmt, m, G.numel(), s.dtype, G.shape)"),), "CAME",
      only=True),
    M("came_betas_2_3_swapped", came.CAME._update,
      (("beta1, beta2, beta3 = group[\"betas\"]", "beta1, beta3, beta2 = group[\"betas\"]"),), "CAME", only=True),
    # Automagic and AutomagicCAME (spec/automagic.md, spec/automagic_came.md).
    M("automagic_bump_sign_flipped", lr_mask.bumped,
      (("torch.where(agree, before + bump, before - bump)", "torch.where(agree, before - bump, before + bump)"),),
      "Automagic", only=True),
    M("automagic_mask_not_clamped", lr_mask.bumped,
      (("return torch.clamp(torch.where(agree, before + bump, before - bump), low, high)",
        "return torch.where(agree, before + bump, before - bump)"),), "Automagic", only=True),
    M("automagic_first_step_not_from_lr", lr_mask.bumped, (("before = lr0 if first_step else L", "before = L"),),
      "Automagic", only=True),
    M("automagic_initial_polarity_true", lr_mask.bumped, (("else ~positive", "else positive"),),
      "Automagic", only=True),
    M("automagic_polarity_not_stored", automagic.make_automagic_math,
      (("(L_new, positive.to(G.dtype), v_new)", "(L_new, last, v_new)"),), "Automagic", only=True),
    M("automagic_weight_decay_not_scaled_by_mask", automagic.make_automagic_math,
      (("(L_new, positive.to(G.dtype), v_new), L_new", "(L_new, positive.to(G.dtype), v_new), None"),),
      "Automagic", only=True),
    # (Automagic's polarity [u_hat > 0] equals [g > 0]: the normalisation is positive, no mutant there.)
    M("automagic_came_polarity_of_the_update", automagic.make_automagic_came_math,
      (("positive = G > 0", "positive = direction > 0"),), "AutomagicCAME", only=True),
    M("automagic_came_mask_on_m_without_confidence", automagic.make_automagic_came_math,
      (("return L_new * direction,", "return L_new * m_new,"),), "AutomagicCAME", only=True),
    M("mask_code_rounds_to_nearest", mask_code.encode_mask,
      (("up = r.to(torch.float32) < (x - lo) / (hi - lo) * float(2**SR_BITS)", "up = (x - lo) / (hi - lo) >= 0.5"),),
      "Automagic", only=True),
    M("mask_levels_half_spaced", mask_code.level, (("q = ((c << (23 - m)) + ONE)", "q = ((c << (22 - m)) + ONE)"),),
      "Automagic", only=True),
    M("mask_estimate_not_corrected_down", mask_code.encode_mask,
      (("k = torch.where(x < level(k, code), (k - 1).clamp_min(0), k)", "pass"),), "Automagic", only=True),
    M("mask_not_recoded_on_new_bounds", lr_mask.MaskFamily.requantise,
      (("if new is not None and old is not None and tuple(old) != new:", "if False:"),), "Automagic", only=True),
)


def _mutated(m: Mutant):
    fn = m.target
    source = textwrap.dedent(inspect.getsource(fn))
    for old, new in m.edits:
        if old not in source:
            raise RuntimeError(f"mutant {m.name}: {old!r} not found in {fn.__qualname__}")
        source = source.replace(old, new, 1)
    module = sys.modules[fn.__module__]
    namespace = dict(vars(module))
    exec(compile(source, f"<mutant {m.name}>", "exec"), namespace)
    return namespace[fn.__name__]


@contextlib.contextmanager
def applied(m: Mutant) -> Iterator[None]:
    """Patch the mutant over every binding of the original (module globals and classes)."""
    new = _mutated(m)
    patches = []
    for name, module in list(sys.modules.items()):
        if not (name == "fast" or name.startswith("fast.")):
            continue
        for attr, value in list(vars(module).items()):
            if value is m.target:
                patches.append((module, attr))
            elif isinstance(value, type):
                for cls_attr, cls_value in list(vars(value).items()):
                    if cls_value is m.target:
                        patches.append((value, cls_attr))
    if not patches:
        raise RuntimeError(f"mutant {m.name}: no binding of {m.target.__qualname__} found")
    try:
        for owner, attr in patches:
            setattr(owner, attr, new)
        yield
    finally:
        for owner, attr in patches:
            setattr(owner, attr, m.target)
