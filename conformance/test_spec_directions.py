"""spec ⇄ reference for the direction features (spec/directions.md).

Every stage of spec/directions.py, lambdified in float64 and evaluated in order from the values
of the earlier stages, equals what reference/directions.py computes, on flat, matrix, 3-D,
prime-sized, 0-d and empty tensors with non-default hyperparameters. Exact properties: the
stochastic sign averaged over all 2^16 draws is exactly x on the 2^-15 grid; OrthoGrad's g' is
orthogonal to w with the norm of g; freeze-on-flip's bits round-trip through the packed state.
A few checks run the reference optimizers to see each feature wired in where the spec puts it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pytest
import sympy as sp

import reference
from conformance.compare import assert_close
from reference import directions as ref
from reference.storage import StateStore
from reference.weight_decay import apply_update
from spec import directions as D
from spec import symbols as s
from spec.storage_layout import Format

SHAPES = [(11,), (37,), (5, 7), (7, 3), (3, 2, 5), (1, 37), (), (0,), (4, 0)]
MATRICES = [sh for sh in SHAPES if len(sh) >= 2 and math.prod(sh) > 0]
KOURKOUTAS = {"betas": (0.9, 0.98), "beta2_min": 0.8, "ema_alpha": 0.7, "tiny_spike": 1e-6}


def matrix_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    return shape[0], math.prod(shape) // shape[0]


def evaluate(stages: Mapping[str, D.Stage], inputs: Mapping, N: int = 1, R: int = 1, C: int = 1) -> dict:
    """Every stage's value, in order: each is lambdified over the inputs, the earlier stages and
    its free indices, and evaluated on the index grids (k: 0..N-1; i, j: the R x C grid)."""
    env = dict(inputs)
    grids = {1: {D.k: np.arange(N), D.i: np.arange(R), D.j: np.arange(C)},
             2: {D.i: np.arange(R)[:, None], D.j: np.arange(C)[None, :]}}
    out = {}
    for key, stage in stages.items():
        names = {sym: (sp.IndexedBase if isinstance(sym, sp.IndexedBase) else sp.Symbol)(f"v{n}")
                 for n, sym in enumerate(env)}  # plain names for lambdify
        expr = stage.expr.subs({s.N: N, D.R: R, D.C: C}).xreplace(names)
        fn = sp.lambdify([*names.values(), *stage.index], expr, modules="numpy")
        index = [grids[len(stage.index)][sym] for sym in stage.index]
        with np.errstate(divide="ignore", invalid="ignore"):
            out[key] = np.asarray(fn(*env.values(), *index), dtype=np.float64)
        env[stage.symbol] = out[key]
    return out


def tensors(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """w and g with some exact zeros and mixed scales."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=shape) * rng.choice([0.1, 1.0, 5.0], size=shape)
    g = rng.normal(size=shape) * rng.choice([0.01, 1.0, 3.0], size=shape)
    w.reshape(-1)[::7] = 0.0
    g.reshape(-1)[::5] = 0.0
    return w, g


def test_constants_are_the_spec_constants():
    assert ref.ORTHO_FLOOR == float(D.ORTHO_FLOOR) and ref.ORTHO_RELAX == float(D.ORTHO_RELAX)
    assert ref.ORTHO_ROUNDS == D.ORTHO_ROUNDS and ref.CAUTIOUS_FLOOR == float(D.CAUTIOUS_FLOOR)
    assert ref.SIGN_FLOOR == float(D.SIGN_FLOOR) and ref.NOISE_SCALE == float(D.NOISE_SCALE)
    assert ref.PROJECTED_FLOOR == float(D.PROJECTED_FLOOR)


# -- OrthoGrad --------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_orthograd_flattened_matches_spec(shape):
    w, g = tensors(shape, 1)
    got = ref.orthograd(w, g, "flattened")
    assert got.shape == g.shape
    N = g.size
    if N <= 1:  # no direction orthogonal to w: the gradient is kept (spec/directions.md)
        assert got is g
        return
    spec = evaluate(D.orthograd_flattened(), {D.w: w.reshape(-1), D.g: g.reshape(-1)}, N=N)
    assert_close(got.reshape(-1), np.broadcast_to(spec["g_prime"], (N,)), "spec.reference", f"g' {shape}")
    if N > 1:
        norm_w, norm_g = np.linalg.norm(w), np.linalg.norm(g)
        cosine = np.dot(w.reshape(-1), got.reshape(-1)) / (norm_w * norm_g)
        assert_close(np.array(cosine), np.array(0.0), "spec.reference", f"<w, g'> {shape}")
        assert_close(np.array(np.linalg.norm(got)), np.array(norm_g), "spec.reference", f"||g'|| {shape}")


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_orthograd_iterative_matches_spec(shape):
    w, g = tensors(shape, 2)
    got = ref.orthograd(w, g, "iterative")
    # 0-d, 1-D and views with a side of 1 use the flattened form; empty: unchanged
    if len(shape) < 2 or g.size == 0 or 1 in matrix_shape(shape):
        assert np.array_equal(got, ref.orthograd(w, g, "flattened"))
        return
    R, C = matrix_shape(shape)
    W, X = w.reshape(R, C), g.reshape(R, C)
    first = int(D.iterative_first_axis().subs({D.R: R, D.C: C}))
    substeps = {axis: D.orthograd_iterative(axis) for axis in (0, 1)}
    for _ in range(D.ORTHO_ROUNDS):
        for axis in (first, 1 - first):
            values = evaluate(substeps[axis], {D.w: W, D.g: g.reshape(R, C), D.X: X}, R=R, C=C)
            X = values[f"x{axis}"]
    assert_close(got.reshape(R, C), X, "spec.reference", f"iterative g' {shape}")


def test_orthograd_off_returns_the_gradient():
    w, g = tensors((5, 7), 3)
    assert ref.orthograd(w, g, None) is g


# -- Cautious and Grams -----------------------------------------------------------------------


@pytest.mark.parametrize("shape", [*SHAPES, (2003,)], ids=str)
def test_cautious_and_grams_match_spec(shape):
    n, g = tensors(shape, 4)
    if shape == (2003,):  # one coordinate agrees: the kept fraction 1/2003 is below the 1e-3 floor
        g = -np.sign(n) * (np.abs(g) + 1.0)
        g[5] = -g[5]
    flat = {D.n: n.reshape(-1), D.g: g.reshape(-1)}
    N = n.size
    for name, fn in (("cautious", ref.cautious), ("grams", ref.grams)):
        got = fn(n, g)
        assert got.shape == n.shape
        if N == 0:  # no elements (and no mean of phi): nothing to rewrite
            continue
        spec = evaluate(getattr(D, name)(), flat, N=N)
        assert_close(got.reshape(-1), np.broadcast_to(spec["n"], (N,)), "spec.reference", f"{name} {shape}")


# -- Kourkoutas-beta --------------------------------------------------------------------------


@pytest.mark.parametrize("warmup", [0, 4])
def test_kourkoutas_beta2_matches_spec(warmup):
    h = {**KOURKOUTAS, "k_warmup_steps": warmup}
    rng = np.random.default_rng(5)
    r, prod = 0.0, 1.0
    for t in range(1, 8):
        norms = rng.random(3) * (10.0 if t == 5 else 1.0)  # a spike at t = 5
        if t == 3:
            norms[:] = 0.0
        rho = math.sqrt(float(np.sum(norms**2)))
        beta2_t, r_new = ref.kourkoutas_beta2(rho, r, t, h)
        inputs = {
            D.sq: norms**2, D.r_prev: r, D.prod_prev: prod, D.alpha_r: h["ema_alpha"], D.eps_s: h["tiny_spike"],
            s.beta2: h["betas"][1], D.beta2_min: h["beta2_min"], D.T_K: np.float64(warmup), s.t: t, D.B: norms.size,
        }
        spec = evaluate(D.kourkoutas(), inputs)
        assert_close(np.array(r_new), spec["r"], "spec.reference", f"r at t={t}")
        assert_close(np.array(beta2_t), spec["beta2_t"], "spec.reference", f"beta2_t at t={t}")
        assert h["beta2_min"] <= beta2_t <= h["betas"][1]
        r, prod = r_new, prod * beta2_t


def test_kourkoutas_bucket_in_the_optimizer():
    """Two tensors in one bucket (layer_key_fn), the second without a gradient at step 2: r is
    the bucket's, stored in both; each v decays with its own beta2_t (its own step in the
    warm-up) and the product of its beta2s is kept for bc2."""
    rng = np.random.default_rng(6)
    params = [rng.normal(size=(5, 3)), rng.normal(size=(7,))]
    h = {**KOURKOUTAS, "k_warmup_steps": 3}
    opt = reference.AdamW(params, lr=0.01, kourkoutas_beta=True, layer_key_fn=lambda p: "one", **h)
    r, prods, v = 0.0, [1.0, 1.0], [np.zeros(p.shape) for p in params]
    for t in range(1, 4):
        grads = [rng.normal(size=p.shape) for p in params]
        if t == 2:
            grads[1] = None
        live = [i for i, gi in enumerate(grads) if gi is not None]
        sq = np.array([np.sum(grads[i] ** 2) for i in live])
        opt.step(grads)
        for i in live:
            inputs = {
                D.sq: sq, D.B: sq.size, D.r_prev: r, D.prod_prev: prods[i], D.alpha_r: h["ema_alpha"],
                D.eps_s: h["tiny_spike"], s.beta2: h["betas"][1], D.beta2_min: h["beta2_min"],
                D.T_K: np.float64(h["k_warmup_steps"]), s.t: opt.state[i]["step"],
            }
            spec = evaluate(D.kourkoutas(), inputs)
            prods[i] = float(spec["prod"])
            v[i] = spec["beta2_t"] * v[i] + (1 - spec["beta2_t"]) * grads[i] ** 2
        r = float(spec["r"])
        for i in range(2):
            assert_close(np.array(opt.state[i]["kourkoutas_r"]), np.array(r), "spec.reference", f"r {i} t={t}")
            assert_close(np.array(opt.state[i]["kourkoutas_beta2_prod"]), np.array(prods[i]), "spec.reference",
                         f"prod {i} t={t}")
            assert_close(opt.state[i]["exp_avg_sq"], v[i], "spec.reference", f"v {i} t={t}")
    assert opt.state[1]["step"] == 2


def test_layer_key_fn_needs_kourkoutas():
    with pytest.raises(ValueError, match="layer_key_fn"):
        reference.AdamW([np.zeros(3)], layer_key_fn=lambda p: 0)
    with pytest.raises(TypeError):
        reference.Lion([np.zeros(3)], layer_key_fn=lambda p: 0)


# -- the sign features ------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_stochastic_sign_matches_spec(shape):
    x, _ = tensors(shape, 7)
    u = np.random.default_rng(8).integers(0, 2**16, size=x.size)
    got = ref.stochastic_sign(x, u)
    assert got.shape == x.shape
    if len(shape) < 2 or x.size == 0:
        spec = evaluate(D.stochastic_sign(matrix=False), {D.x: x.reshape(-1)}, N=x.size)
        assert_close(got.reshape(-1), np.broadcast_to(spec["dir"], (x.size,)), "spec.reference", f"sign {shape}")
        return
    R, C = matrix_shape(shape)
    spec = evaluate(D.stochastic_sign(), {D.x: x.reshape(R, C), D.u: u.reshape(R, C)}, R=R, C=C)
    assert_close(got.reshape(R, C), spec["dir"], "spec.reference", f"stochastic sign {shape}")


def test_stochastic_sign_is_exactly_unbiased_on_the_grid():
    """Rows and columns already have max |x| = 1 (the scaling is exact); the other entries lie on
    the 2^-15 grid. The mean over all 2^16 draws is x exactly, in the reference and the spec."""
    rng = np.random.default_rng(9)
    x = rng.integers(-(2**15) + 1, 2**15, size=(3, 5)) * 2.0**-15
    x[0, :], x[:, 0] = 1.0, -1.0
    x[1, 2], x[2, 3] = 0.0, 2.0**-15
    # All draws at once: 2^16 copies of x side by side (the maxima stay 1), copy v drawing v.
    tiled = np.tile(x, (1, 2**16))
    u = np.broadcast_to(np.arange(2**16)[None, :, None], (3, 2**16, 5)).reshape(-1)
    signs = ref.stochastic_sign(tiled, u).reshape(3, 2**16, 5)
    assert np.array_equal(signs.sum(axis=1) / 2**16, x)
    mean = sp.lambdify([D.z_el], D.stochastic_sign_mean(), modules="numpy")
    assert np.array_equal(np.asarray(mean(x.reshape(-1)), dtype=np.float64), x.reshape(-1))
    assert np.array_equal(ref.stochastic_sign(x[0], None), np.sign(x[0]))  # vectors: the sign


@pytest.mark.parametrize("t", [1, 3])
def test_freeze_matches_spec(t):
    rng = np.random.default_rng(10)
    x = rng.normal(size=(4, 9))
    x[0, :3] = 0.0  # a zero raw direction has bit 0
    direction = np.sign(rng.normal(size=x.shape))
    prev = (rng.random(x.shape) < 0.5).astype(np.float64)
    got, bits = ref.freeze(direction, x, prev, first_step=t == 1)
    spec = evaluate(D.freeze_on_flip(), {D.x_el: x, D.dir_el: direction, D.prev_bit: prev, s.t: t})
    assert_close(bits, np.broadcast_to(spec["bit"], x.shape), "spec.reference", "bits")
    assert_close(got, np.broadcast_to(spec["dir"], x.shape), "spec.reference", f"frozen direction t={t}")


@pytest.mark.parametrize("shape", [(), (1,), (3,), (8,), (13,), (5, 7), (3, 2, 5), (2003,), (0,), (4, 0)], ids=str)
def test_freeze_bits_round_trip(shape):
    rng = np.random.default_rng(11)
    n = math.prod(shape)
    store = StateStore({}, {"prev_sign": Format("bits", False)}, shape, lambda purpose, k: np.zeros(k))
    store.init()
    assert store.state["prev_sign"].dtype == np.uint8 and store.state["prev_sign"].shape == ((n + 7) // 8,)
    assert np.array_equal(store.load("prev_sign"), np.zeros(shape))
    bits = rng.random(shape) < 0.5
    store.save("prev_sign", bits.astype(np.float64))
    assert np.array_equal(store.state["prev_sign"], np.packbits(bits.reshape(-1), bitorder="little"))
    loaded = store.load("prev_sign")
    assert loaded.shape == shape and loaded.dtype == np.float64
    assert np.array_equal(loaded, bits.astype(np.float64))


@pytest.mark.parametrize("cautious_wd", [False, True])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_projected_matches_spec(shape, cautious_wd):
    x, p = tensors(shape, 12)
    direction = np.sign(np.random.default_rng(13).normal(size=shape))
    ell = ref.projected_scale(x)
    assert ell.shape == x.shape
    if x.size == 0:
        return
    h = {"lr": 0.03, "weight_decay": 0.4, "cautious_wd": cautious_wd}
    U = h["lr"] * (direction * ell)
    got = apply_update(p, U, h, scale=ell)
    view = matrix_shape(shape) if len(shape) >= 2 else (x.size,)
    inputs = {D.x: x.reshape(view), D.dir_el: direction.reshape(view), s.p: p.reshape(view), s.lr: h["lr"],
              s.wd: h["weight_decay"]}
    sizes = {"R": view[0], "C": view[1]} if len(view) == 2 else {"N": view[0]}
    spec = evaluate(D.projected(len(view) == 2, cautious_wd), inputs, **sizes)
    for key, value in (("ell", ell), ("U", U), ("p", got)):
        assert_close(value.reshape(view), np.broadcast_to(spec[key], view), "spec.reference", f"{key} {shape}")


def test_projected_scale_of_a_constant_magnitude_is_that_magnitude():
    x = np.array([[2.0, -2.0, 2.0], [-2.0, 2.0, 2.0]])
    assert np.array_equal(ref.projected_scale(x), np.full(x.shape, 2.0))


# -- wiring: each feature where spec/directions.md puts it ------------------------------------


@pytest.mark.parametrize("name", ["AdamW", "Adopt", "Prodigy", "SimplifiedAdEMAMix", "Lion", "ProdigyLion", "SignSGD"])
@pytest.mark.parametrize("mode", ["flattened", "iterative"])
def test_orthograd_replaces_the_gradient(name, mode):
    """An optimizer with OrthoGrad steps exactly as the plain one fed g' of the current p."""
    rng = np.random.default_rng(14)
    params = [rng.normal(size=(5, 7)), rng.normal(size=(6,))]
    cls = getattr(reference, name)
    with_ortho, plain = cls(params, orthograd=mode), cls(params)
    for _ in range(3):
        grads = [rng.normal(size=p.shape) for p in params]
        primes = [ref.orthograd(p, g, mode) for p, g in zip(plain.params, grads)]
        with_ortho.step(grads)
        plain.step(primes)
        for a, b in zip(with_ortho.params, plain.params):
            assert np.array_equal(a, b), name


def test_lion_sign_features_in_order():
    """Lion with Cautious, freeze-on-flip and projected adaptivity, two steps, by hand."""
    rng = np.random.default_rng(15)
    p0 = rng.normal(size=(4, 6))
    h = {"lr": 0.1, "betas": (0.5, 0.9), "weight_decay": 0.2}
    opt = reference.Lion([p0], cautious=True, freeze_on_flip=True, projected_adaptivity=True, **h)
    p, m, prev = p0.copy(), np.zeros(p0.shape), None
    for t in (1, 2):
        g = rng.normal(size=p.shape)
        c = h["betas"][0] * m + (1 - h["betas"][0]) * g
        direction = ref.cautious(np.sign(c), g)
        if t > 1:
            direction = np.where((c > 0) != prev, 0.0, direction)
        ell = ref.projected_scale(c)
        U = h["lr"] * (direction * ell)
        p = p - h["lr"] * h["weight_decay"] * ell * p - U
        m, prev = h["betas"][1] * m + (1 - h["betas"][1]) * g, c > 0
        opt.step([g])
        assert_close(opt.params[0], p, "spec.reference", f"p at t={t}")
        assert np.array_equal(opt.state[0]["prev_sign"], np.packbits(prev.reshape(-1), bitorder="little"))


def test_stochastic_sign_uses_the_injected_draws():
    rng = np.random.default_rng(16)
    p0, g = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    u = rng.integers(0, 2**16, size=p0.size)
    opt = reference.SignSGD([p0], lr=0.1, momentum=0.0, stochastic_sign=True)
    opt.step([g], draws=[{"sign": u}])
    assert np.array_equal(opt.params[0], p0 - 0.1 * ref.stochastic_sign(g, u))


@pytest.mark.parametrize("mask", ["cautious", "grams"])
def test_adam_mask_acts_before_the_slow_ema_and_the_division(mask):
    """AdamW with AdEMAMix and Cautious or Grams, three steps by hand: the mask rewrites m (the
    numerator after Nesterov, here without it) before alpha*bc1*m_slow joins it."""
    rng = np.random.default_rng(17)
    p0 = rng.normal(size=(3, 4))
    b1, b2, b3, alpha, lr, wd, eps = 0.8, 0.95, 0.99, 2.0, 0.01, 0.1, 1e-3
    opt = reference.AdamW([p0], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, use_AdEMAMix=True,
                          beta3_ema=b3, alpha=alpha, **{mask: True})
    p, m, v, m_slow = p0.copy(), np.zeros(p0.shape), np.zeros(p0.shape), np.zeros(p0.shape)
    for t in (1, 2, 3):
        g = rng.normal(size=p.shape)
        v, m, m_slow = b2 * v + (1 - b2) * g * g, b1 * m + (1 - b1) * g, b3 * m_slow + (1 - b3) * g
        bc1, bc2 = 1 - b1**t, 1 - b2**t
        n = getattr(ref, mask)(m, g) + alpha * bc1 * m_slow
        U = lr / bc1 * (n / (np.sqrt(v) / math.sqrt(bc2) + eps))
        p = p - lr * wd * p - U
        opt.step([g])
        assert_close(opt.params[0], p, "spec.reference", f"{mask} p at t={t}")
