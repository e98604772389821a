"""Demo: why bf16 training needs stochastic rounding, on a real (small) model.

An MLP learns scikit-learn's bundled digits (no download) four times from the same
initialisation and the same minibatches: torch AdamW in fp32, fast.AdamW in fp32, and
fast.AdamW on bf16 parameters with stochastic rounding and with plain round-to-nearest.
At a fine-tuning-sized learning rate Adam's updates (about lr per step) are smaller than
half the bf16 spacing of most weights, so round-to-nearest throws them away and training
stalls; stochastic rounding keeps them in expectation and tracks fp32.

    .venv/bin/python benchmarks/demo.py [--steps N] [--lr LR] [--eager]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import torch
from benchutil import (
    RESULTS,
    load_average,
    machine_info,
    markdown_table,
    quartiles,
    state_bytes,
    text_table,
    write_report,
)
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import fast

matplotlib.use("Agg")  # files only: the demo must run headless (CI, ssh); no figure exists yet

Data = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass
class Run:
    label: str
    dtype: torch.dtype
    style: dict[str, Any]  # matplotlib line style
    use_torch: bool = False  # torch.optim.AdamW instead of fast.AdamW
    stochastic_rounding: bool = True  # fast.AdamW on bf16 only
    eval_steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    step_ms: list[float] = field(default_factory=list)
    first_step_s: float = math.nan
    state_mb: float = math.nan


def load_data(seed: int) -> Data:
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=seed, stratify=y)
    # Standardise with training statistics only; constant (always-zero) pixels get sd 1.
    mu, sd = Xtr.mean(0), Xtr.std(0)
    sd[sd == 0] = 1.0
    f = torch.float32
    return (torch.tensor((Xtr - mu) / sd, dtype=f), torch.tensor(ytr),
            torch.tensor((Xte - mu) / sd, dtype=f), torch.tensor(yte))


def make_model(hidden: int, seed: int, dtype: torch.dtype) -> torch.nn.Module:
    torch.manual_seed(seed)  # identical fp32 init for every run; bf16 runs round that init
    model = torch.nn.Sequential(
        torch.nn.Linear(64, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, 10),
    )
    return model.to(dtype)


def batch_indices(n: int, batch: int, steps: int, seed: int) -> list[torch.Tensor]:
    """Shuffled epochs, drawn once so every run sees the same minibatches in the same order."""
    gen = torch.Generator().manual_seed(seed)
    out: list[torch.Tensor] = []
    while len(out) < steps:
        perm = torch.randperm(n, generator=gen)
        out += [perm[i:i + batch] for i in range(0, n - batch + 1, batch)]
    return out[:steps]


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: Data, dtype: torch.dtype) -> tuple[float, float]:
    Xtr, ytr, Xte, yte = data
    loss = torch.nn.functional.cross_entropy(model(Xtr.to(dtype)).float(), ytr).item()
    acc = (model(Xte.to(dtype)).argmax(1) == yte).float().mean().item()
    return loss, acc


def make_optimizer(run: Run, params: list[torch.nn.Parameter], args: argparse.Namespace) -> torch.optim.Optimizer:
    hyper = {"lr": args.lr, "weight_decay": args.weight_decay}
    if run.use_torch:
        return torch.optim.AdamW(params, **hyper)
    return fast.AdamW(params, stochastic_rounding=run.stochastic_rounding, seed=args.seed,
                      compiled_optimizer=not args.eager, **hyper)


def train(run: Run, data: Data, batches: list[torch.Tensor], args: argparse.Namespace) -> None:
    model = make_model(args.hidden, args.seed, run.dtype)
    params = list(model.parameters())
    opt = make_optimizer(run, params, args)
    Xtr, ytr = data[0].to(run.dtype), data[1]
    bar = tqdm(batches, desc=f"{run.label:34s}", unit="step", leave=True, dynamic_ncols=True)
    for step, idx in enumerate(bar):
        if step % args.eval_every == 0:
            loss, acc = evaluate(model, data, run.dtype)
            run.eval_steps.append(step)
            run.train_loss.append(loss)
            run.test_acc.append(acc)
            bar.set_postfix(loss=f"{loss:.4f}", acc=f"{acc:.3f}")
        out = model(Xtr[idx]).float()  # loss in fp32 even for the bf16 model
        loss_t = torch.nn.functional.cross_entropy(out, ytr[idx])
        opt.zero_grad(set_to_none=True)
        loss_t.backward()
        t0 = time.perf_counter()
        opt.step()
        dt = time.perf_counter() - t0
        if step == 0:
            run.first_step_s = dt  # includes the compile for fast.AdamW
        else:
            run.step_ms.append(dt * 1e3)
    loss, acc = evaluate(model, data, run.dtype)
    run.eval_steps.append(len(batches))
    run.train_loss.append(loss)
    run.test_acc.append(acc)
    run.state_mb = state_bytes(opt) / 1e6


def plot(runs: list[Run], args: argparse.Namespace, path: str) -> None:
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.3), dpi=130)
    for r in runs:
        ax_loss.plot(r.eval_steps, r.train_loss, label=r.label, **r.style)
        ax_acc.plot(r.eval_steps, [100 * a for a in r.test_acc], label=r.label, **r.style)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training-set cross-entropy (log scale)")
    ax_loss.set_title("training loss")
    ax_acc.set_xlabel("step")
    ax_acc.set_ylabel("test accuracy (%)")
    ax_acc.set_title("test accuracy")
    # The early climb from 10 % says nothing; the interesting spread is near the top.
    ax_acc.set_ylim(max(0.0, 100 * min(min(r.test_acc[len(r.test_acc) // 4:]) for r in runs) - 5), 100)
    for ax in (ax_loss, ax_acc):
        ax.grid(True, which="both", alpha=0.3)
    ax_loss.legend(loc="lower left", fontsize=8.5)
    # Three of the four curves coincide; say so, or readers hunt for the missing lines.
    ax_loss.text(0.98, 0.97, "fp32 (torch, fast) and bf16 + stochastic rounding overlap",
                 transform=ax_loss.transAxes, ha="right", va="top", fontsize=8, color="0.3")
    fig.suptitle(f"MLP on sklearn digits, AdamW lr={args.lr:g}, batch {args.batch}: "
                 "bf16 weights need stochastic rounding")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def table(runs: list[Run]) -> tuple[list[str], list[list[object]]]:
    headers = ["optimizer", "params", "final train loss", "test accuracy", "optimizer state MB",
               "median ms/step (opt.step)", "first step s"]
    rows: list[list[object]] = [
        [r.label, str(r.dtype)[6:], f"{r.train_loss[-1]:.4f}", f"{100 * r.test_acc[-1]:.1f} %",
         f"{r.state_mb:.3f}", f"{quartiles(r.step_ms)[1]:.3f}", f"{r.first_step_s:.2f}"]
        for r in runs
    ]
    return headers, rows


def write_markdown(runs: list[Run], args: argparse.Namespace, info: dict[str, Any], path: str) -> None:
    fp32, sr, rne = runs[0], runs[2], runs[3]
    init = torch.cat([p.detach().flatten() for p in make_model(args.hidden, args.seed, torch.float32).parameters()])
    n_params = init.numel()
    # An update u is lost to round-to-nearest once u < half the bf16 spacing 2^(e-7) of |w| in [2^e, 2^(e+1)).
    frozen_from = 2.0 ** math.ceil(math.log2(args.lr) + 8)
    frozen_share = (init.abs() >= frozen_from).float().mean().item()
    lines = [
        "# Demo: bf16 training with and without stochastic rounding",
        "",
        f"MLP 64-{args.hidden}-{args.hidden}-10 ({n_params:,} parameters) on scikit-learn's digits "
        f"(1,347 training / 450 test images, standardised), {args.steps} AdamW steps, batch {args.batch}, "
        f"lr={args.lr:g}, weight_decay={args.weight_decay:g}, seed {args.seed}: the same initialisation "
        "and minibatches for every row. bf16 rows run the forward pass in bf16 and the loss in fp32. "
        f"fast.AdamW {'eager' if args.eager else 'compiled (compiled_optimizer=True)'}.",
        "",
        *markdown_table(*table(runs)),
        "",
        f"- bf16 with round-to-nearest ends at {rne.train_loss[-1] / fp32.train_loss[-1]:.1f}x the fp32 "
        f"training loss ({rne.train_loss[-1]:.4f} vs {fp32.train_loss[-1]:.4f}); with stochastic rounding "
        f"at {sr.train_loss[-1] / fp32.train_loss[-1]:.2f}x. Adam moves a weight by about lr = {args.lr:g} "
        f"per step; round-to-nearest drops any move below half the bf16 spacing, i.e. every update of "
        f"a weight with |w| >= {frozen_from:.3g}, which is {100 * frozen_share:.0f} % of the weights at "
        "initialisation. Stochastic rounding keeps each update in expectation.",
        "- **final train loss**: cross-entropy on the whole training set after the last step; "
        "**test accuracy** on the held-out 25 %.",
        "- **optimizer state MB**: bytes of all state tensors / 1e6 (fast.AdamW keeps fp32 moments "
        "for bf16 parameters).",
        "- **median ms/step**: `opt.step()` alone, steps 2 onwards; **first step** includes "
        "compiling the fused kernel (cached by torch's inductor for later runs).",
        "",
        "![Training loss and test accuracy](demo_loss.png)",
        "",
    ]
    write_report(path, lines, info)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--eval-every", type=int, default=20, help="steps between full-set evaluations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eager", action="store_true", help="fast.AdamW with compiled_optimizer=False")
    parser.add_argument("--out", default=str(RESULTS), help="directory for demo.md / demo_loss.png")
    args = parser.parse_args()

    t0, load_start = time.perf_counter(), load_average()
    data = load_data(args.seed)
    batches = batch_indices(len(data[0]), args.batch, args.steps, args.seed)
    runs = [
        Run("torch AdamW", torch.float32, {"color": "0.55", "lw": 4.0, "alpha": 0.6}, use_torch=True),
        Run("fast.AdamW", torch.float32, {"color": "tab:blue", "lw": 1.6, "ls": "--"}),
        Run("fast.AdamW + stochastic rounding", torch.bfloat16, {"color": "tab:green", "lw": 1.6, "ls": ":"}),
        Run("fast.AdamW, round-to-nearest", torch.bfloat16, {"color": "tab:red", "lw": 1.8},
            stochastic_rounding=False),
    ]
    for r in runs:
        train(r, data, batches, args)

    info = machine_info(torch.device("cpu"))
    info["load_average_start"], info["load_average_end"] = load_start, load_average()
    os.makedirs(args.out, exist_ok=True)
    png, md = os.path.join(args.out, "demo_loss.png"), os.path.join(args.out, "demo.md")
    plot(runs, args, png)
    write_markdown(runs, args, info, md)
    print()
    print(text_table(*table(runs)))
    print(f"\nloss curves: {png}\ntable: {md}\nruntime {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
