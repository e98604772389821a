"""The parameters and gradients every conformance run uses.

Two param groups; shapes cover a 1-D bias, a 2-D matrix, an odd-rank conv-like tensor, a
prime numel, a non-contiguous view, a 0-d tensor, an empty tensor, a frozen parameter and a
(47, 97) matrix: more than one int8 block (2048) with a partial last block, factored as
(97, 47), with three rows whose gradient is always exactly zero (unused embedding rows, so
moments and their signs are exactly zero there) and a (16, 24) matrix whose factored view
(24, 16) has a multiple of 8 columns (whole sign bytes per row). Gradients are seeded; one parameter has no
gradient on one step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fast.storage import DTYPES as TORCH_DTYPES


@dataclass(frozen=True)
class Slot:
    shape: tuple[int, ...]
    group: int
    transposed: bool = False  # stored as the transpose of a contiguous tensor
    strided: bool = False  # every other element of a buffer twice as long in the last dim
    frozen: bool = False  # never receives a gradient


SLOTS = (
    Slot((8,), 0),
    Slot((6, 5), 0),
    Slot((3, 5, 7), 0),
    Slot((6, 5), 0, transposed=True),
    Slot((47, 97), 0),  # group 0's slots come first: the reference orders params by group
    Slot((17,), 1),
    Slot((), 1),
    Slot((0, 4), 1),
    Slot((4,), 1, frozen=True),
    Slot((16, 24), 1),  # factored as (24, 16): 8 | d2, the kernels' (d1, d2/8, 8) path
)
ZERO_ROWS = {4: 3}  # slot index -> leading rows whose gradient is always 0
NONE_GRAD_AT = (2, 1)  # (step index, slot index): that parameter gets no gradient then


def initial_values(seed: int, slots: tuple[Slot, ...] = SLOTS) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0.0, 1.0, size=s.shape) for s in slots]


def make_params(values: list[np.ndarray], dtype: str, device: str = "cpu",
                slots: tuple[Slot, ...] = SLOTS) -> list[torch.Tensor]:
    """Leaf tensors of ``dtype`` holding ``values`` (rounded to the dtype)."""
    out = []
    for slot, value in zip(slots, values):
        t = torch.tensor(value, dtype=TORCH_DTYPES[dtype], device=device)
        if slot.transposed:
            t = t.t().contiguous().t()  # same values, non-contiguous strides
        if slot.strided and t.dim():
            buf = torch.zeros((*t.shape[:-1], 2 * t.shape[-1]), dtype=t.dtype, device=device)
            buf[..., ::2] = t
            t = buf[..., ::2]  # a strided view with a gap after every element
        t.requires_grad_(not slot.frozen)
        out.append(t)
    return out


def grads_for_step(step: int, seed: int, consistent: float = 0.0,
                   slots: tuple[Slot, ...] = SLOTS) -> list[np.ndarray | None]:
    """Gradients of mixed sign and scale (some coordinates exactly 0) for one step.

    ``consistent`` adds that multiple of a fixed per-tensor direction (the same every step), so
    that parameters drift one way: Prodigy's d only grows when the gradients correlate with the
    distance travelled, and random gradients never move it off d0. ``ZERO_ROWS`` and
    ``NONE_GRAD_AT`` apply to the suite's own ``SLOTS`` only.
    """
    rng = np.random.default_rng([seed, step])
    grads: list[np.ndarray | None] = []
    own = slots is SLOTS
    for i, slot in enumerate(slots):
        if slot.frozen or (own and (step, i) == NONE_GRAD_AT):
            grads.append(None)
            continue
        g = rng.normal(0.0, 1.0, size=slot.shape) * rng.choice([1e-3, 0.1, 1.0, 10.0])
        g = np.where(rng.random(slot.shape) < 0.05, 0.0, g)
        if consistent:
            g = g + consistent * np.random.default_rng([seed, 10**6, i]).normal(0.0, 1.0, size=slot.shape) * (g != 0)
        if own and i in ZERO_ROWS:
            g[: ZERO_ROWS[i]] = 0.0
        grads.append(np.asarray(g))
    return grads


def group_split(params: list, slots: tuple[Slot, ...] = SLOTS) -> list[list]:
    return [[p for p, s in zip(params, slots) if s.group == k] for k in (0, 1)]
