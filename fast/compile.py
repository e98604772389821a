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


_BITCAST_INSTALLED = False


def _install_vector_bitcast() -> None:
    """Give inductor's C++ (CPU) backend a vector form of the bit cast ``x.view(torch.int32)``.

    Every stochastic rounding, the in-kernel random draws' conversions and the 8-bit / 4-bit
    codes work on float32 bit patterns. torch 2.13's ``CppVecOverrides`` has no
    ``to_dtype_bitcast``: it stores each vector to a buffer and casts element by element, which
    made a whole bf16 step ~4x slower. ATen's ``at::vec::cast<T>`` reinterprets a vector's bits
    in registers; this emits it when both dtypes take the same number of vectors (per part for
    ``VectorizedN``) and leaves every other case, and any torch without these internals, to
    inductor's own code: slower, never different. Installed once, before the first compile; it
    is process-wide, so other compiled code of the process gets the same (bit-identical) cast.

    The FX graph cache key does not include this: a cached artefact compiled without it holds
    the same bits and is only slower. Within this project the patch precedes every compile, so
    only a deliberate unpatched compile (a before/after timing) can leave such an artefact; time
    that with TORCHINDUCTOR_FORCE_DISABLE_CACHES=1 so it is neither read nor stored.
    """
    global _BITCAST_INSTALLED
    if _BITCAST_INSTALLED:
        return
    _BITCAST_INSTALLED = True
    try:  # inductor imports sympy, which ``import fast`` must not: only here, at the first compile
        from torch._inductor.codegen import cpp
        from torch._inductor.virtualized import V
    except ImportError:
        return
    vec = getattr(cpp, "CppVecOverrides", None)
    fallback = getattr(vec, "to_dtype_bitcast", None)
    if vec is None or fallback is None or not hasattr(cpp, "DTYPE_TO_CPP"):
        return

    def to_dtype_bitcast(x: Any, dtype: torch.dtype, src_dtype: torch.dtype) -> Any:
        counts = getattr(V.kernel, "_get_num_vectors", None)
        if counts is None or dtype not in cpp.DTYPE_TO_CPP or counts(dtype) != counts(src_dtype):
            return fallback(x, dtype, src_dtype)
        dst, n = cpp.DTYPE_TO_CPP[dtype], counts(src_dtype)
        if n == 1:
            return f"at::vec::cast<{dst}>({x})"
        parts = " ".join(f"r[{k}] = at::vec::cast<{dst}>({x}[{k}]);" for k in range(n))
        return f"[&]() {{ at::vec::VectorizedN<{dst},{n}> r; {parts} return r; }}()"

    vec.to_dtype_bitcast = staticmethod(to_dtype_bitcast)


def kernel(make: Callable[..., Callable[..., Any]], flags: tuple, compiled: bool,
           static_shape: tuple[int, ...] | None = None, recompute: bool = True,
           vectorise: bool = False) -> Callable[..., Any]:
    """The kernel ``make(*flags)``, compiled once per flags tuple when ``compiled``.

    With ``static_shape`` the kernel is compiled for that shape only (its own entry and code
    object): inductor's code for the factored kernels (2-D reductions, sign packing) is ~10x
    slower on CPU when the sizes are symbolic. ``recompute=False`` lets inductor store
    intermediates: a kernel with chained row and column reductions (the matrix features)
    otherwise recomputes the whole update inside every reduction loop (30-100x slower on CPU).
    ``vectorise``: inductor's CPU backend vectorises the loops even where its heuristic counts
    many non-contiguous index expressions (in-kernel bit unpacking, computed codes, the
    counter-based draws) and would emit scalar loops, 4x slower for Automagic's step and 1.3x
    for CAME's residual reduction.
    """
    key = (make, flags, compiled, static_shape, recompute, vectorise)
    fn = _CACHE.get(key)
    if fn is None:
        fn = make(*flags)
        if compiled:
            _install_vector_bitcast()
            static = static_shape is not None
            options = {**(_recompute_options() if recompute else {}),
                       **({"cpp.enable_tiling_heuristics": False} if vectorise else {})}
            fn = torch.compile(_own_code(fn, len(_CACHE)), dynamic=not static, fullgraph=True,
                               options=options or None)
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
