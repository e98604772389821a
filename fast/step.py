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
    """``kernel(p, g, stored, s, bits, scratch)`` for flat ``p`` and ``g``; ``s[0]`` = lr * wd.

    ``stored[i]``/``bits[i + 1]``/``scratch[i]`` belong to ``formats[i]`` (None for a state
    the optimizer does not keep); ``bits[0]`` are the parameter's stochastic-rounding draws.
    """
    math = make_math(*math_flags)

    def step_kernel(p, g, stored, s, bits, scratch):
        # p, g and every full-size tensor share one working shape (storage.working_shape),
        # viewed outside the graph so that inductor emits one loop nest and no copies.
        cdt = s.dtype
        n = p.numel()
        states = tuple(
            None if f is None else storage.decode(f, t, n, cdt, p.shape) for f, t in zip(formats, stored)
        )
        U, new_states = math(g.to(cdt), states, s[1:])
        for f, t, x, b, sc in zip(formats, stored, new_states, bits[1:], scratch):
            if f is not None:
                storage.encode(f, x, t, b, sc)
        P = new_param(p.to(cdt), U, s[0], decay=decay, cautious=cautious_wd)
        p.copy_(store(P, p.dtype, mode, None if bits[0] is None else bits[0].view(p.shape)))

    return step_kernel
