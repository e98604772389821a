"""How optimizer states are stored: the one definition of the storage hyperparameters."""

from spec.hparams.core import Constraint, Hyperparameter, Kind

STATE_PRECISIONS = ("auto", "fp32", "bf16_sr", "fp16", "int8_sr", "int4", "factored")

STATE_PRECISION = Hyperparameter(
    "state_precision", r"\mathrm{sp}", "auto", Kind.CHOICE,
    "storage of the optimizer states: 'auto' (the parameter dtype), 'fp32', 'bf16_sr' (bf16, "
    "stochastic rounding), 'fp16' (second moments stored as sqrt), 'int8_sr' (8-bit blockwise "
    "minifloat codes, stochastic rounding), 'int4' (4-bit blockwise codes, two per byte) or "
    "'factored' (SMMF rank-1 factors plus 1-bit signs)",
    choices=STATE_PRECISIONS,
)
FACTORED_2ND = Hyperparameter(
    "factored_2nd", r"\mathrm{f2}", False, Kind.BOOL,
    "factor only the second moment; the first moment stays dense in state_precision",
)
VECTOR_RESHAPE = Hyperparameter(
    "vector_reshape", r"\mathrm{vr}", False, Kind.BOOL,
    "factor 0-d and 1-D tensors too (viewed as a near-square matrix)",
)

STORAGE = {h.name: h for h in (STATE_PRECISION, FACTORED_2ND, VECTOR_RESHAPE)}

CONSTRAINTS = (
    Constraint(
        ("factored_2nd", "state_precision"),
        "state_precision='factored' already factors both moments; factored_2nd keeps the first "
        "moment dense in a non-factored state_precision",
        lambda h: not (h["factored_2nd"] and h["state_precision"] == "factored"),
    ),
    Constraint(
        ("vector_reshape", "state_precision", "factored_2nd"),
        "vector_reshape only changes factored states; use it with state_precision='factored' "
        "or factored_2nd=True",
        lambda h: not h["vector_reshape"] or h["state_precision"] == "factored" or h["factored_2nd"],
    ),
)


def no_second_moment(optimizer: str) -> Constraint:
    """For optimizers without a second moment (Lion, SignSGD): factored_2nd would do nothing."""
    return Constraint(
        ("factored_2nd", "state_precision"),
        f"{optimizer} keeps no second moment, so factored_2nd has nothing to factor; use "
        "state_precision='factored'",
        lambda h: not h["factored_2nd"],
    )
