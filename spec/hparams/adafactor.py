"""Adafactor's hyperparameters (spec/adafactor.md), with transformers' names and defaults.

The states of the Adafactor family (Adafactor, CAME, Automagic, AutomagicCAME): tensors with
two or more dims keep their second moment as Adafactor's own row and column factors (fp32,
over the last two dims, leading dims batch dims); every other state (the first moment, the
unfactored second moment of 0-d and 1-D tensors, Automagic's mask) goes through the shared
storage layer in ``state_precision``.
"""

from spec.hparams.common import RUNTIME, WRITE
from spec.hparams.core import Constraint, Hyperparameter, Kind
from spec.hparams.storage import STATE_PRECISION, STATE_PRECISIONS
from spec.storage_layout import Slot

LR = Hyperparameter(
    "lr", r"\eta", None, Kind.OPTIONAL_FLOAT,
    "external learning rate; None with relative_step (the step size is then rho_t)", low=0.0,
)
EPS = Hyperparameter(
    "eps", r"(\epsilon_1, \epsilon_2)", (1e-30, 1e-3), Kind.BETAS,
    "eps1 is added to g^2 before its factored EMA; eps2 is the floor of RMS(p) in the parameter scale",
    low=0.0,
)
CLIP_THRESHOLD = Hyperparameter(
    "clip_threshold", "d", 1.0, Kind.FLOAT,
    "the update is divided by max(1, RMS(u) / d)", low=0.0, low_inclusive=False,
)
DECAY_RATE = Hyperparameter(
    "decay_rate", r"\gamma", -0.8, Kind.FLOAT,
    "the second moment's decay: beta2_t = 1 - t^gamma", high=0.0,
)
BETA1 = Hyperparameter(
    "beta1", r"\beta_1", None, Kind.OPTIONAL_FLOAT,
    "EMA coefficient of a first moment of the update; None keeps no first moment",
    low=0.0, high=1.0, high_inclusive=False,
)
SCALE_PARAMETER = Hyperparameter(
    "scale_parameter", r"\mathrm{sp}", True, Kind.BOOL,
    "multiply the step size by max(eps2, RMS(p)) (the parameter's scale before the step)",
)
RELATIVE_STEP = Hyperparameter(
    "relative_step", r"\mathrm{rel}", True, Kind.BOOL,
    "use the time-dependent step size rho_t = min(1e-2, 1/sqrt(t)) instead of lr",
)
WARMUP_INIT = Hyperparameter(
    "warmup_init", r"\mathrm{wi}", False, Kind.BOOL,
    "with relative_step: rho_t = min(1e-6 t, 1/sqrt(t)) (a linear warm-up)",
)
# The family's states live in the storage layer except the factors, so 'factored' (SMMF) is not
# one of its storage choices.
FAMILY_STATE_PRECISION = Hyperparameter(
    STATE_PRECISION.name, STATE_PRECISION.symbol, "auto", Kind.CHOICE,
    "storage of the unfactored states (the first moment; the second moment of 0-d and 1-D tensors): "
    "'auto' (the parameter dtype), 'fp32', 'bf16_sr', 'fp16', 'int8_sr' or 'int4'; the row and "
    "column factors are always fp32",
    choices=tuple(c for c in STATE_PRECISIONS if c != "factored"),
)

GROUP = {
    h.name: h
    for h in (
        LR, EPS, CLIP_THRESHOLD, DECAY_RATE, BETA1, WRITE["weight_decay"], SCALE_PARAMETER, RELATIVE_STEP,
        WARMUP_INIT, FAMILY_STATE_PRECISION,
    )
}
ALL = {**GROUP, **RUNTIME}

EXP_AVG = Slot("exp_avg", signed=True, second_moment=False)  # only with beta1
EXP_AVG_SQ = Slot("exp_avg_sq", signed=False, second_moment=True)  # only for 0-d and 1-D tensors
SLOTS = (EXP_AVG, EXP_AVG_SQ)


def kept_slots(h) -> tuple[Slot, ...]:
    return ((EXP_AVG,) if h["beta1"] is not None else ()) + (EXP_AVG_SQ,)


def factored(ndim: int) -> bool:
    """Adafactor factors the second moment of every tensor with two or more dims."""
    return ndim >= 2


def factor_shapes(shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The row and column factors' shapes (states ``<name>_row``, ``<name>_col``): shape[:-1] and
    shape[:-2] + shape[-1:]."""
    shape = tuple(shape)
    return shape[:-1], shape[:-2] + shape[-1:]


def storage_view(h) -> dict:
    """``h`` as spec.storage_layout.resolve reads it: the family never uses SMMF factoring."""
    return {**h, "factored_2nd": False, "vector_reshape": False}


CONSTRAINTS = (
    Constraint(
        ("lr", "relative_step"),
        "relative_step computes its own step size; pass lr=None with relative_step=True, or a "
        "learning rate with relative_step=False",
        lambda h: (h["lr"] is None) == h["relative_step"],
    ),
    Constraint(
        ("warmup_init", "relative_step"),
        "warmup_init warms up the relative step size; it needs relative_step=True",
        lambda h: not h["warmup_init"] or h["relative_step"],
    ),
)
