"""The shell every ``fast`` optimizer shares: validation from ``spec``, the optimizer's own
counter-based random streams (seed and parameter keys; fast.counter_rng), dtype-preserving load, and
the step loop."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import torch

from fast import compile as kernels
from fast import counter_rng, storage
from fast.directions import make_orthograd_coef_kernel, make_orthograd_kernel
from fast.kourkoutas import Kourkoutas
from fast.step import MathFactory, make_column_kernel, make_step_kernel
from fast.write import compute_dtype, write_mode
from spec.hparams.core import Constraint, Hyperparameter, shared_message
from spec.storage_layout import STATE_FORMAT_VERSION, Format, Slot, resolve

LEGACY_RNG_KEY = "rng"
# Changing any of these changes which tensors a state holds, so a state_dict saved under
# one value cannot be loaded under another.
STORAGE_KEYS = ("state_precision", "factored_2nd", "vector_reshape", "mask_precision")
DTYPE_NAMES = {v: k for k, v in storage.DTYPES.items()}


def matrix_rows(p: torch.Tensor) -> int:
    """shape[0] of a tensor with >= 2 dims (the matrix features' (rows, -1) view), else 0."""
    return p.shape[0] if p.dim() >= 2 else 0


def orthograd_rows(p: torch.Tensor) -> int:
    """The rows of iterative OrthoGrad's matrix view, or 0 for the flattened form: 0-d and 1-D
    tensors, and views with a side of 1 (a vector in disguise, on which each projection along the
    side of 1 leaves -0.01 x and rounding grows 100x per round)."""
    rows = matrix_rows(p)
    return rows if 1 < rows < p.numel() else 0


def whole_tensor_reductions(group: dict[str, Any], p: torch.Tensor) -> bool:
    """Whether ``p``'s step kernel reduces over the whole tensor (Cautious's mean, Lion-K's norm,
    the matrix features' row and column statistics; OrthoGrad's are added by the caller). Such
    kernels are compiled per shape: with symbolic sizes inductor emits each reduction as a
    single-block loop, which on an H100 made a Cautious AdamW step 12x slower than without it."""
    return bool(group.get("cautious") or group.get("projected_adaptivity") or group.get("kappa_p", 1.0) != 1.0
                or (p.dim() >= 2 and group.get("stochastic_sign")))


def matrix_features(group: dict[str, Any], p: torch.Tensor) -> bool:
    """Whether ``p``'s kernel chains row and column reductions (stochastic sign, projected
    adaptivity and iterative OrthoGrad on tensors with >= 2 dims)."""
    return p.dim() >= 2 and bool(group.get("stochastic_sign") or group.get("projected_adaptivity")
                                 or group.get("orthograd") == "iterative")


def orthograd_gradient(p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], compiled: bool) -> torch.Tensor:
    """OrthoGrad's g' as a new tensor in the compute dtype (``grad`` when OrthoGrad is off or
    ``p`` has at most one element), for optimizers whose statistics read it outside the step kernel."""
    mode = group.get("orthograd")
    if mode is None or p.numel() <= 1:  # one coordinate has no direction orthogonal to w
        return grad
    fn = kernels.kernel(make_orthograd_kernel, (mode, orthograd_rows(p)), compiled, static_shape=(p.numel(),),
                        recompute=not matrix_features(group, p))
    return fn(p.detach().reshape(-1), grad.reshape(-1)).view(grad.shape)


def constructor_arguments(local: dict[str, Any]) -> dict[str, Any]:
    """A subclass constructor's ``locals()`` as the hyperparameters for ``FastOptimizer``: the
    signatures stay explicit (help(), IDEs, the docs) without repeating every name to forward it."""
    return {k: v for k, v in local.items() if k not in ("self", "params", "__class__")}


class _Kept:
    """Hides a state tensor from ``Optimizer.load_state_dict``'s cast to the param dtype."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor


class FastOptimizer(torch.optim.Optimizer):
    """Base class. Subclasses set the spec tables and ``SLOTS`` and implement
    ``_update(p, grad, group, state)``, usually by calling ``_run_step`` with their math."""

    HYPERPARAMETERS: ClassVar[Mapping[str, Hyperparameter]]  # per param group
    RUNTIME: ClassVar[Mapping[str, Hyperparameter]]  # per optimizer
    CONSTRAINTS: ClassVar[Sequence[Constraint]] = ()
    SLOTS: ClassVar[Sequence[Slot]] = ()
    # spec's rule for which SLOTS a group keeps (None: all of them).
    KEPT_SLOTS: ClassVar[Callable[[Any], Sequence[Slot]] | None] = None

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
        self._scalars: dict[tuple, torch.Tensor] = {}
        self._positions: dict[int, int] | None = None  # id(param) -> position (param_key)
        self._kourkoutas: Kourkoutas | None = None
        super().__init__(params, defaults)
        if getattr(self, "layer_key_fn", None) is not None and not any(
                g.get("kourkoutas_beta", False) for g in self.param_groups):
            raise ValueError(f"Contradictory arguments layer_key_fn={self.layer_key_fn!r}, kourkoutas_beta=False: "
                             "layer_key_fn groups tensors for Kourkoutas-beta; no param group enables it")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            for name in self.RUNTIME:
                if name in param_group and param_group[name] != getattr(self, name):
                    raise ValueError(f"{name}={param_group[name]!r} in a param group: {name} is one setting of the "
                                     f"whole optimizer; pass it to {type(self).__name__}(...)")
            for name, h in self.HYPERPARAMETERS.items():
                group[name] = h.validate(group[name])
                if not h.group_level and group[name] != self.defaults[name]:
                    raise ValueError(shared_message(type(self).__name__, name, group[name], self.defaults[name]))
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
        self._kourkoutas = None  # the buckets are rebuilt with the new group
        self._positions = None

    # -- randomness -------------------------------------------------------------------------
    def param_key(self, p: torch.Tensor) -> int:
        """``p``'s position in the flattened parameter order: its random streams' key, fixed when
        its state is created (add_param_group only appends, so keys never move)."""
        if self._positions is None:
            flat = (q for group in self.param_groups for q in group["params"])
            self._positions = {id(q): k for k, q in enumerate(flat)}
        return self._positions[id(p)]

    def stream_keys(self, p: torch.Tensor, state: dict) -> torch.Tensor:
        """This step's stream keys of ``p`` (every purpose), from the seed, its key and its step:
        the kernels draw their random integers from them (fast.counter_rng)."""
        return counter_rng.key_tensor(self.seed, state["rng_key"], state["step"], len(self.SLOTS), p.device)

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd[storage.FORMAT_KEY] = STATE_FORMAT_VERSION
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        storage.check_format_version(type(self).__name__, state_dict)
        state_dict.pop(storage.FORMAT_KEY, None)
        for i, (saved, group) in enumerate(zip(state_dict["param_groups"], self.param_groups)):
            for key in STORAGE_KEYS:
                if key in group and saved.get(key, group[key]) != group[key]:
                    raise ValueError(
                        f"{type(self).__name__}.load_state_dict: param group {i} was saved with "
                        f"{key}={saved.get(key)!r} but this optimizer uses {key}={group[key]!r}; the "
                        "stored states have a different layout. Construct the optimizer with the "
                        "saved value to resume."
                    )
        state_dict.pop(LEGACY_RNG_KEY, None)  # older releases' generator states: draws are counter-based now
        state_dict["state"] = {
            k: {n: _Kept(x) if torch.is_tensor(x) else x for n, x in st.items()}
            for k, st in state_dict["state"].items()
        }
        super().load_state_dict(state_dict)
        for p, st in self.state.items():
            for name, x in st.items():
                if isinstance(x, _Kept):
                    st[name] = x.tensor.to(device=p.device, copy=True)

    # -- stepping ---------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        kourkoutas = self._kourkoutas_buckets()
        if kourkoutas is not None:
            kourkoutas.prepare()
        try:
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        self.step_parameter(p, group)
        finally:
            if kourkoutas is not None:
                kourkoutas.finish()
        return loss

    def _kourkoutas_buckets(self) -> Kourkoutas | None:
        if not any(g.get("kourkoutas_beta", False) for g in self.param_groups):
            return None
        if self._kourkoutas is None:
            self._kourkoutas = Kourkoutas(self, getattr(self, "layer_key_fn", None))
        return self._kourkoutas

    def beta2_and_bc2(self, p: torch.Tensor, group: dict[str, Any], state: dict, t: int) -> tuple[float, float]:
        """This step's beta2 of ``p`` and the bias correction 1 - prod(beta2) of its second
        moment: Kourkoutas-beta's dynamic values, else betas[1] and 1 - betas[1]^t."""
        beta2 = group["betas"][1]
        if not group.get("kourkoutas_beta", False):
            return beta2, 1 - beta2**t
        return self._kourkoutas_buckets().beta2(p, group, state, t)

    @torch.no_grad()
    def step_parameter(self, p: torch.Tensor, group: dict[str, Any] | None = None, i: int | None = None) -> None:
        """Update one parameter from ``p.grad`` (usable from a post-accumulate-grad hook).

        ``group``: the param group holding ``p`` (found from ``p`` when None). ``i``: accepted
        for OneTrainer's fused back pass, which passes the parameter's index in its group; the
        step does not need it. Per-optimizer statistics that span tensors (Prodigy's d,
        Kourkoutas-beta's buckets) are finished by ``step()`` or the optimizer's ``end_step()``.
        """
        if group is None:
            group = self.group_of(p)
        grad = p.grad
        if grad is None:
            return
        if grad.is_sparse:
            raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
        self._update(p, grad, group, self.state[p])

    def step_param(self, p: torch.Tensor, group: dict[str, Any] | None = None) -> None:
        """``step_parameter`` under the name kohya's sd-scripts calls in its fused back pass."""
        self.step_parameter(p, group)

    def group_of(self, p: torch.Tensor) -> dict[str, Any]:
        """The param group that holds ``p`` (ValueError if none does)."""
        for group in self.param_groups:
            if any(q is p for q in group["params"]):
                return group
        raise ValueError(f"{type(self).__name__}: the tensor of shape {tuple(p.shape)} is not in any param group")

    def _update(self, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], state: dict) -> None:
        raise NotImplementedError

    # -- the shared step -------------------------------------------------------------------
    def scalars(self, p: torch.Tensor, lr_wd: float, values: Sequence[float],
                dtype: torch.dtype | None = None) -> torch.Tensor:
        """The kernel's scalar tensor [lr*wd, *values] in ``p``'s compute dtype (or ``dtype``),
        cached: a tensor argument (not Python floats) lets schedules change numbers without
        recompiling."""
        cdt = dtype or compute_dtype(p.dtype)
        key = (lr_wd, tuple(values), p.device, cdt)
        s = self._scalars.get(key)
        if s is None:
            if len(self._scalars) > 256:
                self._scalars.clear()
            s = self._scalars[key] = torch.tensor((lr_wd, *values), dtype=cdt, device=p.device)
        return s

    def active_slots(self, group: dict[str, Any]) -> Sequence[Slot]:
        """The states kept under ``group``'s hyperparameters (all of ``SLOTS`` by default)."""
        return self.SLOTS if self.KEPT_SLOTS is None else self.KEPT_SLOTS(group)

    def formats(self, p: torch.Tensor, group: dict[str, Any]) -> tuple[Format | None, ...]:
        """Each slot's storage format for ``p`` (None for a slot not kept)."""
        active = self.active_slots(group)
        return tuple(
            resolve(slot, DTYPE_NAMES[p.dtype], p.dim(), p.numel(), group, self.stochastic_rounding)
            if slot in active else None
            for slot in self.SLOTS
        )

    def init_state(self, p: torch.Tensor, state: dict, formats: tuple[Format | None, ...],
                   group: dict[str, Any]) -> None:
        """On ``p``'s first step: its step count, stream key and zero states in their formats."""
        if "step" not in state:
            state["step"] = 0
            state["rng_key"] = self.param_key(p)
            for slot, fmt in zip(self.SLOTS, formats):
                if fmt is not None:
                    state.update(zip(fmt.keys(slot.name), storage.allocate(fmt, p)))

    def _run_step(
        self, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any], state: dict,
        make_math: MathFactory, math_flags: tuple, scalars: torch.Tensor, decay: bool = True,
        ortho: bool = True, aux: tuple[torch.Tensor, ...] | None = None, shape: tuple[int, ...] | None = None,
    ) -> None:
        """Initialise the states if needed, advance ``step`` and run the fused kernel.

        ``scalars[0]`` must be lr * weight_decay; the rest go to the optimizer's math.
        ``decay=False`` skips weight decay this step (Adopt's initialising first step);
        ``ortho=False``: the caller has applied OrthoGrad to ``grad`` already. ``aux`` goes to the
        math as its fifth argument; ``shape`` replaces the storage layer's working shape (the
        kernel is then compiled for it: the Adafactor family's (batch, rows, columns)).
        """
        formats = self.formats(p, group)
        self.init_state(p, state, formats, group)
        state["step"] += 1
        if p.numel() == 0:
            return
        mode = write_mode(p.dtype, self.stochastic_rounding)
        factored = [f is not None and f.kind == "factored" for f in formats]
        given_shape = shape is not None
        shape = shape if given_shape else storage.working_shape(p.numel(), formats)
        pre = (group.get("orthograd") if ortho and p.numel() > 1 else None, orthograd_rows(p))
        static = any(factored) or whole_tensor_reductions(group, p) or pre[0] is not None or given_shape
        recompute = not matrix_features(group, p)
        sign_noise = bool(group.get("stochastic_sign", False)) and p.dim() >= 2
        fn = kernels.kernel(
            make_step_kernel,
            (make_math, tuple(math_flags), formats, decay and group["weight_decay"] > 0,
             group.get("cautious_wd", False), mode, p.dtype, pre, sign_noise),
            self.compiled_optimizer,
            static_shape=shape if static else None,
            recompute=recompute,
            vectorise=any(f is not None and f.kind in ("mask8", "bits") for f in formats),
        )
        stored = tuple(
            None if f is None else storage.kernel_views(f, [state[k] for k in f.keys(slot.name)], shape)
            for slot, f in zip(self.SLOTS, formats)
        )
        keys = self.stream_keys(p, state)
        # Detached: the kernel must not see p.grad (an fp32 gradient of a bf16 parameter, from
        # grad_dtype, would fail dynamo's fake-tensor copy of the parameter).
        flat = p.detach().view(shape) if p.is_contiguous() else p.detach().contiguous().view(shape)
        g = grad.reshape(shape)
        sums = (None,) * len(formats)
        coef = None
        if (pre[0] == "flattened" or (pre[0] == "iterative" and not pre[1])) and p.device.type == "cpu":
            # On CPU inductor would redo the coefficients' scalar arithmetic per element inside the
            # step kernel (2x its time); on CUDA that is free and a second kernel call is not.
            coef = kernels.kernel(make_orthograd_coef_kernel, (), self.compiled_optimizer,
                                  static_shape=(p.numel(),))(flat.view(-1), g.view(-1))
        if any(factored):  # before the step kernel: it reads the old states and parameter
            reduce = kernels.kernel(make_column_kernel, (make_math, tuple(math_flags), formats, p.dtype, pre,
                                                         sign_noise),
                                    self.compiled_optimizer, static_shape=shape, recompute=recompute)
            sums = reduce(flat, g, stored, scalars, keys, coef)
        fn(flat, g, stored, scalars, keys, coef, aux)
        if flat.data_ptr() != p.data_ptr():
            p.copy_(flat.view_as(p))
        for f, t, total in zip(formats, stored, sums):
            if f is not None:
                storage.finish(f, t, total)
