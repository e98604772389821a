"""Automagic's learning-rate mask over a long run: does the 8-bit mask stay in its bounds and
track the exact (fp32) mask?

Trains the digits classifier (benchmarks/tasks.py) with fast.Automagic for --steps steps (1,000)
over --seeds seeds in three mask modes from the same initialisation and minibatches:
``fp32`` (exact), ``int8_sr`` (fast's 8-bit code: binade levels, stochastic rounding)
and ``absmax-int8`` (ai-toolkit's storage, re-implemented: one scale max/127 per tensor, round to
nearest; applied to the fp32 mask after every step, as ai-toolkit quantises after the clamp).
Every --every steps it decodes every stored mask element and records min, max, mean, the fraction
below min_lr and the fraction at 0; and the held-out loss. Writes
benchmarks/results/automagic_mask.{md,json} (or --out) with the machine it ran on.

    .venv/bin/python benchmarks/automagic_mask.py [--steps N] [--seeds N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import benchutil as bu
import torch
from tasks import DigitsTask
from tqdm import tqdm

import fast
from fast.mask_code import decode_mask, params

MODES = ("fp32", "int8_sr", "absmax-int8")
# ai-toolkit's defaults except lr, raised from 1e-6 so that the 1,000 steps train the classifier
HYPER = {"lr": 1e-4, "min_lr": 1e-7, "max_lr": 1e-3, "lr_bump": 1e-6, "weight_decay": 0.0}


def absmax_int8(L: torch.Tensor) -> torch.Tensor:
    """ai-toolkit's Auto8bitTensor round trip: q = round(L / (max/127)), decoded q * max/127."""
    top = L.abs().max()
    scale = torch.where(top > 0, top / 127, torch.ones_like(top))
    return torch.clamp(torch.round(L / scale), -127, 127) * scale


def decoded_masks(opt: fast.Automagic) -> torch.Tensor:
    out = []
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state[p]
            mask = st["lr_mask"]
            if mask.dtype == torch.uint8:
                mask = decode_mask(mask, params(tuple(st["lr_mask_bounds"])))
            out.append(mask.reshape(-1).double())
    return torch.cat(out)


def run(task: DigitsTask, mode: str, seed: int, steps: int, every: int) -> dict:
    model, params = task.build(seed, torch.float32)
    opt = fast.Automagic(params, mask_precision="fp32" if mode != "int8_sr" else "int8_sr", seed=seed, **HYPER)
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for step in range(1, steps + 1):
        opt.zero_grad(set_to_none=True)
        task.train_loss(model, gen).backward()
        opt.step()
        if mode == "absmax-int8":
            with torch.no_grad():
                for p in params:
                    opt.state[p]["lr_mask"].copy_(absmax_int8(opt.state[p]["lr_mask"]))
        if step % every == 0 or step == steps:
            L = decoded_masks(opt)
            rows.append({"step": step, "min": L.min().item(), "max": L.max().item(), "mean": L.mean().item(),
                         "below_min": (L < HYPER["min_lr"]).double().mean().item(),
                         "zero": (L == 0).double().mean().item(), "heldout": task.heldout_loss(model),
                         "logged": opt.get_avg_learning_rate()})
    return {"mode": mode, "seed": seed, "rows": rows}


def table_md(results: list[dict], steps: int) -> list[str]:
    lines = ["| mask | min decoded | max decoded | below min_lr | at 0 | mean / fp32 mean (worst checkpoint) "
             "| held-out loss |", "| --- | --- | --- | --- | --- | --- | --- |"]
    ref = {r["seed"]: r for r in results if r["mode"] == "fp32"}
    for mode in MODES:
        runs = [r for r in results if r["mode"] == mode]
        lo = min(x["min"] for r in runs for x in r["rows"])
        hi = max(x["max"] for r in runs for x in r["rows"])
        below = max(x["below_min"] for r in runs for x in r["rows"])
        zero = max(x["zero"] for r in runs for x in r["rows"])
        worst = max(abs(x["mean"] / y["mean"] - 1) for r in runs for x, y in zip(r["rows"], ref[r["seed"]]["rows"]))
        final = [r["rows"][-1]["heldout"] for r in runs]
        spread = statistics.pstdev(final) if len(final) > 1 else 0.0
        lines.append(f"| {mode} | {lo:.3g} | {hi:.3g} | {below:.2%} | {zero:.2%} | {worst:.2%} off "
                     f"| {statistics.mean(final):.4f} ± {spread:.4f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    torch.set_num_threads(1)
    task = DigitsTask("digits", "held-out cross-entropy", lr=HYPER["lr"], weight_decay=0.0, steps=args.steps,
                      quick_steps=args.steps, eval_every=args.every, batch=64)
    task.prepare()
    results = []
    jobs = [(m, s) for s in range(args.seeds) for m in MODES]
    for mode, seed in tqdm(jobs, desc="automagic mask", unit="run"):
        results.append(run(task, mode, seed, args.steps, args.every))
    info = bu.machine_info(torch.device("cpu"))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "automagic_mask.json").write_text(json.dumps({"machine": info, "hyper": HYPER, "results": results},
                                                             indent=1))
    lines = ["# Automagic's learning-rate mask over a long run", "",
             f"fast.Automagic on the digits classifier ({task.describe()}), {args.steps} steps, "
             f"{args.seeds} seeds, hyperparameters {HYPER}; every {args.every} steps every stored mask "
             "element is decoded. `absmax-int8` is ai-toolkit's storage (one scale max/127 per tensor, round "
             "to nearest) applied to the exact mask after each step.", "",
             *table_md(results, args.steps), "",
             f"Machine: {info['cpu']}, torch {info['torch']}, {info['date']}; `{info['command']}`."]
    (args.out / "automagic_mask.md").write_text("\n".join(lines) + "\n")
    print("\n".join(table_md(results, args.steps)))
    print(f"wrote {args.out / 'automagic_mask.md'}")


if __name__ == "__main__":
    main()
