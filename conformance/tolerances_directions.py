"""The direction features' tolerances (spec/directions.md), merged into conformance/tolerances.py.

Ids ``<optimizer>.<class>.<id>`` replace ``<optimizer>.<id>`` in runs of that tolerance class
(conformance/features.py, ``TOLERANCE_CLASSES``); the others are the features' own states.
Measurements: every registry feature sample (every dtype, dense and factored), the pairwise rows,
the hypothesis examples and ~26,000 further random configurations of the same generator on the
same random tensors (fp32 and bf16), one re-synced step each (of_max: |error| / max|expected|).
"""

from __future__ import annotations

from conformance.tolerance import FP16_ULP, FP32_ULP, Tolerance

SMALL = ("runs whose tensors all have fewer than 64 elements (the random shapes): a rate-based tolerance "
         "counts single elements there, and one tensor of 9 with one rounding-boundary difference is 11%")

DIRECTIONS: dict[str, Tolerance] = {
    "adamw.kourkoutas": Tolerance(
        2e-6, 0.0,
        "Kourkoutas-beta's host scalars kourkoutas_r and kourkoutas_beta2_prod with fp32, bf16 or fp16 "
        "gradients: fast takes each tensor's norm in fp32 (blocked summation, <= ~log2(n) 2^-24 relative) and "
        "then works in float64 on the host; the reference sums in float64. r and beta2_t = b2 - (b2 - b2min) "
        "x/(1+x) inherit at most that relative error. Measured 4.6e-7 relative (kourkoutas_r of the (47, 97) "
        "tensor, bf16 gradients), 1.2e-7 over the random configurations. float64 runs use adamw.fp64.step "
        "(measured 5.4e-16).",
    ),
    "adamw.prev_sign": Tolerance(
        0.0, 0.0,
        "freeze-on-flip's packed bits [x > 0] of the raw direction, unpacked with numpy.unpackbits "
        "(bitorder='little'; independent of reference.storage) and compared bit by bit. fp32 and float64: no "
        "bit differs. With bf16 or fp16 parameters Lion's momentum interpolation can cancel exactly "
        "(lion.bf16_sr.param's sign ties): x = 0 (bit 0) in one implementation, +-1e-18 in the other. "
        "Measured 1 of 4559 bits (2.2e-4), Lion bf16 and fp16. Allowed 1e-3 (ceil: one bit per tensor); a "
        "reversed bit order or a negated comparison changes about half of them.",
        max_error_rate=1e-3,
    ),
    "adamw.orthograd.fp64.step": Tolerance(
        1e-12, 1e-14,
        "OrthoGrad, float64 parameters, one re-synced step. Flattened: a few ulps (fast's one-pass sums and "
        "||g_perp|| from the expanded sum, the reference's from g_perp). Iterative: in the rows whose gradient "
        "is always 0 (the suite's unused embedding rows) x is pure cancellation (the column pass adds "
        "multiples of w, the row pass removes them), so its error scales with the tensor's largest values: "
        "measured 7.5e-14 of max|expected| (1.8e-11 relative on an element of 5e-3, AdamW/Adopt exp_avg). "
        "Hence 1e-12 x max|expected| on top of adamw.fp64.step.",
        atol_of_max=1e-12,
    ),
    "adamw.orthograd.fp32.step": Tolerance(
        2e-6, 1e-7,
        "OrthoGrad, fp32 parameters: as adamw.fp32.step, plus g' of cancelled coordinates (iterative mode's "
        "zero-gradient rows, see adamw.orthograd.fp64.step) whose fp32 relative error reaches ~1e-4; the "
        "Adam-family update divides by sqrt(v) of the same coordinates, so an update of ~lr carries it. "
        "Measured 2.6e-6 absolute = 9.9e-7 of the tensor's largest parameter (AdamW iterative, (47, 97)). "
        "Allowed 2e-6 x max|expected| besides.",
        atol_of_max=2e-6,
    ),
    "adamw.orthograd.fp32.state": Tolerance(
        2e-6, 5e-6,
        "OrthoGrad, fp32 states: as adamw.fp32.state, plus the cancelled coordinates of "
        "adamw.orthograd.fp32.step, which normed momentum (g'/D) brings to O(1). Measured 4.1e-5 of "
        "max|expected| (Adopt iterative exp_avg, (47, 97), zero-gradient row); at most 0.38 of this bound "
        "over all runs. Allowed 1e-4 x max|expected| besides.",
        atol_of_max=1e-4,
    ),
    "adamw.orthograd.fp16.state_one_ulp": Tolerance(
        FP16_ULP, 5e-6,
        "fp16 states past adamw.fp16.state in OrthoGrad runs: one fp16 ulp, or, on a cancelled coordinate, the "
        "working value's error of adamw.orthograd.fp32.state: measured 9.5e-6 on 3.9e-3 (2.5 fp16 ulps, AdamW "
        "iterative exp_avg); the worst element needs 0.87 of one ulp + 1e-4 x max|expected|. Allowed one ulp + "
        "2e-4 x max|expected|.",
        atol_of_max=2e-4,
    ),
    "adamw.orthograd.factor": Tolerance(
        8e-6, 0.0,
        "factored states in OrthoGrad runs: adamw.factor, plus g''s error on cancelled coordinates "
        "(adamw.orthograd.fp32.state), and one-element factors (0-d and 1-element tensors with vector_reshape) "
        "that are |m| of an EMA that cancels. Measured 5.8e-5 of max (AdamW exp_avg_slow row of the 0-d "
        "tensor), 6.9e-5 on random shapes.",
        atol_of_max=1e-4,
    ),
    "adamw.orthograd.group": Tolerance(
        1e-4, 1e-12,
        "Prodigy's and ProdigyLion's d, d_max and d_numerator with OrthoGrad: the statistics read g', which "
        "fast forms in fp32 (prodigy.group assumes the exact gradient); the numerator sums <g', p0 - p> with "
        "cancellation. Measured 1.8e-7 relative on the registry's tensors, 1.8e-5 (ProdigyLion d_numerator) "
        "on random shapes.",
    ),
    "adamw.small.fp16.state": Tolerance(
        0.0, 0.0, f"{SMALL}. fp16 states, as adamw.fp16.state: measured 11% (1 of 9). Allowed 25%, each one ulp; "
        "a wrong rounding mode moves about half.", max_error_rate=0.25,
    ),
    "adamw.small.bf16.state": Tolerance(
        0.0, 0.0, f"{SMALL}. bf16 states, as adamw.bf16.state: measured 11% (2 of 18, 1 of 9). Allowed 25%.",
        max_error_rate=0.25,
    ),
    "adamw.small.bf16_sr.param": Tolerance(
        0.0, 0.0, f"{SMALL}. bf16 parameters, as adamw.bf16_sr.param: measured 0. Allowed 25%.", max_error_rate=0.25,
    ),
    "adamw.small.sign": Tolerance(
        0.0, 0.0, f"{SMALL}. Packed factored signs, as adamw.sign: measured 0. Allowed 25%.", max_error_rate=0.25,
    ),
    "adamw.small.prev_sign": Tolerance(
        0.0, 0.0, f"{SMALL}. freeze-on-flip bits, as adamw.prev_sign: measured 0. Allowed 25%.", max_error_rate=0.25,
    ),
    "adamw.small.int8.code": Tolerance(
        0.0, 0.0, f"{SMALL}. int8 codes, as adamw.int8.code: measured 9% (1 of 11). Allowed 25%, each one code.",
        max_error_rate=0.25,
    ),
    "adamw.small.factor": Tolerance(
        8e-6, 0.0, f"{SMALL}. Factors: a one-element factor is |m| of an EMA that can cancel (terms ~1e-3, "
        "result ~1e-8), so its error is relative to the terms: measured 1.6e-4 and 2.1e-4 relative (AdamW "
        "exp_avg_slow rows of 0-d tensors, the second with OrthoGrad: this class comes before it). Allowed "
        "1e-3 x max|expected|.", atol_of_max=1e-3,
    ),
    "signsgd.normed.sign": Tolerance(
        0.0, 0.0,
        "SignSGD with normed momentum and factored states: m = mu r_i c_j sign + (1 - mu) sign(g) lives on a "
        "rational grid (|m| from EMAs of +-1), so mu r_i c_j = (1 - mu) happens exactly and m's sign is a tie "
        "between fp32 and float64. Measured 3 of 30 bits (10%, a (2, 3, 5) tensor, bf16). Allowed 15%.",
        max_error_rate=0.15,
    ),
    "adopt.unclipped.fp32.step": Tolerance(
        2e-6, 1e-7,
        "Adopt with clip_lambda=None: g / max(sqrt(v), eps) is unbounded when the gradient scale jumps (the "
        "suite's scales change by up to 1e4 between steps), updates are orders of magnitude larger than the "
        "parameters, and a parameter is the cancellation of terms much larger than itself: its error is an "
        "fp32 ulp of those terms, bounded by ulps of the tensor's largest value. Measured 4.7e-7 on an element "
        "of 0.048 in a tensor reaching 1517 (3e-10 of max). Allowed 2 fp32 ulps of max|expected| besides.",
        atol_of_max=2 * FP32_ULP,
    ),
    "adopt.unclipped.fp32.state": Tolerance(
        2e-6, 5e-6,
        "Adopt with clip_lambda=None, states: the accumulated first moment reaches 1.5e7 and elements that "
        "cancel to ~300 keep the terms' absolute rounding: measured 2.2e-3 on 299.3 (1.5e-10 of max|m|). "
        "Allowed 2 fp32 ulps of max|expected| besides.",
        atol_of_max=2 * FP32_ULP,
    ),
}
