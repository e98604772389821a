"""Training quality of the optimizer-state formats: held-out loss at a fixed step budget.

Every AdamW row (an AdamW implementation with one state format) trains each task (benchmarks/tasks.py:
the digits MLP, and a LoRA fine-tune of a small diffusion model) from the same initialisation, on
the same minibatches, with the same hyperparameters, for each seed. The rows of the other fast
optimizers (Adafactor in OneTrainer's two modes, CAME, Automagic, AutomagicCAME) run through the same
loop (same initialisation, minibatches, weight decay and budget) at their own learning rate, chosen
per task by ``--sweep`` (seed 0, the full budget; its numbers are in SWEEP below and in the report).
The metric is the held-out loss after the last step (mean and spread over seeds), also as a ratio to
dense fp32 fast.AdamW. Beside
every optimizer step, torch.optim.AdamW(fused=True) steps a copy of the same trainable parameters
with the same gradients, so each row's step time is compared with fused torch measured at the same
moment. Rows that the installed fast or adv_optm cannot construct are reported as not available.

    .venv/bin/python benchmarks/quality.py [--quick | --long | --sweep] [--steps N] [--seeds N]
                                           [--tasks digits,...] [--rows 'fast-*,adv-fp32'] [--[no-]eager]
                                           [--out DIR]

``--long`` is the stability run: the classifier for 10,000 steps with the compressed formats, to
show that none of them reaches a non-finite loss (quality_long.md / .json / .png). ``--sweep``
trains every selected row that has candidates (Row.sweep) at each of them, one seed, at the full step
budget (eager: about 5 minutes on 2 cores; ``--quick``: the quick budget) and prints the held-out
losses, as a SWEEP literal to paste below (it writes sweep.json to --out).
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
# The held-out losses of `quality.py --sweep`, one per Row.sweep candidate in order; each row of
# another optimizer runs at the lowest (chosen()).
SWEEP: dict[str, Any] = {
    "setting": "digits 600 steps, diffusion-lora 600 steps; seed 0; eager; 2026-12-08; the 8-bit mask rows with "
               "the mask code before its change to binade levels, which moved their seed-0 losses at the chosen "
               "lrs by under 1 %",
    "baseline": {"digits": 0.11686, "diffusion-lora": 0.21113},
    "rows": {
        "fast-fp32": {
            "digits": [0.31501, 0.11686, 0.10683, 0.11019],
            "diffusion-lora": [0.2179, 0.21113, 0.20872, 0.21374],
        },
        "fast-adafactor-adamw": {
            "digits": [0.31656, 0.11761, 0.13465, 0.16219],
            "diffusion-lora": [0.21776, 0.21124, 0.20829, 0.21279],
        },
        "fast-came": {
            "digits": [0.25269, 0.11325, 0.13086, 0.32322],
            "diffusion-lora": [0.21132, 0.20816, 0.20805, 1.11715],
        },
        "fast-came-int8_sr": {
            "digits": [0.25365, 0.1131, 0.13042, 0.24898],
            "diffusion-lora": [0.21133, 0.20825, 0.20785, 1.00712],
        },
        "fast-automagic": {
            "digits": [0.16864, 0.1667, 0.1625, 0.14987, 0.12638, 0.11659, 0.13483, 0.12866],
            "diffusion-lora": [0.22083, 0.21642, 0.21135, 0.2106, 0.22864],
        },
        "fast-automagic-fp32": {
            "digits": [0.16819, 0.16667, 0.16264, 0.14998, 0.12673, 0.11523, 0.13604, 0.12992],
            "diffusion-lora": [0.2208, 0.21641, 0.21119, 0.2106, 0.22913],
        },
        "fast-automagic_came": {
            "digits": [0.09612, 0.09796, 0.10163, 0.1112, 0.13512, 0.32386, 0.25397, 0.63512],
            "diffusion-lora": [0.21061, 0.20819, 0.2078, 1.02978, 519737760.0],
        },
    },
}
LONG_ROWS = "torch-fused,fast-fp16,fast-int8_sr,fast-int4,fast-f2-int8_sr,fast-f2-int4,fast-bf16-params"
warnings.filterwarnings("ignore", message="bf16 and fp16 are mixed")  # inductor, for bf16 params


@dataclass(frozen=True)
class Row:
    key: str  # what --rows matches
    family: str  # torch / fast / adv
    precision: str = "fp32"  # AdamW's state_precision ("auto" follows the parameters' dtype)
    factored_2nd: bool = False
    dtype: torch.dtype = torch.float32  # of the trainable parameters
    optimizer: str = "AdamW"  # the fast class, fast.<optimizer> (family fast)
    # Another optimizer's keywords besides lr, weight decay, seed and compiled_optimizer ("lr": None
    # for Adafactor's relative step); per task, the keywords chosen by the sweep (lr, ...); per task,
    # the candidates --sweep tries; what the report calls its states.
    options: dict[str, Any] = field(default_factory=dict)
    tuned: dict[str, dict[str, Any]] = field(default_factory=dict)
    sweep: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    label: str = ""
    note: str = ""  # for the report: why these keywords

    @property
    def states(self) -> str:
        if self.label:
            return self.label
        if self.factored_2nd:
            return f"m {self.precision}, v factored"
        if self.dtype != torch.float32:
            return f"{str(self.dtype)[6:]} params, states {self.precision}"
        return self.precision


def lrs(*values: float, **fixed: Any) -> tuple[dict[str, Any], ...]:
    """Sweep candidates: one per learning rate, each with the keywords ``fixed``."""
    return tuple({"lr": v, **fixed} for v in values)


# The learning-rate candidates of the other optimizers, per task (AdamW's lr: digits 3e-4,
# diffusion-lora 1e-3); the reasons are the rows' notes. SWEEP holds what each scored.
ADAMW_LIKE = {"digits": lrs(1e-4, 3e-4, 1e-3, 3e-3), "diffusion-lora": lrs(3e-4, 1e-3, 3e-3, 1e-2)}
CAME_LRS = {"digits": lrs(1e-5, 3e-5, 1e-4, 3e-4), "diffusion-lora": lrs(1e-4, 3e-4, 1e-3, 3e-3)}
MASK_LRS = {"digits": (*lrs(1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3), *lrs(3e-3, max_lr=1e-2)),
            "diffusion-lora": (*lrs(1e-4, 3e-4, 1e-3), *lrs(3e-3, 1e-2, max_lr=1e-2))}


def other_rows() -> list[Row]:
    """The other fast optimizers, each at its own tuned keywords (SWEEP)."""
    def row(key: str, optimizer: str, label: str, sweep: dict[str, tuple[dict[str, Any], ...]], note: str,
            **options: Any) -> Row:
        return Row(key, "fast", optimizer=optimizer, options=options, label=label, sweep=sweep, note=note,
                   tuned={t: chosen(key, t, sweep.get(t, ())) for t in ("digits", "diffusion-lora")})

    mask = ("ai-toolkit's defaults (min_lr 1e-7, max_lr 1e-3, lr_bump 1e-6) but for the start lr: the mask moves by "
            "at most lr_bump per step (6e-4 over 600 steps), so its start sets most of the step size here; "
            "candidates from ai-toolkit's default start 1e-6 up on digits, from 1e-4 up on diffusion-lora (where the "
            "loss already rose towards the lower starts); max_lr 1e-2 for the starts above 1e-3")
    return [
        row("fast-adafactor-adaptive", "Adafactor", "Adafactor, relative step: v factored", {},
            "OneTrainer's adaptive mode: no learning rate, the relative step min(1e-2, 1/sqrt(t)) times "
            "max(1e-3, RMS(p)), transformers' defaults otherwise; nothing to sweep. A LoRA B matrix starts at 0, "
            "so its step stays 1e-5 until RMS(B) passes 1e-3.",
            lr=None, relative_step=True, scale_parameter=True, warmup_init=False),
        row("fast-adafactor-adamw", "Adafactor", "Adafactor, lr: m fp32, v factored", ADAMW_LIKE,
            "OneTrainer's low-memory AdamW mode: a constant lr, beta1 0.9 (a dense first moment), the factored "
            "second moment (beta2_t = 1 - t^-0.8) and the RMS clip at 1; it steps about lr per element, as "
            "AdamW does, so the candidates bracket AdamW's lr.",
            relative_step=False, scale_parameter=False, beta1=0.9),
        row("fast-came", "CAME", "CAME: m fp32, v + res. factored", CAME_LRS,
            "came-pytorch's betas (0.9, 0.999, 0.9999) and eps (1e-30, 1e-16); dividing m by the root of its "
            "instability EMA makes steady coordinates step more than lr, so the candidates lie at and below "
            "AdamW's lr (CAME is usually run at a smaller lr than AdamW)."),
        row("fast-came-int8_sr", "CAME", "CAME: m int8_sr, v + res. factored", CAME_LRS,
            "CAME 8-bit (OneTrainer's name): `state_precision='int8_sr'`, swept on its own, like `fast-came`.",
            state_precision="int8_sr"),
        row("fast-automagic", "Automagic", "Automagic: mask int8_sr, v factored", MASK_LRS,
            f"the 8-bit learning-rate mask (its default); {mask}."),
        row("fast-automagic-fp32", "Automagic", "Automagic: mask fp32, v factored", MASK_LRS,
            "the exact fp32 mask (`mask_precision='fp32'`), else as `fast-automagic`.", mask_precision="fp32"),
        row("fast-automagic_came", "AutomagicCAME", "AutomagicCAME: mask int8_sr, m fp32", MASK_LRS,
            f"CAME's update times the 8-bit mask, CAME's betas and eps; {mask}."),
    ]


def all_rows() -> list[Row]:
    rows = [Row("torch-fused", "torch")]
    # The baseline's candidates only show where AdamW's own (fixed) lr ranks in the same sweep.
    rows += [Row(f"fast-{p}", "fast", p, sweep=ADAMW_LIKE if p == "fp32" else {})
             for p in ("fp32", "bf16_sr", "fp16", "int8_sr", "int4", "factored")]
    rows += [Row(f"fast-f2-{p}", "fast", p, True) for p in ("fp32", "bf16_sr", "int8_sr", "int4")]
    rows.append(Row("fast-bf16-params", "fast", "auto", dtype=torch.bfloat16))
    rows += other_rows()
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
    hyper: dict[str, Any] = field(default_factory=dict)  # the optimizer's keywords (seed and compiling aside)
    mask_lr_end: float = math.nan  # Automagic's mean learning-rate mask after the last step


def chosen(key: str, task: str, candidates: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """The candidate with the lowest held-out loss in SWEEP (a non-finite one never wins); {} when
    the row has no candidates or no measurement for ``task``."""
    losses = SWEEP["rows"].get(key, {}).get(task)
    if not candidates or not losses or len(losses) != len(candidates):
        return {}
    finite = [x if math.isfinite(x) else math.inf for x in losses]
    return dict(candidates[finite.index(min(finite))])


def hyperparameters(row: Row, task: Task, override: dict[str, Any] | None = None) -> dict[str, Any]:
    """The keywords of ``row``'s optimizer on ``task``: AdamW's are the task's; another optimizer's
    are the task's lr and weight decay, its options, its tuned keywords, then ``override``."""
    if row.optimizer == "AdamW":
        return {"lr": task.lr, "betas": BETAS, "eps": EPS, "weight_decay": task.weight_decay, **(override or {})}
    return {"lr": task.lr, "weight_decay": task.weight_decay, **row.options, **row.tuned.get(task.name, {}),
            **(override or {})}


def make_optimizer(row: Row, params: list[torch.nn.Parameter], hyper: dict[str, Any], seed: int,
                   eager: bool) -> torch.optim.Optimizer:
    if row.family == "torch":
        return torch.optim.AdamW(params, fused=True, **hyper)
    if row.family == "fast" and row.optimizer != "AdamW":
        return getattr(fast, row.optimizer)(params, seed=seed, compiled_optimizer=not eager, **hyper)
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


def train(task: Task, row: Row, seed: int, steps: int, eager: bool, override: dict[str, Any] | None = None) -> Run:
    run = Run(task.name, row.key, seed, hyper=hyperparameters(row, task, override))
    model, params = task.build(seed, row.dtype)
    run.n_params = sum(p.numel() for p in params)
    torch.manual_seed(seed)
    try:
        opt = make_optimizer(row, params, run.hyper, seed, eager)
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
    if hasattr(opt, "get_avg_learning_rate"):
        run.mask_lr_end = opt.get_avg_learning_rate()
    if run.diverged_at is not None:
        run.status, run.note = "diverged", f"non-finite loss at step {run.diverged_at}"
    else:
        run.final = run.heldout[-1]
    return run


def report_context(tasks: dict[str, Task], budgets: dict[str, int], seeds: list[int], rows: list[Row], adv: str,
                   *, eager: bool, quick: bool, long: bool) -> dict[str, Any]:
    """What the report and the JSON say about a run besides its numbers."""
    def sweep_of(row: Row) -> dict[str, list[dict[str, Any]]]:
        losses = SWEEP["rows"].get(row.key, {})
        return {t: [{"kwargs": c, "heldout": x} for c, x in zip(cands, losses.get(t, []))]
                for t, cands in row.sweep.items() if t in tasks}

    return {"tasks": {n: {"description": t.describe(), "metric": t.metric, "lr": t.lr, "weight_decay": t.weight_decay,
                          "betas": BETAS, "eps": EPS, "steps": budgets[n], "batch": t.batch, "eval_every": t.eval_every}
                      for n, t in tasks.items()},
            "seeds": seeds, "eager": eager, "quick": quick, "long": long, "adv": adv,
            "rows": {r.key: {"family": r.family, "states": r.states, "dtype": str(r.dtype)[6:],
                             "optimizer": r.optimizer,
                             **({"hyper": {n: hyperparameters(r, t) for n, t in tasks.items()}, "sweep": sweep_of(r),
                                 "note": r.note}
                                if r.optimizer != "AdamW" or r.key == BASELINE else {})}
                     for r in rows},
            "sweep_setting": SWEEP["setting"], "sweep_baseline": SWEEP["baseline"]}


def candidate_text(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in kwargs.items())


def run_sweep(tasks: dict[str, Task], names: list[str], rows: list[Row], seeds: list[int], steps: int | None,
              quick: bool, eager: bool, out: str) -> None:
    """Every selected row at each of its candidates (and the baseline at the task's lr) on the task's
    budget (``quick``: the quick one); prints the held-out losses (mean over ``seeds``) and the SWEEP
    literal that holds them."""
    rows = [r for r in rows if any(r.sweep.get(n) for n in names) or r.key == BASELINE]
    jobs = [(n, r, c) for n in names for r in rows for c in (None, *r.sweep.get(n, ())) if c is not None
            or r.key == BASELINE]
    bar = tqdm(total=len(jobs) * len(seeds), unit="run", dynamic_ncols=True)
    losses: dict[tuple[str, str, int], list[float]] = {}
    budgets = {}
    for name in names:
        task = tasks[name]
        task.prepare()
        budgets[name] = steps or (task.quick_steps if quick else task.steps)
        for i, (n, row, cand) in enumerate(jobs):
            if n != name:
                continue
            for seed in seeds:
                bar.set_description(f"{name} seed {seed} {row.key} {candidate_text(cand or {}) or 'AdamW lr'}")
                run = train(task, row, seed, budgets[name], eager, cand)
                losses.setdefault((name, row.key, i), []).append(run.final if run.status == "ok" else math.nan)
                bar.update()
    bar.close()
    mean = {k: statistics.fmean(v) for k, v in losses.items()}
    base = {n: mean[(n, BASELINE, i)] for i, (n, r, c) in enumerate(jobs) if r.key == BASELINE and c is None}
    result: dict[str, Any] = {
        "setting": f"{', '.join(f'{n} {budgets[n]} steps' for n in names)}; seed{'s' * (len(seeds) > 1)} "
                   f"{', '.join(map(str, seeds))}; {'eager' if eager else 'compiled'}; "
                   f"{time.strftime('%Y-%m-%d', time.gmtime())}",
        "baseline": {n: round(x, 5) for n, x in base.items()}, "rows": {}}
    table = []
    for i, (n, row, cand) in enumerate(jobs):
        if cand is None:
            continue
        x = mean[(n, row.key, i)]
        result["rows"].setdefault(row.key, {}).setdefault(n, []).append(round(x, 5) if math.isfinite(x) else math.nan)
        table.append([row.key, n, candidate_text(cand), f"{x:.4f}", f"{x / base[n]:.4f}"])
    print()
    print(bu.text_table(["row", "task", "candidate", "held-out", "vs fast-fp32"], table))
    literal = repr(result).replace("nan", "math.nan")
    print(f"\nbaseline ({BASELINE} at the task's lr): {result['baseline']}\n\nSWEEP = {literal}")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "sweep.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)


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
    parser.add_argument("--sweep", action="store_true",
                        help="the learning-rate sweep of the other optimizers (their Row.sweep candidates) at "
                             "the full step budget (with --quick: the quick one), one seed; prints the SWEEP "
                             "literal")
    parser.add_argument("--long", action="store_true",
                        help=f"the stability run: digits, {LONG_STEPS:,} steps, the compressed formats, one seed")
    parser.add_argument("--steps", type=int, default=None, help="step budget of every task (task default)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds, 0..N-1 (3; 1 with --quick)")
    parser.add_argument("--tasks", default=None, help="comma-separated task names (all)")
    parser.add_argument("--rows", default=None,
                        help=f"comma-separated glob patterns over row keys, e.g. 'fast-*,torch-fused' ({BASELINE} "
                             "is always kept); --rows list prints the keys")
    parser.add_argument("--eager", action=argparse.BooleanOptionalAction, default=None,
                        help="fast optimizers with compiled_optimizer=False (the default with --quick and "
                             "--sweep: compiling every format's kernels takes 2-3 minutes on 2 cores, the whole "
                             "quick budget)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1: these models are too small to gain from more, and "
                             "spinning worker threads slowed a 2-core machine under other load by ~20x)")
    parser.add_argument("--out", default=None,
                        help="directory for quality.md / .json / .png (benchmarks/results; a temp dir with --quick)")
    args = parser.parse_args()
    if args.rows == "list":
        print("\n".join(f"{r.key:24s} {r.states}" for r in all_rows()))
        return
    if args.long and (args.quick or args.sweep):
        parser.error("--long excludes --quick and --sweep")
    if args.long:
        args.tasks = args.tasks or "digits"
        args.steps = args.steps or LONG_STEPS
        args.rows = args.rows or LONG_ROWS
        args.seeds = 1 if args.seeds is None else args.seeds
    tasks = make_tasks()
    names = [t.strip() for t in args.tasks.split(",")] if args.tasks else list(tasks)
    unknown = [n for n in names if n not in tasks]
    if unknown:
        parser.error(f"unknown task(s) {unknown}; choose from {list(tasks)}")
    seeds = list(range(args.seeds if args.seeds is not None else (1 if args.quick or args.sweep else 3)))
    rows = select_rows(args.rows)
    if args.eager is None:
        args.eager = args.quick or args.sweep
    if args.out is None:
        args.out = tempfile.mkdtemp(prefix="advopt-quality-quick-") if args.quick or args.sweep else str(bu.RESULTS)

    torch.set_num_threads(args.threads)
    if args.sweep:
        run_sweep(tasks, names, rows, seeds, args.steps, args.quick, args.eager, args.out)
        return
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
