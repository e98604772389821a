"""The suite tests itself: every mutant of ``fast`` must be caught by the suite's checks."""

from __future__ import annotations

import pytest

import fast
from conformance import rounding_checks as rc
from conformance import storage_checks as sc
from conformance.harness import run_per_step
from conformance.mask_checks import check_code_exact, check_recode
from conformance.mutants import MUTANTS, applied
from conformance.registry import ENTRIES


def _suite_checks(first: str = "AdamW", only: bool = False):
    """The suite's checks as callables raising AssertionError: the cheap shared ones, then the
    ``first`` entry's (the one a mutant targets, so that it is caught without running every
    optimizer's checks before), then every other entry's. ``only``: the ``first`` entry's alone."""
    if not only:
        yield rc.check_exhaustive
        yield rc.check_special_values
        yield lambda: rc.check_counter_stream(fast.AdamW)
        yield sc.check_packing_against_numpy
        yield sc.check_factorization
        yield sc.check_codes
    order = [ENTRIES[first], *(e for e in ENTRIES.values() if e.name != first and not only)]
    for entry in order:
        for dtype in ("float64", "bfloat16"):
            for sample in entry.samples:
                # Prodigy's d moves from step 2 and its growth cap binds from step 4.
                yield lambda e=entry, s=sample, d=dtype: run_per_step(e, s, d, steps=4 if e.group_state else 3)
        for storage in entry.storage:
            yield lambda e=entry, st=storage: run_per_step(e, e.rich_sample(), "bfloat16", steps=3, storage=st)
        if "min_lr" in entry.hyperparameters:  # the learning-rate mask: its code, new bounds mid-run
            yield check_code_exact
            yield lambda e=entry: check_recode(e)


def test_suite_passes_unmutated():
    for check in _suite_checks():
        check()


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_mutant_is_caught(mutant):
    with applied(mutant):
        for check in _suite_checks(mutant.entry, mutant.only):
            try:
                check()
            except AssertionError:
                return
    pytest.fail(f"mutant {mutant.name} survived every check of the suite")


def test_at_least_the_required_mutants_exist():
    required = {"sign_flip", "swapped_betas", "bias_correction_off_by_one", "eps_inside_sqrt",
                "weight_decay_not_decoupled", "sr_wrong_mask",
                "nesterov_coef_ignored", "sign_bit_order_reversed", "factored_wrong_side_normalised",
                "zero_sign_flipped", "refactor_from_old_state", "int8_scale_per_tensor",
                # The 8-bit and 4-bit codes (spec/state_storage.md).
                "code_with_zero_level", "code_subnormals_dropped", "nibbles_high_first", "fp16_unscaled",
                # The counter-based random streams (spec/counter_rng.py).
                "sr_step_ignored", "sr_stream_shared_by_parameters", "sr_bits_reused_across_elements",
                "sr_purpose_ignored", "state_sr_bits_shared",
                # The direction features (spec/directions.md).
                "cautious_not_renormalised", "orthograd_projects_on_gradient", "atan2_arguments_swapped",
                "kourkoutas_spike_without_ema", "stochastic_sign_noise_in_zero_one", "grams_sign_of_momentum",
                "freeze_on_flip_not_freezing", "freeze_on_flip_compares_with_gradient", "projected_decay_not_scaled",
                "orthograd_iterative_without_column_pass",
                # Automagic's learning-rate mask (spec/automagic.md).
                "automagic_bump_sign_flipped", "automagic_mask_not_clamped", "automagic_polarity_not_stored",
                "automagic_weight_decay_not_scaled_by_mask", "automagic_first_step_not_from_lr",
                "mask_code_rounds_to_nearest", "mask_not_recoded_on_new_bounds"}
    assert required <= {m.name for m in MUTANTS}
