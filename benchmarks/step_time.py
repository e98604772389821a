"""Optimizer step time and memory: fast.AdamW vs torch.optim.AdamW and adv_optm's AdamW_adv.

All candidates live in one process and are timed in interleaved rounds (A B C, C B A, ...),
so slow drift of the machine (other load, frequency) hits every candidate alike; the headline
is each candidate's time relative to fused torch AdamW measured in the same round.

    .venv/bin/python benchmarks/step_time.py [--steps N] [--quick] [--device cpu|cuda]
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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import benchutil as bu
import torch

import fast

HYPER: dict[str, Any] = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}
WARMUP = 3  # the first warm-up step compiles (fast) and allocates the state (all)
ADV_COMPILED_NOTE = (
    "adv_optm with compiled_optimizer=True is not timed: on torch 2.13 its compiled step guards on the "
    "Python-float bias correction, so it recompiles every step (measured 2.5-4.5 s/step on the full model "
    "with the recompile limit raised to 64); with the default limit (8) it raises FailOnRecompileLimitHit. "
    "Its default (eager) mode is timed."
)


@dataclass
class Candidate:
    key: str
    label: str
    dtype: torch.dtype
    make: Callable[[list[torch.Tensor]], torch.optim.Optimizer]
    compiled: bool = False
    params: list[torch.Tensor] = field(default_factory=list)
    opt: torch.optim.Optimizer = field(init=False)  # built by run(), once params exist
    first_step_s: float = math.nan
    rounds: list[list[float]] = field(default_factory=list)  # seconds, one list per round
    faults: list[int] = field(default_factory=list)  # minor page faults of each timed step
    peak_extra: int | None = None


def candidates(with_adv: bool) -> list[Candidate]:
    bf16, fp32 = torch.bfloat16, torch.float32
    cs = [
        Candidate("torch_fused", "torch AdamW fused", fp32,
                  lambda ps: torch.optim.AdamW(ps, fused=True, **HYPER)),
        Candidate("torch_foreach", "torch AdamW foreach", fp32,
                  lambda ps: torch.optim.AdamW(ps, foreach=True, **HYPER)),
        Candidate("fast_fp32", "fast.AdamW", fp32, lambda ps: fast.AdamW(ps, **HYPER), compiled=True),
        Candidate("fast_bf16_sr", "fast.AdamW + SR", bf16,
                  lambda ps: fast.AdamW(ps, stochastic_rounding=True, **HYPER), compiled=True),
    ]
    if with_adv:
        import adv_optm

        cs += [
            Candidate("adv_fp32", "adv_optm AdamW_adv", fp32, lambda ps: adv_optm.AdamW_adv(ps, **HYPER)),
            # adv keeps states in the parameter dtype by default: half the state traffic of
            # fast's fp32 states, so the fp32-state variant below is the like-for-like one.
            Candidate("adv_bf16_sr", "adv_optm AdamW_adv + SR, bf16 states", bf16,
                      lambda ps: adv_optm.AdamW_adv(ps, **HYPER)),
            Candidate("adv_bf16_sr_fp32_states", "adv_optm AdamW_adv + SR, fp32 states", bf16,
                      lambda ps: adv_optm.AdamW_adv(ps, state_precision="fp32", **HYPER)),
        ]
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


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    info = bu.machine_info(device)
    info["load_average_start"] = bu.load_average()
    try:
        import adv_optm  # noqa: F401

        with_adv, note = True, ADV_COMPILED_NOTE
    except ImportError:
        with_adv, note = False, ("adv_optm not importable: its rows are skipped "
                                 "(`.venv/bin/pip install --no-deps adv-optm==2.5.16` adds them).")
    print("note:", note)

    base_params, base_grads = model_tensors(args.quick)
    numel = sum(p.numel() for p in base_params)
    print(f"model: {len(base_params)} tensors, {numel:,} parameters; device {device}")
    cands = candidates(with_adv)
    for c in cands:
        c.params = [p.to(device=device, dtype=c.dtype, copy=True) for p in base_params]
        for p, g in zip(c.params, base_grads):
            p.grad = g.to(device=device, dtype=c.dtype, copy=True)
        c.opt = c.make(c.params)

    # Warm-up, one candidate at a time so each compile is attributed to its own row.
    for c in cands:
        c.first_step_s = timed_step(c.opt, device)[0]
        for _ in range(WARMUP - 1):
            timed_step(c.opt, device)
        print(f"warm-up {c.label} ({str(c.dtype)[6:]}): first step {c.first_step_s:.2f} s")

    n_rounds = math.ceil(args.steps / args.per_round)
    gc.collect()
    gc.disable()  # a collection inside a timed step would be noise, not optimizer cost
    try:
        for r in range(n_rounds):
            # Alternate the order so a linear drift within a round favours no candidate.
            for c in cands if r % 2 == 0 else reversed(cands):
                samples = [timed_step(c.opt, device) for _ in range(args.per_round)]
                c.rounds.append([t for t, _ in samples])
                c.faults += [f for _, f in samples]
            print(f"\rround {r + 1}/{n_rounds}", end="", flush=True)
        print()
    finally:
        gc.enable()

    # Memory after timing: the allocator switch below would otherwise change the timings.
    mem = bu.PeakExtraMemory(device)
    method = mem.enable()
    check = mem.self_check()
    for c in cands:
        known = [x for x in (mem.measure(c.opt.step) for _ in range(3)) if x is not None]
        c.peak_extra = max(known) if known else None

    # Every candidate took the same number of steps on the same data: a large difference
    # would mean a row timed something other than AdamW.
    ref = [p.float() for p in cands[0].params]
    rows: list[dict[str, Any]] = []
    base_rounds = [bu.quartiles(r)[1] for r in cands[0].rounds]
    for c in cands:
        flat = [t for r in c.rounds for t in r]
        q1, med, q3 = bu.quartiles(flat)
        ratios = [bu.quartiles(r)[1] / b for r, b in zip(c.rounds, base_rounds)]
        r1, rmed, r3 = bu.quartiles(ratios)
        rows.append({
            "key": c.key, "label": c.label, "dtype": str(c.dtype)[6:],
            "median_ms": med * 1e3, "iqr_ms": [q1 * 1e3, q3 * 1e3],
            "ratio_to_fused": rmed, "ratio_iqr": [r1, r3],
            "first_step_s": c.first_step_s,
            "compile_s": c.first_step_s - med if c.compiled else None,
            "state_bytes_per_param": bu.state_bytes(c.opt) / numel,
            "peak_extra_bytes": c.peak_extra,
            "page_faults_per_step": bu.quartiles(c.faults)[1],
            "max_abs_diff_vs_fused": max((p.float() - q).abs().max().item() for p, q in zip(c.params, ref)),
            "step_times_s": c.rounds,
        })
    info["load_average_end"] = bu.load_average()
    return {
        "machine": info,
        "config": {
            "quick": args.quick, "tensors": len(base_params), "numel": numel, "hyperparameters": HYPER,
            "warmup_steps": WARMUP, "rounds": n_rounds, "steps_per_round": args.per_round,
            "timed_steps_per_candidate": n_rounds * args.per_round,
            "inductor_cache": "warm (default dir)" if args.warm_cache else "cold (fresh temporary dir)",
        },
        "memory_method": method, "memory_self_check_64MiB": check,
        "notes": [note], "results": rows,
    }


def table(result: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    numel = result["config"]["numel"]
    headers = ["optimizer", "params", "ms/step (median)", "IQR ms", "x fused (median)", "IQR x",
               "first step s", "compile s", "state B/param", "peak extra MiB", "peak extra B/param",
               "page faults/step", "max abs dp vs fused"]
    rows: list[list[object]] = []
    for r in result["results"]:
        peak = r["peak_extra_bytes"]
        rows.append([
            r["label"], r["dtype"], f"{r['median_ms']:.1f}", "{:.1f}-{:.1f}".format(*r["iqr_ms"]),
            f"{r['ratio_to_fused']:.2f}", "{:.2f}-{:.2f}".format(*r["ratio_iqr"]),
            f"{r['first_step_s']:.2f}", "-" if r["compile_s"] is None else f"{r['compile_s']:.1f}",
            f"{r['state_bytes_per_param']:.2f}",
            "n/a" if peak is None else f"{peak / 2**20:.1f}",
            "n/a" if peak is None else f"{peak / numel:.2f}",
            f"{r['page_faults_per_step']:.0f}",
            f"{r['max_abs_diff_vs_fused']:.1e}",
        ])
    return headers, rows


def write_markdown(result: dict[str, Any], path: os.PathLike[str]) -> None:
    cfg, headers_rows = result["config"], table(result)
    check = result["memory_self_check_64MiB"]
    lines = [
        "# Optimizer step time",
        "",
        f"{cfg['tensors']} tensors (seven 2048x2048-style weights and their biases), "
        f"{cfg['numel']:,} parameters, constant random gradients; AdamW lr={HYPER['lr']}, "
        f"betas={HYPER['betas']}, eps={HYPER['eps']}, weight_decay={HYPER['weight_decay']}. "
        f"{cfg['warmup_steps']} warm-up steps, then {cfg['rounds']} interleaved rounds of "
        f"{cfg['steps_per_round']} steps per candidate (order reversed every other round).",
        "",
        *bu.markdown_table(*headers_rows),
        "",
        "- **x fused**: per round, the candidate's median step time over fused torch AdamW's in the "
        "same round; median and interquartile range over rounds. Ratios are the headline: absolute "
        "times move with the machine's load. The IQR is within one run; repeat runs move the rows that "
        "allocate temporaries every step (foreach, adv_optm) by more (see page faults).",
        "- **first step**: includes allocating the state and, for compiled rows, compiling "
        f"(inductor cache {cfg['inductor_cache']}); **compile** = first step - median step.",
        "- **state B/param**: bytes of all optimizer-state tensors / number of parameters.",
        f"- **peak extra**: memory the steady-state step needs beyond what is resident before it "
        f"(max of 3 steps). Method: {result['memory_method']}. Self-check: a 64 MiB temporary "
        f"measures {'n/a' if check is None else f'{check / 2**20:.1f} MiB'}.",
        "- **page faults/step**: median minor page faults of a timed step (4 KiB pages the kernel had "
        "to map and zero because the allocator returned memory to it); they explain most of the "
        "run-to-run variation of the eager rows.",
        "- **max abs dp vs fused**: largest parameter difference from fused torch AdamW after the same "
        "steps (a sanity check that every row runs AdamW; bf16 rows differ by bf16 rounding).",
        *[f"- {n}" for n in result["notes"]],
        "",
    ]
    bu.write_report(path, lines, result["machine"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per candidate (60; 12 with --quick)")
    parser.add_argument("--per-round", type=int, default=3, help="consecutive steps per candidate per round")
    parser.add_argument("--quick", action="store_true", help="small model (7 x 256 wide), for a smoke test")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--warm-cache", action="store_true",
                        help="reuse the inductor cache (default: a fresh one, so compile time is cold)")
    parser.add_argument("--out", default=None,
                        help="directory for step_time.md / .json (benchmarks/results; a temp dir with --quick)")
    args = parser.parse_args()
    if args.steps is None:
        args.steps = 12 if args.quick else 60
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
    print(bu.text_table(*table(result)))
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
