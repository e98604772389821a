"""The direction features (spec/directions.md) as traceable torch functions.

They run inside the fused step kernels, on compute-dtype tensors in the kernel's working shape
(flat, or the factored (d1, d2[/8, 8]) view); the matrix features reshape to the parameter's
(rows, -1) view, which is free because every working shape is a contiguous view of the same
elements. Whole-tensor sums (OrthoGrad, Cautious) become a reduction kernel that inductor runs
before the elementwise one.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

ORTHO_FLOOR = 1e-30
ORTHO_PARALLEL = 1e-12  # ||g_perp||^2 <= 1e-12 ||g||^2: parallel to w, g' = 0 (spec/directions.md)
ORTHO_RELAX = 1.01  # adv_optm's over-relaxation of the iterative projection
ORTHO_ROUNDS = 3
CAUTIOUS_FLOOR = 1e-3
SIGN_FLOOR = 1e-12
PROJECTED_FLOOR = 1e-30
NOISE_SCALE = 2.0**-15  # 16-bit draws -> the 2^16 midpoints of (-1, 1)


class SignFlags(NamedTuple):
    """Static flags of the sign pipeline (Lion, ProdigyLion, SignSGD); ``rows`` is the
    parameter's shape[0] when it has >= 2 dims (the matrix view), else 0."""

    cautious: bool = False
    stochastic: bool = False
    freeze: bool = False
    projected: bool = False
    rows: int = 0


NO_SIGN_FEATURES = SignFlags()


def orthograd(P: torch.Tensor, G: torch.Tensor, mode: str | None, rows: int,
              coef: torch.Tensor | None = None) -> torch.Tensor:
    """``g'`` of OrthoGrad (``mode`` None: ``G`` itself). ``coef`` = ``flattened_coef(P, G)``
    when the caller computed it in a kernel of its own."""
    if mode is None:
        return G
    if mode == "iterative" and rows:
        return _iterative(P.reshape(rows, -1), G.reshape(rows, -1)).reshape(G.shape)
    if coef is None:
        coef = flattened_coef(P, G)
    proj, scale = coef.to(G.dtype).unbind(0)
    return (G - proj * P) * scale


def flattened_coef(P: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """[proj, scale] of flattened OrthoGrad: g' = (g - proj*w) * scale.

    float64 sums: |g_perp|^2 = |g|^2 - <w,g>^2/|w|^2 cancels when g is nearly parallel to w,
    and one pass for all three sums keeps OrthoGrad's cost to one extra read of p and g. The
    step kernels take the result as an input: computed inside them, inductor would redo this
    scalar arithmetic (divisions, square roots) for every element.
    """
    w, g = P.double(), G.double()
    ww, wg, gg = (w * w).sum(), (w * g).sum(), (g * g).sum()
    proj = wg / (ww + ORTHO_FLOOR)
    perp_sq = (gg - 2 * proj * wg + proj * proj * ww).clamp_min(0)
    # Parallel to w: g_perp is rounding residue (its direction noise, its norm from this expansion
    # unrelated to the residue's), so g' = 0. The float64 sums decide this far below 1e-12.
    scale = torch.where(perp_sq > ORTHO_PARALLEL * gg, gg.sqrt() / (perp_sq.sqrt() + ORTHO_FLOOR), 0.0)
    return torch.stack((proj, scale))


def make_orthograd_coef_kernel():
    """``kernel(p, g) -> [proj, scale]`` (float64) of flattened OrthoGrad."""

    def orthograd_coef_kernel(p, g):
        return flattened_coef(p, g)

    return orthograd_coef_kernel


def _iterative(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    first = 0 if w.shape[0] > w.shape[1] else 1
    axes = (first, 1 - first)
    floors = [x.shape[k] ** -0.5 for k in axes]
    targets = [torch.linalg.vector_norm(x, dim=k, keepdim=True).clamp_min(f) for k, f in zip(axes, floors)]
    w_sq = [(w * w).sum(k, keepdim=True) + ORTHO_FLOOR for k in axes]
    for _ in range(ORTHO_ROUNDS):
        for k, floor, target, wk in zip(axes, floors, targets, w_sq):
            x = x - ORTHO_RELAX * ((w * x).sum(k, keepdim=True) / wk) * w
            x = x * (target / torch.linalg.vector_norm(x, dim=k, keepdim=True).clamp_min(floor))
    return x


def grams(n: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    return torch.sign(G) * n.abs()


def cautious(n: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    keep = n * G > 0
    # An integer count: exact, and on CPU inductor sums it without the cascade summation it uses
    # for a float mean (Cautious AdamW 1.62x -> 1.50x the step without it, 2 cores, 1 thread).
    kept = keep.sum().to(n.dtype) / keep.numel()
    return torch.where(keep, n, 0.0) / kept.clamp_min(CAUTIOUS_FLOOR)


def stochastic_sign(x: torch.Tensor, noise: torch.Tensor, rows: int) -> torch.Tensor:
    """Rows, then columns scaled to max |x| = 1, then sign(x + xi); vectors: sign(x)."""
    if not rows:
        return torch.sign(x)
    y = x.reshape(rows, -1)
    y = y / y.abs().amax(1, keepdim=True).clamp_min(SIGN_FLOOR)
    y = y / y.abs().amax(0, keepdim=True).clamp_min(SIGN_FLOOR)
    xi = (noise.reshape(rows, -1).to(x.dtype) + 0.5) * NOISE_SCALE - 1
    return torch.sign(y + xi).reshape(x.shape)


def projected_scale(x: torch.Tensor, rows: int) -> torch.Tensor:
    """l: mean |x| (vectors) or the rank-1 row-mean x column-mean / mean of |x| (matrices)."""
    a = x.abs()
    if not rows:
        return a.mean()
    a2 = a.reshape(rows, -1)
    ell = a2.mean(1, keepdim=True) * a2.mean(0, keepdim=True) / a2.mean().clamp_min(PROJECTED_FLOOR)
    return ell.reshape(x.shape)


def sign_pipeline(x: torch.Tensor, G: torch.Tensor, flags: SignFlags, noise: torch.Tensor | None,
                  prev: torch.Tensor | None, have_prev: torch.Tensor, direction: torch.Tensor | None = None):
    """``(dir, ell, bits)`` for the raw direction ``x``: the sign (or stochastic sign, or a given
    Lion-K ``direction``), Cautious against ``G``, freeze-on-flip against ``prev`` (1.0 where the
    previous x was positive; ``have_prev`` 0 on the first step) and projected adaptivity. ``ell``
    is None without projected adaptivity; ``bits`` (the new prev_sign, 1.0/0.0) None without
    freeze-on-flip."""
    if direction is None:
        direction = stochastic_sign(x, noise, flags.rows) if flags.stochastic else torch.sign(x)
    if flags.cautious:
        direction = cautious(direction, G)
    bits = None
    if flags.freeze:
        positive = x > 0
        flipped = (positive != (prev > 0.5)) & (have_prev > 0)
        direction = torch.where(flipped, torch.zeros_like(direction), direction)
        bits = positive.to(x.dtype)
    ell = projected_scale(x, flags.rows) if flags.projected else None
    if ell is not None:
        direction = direction * ell
    return direction, ell, bits


def make_orthograd_kernel(mode: str, rows: int):
    """``kernel(p, g) -> g'`` for optimizers that need ``g'`` outside their step kernel
    (Prodigy's statistics read it too)."""

    def orthograd_kernel(p, g):
        cdt = torch.float64 if p.dtype == torch.float64 else torch.float32
        return orthograd(p.to(cdt), g.to(cdt), mode, rows)

    return orthograd_kernel
