"""Optimizer steps inside the backward pass: each parameter is stepped as soon as its gradient
is complete and its gradient freed at once, so a training step never holds all gradients
(``fast.fuse_backward``; OneTrainer's "fused back pass", kohya's ``--fused_backward_pass``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.utils.hooks import RemovableHandle

from fast.accumulate import trainable

CLIP_EPS = 1e-6  # added to a gradient's norm before dividing by it (torch's clip_grad_norm_ adds the same)


class FusedBackward:
    """The hooks ``fuse_backward`` registered; ``remove()`` (or leaving a ``with`` block) undoes
    them. ``end_step()`` finishes what spans tensors after the backward pass."""

    def __init__(self, params: list[torch.Tensor], optimizer: torch.optim.Optimizer,
                 max_grad_norm: float | None) -> None:
        self.optimizer = optimizer
        self.max_grad_norm = max_grad_norm
        self.stepped = 0  # tensors stepped since the last end_step()
        where = {id(q): (group, i) for group in optimizer.param_groups for i, q in enumerate(group["params"])}
        self._handles: list[RemovableHandle] = []
        for p in params:
            if id(p) not in where:
                raise ValueError(f"fuse_backward: a parameter of shape {tuple(p.shape)} is not in the optimizer")
            group, i = where[id(p)]
            self._handles.append(p.register_post_accumulate_grad_hook(self._hook(group, i)))

    def _hook(self, group: dict[str, Any], i: int):
        def step_now(p: torch.Tensor) -> None:
            if p.grad is None:
                return
            if self.max_grad_norm is not None:
                clip_tensor(p.grad, self.max_grad_norm)
            self.optimizer.step_parameter(p, group, i)
            p.grad = None
            self.stepped += 1

        return step_now

    def end_step(self) -> int:
        """Call once per training step, after the backward pass: finishes Prodigy's and
        ProdigyLion's d (their ``end_step()``); returns how many tensors were stepped."""
        finish = getattr(self.optimizer, "end_step", None)
        if finish is not None:
            finish()
        stepped, self.stepped = self.stepped, 0
        return stepped

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> FusedBackward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def clip_tensor(grad: torch.Tensor, max_norm: float) -> None:
    """Scale ``grad`` in place so that its L2 norm is at most ``max_norm``."""
    norm = torch.linalg.vector_norm(grad, dtype=torch.float64 if grad.dtype == torch.float64 else torch.float32)
    grad.mul_(torch.clamp(max_norm / (norm + CLIP_EPS), max=1.0).to(grad.dtype))


def fuse_backward(params_or_model: torch.nn.Module | Iterable[torch.Tensor], optimizer: torch.optim.Optimizer,
                  max_grad_norm: float | None = None) -> FusedBackward:
    """Step ``optimizer`` inside the backward pass, one parameter at a time.

    A post-accumulate-grad hook on every trainable parameter calls
    ``optimizer.step_parameter(p, group, i)`` as soon as ``p.grad`` is complete and then frees
    it, so the gradients of the whole model never exist at once: the peak memory of a training
    step drops by about the size of the gradients (benchmarks/fused_backward.py measures it).
    Do not call ``optimizer.step()`` or ``zero_grad()``; call ``handle.end_step()`` once after
    each backward pass.

    What differs from ``loss.backward(); optimizer.step()``:

    - **Gradient clipping is per tensor.** A global norm needs every gradient first, which is
      what this avoids. With ``max_grad_norm`` each gradient is scaled to an L2 norm of at most
      ``max_grad_norm`` before its step (a tensor's norm is at most the global one, so this clips
      no more than a global clip would for the same threshold, often less).
    - **No gradient accumulation over micro-batches:** every backward pass steps. Accumulate
      first (several backward passes with the hooks removed, or ``fast.accumulate_grads``), or
      use a normal step.
    - **Statistics across tensors** finish in ``end_step()``: Prodigy's and ProdigyLion's d
      (without it d never grows). Kourkoutas-beta works when every bucket of ``layer_key_fn``
      is one tensor (the default); a bucket of several tensors needs all their gradients and
      is refused here.
    - Tensors step in the order autograd finishes them. Each step reads only its own tensor's
      state, so only Prodigy's d statistics (float64 sums over the tensors) can differ from a
      normal step, by the summation order (a few float64 ulps).

    Args:
        params_or_model: a module (its parameters that require grad), tensors or param groups
            (each tensor hooked once).
        optimizer: an optimizer with ``step_parameter`` (every ``fast`` optimizer) holding them.
        max_grad_norm: clip each gradient to this L2 norm before its step; None: no clipping.

    Returns:
        The handle: ``end_step()``, ``remove()``; a context manager.

    Examples:
        >>> import torch, fast
        >>> model = torch.nn.Linear(4, 2)
        >>> opt = fast.AdamW(model.parameters(), lr=1e-2, compiled_optimizer=False)
        >>> with fast.fuse_backward(model, opt, max_grad_norm=1.0) as fused:
        ...     model(torch.randn(8, 4)).square().mean().backward()  # steps here
        ...     fused.end_step()
        2
        >>> model.weight.grad is None
        True
    """
    if max_grad_norm is not None and (isinstance(max_grad_norm, bool) or not isinstance(max_grad_norm, int | float)
                                      or not max_grad_norm > 0 or max_grad_norm == float("inf")):
        raise ValueError(f"Invalid max_grad_norm={max_grad_norm!r}: expected a float in (0, inf) or None")
    if not callable(getattr(optimizer, "step_parameter", None)):
        raise TypeError(f"fuse_backward: {type(optimizer).__name__} has no step_parameter(p, group, i); "
                        "use a fast optimizer")
    buckets = getattr(optimizer, "_kourkoutas_buckets", None)
    kourkoutas = buckets() if callable(buckets) else None
    if kourkoutas is not None and any(len(m) > 1 for m in kourkoutas.members.values()):
        raise ValueError("fuse_backward: a Kourkoutas-beta layer_key_fn bucket holds several tensors; its gradient "
                         "norm needs all of them: use optimizer.step()")
    return FusedBackward(trainable(params_or_model), optimizer,
                         float(max_grad_norm) if max_grad_norm is not None else None)
