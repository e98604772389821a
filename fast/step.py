"""The fused per-parameter step every optimizer runs: decode states -> the optimizer's
math -> encode states -> weight decay and the parameter write, as one kernel.

An optimizer supplies only its math, ``make_math(*flags)`` returning
``math(G, states, s) -> (U, new_states)`` on flat compute-dtype tensors, where ``U`` already
contains the learning rate and ``s`` are its scalars (the kernel's scalars after the first,
which is lr * weight_decay). Storage formats, stochastic rounding
and the write compose with every optimizer without being written again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from fast import storage
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
):
    """``kernel(p, g, stored, s, bits)`` for ``p`` and ``g`` in the working shape; ``s[0]`` =
    lr * wd.

    ``stored[i]``/``bits[i + 1]`` belong to ``formats[i]`` (None for a state the optimizer
    does not keep); ``bits[0]`` are the parameter's stochastic-rounding draws. Factored states
    get nothing here: their factors and signs come from ``make_column_kernel``, run before this
    kernel on the same inputs, so that this kernel has no reduction.
    """
    math = make_math(*math_flags)

    def step_kernel(p, g, stored, s, bits):
        # p, g and every full-size tensor share one working shape (storage.working_shape),
        # viewed outside the graph so that inductor emits one loop nest and no copies.
        U, new_states = math(g.to(s.dtype), _decoded(formats, stored, p, s.dtype), s[1:])
        for f, t, x, b in zip(formats, stored, new_states, bits[1:]):
            if f is not None:
                storage.encode(f, x, t, b)
        P = new_param(p.to(s.dtype), U, s[0], decay=decay, cautious=cautious_wd)
        p.copy_(store(P, p.dtype, mode, None if bits[0] is None else bits[0].view(p.shape)))

    return step_kernel


def make_column_kernel(make_math: MathFactory, math_flags: tuple, formats: tuple[Format | None, ...],
                       dtype: torch.dtype):
    """``kernel(p, g, stored, s) -> sums``: for each factored state, ``storage.factor_sums`` of
    its new value (None for other states).

    A separate pass: reductions in the step kernel split its loop nest (on CPU, ~10x slower),
    and a column reduction cannot share a row-major loop. It recomputes the new moments from g
    and the old states instead of keeping a full-size copy, so a factored step needs no
    full-size workspace.
    """
    math = make_math(*math_flags)

    def column_kernel(p, g, stored, s):
        _, new_states = math(g.to(s.dtype), _decoded(formats, stored, p, s.dtype), s[1:])
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
