"""Demo: bf16 training with and without stochastic rounding, and compressed optimizer states,
on a real (small) model.

An MLP learns scikit-learn's bundled digits (no download) from the same initialisation and the same
minibatches with: torch AdamW in fp32; fast.AdamW in fp32; fast.AdamW on bf16 parameters with stochastic
rounding and with plain round-to-nearest (fp32 states, so only the parameter write differs); fast.AdamW on
fp32 parameters with compressed states (state_precision "bf16_sr", "int8_sr" and "factored"), all at the same
learning rate; and, for comparison, fast.Prodigy (lr=1), fast.Lion (that lr / 3), fast.Adafactor in OneTrainer's
adaptive mode (no lr: the relative step), fast.CAME (that lr / 3) and fast.Automagic (its 8-bit learning-rate
mask starting at that lr). At a fine-tuning-sized
learning rate Adam's updates (about lr per step) are smaller than half the bf16 spacing of most weights, so
round-to-nearest throws them away and training stalls; stochastic rounding keeps them in expectation and
tracks fp32. The compressed-state runs are compared with dense fast.AdamW's final training loss.

    .venv/bin/python benchmarks/demo.py [--steps N] [--lr LR] [--eager] [--threads N] [--out DIR]
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
import matplotlib.ticker
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
from tasks import Data, batch_indices, digits_data, digits_mlp
from tqdm import tqdm

import fast
from spec.storage_layout import CODES

matplotlib.use("Agg")  # files only: the demo must run headless (CI, ssh); no figure exists yet

LION_LR_DIVISOR = 3.0  # Lion's sign step moves every weight by lr: its authors use a 3-10x smaller lr than AdamW
# CAME divides its momentum by the root of the update's instability EMA, so steady coordinates step more than
# lr: it is run at a smaller lr than AdamW (its authors: about 1/5). On this task lr / 3 trains well within the
# 2,000 steps (measured with the defaults: training loss 0.003, AdamW's 0.028; lr / 10 ends at 0.06).
CAME_LR_DIVISOR = 3.0


@dataclass
class Run:
    key: str
    label: str
    dtype: torch.dtype
    style: dict[str, Any]  # matplotlib line style
    use_torch: bool = False  # torch.optim.AdamW instead of a fast optimizer
    fast_class: str = "AdamW"  # the fast optimizer (fast.<name>) when not use_torch
    lr: float | None = None  # None: the demo's lr (--lr)
    options: dict[str, Any] = field(default_factory=dict)  # further keywords of a fast optimizer other than AdamW
    state_label: str = ""  # what the states column says for an optimizer other than AdamW (default fp32)
    stochastic_rounding: bool = True  # fast.AdamW on bf16 only
    state_precision: str = "fp32"  # fast.AdamW's state storage
    factored_2nd: bool = False
    loss_target: float | None = None  # quality target: |final loss / dense fast.AdamW's - 1| <= this
    diagnose: bool = False  # compare every update with dense Adam's on the same gradients (fp32 params)
    eval_steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    step_ms: list[float] = field(default_factory=list)
    first_step_s: float = math.nan
    state_mb: float = math.nan
    state_bytes_per_param: float = math.nan
    diverged_at: int | None = None  # first evaluation with a non-finite training loss
    cos: list[float] = field(default_factory=list)  # per step: cosine(update, dense Adam's update)
    norm_ratio: list[float] = field(default_factory=list)  # per step: |update| / |dense Adam's update|
    max_update_lr: float = 0.0  # largest |update| of one element in one step, in units of lr
    zero_v_codes: list[float] = field(default_factory=list)  # per step: share of int8 v codes = 0 (the smallest level)

    @property
    def states(self) -> str:
        if self.use_torch:
            return "fp32"
        if self.fast_class != "AdamW":
            return self.state_label or "fp32"
        return f"{self.state_precision}{' + factored_2nd' if self.factored_2nd else ''}"


class DenseAdam:
    """Dense fp32 Adam moments fed with the gradients of another run: the update that run would
    take with uncompressed states, to measure what the compression changes, step by step."""

    def __init__(self, params: list[torch.Tensor], lr: float, betas: tuple[float, float], eps: float) -> None:
        self.m = [torch.zeros_like(p, dtype=torch.float32) for p in params]
        self.v = [torch.zeros_like(p, dtype=torch.float32) for p in params]
        self.lr, (self.b1, self.b2), self.eps, self.t = lr, betas, eps, 0

    def update(self, grads: list[torch.Tensor]) -> torch.Tensor:
        self.t += 1
        bc1, bc2 = 1 - self.b1**self.t, 1 - self.b2**self.t
        out = []
        for m, v, g in zip(self.m, self.v, grads):
            m.mul_(self.b1).add_(g, alpha=1 - self.b1)
            v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            out.append((self.lr / bc1 * m / ((v / bc2).sqrt() + self.eps)).flatten())
        return torch.cat(out)


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: Data, dtype: torch.dtype) -> tuple[float, float]:
    Xtr, ytr, Xte, yte = data
    loss = torch.nn.functional.cross_entropy(model(Xtr.to(dtype)).float(), ytr).item()
    acc = (model(Xte.to(dtype)).argmax(1) == yte).float().mean().item()
    return loss, acc


def make_optimizer(run: Run, params: list[torch.nn.Parameter], args: argparse.Namespace) -> torch.optim.Optimizer:
    hyper = {"lr": args.lr if run.lr is None else run.lr, "weight_decay": args.weight_decay}
    if run.use_torch:
        return torch.optim.AdamW(params, **hyper)
    if run.fast_class != "AdamW":  # the others: their defaults but for lr, the shared weight decay and options
        return getattr(fast, run.fast_class)(params, seed=args.seed, compiled_optimizer=not args.eager,
                                             **{**hyper, **run.options})
    return fast.AdamW(params, stochastic_rounding=run.stochastic_rounding, state_precision=run.state_precision,
                      factored_2nd=run.factored_2nd, seed=args.seed, compiled_optimizer=not args.eager, **hyper)


def zero_v_share(opt: torch.optim.Optimizer) -> float | None:
    """Share of the second moment's int8 codes that are 0 (None when v is not stored as codes)."""
    codes = [st["exp_avg_sq"] for st in opt.state.values()
             if "exp_avg_sq" in st and not st["exp_avg_sq"].is_floating_point()]
    return sum((c == 0).sum().item() for c in codes) / sum(c.numel() for c in codes) if codes else None


def train(run: Run, data: Data, batches: list[torch.Tensor], args: argparse.Namespace) -> None:
    model = digits_mlp(args.hidden, args.seed, run.dtype)
    params = list(model.parameters())
    opt = make_optimizer(run, params, args)
    group = opt.param_groups[0]
    shadow = DenseAdam(params, args.lr, group["betas"], group["eps"]) if run.diagnose else None
    Xtr, ytr = data[0].to(run.dtype), data[1]
    bar = tqdm(batches, desc=f"{run.label:42s}", unit="step", leave=True, dynamic_ncols=True)
    for step, idx in enumerate(bar):
        if step % args.eval_every == 0:
            loss, acc = evaluate(model, data, run.dtype)
            run.eval_steps.append(step)
            run.train_loss.append(loss)
            run.test_acc.append(acc)
            bar.set_postfix(loss=f"{loss:.4f}", acc=f"{acc:.3f}")
            if not math.isfinite(loss):  # nothing more to learn from this run
                run.diverged_at = step
                bar.close()
                break
        out = model(Xtr[idx]).float()  # loss in fp32 even for the bf16 model
        loss_t = torch.nn.functional.cross_entropy(out, ytr[idx])
        opt.zero_grad(set_to_none=True)
        loss_t.backward()
        before = torch.cat([p.detach().flatten() for p in params]) if shadow else None
        t0 = time.perf_counter()
        opt.step()
        dt = time.perf_counter() - t0
        if step == 0:
            run.first_step_s = dt  # includes the compile for fast.AdamW
        else:
            run.step_ms.append(dt * 1e3)
        if shadow is not None:
            # The step is p <- p - lr*wd*p - U, so U = (1 - lr*wd) p_before - p_after.
            after = torch.cat([p.detach().flatten() for p in params])
            U = (1 - args.lr * args.weight_decay) * before - after
            D = shadow.update([p.grad for p in params])
            run.cos.append(torch.nn.functional.cosine_similarity(U, D, dim=0).item())
            run.norm_ratio.append((U.norm() / D.norm()).item())
            run.max_update_lr = max(run.max_update_lr, U.abs().max().item() / args.lr)
            share = zero_v_share(opt)
            if share is not None:
                run.zero_v_codes.append(share)
    else:
        loss, acc = evaluate(model, data, run.dtype)
        run.eval_steps.append(len(batches))
        run.train_loss.append(loss)
        run.test_acc.append(acc)
    run.state_mb = state_bytes(opt) / 1e6
    run.state_bytes_per_param = state_bytes(opt) / sum(p.numel() for p in params)


def finite_quartiles(xs: list[float]) -> tuple[float, float, float]:
    xs = [x for x in xs if math.isfinite(x)]
    return quartiles(xs) if xs else (math.nan, math.nan, math.nan)


def plot(runs: list[Run], args: argparse.Namespace, path: str) -> None:
    dense = next(r for r in runs if r.key == "fast")
    fig, (ax_loss, ax_rel, ax_acc) = plt.subplots(1, 3, figsize=(16, 5.4), dpi=120)
    for r in runs:
        ax_loss.plot(r.eval_steps, r.train_loss, label=r.label, **r.style)
        # AdamW rows only: the other optimizers are far off this panel's scale.
        n = min(len(r.train_loss), len(dense.train_loss)) if r.fast_class == "AdamW" else 0
        rel = [a / b for a, b in zip(r.train_loss[:n], dense.train_loss[:n])]
        ax_rel.plot(r.eval_steps[:n], rel, label=r.label, **r.style)
        ax_acc.plot(r.eval_steps, [100 * a for a in r.test_acc], label=r.label, **r.style)
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("training-set cross-entropy (log scale)")
    ax_loss.set_title("training loss")
    ax_rel.set_yscale("log")
    ax_rel.set_ylim(0.7, 8)
    ax_rel.set_yticks([0.8, 1, 1.5, 2, 3, 4, 6, 8])
    ax_rel.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax_rel.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax_rel.set_ylabel("loss / dense fast.AdamW's loss (log, clipped)")
    ax_rel.set_title("training loss relative to dense fast.AdamW")
    ax_acc.set_ylabel("test accuracy (%)")
    ax_acc.set_title("test accuracy")
    # The early climb from 10 % says nothing; the interesting spread is near the top.
    finals = [r.test_acc[-1] for r in runs if r.diverged_at is None]
    ax_acc.set_ylim(max(0.0, 100 * min(finals) - 5), 100)
    for ax in (ax_loss, ax_rel, ax_acc):
        ax.set_xlabel("step")
        ax.grid(True, which="both", alpha=0.3)
    fig.legend(*ax_loss.get_legend_handles_labels(), loc="lower center", ncol=5, fontsize=8)  # below: it hid curves
    ends = [f"{r.label} diverged (NaN) at step {r.diverged_at}" for r in runs if r.diverged_at is not None]
    note = "AdamW rows only; curves within 1 % of dense fast.AdamW overlap" + "".join(f"\n{e}" for e in ends)
    ax_rel.text(0.98, 0.97, note, transform=ax_rel.transAxes, ha="right", va="top", fontsize=7.5, color="0.3")
    fig.suptitle(f"MLP on sklearn digits, AdamW lr={args.lr:g}, batch {args.batch}: bf16 weights need "
                 "stochastic rounding; compressed optimizer states vs dense; other optimizers for comparison")
    fig.tight_layout(rect=(0, 0.13, 1, 1))  # room for the legend
    fig.savefig(path)
    plt.close(fig)


def rel_loss(run: Run, dense: Run) -> float:
    return run.train_loss[-1] / dense.train_loss[-1] - 1


def loss_text(x: float) -> str:
    return f"{x:.4f}" if x >= 1e-3 else f"{x:.2e}"  # a loss near 0 keeps its digits


def final_loss_text(r: Run) -> str:
    return f"diverged (NaN) at step {r.diverged_at}" if r.diverged_at is not None else loss_text(r.train_loss[-1])


def table(runs: list[Run], wide: bool = True) -> tuple[list[str], list[list[object]]]:
    """``wide``: the Markdown version; else the terminal's, which fits 100 columns (the labels name the
    parameter dtype and the states)."""
    dense = next(r for r in runs if r.key == "fast")
    headers = ["optimizer", "params", "states", "final train loss", "vs dense fast.AdamW", "target",
               "test accuracy", "state B/param", "optimizer state MB", "median ms/step (opt.step)", "first step s"]
    if not wide:
        headers = ["optimizer", "train loss", "vs dense", "target", "test acc", "B/param", "ms/step"]
    rows: list[list[object]] = []
    for r in runs:
        rel = rel_loss(r, dense)
        if r.loss_target is None:
            target = "-"
        else:
            met = r.diverged_at is None and math.isfinite(rel) and abs(rel) <= r.loss_target
            target = (f"within {100 * r.loss_target:.0f} %: {'met' if met else 'missed'}" if wide
                      else f"{100 * r.loss_target:.0f} % {'met' if met else 'missed'}")
        vs = "-" if r is dense else ("n/a" if not math.isfinite(rel) else f"{100 * rel:+.1f} %")
        if not wide:
            loss = f"NaN @{r.diverged_at}" if r.diverged_at is not None else loss_text(r.train_loss[-1])
            rows.append([r.label, loss, vs, target, f"{100 * r.test_acc[-1]:.1f} %", f"{r.state_bytes_per_param:.2f}",
                         f"{quartiles(r.step_ms)[1]:.3f}"])
            continue
        rows.append([
            r.label, str(r.dtype)[6:], r.states, final_loss_text(r), vs, target,
            f"{100 * r.test_acc[-1]:.1f} %", f"{r.state_bytes_per_param:.3f}", f"{r.state_mb:.3f}",
            f"{quartiles(r.step_ms)[1]:.3f}", f"{r.first_step_s:.2f}",
        ])
    return headers, rows


def diagnostics_table(runs: list[Run], wide: bool = True) -> tuple[list[str], list[list[object]]]:
    """``wide``: the Markdown version; else the terminal's (medians only, the labels name the states)."""
    headers = ["optimizer", "states", "cos(U, dense Adam U): median (IQR)", "|U| / |dense Adam U|: median (IQR)",
               "max |U| / lr", "int8 v at code 0 (smallest level): after step 1, median", "steps"]
    if not wide:
        headers = ["optimizer", "cos(U, Adam U)", "|U| / |Adam U|", "max |U| / lr", "v code 0", "steps"]
    rows: list[list[object]] = []
    for r in runs:
        if not r.diagnose:
            continue
        c, n = finite_quartiles(r.cos), finite_quartiles(r.norm_ratio)
        zs = r.zero_v_codes
        z = "-" if not zs else f"{100 * zs[0]:.0f} %, {100 * quartiles(zs)[1]:.0f} %"
        if not wide:
            norm = f"{n[1]:.3f}" if n[1] < 100 else f"{n[1]:.3g}"  # a diverging run's ratios are huge
            rows.append([r.label, f"{c[1]:.3f}", norm, f"{r.max_update_lr:.3g}", z, str(len(r.cos))])
            continue
        rows.append([r.label, r.states, f"{c[1]:.3f} ({c[0]:.3f}-{c[2]:.3f})", f"{n[1]:.3f} ({n[0]:.3f}-{n[2]:.3f})",
                     f"{r.max_update_lr:.3g}", z, str(len(r.cos))])
    return headers, rows


def findings(runs: list[Run]) -> list[str]:
    """What the diagnostics say about the compressed-state runs, in numbers from this run."""
    by = {r.key: r for r in runs}
    dense, out = by["fast"], []
    int8 = by.get("int8_sr")
    if int8 is not None and int8.max_update_lr > 10 and int8.zero_v_codes:
        z0, z = int8.zero_v_codes[0], quartiles(int8.zero_v_codes)[1]
        v = CODES[("int8", False)]
        outcome = (f"diverges (NaN at step {int8.diverged_at})" if int8.diverged_at is not None
                   else f"ends at {100 * rel_loss(int8, dense):+.1f} % from dense fast.AdamW's loss")
        out.append(
            f"- **int8_sr** {outcome}. Its second moment is stored as zero-free {v.exp_bits}-bit-exponent, "
            f"{v.man_bits}-bit-mantissa codes with one fp32 scale per block of {v.block}, the block's largest v "
            f"at the top level; values below the lowest binade store its smallest level. After the first step "
            f"{100 * z0:.0f} % of all v codes were that smallest level (a median of {100 * z:.0f} % over the steps "
            f"run). The largest single update was {int8.max_update_lr:.3g} lr (the dense run's largest: "
            f"{dense.max_update_lr:.3g} lr)."
            + (" Such updates compound until the loss overflows." if int8.diverged_at is not None else "")
        )
    fac, f2 = by.get("factored"), by.get("factored_2nd")
    if fac is not None and fac.cos and abs(rel_loss(fac, dense)) > 0.03:
        c, n = finite_quartiles(fac.cos)[1], finite_quartiles(fac.norm_ratio)[1]
        text = (f"- **factored** ends at {100 * rel_loss(fac, dense):+.1f} % from dense fast.AdamW's loss: its "
                f"updates have a median cosine of {c:.2f} with the dense-Adam update for the same gradients "
                f"and are {n:.2f}x as long" + (", so it trains more slowly at the same lr." if n < 1 else "."))
        if f2 is not None and f2.cos:
            c2, n2 = finite_quartiles(f2.cos)[1], finite_quartiles(f2.norm_ratio)[1]
            text += (f" Factoring only the second moment (factored_2nd, first moment dense) keeps a cosine of "
                     f"{c2:.2f} and {n2:.2f}x the length and ends at {100 * rel_loss(f2, dense):+.1f} %: the "
                     "gap comes from the factored first moment (1-bit signs times a rank-1 magnitude), whose "
                     "EMA restarts every step from a rank-1 approximation of its magnitudes.")
        out.append(text)
    return out


def write_markdown(runs: list[Run], args: argparse.Namespace, info: dict[str, Any], path: str) -> None:
    by = {r.key: r for r in runs}
    fp32, sr, rne = by["fast"], by["bf16_sr_params"], by["bf16_rne_params"]
    init = torch.cat([p.detach().flatten() for p in digits_mlp(args.hidden, args.seed, torch.float32).parameters()])
    n_params = init.numel()
    # An update u is lost to round-to-nearest once u < half the bf16 spacing 2^(e-7) of |w| in [2^e, 2^(e+1)).
    frozen_from = 2.0 ** math.ceil(math.log2(args.lr) + 8)
    frozen_share = (init.abs() >= frozen_from).float().mean().item()
    lines = [
        "# Demo: bf16 training with stochastic rounding, and compressed optimizer states",
        "",
        f"MLP 64-{args.hidden}-{args.hidden}-10 ({n_params:,} parameters) on scikit-learn's digits "
        f"(1,347 training / 450 test images, standardised), {args.steps} steps, batch {args.batch}, "
        f"lr={args.lr:g}, weight_decay={args.weight_decay:g}, seed {args.seed}: the same initialisation, "
        "minibatches for every row and hyperparameters for every AdamW row (no per-row tuning). bf16 rows run "
        "the forward pass in bf16 and the loss in fp32, and keep fp32 states so that only the parameter write "
        f"differs. fast optimizers {'eager' if args.eager else 'compiled (compiled_optimizer=True)'}; a run "
        f"stops at the first evaluation (every {args.eval_every} steps) with a non-finite loss.",
        "",
        *markdown_table(*table(runs)),
        "",
        f"- bf16 with round-to-nearest ends at {rne.train_loss[-1] / fp32.train_loss[-1]:.1f}x the fp32 "
        f"training loss ({rne.train_loss[-1]:.4f} vs {fp32.train_loss[-1]:.4f}); with stochastic rounding "
        f"at {sr.train_loss[-1] / fp32.train_loss[-1]:.2f}x. Adam moves a weight by about lr = {args.lr:g} "
        f"per step; round-to-nearest drops any move below half the bf16 spacing, i.e. every update of "
        f"a weight with |w| >= {frozen_from:.3g}, which is {100 * frozen_share:.0f} % of the weights at "
        "initialisation. Stochastic rounding keeps each update in expectation.",
        "- **states**: fast.AdamW's `state_precision` (fp32 parameters for the compressed rows); "
        "*factored_2nd* factors only the second moment (no target; it isolates the first moment's "
        "share of factored's gap). fast.Prodigy: lr=1 (learning-rate free), other hyperparameters default; "
        f"fast.Lion: lr={args.lr / LION_LR_DIVISOR:.3g} (the AdamW lr / {LION_LR_DIVISOR:g}, as Lion's sign "
        "steps need); fast.Adafactor in OneTrainer's adaptive mode (`lr=None`: the relative step "
        "min(1e-2, 1/sqrt(t)) times max(1e-3, RMS(p))); "
        f"fast.CAME: lr={args.lr / CAME_LR_DIVISOR:.3g} (the AdamW lr / {CAME_LR_DIVISOR:g}: CAME runs at a "
        "smaller lr than AdamW); fast.Automagic: its per-element learning-rate mask starts at the AdamW lr and "
        "moves by 1e-6 per step within [1e-7, 1e-3] (ai-toolkit's defaults), stored in 8 bits. All of them "
        "with the same weight decay and their other defaults; Prodigy and Lion keep fp32 states (Prodigy's "
        "`s`, `p0` counted), Adafactor, CAME and Automagic factor their second moments (CAME its residual "
        "too). "
        "**vs dense fast.AdamW**: final training loss / the fp32 fast.AdamW "
        "row's - 1; the targets are factored within 3 %, int8_sr and bf16_sr within 1 %.",
        "- **final train loss**: cross-entropy on the whole training set after the last step; "
        "**test accuracy** on the held-out 25 %.",
        "- **state B/param**: bytes of all state tensors / number of parameters (biases keep dense fp32 "
        "states in the factored modes); **optimizer state MB**: the same bytes / 1e6.",
        "- **median ms/step**: `opt.step()` alone, steps 2 onwards; **first step** includes "
        "compiling the fused kernel (cached by torch's inductor for later runs).",
        "",
        "![Training loss and test accuracy](demo_loss.png)",
        "",
        "## Why the compressed states differ",
        "",
        "For the fp32-parameter fast.AdamW rows a dense fp32 Adam is fed the same gradients alongside, and "
        "every step's update U = (1 - lr wd) p_before - p_after is compared with the update it would take "
        "(dense fast.AdamW is the control: cos 1 and ratio 1 up to fp32 rounding).",
        "",
        *markdown_table(*diagnostics_table(runs)),
        "",
        *findings(runs),
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
    parser.add_argument("--eager", action="store_true", help="fast optimizers with compiled_optimizer=False")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1: this MLP is too small to gain from more, and spinning "
                             "worker threads made the demo 3x slower on a 2-core machine under other load)")
    parser.add_argument("--out", default=str(RESULTS.parents[1] / "results" / "demo"),
                        help="directory for demo.md / demo_loss.png (an untracked folder; `make demo-docs` "
                             "writes the docs' copies to benchmarks/results)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    t0, load_start = time.perf_counter(), load_average()
    data = digits_data(args.seed)
    batches = batch_indices(len(data[0]), args.batch, args.steps, args.seed)
    f32, bf16 = torch.float32, torch.bfloat16
    runs = [
        Run("torch", "torch AdamW", f32, {"color": "0.55", "lw": 4.0, "alpha": 0.6}, use_torch=True),
        Run("fast", "fast.AdamW", f32, {"color": "tab:blue", "lw": 1.6, "ls": "--"}, diagnose=True),
        Run("bf16_sr_params", "fast.AdamW + stochastic rounding", bf16,
            {"color": "tab:green", "lw": 1.6, "ls": ":"}),
        Run("bf16_rne_params", "fast.AdamW, round-to-nearest", bf16, {"color": "tab:red", "lw": 1.8},
            stochastic_rounding=False),
        Run("bf16_sr", "fast.AdamW, bf16_sr states", f32, {"color": "tab:purple", "lw": 1.4, "ls": "-."},
            state_precision="bf16_sr", loss_target=0.01, diagnose=True),
        Run("int8_sr", "fast.AdamW, int8_sr states", f32, {"color": "tab:orange", "lw": 1.6},
            state_precision="int8_sr", loss_target=0.01, diagnose=True),
        Run("factored", "fast.AdamW, factored states", f32, {"color": "tab:brown", "lw": 1.6},
            state_precision="factored", loss_target=0.03, diagnose=True),
        Run("factored_2nd", "fast.AdamW, factored_2nd", f32, {"color": "tab:olive", "lw": 1.4, "ls": "--"},
            state_precision="fp32", factored_2nd=True, diagnose=True),
        Run("prodigy", "fast.Prodigy, lr=1", f32, {"color": "tab:cyan"}, fast_class="Prodigy", lr=1.0),
        Run("lion", "fast.Lion, lr / 3", f32, {"color": "tab:pink"}, fast_class="Lion", lr=args.lr / LION_LR_DIVISOR),
        Run("adafactor", "fast.Adafactor, relative step", f32, {"color": "darkgoldenrod", "lw": 1.4},
            fast_class="Adafactor", state_label="v factored",
            options={"lr": None, "relative_step": True, "scale_parameter": True, "warmup_init": False}),
        Run("came", "fast.CAME, lr / 3", f32, {"color": "tab:gray", "lw": 1.4, "ls": "--"}, fast_class="CAME",
            lr=args.lr / CAME_LR_DIVISOR, state_label="m fp32, v + res. factored"),
        Run("automagic", "fast.Automagic, mask from lr", f32, {"color": "black", "lw": 1.2}, fast_class="Automagic",
            lr=args.lr, options={"max_lr": max(1e-3, args.lr)}, state_label="mask int8_sr, v factored"),
    ]
    for r in runs:
        train(r, data, batches, args)

    info = machine_info(torch.device("cpu"))
    info["load_average_start"], info["load_average_end"] = load_start, load_average()
    os.makedirs(args.out, exist_ok=True)
    png, md = os.path.join(args.out, "demo_loss.png"), os.path.join(args.out, "demo.md")
    plot(runs, args, png)
    runtime = time.perf_counter() - t0
    info["runtime"] = f"{runtime:.0f} s"
    write_markdown(runs, args, info, md)
    print()
    print(text_table(*table(runs, wide=False)))
    print()
    print(text_table(*diagnostics_table(runs, wide=False)))
    print(f"\nloss curves: {png}\ntable: {md}\nruntime {runtime:.0f} s")


if __name__ == "__main__":
    main()
