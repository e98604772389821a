"""Production PyTorch optimizers: fused, compiled steps; bf16 with stochastic rounding."""

from fast.accumulate import accumulate_grads
from fast.adafactor import Adafactor
from fast.adafactor_schedule import AdafactorSchedule
from fast.adamw import AdamW
from fast.adopt import Adopt
from fast.automagic import Automagic, AutomagicCAME
from fast.came import CAME
from fast.fused_backward import fuse_backward
from fast.lion import Lion
from fast.prodigy import Prodigy
from fast.prodigy_lion import ProdigyLion
from fast.signsgd import SignSGD
from fast.simplified_ademamix import SimplifiedAdEMAMix

__all__ = [
    "CAME",
    "Adafactor",
    "AdafactorSchedule",
    "AdamW",
    "Adopt",
    "Automagic",
    "AutomagicCAME",
    "Lion",
    "Prodigy",
    "ProdigyLion",
    "SignSGD",
    "SimplifiedAdEMAMix",
    "accumulate_grads",
    "fuse_backward",
]
