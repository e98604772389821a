"""Markdown renderers for the generated parts of the spec pages.

Every formula and table on a spec page comes from ``spec/`` (sympy rules, hyperparameter
records), so the docs cannot drift from what the tests check. This module only turns those
objects into Markdown; ``generate.py`` decides where the output goes.
"""

from __future__ import annotations

import inspect
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


def latex(expr: sp.Expr) -> str:
    return sp.latex(expr, order=LATEX_ORDER)


def display(lhs: str, expr: sp.Expr, note: str = "") -> str:
    """One display equation ``lhs = expr`` as an arithmatex block (blank-line separated)."""
    tail = rf"\qquad\text{{{note}}}" if note else ""
    return f"$$\n{lhs} = {latex(expr)}{tail}\n$$\n"


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
