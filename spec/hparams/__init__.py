"""Hyperparameter definitions: name, symbol, default, valid range, meaning — defined once.

This package is plain Python (no sympy) so that ``fast`` can validate arguments without
importing the symbolic spec.
"""

from spec.hparams.core import Constraint, Hyperparameter, Kind, validate_all, validate_value

__all__ = ["Constraint", "Hyperparameter", "Kind", "validate_all", "validate_value"]
