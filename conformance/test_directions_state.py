"""The direction features' randomness and states across checkpoints.

The stochastic sign's noise is the counter-based stream of purpose "sign" (spec/counter_rng.py):
fast (in its kernel) and reference (in NumPy) draw the same noise, the seed decides it and the
global torch RNG does not, and a run saved with ``state_dict()``, reloaded with
``torch.load(weights_only=True)`` and continued is bit-identical to the uninterrupted run. The
same resume check runs for every feature sample (Kourkoutas-beta's host scalars, freeze-on-flip's
packed bits, OrthoGrad's and the masks' states).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from conformance.features import compatible_group1
from conformance.harness import build, compare, resync
from conformance.inputs import TORCH_DTYPES, grads_for_step, group_split, initial_values, make_params
from conformance.registry import ENTRIES
from spec.hparams.directions import FEATURES_OF

SIGN = [e for e in ENTRIES.values() if "stochastic_sign" in FEATURES_OF[e.name]]
STEPS = 3


def _make(entry, hyper, dtype, seed_values=5, params=None):
    params = params if params is not None else make_params(initial_values(seed_values), dtype)
    g0, g1 = group_split(params)
    opt = entry.fast([{"params": g0}, {"params": g1, **compatible_group1(entry, hyper)}],
                     compiled_optimizer=False, **hyper)
    return params, opt


def _steps(params, opt, steps):
    for step in steps:
        for p, g in zip(params, grads_for_step(step, 5)):
            p.grad = None if g is None else torch.tensor(g, dtype=p.dtype)
        opt.step()


def _bits(x):
    """A tensor's bytes (NaN payloads included): bit-identity, not closeness."""
    return x.detach().reshape(-1).contiguous().view(torch.uint8) if torch.is_tensor(x) else x


def _same(a, b) -> bool:
    if torch.is_tensor(a):
        return torch.is_tensor(b) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(_bits(a), _bits(b))
    return a == b


def _assert_identical(params_a, opt_a, params_b, opt_b):
    for i, (a, b) in enumerate(zip(params_a, params_b)):
        assert _same(a, b), f"param {i} differs"
        sa, sb = opt_a.state.get(a, {}), opt_b.state.get(b, {})
        assert sa.keys() == sb.keys(), (i, sorted(sa), sorted(sb))
        for key in sa:
            assert _same(sa[key], sb[key]), (i, key)


@pytest.mark.parametrize("entry", SIGN, ids=lambda e: e.name)
def test_sign_noise_is_the_counter_stream_of_both(entry):
    """Nothing is injected: fast's in-kernel noise and the reference's NumPy draws of the same
    stream (purpose "sign") agree, every step, on matrices; vectors draw no noise."""
    pair = build(entry, "feature_stochastic_sign", "float32")
    for step in range(STEPS):
        grads = grads_for_step(step, 0)
        for p, g in zip(pair.fast_params, grads):
            p.grad = None if g is None else torch.tensor(g, dtype=p.dtype)
        pair.fast.step()
        pair.ref.step([None if g is None else np.asarray(g) for g in grads])
        compare(pair, f"{entry.name} counter-based noise step {step + 1}")
        resync(pair)


@pytest.mark.parametrize("entry", SIGN, ids=lambda e: e.name)
def test_sign_noise_comes_from_the_optimizers_seed(entry):
    hyper = entry.samples["feature_stochastic_sign"]
    runs = {}
    for label, seed, global_seed in (("a", 1, 0), ("same seed", 1, 99), ("other seed", 2, 0)):
        torch.manual_seed(global_seed)  # the global RNG must not matter
        params, opt = _make(entry, {**hyper, "seed": seed}, "float32")
        _steps(params, opt, range(STEPS))
        runs[label] = params
    assert all(_same(a, b) for a, b in zip(runs["a"], runs["same seed"])), "the global RNG changed the result"
    assert not all(_same(a, b) for a, b in zip(runs["a"], runs["other seed"])), "the seed does not decide the noise"


RESUME = [(e, s, d) for e in ENTRIES.values() for s in e.samples if s.startswith("feature_")
          for d in (("float32", "bfloat16") if s == "feature_stochastic_sign" else ("bfloat16",))]


@pytest.mark.parametrize(("entry", "sample", "dtype"), RESUME, ids=lambda x: getattr(x, "name", x))
def test_feature_resume_is_bit_identical(entry, sample, dtype):
    hyper = entry.samples[sample]
    params, opt = _make(entry, hyper, dtype)
    _steps(params, opt, range(STEPS))
    buf = io.BytesIO()
    torch.save({"params": [p.detach().clone() for p in params], "opt": opt.state_dict()}, buf)
    _steps(params, opt, range(STEPS, 2 * STEPS))

    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    resumed = [q.clone().requires_grad_(p.requires_grad) for q, p in zip(saved["params"], params)]
    resumed, opt2 = _make(entry, hyper, dtype, params=resumed)
    opt2.load_state_dict(saved["opt"])
    _steps(resumed, opt2, range(STEPS, 2 * STEPS))
    assert all(p.dtype == TORCH_DTYPES[dtype] for p in resumed)
    _assert_identical(params, opt, resumed, opt2)
