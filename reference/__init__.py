"""Float64 NumPy reference optimizers: literal, readable, slow. Same names as ``fast``."""

from reference.adafactor import Adafactor
from reference.adamw import AdamW
from reference.adopt import Adopt
from reference.automagic import Automagic, AutomagicCAME
from reference.came import CAME
from reference.lion import Lion
from reference.prodigy import Prodigy
from reference.prodigy_lion import ProdigyLion
from reference.signsgd import SignSGD
from reference.simplified_ademamix import SimplifiedAdEMAMix

__all__ = [
    "CAME",
    "Adafactor",
    "AdamW",
    "Adopt",
    "Automagic",
    "AutomagicCAME",
    "Lion",
    "Prodigy",
    "ProdigyLion",
    "SignSGD",
    "SimplifiedAdEMAMix",
]
