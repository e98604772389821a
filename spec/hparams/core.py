"""The :class:`Hyperparameter` record and the validation every layer shares."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Kind(str, Enum):
    """The value type of a hyperparameter."""

    FLOAT = "float"
    OPTIONAL_FLOAT = "float or None"
    BETAS = "pair of floats"
    TRIPLE = "triple of floats"
    BOOL = "bool"
    INT = "int"
    OPTIONAL_INT = "int or None"
    CHOICE = "one of"
    OPTIONAL_CHOICE = "None or one of"
    OPTIONAL_CALLABLE = "None or a callable"


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter, defined once for spec, reference, fast and docs.

    ``low``/``high`` bound every float in the value (both entries of a betas pair);
    ``None`` means unbounded. ``group_level`` hyperparameters may differ per param group;
    the others belong to the optimizer as a whole.
    """

    name: str
    symbol: str
    default: Any
    kind: Kind
    meaning: str
    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    group_level: bool = True
    choices: tuple[str, ...] = ()

    def range_text(self) -> str:
        if self.kind is Kind.BOOL:
            return "True or False"
        if self.kind is Kind.OPTIONAL_CALLABLE:
            return "f(p) -> hashable key"
        if self.kind in (Kind.CHOICE, Kind.OPTIONAL_CHOICE):
            return "{" + ", ".join(repr(c) for c in self.choices) + "}"
        lo = "-inf" if self.low is None else _fmt(self.low)
        hi = "inf" if self.high is None else _fmt(self.high)
        left = "[" if self.low_inclusive and self.low is not None else "("
        right = "]" if self.high_inclusive and self.high is not None else ")"
        text = f"{left}{lo}, {hi}{right}"
        if self.kind is Kind.OPTIONAL_FLOAT:
            text += " or None"
        if self.kind in (Kind.BETAS, Kind.TRIPLE):
            text = f"each in {text}"
        if self.kind is Kind.INT:
            text = f"integer in {text}"
        if self.kind is Kind.OPTIONAL_INT:
            text = f"integer in {text} or None"
        return text

    def _in_range(self, x: float) -> bool:
        if math.isnan(x):
            return False
        if math.isinf(x) and not (x == self.high and self.high_inclusive):  # "inf)": finite values only
            return False
        if self.low is not None and (x < self.low or (x == self.low and not self.low_inclusive)):
            return False
        if self.high is not None and (x > self.high or (x == self.high and not self.high_inclusive)):
            return False
        return True

    def validate(self, value: Any) -> Any:
        """Return ``value`` (betas as a tuple) or raise ``ValueError`` naming the argument."""
        bad = ValueError(
            f"Invalid {self.name}={value!r}: expected {self.kind.value} {self.range_text()} "
            f"({self.meaning})."
        )
        if self.kind is Kind.BOOL:
            if not isinstance(value, bool):
                raise bad
            return value
        if self.kind is Kind.OPTIONAL_CHOICE and value is None:
            return None
        if self.kind is Kind.OPTIONAL_CALLABLE:
            if value is not None and not callable(value):
                raise bad
            return value
        if self.kind in (Kind.CHOICE, Kind.OPTIONAL_CHOICE):
            if not isinstance(value, str) or value not in self.choices:
                raise bad
            return value
        if self.kind in (Kind.OPTIONAL_FLOAT, Kind.OPTIONAL_INT) and value is None:
            return None
        if self.kind in (Kind.BETAS, Kind.TRIPLE):
            if not isinstance(value, (tuple, list)) or len(value) != (2 if self.kind is Kind.BETAS else 3):
                raise bad
            if not all(_is_real(b) and self._in_range(float(b)) for b in value):
                raise bad
            return tuple(float(b) for b in value)
        if self.kind in (Kind.INT, Kind.OPTIONAL_INT):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not self._in_range(value):
                raise bad
            return int(value)
        if not _is_real(value) or not self._in_range(float(value)):
            raise bad
        return float(value)


def _is_real(x: Any) -> bool:
    """A real number as torch.optim takes one: Python and NumPy numbers (np.float32(1e-3))."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _fmt(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def validate_value(table: Mapping[str, Hyperparameter], name: str, value: Any) -> Any:
    return table[name].validate(value)


def validate_all(table: Mapping[str, Hyperparameter], values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate every entry of ``values`` that the table defines; unknown names raise."""
    out = {}
    for name, value in values.items():
        if name not in table:
            raise TypeError(f"Unknown hyperparameter {name!r}; valid names: {sorted(table)}")
        out[name] = table[name].validate(value)
    return out


@dataclass(frozen=True)
class Constraint:
    """A rule across several hyperparameters; ``holds`` gets the resolved values of a group."""

    names: tuple[str, ...]
    message: str
    holds: Any  # Callable[[Mapping[str, Any]], bool]

    def check(self, values: Mapping[str, Any]) -> None:
        if not self.holds(values):
            shown = ", ".join(f"{n}={values.get(n)!r}" for n in self.names)
            raise ValueError(f"Contradictory arguments {shown}: {self.message}")


def shared_message(cls: str, name: str, value: Any, default: Any) -> str:
    """The error for a param group that overrides a hyperparameter all groups must share."""
    return (f"{cls}: {name}={value!r} in a param group differs from the optimizer's {name}={default!r}; "
            f"{name} is shared by all param groups")
