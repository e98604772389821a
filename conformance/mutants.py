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
from fast import adamw, optimizer, rounding, step, storage, write


@dataclass(frozen=True)
class Mutant:
    name: str
    target: object  # the original function
    edits: tuple[tuple[str, str], ...]  # (old, new) source fragments


M = Mutant
MUTANTS = (
    M("sign_flip", write.new_param, (("return P - U", "return P + U"),)),
    M("swapped_betas", adamw.AdamW._step_scalars,
      (("scale * lr / bc1, beta1, 1 - beta1, beta2, 1 - beta2,",
        "scale * lr / bc1, beta2, 1 - beta2, beta1, 1 - beta1,"),)),
    M("bias_correction_off_by_one", adamw.AdamW._step_scalars,
      (("(1 - beta1**t, 1 - beta2**t)", "(1 - beta1 ** (t + 1), 1 - beta2 ** (t + 1))"),)),
    M("eps_inside_sqrt", adamw.make_adamw_math, (("D = D + eps", "D = (D * D + eps).sqrt()"),)),
    M("weight_decay_not_decoupled", step.make_step_kernel,
      (("math(g.to(s.dtype), _decoded", "math(g.to(s.dtype) + s[0] / s[1] * p.to(s.dtype), _decoded"),
       ("decay=decay, cautious=cautious_wd", "decay=False, cautious=cautious_wd"))),
    M("sr_wrong_mask", rounding.stochastic_round_bf16, (("& _HIGH_HALF", "& -131072"),)),
    M("sr_bits_reused", optimizer.FastOptimizer.draw,
      (("self.generator(p.device)", "torch.Generator(p.device).manual_seed(self.seed)"),)),
    M("nesterov_coef_ignored", adamw.AdamW._step_scalars,
      (('c = beta1 if group["nesterov_coef"] is None else group["nesterov_coef"]', "c = beta1"),)),
    M("cautious_mask_inverted", write.decayed, (("U * P >= 0", "U * P <= 0"),)),
    M("atan2_arguments_swapped", adamw.make_adamw_math, (("torch.atan2(x, D)", "torch.atan2(D, x)"),)),
    M("normed_momentum_on_raw_grad", adamw.make_adamw_math,
      (("x = normalise(G) if normed_momentum else G", "x = G"),)),
    M("sr_nan_guard_missing", rounding.stochastic_round_bf16,
      (("torch.where(torch.isnan(x), x, rounded)", "rounded"),)),
    M("scale_invariant_eps_wrong", adamw.AdamW._step_scalars,
      (("1 / math.sqrt(max(p.numel(), 1))", "1 / max(p.numel(), 1)"),)),
    M("bias_correction_always_on", adamw.AdamW._step_scalars,
      (('if group["use_bias_correction"] else (1.0, 1.0)', "if True else (1.0, 1.0)"),)),
    M("atan2_scale_dropped", adamw.AdamW._step_scalars,
      (('ATAN2_SCALE if group["use_atan2"] else 1.0', "1.0"),)),
    M("second_moment_of_abs_grad", adamw.make_adamw_math,
      (("one_m_beta2 * G * G", "one_m_beta2 * G.abs()"),)),
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
    M("int8_scale_per_tensor", storage.quantize,
      (("s = (xb.abs().amax(1) / qmax)", "s = (x.abs().amax().expand(xb.shape[0]) / qmax)"),)),
    M("int8_round_to_nearest", storage.quantize, (("rb.to(x.dtype) * _UNIFORM_SCALE", "0.5"),)),
    M("state_sr_bits_shared", optimizer.FastOptimizer._run_step,
      (("self.draw(p, slot.name) if f is not None", "shared if f is not None"),
       ('param_bits = self.draw(p, "param") if mode is WriteMode.STOCHASTIC else None',
        'shared = self.draw(p, "param")\n    param_bits = shared if mode is WriteMode.STOCHASTIC else None'))),
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
