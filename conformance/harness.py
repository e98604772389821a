"""Runs ``fast`` and ``reference`` side by side on the same inputs and compares them.

Per-step mode re-syncs fast to the reference after every comparison (both continue from
identical values), so each check measures one step's error. Drift mode never re-syncs.
Every random draw (stochastic rounding of parameters and states, the codes of 8-bit and
4-bit states, the stochastic sign) comes from the counter-based generator, which fast computes
in its kernels and the reference in NumPy, so rounded values are compared bit for bit.
States are compared in their stored form: dense values, 8-bit and 4-bit codes and the
learning-rate mask's codes (as signed level indices) and scales, factors, unpacked sign bits
and freeze-on-flip bits, and Kourkoutas-beta's host scalars, each with its own tolerance id,
chosen through the run's tolerance classes
(conformance/features.py). ``build`` takes the registry's samples and inputs or any
hyperparameters and parameter layout (the generated designs and random runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from conformance.compare import as_array, assert_close
from conformance.features import resolve_tolerance, tolerance_classes
from conformance.inputs import SLOTS, Slot, grads_for_step, group_split, initial_values, make_params
from conformance.registry import Entry
from reference.codes import decode_fp16, unpack_nibbles
from reference.storage import unpack_signs
from spec.storage_layout import QUANTIZED, Format

PARAM_TOL = {
    "float64": ("fp64.step", None),
    "float32": ("fp32.step", None),
    "bfloat16": ("bf16_sr.param", "bf16_sr.one_ulp"),
    "float16": ("fp16.param", "fp16.one_ulp"),
}
DENSE_STATE_TOL = {
    "float64": ("fp64.step", None),
    "float32": ("fp32.state", None),
    "bfloat16": ("bf16.state", "bf16.state_one_ulp"),
    "float16": ("fp16.state", "fp16.state_one_ulp"),
}


@dataclass
class Pair:
    entry: Entry
    dtype: str
    fast_params: list[torch.Tensor]
    fast: torch.optim.Optimizer
    ref: Any
    bits: dict[tuple[int, str], torch.Tensor]
    slots: tuple[Slot, ...] = SLOTS
    classes: tuple[str, ...] = ()  # the hyperparameters' tolerance classes (features.tolerance_classes)

    def tid(self, what: str) -> str:
        """The tolerance id for ``what`` under this run's classes (features.resolve_tolerance)."""
        return resolve_tolerance(self.entry.name, self.classes, what)


def build(entry: Entry, sample: str, dtype: str, *, compiled: bool = False, device: str = "cpu",
          seed: int = 0, storage: str | None = None, hyper: dict[str, Any] | None = None,
          group1: dict[str, Any] | None = None, slots: tuple[Slot, ...] = SLOTS) -> Pair:
    """fast and reference on the same parameters: ``entry.samples[sample]`` (or ``hyper``) in
    group 0, with ``entry.group1`` (or ``group1``) on top in group 1."""
    hyper = dict(entry.samples[sample] if hyper is None else hyper)
    group1 = entry.group1 if group1 is None else group1
    if storage is not None:
        hyper.update(entry.storage[storage])
    params = make_params(initial_values(seed, slots), dtype, device, slots)
    groups = group_split(params, slots)
    fast_opt = entry.fast(
        [{"params": groups[0]}, {"params": groups[1], **group1}],
        compiled_optimizer=compiled, **hyper,
    )
    ref_values = [as_array(p) for p in params]
    ref_groups = group_split(ref_values, slots)
    ref_opt = entry.reference(
        [{"params": ref_groups[0]}, {"params": ref_groups[1], **group1}],
        param_dtype=dtype, **hyper,
    )
    pair = Pair(entry, dtype, params, fast_opt, ref_opt, {}, slots, tolerance_classes(hyper, [s.shape for s in slots]))
    return pair


def step_both(pair: Pair, step: int, seed: int = 0) -> None:
    grads = grads_for_step(step, seed, pair.entry.consistent_grads, pair.slots)
    ref_grads = []
    for p, g in zip(pair.fast_params, grads):
        if g is None:
            p.grad = None
            ref_grads.append(None)
        else:
            p.grad = torch.tensor(g, dtype=p.dtype, device=p.device)
            ref_grads.append(as_array(p.grad))
    pair.fast.step()
    pair.ref.step(ref_grads)  # the same counter-based draws, computed by each side


STORAGE_TOL_IDS = ("factor", "sign", "int8.code", "int8.one_code", "fp32.state")


def state_kinds(pair: Pair, i: int) -> dict[str, tuple[Format, str]]:
    """Each state key of parameter ``i`` -> (its format, its part: value/scale/row/col/sign)."""
    p = pair.fast_params[i]
    group = next(g for g in pair.fast.param_groups if any(q is p for q in g["params"]))
    out = {}
    for slot, fmt in zip(pair.fast.SLOTS, pair.fast.formats(p, group)):
        if fmt is not None:
            for key in fmt.keys(slot.name):
                out[key] = (fmt, key[len(slot.name):].lstrip("_") or "value")
    return out


def state_tolerance(pair: Pair, fmt: Format, part: str) -> tuple[str, str | None]:
    if fmt.kind == "factored":
        return ("sign", None) if part == "sign" else ("factor", None)
    if fmt.kind in QUANTIZED:
        return ("int8.code", "int8.one_code") if part == "value" else ("fp32.state", None)
    if fmt.kind == "mask8":
        return ("int8.code", "int8.one_code")
    if fmt.kind == "fp16":
        return DENSE_STATE_TOL["float16"] if part == "value" else ("fp32.state", None)
    if fmt.dtype == "float32" and pair.dtype == "float64":
        return ("fp32.state", None)
    return DENSE_STATE_TOL[fmt.dtype]


def _compare_state(pair: Pair, i: int, key: str, actual: torch.Tensor, expected: np.ndarray,
                   kind: tuple[Format, str], where: str) -> None:
    fmt, part = kind
    tol_id, ulp_id = state_tolerance(pair, fmt, part)
    if fmt.kind == "bits":  # freeze-on-flip's prev_sign: one bit per element, compared unpacked
        n = pair.fast_params[i].numel()
        if tuple(actual.shape) != expected.shape or actual.dtype != torch.uint8:
            raise AssertionError(f"{where}: packed bits {actual.dtype} {tuple(actual.shape)}, "
                                 f"expected uint8 {expected.shape}")
        # numpy's own little-endian unpacking: the format spec/state_storage.md names, checked
        # independently of reference.storage's packing.
        actual = np.unpackbits(actual.cpu().numpy(), count=n, bitorder="little").astype(np.float64)
        expected = np.unpackbits(expected, count=n, bitorder="little").astype(np.float64)
        assert_close(actual, expected, pair.tid("prev_sign"), where)
        return
    if fmt.kind in (*QUANTIZED, "mask8") and part == "value":
        if tuple(actual.shape) != expected.shape or actual.dtype != torch.uint8:
            raise AssertionError(f"{where}: codes {actual.dtype} {tuple(actual.shape)}, "
                                 f"expected uint8 {expected.shape}")
        n = pair.fast_params[i].numel()
        actual, expected = (code_index(fmt, c, n) for c in (actual.cpu().numpy(), expected))
    if fmt.kind == "fp16" and part == "value":  # in state units: the values times their block scales
        scale_key = key.removesuffix("_scale") + "_scale" if key.endswith("_scale") else f"{key}_scale"
        actual = decode_fp16(actual.cpu().numpy(), pair.fast.state[pair.fast_params[i]][scale_key].cpu().numpy())
        expected = decode_fp16(expected, pair.ref.state[i][scale_key])
    if part == "sign":
        if tuple(actual.shape) != expected.shape or actual.dtype != torch.uint8:
            raise AssertionError(
                f"{where}: packed signs {actual.dtype} {tuple(actual.shape)}, expected uint8 {expected.shape}"
            )
        d2 = pair.ref.state[i][key.replace("_sign", "_col")].shape[0]
        actual = unpack_signs(actual.cpu().numpy(), d2).astype(np.float64)
        expected = unpack_signs(expected, d2).astype(np.float64)
    assert_close(actual, expected, pair.tid(tol_id), where, pair.tid(ulp_id) if ulp_id else None)


def code_index(fmt: Format, stored: np.ndarray, n: int) -> np.ndarray:
    """The stored codes as signed level indices (float64): one level apart means 1 apart, also
    across zero, where sign-magnitude bytes jump."""
    c = (stored if fmt.kind in ("int8", "mask8") else unpack_nibbles(stored, n)).astype(np.int64)
    if fmt.signed:
        mags = fmt.code.magnitudes
        c = np.where(c >= mags, -(c - mags), c)
    return c.astype(np.float64)


def _compare_plain(pair: Pair, actual: torch.Tensor, expected: np.ndarray, state_tol: str | None,
                   where: str) -> None:
    """A state kept in a fixed dtype outside the storage layer, by that dtype's tolerance."""
    dtype = str(actual.dtype).removeprefix("torch.")
    if dtype == "float32":
        tol_id, ulp_id = (state_tol or "fp32.state"), None
    else:
        tol_id, ulp_id = DENSE_STATE_TOL[dtype]
    assert_close(actual, expected, pair.tid(tol_id), where, pair.tid(ulp_id) if ulp_id else None)


def compare(pair: Pair, label: str, param_tol: tuple[str, str | None] | None = None,
            state_tol: str | None = None) -> None:
    e = pair.entry
    p_tol, p_ulp = param_tol or PARAM_TOL[pair.dtype]
    for i, p in enumerate(pair.fast_params):
        where = f"{label} param {i} {tuple(p.shape)} {pair.dtype}"
        assert_close(p, pair.ref.params[i], pair.tid(p_tol), where, pair.tid(p_ulp) if p_ulp else None)
        fast_state, ref_state = pair.fast.state.get(p, {}), pair.ref.state[i]
        if set(fast_state) != set(ref_state):
            raise AssertionError(f"{where}: state keys {sorted(fast_state)} != {sorted(ref_state)}")
        kinds = state_kinds(pair, i) if ref_state else {}
        for key, expected in ref_state.items():
            actual = fast_state[key]
            if isinstance(expected, float):  # a host scalar (Kourkoutas-beta's r and beta2 product)
                host = state_tol or ("fp64.step" if pair.dtype == "float64" else "kourkoutas")
                assert_close(np.asarray(float(actual)), np.asarray(expected), pair.tid(host), f"{where} state {key}")
                continue
            if not isinstance(expected, np.ndarray):
                if actual != expected:
                    raise AssertionError(f"{where}: state {key} = {actual!r}, expected {expected!r}")
                continue
            if key not in kinds:  # a state outside the storage layer (Prodigy's s and p0)
                _compare_plain(pair, actual, expected, state_tol, f"{where} state {key}")
                continue
            if state_tol is not None and kinds[key][0].kind == "dense":
                assert_close(actual, expected, pair.tid(state_tol), f"{where} state {key}")
                continue
            _compare_state(pair, i, key, actual, expected, kinds[key], f"{where} state {key}")
    for j, (fg, rg) in enumerate(zip(pair.fast.param_groups, pair.ref.param_groups)):
        for key in e.group_state:
            assert_close(np.asarray(float(fg[key])), np.asarray(float(rg[key])),
                         pair.tid("drift.group" if state_tol else "group"), f"{label} group {j} {key}")


def resync(pair: Pair) -> None:
    """Make fast and reference hold identical values (the fast dtype's rounding of ref)."""
    for fg, rg in zip(pair.fast.param_groups, pair.ref.param_groups):
        for key in pair.entry.group_state:
            fg[key] = rg[key]
    with torch.no_grad():
        for i, p in enumerate(pair.fast_params):
            p.copy_(torch.from_numpy(pair.ref.params[i]).to(p.dtype))
            pair.ref.params[i] = as_array(p)
            for key, value in pair.ref.state[i].items():
                if isinstance(value, float):
                    pair.fast.state[p][key] = value
                elif isinstance(value, np.ndarray):
                    st = pair.fast.state[p][key]
                    st.copy_(torch.from_numpy(value).to(st.dtype))
                    integer = not st.is_floating_point()
                    pair.ref.state[i][key] = st.cpu().numpy().copy() if integer else as_array(st)


def run_per_step(entry: Entry, sample: str, dtype: str, *, steps: int = 5, compiled: bool = False,
                 device: str = "cpu", storage: str | None = None, **given: Any) -> Pair:
    """Step, compare every parameter and state, re-sync; ``given``: build's hyper/group1/slots."""
    pair = build(entry, sample, dtype, compiled=compiled, device=device, storage=storage, **given)
    label = f"{entry.name}[{sample}{'' if storage is None else ', ' + storage}]"
    for step in range(steps):
        step_both(pair, step)
        compare(pair, f"{label} step {step + 1}")
        resync(pair)
    return pair


def run_drift(entry: Entry, sample: str, *, steps: int = 25) -> None:
    pair = build(entry, sample, "float32")
    for step in range(steps):
        step_both(pair, step)
    compare(pair, f"{entry.name}[{sample}] after {steps} steps without re-sync",
            param_tol=("fp32.drift", None), state_tol="fp32.drift")
