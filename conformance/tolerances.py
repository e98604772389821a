"""Every tolerance the suite may use: data with a reason, rendered into the docs.

A test looks its tolerance up by id (``tol("adamw.fp32.step")``); there are no literals in
tests. Reasons state the derivation or the measurement behind each number.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    """|actual - expected| <= atol + rtol*|expected| elementwise, except for at most
    ``max_error_rate`` of the elements (0: none)."""

    rtol: float
    atol: float
    reason: str
    max_error_rate: float = 0.0


FP32_ULP = 2.0**-23
BF16_ULP = 2.0**-7

TOLERANCES: dict[str, Tolerance] = {
    "spec.reference": Tolerance(
        1e-12, 1e-14,
        "sympy lambdified in float64 vs the reference's float64 arrays: both evaluate the same "
        "formula; only operation order differs (a few float64 ulps, ~1e-15 relative).",
    ),
    "adamw.fp64.step": Tolerance(
        1e-10, 1e-13,
        "fast with float64 parameters runs the kernel in float64; after one re-synced step the "
        "difference is float64 rounding of ~15 operations, each <= 2^-53 relative (~1e-15), "
        "amplified at most ~1e3x where D is near eps. 1e-10 leaves margin and still fails for any "
        "formula change (the smallest mutant moves values by >1e-4 relative).",
    ),
    "adamw.fp32.step": Tolerance(
        8 * 1.3e-6, 1e-7,
        "fp32 kernel vs float64 reference, one re-synced step. The chain (EMA, sqrt, divide, "
        "multiply, decay, subtract) has ~12 roundings of <= 2^-24 each; PyTorch's optimizer tests "
        "use (1.3e-6, 1e-5) per fp32 step and ~5x for fused chains. Measured max |rel| ~3e-7 on the "
        "parameters, larger only for the update-sized state m/D near sign cancellation, which the "
        "atol covers relative to the O(1e-1) state magnitudes of the test inputs.",
    ),
    "adamw.fp32.drift": Tolerance(
        1e-4, 1e-6,
        "fp32 vs float64 over 25 steps without re-sync: per-step relative error ~1e-6 on the "
        "update (U ~ lr) accumulates roughly linearly; 25 steps x lr=1e-2 x 1e-6 bounds the "
        "parameter drift by ~3e-7 absolute; 1e-4 relative on O(1) parameters is a loose bound "
        "that still fails for a one-step bias-correction offset (~1e-2 relative at t=1).",
    ),
    "adamw.compiled_vs_eager": Tolerance(
        4 * FP32_ULP, 0.0,
        "the same kernel compiled by inductor vs eager: inductor may contract a*b+c into FMA and "
        "reorder commutative scalar products; each can change a result by <= 1 ulp and the chain "
        "has at most 4 such sites on the way to p, m and v.",
    ),
    "adamw.bf16_sr.param": Tolerance(
        0.0, 0.0,
        "bf16 parameters with injected rounding bits: fast rounds its fp32 working value, the "
        "reference rounds its float64 value cast to fp32. They differ by a few fp32 ulps, so the "
        "rounded bf16 differs only where bits(x)+r crosses a 2^16 boundary differently: "
        "probability ~ (few ulps)/2^16 ~ 1e-4 per element. Allowed: 1e-3 of elements, each at most "
        "one bf16 ulp (2^-7 relative).",
        max_error_rate=1e-3,
    ),
    "adamw.bf16_sr.one_ulp": Tolerance(
        BF16_ULP, 0.0,
        "the elements allowed by adamw.bf16_sr.param may differ by exactly one bf16 neighbour: "
        "2^-7 relative.",
    ),
    "sr.training": Tolerance(
        0.0, 0.0,
        "not a comparison: the bf16 training test asserts round-to-nearest stalls (final loss "
        "above the fp32 run's by > 50% of the achieved drop) while stochastic rounding tracks "
        "fp32 within 10% of that drop; both thresholds are about 10 sigma from the measured runs.",
    ),
}


def tol(key: str) -> Tolerance:
    """The tolerance ``key`` (KeyError if the table does not define it)."""
    return TOLERANCES[key]
