"""The reference optimizer shell: param groups, validation from ``spec``, the write.

Subclasses define ``HYPERPARAMETERS`` (the spec table), ``CONSTRAINTS`` and
``update(p, g, state, hyper)`` returning the new parameter value in float64 (before the
write) and mutating ``state``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from reference.rounding import PARAM_DTYPES, write
from spec.hparams.core import Constraint, Hyperparameter


class ReferenceOptimizer:
    HYPERPARAMETERS: ClassVar[Mapping[str, Hyperparameter]]
    CONSTRAINTS: ClassVar[Sequence[Constraint]] = ()

    def __init__(
        self,
        params: Sequence[Any],
        *,
        param_dtype: str | Sequence[str] = "float64",
        **hyper: Any,
    ) -> None:
        defaults = {h.name: h.default for h in self.HYPERPARAMETERS.values()}
        unknown = set(hyper) - set(defaults)
        if unknown:
            raise TypeError(f"Unknown hyperparameter(s) {sorted(unknown)}")
        defaults.update(hyper)
        self.defaults = self._validated(defaults)
        groups = params if params and isinstance(params[0], Mapping) else [{"params": params}]
        self.param_groups: list[dict[str, Any]] = []
        self.params: list[np.ndarray] = []
        for group in groups:
            overrides = {k: v for k, v in group.items() if k != "params"}
            resolved = self._validated({**self.defaults, **overrides})
            first = len(self.params)
            self.params.extend(np.array(a, dtype=np.float64) for a in group["params"])
            resolved["indices"] = list(range(first, len(self.params)))
            self.param_groups.append(resolved)
        dtypes = [param_dtype] * len(self.params) if isinstance(param_dtype, str) else param_dtype
        if len(dtypes) != len(self.params) or any(d not in PARAM_DTYPES for d in dtypes):
            raise ValueError(f"Invalid param_dtype={param_dtype!r}: one of {PARAM_DTYPES} per param")
        self.param_dtypes = list(dtypes)
        self.state: list[dict[str, Any]] = [{} for _ in self.params]
        self._rng = np.random.default_rng(self.defaults.get("seed", 0))

    def _validated(self, values: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for name, value in values.items():
            out[name] = self.HYPERPARAMETERS[name].validate(value) if name in self.HYPERPARAMETERS else value
        for constraint in self.CONSTRAINTS:
            constraint.check(out)
        return out

    def step(
        self,
        grads: Sequence[np.ndarray | None],
        rounding_bits: Sequence[np.ndarray | None] | None = None,
    ) -> None:
        """One step. ``grads[i] is None`` skips parameter i (its step count does not advance).

        ``rounding_bits[i]`` are the stochastic-rounding draws (integers in [0, 2^16), one per
        element) for a bfloat16 parameter; missing ones are drawn from the seeded generator.
        """
        if len(grads) != len(self.params):
            raise ValueError(f"got {len(grads)} gradients for {len(self.params)} parameters")
        for group in self.param_groups:
            for i in group["indices"]:
                if grads[i] is None:
                    continue
                g = np.asarray(grads[i], dtype=np.float64).reshape(self.params[i].shape)
                P = self.update(self.params[i], g, self.state[i], group)
                dtype = self.param_dtypes[i]
                stochastic = dtype == "bfloat16" and group["stochastic_rounding"]
                bits = None if rounding_bits is None else rounding_bits[i]
                if stochastic and bits is None:
                    bits = self._rng.integers(0, 2**16, size=P.shape)
                self.params[i] = np.asarray(write(np.asarray(P), dtype, stochastic=stochastic, bits=bits))

    def update(
        self, p: np.ndarray, g: np.ndarray, state: dict[str, Any], hyper: Mapping[str, Any]
    ) -> np.ndarray:
        raise NotImplementedError
