"""The counter-based random source (spec/counter_rng.py): three implementations agree bit for
bit, and the draws pass statistical checks of uniformity and independence across elements,
steps, parameters and purposes. The thresholds are data: conformance/tolerances.py's
``rng.z`` (a z-score bound) with its derivation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import fast
from conformance.tolerances import tol
from fast import counter_rng as fr
from reference import counter_rng as rr
from spec import counter_rng as S

N = 1 << 18  # draws per statistic: z-scores of correlations resolve ~1e-2 at |z| < 5
SEED = 20261207


def _stream(param_key: int = 3, step: int = 11, purpose: int = S.PARAM_PURPOSE, n: int = N) -> np.ndarray:
    return rr.draws(SEED, param_key, step, purpose, n).astype(np.float64)


def _z_limit() -> float:
    return tol("rng.z").atol


# (6, 5): rows shorter than a vector, where a constant multiplier folded into inductor's
# int32 ``arange`` overflowed and gave wrong draws in some lanes.
@pytest.mark.parametrize("shape", [(1,), (7,), (6, 5), (2053,), (31, 67)], ids=str)
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_spec_reference_fast_agree_bit_for_bit(shape, compiled):
    n = math.prod(shape)

    def fn(keys: torch.Tensor, purpose: int) -> torch.Tensor:
        return fr.draws(fr.element_index(shape, keys), keys[purpose])

    for seed, q, t, c in ((0, 0, 1, 0), (SEED, 5, 123456, 3), (2**64 + 17, 2**32 - 1, S.MAX_STEP - 1, 15)):
        key = S.stream_key(seed, q, t, c)
        want = np.array([S.draw(key, i) for i in range(n)])
        assert np.array_equal(rr.draws(seed, q, t, c, n), want)
        keys = fr.key_tensor(seed, q, t, max(0, c - 1), torch.device("cpu"))
        run = fn
        if compiled:
            torch._dynamo.reset()
            run = torch.compile(fn, dynamic=False, fullgraph=True)
        got = run(keys, c).reshape(-1).numpy()
        assert np.array_equal(got, want), (seed, q, t, c)


def test_key_domain_is_checked():
    for bad in ({"step": -1}, {"step": S.MAX_STEP}, {"purpose": S.MAX_PURPOSES}, {"param_key": 2**32}):
        args = {"seed": 0, "param_key": 0, "step": 1, "purpose": 0, **bad}
        with pytest.raises(ValueError, match=next(iter(bad))):
            S.stream_key(**args)


def _chi_square_z(counts: np.ndarray) -> float:
    """(chi^2 - df) / sqrt(2 df) for counts of equiprobable bins (normal for large df)."""
    expected = counts.sum() / counts.size
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    df = counts.size - 1
    return (chi2 - df) / math.sqrt(2 * df)


def test_16_bit_draws_are_uniform():
    r = _stream(n=1 << 20).astype(np.int64)
    assert r.min() >= 0 and r.max() < 2**S.DRAW_BITS
    for name, values, bins in (("all 16 bits", r, 2**16), ("high byte", r >> 8, 256), ("low byte", r & 255, 256)):
        z = _chi_square_z(np.bincount(values, minlength=bins))
        assert abs(z) < _z_limit(), f"{name}: chi-square z = {z:.2f}"
    pairs = (r[:-1:2] >> 12) * 16 + (r[1::2] >> 12)  # adjacent elements' top nibbles, jointly
    z = _chi_square_z(np.bincount(pairs, minlength=256))
    assert abs(z) < _z_limit(), f"adjacent pairs: chi-square z = {z:.2f}"


def _correlation_z(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation times sqrt(n): standard normal for independent uniform streams."""
    return float(np.corrcoef(a, b)[0, 1] * math.sqrt(a.size))


@pytest.mark.parametrize(("label", "other"), [
    ("adjacent elements", lambda: _stream(n=N + 1)[1:]),
    ("consecutive steps", lambda: _stream(step=12)),
    ("step far apart", lambda: _stream(step=11 + 2**20)),
    ("neighbouring parameters", lambda: _stream(param_key=4)),
    ("purposes (parameter write vs first state)", lambda: _stream(purpose=S.state_purpose(0))),
    ("purposes (two states)", lambda: _stream(purpose=S.state_purpose(1))),
    ("the stochastic sign", lambda: _stream(purpose=S.SIGN_PURPOSE)),
], ids=lambda x: x if isinstance(x, str) else "")
def test_streams_are_uncorrelated(label, other):
    base = _stream()
    z = _correlation_z(base, other())
    assert abs(z) < _z_limit(), f"{label}: correlation z = {z:.2f}"
    same = float(np.mean(base == other()))
    assert same < 4 / 2**S.DRAW_BITS, f"{label}: {same:.2e} of the draws repeat (2^-16 expected)"


def test_two_parameters_never_share_a_stream():
    """For one seed, step and purpose the key is injective in the parameter key: streams of
    different parameters differ at every element (the 32-bit hashes, not just on average)."""
    keys = {S.stream_key(SEED, q, 7, S.PARAM_PURPOSE) for q in range(4096)}
    assert len(keys) == 4096
    steps = {S.stream_key(SEED, 3, t, c) for t in range(1024) for c in range(S.MAX_PURPOSES)}
    assert len(steps) == 1024 * S.MAX_PURPOSES


def test_optimizer_streams_are_distinct_per_parameter_and_step():
    """Two parameters of one optimizer with equal shapes and values get different stochastic
    roundings (their own keys), and the same parameter differs between steps."""
    a, b = (torch.nn.Parameter(torch.full((64, 64), 1.0 + 2**-10, dtype=torch.bfloat16)) for _ in range(2))
    opt = fast.AdamW([a, b], lr=1e-3, compiled_optimizer=False, seed=1)
    for p in (a, b):
        p.grad = torch.full_like(p, 1e-3)
    opt.step()
    ka, kb = (opt.stream_keys(p, opt.state[p]) for p in (a, b))
    assert not torch.equal(ka, kb)
    assert not torch.equal(a, b), "two parameters rounded with the same bits"
