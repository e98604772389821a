"""The fused per-parameter step every optimizer runs: decode states -> the optimizer's
math -> encode states -> weight decay and the parameter write, as one kernel.

An optimizer supplies only its math, ``make_math(*flags)`` returning
``math(G, states, s, noise) -> (U, new_states, ell)`` on compute-dtype tensors in the working
shape, where ``U`` already contains the learning rate, ``s`` are its scalars (the kernel's
scalars after the first, which is lr * weight_decay), ``noise`` the stochastic sign's 16-bit
draws (or None; computed in the kernel by fast.counter_rng) and ``ell`` None or projected
adaptivity's scale of the weight decay. OrthoGrad runs here, before the math, for every
optimizer. Storage formats, stochastic rounding and the write compose with every optimizer
without being written again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from fast import counter_rng, storage
from fast.directions import orthograd
from fast.write import WriteMode, new_param, store
from spec.storage_layout import Format

MathFactory = Callable[..., Callable[..., Any]]


def make_step_kernel(
    make_math: MathFactory,
    math_flags: tuple,
    formats: tuple[Format | None, ...],
    decay: bool,
    cautious_wd: bool,
    mode: WriteMode,
    dtype: torch.dtype,  # only a cache key: one compiled graph per parameter dtype
    ortho: tuple[str | None, int] = (None, 0),
    sign_noise: bool = False,
):
    """``kernel(p, g, stored, s, keys)`` for ``p`` and ``g`` in the working shape; ``s[0]`` =
    lr * wd.

    ``stored[i]`` belongs to ``formats[i]`` (None for a state the optimizer does not keep);
    ``keys`` are the parameter's stream keys for this step (fast.counter_rng.key_tensor): the
    kernel draws the stochastic write's, each stochastic state's and (``sign_noise``) the
    stochastic sign's 16-bit integers itself. ``aux`` (optional) are tensors the math takes as a
    fifth argument: statistics an earlier kernel reduced (the Adafactor family's factors and
    clip scale). ``ortho`` is OrthoGrad's (mode, rows) and ``coef``
    flattened OrthoGrad's [proj, scale] (directions.flattened_coef). Factored states get nothing
    here: their factors and signs come from ``make_column_kernel``, run before this kernel on the
    same inputs, so that this kernel has no reduction.
    """
    math = make_math(*math_flags)

    def step_kernel(p, g, stored, s, keys, coef=None, aux=None):
        # p, g and every full-size tensor share one working shape (storage.working_shape),
        # viewed outside the graph so that inductor emits one loop nest and no copies.
        index = counter_rng.element_index(p.shape, keys)
        P = p.to(s.dtype)
        G = orthograd(P, g.to(s.dtype), *ortho, coef)
        noise = counter_rng.draws(index, keys[counter_rng.SIGN_KEY]) if sign_noise else None
        decoded = _decoded(formats, stored, p, s.dtype)
        U, new_states, ell = math(G, decoded, s[1:], noise) if aux is None else math(G, decoded, s[1:], noise, aux)
        for j, (f, t, x) in enumerate(zip(formats, stored, new_states)):
            if f is not None:
                bits = counter_rng.draws(index, keys[counter_rng.slot_key(j)]) if storage.needs_bits(f) else None
                storage.encode(f, x, t, bits)
        P = new_param(P, U, s[0], decay=decay, cautious=cautious_wd, scale=ell)
        bits = counter_rng.draws(index, keys[counter_rng.PARAM_KEY]) if mode is WriteMode.STOCHASTIC else None
        p.copy_(store(P, p.dtype, mode, bits))

    return step_kernel


def make_column_kernel(make_math: MathFactory, math_flags: tuple, formats: tuple[Format | None, ...],
                       dtype: torch.dtype, ortho: tuple[str | None, int] = (None, 0), sign_noise: bool = False):
    """``kernel(p, g, stored, s) -> sums``: for each factored state, ``storage.factor_sums`` of
    its new value (None for other states).

    A separate pass: reductions in the step kernel split its loop nest (on CPU, ~10x slower),
    and a column reduction cannot share a row-major loop. It recomputes the new moments from g
    and the old states instead of keeping a full-size copy, so a factored step needs no
    full-size workspace.
    """
    math = make_math(*math_flags)

    def column_kernel(p, g, stored, s, keys, coef=None):
        G = orthograd(p.to(s.dtype), g.to(s.dtype), *ortho, coef)
        index = counter_rng.element_index(p.shape, keys)
        noise = counter_rng.draws(index, keys[counter_rng.SIGN_KEY]) if sign_noise else None
        _, new_states, _ = math(G, _decoded(formats, stored, p, s.dtype), s[1:], noise)
        return tuple(
            storage.factor_sums(x, f.signed) if f is not None and f.kind == "factored" else None
            for f, x in zip(formats, new_states)
        )

    return column_kernel


def _decoded(formats, stored, p, cdt):
    """Every kept state decoded to the compute dtype in ``p``'s (working) shape."""
    return tuple(
        None if f is None else storage.decode(f, t, p.numel(), cdt, p.shape) for f, t in zip(formats, stored)
    )
