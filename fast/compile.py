"""One compiled kernel per (kernel family, static flags), shared by all optimizer instances.

Kernels take flattened 1-D tensors and their scalars as a small tensor, so a single
dynamic-shape graph serves every parameter size and schedulers changing the lr do not
recompile.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import torch

_CACHE: dict[Hashable, Callable[..., Any]] = {}


def kernel(make: Callable[..., Callable[..., Any]], flags: tuple, compiled: bool) -> Callable[..., Any]:
    """The kernel ``make(*flags)``, compiled once per flags tuple when ``compiled``."""
    key = (make, flags, compiled)
    fn = _CACHE.get(key)
    if fn is None:
        fn = make(*flags)
        if compiled:
            fn = torch.compile(fn, dynamic=True, fullgraph=True)
        _CACHE[key] = fn
    return fn
