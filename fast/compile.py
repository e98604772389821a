"""One compiled kernel per (kernel family, static flags), shared by all optimizer instances.

Kernels take flattened 1-D tensors and their scalars as a small tensor, so a single
dynamic-shape graph serves every parameter size and schedulers changing the lr do not
recompile.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Hashable
from typing import Any

import torch

_CACHE: dict[Hashable, Callable[..., Any]] = {}

# Let inductor recompute the decoded and updated moments in every loop that needs them instead
# of storing them as full-size temporaries: with the defaults each such temporary costs one
# parameter's fp32 size of peak memory, and a kernel with a whole-tensor reduction (Cautious's
# mean) stored two of them, which made it 2.8x slower on CPU instead of 1.2x.
_RECOMPUTE_KEYS = ("realize_reads_threshold", "realize_opcount_threshold", "realize_acc_reads_threshold",
                  "realize_cpu_opcount_threshold", "realize_cpu_acc_reads_threshold")


def _recompute_options() -> dict[str, int]:
    """The thresholds above that the running torch knows (the CPU ones are newer than torch 2.11;
    options must name existing keys). Imported here, not at module load: inductor imports sympy,
    which ``import fast`` must not."""
    import torch._inductor.config as inductor_config

    return {key: 1000 for key in _RECOMPUTE_KEYS if hasattr(inductor_config, key)}


def kernel(make: Callable[..., Callable[..., Any]], flags: tuple, compiled: bool,
           static_shape: tuple[int, ...] | None = None, recompute: bool = True) -> Callable[..., Any]:
    """The kernel ``make(*flags)``, compiled once per flags tuple when ``compiled``.

    With ``static_shape`` the kernel is compiled for that shape only (its own entry and code
    object): inductor's code for the factored kernels (2-D reductions, sign packing) is ~10x
    slower on CPU when the sizes are symbolic. ``recompute=False`` lets inductor store
    intermediates: a kernel with chained row and column reductions (the matrix features)
    otherwise recomputes the whole update inside every reduction loop (30-100x slower on CPU).
    """
    key = (make, flags, compiled, static_shape, recompute)
    fn = _CACHE.get(key)
    if fn is None:
        fn = make(*flags)
        if compiled:
            static = static_shape is not None
            fn = torch.compile(_own_code(fn, len(_CACHE)), dynamic=not static, fullgraph=True,
                               options=_recompute_options() if recompute else None)
        _CACHE[key] = fn
    return fn


def _own_code(fn: types.FunctionType, serial: int) -> types.FunctionType:
    """A copy of ``fn`` with a code object of its own.

    Dynamo keeps its guards and recompile budget per code object; every closure made by one
    factory shares the factory's inner code object, so without this the variants would evict
    each other and exhaust the recompile limit.
    """
    code = fn.__code__.replace(co_name=f"{fn.__code__.co_name}_{serial}")
    return types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)
