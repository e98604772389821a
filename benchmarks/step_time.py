"""Optimizer step time and memory: fast.AdamW's state precisions vs torch.optim.AdamW and adv_optm's AdamW_adv.

Every candidate (one optimizer with its own copy of the model) lives in one process. After an
untimed warm-up (which compiles), candidates are timed in interleaved rounds (A B C, C B A, ...)
so slow drift of the machine hits all alike; the headline is each candidate's step time relative
to fused torch AdamW measured in the same round. Slow candidates take fewer steps, spread over
all rounds, so that a full run fits its time budget.

    .venv/bin/python benchmarks/step_time.py [--quick] [--budget S] [--steps N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import benchutil as bu
import torch
from torch._dynamo.utils import counters

import fast

HYPER: dict[str, Any] = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}
WARMUP = 2  # untimed: the first step allocates the state and compiles; the rest size the schedule
MIN_STEPS = 5  # timed steps of the slowest candidates
# (name shown, state_precision, factored_2nd); the same arguments go to fast.AdamW and AdamW_adv.
PRECISIONS: list[tuple[str, str, bool]] = [
    ("fp32", "fp32", False),
    ("bf16_sr", "bf16_sr", False),
    ("fp16", "fp16", False),
    ("int8_sr", "int8_sr", False),
    ("int4", "int4", False),
    ("factored", "factored", False),
    ("factored_2nd", "auto", True),
    ("factored_2nd + int8_sr m", "int8_sr", True),
    ("factored_2nd + int4 m", "int4", True),
]
# Bytes a step must move per parameter (read and write once, nothing recomputed from memory):
# parameter read + write and gradient read (fp32: 12, bf16: 6) plus each state read and written.
# Fused torch AdamW moves 28 (fp32) and 14 (bf16): the ratio of the two is a step's physical
# lower bound relative to it when both run at the memory bandwidth.
STATE_BYTES = {"fp32": 16.0, "bf16_sr": 8.0, "fp16": 8.0 + 16 / 2048, "int8_sr": 4.0 + 16 / 2048,
               "int4": 2.0 + 8 / 128 + 8 / 256, "factored": 0.26, "factored_2nd + int8_sr m": 2.0 + 8 / 2048,
               "factored_2nd + int4 m": 1.0 + 8 / 128}
ADV_NOTE = (
    "adv_optm runs with its default compiled_optimizer=False (eager). With compiled_optimizer=True on "
    "torch 2.13 its compiled step guards on the Python-float bias correction and recompiles every step "
    "(measured earlier at 2.5-4.5 s/step on this model with fp32 states), so it is not timed."
)

warnings.filterwarnings("ignore", message="bf16 and fp16 are mixed")  # inductor, for bf16 params + fp16 states


@dataclass
class Candidate:
    key: str
    family: str  # torch / fast / adv
    label: str
    states: str  # how the optimizer states are stored
    dtype: torch.dtype
    make: Callable[[list[torch.Tensor]], torch.optim.Optimizer]
    compiled: bool = False
    baseline: bool = False  # runs every round, all steps: the denominators of the ratios
    params: list[torch.Tensor] = field(default_factory=list)
    opt: Any = None
    crash: str | None = None
    first_step_s: float = math.nan
    warm_s: float = math.nan  # the last warm-up step: sizes the schedule
    steps_per_round: int = 0
    stride: int = 1  # timed in rounds r with r % stride == offset
    offset: int = 0
    rounds: dict[int, list[float]] = field(default_factory=dict)  # round -> seconds of its steps
    faults: list[int] = field(default_factory=list)  # minor page faults of each timed step
    max_dp: float = math.nan


def candidates(with_adv: bool) -> list[Candidate]:
    bf16, fp32 = torch.bfloat16, torch.float32
    cs = [
        Candidate("torch_fused", "torch", "torch AdamW fused", "fp32", fp32,
                  lambda ps: torch.optim.AdamW(ps, fused=True, **HYPER), baseline=True),
        Candidate("torch_fused_bf16", "torch", "torch AdamW fused", "bf16 (round-to-nearest)", bf16,
                  lambda ps: torch.optim.AdamW(ps, fused=True, **HYPER), baseline=True),
        Candidate("torch_foreach", "torch", "torch AdamW foreach", "fp32", fp32,
                  lambda ps: torch.optim.AdamW(ps, foreach=True, **HYPER)),
    ]
    families = [("fast", "fast.AdamW", fast.AdamW, True)]
    if with_adv:
        import adv_optm

        families.append(("adv", "adv_optm AdamW_adv", adv_optm.AdamW_adv, False))
    for dtype in (fp32, bf16):
        for family, label, cls, compiled in families:
            for name, precision, f2 in PRECISIONS:
                cs.append(Candidate(
                    f"{family}_{name}_{str(dtype)[6:]}", family, label, name, dtype,
                    lambda ps, cls=cls, precision=precision, f2=f2: cls(
                        ps, state_precision=precision, factored_2nd=f2, **HYPER),
                    compiled=compiled,
                ))
    return cs


def model_tensors(quick: bool, seed: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Seven Linear-like layers (weight + bias): 2048 wide (29.4M params), or 256 for --quick."""
    width = 256 if quick else 2048
    gen = torch.Generator().manual_seed(seed)
    shapes = [s for _ in range(7) for s in ((width, width), (width,))]
    params = [torch.randn(s, generator=gen).mul_(0.02) for s in shapes]
    grads = [torch.randn(s, generator=gen).mul_(1e-3) for s in shapes]
    return params, grads


def timed_step(opt: torch.optim.Optimizer, device: torch.device) -> tuple[float, int]:
    """Seconds of one step, and its minor page faults: temporaries that the allocator serves
    from fresh pages cost the kernel's page zeroing, which can dominate an eager CPU step."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0


def plan(cands: list[Candidate], n_rounds: int, per_round: int, budget_s: float) -> float:
    """Give every candidate its steps per round and the rounds it is timed in.

    All take ``n_rounds * per_round`` steps if that fits ``budget_s`` (estimated from the
    warm-up); otherwise the slow ones are capped at the same number of seconds each (but at
    least MIN_STEPS steps), spread evenly over the rounds. Returns the estimated seconds.
    """
    full = n_rounds * per_round
    least = min(MIN_STEPS, n_rounds)

    def steps(c: Candidate, cap: float) -> int:
        if c.baseline:
            return full
        return max(least, min(full, int(cap / c.warm_s)))

    def cost(cap: float) -> float:
        return sum(steps(c, cap) * c.warm_s for c in cands)

    lo, hi = 0.0, full * max(c.warm_s for c in cands)
    if cost(hi) > budget_s:
        for _ in range(50):  # bisect the largest per-candidate cap that fits
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if cost(mid) <= budget_s else (lo, mid)
        hi = lo
    slow = 0
    for c in cands:
        n = steps(c, hi)
        if n >= n_rounds:
            c.steps_per_round, c.stride, c.offset = min(per_round, n // n_rounds), 1, 0
        else:
            c.steps_per_round, c.stride = 1, max(1, round(n_rounds / n))
            c.offset, slow = slow % c.stride, slow + 1  # stagger the slow ones over the rounds
    return sum(c.steps_per_round * len(timed_rounds(c, n_rounds)) * c.warm_s for c in cands)


def timed_rounds(c: Candidate, n_rounds: int) -> list[int]:
    return [r for r in range(n_rounds) if r % c.stride == c.offset]


def crash_text(err: Exception) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"


def interleaved_rounds(live: list[Candidate], n_rounds: int, device: torch.device, budget_s: float = math.inf,
                       catch: bool = False) -> float:
    """Time ``live`` in ``n_rounds`` rounds, each candidate's ``steps_per_round`` steps in the rounds
    its stride picks, the order reversed every other round (a linear drift within a round favours
    no candidate) and the garbage collector off. ``catch``: a candidate that raises is marked
    crashed and the others go on. Stops after the round that passes ``budget_s`` (at least 3
    rounds). Returns the seconds the timing took."""
    t0 = time.perf_counter()
    gc.collect()
    gc.disable()  # a collection inside a timed step would be noise, not optimizer cost
    try:
        for r in range(n_rounds):
            for c in live if r % 2 == 0 else reversed(live):
                if c.crash is not None or r % c.stride != c.offset:
                    continue
                try:
                    samples = [timed_step(c.opt, device) for _ in range(c.steps_per_round)]
                except Exception as err:
                    if not catch:
                        raise
                    c.crash = f"while timed (round {r + 1}) {crash_text(err)}"
                    print(f"\n{c.label} [{c.states}] ({c.family}): crashes {c.crash}")
                    continue
                c.rounds[r] = [t for t, _ in samples]
                c.faults += [f for _, f in samples]
            print(f"\rround {r + 1}/{n_rounds} ({time.perf_counter() - t0:.0f} s)", end="", flush=True)
            if time.perf_counter() - t0 > budget_s and r >= 2:
                print(f"\nbudget of {budget_s:.0f} s reached after {r + 1} rounds", end="")
                break
        print()
    finally:
        gc.enable()
    return time.perf_counter() - t0


def median_ratios(c: Candidate, base: Candidate) -> tuple[float, float, float]:
    """Quartiles over rounds of (c's median step in the round / base's median step in the round)."""
    return bu.quartiles([bu.quartiles(ts)[1] / bu.quartiles(base.rounds[r])[1] for r, ts in c.rounds.items()])


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    info = bu.machine_info(device)
    info["load_average_start"] = bu.load_average()
    notes: list[str] = []
    try:
        import adv_optm

        with_adv = True
        notes.append(f"adv_optm {getattr(adv_optm, '__version__', '(version unknown)')}. {ADV_NOTE}")
    except ImportError:
        with_adv = False
        notes.append("adv_optm not importable: its rows are skipped "
                     "(`.venv/bin/pip install --no-deps adv-optm==2.5.16` adds them).")
    print("note:", notes[-1])

    base_params, base_grads = model_tensors(args.quick)
    numel = sum(p.numel() for p in base_params)
    largest = max(p.numel() for p in base_params) * 4  # the largest parameter's fp32 bytes
    print(f"model: {len(base_params)} tensors, {numel:,} parameters; device {device}")
    # One gradient set per dtype, shared by all candidates of that dtype (none of them writes
    # into p.grad; checked at the end), so 27 model copies fit in memory.
    grads = {dt: [g.to(device=device, dtype=dt, copy=True) for g in base_grads]
             for dt in (torch.float32, torch.bfloat16)}
    cands = candidates(with_adv)
    dynamo_stats = counters["stats"]

    # Warm-up, one candidate at a time so each compile is attributed to its own row.
    for c in cands:
        c.params = [p.to(device=device, dtype=c.dtype, copy=True) for p in base_params]
        for p, g in zip(c.params, grads[c.dtype]):
            p.grad = g
        try:
            c.opt = c.make(c.params)
            c.first_step_s = timed_step(c.opt, device)[0]
            # The schedule's estimate: the fastest untimed step that did not compile (a busy
            # machine stalls single steps by up to a second).
            c.warm_s = min([timed_step(c.opt, device)[0] for _ in range(WARMUP - 1)]
                           + ([] if c.compiled else [c.first_step_s]))
        except Exception as err:  # a configuration the optimizer does not support
            c.crash = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
            c.opt, c.params = None, []
            gc.collect()
            print(f"warm-up {c.label} [{c.states}] ({str(c.dtype)[6:]}): crashes, {c.crash}")
            continue
        print(f"warm-up {c.label} [{c.states}] ({str(c.dtype)[6:]}): first step {c.first_step_s:.2f} s, "
              f"then {c.warm_s * 1e3:.0f} ms")
    live = [c for c in cands if c.crash is None]
    fused = next(c for c in live if c.key == "torch_fused")
    fused_bf16 = next(c for c in live if c.key == "torch_fused_bf16")
    # Same steps on the same data so far: a large difference would mean a row is not AdamW.
    for c in live:
        c.max_dp = max((p.float() - q).abs().max().item() for p, q in zip(c.params, fused.params))

    n_rounds = math.ceil(args.steps / args.per_round)
    estimate = plan(live, n_rounds, args.per_round, args.budget)
    print(f"timing: {n_rounds} rounds, about {estimate:.0f} s (budget {args.budget:.0f} s)")
    graphs_before = dynamo_stats["unique_graphs"]
    timing_s = interleaved_rounds(live, n_rounds, device)
    recompiles = dynamo_stats["unique_graphs"] - graphs_before

    # Memory after timing: the allocator switch below would otherwise change the timings.
    mem = bu.PeakExtraMemory(device)
    method = mem.enable()
    check = mem.self_check()
    rows: list[dict[str, Any]] = []
    for c in cands:
        row: dict[str, Any] = {"key": c.key, "family": c.family, "label": c.label, "states": c.states,
                               "dtype": str(c.dtype)[6:], "crash": c.crash,
                               "physical_limit": None if c.family == "torch" else _limit(c.states, str(c.dtype)[6:])}
        rows.append(row)
        if c.crash is not None:
            continue
        n_mem = 3 if c.warm_s < 0.5 else 1
        known = [x for x in (mem.measure(c.opt.step) for _ in range(n_mem)) if x is not None]
        peak = max(known) if known else None
        held = bu.held_tensor_bytes(c.opt)
        state, sd_state = bu.state_bytes(c.opt), bu.state_dict_bytes(c.opt)
        flat = [t for ts in c.rounds.values() for t in ts]
        q1, med, q3 = bu.quartiles(flat)
        row.update({
            "timed_steps": len(flat), "timed_rounds": len(c.rounds), "steps_per_round": c.steps_per_round,
            "median_ms": med * 1e3, "iqr_ms": [q1 * 1e3, q3 * 1e3],
            "ratio_to_fused_fp32": median_ratios(c, fused),
            "ratio_to_fused_bf16": median_ratios(c, fused_bf16) if c.dtype == torch.bfloat16 else None,
            "first_step_s": c.first_step_s,
            "compile_s": c.first_step_s - med if c.compiled else None,
            "state_bytes": state, "state_bytes_per_param": state / numel,
            "state_dict_bytes": sd_state, "state_dict_matches": sd_state == state,
            "peak_extra_bytes": peak, "memory_steps": len(known),
            "workspace_bytes": held,
            "extra_total_bytes": None if peak is None else peak + held,
            "extra_total_x_largest": None if peak is None else (peak + held) / largest,
            "extra_total_bytes_per_param": None if peak is None else (peak + held) / numel,
            "page_faults_per_step": bu.quartiles(c.faults)[1],
            "max_abs_diff_vs_fused_after_warmup": c.max_dp,
            "step_times_s": {str(r): ts for r, ts in c.rounds.items()},
        })
    grads_intact = all(torch.equal(g, b.to(g.dtype)) for dt in grads for g, b in zip(grads[dt], base_grads))
    info["load_average_end"] = bu.load_average()
    return {
        "machine": info,
        "config": {
            "quick": args.quick, "tensors": len(base_params), "numel": numel,
            "largest_param_fp32_bytes": largest, "hyperparameters": HYPER, "warmup_steps": WARMUP,
            "rounds": n_rounds, "max_steps_per_round": args.per_round, "min_timed_steps": MIN_STEPS,
            "budget_s": args.budget, "timing_estimate_s": estimate, "timing_s": timing_s,
            "recompiles_while_timing": recompiles, "gradients_unchanged": grads_intact,
            "inductor_cache": "warm (default dir)" if args.warm_cache else "cold (fresh temporary dir)",
        },
        "memory_method": method, "memory_self_check_64MiB": check,
        "notes": notes, "results": rows,
    }


# -- report ----------------------------------------------------------------------------------
def _x(q: tuple[float, float, float] | list[float] | None) -> str:
    return "-" if q is None else f"{q[1]:.2f} ({q[0]:.2f}-{q[2]:.2f})"


def table(result: dict[str, Any], dtype: str) -> tuple[list[str], list[list[object]]]:
    bf16 = dtype == "bfloat16"
    headers = ["optimizer", "states", "state B/param", "state_dict same", "ms/step", "x fused fp32 (IQR)",
               *(["x fused bf16 (IQR)"] if bf16 else []), "timed steps", "compile s",
               "peak extra MiB", "workspace MiB", "extra x largest", "extra B/param",
               "page faults/step", "max abs dp vs fused"]
    rows: list[list[object]] = []
    for r in result["results"]:
        if r["dtype"] != dtype:
            continue
        if r["crash"]:
            msg = f"crashes ({r['crash'].split(':')[0]})"
            rows.append([r["label"], r["states"], msg, *["-"] * (len(headers) - 3)])
            continue
        peak = r["peak_extra_bytes"]
        rows.append([
            r["label"], r["states"], f"{r['state_bytes_per_param']:.3f}", "yes" if r["state_dict_matches"] else "NO",
            f"{r['median_ms']:.1f}", _x(r["ratio_to_fused_fp32"]),
            *([_x(r["ratio_to_fused_bf16"])] if bf16 else []),
            f"{r['timed_steps']} ({r['timed_rounds']} rounds)",
            "-" if r["compile_s"] is None else f"{r['compile_s']:.1f}",
            "n/a" if peak is None else f"{peak / 2**20:.1f}", f"{r['workspace_bytes'] / 2**20:.1f}",
            "n/a" if peak is None else f"{r['extra_total_x_largest']:.2f}",
            "n/a" if peak is None else f"{r['extra_total_bytes_per_param']:.2f}",
            f"{r['page_faults_per_step']:.0f}", f"{r['max_abs_diff_vs_fused_after_warmup']:.1e}",
        ])
    return headers, rows


def _find(result: dict[str, Any], family: str, states: str, dtype: str) -> dict[str, Any] | None:
    return next((r for r in result["results"]
                 if (r["family"], r["states"], r["dtype"]) == (family, states, dtype)), None)


def _limit(states: str, dtype: str) -> float | None:
    """The physical lower bound of a step relative to fused torch AdamW of the same dtype."""
    io, fused = (12.0, 28.0) if dtype == "float32" else (6.0, 14.0)
    if states == "factored_2nd":  # m in the parameter dtype beside the factored v
        return (io + (8.0 if dtype == "float32" else 4.0)) / fused
    return (io + STATE_BYTES[states]) / fused if states in STATE_BYTES else None


def targets(result: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    """The product's targets with the measured values of fast and adv_optm, for both param dtypes.
    Step-time targets are ratios to fused torch AdamW with the same parameter dtype (the bf16
    candidates against fused bf16), each with its physical limit (bytes moved / fused's)."""
    def ratio(r: dict[str, Any]) -> float:
        key = "ratio_to_fused_bf16" if r["dtype"] == "bfloat16" else "ratio_to_fused_fp32"
        return r[key][1]

    def step(states: str, bound: float) -> tuple:
        return (f"{states} step <= {bound}x fused AdamW", states, "{:.2f}x", ratio, lambda v, b=bound: v <= b)

    def memory(states: str, bound: float) -> tuple:
        return (f"{states} state <= {bound} B/param", states, "{:.3f}", lambda r: r["state_bytes_per_param"],
                lambda v, b=bound: v <= b)

    specs = [step("fp32", 1.1), step("bf16_sr", 1.3), step("int8_sr", 1.5), step("int4", 2.0),
             step("factored", 2.0), memory("int8_sr", 2.04), memory("int4", 1.05), memory("factored", 0.14),
             ("peak extra memory of a step <= 1x largest param (fp32)", "int8_sr", "{:.2f}x",
              lambda r: r["extra_total_x_largest"], lambda v: v <= 1),
             ("factored peak extra memory <= 1x largest param (fp32)", "factored", "{:.2f}x",
              lambda r: r["extra_total_x_largest"], lambda v: v <= 1)]
    families = [("fast", "fast")] + ([("adv", "adv_optm")] if any(r["family"] == "adv" for r in result["results"])
                                     else [])
    headers = ["target", *[f"{name}, {dt} params" for _, name in families for dt in ("fp32", "bf16")]]
    rows: list[list[object]] = []
    for text, states, fmt, get, ok in specs:
        cells: list[object] = [text]
        for family, _ in families:
            for dt in ("float32", "bfloat16"):
                r = _find(result, family, states, dt)
                if r is None:
                    cells.append("-")
                elif r["crash"]:
                    cells.append(f"crashes ({r['crash'].split(':')[0]})")
                else:
                    v = get(r)
                    is_step = fmt.endswith("x") and text.startswith(f"{states} step <=")
                    limit = f", limit {_limit(states, dt):.2f}x" if is_step else ""
                    cells.append("n/a" if v is None else f"{fmt.format(v)} ({'met' if ok(v) else 'missed'}{limit})")
        rows.append(cells)
    return headers, rows


def write_markdown(result: dict[str, Any], path: os.PathLike[str]) -> None:
    cfg = result["config"]
    check = result["memory_self_check_64MiB"]
    largest_mib = cfg["largest_param_fp32_bytes"] / 2**20
    lines = [
        "# Optimizer step time and memory",
        "",
        f"{cfg['tensors']} tensors (seven square weights and their biases), {cfg['numel']:,} parameters, "
        f"constant random gradients; AdamW lr={HYPER['lr']}, betas={HYPER['betas']}, eps={HYPER['eps']}, "
        f"weight_decay={HYPER['weight_decay']}. Every optimizer has its own copy of the model and all run in "
        f"one process: {cfg['warmup_steps']} untimed warm-up steps each (compiles included), then "
        f"{cfg['rounds']} interleaved rounds (order reversed every other round). Fused torch AdamW (fp32 and "
        f"bf16 params) takes {cfg['max_steps_per_round']} steps in every round; so do the other candidates if "
        f"the time budget ({cfg['budget_s']:.0f} s) allows, else the slow ones take fewer steps (at least "
        f"{cfg['min_timed_steps']}) spread evenly over the rounds (see **timed steps**). "
        f"Dynamo graphs compiled while timing: {cfg['recompiles_while_timing']}. Timed rounds took "
        f"{cfg['timing_s']:.0f} s, the whole run {result.get('runtime_s', math.nan):.0f} s.",
        "",
        "## Targets",
        "",
        *bu.markdown_table(*targets(result), right_align=False),
        "",
        "Step-time targets use the ratio to fused torch AdamW with the same parameter dtype (fp32 columns: "
        "fused fp32; bf16 columns: fused bf16, bf16 states, round-to-nearest). **limit**: the bytes the step "
        "must move per parameter over fused AdamW's (28 B fp32, 14 B bf16), the ratio a step reaches when "
        "both run at the memory bandwidth. The memory targets count the transient peak plus any workspace "
        "the optimizer keeps between steps (**extra x largest** below).",
        "",
        "## fp32 parameters",
        "",
        *bu.markdown_table(*table(result, "float32")),
        "",
        "## bf16 parameters (stochastic rounding on)",
        "",
        *bu.markdown_table(*table(result, "bfloat16")),
        "",
        "## Columns",
        "",
        "- **states**: `state_precision` of fast.AdamW and AdamW_adv; *factored_2nd* is "
        "`state_precision='auto', factored_2nd=True` (the first moment in the parameter dtype, the second "
        "factored). Non-matrix parameters (the biases) keep dense states in factored modes.",
        "- **state B/param**: bytes of all optimizer-state tensors in `opt.state` (0-d step counters "
        "excluded) / number of parameters; **state_dict same**: the tensors of `state_dict()['state']` "
        "add up to the same bytes.",
        "- **x fused fp32**: per round, the candidate's median step time over fused torch AdamW's (fp32 "
        "params) in the same round; median and interquartile range over the rounds the candidate was timed "
        "in. **x fused bf16**: the same against fused torch AdamW on bf16 params (bf16 states, "
        "round-to-nearest). Ratios are the headline: absolute times move with the machine's load.",
        "- **compile s**: first step - median step, for the compiled rows (inductor cache "
        f"{cfg['inductor_cache']}).",
        "- **peak extra**: memory a steady-state step needs beyond what is resident before it (max over "
        f"3 steps, 1 for candidates slower than 0.5 s/step). Method: {result['memory_method']}. Self-check: "
        f"a 64 MiB temporary measures {'n/a' if check is None else f'{check / 2**20:.1f} MiB'}.",
        "- **workspace**: tensors the optimizer keeps outside its state and parameters between steps (fast's "
        "full-size scratch for factored states); resident, so not in peak extra, but needed only by the step.",
        f"- **extra x largest** = (peak extra + workspace) / the largest parameter's fp32 size "
        f"({largest_mib:.0f} MiB); **extra B/param** = the same / number of parameters.",
        "- **page faults/step**: median minor page faults of a timed step (pages the kernel had to map and "
        "zero because the allocator returned memory to it); they explain much of the run-to-run variation "
        "of the eager rows.",
        f"- **max abs dp vs fused**: largest parameter difference from fused torch AdamW (fp32) after the "
        f"{cfg['warmup_steps']} warm-up steps, a sanity check that every row runs AdamW: bf16 rows differ by "
        "bf16 rounding, compressed states by their quantisation (factored second moments are a rank-1 "
        "approximation, far from these random gradients' squares).",
        f"- Shared gradients unchanged by all optimizers: {'yes' if cfg['gradients_unchanged'] else 'NO'}.",
        *[f"- {n}" for n in result["notes"]],
        "",
    ]
    bu.write_report(path, lines, result["machine"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None,
                        help="most timed steps per candidate (60; 12 with --quick)")
    parser.add_argument("--per-round", type=int, default=3, help="most consecutive steps per candidate per round")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for the timed rounds (240; 60 with --quick): slow candidates take fewer steps")
    parser.add_argument("--quick", action="store_true", help="small model (7 x 256 wide), for a smoke test")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--warm-cache", action="store_true",
                        help="reuse the inductor cache (default: a fresh one, so compile time is cold)")
    parser.add_argument("--out", default=None,
                        help="directory for step_time.md / .json (benchmarks/results; a temp dir with --quick)")
    args = parser.parse_args()
    if args.steps is None:
        args.steps = 12 if args.quick else 60
    if args.budget is None:
        args.budget = 60.0 if args.quick else 240.0
    if args.out is None:  # smoke-test numbers must not overwrite or sit beside the published ones
        args.out = os.path.join(tempfile.gettempdir(), "advopt-bench-quick") if args.quick else str(bu.RESULTS)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda requested but torch.cuda.is_available() is False")

    t0 = time.perf_counter()
    cache = None
    if not args.warm_cache:
        # Read by inductor at its first compile, so setting it here (before any) is enough.
        cache = tempfile.mkdtemp(prefix="advopt-bench-inductor-")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
    try:
        result = run(args)
    finally:
        if cache:
            shutil.rmtree(cache, ignore_errors=True)
    result["runtime_s"] = time.perf_counter() - t0

    print()
    print(bu.text_table(*targets(result)))
    for dtype in ("float32", "bfloat16"):
        print(f"\n{dtype} parameters")
        print(bu.text_table(*table(result, dtype)))
    print(f"peak-memory method: {result['memory_method']}")
    print(f"runtime {result['runtime_s']:.0f} s")
    os.makedirs(args.out, exist_ok=True)
    md, js = os.path.join(args.out, "step_time.md"), os.path.join(args.out, "step_time.json")
    write_markdown(result, md)
    with open(js, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, default=str)
    print(f"wrote {md} and {js}")


if __name__ == "__main__":
    main()
