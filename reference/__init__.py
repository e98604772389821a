"""Float64 NumPy reference optimizers: literal, readable, slow. Same names as ``fast``."""

from reference.adamw import AdamW

__all__ = ["AdamW"]
