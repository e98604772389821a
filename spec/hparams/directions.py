"""Hyperparameters of the direction features (spec/directions.md): OrthoGrad, Cautious, Grams,
Kourkoutas-beta, stochastic sign, freeze-on-flip and projected adaptivity, with the
constraints that make contradictory combinations raise. atan2 lives with AdamW's table
(``USE_ATAN2``); it is a direction feature too.

Which optimizer takes which feature is decided here once (``ADAM_FEATURES`` and friends), so
the classes, the conformance matrix and the docs cannot disagree.
"""

from spec.hparams.core import Constraint, Hyperparameter, Kind
from spec.hparams.features import first_moment_on
from spec.storage_layout import Slot

ORTHOGRAD_MODES = ("flattened", "iterative")

ORTHOGRAD = Hyperparameter(
    "orthograd", r"\mathrm{ortho}", None, Kind.OPTIONAL_CHOICE,
    "OrthoGrad: remove the gradient's component parallel to the weights, keeping its norm; "
    "'flattened' (whole tensor) or 'iterative' (rows and columns, 3 rounds); None: off",
    choices=ORTHOGRAD_MODES,
)
CAUTIOUS = Hyperparameter(
    "cautious", r"\mathrm{cautious}", False, Kind.BOOL,
    "keep only the update coordinates whose sign agrees with the gradient, rescaled by 1/max(mean "
    "kept, 1e-3)",
)
GRAMS = Hyperparameter(
    "grams", r"\mathrm{grams}", False, Kind.BOOL,
    "Grams: the numerator takes the gradient's sign and the momentum's magnitude",
)
KOURKOUTAS_BETA = Hyperparameter(
    "kourkoutas_beta", r"\mathrm{K}\beta", False, Kind.BOOL,
    "Kourkoutas-beta: per bucket of tensors, lower beta2 towards beta2_min when the gradient norm "
    "spikes above its EMA",
)
BETA2_MIN = Hyperparameter(
    "beta2_min", r"\beta_{2,\min}", 0.9, Kind.FLOAT,
    "Kourkoutas-beta: beta2 at a full spike (betas[1] is beta2 at rest)", low=0.0, high=1.0,
    high_inclusive=False,
)
EMA_ALPHA = Hyperparameter(
    "ema_alpha", r"\alpha_r", 0.95, Kind.FLOAT,
    "Kourkoutas-beta: decay of the EMA r of the bucket's gradient norm", low=0.0, high=1.0,
    high_inclusive=False,
)
TINY_SPIKE = Hyperparameter(
    "tiny_spike", r"\epsilon_s", 1e-9, Kind.FLOAT,
    "Kourkoutas-beta: added to r in the spike ratio rho / (r + tiny_spike)", low=0.0, low_inclusive=False,
)
K_WARMUP_STEPS = Hyperparameter(
    "k_warmup_steps", r"T_K", 0, Kind.INT,
    "Kourkoutas-beta: blend beta2 linearly from betas[1] over this many steps; 0: no warm-up", low=0,
)
LAYER_KEY_FN = Hyperparameter(
    "layer_key_fn", r"\mathrm{key}", None, Kind.OPTIONAL_CALLABLE,
    "Kourkoutas-beta: maps a parameter to its bucket key (tensors with equal keys share one gradient norm "
    "and r); None: one bucket per tensor",
    group_level=False,
)
STOCHASTIC_SIGN = Hyperparameter(
    "stochastic_sign", r"\mathrm{ssign}", False, Kind.BOOL,
    "matrices: scale rows then columns to max |x| = 1 and take sign(x + xi), xi uniform in (-1, 1) "
    "from the optimizer's counter-based draws (unbiased: E = x); vectors keep the sign",
)
FREEZE_ON_FLIP = Hyperparameter(
    "freeze_on_flip", r"\mathrm{fof}", False, Kind.BOOL,
    "zero the update where the sign of the direction differs from the previous step's (state: one "
    "bit per element)",
)
PROJECTED_ADAPTIVITY = Hyperparameter(
    "projected_adaptivity", r"\mathrm{proj}", False, Kind.BOOL,
    "scale the sign update and the weight decay by the L1 magnitude of the direction: mean |x| for "
    "vectors, the rank-1 row-mean x column-mean / mean of |x| for matrices",
)

ORTHOGRAD_FEATURE = {ORTHOGRAD.name: ORTHOGRAD}
KOURKOUTAS_RUNTIME = {LAYER_KEY_FN.name: LAYER_KEY_FN}
KOURKOUTAS = {h.name: h for h in (KOURKOUTAS_BETA, BETA2_MIN, EMA_ALPHA, TINY_SPIKE, K_WARMUP_STEPS)}
MASKS = {h.name: h for h in (CAUTIOUS, GRAMS)}
SIGN_FEATURES = {h.name: h for h in (STOCHASTIC_SIGN, FREEZE_ON_FLIP, PROJECTED_ADAPTIVITY)}

# The previous step's direction sign, for freeze-on-flip (kept only when it is on).
PREV_SIGN = Slot("prev_sign", signed=False, second_moment=False, bits=True)


def mask_constraints(beta: str | None) -> tuple[Constraint, ...]:
    """Cautious and Grams both rewrite the numerator; ``beta`` names the first-moment beta they
    need (None: the optimizer always has a direction to mask, as Lion does)."""
    out = [Constraint(("cautious", "grams"), "both rewrite the update numerator from the gradient's sign; choose one",
                      lambda h: not (h.get("cautious", False) and h.get("grams", False)))]
    if beta is not None:
        for name in ("cautious", "grams"):
            out.append(Constraint((name, beta), f"{name} compares the momentum with the gradient; {beta} = 0 "
                                  "leaves no momentum",
                                  lambda h, name=name: not h.get(name) or first_moment_on(h, beta)))
    return tuple(out)


def kourkoutas_constraints() -> tuple[Constraint, ...]:
    return (Constraint(("beta2_min", "betas", "kourkoutas_beta"), "Kourkoutas-beta lowers beta2 from betas[1] "
                       "towards beta2_min; it needs beta2_min < betas[1]",
                       lambda h: not h["kourkoutas_beta"] or h["beta2_min"] < h["betas"][1]),)


def sign_constraints(kappa: bool, normed: bool) -> tuple[Constraint, ...]:
    """The sign features act on a sign: Lion-K's kappa_p != 1 and SignSGD's normed momentum
    take none; stochastic signs flip at random, so freezing on a flip would freeze noise."""
    out = [Constraint(("freeze_on_flip", "stochastic_sign"), "a stochastic sign flips at random by design; "
                      "freezing on a flip would freeze coordinates by chance",
                      lambda h: not (h["freeze_on_flip"] and h["stochastic_sign"]))]
    for name in SIGN_FEATURES:
        if kappa:
            out.append(Constraint((name, "kappa_p"), "Lion-K with kappa_p != 1 replaces the sign this feature acts on",
                                  lambda h, name=name: not h[name] or h["kappa_p"] == 1.0))
        if normed:
            out.append(Constraint((name, "normed_momentum"), "normed momentum steps along the momentum itself, "
                                  "without the sign this feature acts on",
                                  lambda h, name=name: not h[name] or not h["normed_momentum"]))
    return tuple(out)


def simplified_mask_constraints() -> tuple[Constraint, ...]:
    """Simplified AdEMAMix's accumulator numerator has no place for Cautious or Grams."""
    return tuple(
        Constraint(("Simplified_AdEMAMix", name), "its numerator m + alpha_grad*g is an accumulator that "
                   "Cautious and Grams are not defined on (adv_optm disables them with it)",
                   lambda h, name=name: not (h["Simplified_AdEMAMix"] and h[name]))
        for name in MASKS
    )


def kept_prev_sign(h) -> tuple[Slot, ...]:
    return (PREV_SIGN,) if h.get("freeze_on_flip", False) else ()


# Which optimizer takes which feature (scope.md's "applies to" column).
FEATURES_OF = {
    "AdamW": ("orthograd", "cautious", "grams", "use_atan2", "kourkoutas_beta"),
    "Adopt": ("orthograd", "cautious", "grams", "use_atan2", "kourkoutas_beta"),
    "Prodigy": ("orthograd", "cautious", "grams", "use_atan2", "kourkoutas_beta"),
    "SimplifiedAdEMAMix": ("orthograd", "kourkoutas_beta"),
    "Lion": ("orthograd", "cautious", "stochastic_sign", "freeze_on_flip", "projected_adaptivity"),
    "ProdigyLion": ("orthograd", "cautious", "stochastic_sign", "freeze_on_flip", "projected_adaptivity"),
    "SignSGD": ("orthograd", "stochastic_sign", "freeze_on_flip", "projected_adaptivity"),
    # The Adafactor family normalises by tensor-wide statistics of the raw gradient before any
    # elementwise step; it takes none of these (passing one raises TypeError naming it).
    "Adafactor": (),
    "CAME": (),
    "Automagic": (),
    "AutomagicCAME": (),
}
DIRECTION_FEATURES = ("orthograd", "cautious", "grams", "use_atan2", "kourkoutas_beta", "stochastic_sign",
                      "freeze_on_flip", "projected_adaptivity")
