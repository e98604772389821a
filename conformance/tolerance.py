"""The tolerance record (conformance/tolerances.py holds the table)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    """|actual - expected| <= atol + rtol*|expected| elementwise, except for at most
    ``ceil(max_error_rate * numel)`` elements of one comparison (0: none)."""

    rtol: float
    atol: float
    reason: str
    max_error_rate: float = 0.0
    # Added to atol, times the largest |expected| of the comparison: for sums that cancel, whose
    # rounding error scales with their terms rather than with each result.
    atol_of_max: float = 0.0


FP32_ULP = 2.0**-23
BF16_ULP = 2.0**-7
FP16_ULP = 2.0**-10
