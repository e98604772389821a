"""Griffe extensions for the API page (loaded by mkdocstrings, see mkdocs.yml).

``DocstringMarkup``: the optimizer docstrings are Google style but write math the Sphinx
way (``:math:`x``` and ``.. math::`` blocks), which also reads well in ``help()``.
Markdown does not know those forms: a ``.. math::`` block would show as a code block. The
extension rewrites them, before the docstring is parsed, into the ``$x$`` / ``$$ ... $$``
delimiters that pymdownx.arithmatex hands to MathJax. It also reads a section titled
``Example:`` as griffe's ``Examples:`` section; griffe knows only the plural and would
otherwise render the doctest prompts ``>>>`` as nested Markdown quotes.

``SpecDefaults``: constructor defaults are written ``GROUP["lr"].default`` so that the
value is defined once, in ``spec.hparams``. Static analysis can only show that expression;
the extension looks the value up in the (torch-free) hyperparameter module instead.

The source files stay unchanged.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any

from griffe import Alias, Extension, Function, Object

# mkdocs runs from the repository root, but do not rely on it for importing ``spec``.
_REPO = str(Path(__file__).resolve().parent.parent)
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

_ROLE = re.compile(r":math:`([^`]+)`")
_EXAMPLE_TITLE = re.compile(r"^([ \t]*)Example:[ \t]*$", re.MULTILINE)
_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<inline>.*)$")


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip())


def _math_blocks(lines: list[str]) -> list[str]:
    """Replace each ``.. math::`` directive by one ``$$`` block per blank-line-separated
    paragraph (Sphinx typesets each paragraph as its own equation)."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _DIRECTIVE.match(lines[i])
        if match is None:
            out.append(lines[i])
            i += 1
            continue
        indent = match.group("indent")
        body: list[str] = [match.group("inline")] if match.group("inline").strip() else []
        i += 1
        # The directive's content: every following line that is blank or indented deeper.
        while i < len(lines) and (not lines[i].strip() or _indent_of(lines[i]) > len(indent)):
            body.append(lines[i].strip())
            i += 1
        equations = [eq for eq in "\n".join(body).split("\n\n") if eq.strip()]
        for eq in equations:
            out += ["", f"{indent}$$"]
            out += [f"{indent}{row}" for row in eq.strip().splitlines()]
            out += [f"{indent}$$"]
        out.append("")
    return out


def to_markdown(text: str) -> str:
    """``:math:`x``` becomes ``$x$``, ``.. math::`` blocks become ``$$`` blocks, and an
    ``Example:`` section title becomes ``Examples:``."""
    text = _ROLE.sub(lambda m: f"${m.group(1)}$", text)
    text = _EXAMPLE_TITLE.sub(r"\1Examples:", text)
    return "\n".join(_math_blocks(text.splitlines()))


class DocstringMarkup(Extension):
    """Rewrite the docstring of every loaded object (modules, classes, functions, ...)."""

    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)


_SPEC_DEFAULT = re.compile(r"""^(?P<table>\w+)\[(?P<q>['"])(?P<key>\w+)(?P=q)\]\.default$""")


def _spec_default(func: Function, expression: str) -> str | None:
    """``repr`` of the value behind ``TABLE["name"].default``, if TABLE is imported from spec."""
    match = _SPEC_DEFAULT.match(expression)
    if match is None:
        return None
    member = func.module.members.get(match.group("table"))
    if not isinstance(member, Alias) or not member.target_path.startswith("spec."):
        return None  # only spec's tables are known to import without torch
    module_path, _, name = member.target_path.rpartition(".")
    try:
        table = getattr(importlib.import_module(module_path), name)
        return repr(table[match.group("key")].default)
    except (ImportError, AttributeError, KeyError):
        return None


class SpecDefaults(Extension):
    """Show the actual default of every ``TABLE["name"].default`` parameter."""

    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        if not isinstance(obj, Function):
            return
        for param in obj.parameters:
            if param.default is not None:
                value = _spec_default(obj, str(param.default))
                if value is not None:
                    param.default = value
