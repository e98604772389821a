"""Runs ``fast`` and ``reference`` side by side on the same inputs and compares them.

Per-step mode re-syncs fast to the reference after every comparison (both continue from
identical values), so each check measures one step's error. Drift mode never re-syncs.
Stochastic-rounding bits are recorded from fast and injected into the reference, so bf16
parameters are compared bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from conformance.compare import as_array, assert_close
from conformance.inputs import SLOTS, grads_for_step, group_split, initial_values, make_params
from conformance.registry import Entry

PARAM_TOL = {
    "float64": ("fp64.step", None),
    "float32": ("fp32.step", None),
    "bfloat16": ("bf16_sr.param", "bf16_sr.one_ulp"),
    "float16": ("fp16.param", "fp16.one_ulp"),
}
STATE_TOL = {"float64": "fp64.step"}  # every other parameter dtype keeps fp32 states


@dataclass
class Pair:
    entry: Entry
    dtype: str
    fast_params: list[torch.Tensor]
    fast: torch.optim.Optimizer
    ref: Any
    bits: dict[int, torch.Tensor]


def build(entry: Entry, sample: str, dtype: str, *, compiled: bool = False, device: str = "cpu",
          seed: int = 0) -> Pair:
    hyper = dict(entry.samples[sample])
    params = make_params(initial_values(seed), dtype, device)
    groups = group_split(params)
    fast_opt = entry.fast(
        [{"params": groups[0]}, {"params": groups[1], **entry.group1}],
        compiled_optimizer=compiled, **hyper,
    )
    ref_values = [as_array(p) for p in params]
    ref_groups = group_split(ref_values)
    ref_opt = entry.reference(
        [{"params": ref_groups[0]}, {"params": ref_groups[1], **entry.group1}],
        param_dtype=dtype, **hyper,
    )
    pair = Pair(entry, dtype, params, fast_opt, ref_opt, {})
    original = fast_opt.rounding_bits

    def recording(p: torch.Tensor) -> torch.Tensor:
        bits = original(p)
        pair.bits[id(p)] = bits.clone()
        return bits

    fast_opt.rounding_bits = recording  # the seam the optimizer draws its SR bits through
    return pair


def step_both(pair: Pair, step: int, seed: int = 0) -> None:
    grads = grads_for_step(step, seed)
    ref_grads = []
    for p, g in zip(pair.fast_params, grads):
        if g is None:
            p.grad = None
            ref_grads.append(None)
        else:
            p.grad = torch.tensor(g, dtype=p.dtype, device=p.device)
            ref_grads.append(as_array(p.grad))
    pair.bits.clear()
    pair.fast.step()
    bits = [
        None if id(p) not in pair.bits else pair.bits[id(p)].cpu().numpy().reshape(p.shape)
        for p in pair.fast_params
    ]
    pair.ref.step(ref_grads, rounding_bits=bits)


def compare(pair: Pair, label: str, param_tol: tuple[str, str | None] | None = None,
            state_tol: str | None = None) -> None:
    e = pair.entry
    p_tol, p_ulp = param_tol or PARAM_TOL[pair.dtype]
    s_tol = state_tol or STATE_TOL.get(pair.dtype, "fp32.step")
    for i, p in enumerate(pair.fast_params):
        where = f"{label} param {i} {SLOTS[i].shape} {pair.dtype}"
        assert_close(p, pair.ref.params[i], e.tol_id(p_tol), where, e.tol_id(p_ulp) if p_ulp else None)
        fast_state, ref_state = pair.fast.state.get(p, {}), pair.ref.state[i]
        if set(fast_state) != set(ref_state):
            raise AssertionError(f"{where}: state keys {sorted(fast_state)} != {sorted(ref_state)}")
        for key, expected in ref_state.items():
            actual = fast_state[key]
            if not isinstance(expected, np.ndarray):
                if actual != expected:
                    raise AssertionError(f"{where}: state {key} = {actual!r}, expected {expected!r}")
                continue
            assert_close(actual, expected, e.tol_id(s_tol), f"{where} state {key}")


def resync(pair: Pair) -> None:
    """Make fast and reference hold identical values (the fast dtype's rounding of ref)."""
    with torch.no_grad():
        for i, p in enumerate(pair.fast_params):
            p.copy_(torch.from_numpy(pair.ref.params[i]).to(p.dtype))
            pair.ref.params[i] = as_array(p)
            for key, value in pair.ref.state[i].items():
                if isinstance(value, np.ndarray):
                    st = pair.fast.state[p][key]
                    st.copy_(torch.from_numpy(value).to(st.dtype))
                    pair.ref.state[i][key] = as_array(st)


def run_per_step(entry: Entry, sample: str, dtype: str, *, steps: int = 5, compiled: bool = False,
                 device: str = "cpu") -> None:
    pair = build(entry, sample, dtype, compiled=compiled, device=device)
    for step in range(steps):
        step_both(pair, step)
        compare(pair, f"{entry.name}[{sample}] step {step + 1}")
        resync(pair)


def run_drift(entry: Entry, sample: str, *, steps: int = 25) -> None:
    pair = build(entry, sample, "float32")
    for step in range(steps):
        step_both(pair, step)
    compare(pair, f"{entry.name}[{sample}] after {steps} steps without re-sync",
            param_tol=("fp32.drift", None), state_tol="fp32.drift")
