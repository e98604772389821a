"""The shell every ``fast`` optimizer shares: validation from ``spec``, the optimizer's own
random generators (saved in the state_dict), dtype-preserving load, and the step loop."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import torch

from fast.rounding import draw_bits
from spec.hparams.core import Constraint, Hyperparameter

RNG_KEY = "rng"


class _Kept:
    """Hides a state tensor from ``Optimizer.load_state_dict``'s cast to the param dtype."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor


class FastOptimizer(torch.optim.Optimizer):
    """Base class. Subclasses set the spec tables and implement ``_update(p, grad, group, state)``."""

    HYPERPARAMETERS: ClassVar[Mapping[str, Hyperparameter]]  # per param group
    RUNTIME: ClassVar[Mapping[str, Hyperparameter]]  # per optimizer
    CONSTRAINTS: ClassVar[Sequence[Constraint]] = ()

    def __init__(self, params: Iterable[Any], **hyper: Any) -> None:
        known = {**self.HYPERPARAMETERS, **self.RUNTIME}
        unknown = set(hyper) - set(known)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown argument(s) {sorted(unknown)}")
        values = {h.name: h.default for h in known.values()}
        values.update(hyper)
        for name in self.RUNTIME:
            setattr(self, name, self.RUNTIME[name].validate(values.pop(name)))
        defaults = {name: self.HYPERPARAMETERS[name].validate(v) for name, v in values.items()}
        self._generators: dict[str, torch.Generator] = {}
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            for name, h in self.HYPERPARAMETERS.items():
                group[name] = h.validate(group[name])
            for constraint in self.CONSTRAINTS:
                constraint.check(group)
            for p in group["params"]:
                if not p.is_floating_point() or p.is_complex():
                    raise ValueError(
                        f"{type(self).__name__} supports real floating-point parameters only; "
                        f"got a parameter of dtype {p.dtype}"
                    )
        except (TypeError, ValueError):
            self.param_groups.pop()
            raise

    # -- randomness -------------------------------------------------------------------------
    def generator(self, device: torch.device) -> torch.Generator:
        """The optimizer's generator for ``device``, seeded with ``seed`` on first use."""
        key = str(device)
        gen = self._generators.get(key)
        if gen is None:
            gen = torch.Generator(device=device)
            gen.manual_seed(self.seed)
            self._generators[key] = gen
        return gen

    def rounding_bits(self, p: torch.Tensor) -> torch.Tensor:
        """Stochastic-rounding draws for ``p`` (a seam: tests inject or record bits here)."""
        return draw_bits(p.numel(), self.generator(p.device), p.device)

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd[RNG_KEY] = {dev: gen.get_state() for dev, gen in self._generators.items()}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        rng = state_dict.pop(RNG_KEY, {})
        state_dict["state"] = {
            k: {n: _Kept(x) if torch.is_tensor(x) else x for n, x in st.items()}
            for k, st in state_dict["state"].items()
        }
        super().load_state_dict(state_dict)
        for p, st in self.state.items():
            for name, x in st.items():
                if isinstance(x, _Kept):
                    st[name] = x.tensor.to(device=p.device, copy=True)
        self._generators = {}
        for dev, gen_state in rng.items():
            try:
                self.generator(torch.device(dev)).set_state(gen_state)
            except RuntimeError as err:  # e.g. a CUDA checkpoint resumed without CUDA
                warnings.warn(f"generator state for {dev} not restored: {err}", stacklevel=2)

    # -- stepping ---------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.step_parameter(p, group)
        return loss

    @torch.no_grad()
    def step_parameter(self, p: torch.Tensor, group: dict[str, Any]) -> None:
        """Update one parameter from ``p.grad`` (usable from a post-accumulate-grad hook)."""
        grad = p.grad
        if grad is None:
            return
        if grad.is_sparse:
            raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
        self._update(p, grad, group, self.state[p])

    def _update(self, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], state: dict) -> None:
        raise NotImplementedError
