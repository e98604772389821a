"""AdEMAMix and Simplified AdEMAMix (spec/ademamix.md), shared by AdamW, Adopt and Prodigy.

The scalar schedules (AdEMAMix's alpha and beta3 warm-ups, Simplified AdEMAMix's beta1
warm-up and step size) are defined once in spec.schedules (plain Python) so that reference and
fast compute identical float64 numbers; conformance/test_spec_family.py checks them against
the sympy expressions of spec/ademamix.py.
"""

from spec.schedules import ademamix_alpha, ademamix_beta3, half_life_index, simplified_beta1, simplified_lr

__all__ = ["ademamix_alpha", "ademamix_beta3", "half_life_index", "simplified_beta1", "simplified_lr"]
