"""Every tolerance the suite may use: data with a reason, rendered into the docs.

A test looks its tolerance up by id (``tol("adamw.fp32.step")``); there are no literals in
tests. Reasons state the derivation or the measurement behind each number.
"""

from __future__ import annotations

from conformance.tolerance import BF16_ULP, FP32_ULP, Tolerance
from conformance.tolerances_directions import DIRECTIONS

__all__ = ["BF16_ULP", "FP32_ULP", "TOLERANCES", "Tolerance", "tol"]

TOLERANCES: dict[str, Tolerance] = {
    "spec.reference": Tolerance(
        1e-12, 1e-14,
        "sympy lambdified in float64 vs the reference's float64 arrays: both evaluate the same "
        "formula; only operation order differs (a few float64 ulps, ~1e-15 relative).",
    ),
    "adamw.fp64.step": Tolerance(
        1e-12, 1e-14,
        "fast with float64 parameters runs the kernel in float64; after one re-synced step the "
        "difference is float64 rounding of ~15 operations, each <= 2^-53 relative (~1e-15), "
        "amplified at most ~1e2x where D is near eps. 1e-12 leaves margin and still fails for any "
        "formula change (the smallest mutant moves values by >1e-4 relative).",
    ),
    "adamw.fp32.step": Tolerance(
        2e-6, 1e-7,
        "fp32 kernel vs float64 reference, one re-synced step. ~12 roundings of <= 2^-24 each "
        "(EMA, square, sqrt, divide, multiply, decay, subtract) bound the relative error near "
        "7e-7; measured max over all samples and dtypes: 6.9e-8 on parameters, 5.4e-7 on states. "
        "PyTorch's own fp32 optimizer tests use 1.3e-6. atol covers states that cancel to ~0 "
        "(exact-zero gradient coordinates) against O(0.1..10) magnitudes.",
    ),
    "adamw.fp32.state": Tolerance(
        2e-6, 5e-6,
        "fp32 states (and int8 scales, max|x|/qmax of them) vs float64, one re-synced step: rtol as "
        "adamw.fp32.step. An EMA beta*m + (1-beta)*g that cancels keeps the absolute rounding of "
        "its terms: gradients reach ~40 (10 x normal tails) in the suite, so <= 2 ulps of 40, "
        "4.8e-6 absolute. Measured: 1.2e-7 absolute on m = -0.0064 from terms of ~1.",
    ),
    "adamw.fp32.drift": Tolerance(
        1e-5, 1e-6,
        "fp32 vs float64 over 25 steps without re-sync. Per-step errors of <= 7e-7 relative on "
        "the states and on U (~lr) accumulate about linearly; measured after 25 steps: 6.3e-7 "
        "relative on states, parameters within atol. A one-step bias-correction offset moves "
        "parameters by ~lr, i.e. >1e-3 relative, far outside.",
    ),
    "adamw.compiled_vs_eager": Tolerance(
        4e-6, 2e-7,
        "the same kernel compiled by inductor vs run eagerly, 3 steps of the 'everything' sample "
        "without re-sync: inductor contracts a*b+c into FMAs and reorders scalar products, so "
        "each run is its own fp32 rounding of the exact step; both lie within adamw.fp32.step of "
        "the float64 reference, hence within twice it of each other. Measured: 1.2e-6 relative "
        "on an EMA state that cancels to 0.036 (about 10 ulps of the result, 1 ulp of the terms).",
    ),
    "adamw.bf16_sr.param": Tolerance(
        0.0, 0.0,
        "bf16 parameters with injected rounding bits: fast rounds its fp32 working value, the "
        "reference rounds its float64 value cast to fp32. They differ by a few fp32 ulps, so the "
        "rounded bf16 differs only where bits(x)+r crosses a 2^16 boundary differently: "
        "probability ~ (few ulps)/2^16 ~ 1e-4 per element. Allowed: 1e-3 of elements, each at most "
        "one bf16 ulp (2^-7 relative). The same holds for bf16 states (stochastic or "
        "round-to-nearest) and is used for them.",
        max_error_rate=1e-3,
    ),
    "adamw.bf16_sr.one_ulp": Tolerance(
        BF16_ULP, 0.0,
        "the elements allowed by adamw.bf16_sr.param may differ by exactly one bf16 neighbour: "
        "2^-7 relative.",
    ),
    "adamw.cautious_wd.bf16_sr.one_ulp": Tolerance(
        0.03, 0.0,
        "cautious weight decay on bf16 parameters: where the update U of an element is within "
        "fp32 rounding of 0 (its momentum cancels), fp32 and float64 can disagree on the sign of "
        "U*P, so one side decays that element by lr*wd*P and the other does not. Measured: 1 "
        "element of 4559 at lr*wd = 0.025 (the cautious_wd sample, the largest of the suite). "
        "Such elements (within adamw.bf16_sr.param's 1e-3 budget) may differ by lr*wd plus one "
        "bf16 ulp: 0.025 + 2^-7 < 0.03 relative.",
    ),
    "adamw.bf16.state": Tolerance(
        0.0, 0.0,
        "bf16 states (stochastic or round-to-nearest) from fp32 (fast) vs float64 cast to fp32 "
        "(reference), the same bits injected. As for bf16 parameters the two differ only where a "
        "few fp32 ulps straddle a rounding boundary, except that with bf16 parameters the "
        "gradient has an 8-bit mantissa, so (1-beta2)*g^2 often lands within an fp32 ulp of a bf16 "
        "round-to-nearest tie: measured 13/4559 = 0.29% with round-to-nearest states. Allowed 1%, "
        "each one bf16 neighbour (adamw.bf16.state_one_ulp).",
        max_error_rate=1e-2,
    ),
    "adamw.bf16.state_one_ulp": Tolerance(
        BF16_ULP, 5e-6,
        "bf16 states past adamw.bf16_sr.param: one bf16 neighbour (2^-7 relative), or, for an EMA "
        "that cancels to ~0, the fp32 residue of the cancellation (adamw.fp32.state's 5e-6): "
        "float64 gives -6.9e-18 where fp32 gives exactly 0, and the two round to different bf16 "
        "values near 0.",
    ),
    "adamw.fp16.state": Tolerance(
        0.0, 0.0,
        "fp16 states, round-to-nearest from fp32 (fast) vs float64 cast to fp32 (reference). With "
        "bf16 parameters the gradient has an 8-bit mantissa, so (1-beta2)*g^2 often lies within "
        "one fp32 ulp of an fp16 rounding tie (fp16 keeps 11 bits): fp32's 0.03f*g^2 falls just "
        "below the tie where float64 lands on it and rounds to even. Measured 69/4559 = 1.5% at "
        "step 1 of the 'everything' sample; allowed 3%, each one fp16 ulp "
        "(adamw.fp16.state_one_ulp).",
        max_error_rate=3e-2,
    ),
    "adamw.fp16.state_one_ulp": Tolerance(
        2.0**-10, 5e-6,
        "fp16 states past adamw.fp16.param: one fp16 ulp, or the fp32 cancellation residue "
        "(adamw.fp32.state) for states that cancel to ~0.",
    ),
    "adamw.fp16.param": Tolerance(
        0.0, 0.0,
        "float16 parameters are written round-to-nearest from the fp32 working value; the "
        "reference rounds its float64 value cast to fp32. A few fp32 ulps apart, they round to "
        "different fp16 neighbours with probability ~ (few)/2^13 ~ 5e-4 per element. Allowed: "
        "1e-2 of elements (ceil), each at most one fp16 ulp. Used for fp16 states too.",
        max_error_rate=1e-2,
    ),
    "adamw.fp16.one_ulp": Tolerance(
        2.0**-10, 6e-8,
        "one fp16 ulp: 2^-10 relative; atol one fp16 subnormal step (5.96e-8) for values near 0.",
    ),
    "adamw.factor": Tolerance(
        8e-6, 0.0,
        "factored states: fp32 row/column sums of fp32 moments vs float64 sums of float64 "
        "moments, one re-synced step. Each summand carries <= 7e-7 relative error (adamw.fp32.step) "
        "and a sum of n non-negative terms adds <= (n-1)*2^-24 relative; the longest reduction in the "
        "suite has n = 97 (5.8e-6), and normalising the column factor adds 2 ulps. The sums "
        "themselves do not cancel (non-negative terms), but a moment element can: an EMA whose terms "
        "have opposite signs keeps their absolute rounding (a few ulps of the terms), which is large "
        "relative to a small result. A row of one element (a vector factored as (n, 1)) shows it "
        "alone: measured 2.0e-5 relative (4.9e-10 absolute) on an Adopt row factor of 2.4e-5. Hence "
        "atol = 1e-6 x the tensor's largest factor. A factor taken from the old moment, or the other "
        "side normalised, is off by O(1).",
        atol_of_max=1e-6,
    ),
    "adamw.sign": Tolerance(
        0.0, 0.0,
        "packed first-moment signs, compared bit by bit after unpacking: fp32 and float64 agree "
        "on the sign of m except where |m| is within rounding (~1e-7 relative of its terms) of "
        "0; exact zeros (zero-gradient rows, first-step zero gradients) give bit 0 in both. "
        "Allowed: 1e-3 of the bits. A reversed bit order or a flipped zero sign changes >5%.",
        max_error_rate=1e-3,
    ),
    "adamw.int8.code": Tolerance(
        0.0, 0.0,
        "8-bit and 4-bit codes (compared as signed level indices) with the same counter-based "
        "draws: fast's fp32 state and the reference's float64 one differ by ~1e-7 relative, so a "
        "code differs only where the value's position among the levels (relative spacing 2^-m, "
        "m >= 0) plus the draw lies within ~1e-7 of an integer: ~1e-6 per element for m = 3, "
        "and the block scale (the block's fp32 maximum) moves every position by the same ~1e-7. "
        "Allowed: 1e-3 of the codes, each off by at most one level (adamw.int8.one_code).",
        max_error_rate=1e-3,
    ),
    "adamw.int8.one_code": Tolerance(
        0.0, 1.0,
        "a code allowed by adamw.int8.code may differ by one level (one step of its signed index).",
    ),
    "adamw.factored_identity": Tolerance(
        0.0, 1e-6,
        "factored vs dense fast AdamW (fp32) when v is exactly rank 1: the only difference is the "
        "fp32 rounding of the reconstruction r_i*c_j: sums of up to 97 terms (<= 97*2^-24 = 5.8e-6 "
        "relative) and the normalisation, so D differs by <= 3e-6 relative and each update (~lr = "
        "1e-2) by <= 3e-8; over 5 steps <= 1.5e-7, plus one fp32 ulp of a parameter of magnitude "
        "< 4 (4.8e-7) when the two updates straddle a rounding boundary.",
    ),
    "adamw.lossless": Tolerance(
        0.0, 0.0,
        "a prime-numel vector factored as (n, 1): r_i = |m_i| and c = [S/S] = [1] exactly, the sign "
        "bits restore the sign, so factored and dense runs must be bit-identical.",
    ),
    "rng.z": Tolerance(
        0.0, 5.0,
        "z-score bound of the counter-based draws' statistics (chi-square of 2^16, 256 and 256 "
        "bins, Pearson correlations over 2^18 pairs): each is standard normal for independent "
        "uniform draws, so |z| >= 5 has probability 6e-7 per statistic; the inputs are fixed, so "
        "the test is deterministic. Bits reused across elements, steps, parameters or purposes "
        "give z ~ 512 (correlation 1) or a chi-square far outside.",
    ),
    "adamw.code.mean": Tolerance(
        0.0, 2.0**-16,
        "mean over all 2^16 draws of a decoded 8-bit or 4-bit code, in units of its level step: "
        "floor(position + r/2^16) averages to the position rounded up to the 2^-16 grid of the "
        "draws, so |mean - y| < 2^-16 of a step. Rounding to nearest instead is off by up to 1/2.",
    ),
    "adamw.torch_oracle": Tolerance(
        1e-12, 1e-14,
        "reference.AdamW vs torch.optim.AdamW, both float64, 10 steps without re-sync: the same "
        "formula in a different operation order; float64 rounding (~1e-16 per op) accumulated "
        "over 10 steps stays below 1e-14 relative.",
    ),
    "external.float64": Tolerance(
        1e-10, 1e-13,
        "reference (float64) vs a canonical package run in float64 (lion-pytorch 0.2.5, torch-adopt "
        "0.1.0 with decouple=True) over 10 steps on the suite's tensors, non-default hyperparameters: "
        "the same formula in another operation order, a few float64 ulps per step. Measured: 3.6e-15 "
        "absolute for Lion; for Adopt 9.3e-10 absolute on values near 4.5e6 (a few ulps) and 8e-12 "
        "relative on momentum elements that cancel toward 0. A changed formula moves values by >1e-4.",
    ),
    "external.fp32": Tolerance(
        1e-4, 1e-6,
        "fast (fp32) vs a canonical package in fp32 over 10 steps without re-sync: two fp32 "
        "implementations with different operation orders drift apart by a few ulps per step "
        "(adamw.fp32.drift), plus, for Prodigy, the documented eps-term deviation (prodigyopt uses "
        "the updated d: 3e-5 of the distance moved in float64). Measured |diff|/(|expected| + 1e-6) "
        "after 10 steps: Lion 9.7e-5 on exp_avg (elements cancelling toward 0), Adopt 4.6e-5, "
        "Prodigy 2.9e-5 on d and 2.5e-5 on parameters; the largest (4.7e-4 on Prodigy's d-scaled "
        "exp_avg of ~1e-5) lie within atol.",
    ),
    "prodigy.external": Tolerance(
        1e-10, 1e-15,
        "reference.Prodigy vs prodigyopt 1.1.2 in float64, with the one documented difference (the d in the eps "
        "term, and in the betas[0] = 0 numerator) handed to the reference or predicted exactly. Only summation "
        "order differs (torch.dot vs numpy, fused vs separate decay): measured over 10 steps on 4 configurations "
        "3.9e-15 relative on d, d_max and the numerator, 2.9e-14 on parameters, 2.4e-12 on exp_avg and s where "
        "they cancel toward 0; the re-synced one-step check subtracts parameters of size ~1 (ulp 2.2e-16), "
        "so atol 1e-15 (measured need: 2.8e-16). Without the eps compensation the runs differ by 1.1e-6 relative "
        "on d and 3e-5 of the distance moved on parameters (eps=1e-8, growth_rate=inf), far outside.",
    ),
    "prodigy.group": Tolerance(
        1e-7, 1e-12,
        "Prodigy's d, d_max and d_numerator after one re-synced step. The numerator and the "
        "denominator are float64 sums of float64 products on the slice; the only fp32 rounding is "
        "that of the stored s (2^-24 relative per element), which enters the denominator sum |s|. "
        "Measured over every sample and dtype: 3.6e-9 relative on d, 6e-15 on d_numerator.",
    ),
    "prodigy.drift.group": Tolerance(
        1e-5, 1e-12,
        "Prodigy's d, d_max, d_numerator after 25 steps without re-sync: the parameters drift by "
        "fp32 rounding (prodigy.fp32.drift) and the numerator sums <g, p0 - p> over them. Measured: "
        "4.1e-8 relative on d, 7.5e-7 on d_numerator. Allowed 1e-5.",
    ),
    "prodigylion.group": Tolerance(
        1e-7, 1e-12, "as prodigy.group (the same statistics code); measured 1.4e-9 relative on d.",
    ),
    "prodigylion.drift.group": Tolerance(
        1e-5, 1e-12, "as prodigy.drift.group (the same statistics code); measured 1.9e-7 on d, 6.2e-7 on d_numerator.",
    ),
    "lion.bf16_sr.param": Tolerance(
        0.0, 0.0,
        "Lion with bf16 parameters: the rounding differences of adamw.bf16_sr.param, plus sign ties. "
        "With bf16 gradients and states the momentum interpolation can cancel exactly "
        "(beta*m = -(1-beta)*g on the coarse grid); fast's fp32 beta and 1-beta leave 0 (sign 0) where "
        "float64 leaves +-1e-18 (a full step), or the reverse. Measured over every sample, 5 steps: at most "
        "4 of 4559 elements (0.09%) of one tensor. Allowed 0.2% (ceil: at least one element per tensor), "
        "each within lion.bf16_sr.one_ulp.",
        max_error_rate=2e-3,
    ),
    "lion.bf16_sr.one_ulp": Tolerance(
        BF16_ULP, 0.021,
        "one bf16 neighbour, or one sign tie: a coordinate that moved by the step size (lr <= 1e-2 "
        "in the samples) in one implementation and not in the other, or in opposite directions: "
        "<= 2 lr = 0.02 plus an ulp (measured max 0.0137).",
    ),
    "lion.fp16.param": Tolerance(
        0.0, 0.0,
        "Lion with fp16 parameters: the rounding differences of adamw.fp16.param, plus sign ties. "
        "With fp16 gradients and states the momentum interpolation can cancel exactly "
        "(beta*m = -(1-beta)*g on the coarse grid); fast's fp32 beta and 1-beta leave 0 (sign 0) where "
        "float64 leaves +-1e-18 (a full step), or the reverse. Measured over every sample, 5 steps: at most "
        "4 of 4559 elements (0.09%) of one tensor. Allowed 0.2% (ceil: at least one element per tensor), "
        "each within lion.fp16.one_ulp.",
        max_error_rate=2e-3,
    ),
    "lion.fp16.one_ulp": Tolerance(
        2.0**-10, 0.021,
        "one fp16 neighbour, or one sign tie: a coordinate that moved by the step size (lr <= 1e-2 "
        "in the samples) in one implementation and not in the other, or in opposite directions: "
        "<= 2 lr = 0.02 plus an ulp (measured max 0.0137).",
    ),
    "signsgd.bf16_sr.param": Tolerance(
        0.0, 0.0,
        "SignSGD with bf16 parameters: the rounding differences of adamw.bf16_sr.param, plus sign ties. "
        "With bf16 gradients and states the momentum interpolation can cancel exactly "
        "(beta*m = -(1-beta)*g on the coarse grid); fast's fp32 beta and 1-beta leave 0 (sign 0) where "
        "float64 leaves +-1e-18 (a full step), or the reverse. Measured over every sample, 5 steps: at most "
        "4 of 4559 elements (0.09%) of one tensor. Allowed 0.2% (ceil: at least one element per tensor), "
        "each within signsgd.bf16_sr.one_ulp.",
        max_error_rate=2e-3,
    ),
    "signsgd.bf16_sr.one_ulp": Tolerance(
        BF16_ULP, 0.021,
        "one bf16 neighbour, or one sign tie: a coordinate that moved by the step size (lr <= 1e-2 "
        "in the samples) in one implementation and not in the other, or in opposite directions: "
        "<= 2 lr = 0.02 plus an ulp (measured max 0.0137).",
    ),
    "signsgd.fp16.param": Tolerance(
        0.0, 0.0,
        "SignSGD with fp16 parameters: the rounding differences of adamw.fp16.param, plus sign ties. "
        "With fp16 gradients and states the momentum interpolation can cancel exactly "
        "(beta*m = -(1-beta)*g on the coarse grid); fast's fp32 beta and 1-beta leave 0 (sign 0) where "
        "float64 leaves +-1e-18 (a full step), or the reverse. Measured over every sample, 5 steps: at most "
        "4 of 4559 elements (0.09%) of one tensor. Allowed 0.2% (ceil: at least one element per tensor), "
        "each within signsgd.fp16.one_ulp.",
        max_error_rate=2e-3,
    ),
    "signsgd.fp16.one_ulp": Tolerance(
        2.0**-10, 0.021,
        "one fp16 neighbour, or one sign tie: a coordinate that moved by the step size (lr <= 1e-2 "
        "in the samples) in one implementation and not in the other, or in opposite directions: "
        "<= 2 lr = 0.02 plus an ulp (measured max 0.0137).",
    ),
    "prodigylion.bf16_sr.param": Tolerance(
        0.0, 0.0,
        "ProdigyLion with bf16 parameters: the rounding differences of adamw.bf16_sr.param, plus sign ties. "
        "With bf16 gradients and states the momentum interpolation can cancel exactly "
        "(beta*m = -(1-beta)*g on the coarse grid); fast's fp32 beta and 1-beta leave 0 (sign 0) where "
        "float64 leaves +-1e-18 (a full step), or the reverse. Measured over every sample, 5 steps: at most "
        "4 of 4559 elements (0.09%) of one tensor. Allowed 0.2% (ceil: at least one element per tensor), "
        "each within prodigylion.bf16_sr.one_ulp.",
        max_error_rate=2e-3,
    ),
    "prodigylion.bf16_sr.one_ulp": Tolerance(
        BF16_ULP, 0.021,
        "one bf16 neighbour, or one sign tie: a coordinate that moved by the step size (lr <= 1e-2 "
        "in the samples) in one implementation and not in the other, or in opposite directions: "
        "<= 2 lr = 0.02 plus an ulp (measured max 0.0137).",
    ),
    "prodigylion.fp16.param": Tolerance(
        0.0, 0.0,
        "ProdigyLion with fp16 parameters: the rounding differences of adamw.fp16.param, plus sign ties. "
        "With fp16 gradients and states the momentum interpolation can cancel exactly "
        "(beta*m = -(1-beta)*g on the coarse grid); fast's fp32 beta and 1-beta leave 0 (sign 0) where "
        "float64 leaves +-1e-18 (a full step), or the reverse. Measured over every sample, 5 steps: at most "
        "4 of 4559 elements (0.09%) of one tensor. Allowed 0.2% (ceil: at least one element per tensor), "
        "each within prodigylion.fp16.one_ulp.",
        max_error_rate=2e-3,
    ),
    "prodigylion.fp16.one_ulp": Tolerance(
        2.0**-10, 0.021,
        "one fp16 neighbour, or one sign tie: a coordinate that moved by the step size (lr <= 1e-2 "
        "in the samples) in one implementation and not in the other, or in opposite directions: "
        "<= 2 lr = 0.02 plus an ulp (measured max 0.0137).",
    ),
    "prodigy.fp32.drift": Tolerance(
        1e-4, 1e-6,
        "Prodigy, fp32 vs float64 over 25 steps without re-sync. d feeds back: the parameters' fp32 "
        "drift enters d's numerator, and d scales every later update, so parameter errors grow a "
        "little faster than AdamW's (adamw.fp32.drift). Measured: 1.0e-5 relative on parameters, "
        "3.8e-7 of the largest state, 4e-8 on d. Allowed 1e-4. Per-step checks stay at fp32.step.",
    ),
    "prodigylion.fp32.drift": Tolerance(
        1e-3, 1e-6,
        "ProdigyLion over 25 steps without re-sync: as prodigy.fp32.drift, plus Lion's sign ties "
        "(lion.bf16_sr.param): one tie moves a coordinate by 2*dlr and d's numerator sees it. "
        "Measured: 4.6e-4 relative on parameters, 4.5e-7 of the largest state. Allowed 1e-3.",
    ),
    "simplifiedademamix.fp32.drift": Tolerance(
        1e-5, 1e-6,
        "SimplifiedAdEMAMix over 25 steps without re-sync: its first moment is an accumulator "
        "m = beta1*m + g without the (1 - beta1) damping, so terms of up to ~40 (gradient tails) add "
        "and cancel into elements much smaller than the tensor's largest; fp32 rounding of those terms "
        "is absolute, a fraction of max|m|, not of each element. Measured: 4.8e-7 of max|m| "
        "(1.3e-5 absolute on an element of 0.38). Allowed: adamw.fp32.drift plus 5e-6 x max|m|.",
        atol_of_max=5e-6,
    ),
    "automagic.external": Tolerance(
        2e-6, 2e-7,
        "reference (float64) and fast (fp32) vs ai-toolkit's Automagic (always fp32) over 10 steps "
        "on the suite's tensors, exact mask: a few fp32 ulps of each value per step (the factors' "
        "means and the RMS clip in another order). Measured: at most 0.51 of this bound on "
        "parameters and 0.43 on the factors. Tight on purpose: with ai-toolkit's default lr (1e-6) "
        "10 steps move a weight of ~1 by ~1e-5, five times this bound, so a lost update fails.",
    ),
    "automagic.external_mask": Tolerance(
        2e-6, 1e-12,
        "The learning-rate mask (values 1e-7 to 1e-3, moved by lr_bump) of the same runs, relative "
        "only: lr +- k lr_bump in fp32 against float64. Measured 8e-7 relative; one bump of the "
        "wrong sign moves an element by 2 lr_bump, far outside.",
    ),
    "sr.training.sr_gap": Tolerance(
        0.1, 0.0,
        "bf16 + stochastic rounding must reach a loss drop within rtol=10% of the fp32 run's drop. "
        "Measured 5.1% (fp32 drop 1.362, SR drop 1.292): SR is unbiased, the gap is its zero-mean "
        "noise (~ulp*sqrt(f(1-f)) per write, ulp ~ 2^-7 at the weights' scale) acting on a "
        "quadratic loss, plus the bf16 rounding of the initial weights. A biased rounding (e.g. "
        "truncation) or a wrong mask lands at RNE-like progress, far outside.",
    ),
    "sr.training.rne_progress": Tolerance(
        0.5, 0.0,
        "bf16 with round-to-nearest must achieve less than rtol=50% of the fp32 run's loss drop: "
        "every update (~lr=1e-4) is below half a bf16 ulp of the weights (~2e-3), so RNE "
        "discards it (measured: 1.4% of fp32's drop, from the few weights near zero whose ulp is "
        "small enough).",
    ),
}


TOLERANCES.update(DIRECTIONS)  # the direction features' ids (conformance/tolerances_directions.py)
# The sign optimizers with cautious weight decay: their own sign-tie allowance plus the decay flip.
for _sign in ("lion", "signsgd", "prodigylion"):
    _own = TOLERANCES[f"{_sign}.bf16_sr.one_ulp"]
    TOLERANCES[f"{_sign}.cautious_wd.bf16_sr.one_ulp"] = Tolerance(
        TOLERANCES["adamw.cautious_wd.bf16_sr.one_ulp"].rtol, _own.atol,
        f"{_sign}.bf16_sr.one_ulp's sign tie (atol) or adamw.cautious_wd.bf16_sr.one_ulp's decay flip (rtol).")


def tol(key: str) -> Tolerance:
    """The tolerance ``key`` (KeyError if the table does not define it)."""
    return TOLERANCES[key]
