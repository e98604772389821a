"""Gradient accumulation over micro-batches in fp32 for bf16 / fp16 parameters, usable with every
optimizer (``fast`` or ``torch.optim``): ``fast.accumulate_grads``.

bf16 keeps 8 significant bits, so the ulp of a running sum is 2^-8 to 2^-7 of its size: autograd,
which adds each micro-batch's gradient into a bf16 ``.grad``, rounds every addition to that grid, and
once the sum is a few hundred times one micro-batch's gradient the additions round away entirely.
Here each micro-batch's gradient is moved into an fp32 sum as soon as autograd has produced it,
and the sum reaches ``.grad`` once, after the last micro-batch.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from typing import Any

import torch
from torch.utils.hooks import RemovableHandle

from fast import counter_rng
from fast.rounding import stochastic_round_bf16
from spec.counter_rng import GRAD_SUM_PURPOSE, INDEX_MULTIPLIER, as_int32, stream_key

MODES = ("fp32", "sr", "nearest")
LOW_PRECISION = (torch.bfloat16, torch.float16)
ROUNDING_PURPOSE = GRAD_SUM_PURPOSE  # spec/counter_rng.py: no optimizer's stream uses it
# Elements rounded per pass: bounds the int32 temporaries of the draws (16 MiB each) for any size.
CHUNK = 1 << 22
# Tensor.grad_dtype (added in late 2025; torch 2.13 has it) is the only supported way to give a bf16
# or fp16 parameter an fp32 .grad; without it 'fp32' cannot work and is refused.
HAS_GRAD_DTYPE = hasattr(torch.Tensor, "grad_dtype")


class GradAccumulator:
    """The handle ``fast.accumulate_grads`` returns: it owns one post-accumulate-grad hook per
    trainable parameter and one running sum per parameter that received a gradient.

    Between micro-batches every handled ``p.grad`` is None: the hook moves each micro-batch's
    gradient into the sum (fp32 for bf16 / fp16 parameters, the parameter's dtype otherwise) as soon
    as autograd has written it. ``write_grads()`` puts the sums into ``p.grad`` for the optimizer;
    ``remove()`` (or leaving a ``with`` block) ends it all.

    Attributes:
        mode: 'fp32', 'sr' or 'nearest' (see ``accumulate_grads``).
        seed: the seed of the stochastic rounding's draws.
        average: whether ``write_grads`` divides the sums by ``micro_batches``.
        scale: the factor ``write_grads`` multiplies the sums by (unless given one).
        step: the number of hand-overs so far; with ``seed`` and the parameter's position it keys
            the stochastic rounding's draws. Set it when resuming to continue the same streams.
    """

    def __init__(self, params: list[torch.Tensor], mode: str, seed: int, average: bool, scale: float) -> None:
        self.mode = mode
        self.seed = seed
        self.average = average
        self.scale = scale
        self.step = 0
        self._params = params
        self._sums: list[torch.Tensor | None] = [None] * len(params)
        self._counts = [0] * len(params)
        self._restore: list[tuple[torch.Tensor, torch.dtype | None]] = []  # (param, its own grad_dtype)
        if mode == "fp32":
            for p in params:
                if p.dtype in LOW_PRECISION and p.grad_dtype not in (None, torch.float32):
                    self._restore.append((p, p.grad_dtype))
                    _set_grad_dtype(p, torch.float32)
        self._hooks: list[RemovableHandle] = [
            p.register_post_accumulate_grad_hook(functools.partial(self._collect, i)) for i, p in enumerate(params)
        ]
        self._removed = False

    @property
    def micro_batches(self) -> int:
        """The micro-batches accumulated since the last ``write_grads``: the most gradients any one
        parameter has received. It equals the number of backward passes whenever some parameter (an
        output layer, say) takes part in every one; otherwise pass ``scale`` rather than relying on
        ``average``."""
        return max(self._counts, default=0)

    @property
    def removed(self) -> bool:
        """Whether ``remove()`` has run (the hooks are gone and the handle is spent)."""
        return self._removed

    @torch.no_grad()
    def _collect(self, i: int, p: torch.Tensor) -> None:
        g = p.grad
        if g is None:
            return
        if g.is_sparse:
            raise RuntimeError("fast.accumulate_grads supports dense gradients only; a parameter of shape "
                               f"{tuple(p.shape)} received a sparse one")
        s = self._sums[i]
        if s is None:
            # contiguous: the draws of the stochastic rounding are keyed by the row-major index
            self._sums[i] = g.to(dtype=_sum_dtype(p), memory_format=torch.contiguous_format, copy=True)
        else:
            s.add_(g)
        self._counts[i] += 1
        p.grad = None

    @torch.no_grad()
    def write_grads(self, scale: float | None = None) -> int:
        """Hand the accumulated gradients to the optimizer: each parameter that received gradients
        gets ``p.grad = sum * scale / n`` (``/ n`` only with ``average=True``; n = ``micro_batches``),
        computed in the sum's dtype and then converted to the gradient dtype once, by ``mode``.
        Parameters that received none keep their ``p.grad`` (normally None, so optimizers skip them).
        The sums are freed and the count restarts; ``step`` advances.

        Call it after the last micro-batch's ``backward()`` and before ``optimizer.step()``.
        Afterwards ``p.grad`` is an ordinary gradient: zero it after the step as usual
        (``optimizer.zero_grad()``), or autograd adds it to the next micro-batch's gradient and
        it becomes part of the next sum.

        Args:
            scale: a factor for this call only, instead of the handle's ``scale``.

        Returns:
            The number of micro-batches the sums held.

        Raises:
            RuntimeError: no micro-batch was accumulated since the last call (calling it twice in a
                row, or before any ``backward()``, is a mistake this catches), or after ``remove()``.
            ValueError: ``scale`` is not a finite, nonzero number.
        """
        self._check_live("write_grads()")
        factor = self.scale if scale is None else _check_scale(scale)
        n = self.micro_batches
        if n == 0:
            raise RuntimeError("write_grads(): no micro-batch gradient was accumulated since the last hand-over; "
                               "run backward() on at least one micro-batch first")
        for i, p in enumerate(self._params):
            s = self._sums[i]
            if s is None:
                continue
            self._sums[i] = None
            if factor != 1.0:
                s.mul_(factor)
            if self.average and n != 1:
                s.div_(n)
            p.grad = self._final(i, p, s).view(p.shape)
        self._counts = [0] * len(self._params)
        self.step += 1
        return n

    def _final(self, i: int, p: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        if p.dtype not in LOW_PRECISION or self.mode == "fp32":
            return s
        if self.mode == "nearest":
            return s.to(p.dtype)
        return stochastic_round(s, p.dtype, stream_key(self.seed, i, self.step, ROUNDING_PURPOSE))

    def remove(self) -> None:
        """Remove every hook, free the sums and restore the parameters' ``grad_dtype``: autograd
        accumulates into ``p.grad`` as before. Sums not yet handed over are dropped (call
        ``write_grads()`` first to keep them). An fp32 gradient still in the ``p.grad`` of a bf16 /
        fp16 parameter ('fp32' mode) is rounded to the parameter's dtype (to nearest), since torch
        refuses it once ``grad_dtype`` is restored. Calling it again does nothing."""
        if self._removed:
            return
        for h in self._hooks:
            h.remove()
        self._hooks = []
        self._sums = [None] * len(self._params)
        self._counts = [0] * len(self._params)
        with torch.no_grad():
            for p, own in self._restore:
                _set_grad_dtype(p, own)
        self._restore = []
        self._removed = True

    def __enter__(self) -> GradAccumulator:
        self._check_live("entering a with block")
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "removed" if self._removed else f"micro_batches={self.micro_batches}"
        return (f"GradAccumulator(mode={self.mode!r}, params={len(self._params)}, average={self.average}, "
                f"scale={self.scale}, step={self.step}, {state})")

    def _check_live(self, what: str) -> None:
        if self._removed:
            raise RuntimeError(f"{what}: this accumulate_grads handle was removed; create a new one")


def accumulate_grads(
    params_or_model: torch.nn.Module | torch.Tensor | Iterable[Any],
    mode: str = "fp32",
    seed: int = 0,
    *,
    average: bool = False,
    scale: float = 1.0,
) -> GradAccumulator:
    r"""Accumulate gradients over micro-batches in fp32, for bf16 / fp16 parameters and any optimizer.

    Why: bf16 keeps 8 significant bits, so the ulp of a running sum is :math:`2^{-8}` to
    :math:`2^{-7}` of its size. Autograd adds each micro-batch's gradient into ``p.grad`` in the
    parameter's dtype, rounding every addition to that grid (the same way every time for a steady
    gradient, so the errors add up instead of averaging out); once the sum is a few hundred times
    one micro-batch's gradient the additions round away entirely, and before that each one is off by
    up to half an ulp.

    What: a post-accumulate-grad hook on every trainable parameter adds each micro-batch's
    gradient, as soon as autograd has produced it, into the parameter's own running sum (fp32 for
    bf16 / fp16 parameters; the parameter's dtype otherwise) and sets ``p.grad = None``, so no
    addition is rounded to bf16. After the last micro-batch, ``handle.write_grads()`` puts the sums
    into ``p.grad``, converted once by ``mode``; then call ``optimizer.step()`` and
    ``optimizer.zero_grad()`` as usual.

    fp32 and fp64 parameters are accumulated the same way, in their own dtype (the precision autograd
    would use, at no extra memory: the sum takes the place of ``p.grad``), and handed over unchanged by
    every mode: all parameters get the same averaging and scaling, and every handled ``p.grad`` is
    None between micro-batches. A parameter that gets no gradient in some micro-batches receives the
    sum of those it got (divided by the handle's count with ``average=True``: the missing ones count
    as zeros); one that gets none keeps ``p.grad`` None, and optimizers skip it.

    Args:
        params_or_model: an ``nn.Module`` (its parameters), a tensor, or an iterable of tensors or
            param-group dicts (``optimizer.param_groups`` works). Tensors with ``requires_grad=False``
            are skipped; the rest must be leaves; repeats are handled once.
        mode: how a bf16 / fp16 parameter's fp32 sum becomes its ``p.grad``.

            - 'fp32' (default): ``p.grad`` is the fp32 sum itself, no rounding at all. torch refuses an
              fp32 ``.grad`` on a bf16 / fp16 tensor unless the tensor's ``grad_dtype`` allows it, so
              the handle sets ``grad_dtype = torch.float32`` on them (autograd then also hands the
              hook fp32 micro-batch gradients, an exact conversion) and ``remove()`` restores it.
              Every ``fast`` optimizer reads fp32 gradients (its math is fp32 for these parameters:
              the same step as from the gradient rounded to bf16, minus the rounding), and so does
              ``torch.optim.SGD``; torch optimizers that combine the gradient with states of the
              parameter's dtype (``torch.optim.Adam``, ``AdamW``, ...) refuse it: use 'sr' with them.
              torch releases without ``Tensor.grad_dtype`` cannot do this, and 'fp32' raises there.
            - 'sr': ``p.grad`` in the parameter's dtype, stochastically rounded from the fp32 sum: one
              rounding, error under 1 ulp, unbiased (bf16: exactly, the draws being 16 bits wide and
              bf16 dropping 16 bits of fp32; fp16: exactly in its normal range, bias under
              :math:`2^{-16}` ulp among its subnormals). The draws are ``fast``'s counter-based ones
              (fast.counter_rng) keyed by ``seed``, the parameter's position among the handle's
              parameters and ``handle.step``, with a purpose no optimizer uses: the same inputs give
              bit-identical gradients on every run and device, and no generator state is kept.
            - 'nearest': ``p.grad`` in the parameter's dtype, rounded to nearest: one rounding, error
              at most half an ulp, deterministic (slightly biased where many gradients sit near the
              same rounding point).
        seed: the stochastic rounding's seed (any int; the other modes ignore it). Default 0.
        average: divide the sums by ``handle.micro_batches`` before the conversion (a mean gradient,
            as if each micro-batch's loss were divided by their number). Default False (the sum).
        scale: multiply the sums by this finite, nonzero factor before the conversion (applied with
            ``average``, before the division). ``write_grads(scale=...)`` overrides it for one call.
            Default 1.0.

    Returns:
        A ``GradAccumulator`` handle: ``write_grads()``, ``micro_batches``, ``step``, ``remove()``;
        also a context manager that calls ``remove()`` on exit.

    Raises:
        ValueError: ``mode`` is not one of 'fp32', 'sr', 'nearest' (or is 'fp32' on a torch without
            ``Tensor.grad_dtype`` while some parameter is bf16 / fp16); ``scale`` is not finite and
            nonzero; no tensor requires grad; a tensor that requires grad is not a leaf.
        TypeError: ``seed`` is not an int, ``average`` not a bool, or ``params_or_model`` holds
            something other than tensors and param-group dicts.

    Examples:
        >>> import torch, fast
        >>> model = torch.nn.Linear(4, 2).to(torch.bfloat16)
        >>> opt = fast.AdamW(model.parameters(), lr=1e-3, compiled_optimizer=False)
        >>> with fast.accumulate_grads(model, mode="sr", seed=1, average=True) as acc:
        ...     for _ in range(8):  # eight micro-batches, summed in fp32
        ...         model(torch.randn(3, 4, dtype=torch.bfloat16)).square().mean().backward()
        ...     print(model.weight.grad, acc.micro_batches)
        ...     acc.write_grads()  # the mean, rounded to bf16 once
        ...     opt.step()
        ...     opt.zero_grad()
        None 8
        8
        >>> model.weight.grad is None, model.weight.dtype
        (True, torch.bfloat16)
        >>> acc = fast.accumulate_grads(model)  # 'fp32': the optimizer reads the fp32 sum itself
        >>> model(torch.randn(3, 4, dtype=torch.bfloat16)).sum().backward()
        >>> acc.write_grads()
        1
        >>> model.weight.grad.dtype
        torch.float32
        >>> opt.step(); opt.zero_grad(); acc.remove()

    Deviations:
        From ai-toolkit's Automagic gradient accumulation (``stochastic_grad_accummulation`` in
        ``toolkit/optimizers/optimizer_utils.py``): ai-toolkit keeps the running sum in the
        parameter's dtype and rounds it stochastically after every micro-batch, so n micro-batches
        cost n roundings whose errors add up (unbiased, but about :math:`\sqrt{n}` ulps spread);
        here the sum is fp32 and rounded once ('sr', 'nearest') or not at all ('fp32'). Its draws
        come from torch's global generator; here from seeded counter-based streams, reproducible on
        their own. Its hooks are registered by a few of its optimizers' constructors (on every
        parameter that is not fp32) and never removed, and its optimizers hand the sum over inside
        ``step()``; here any optimizer works, the hand-over is the explicit ``write_grads()`` and
        ``remove()`` undoes everything. It has no averaging, scaling or micro-batch count, and its
        rounding asserts CUDA tensors; here any device. Its non-bf16 rounding adds noise at a fixed
        absolute step of :math:`2^{-13}` (then rounds to the dtype); here fp16 is rounded between its
        two fp16 neighbours.
    """
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"mode={mode!r}: expected one of {', '.join(map(repr, MODES))}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed={seed!r}: expected an int")
    if not isinstance(average, bool):
        raise TypeError(f"average={average!r}: expected True or False")
    scale = _check_scale(scale)
    params = trainable(params_or_model)
    if mode == "fp32" and not HAS_GRAD_DTYPE and any(p.dtype in LOW_PRECISION for p in params):
        raise ValueError(
            f"mode='fp32': this torch ({torch.__version__}) has no Tensor.grad_dtype, so it cannot give a "
            "bf16 / fp16 parameter an fp32 .grad; valid choices here: 'sr', 'nearest'"
        )
    return GradAccumulator(params, mode, seed, average, scale)


def stochastic_round(x: torch.Tensor, dtype: torch.dtype, key: int) -> torch.Tensor:
    """``x`` (fp32) stochastically rounded to ``dtype`` (bf16 or fp16), flat, with element ``i``'s
    16-bit draw ``spec.counter_rng.draw(key, i)`` (i: the row-major index)."""
    k = torch.tensor([as_int32(key), as_int32(INDEX_MULTIPLIER)], dtype=torch.int32, device=x.device)
    flat = x.reshape(-1)
    out = torch.empty(flat.shape, dtype=dtype, device=x.device)
    round_fn = stochastic_round_bf16 if dtype == torch.bfloat16 else stochastic_round_fp16
    for start in range(0, flat.numel(), CHUNK):
        part = flat[start:start + CHUNK]
        index = torch.arange(start, start + part.numel(), dtype=torch.int32, device=x.device) * k[1]
        out[start:start + part.numel()] = round_fn(part, counter_rng.draws(index, k[0]))
    return out


def stochastic_round_fp16(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """fp32 -> fp16, rounding up with probability (x - lo) / (hi - lo) between the two fp16
    neighbours lo <= x <= hi, from the int32 draws ``r`` in [0, 2^16).

    fp16 drops 13 bits of fp32 in its normal range, so the probability is a multiple of 2^-13 and
    the 16-bit comparison is exact (unbiased). Beyond fp16's range it rounds to nearest, so an
    overflow still shows as inf; NaN stays NaN.
    """
    near = x.to(torch.float16)
    nf = near.to(torch.float32)
    # The other neighbour is one step of the magnitude bits away: outwards if nearest rounded in.
    away = (nf.abs() < x.abs()).to(torch.int16) * 2 - 1
    other = (near.view(torch.int16) + away).view(torch.float16).to(torch.float32)
    lo, hi = torch.minimum(nf, other), torch.maximum(nf, other)
    up = r.to(torch.float32) < (x - lo) / (hi - lo) * 65536.0
    out = torch.where(up, hi, lo).to(torch.float16)
    return torch.where((nf == x) | near.isinf() | (x != x), near, out)


def _sum_dtype(p: torch.Tensor) -> torch.dtype:
    return torch.float32 if p.dtype in LOW_PRECISION else p.dtype


def _set_grad_dtype(p: torch.Tensor, dtype: torch.dtype | None) -> None:
    """Set ``p.grad_dtype``, converting a gradient already there (torch refuses the change over a
    gradient of another dtype)."""
    g = p.grad
    if g is not None and dtype is not None and g.dtype != dtype:
        p.grad = None
        p.grad_dtype = dtype
        p.grad = g.to(dtype)
    else:
        p.grad_dtype = dtype


def _check_scale(scale: Any) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale == 0:
        raise ValueError(f"scale={scale!r}: expected a finite, nonzero number")
    return float(scale)


def trainable(params_or_model: Any) -> list[torch.Tensor]:
    """The distinct leaf tensors that require grad, in order (shared by fuse_backward)."""
    if isinstance(params_or_model, torch.nn.Module):
        items: list[Any] = list(params_or_model.parameters())
    elif isinstance(params_or_model, torch.Tensor):
        items = [params_or_model]
    else:
        try:
            items = list(params_or_model)
        except TypeError:
            raise TypeError(f"params_or_model: expected an nn.Module, a tensor or an iterable of tensors or "
                            f"param-group dicts; got {type(params_or_model).__name__}") from None
    flat: list[Any] = []
    for item in items:
        if isinstance(item, dict):
            group = item.get("params", ())
            flat.extend([group] if isinstance(group, torch.Tensor) else group)
        else:
            flat.append(item)
    params: list[torch.Tensor] = []
    seen: set[int] = set()
    for k, t in enumerate(flat):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"params_or_model: item {k} is a {type(t).__name__}, not a tensor")
        if not t.requires_grad or id(t) in seen:
            continue
        if not t.is_leaf:
            raise ValueError(f"params_or_model: item {k} (shape {tuple(t.shape)}) requires grad but is not a leaf "
                             "tensor; autograd keeps no .grad for it")
        seen.add(id(t))
        params.append(t)
    if not params:
        raise ValueError("params_or_model: no tensor requires grad")
    return params
