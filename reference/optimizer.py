"""The reference optimizer shell: param groups, validation from ``spec``, the write.

Subclasses define ``HYPERPARAMETERS`` (the spec table), ``CONSTRAINTS``, ``SLOTS`` (the
states they keep, spec.storage_layout.Slot) and ``update(p, g, store, hyper)`` returning the
new parameter value in float64 (before the write); ``store`` (reference.storage.StateStore)
holds the step count in ``store.state`` and decodes/encodes the states in their formats.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from reference.rounding import PARAM_DTYPES, write
from reference.storage import StateStore
from spec.hparams.core import Constraint, Hyperparameter, shared_message
from spec.storage_layout import SR_BITS, Format, Slot, resolve


class ReferenceOptimizer:
    HYPERPARAMETERS: ClassVar[Mapping[str, Hyperparameter]]
    CONSTRAINTS: ClassVar[Sequence[Constraint]] = ()
    SLOTS: ClassVar[Sequence[Slot]] = ()
    # spec's rule for which SLOTS a group keeps (None: all of them).
    KEPT_SLOTS: ClassVar[Callable[[Any], Sequence[Slot]] | None] = None

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
            for name, h in self.HYPERPARAMETERS.items():
                if not h.group_level and resolved[name] != self.defaults[name]:
                    raise ValueError(shared_message(type(self).__name__, name, resolved[name], self.defaults[name]))
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
        draws: Sequence[Mapping[str, np.ndarray] | None] | None = None,
    ) -> None:
        """One step. ``grads[i] is None`` skips parameter i (its step count does not advance).

        ``draws[i]`` maps a purpose ("param" for the stochastic write of a bfloat16 parameter,
        else the name of a stochastically stored state) to its random integers in [0, 2^16),
        one per element; missing ones are drawn from the seeded generator.
        """
        if len(grads) != len(self.params):
            raise ValueError(f"got {len(grads)} gradients for {len(self.params)} parameters")
        for group in self.param_groups:
            for i in group["indices"]:
                if grads[i] is None:
                    continue
                given = {} if draws is None or draws[i] is None else draws[i]

                def draw(purpose: str, n: int, given: Mapping[str, np.ndarray] = given) -> np.ndarray:
                    if purpose in given:
                        return np.asarray(given[purpose]).reshape(-1)
                    return self._rng.integers(0, 2**SR_BITS, size=n)

                g = np.asarray(grads[i], dtype=np.float64).reshape(self.params[i].shape)
                store = StateStore(self.state[i], self.formats(i, group), self.params[i].shape, draw)
                if not store.state:
                    store.state["step"] = 0
                    store.init()
                P = self.update(self.params[i], g, store, group)
                dtype = self.param_dtypes[i]
                stochastic = dtype == "bfloat16" and group["stochastic_rounding"]
                bits = draw("param", P.size) if stochastic else None
                self.params[i] = np.asarray(write(np.asarray(P), dtype, stochastic=stochastic, bits=bits))
        self.end_step()

    def end_step(self) -> None:
        """Called once after every parameter of a step (Prodigy updates its d here)."""

    def active_slots(self, hyper: Mapping[str, Any]) -> Sequence[Slot]:
        return self.SLOTS if self.KEPT_SLOTS is None else self.KEPT_SLOTS(hyper)

    def formats(self, i: int, group: Mapping[str, Any]) -> dict[str, Format]:
        """The storage format of each state of parameter ``i`` (spec.storage_layout.resolve)."""
        p = self.params[i]
        return {
            slot.name: resolve(slot, self.param_dtypes[i], p.ndim, p.size, dict(group), group["stochastic_rounding"])
            for slot in self.active_slots(group)
        }

    def update(
        self, p: np.ndarray, g: np.ndarray, store: StateStore, hyper: Mapping[str, Any]
    ) -> np.ndarray:
        raise NotImplementedError
