"""Hyperparameters shared by every optimizer (the parameter write and randomness)."""

from spec.hparams.core import Hyperparameter, Kind

LR = Hyperparameter(
    "lr", r"\eta", 1e-3, Kind.FLOAT, "learning rate", low=0.0,
)
WEIGHT_DECAY = Hyperparameter(
    "weight_decay", r"\lambda", 0.0, Kind.FLOAT, "decoupled weight decay coefficient", low=0.0,
)
CAUTIOUS_WD = Hyperparameter(
    "cautious_wd", r"\mathrm{cwd}", False, Kind.BOOL,
    "decay only the coordinates where the update and the weight agree in sign",
)
STOCHASTIC_ROUNDING = Hyperparameter(
    "stochastic_rounding", r"\mathrm{SR}", True, Kind.BOOL,
    "write bfloat16 parameters with stochastic rounding (otherwise round-to-nearest-even)",
    group_level=False,
)
SEED = Hyperparameter(
    "seed", r"\mathrm{seed}", 0, Kind.INT,
    "seed of the counter-based random draws (stochastic rounding bits, stochastic sign noise)",
    low=0, high=2**63 - 1, group_level=False,
)
COMPILED = Hyperparameter(
    "compiled_optimizer", r"\mathrm{compiled}", True, Kind.BOOL,
    "run the per-parameter step as one torch.compile'd fused kernel (False: the same "
    "function eagerly)",
    group_level=False,
)

WRITE = {h.name: h for h in (LR, WEIGHT_DECAY, CAUTIOUS_WD)}
RUNTIME = {h.name: h for h in (STOCHASTIC_ROUNDING, SEED, COMPILED)}
