"""Hyperparameters of the momentum features several optimizers share: AdEMAMix, Simplified
AdEMAMix and Nesterov (spec/ademamix.md, spec/simplified_ademamix.md, spec/adamw.md), with the
constraints that make contradictory combinations raise."""

from dataclasses import replace

from spec.hparams.core import Constraint, Hyperparameter, Kind

NESTEROV = Hyperparameter(
    "nesterov", r"\mathrm{nesterov}", False, Kind.BOOL,
    "use the look-ahead numerator c*m + (1-c)*x, x the term the first moment averages (the "
    "gradient, or its normalised / d-scaled form; see each optimizer's page)",
)
NESTEROV_COEF = Hyperparameter(
    "nesterov_coef", "c", None, Kind.OPTIONAL_FLOAT,
    "Nesterov mixing coefficient; None means the first-moment beta", low=0.0, high=1.0,
)

USE_ADEMAMIX = Hyperparameter(
    "use_AdEMAMix", r"\mathrm{AdEMAMix}", False, Kind.BOOL,
    "add a slow EMA, weighted by alpha, of the term the first moment averages (the gradient or its "
    "normalised form) to the update numerator (AdEMAMix)",
)
BETA3_EMA = Hyperparameter(
    "beta3_ema", r"\beta_3", 0.9999, Kind.FLOAT,
    "decay of AdEMAMix's slow EMA (its final value when t_beta3 schedules it)",
    low=0.0, high=1.0, high_inclusive=False,
)
ALPHA = Hyperparameter(
    "alpha", r"\alpha", 5.0, Kind.FLOAT,
    "weight of AdEMAMix's slow EMA in the numerator (its final value when t_alpha schedules it)",
    low=0.0,
)
T_ALPHA = Hyperparameter(
    "t_alpha", r"T_\alpha", None, Kind.OPTIONAL_INT,
    "AdEMAMix: ramp alpha linearly from 0 over this many steps; None: no warm-up", low=1,
)
T_BETA3 = Hyperparameter(
    "t_beta3", r"T_{\beta_3}", None, Kind.OPTIONAL_INT,
    "AdEMAMix: move the slow EMA's half-life from beta1's to beta3_ema's over this many steps; "
    "None: no warm-up", low=1,
)
SIMPLIFIED = Hyperparameter(
    "Simplified_AdEMAMix", r"\mathrm{sAdEMAMix}", False, Kind.BOOL,
    "Simplified AdEMAMix: the first moment accumulates (m = beta*m + g) and the numerator is "
    "m + alpha_grad*g; the Adam family also divides the step size by the accumulator's total weight "
    "plus alpha_grad (SignSGD takes the sign instead)",
)
ALPHA_GRAD = Hyperparameter(
    "alpha_grad", r"\alpha_g", 100.0, Kind.FLOAT,
    "Simplified AdEMAMix: weight of the current gradient in the numerator", low=0.0,
)

ADEMAMIX = {h.name: h for h in (USE_ADEMAMIX, BETA3_EMA, ALPHA, T_ALPHA, T_BETA3)}
SIMPLIFIED_ADEMAMIX = {h.name: h for h in (SIMPLIFIED, ALPHA_GRAD)}
NESTEROV_FEATURE = {h.name: h for h in (NESTEROV, NESTEROV_COEF)}


def with_default(h: Hyperparameter, default) -> Hyperparameter:
    """``h`` with another default (the same name, range and meaning)."""
    return replace(h, default=default)


def shared(h: Hyperparameter) -> Hyperparameter:
    """``h`` as a hyperparameter every param group must share (e.g. Prodigy's d-adaptation)."""
    return replace(h, group_level=False)


def first_moment_on(h, beta: str) -> bool:
    value = h[beta]
    return (value[0] if isinstance(value, tuple) else value) > 0


def nesterov_constraints(beta: str = "betas") -> tuple[Constraint, ...]:
    return (
        Constraint(("nesterov_coef", "nesterov"), "nesterov_coef has no effect unless nesterov=True",
                   lambda h: h["nesterov_coef"] is None or h["nesterov"]),
        Constraint(("nesterov", beta), f"Nesterov needs a first moment; {beta} = 0 disables it",
                   lambda h: not h["nesterov"] or first_moment_on(h, beta)),
    )


def ademamix_constraints() -> tuple[Constraint, ...]:
    return (
        Constraint(("t_alpha", "use_AdEMAMix"), "t_alpha schedules AdEMAMix's alpha; it needs use_AdEMAMix=True",
                   lambda h: h["t_alpha"] is None or h["use_AdEMAMix"]),
        Constraint(("t_beta3", "use_AdEMAMix"), "t_beta3 schedules AdEMAMix's beta3; it needs use_AdEMAMix=True",
                   lambda h: h["t_beta3"] is None or h["use_AdEMAMix"]),
    )


def simplified_constraints(beta: str, excludes: tuple[str, ...]) -> tuple[Constraint, ...]:
    """Simplified AdEMAMix needs a first moment and replaces the numerator, so it contradicts
    AdEMAMix, Nesterov, normed momentum and atan2 (whichever of ``excludes`` the optimizer has)."""
    out = [Constraint(("Simplified_AdEMAMix", beta), f"Simplified AdEMAMix accumulates the first moment; {beta} = 0 "
                      "disables it", lambda h: not h["Simplified_AdEMAMix"] or first_moment_on(h, beta))]
    reasons = {
        "use_AdEMAMix": "both replace the update numerator; choose one",
        "nesterov": "its numerator m + alpha_grad*g already mixes in the gradient",
        "normed_momentum": "its accumulator of raw gradients has no normalised form",
        "use_atan2": "its numerator is an unbounded accumulator (adv_optm disables atan2 with it)",
    }
    for name in excludes:
        out.append(Constraint(("Simplified_AdEMAMix", name), reasons[name],
                              lambda h, name=name: not (h["Simplified_AdEMAMix"] and h[name])))
    return tuple(out)
