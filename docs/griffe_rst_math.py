"""Griffe extension: render reStructuredText math in docstrings with arithmatex.

The optimizer docstrings are Google style but write math the Sphinx way (``:math:`x```
and ``.. math::`` blocks), which also reads well in ``help()``. Markdown does not know
those forms: a ``.. math::`` block would show as a code block. This extension rewrites
them, before the docstring is parsed, into the ``$x$`` / ``$$ ... $$`` delimiters that
pymdownx.arithmatex hands to MathJax. The source docstrings stay unchanged.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

_ROLE = re.compile(r":math:`([^`]+)`")
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


def rst_math_to_arithmatex(text: str) -> str:
    """``:math:`x``` becomes ``$x$``; ``.. math::`` blocks become ``$$`` blocks."""
    text = _ROLE.sub(lambda m: f"${m.group(1)}$", text)
    return "\n".join(_math_blocks(text.splitlines()))


class RstMath(Extension):
    """Rewrite the docstring of every loaded object (modules, classes, functions, ...)."""

    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None and "math:" in obj.docstring.value:
            obj.docstring.value = rst_math_to_arithmatex(obj.docstring.value)
