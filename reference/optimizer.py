"""The reference optimizer shell: param groups, validation from ``spec``, Kourkoutas-beta's
buckets, the write.

Subclasses define ``HYPERPARAMETERS`` (the spec table), ``CONSTRAINTS``, ``SLOTS`` (the
states they keep, spec.storage_layout.Slot) and ``update(p, g, store, hyper)`` returning the
new parameter value in float64 (before the write); ``store`` (reference.storage.StateStore)
holds the step count in ``store.state`` and decodes/encodes the states in their formats.
With Kourkoutas-beta, ``hyper`` also holds this step's ``kourkoutas_beta2_t`` and
``kourkoutas_beta2_prod`` of the parameter (reference.directions.second_moment_beta).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from reference import counter_rng
from reference.directions import kourkoutas_beta2_from_r, kourkoutas_r
from reference.rounding import PARAM_DTYPES, write
from reference.storage import StateStore
from spec.counter_rng import PARAM_PURPOSE, SIGN_PURPOSE, state_purpose
from spec.hparams.core import Constraint, Hyperparameter, shared_message
from spec.storage_layout import Format, Slot, resolve


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
        self.seed = int(self.defaults.get("seed", 0))
        self.buckets = self._kourkoutas_buckets(self.defaults.get("layer_key_fn"))

    def _kourkoutas_buckets(self, key_fn: Callable[[np.ndarray], Hashable] | None) -> dict[Hashable, list[int]]:
        """Kourkoutas-beta's buckets: the indices of the parameters (of every group that enables
        it) that share one gradient norm and one r. ``layer_key_fn(p)`` is called once per tensor,
        here; without it every tensor is its own bucket."""
        groups = [g for g in self.param_groups if g.get("kourkoutas_beta", False)]
        if key_fn is not None and not groups:
            raise ValueError(f"Contradictory arguments layer_key_fn={key_fn!r}, kourkoutas_beta=False: "
                             "layer_key_fn groups tensors for Kourkoutas-beta; no param group enables it")
        buckets: dict[Hashable, list[int]] = {}
        for group in groups:
            for i in group["indices"]:
                key = ("tensor", i) if key_fn is None else ("key", key_fn(self.params[i]))
                buckets.setdefault(key, []).append(i)
        return buckets

    def kourkoutas_step(self, grads: Sequence[np.ndarray | None]) -> dict[int, dict[str, float]]:
        """Kourkoutas-beta before the step's parameters (spec/directions.md): per bucket with a
        gradient, rho = sqrt(sum ||g||^2) over the raw gradients it has, r updated with the
        ema_alpha of its first tensor's group and stored as ``kourkoutas_r`` in every member's
        state; per parameter with a gradient, beta2_t (its own group's hyperparameters, t its
        step after this one) and the product ``kourkoutas_beta2_prod`` including it. Returns
        the values the parameters' updates read, by index."""
        group_of = {i: g for g in self.param_groups for i in g["indices"]}
        out: dict[int, dict[str, float]] = {}
        for members in self.buckets.values():
            live = [i for i in members if grads[i] is not None]
            if not live:
                continue
            rho = math.sqrt(sum(float(np.sum(np.square(np.asarray(grads[i], dtype=np.float64)))) for i in live))
            r = self.state[members[0]].get("kourkoutas_r", 0.0)
            r_new = kourkoutas_r(rho, r, group_of[members[0]]["ema_alpha"])
            for i in members:
                self.state[i]["kourkoutas_r"] = r_new
            for i in live:
                state = self.state[i]
                beta2_t = kourkoutas_beta2_from_r(rho, r_new, state.get("step", 0) + 1, group_of[i])
                state["kourkoutas_beta2_prod"] = state.get("kourkoutas_beta2_prod", 1.0) * beta2_t
                out[i] = {"kourkoutas_beta2_t": beta2_t, "kourkoutas_beta2_prod": state["kourkoutas_beta2_prod"]}
        return out

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
        "sign" for the stochastic sign, else the name of a stochastically stored state) to its
        random integers in [0, 2^16), one per element; missing ones are computed by the
        counter-based generator (reference.counter_rng) from the seed, the parameter's key
        ``rng_key`` (its position in ``params``), the step of this update (1 on its first) and
        the purpose, exactly as ``fast`` computes them in its kernels.
        """
        if len(grads) != len(self.params):
            raise ValueError(f"got {len(grads)} gradients for {len(self.params)} parameters")
        kourkoutas = self.kourkoutas_step(grads)
        for group in self.param_groups:
            for i in group["indices"]:
                if grads[i] is None:
                    continue
                state = self.state[i]
                given = {} if draws is None or draws[i] is None else draws[i]
                # The step of this update, fixed before it runs: an update may draw before or
                # after it advances state["step"], and fast keys every draw of a step by it.
                t = state.get("step", 0) + 1

                def draw(purpose: str, n: int, given: Mapping[str, np.ndarray] = given, state: dict = state,
                         t: int = t) -> np.ndarray:
                    if purpose in given:
                        return np.asarray(given[purpose]).reshape(-1)
                    return counter_rng.draws(self.seed, state["rng_key"], t, self.purpose(purpose), n)

                g = np.asarray(grads[i], dtype=np.float64).reshape(self.params[i].shape)
                store = StateStore(state, self.formats(i, group), self.params[i].shape, draw)
                if "step" not in state:  # (Kourkoutas-beta may have written its keys first)
                    state["step"] = 0
                    state["rng_key"] = i  # the parameter's position: its random streams' key
                    store.init()
                hyper = {**group, **kourkoutas[i]} if i in kourkoutas else group
                P = self.update(self.params[i], g, store, hyper)
                if state["step"] != t:
                    raise RuntimeError(f"{type(self).__name__}.update left step={state['step']}, expected {t}")
                dtype = self.param_dtypes[i]
                stochastic = dtype == "bfloat16" and group["stochastic_rounding"]
                bits = draw("param", P.size) if stochastic else None
                self.params[i] = np.asarray(write(np.asarray(P), dtype, stochastic=stochastic, bits=bits))
        self.end_step()

    def purpose(self, name: str) -> int:
        """The counter-based generator's purpose of a draw named ``name`` (spec.counter_rng)."""
        if name == "param":
            return PARAM_PURPOSE
        if name == "sign":
            return SIGN_PURPOSE
        return state_purpose([slot.name for slot in self.SLOTS].index(name))

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
