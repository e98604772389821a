"""Production PyTorch optimizers: fused, compiled steps; bf16 with stochastic rounding."""

from fast.adamw import AdamW

__all__ = ["AdamW"]
