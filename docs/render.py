"""Markdown renderers for the generated parts of the spec pages.

Every formula and table on a spec page comes from ``spec/`` (sympy rules, hyperparameter
records), so the docs cannot drift from what the tests check. This module only turns those
objects into Markdown; ``generate.py`` decides where the output goes.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

import sympy as sp

# sympy's default term order prints ``-U_t - eta*lambda*p + p``; reverse-lex keeps the
# conventional reading order (``p - eta*lambda*p - U_t``, ``sqrt(v)/sqrt(bc2) + eps``)
# for every rule, without hand-written LaTeX that could disagree with the expression.
LATEX_ORDER = "rev-lex"

# Characters that Markdown (or arithmatex, for ``$``) would interpret inside plain prose
# coming from Python strings such as hyperparameter meanings and tolerance reasons.
# ``<`` cannot be backslash-escaped in Python-Markdown, so it becomes an HTML entity.
_MD_SPECIAL = "\\`*_|>$"


def md_escape(text: str) -> str:
    """Escape ``text`` so it renders literally inside a Markdown paragraph or table cell."""
    escaped = "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in text)
    return escaped.replace("<", "&lt;")


def code(value: Any) -> str:
    """A Python value as an inline code span (``|`` escaped so tables stay intact)."""
    return "`" + repr(value).replace("|", "\\|") + "`"


def latex(expr: sp.Expr, order: str | None = LATEX_ORDER) -> str:
    return sp.latex(expr, order=order)


def display(lhs: str, expr: sp.Expr, note: str = "", order: str | None = LATEX_ORDER) -> str:
    """One display equation ``lhs = expr`` as an arithmatex block (blank-line separated)."""
    tail = rf"\qquad\text{{{note}}}" if note else ""
    return f"$$\n{lhs} = {latex(expr, order)}{tail}\n$$\n"


def _flag_defaults(rule: Any, flags: Iterable[str]) -> dict[str, bool]:
    """The default of each variant flag, read from ``rule``'s signature (not repeated here)."""
    params = inspect.signature(rule).parameters
    return {flag: params[flag].default for flag in flags}


def _stage_lines(
    stages: Mapping[str, sp.Expr], symbols: Mapping[str, str], keys: Iterable[str]
) -> list[str]:
    return [display(symbols[k], stages[k]) for k in keys]


def render_rule(module: ModuleType, hparams: Mapping[str, Any]) -> str:
    """The default update rule, then each variant flag showing only the lines it changes.

    ``module`` provides ``rule(staged=True, **flags)``, ``STAGE_SYMBOLS`` and ``VARIANTS``
    (and optionally ``SCALE_INVARIANT_EPS``); ``hparams`` supplies the meaning of each flag
    that is also a hyperparameter.
    """
    symbols: Mapping[str, str] = module.STAGE_SYMBOLS
    base = module.rule(staged=True)
    out = [
        "The quantities of one step, for one element, in the order they are computed "
        "(default flags). Each line is printed from the sympy expression of `"
        + module.__name__ + ".rule(staged=True)`.\n",
        *_stage_lines(base, symbols, base),
    ]
    eps = getattr(module, "SCALE_INVARIANT_EPS", None)
    if eps is not None:
        out += [
            "With `eps=None` the scale-invariant epsilon is used, where $N$ is the number "
            "of elements of the parameter tensor:\n",
            display(r"\epsilon", eps),
        ]
    defaults = _flag_defaults(module.rule, module.VARIANTS)
    for flag, default in defaults.items():
        value = not default
        variant = module.rule(staged=True, **{flag: value})
        changed = [
            k for k in variant
            if k not in base or latex(variant[k]) != latex(base[k])
        ]
        removed = [k for k in base if k not in variant]
        out.append(f"### Variant `{flag}={value}`\n")
        if flag in hparams:
            meaning = hparams[flag].meaning
            out.append(md_escape(meaning[:1].upper() + meaning[1:]) + ".\n")
        if not changed and not removed:
            out.append("No line of the rule changes.\n")
        out += _stage_lines(variant, symbols, changed)
        if removed:
            names = ", ".join(f"${symbols[k]}$" for k in removed)
            out.append(f"Not computed in this variant: {names}.\n")
    return "\n".join(out)


def _hparam_table(records: Iterable[Any]) -> str:
    rows = [
        "| Name | Symbol | Default | Valid values | Meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for h in records:
        rows.append(
            f"| `{h.name}` | ${h.symbol}$ | {code(h.default)} | `{h.range_text()}` "
            f"| {md_escape(h.meaning)} |"
        )
    return "\n".join(rows) + "\n"


def render_hparams(table: Mapping[str, Any], constraints: Iterable[Any] = ()) -> str:
    """The hyperparameter tables (per param group, then per optimizer) and the constraints."""
    group = [h for h in table.values() if h.group_level]
    whole = [h for h in table.values() if not h.group_level]
    out: list[str] = []
    if group:
        out += ["Set per param group (a group dict may override the constructor's value):\n",
                _hparam_table(group)]
    if whole:
        out += ["Set once for the whole optimizer (constructor arguments only):\n",
                _hparam_table(whole)]
    constraints = list(constraints)
    if constraints:
        out.append("Combinations that raise `ValueError` at construction:\n")
        for c in constraints:
            names = ", ".join(f"`{n}`" for n in c.names)
            out.append(f"- {names}: {md_escape(c.message)}.")
        out.append("")
    return "\n".join(out)


def render_write() -> str:
    """Weight decay and the write from ``spec.write``: plain and cautious decay."""
    from spec import write  # imported here: only the weight-decay page needs it

    U = sp.Symbol("U_t", real=True)
    out = [
        "The parameter before rounding, printed from `spec.write.new_param`. $U_t$ is the "
        "optimizer's update, which already contains the learning rate.\n",
        display(r"P_t", write.new_param(U, cautious_wd=False)),
        "With `cautious_wd=True`:\n",
        display(r"P_t", write.new_param(U, cautious_wd=True)),
    ]
    return "\n".join(out)


# -- optimizer-state storage (spec/state_storage.md) ------------------------------------------
# Sums and index ranges read best in sympy's default term order (``d_2 - 1``, not ``-1 + d_2``).
STORAGE_ORDER = None
# The parameter and hyperparameters of the worked example in the bytes table.
EXAMPLE_SHAPE = (2048, 2048)
EXAMPLE_ROWS = (  # (label, state_precision, factored_2nd, parameter dtype)
    ("'fp32'", "fp32", False, "float32"),
    ("'auto', float32 parameter", "auto", False, "float32"),
    ("'auto', bfloat16 parameter", "auto", False, "bfloat16"),
    ("'bf16_sr'", "bf16_sr", False, "float32"),
    ("'fp16'", "fp16", False, "float32"),
    ("'int8_sr'", "int8_sr", False, "float32"),
    ("'int4'", "int4", False, "float32"),
    ("'factored'", "factored", False, "float32"),
    ("'fp32' + factored_2nd", "fp32", True, "float32"),
    ("'bf16_sr' + factored_2nd", "bf16_sr", True, "float32"),
    ("'int8_sr' + factored_2nd", "int8_sr", True, "float32"),
    ("'int4' + factored_2nd", "int4", True, "float32"),
)
SHAPE_EXAMPLES = ((2048, 2048), (47, 97), (3, 5, 7), (4096, 11008), (17,), (), (0, 5))


def _storage_lines(rows: Iterable[tuple[str, sp.Expr]]) -> list[str]:
    return [display(lhs, expr, order=STORAGE_ORDER) for lhs, expr in rows]


def _storage_shapes(module: ModuleType) -> str:
    from spec import storage_layout as layout

    def cell(shape: tuple[int, ...], vector_reshape: bool) -> str:
        h = {"state_precision": "factored", "factored_2nd": False, "vector_reshape": vector_reshape}
        numel = math.prod(shape)
        if not layout.is_factored(layout.Slot("v", False, True), len(shape), numel, h):
            return "dense"
        return str(layout.factor_shape(numel))

    rows = ["| Parameter shape | $n$ | Factored view | With `vector_reshape=True` |", "| --- | --- | --- | --- |"]
    rows += [f"| `{shape}` | {math.prod(shape)} | {cell(shape, False)} | {cell(shape, True)} |"
             for shape in SHAPE_EXAMPLES]
    return "\n".join([
        f"Printed from `{module.__name__}.FACTOR_D2` ($n$ elements, $d_1 = n / d_2$):\n",
        *_storage_lines([("d_2", module.FACTOR_D2)]),
        "Examples, computed by `spec.storage_layout.factor_shape` and `is_factored` "
        "(the conformance suite checks that it equals the formula):\n",
        "\n".join(rows) + "\n",
    ])


def _storage_factors(module: ModuleType) -> str:
    return "\n".join([
        f"Printed from `{module.__name__}` (`ROW_SUM`, `COL_SUM`, `COL_FACTOR`, `RECONSTRUCTION`), "
        rf"with $\varphi = {latex(sp.Float(module.VALUES[module.phi], 2), None)}$:" + "\n",
        *_storage_lines([
            ("r_i", module.ROW_SUM), ("c_j", module.COL_SUM), (r"\bar{c}_j", module.COL_FACTOR),
            (r"\hat{M}_{i,j}", module.RECONSTRUCTION),
        ]),
    ])


def _storage_signs(module: ModuleType) -> str:
    bit = sp.Symbol("b_{i,j}")
    return "\n".join([
        f"Printed from `{module.__name__}` (`PACKED`, `UNPACKED`, `SIGNED_RECONSTRUCTION`):\n",
        *_storage_lines([
            ("P_{i,h}", module.PACKED), ("b_{i,j}", module.UNPACKED),
            (r"\hat{X}_{i,j}", module.SIGNED_RECONSTRUCTION.xreplace({module.UNPACKED: bit})),
        ]),
    ])


def _storage_codes(module: ModuleType) -> str:
    """The minifloat codes (spec.codes) and each format's constants and proven bounds."""
    from spec import codes as C
    from spec.storage_layout import CODES

    rows = ["| Format | State | Bits (sign + e + m) | Block $B$ | Top level $T$ | Smallest normal / $T$ "
            "| Rounded down, $\\hat y / y \\ge$ | Zero |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (kind, signed), code in CODES.items():
        state = "signed (first moments)" if signed else "non-negative (second moments)"
        zero = "0 and subnormals" if signed else "none: below the range, the smallest level"
        rows.append(f"| `{kind}` | {state} | {int(signed)} + {code.exp_bits} + {code.man_bits} | {code.block} "
                    f"| ${latex(C.instantiate(C.TOP, code), None)}$ | ${latex(C.range_of(code), None)}$ "
                    f"| ${latex(C.smallest_fraction(code), None)}$ | {zero} |")
    return "\n".join([
        f"Printed from `{C.__name__}` (`SCALE`, `NORMALISED`, `ALPHA`, `NORMAL_CODE`, `UNSIGNED_CODE`, "
        "`SIGNED_CODE`, `LEVEL`, `SIGNED_LEVEL`); $e$ exponent bits, $m$ mantissa bits, bias $2^e - 1$:\n",
        *_storage_lines([
            ("s_b", C.SCALE), ("y_k", C.NORMALISED), (r"\alpha_k", C.ALPHA), (r"\kappa_k", C.NORMAL_CODE),
            (r"c_k^{+}", C.UNSIGNED_CODE), (r"c_k^{\pm}", C.SIGNED_CODE), (r"L^{+}(c)", C.LEVEL),
            (r"L^{\pm}(c)", C.SIGNED_LEVEL),
        ]),
        "The formats, with the bounds computed exactly over all their codes by `spec.codes` "
        "(`range_of`, `smallest_fraction`; the conformance suite recomputes them from the decoded codes):\n",
        "\n".join(rows) + "\n",
    ])


def _storage_keys(module: ModuleType) -> str:
    from spec.storage_layout import Format

    formats = (Format("dense", True), Format("fp16", True, "float16"), Format("int8", True), Format("int8", False),
               Format("int4", True), Format("int4", False), Format("factored", True), Format("factored", False))
    rows = ["| Format | Key | dtype | Shape |", "| --- | --- | --- | --- |"]
    for fmt in formats:
        for key, dtype, shape in module.stored_tensors(fmt, "exp_avg"):
            text = r"\mathrm{shape}(p)" if shape is module.PARAM_SHAPE else latex(sp.Tuple(*shape), None)
            if fmt.kind == "dense":
                label, dtype = "dense", "float64, float32, bfloat16 or float16"
            else:
                label = fmt.label()
            rows.append(f"| {label} | `{key}` | {dtype} | ${text}$ |")
    return "\n".join(rows) + "\n"


def _storage_bytes(module: ModuleType) -> str:
    from spec import storage_layout as layout
    from spec.hparams.adamw import SLOTS

    numel = math.prod(EXAMPLE_SHAPE)
    d1, d2 = layout.factor_shape(numel)
    sizes = {module.n: numel, module.d1: d1, module.d2: d2}
    rows = [f"| `state_precision` | `exp_avg` | `exp_avg_sq` | Bytes for $n$ elements | Bytes per element, "
            f"{EXAMPLE_SHAPE[0]}×{EXAMPLE_SHAPE[1]} |", "| --- | --- | --- | --- | --- |"]
    for label, precision, f2, dtype in EXAMPLE_ROWS:
        h = {"state_precision": precision, "factored_2nd": f2, "vector_reshape": False}
        fmts = [layout.resolve(slot, dtype, len(EXAMPLE_SHAPE), numel, h, True) for slot in SLOTS]
        total = sp.Add(*(module.stored_bytes(f).subs(module.B, f.block) if f.kind in layout.BLOCKWISE
                         else module.stored_bytes(f) for f in fmts))
        per = total.subs(sizes) / numel
        rows.append(f"| {label} | {fmts[0].label()} | {fmts[1].label()} | ${latex(total, None)}$ "
                    f"| {float(per):.10g} |")
    return "\n".join(rows) + "\n"


def _storage_fp16(module: ModuleType) -> str:
    from spec.hparams.adamw import BETAS

    default = BETAS.default[1]
    rows = [r"| $\beta_2$ | rounds to 0: $\lvert g \rvert \le$ | below $2^{-24}$: $\lvert g \rvert <$ |",
            "| --- | --- | --- |"]
    for b2 in sorted({default, 0.99, 0.95}, reverse=True):
        value = {module.beta2: sp.nsimplify(b2)}
        note = " (default)" if b2 == default else ""
        rows.append(f"| {b2}{note} | {float(module.FP16_FLUSH_G.subs(value)):.3g} "
                    f"| {float(module.FP16_UNDERFLOW_G.subs(value)):.3g} |")
    return "\n".join([
        f"Printed from `{module.__name__}` (`FP16_FLUSH_G`, `FP16_UNDERFLOW_G`); $2^{{-24}}$ is the "
        "smallest positive float16:\n",
        *_storage_lines([
            (r"g_{\mathrm{zero}}", module.FP16_FLUSH_G), (r"g_{\mathrm{tiny}}", module.FP16_UNDERFLOW_G),
        ]),
        "\n".join(rows) + "\n",
    ])


# Every section of the storage page: marker kind -> renderer (each must appear on the page).
def _direction_rules(module: ModuleType) -> str:
    """Every direction feature's quantities, printed from ``spec.directions.rules()``."""
    out = [f"Each line is printed from the sympy expressions of `{module.__name__}.rules()`.\n"]
    for title, stages in module.rules().items():
        out += [f"**{title}**\n", *(display(st.lhs, st.expr) for st in stages.values())]
    return "\n".join(out)


def render_mask(module: ModuleType) -> str:
    """The learning-rate mask's 8-bit code, printed from ``MASK_LEVEL`` and ``MASK_CODE``."""
    return "\n".join([
        f"Printed from `{module.__name__}` (`MASK_LEVEL`, `MASK_CODE`):\n",
        display("l_k", module.MASK_LEVEL, r"k = 0, \dots, T"),
        display(r"c(x)", module.MASK_CODE, r"l_k \le x < l_{k+1}"),
    ])


SECTIONS: dict[str, dict[str, Any]] = {
    "directions": {"rules": _direction_rules},
    "state_storage": {
        "shapes": _storage_shapes, "factors": _storage_factors, "signs": _storage_signs,
        "codes": _storage_codes, "keys": _storage_keys, "bytes": _storage_bytes, "fp16": _storage_fp16,
    },
}
