"""Training quality of the optimizer-state formats: held-out loss at a fixed step budget.

Every row (an AdamW implementation with one state format) trains each task (benchmarks/tasks.py:
the digits MLP, and a LoRA fine-tune of a small diffusion model) from the same initialisation, on
the same minibatches, with the same hyperparameters, for each seed. The metric is the held-out loss
after the last step (mean and spread over seeds), also as a ratio to dense fp32 fast.AdamW. Beside
every optimizer step, torch.optim.AdamW(fused=True) steps a copy of the same trainable parameters
with the same gradients, so each row's step time is compared with fused torch measured at the same
moment. Rows that the installed fast or adv_optm cannot construct are reported as not available.

    .venv/bin/python benchmarks/quality.py [--quick | --long] [--steps N] [--seeds N] [--tasks digits,...]
                                           [--rows 'fast-*,adv-fp32'] [--[no-]eager] [--out DIR]

``--long`` is the stability run: the classifier for 10,000 steps with the compressed formats, to
show that none of them reaches a non-finite loss (quality_long.md / .json / .png).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import benchutil as bu
import torch
from quality_report import plot, summarize, text_tables, write_markdown
from tasks import Task, make_tasks
from tqdm import tqdm

import fast

BETAS, EPS = (0.9, 0.999), 1e-8
BASELINE = "fast-fp32"  # the dense fp32 row every held-out loss is compared with
LONG_STEPS = 10_000
LONG_ROWS = "torch-fused,fast-fp16,fast-int8_sr,fast-int4,fast-f2-int8_sr,fast-f2-int4,fast-bf16-params"
warnings.filterwarnings("ignore", message="bf16 and fp16 are mixed")  # inductor, for bf16 params


@dataclass(frozen=True)
class Row:
    key: str  # what --rows matches
    family: str  # torch / fast / adv
    precision: str = "fp32"  # state_precision ("auto" follows the parameters' dtype)
    factored_2nd: bool = False
    dtype: torch.dtype = torch.float32  # of the trainable parameters

    @property
    def states(self) -> str:
        if self.factored_2nd:
            return f"m {self.precision}, v factored"
        if self.dtype != torch.float32:
            return f"{str(self.dtype)[6:]} params, states {self.precision}"
        return self.precision


def all_rows() -> list[Row]:
    rows = [Row("torch-fused", "torch")]
    rows += [Row(f"fast-{p}", "fast", p) for p in ("fp32", "bf16_sr", "fp16", "int8_sr", "int4", "factored")]
    rows += [Row(f"fast-f2-{p}", "fast", p, True) for p in ("fp32", "bf16_sr", "int8_sr", "int4")]
    rows.append(Row("fast-bf16-params", "fast", "auto", dtype=torch.bfloat16))
    rows += [Row(f"adv-{p}", "adv", p) for p in ("fp32", "bf16_sr", "fp16", "int8_sr", "factored")]
    rows += [Row(f"adv-f2-{p}", "adv", p, True) for p in ("fp32", "bf16_sr", "int8_sr")]
    return rows


@dataclass
class Run:
    task: str
    row: str
    seed: int
    status: str = "ok"  # ok / n/a / error / diverged
    note: str = ""
    eval_steps: list[int] = field(default_factory=list)
    heldout: list[float] = field(default_factory=list)
    final: float = math.nan  # held-out loss after the last step: the metric
    final_train: float = math.nan  # mean training loss over the last 10 % of steps (context only)
    diverged_at: int | None = None
    step_us: float = math.nan  # median opt.step() after warm-up
    ref_us: float = math.nan  # the same for fused torch AdamW on the same parameters and gradients
    time_ratio: float = math.nan  # median over steps of (step / fused torch step)
    first_step_s: float = math.nan  # includes compiling
    state_bytes: int = 0
    n_params: int = 0


def make_optimizer(row: Row, params: list[torch.nn.Parameter], task: Task, seed: int,
                   eager: bool) -> torch.optim.Optimizer:
    hyper: dict[str, Any] = {"lr": task.lr, "betas": BETAS, "eps": EPS, "weight_decay": task.weight_decay}
    if row.family == "torch":
        return torch.optim.AdamW(params, fused=True, **hyper)
    if row.family == "fast":
        return fast.AdamW(params, state_precision=row.precision, factored_2nd=row.factored_2nd, seed=seed,
                          compiled_optimizer=not eager, **hyper)
    import adv_optm  # ImportError is handled by the caller (the row is reported as not available)

    if row.precision == "factored":  # 2.5.16 spells its factored mode nnmf_factor
        opt = adv_optm.AdamW_adv(params, nnmf_factor=True, factored_2nd=row.factored_2nd, **hyper)
    else:
        opt = adv_optm.AdamW_adv(params, state_precision=row.precision, factored_2nd=row.factored_2nd, **hyper)
    try:  # its stochastic rounding draws from one module-wide generator: seed it per run
        from adv_optm.util import param_update

        param_update.get_generator(params[0].device).manual_seed(10_000 + seed)
    except (ImportError, AttributeError):
        pass
    return opt


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def train(task: Task, row: Row, seed: int, steps: int, eager: bool) -> Run:
    run = Run(task.name, row.key, seed)
    model, params = task.build(seed, row.dtype)
    run.n_params = sum(p.numel() for p in params)
    torch.manual_seed(seed)
    try:
        opt = make_optimizer(row, params, task, seed, eager)
    except (ImportError, ValueError, TypeError) as err:  # a format this build does not implement (yet)
        run.status, run.note = "n/a", f"{type(err).__name__}: {err}"
        return run
    # The speed reference: fused torch AdamW on copies of the same parameters, fed the same gradients.
    ref_params = [p.detach().clone().requires_grad_(True) for p in params]
    ref = torch.optim.AdamW(ref_params, fused=True, lr=task.lr, betas=BETAS, eps=EPS, weight_decay=task.weight_decay)
    gen = torch.Generator().manual_seed(seed)  # minibatches and noise: identical for every row at this seed
    times: list[float] = []
    ref_times: list[float] = []
    train_losses: list[float] = []
    warmup = min(10, max(1, steps // 5))  # compile, state allocation and recompiles happen in these

    def evaluate(step: int) -> bool:
        loss = task.heldout_loss(model)
        run.eval_steps.append(step)
        run.heldout.append(loss)
        if not math.isfinite(loss):
            run.diverged_at = step
        return math.isfinite(loss)

    try:
        evaluate(0)
        for step in range(1, steps + 1):
            loss = task.train_loss(model, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for p, q in zip(params, ref_params):
                q.grad = p.grad
            # Alternate which goes first: of two back-to-back steps the second measured up to 1.5x faster.
            if step % 2:
                dt, dt_ref = timed(opt.step), timed(ref.step)
            else:
                dt_ref, dt = timed(ref.step), timed(opt.step)
            if step == 1:
                run.first_step_s = dt
            elif step > warmup:
                times.append(dt)
                ref_times.append(dt_ref)
            train_losses.append(loss.item())
            if not math.isfinite(train_losses[-1]):
                run.diverged_at = step
                break
            if (step % task.eval_every == 0 or step == steps) and not evaluate(step):
                break
    except NotImplementedError as err:  # a format accepted by the constructor but not by the step
        run.status, run.note = "n/a", f"NotImplementedError: {err}"
        return run
    except Exception as err:  # one broken row must not lose the results of the others
        run.status, run.note = "error", f"{type(err).__name__}: {err}"
        return run
    if times:
        run.step_us, run.ref_us = 1e6 * statistics.median(times), 1e6 * statistics.median(ref_times)
        # One ratio per pair of steps (one in each order), so the order effect cancels; paired in
        # time, so both see the same machine load.
        pairs = range(0, len(times) - 1, 2)
        run.time_ratio = statistics.median((times[i] + times[i + 1]) / (ref_times[i] + ref_times[i + 1])
                                           for i in pairs) if len(times) > 1 else times[0] / ref_times[0]
    tail = train_losses[-max(1, len(train_losses) // 10):]
    run.final_train = sum(tail) / len(tail)
    run.state_bytes = bu.state_bytes(opt)
    if run.diverged_at is not None:
        run.status, run.note = "diverged", f"non-finite loss at step {run.diverged_at}"
    else:
        run.final = run.heldout[-1]
    return run


def report_context(tasks: dict[str, Task], budgets: dict[str, int], seeds: list[int], rows: list[Row], adv: str,
                   *, eager: bool, quick: bool, long: bool) -> dict[str, Any]:
    """What the report and the JSON say about a run besides its numbers."""
    return {"tasks": {n: {"description": t.describe(), "metric": t.metric, "lr": t.lr, "weight_decay": t.weight_decay,
                          "betas": BETAS, "eps": EPS, "steps": budgets[n], "batch": t.batch, "eval_every": t.eval_every}
                      for n, t in tasks.items()},
            "seeds": seeds, "eager": eager, "quick": quick, "long": long, "adv": adv,
            "rows": {r.key: {"family": r.family, "states": r.states, "dtype": str(r.dtype)[6:]} for r in rows}}


def select_rows(patterns: str | None) -> list[Row]:
    rows = all_rows()
    if not patterns:
        return rows
    pats = [p.strip() for p in patterns.split(",") if p.strip()]
    chosen = [r for r in rows if r.key == BASELINE or any(fnmatch.fnmatch(r.key, p) for p in pats)]
    return chosen  # the baseline stays: every ratio needs it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps and one seed: a smoke test (CI)")
    parser.add_argument("--long", action="store_true",
                        help=f"the stability run: digits, {LONG_STEPS:,} steps, the compressed formats, one seed")
    parser.add_argument("--steps", type=int, default=None, help="step budget of every task (task default)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds, 0..N-1 (3; 1 with --quick)")
    parser.add_argument("--tasks", default=None, help="comma-separated task names (all)")
    parser.add_argument("--rows", default=None,
                        help=f"comma-separated glob patterns over row keys, e.g. 'fast-*,torch-fused' ({BASELINE} "
                             "is always kept); --rows list prints the keys")
    parser.add_argument("--eager", action=argparse.BooleanOptionalAction, default=None,
                        help="fast.AdamW with compiled_optimizer=False (the default with --quick: compiling "
                             "every format's kernels takes 2-3 minutes on 2 cores, the whole quick budget)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1: these models are too small to gain from more, and "
                             "spinning worker threads slowed a 2-core machine under other load by ~20x)")
    parser.add_argument("--out", default=None,
                        help="directory for quality.md / .json / .png (benchmarks/results; a temp dir with --quick)")
    args = parser.parse_args()
    if args.rows == "list":
        print("\n".join(f"{r.key:18s} {r.states}" for r in all_rows()))
        return
    if args.long:
        if args.quick:
            parser.error("--long and --quick exclude each other")
        args.tasks = args.tasks or "digits"
        args.steps = args.steps or LONG_STEPS
        args.rows = args.rows or LONG_ROWS
        args.seeds = 1 if args.seeds is None else args.seeds
    tasks = make_tasks()
    names = [t.strip() for t in args.tasks.split(",")] if args.tasks else list(tasks)
    unknown = [n for n in names if n not in tasks]
    if unknown:
        parser.error(f"unknown task(s) {unknown}; choose from {list(tasks)}")
    seeds = list(range(args.seeds if args.seeds is not None else (1 if args.quick else 3)))
    rows = select_rows(args.rows)
    if args.eager is None:
        args.eager = args.quick
    if args.out is None:
        args.out = tempfile.mkdtemp(prefix="advopt-quality-quick-") if args.quick else str(bu.RESULTS)

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    info = bu.machine_info(torch.device("cpu"))
    info["load_average_start"] = bu.load_average()
    runs: list[Run] = []
    budgets: dict[str, int] = {}
    bar = tqdm(total=len(names) * len(rows) * len(seeds), unit="run", dynamic_ncols=True)
    for name in names:
        task = tasks[name]
        bar.set_description(f"{name}: preparing")
        task.prepare()
        budgets[name] = args.steps or (task.quick_steps if args.quick else task.steps)
        for seed in seeds:
            for row in rows:
                bar.set_description(f"{name} seed {seed} {row.key}")
                runs.append(train(task, row, seed, budgets[name], args.eager))
                bar.update()
    bar.close()
    info["load_average_end"] = bu.load_average()
    info["runtime"] = f"{time.perf_counter() - t0:.0f} s"

    try:
        import adv_optm

        adv_version = f"adv_optm {adv_optm.__version__} (eager, its default)"
    except ImportError:
        adv_version = "adv_optm not importable: its rows are not available " \
                      "(`.venv/bin/pip install --no-deps adv-optm==2.5.16` adds them)"
    summary = summarize(runs, rows, names, BASELINE)
    context = report_context({n: tasks[n] for n in names}, budgets, seeds, rows, adv_version,
                             eager=args.eager, quick=args.quick, long=args.long)
    os.makedirs(args.out, exist_ok=True)
    stem = "quality_long" if args.long else "quality"
    md, js, png = (os.path.join(args.out, f"{stem}.{ext}") for ext in ("md", "json", "png"))
    plot(runs, rows, names, context, BASELINE, png)
    write_markdown(summary, context, info, BASELINE, md, os.path.basename(png))
    with open(js, "w", encoding="utf-8") as f:
        json.dump({"machine": info, **context, "summary": summary, "runs": [asdict(r) for r in runs]},
                  f, indent=1, default=str)
    print()
    print(text_tables(summary, context))
    print(f"\nreport: {md}\ncurves: {png}\ndata:   {js}\nruntime {info['runtime']}")


if __name__ == "__main__":
    main()
