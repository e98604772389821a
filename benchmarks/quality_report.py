"""Tables, advice paragraph and loss-curve figure for benchmarks/quality.py."""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING, Any

import benchutil as bu
import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only: the benchmark runs headless (CI, ssh)
import matplotlib.pyplot as plt
import torch

if TYPE_CHECKING:
    from quality import Row, Run

COLORS = {"fp32": "tab:blue", "bf16_sr": "tab:green", "fp16": "tab:cyan", "int8_sr": "tab:orange",
          "int4": "tab:red", "factored": "tab:brown", "auto": "tab:purple"}
OTHER_COLORS = {"Adafactor": "tab:olive", "CAME": "tab:pink", "Automagic": "black", "AutomagicCAME": "navy"}


# -- numbers -----------------------------------------------------------------------------------
def summarize(runs: list[Run], rows: list[Row], tasks: list[str], baseline: str) -> dict[str, dict[str, Any]]:
    """Per task and row: the held-out loss over seeds, its ratio to the baseline's mean, state bytes
    per trainable parameter, step time relative to fused torch AdamW and a status flag."""
    out: dict[str, dict[str, Any]] = {}
    for task in tasks:
        out[task] = {}
        for row in rows:
            rs = [r for r in runs if r.task == task and r.row == row.key]
            ok = [r for r in rs if r.status == "ok"]
            finals = [r.final for r in ok]
            s: dict[str, Any] = {"seeds": len(rs), "ok_seeds": len(ok), "notes": sorted({r.note for r in rs if r.note})}
            bad = [r for r in rs if r.status != "ok"]
            if not rs or all(r.status == "n/a" for r in rs):
                s["flag"] = "n/a"
            elif any(r.status == "error" for r in rs):
                s["flag"] = "error"
            elif bad:
                s["flag"] = f"NaN {len(bad)}/{len(rs)}"
            elif any(r.final > r.heldout[0] for r in ok):
                s["flag"] = "no progress"
            else:
                s["flag"] = "ok"
            if finals:
                s["mean"] = statistics.fmean(finals)
                s["std"] = statistics.stdev(finals) if len(finals) > 1 else 0.0
                s["min"], s["max"] = min(finals), max(finals)
                s["train_mean"] = statistics.fmean(r.final_train for r in ok)
                masks = [r.mask_lr_end for r in ok if math.isfinite(r.mask_lr_end)]
                if masks:
                    s["mask_lr_end"] = statistics.fmean(masks)
            timed = [r for r in rs if math.isfinite(r.time_ratio)]
            if timed:
                s["time_ratio"] = statistics.median(r.time_ratio for r in timed)
                s["step_us"] = statistics.median(r.step_us for r in timed)
                s["ref_us"] = statistics.median(r.ref_us for r in timed)
            sized = [r for r in rs if r.state_bytes]
            if sized:
                s["bytes_per_param"] = sized[0].state_bytes / sized[0].n_params
                s["n_params"] = sized[0].n_params
            out[task][row.key] = s
        base = out[task].get(baseline, {}).get("mean")
        base_by_seed = {r.seed: r.final for r in runs if r.task == task and r.row == baseline and r.status == "ok"}
        for key, s in out[task].items():
            if base and "mean" in s:
                s["ratio"] = s["mean"] / base
            # Every row shares each seed's init and minibatches with the baseline, so the per-seed ratio
            # cancels most of the seed-to-seed spread that the mean ± std above carries.
            paired = [r.final / base_by_seed[r.seed] for r in runs if r.task == task and r.row == key
                      and r.status == "ok" and r.seed in base_by_seed]
            if paired:
                s["seed_ratio_min"], s["seed_ratio_max"] = min(paired), max(paired)
    return out


def _fmt(s: dict[str, Any], key: str, spec: str, suffix: str = "") -> str:
    return f"{s[key]:{spec}}{suffix}" if key in s and math.isfinite(s[key]) else "-"


def _loss(s: dict[str, Any]) -> str:
    if "mean" not in s:
        return "-"
    return f"{s['mean']:.4f} ± {s['std']:.4f}" if s["ok_seeds"] > 1 else f"{s['mean']:.4f} (1 seed)"


def task_table(summary: dict[str, Any], context: dict[str, Any], task: str,
               wide: bool) -> tuple[list[str], list[list[object]]]:
    """``wide``: the Markdown version (states, min-max, absolute times); else fits 100 columns."""
    headers = ["row", "B/param", "held-out (mean ± std)", "vs fp32 (per seed)", "step/fused", "flag"]
    if wide:
        headers = ["row", "states", "state B/param", "held-out loss (mean ± std)", "min - max",
                   "vs fast-fp32 (per-seed min-max)", "final train loss", "opt.step µs", "fused torch µs",
                   "step / fused", "flag"]
    rows: list[list[object]] = []
    for key, s in summary[task].items():
        ratio = _fmt(s, "ratio", ".4f")
        if "seed_ratio_min" in s and s["ok_seeds"] > 1:
            ratio += f" ({s['seed_ratio_min']:.3f}-{s['seed_ratio_max']:.3f})"
        tr = _fmt(s, "time_ratio", ".2f", "x")
        if not wide:
            rows.append([key, _fmt(s, "bytes_per_param", ".2f"), _loss(s), ratio, tr, s["flag"]])
            continue
        spread = f"{s['min']:.4f} - {s['max']:.4f}" if "mean" in s else "-"
        rows.append([key, context["rows"][key]["states"], _fmt(s, "bytes_per_param", ".3f"), _loss(s), spread,
                     ratio, _fmt(s, "train_mean", ".4f"), _fmt(s, "step_us", ".0f"), _fmt(s, "ref_us", ".0f"),
                     tr, s["flag"]])
    return headers, rows


def text_tables(summary: dict[str, Any], context: dict[str, Any]) -> str:
    parts = []
    for task in summary:
        c = context["tasks"][task]
        parts.append(f"{task}: {c['metric']} after {c['steps']} steps, seeds {', '.join(map(str, context['seeds']))}")
        parts.append(bu.text_table(*task_table(summary, context, task, wide=False)))
        parts.append("")
    return "\n".join(parts).rstrip()


# -- advice ------------------------------------------------------------------------------------
def _pct(ratio: float) -> str:
    return f"{100 * (ratio - 1):+.1f} %"


def advice(summary: dict[str, Any], context: dict[str, Any], baseline: str) -> list[str]:
    """The "which format" paragraph, every claim computed from this run's numbers."""
    tasks = list(summary)
    rows = context["rows"]

    def complete(key: str) -> bool:
        return all(summary[t].get(key, {}).get("flag") == "ok" and "ratio" in summary[t][key] for t in tasks)

    def gap(key: str) -> float:  # the largest deviation from dense, either way, over the tasks
        return max(abs(summary[t][key]["ratio"] - 1) for t in tasks)

    def bpp(key: str) -> float:
        return statistics.fmean(summary[t][key]["bytes_per_param"] for t in tasks)

    def gaps(key: str) -> str:
        return ", ".join(f"{_pct(summary[t][key]['ratio'])} on {t}" for t in tasks)

    def named(keys: list[str]) -> str:
        return ", ".join(f"`{k}` ({bpp(k):.2f} B/param)" for k in keys)

    if not complete(baseline):
        return ["The dense baseline did not finish on every task, so no format is recommended from this run."]
    if context.get("long"):
        return stability(summary, context)
    fast = [k for k, r in rows.items() if r["family"] == "fast" and r["dtype"] == "float32" and k != baseline
            and adamw(r)]
    done = sorted((k for k in fast if complete(k)), key=bpp)
    within = {x: [k for k in done if gap(k) <= x / 100] for x in (1, 2, 3)}
    seeds = len(context["seeds"])
    lines = [f"Measured here on {', '.join(tasks)} with {seeds} seed{'s' * (seeds > 1)} "
             f"(fp32 parameters; dense fp32 states, `{baseline}`, take {bpp(baseline):.2f} B/param). "
             "\"Within x %\" means the mean held-out loss is within x % of dense on every task, either way: "
             "a format that ends far below dense at the same lr is not tracking dense either (it takes "
             "different steps), so it is listed apart."]
    lines.append(f"- Within 1 %: {named(within[1])}." if within[1] else "- No compressed format stays within 1 %.")
    more = [k for k in within[3] if k not in within[1]]
    if more:
        lines.append(f"- Within 3 % (but not 1 %): {named(more)}.")
    if within[2]:
        k = within[2][0]
        lines.append(f"- The smallest state within 2 % is `{k}`: {bpp(k):.2f} B/param, "
                     f"{bpp(baseline) / bpp(k):.1f}x less than dense ({gaps(k)}).")
    lower = [k for k in done if gap(k) > 0.03 and all(summary[t][k]["ratio"] <= 1.03 for t in tasks)]
    if lower:
        lines.append("- Lower than dense by more than 3 % on some task at the same hyperparameters: "
                     + "; ".join(f"`{k}` ({gaps(k)})" for k in lower)
                     + ". Its effective step differs from Adam's; compare at a tuned lr before taking the gain.")
    higher = [k for k in done if k != "fast-factored" and gap(k) > 0.03 and k not in lower]
    if higher:
        lines.append("- More than 3 % above dense on some task: " + "; ".join(f"`{k}` ({bpp(k):.2f} B/param, "
                                                                            f"{gaps(k)})" for k in higher) + ".")
    fac = "fast-factored"
    if fac in done:
        verdict = ("within 3 % of dense" if gap(fac) <= 0.03 else
                   "a real quality cost at the same hyperparameters; pick it only when the optimizer state "
                   "is what stops the model from fitting in memory")
        lines.append(f"- `factored` is the smallest state ({bpp(fac):.2f} B/param) and ends at {gaps(fac)}: "
                     f"{verdict}.")
    bf16 = "fast-bf16-params"
    if bf16 in rows and complete(bf16):
        lines.append(f"- bf16 parameters with stochastic rounding (`{bf16}`, {bpp(bf16):.2f} B/param of state, half "
                     f"the parameter memory too): {gaps(bf16)}.")
    failed = {k: [f"{summary[t][k]['flag']} on {t}" for t in tasks if k in summary[t] and
                  summary[t][k]["flag"].startswith(("NaN", "error", "no progress"))] for k in rows}
    if any(failed.values()):
        lines.append("- Failed to train: " + "; ".join(f"`{k}` ({', '.join(v)})" for k, v in failed.items() if v)
                     + " (NaN k/n: k of n seeds).")
    na = [f"`{k}`" for k in rows if any(summary[t].get(k, {}).get("flag") == "n/a" for t in tasks)]
    if na:
        lines.append(f"- Not available in the installed packages (so not measured): {', '.join(na)}.")
    if seeds > 1:
        noise = ", ".join(f"{100 * summary[t][baseline]['std'] / summary[t][baseline]['mean']:.2f} % on {t}"
                          for t in tasks)
        lines.append(f"- Seed-to-seed spread (std / mean) of dense: {noise}. Each seed's initialisation and "
                     "minibatches are shared by every row, so the per-seed ratios in the tables are the sharper "
                     "comparison: a gap whose per-seed range excludes 1 was seen on every seed.")
    else:
        lines.append("- One seed only: no spread was measured, so gaps of a few tenths of a percent may be noise.")
    twins = [k for k in rows if rows[k]["family"] == "adv" and complete(k) and complete("fast" + k[3:])]
    if twins:
        diff = max(abs(summary[t][k]["ratio"] - summary[t]["fast" + k[3:]]["ratio"]) for t in tasks for k in twins)
        lines.append(f"- adv_optm's AdamW_adv in the formats both libraries ran ({', '.join(k[4:] for k in twins)}) "
                     f"ends within {100 * diff:.1f} % of fast.AdamW's row of the same format.")
    others = [k for k, r in rows.items() if not adamw(r) and complete(k)]
    if others:
        lines += other_optimizers(summary, context, baseline, others)
    speed = []
    for family, name, pick in (("fast", "fast.AdamW", adamw), ("adv", "adv_optm", adamw),
                               ("fast", "the other fast optimizers", lambda r: not adamw(r))):
        for t in tasks:
            xs = [summary[t][k]["time_ratio"] for k in rows if rows[k]["family"] == family and pick(rows[k])
                  and "time_ratio" in summary[t].get(k, {})]
            if xs:
                speed.append(f"{name} {min(xs):.1f}-{max(xs):.1f}x on {t}")
    if speed:
        lines.append("- opt.step() time relative to fused torch AdamW on the same parameters: " + ", ".join(speed)
                     + ". These models are small, so per-call overhead dominates (see the step-time page for "
                     "large tensors)" + ("; fast.AdamW ran eager here, not compiled as by default." if context["eager"]
                                         else "."))
    return lines


def adamw(row: dict[str, Any]) -> bool:
    return row.get("optimizer", "AdamW") == "AdamW"  # reports written before other optimizers had rows


def swept_best(context: dict[str, Any], key: str, task: str) -> tuple[dict[str, Any], float] | None:
    """The sweep's lowest held-out loss of ``key`` on ``task`` and its candidate, or None."""
    tried = [c for c in context["rows"].get(key, {}).get("sweep", {}).get(task, []) if math.isfinite(c["heldout"])]
    if not tried:
        return None
    best = min(tried, key=lambda c: c["heldout"])
    return best["kwargs"], best["heldout"]


# The state-format twins among the other optimizers: (compressed, exact).
TWINS = (("fast-came-int8_sr", "fast-came"), ("fast-automagic", "fast-automagic-fp32"))


def other_optimizers(summary: dict[str, Any], context: dict[str, Any], baseline: str, keys: list[str]) -> list[str]:
    """The advice on the rows of other optimizers, each at its own tuned hyperparameters."""
    tasks = list(summary)

    def gaps(key: str) -> str:
        return ", ".join(f"{_pct(summary[t][key]['ratio'])} on {t}" for t in tasks)

    def bpp(key: str) -> float:
        return statistics.fmean(summary[t][key]["bytes_per_param"] for t in tasks)

    ranked = sorted(keys, key=lambda k: max(summary[t][k]["ratio"] for t in tasks))
    lines = ["- Other optimizers, each at its own learning rate (chosen per task by the sweep in \"Hyperparameters "
             "of the other optimizers\"), against dense AdamW at its fixed lr, best first by each one's highest "
             "ratio over the tasks: "
             + "; ".join(f"`{k}` ({bpp(k):.2f} B/param, {gaps(k)})" for k in ranked) + "."]
    base = {t: context.get("sweep_baseline", {}).get(t) for t in tasks}
    best = {t: swept_best(context, baseline, t) for t in tasks}
    if all(best[t] and base[t] for t in tasks):
        lines.append("- AdamW's lr is the state-format comparison's and is not retuned, so it is not always its "
                     "best: in the same sweep (one seed) AdamW's best candidate ended at "
                     + ", ".join(f"{_pct(best[t][1] / base[t])} on {t} ({candidate(best[t][0])})" for t in tasks)
                     + " against its fixed lr; a row of another optimizer beats a tuned AdamW only by more "
                       "than that.")
    twins = [(a, b) for a, b in TWINS if a in keys and b in keys]
    if twins:
        lines.append("- Compressed against exact state at the same hyperparameters: " + "; ".join(
            f"`{a}` vs `{b}`: " + ", ".join(f"{_pct(summary[t][a]['mean'] / summary[t][b]['mean'])} on {t}"
                                             for t in tasks) for a, b in twins) + ".")
    return lines


def loss_text(x: float) -> str:
    return f"{x:.4f}" if x < 100 else f"{x:.3g}"  # a candidate that blew up: its magnitude is enough


def candidate(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in kwargs.items())


def stability(summary: dict[str, Any], context: dict[str, Any]) -> list[str]:
    """The long run's verdict: which rows stayed finite. Its held-out ratios are not a quality
    measure: at this length the training loss reaches 0 and the held-out loss measures overfitting."""
    lines = []
    for task, rows in summary.items():
        steps = context["tasks"][task]["steps"]
        finite = [f"`{k}`" for k, s in rows.items() if s["flag"] in ("ok", "no progress")]
        failed = [f"`{k}` ({s['flag']})" for k, s in rows.items() if s["flag"] not in ("ok", "no progress")]
        lines.append(f"- {task}, {steps:,} steps: finite loss throughout for {', '.join(finite) or 'no row'}"
                     + (f"; not finite or not run: {', '.join(failed)}." if failed else "."))
        train = max((s.get("train_mean", math.nan) for s in rows.values()), default=math.nan)
        if math.isfinite(train) and train < 1e-3:
            lines.append(f"- The training loss of every row ends below {train:.0e}: the run is far past the point "
                         "where held-out loss measures quality (it measures overfitting here), so the ratios "
                         "below show only that the formats stay close; the quality comparison is the "
                         "fixed-budget one above.")
    return lines


# -- report ------------------------------------------------------------------------------------
def write_markdown(summary: dict[str, Any], context: dict[str, Any], info: dict[str, Any], baseline: str,
                   path: str, figure: str = "quality.png") -> None:
    title = ("Stability of the compressed states over a long run" if context.get("long")
             else "Training quality of the state formats")
    others = [k for k, r in context["rows"].items() if not adamw(r)]
    lines = [f"# {title}", "",
             f"Every {'AdamW ' if others else ''}row trains each task from the same initialisation on the same "
             "minibatches with the same lr, betas, weight decay and step budget (no per-row tuning)"
             + ("; the rows of other optimizers (" + ", ".join(f"`{k}`" for k in others) + ") run through the "
                "same loop with the same initialisation, minibatches, weight decay and budget, each at its own "
                "learning rate, chosen per task by a short sweep (section \"Hyperparameters of the other "
                "optimizers\")" if others else "")
             + ". The metric is the held-out loss after "
             f"the last step, mean ± std over seeds {', '.join(map(str, context['seeds']))}, and its ratio to "
             f"`{baseline}`'s mean "
             "(dense fp32 states). The training loss is shown for context only. The fast optimizers run "
             f"{'eager' if context['eager'] else 'compiled (their default)'}; {context['adv']}. "
             "All rows train fp32 parameters except `fast-bf16-params`.", "",
             "## What the long run shows" if context.get("long") else "## Which state format should I pick", "",
             *advice(summary, context, baseline), ""]
    for task, c in context["tasks"].items():
        lines += [f"## {task}", "",
                  f"{c['description']}. {'AdamW rows: ' if others else ''}lr {c['lr']:g}, betas {tuple(c['betas'])}, "
                  f"eps {c['eps']:g}, weight decay {c['weight_decay']:g}; {c['steps']} steps, held-out loss every "
                  f"{c['eval_every']} steps.", "",
                  *bu.markdown_table(*task_table(summary, context, task, wide=True)), ""]
    lines += [
        "- **state B/param**: bytes of the optimizer's state tensors (step counters excluded) / trainable "
        "parameters. **opt.step µs**: median over the steps after warm-up (compile included in none of them); "
        "**fused torch µs**: torch.optim.AdamW(fused=True) stepping a copy of the same parameters with the same "
        "gradients right after each step; **step / fused**: median of the per-step ratio.",
        "- **flag**: ok; NaN k/n (non-finite loss in k of n seeds: the run stops there); no progress (held-out "
        "loss above its starting value); n/a (the installed version does not implement the row); error.",
        "", f"![Held-out loss curves]({figure})", ""]
    if others and not context.get("long"):
        lines += hyperparameter_section(summary, context, baseline, others)
    notes = sorted({n for t in summary for s in summary[t].values() if s["flag"] in ("n/a", "error")
                    for n in s["notes"]})
    if notes:
        lines += ["Messages of the rows that did not run:", "", *[f"- `{n[:200]}`" for n in notes], ""]
    bu.write_report(path, lines, info)


def hyperparameter_section(summary: dict[str, Any], context: dict[str, Any], baseline: str,
                           keys: list[str]) -> list[str]:
    """The other optimizers' keywords, the sweep that chose their learning rates, and why."""
    rows, tasks = context["rows"], list(context["tasks"])

    def kwargs(d: dict[str, Any]) -> str:
        return ", ".join(f"`{k}={v!r}`" if not isinstance(v, float) else f"`{k}={v:g}`" for k, v in d.items())

    lines = ["## Hyperparameters of the other optimizers", "",
             "Each row below runs through the AdamW rows' loop: the same initialisation, minibatches, step budget, "
             "held-out evaluation and fused-AdamW timing reference; `weight_decay` is the task's, applied as each "
             "optimizer defines it (times its own step size). Its other keywords are its defaults but for those "
             "listed. The learning rate (Automagic's: the mask's starting value) was chosen per task by "
             f"`benchmarks/quality.py --sweep` ({context.get('sweep_setting', '?')}): every candidate trained once, "
             "and the row runs at the candidate with the lowest held-out loss at the step budget (the metric "
             "of this benchmark). The sweep ran at the full step budget rather than the quick one: at the quick "
             "budget (300 / 200 steps) Adafactor's AdamW mode, CAME and Automagic preferred a 3.3x larger lr "
             "on digits, which ended 14-18 % worse at 600 steps than the lr chosen here (on diffusion-lora the "
             "two choices ended within 0.2 %).", ""]
    head = ["row", "optimizer", "keywords (both tasks)", *[f"{t}: tuned" for t in tasks]]
    table = []
    for k in keys:
        hyper = rows[k].get("hyper", {})
        common = {n: v for n, v in next(iter(hyper.values()), {}).items()
                  if n != "weight_decay" and all(h.get(n, v) == v for h in hyper.values())}
        tuned = [kwargs({n: v for n, v in hyper.get(t, {}).items() if n not in common and n != "weight_decay"})
                 or "-" for t in tasks]
        table.append([f"`{k}`", f"fast.{rows[k]['optimizer']}", kwargs(common) or "-", *tuned])
    lines += [*bu.markdown_table(head, table, right_align=False), ""]
    sweep = []
    for k in [baseline, *keys]:
        for t in tasks:
            tried = rows.get(k, {}).get("sweep", {}).get(t, [])
            if not tried:
                continue
            best = swept_best(context, k, t)
            cells = [f"{candidate(c['kwargs'])}: " + (f"**{loss_text(c['heldout'])}**"
                                                      if best and c["kwargs"] == best[0] else loss_text(c["heldout"]))
                     for c in tried]
            label = f"`{k}` (reference: its lr stays {context['tasks'][t]['lr']:g})" if k == baseline else f"`{k}`"
            sweep.append([label, t, " · ".join(cells)])
    if sweep:
        lines += ["Held-out loss of each candidate in the sweep (lowest in bold; "
                  f"`{baseline}` at the task's lr: " + ", ".join(f"{v:.4f} on {t}" for t, v in
                                                             context.get("sweep_baseline", {}).items()) + "):", "",
                  *bu.markdown_table(["row", "task", "candidates: held-out loss"], sweep, right_align=False), ""]
    notes = [f"- `{k}`: {rows[k]['note']}" for k in keys if rows[k].get("note")]
    masks = [k for k in keys if all("mask_lr_end" in summary[t].get(k, {}) for t in tasks)]
    if masks:
        notes.append("- Mean of the learning-rate mask after the last step (mean over seeds): " + "; ".join(
            f"`{k}` " + ", ".join(f"{summary[t][k]['mask_lr_end']:.3g} on {t}" for t in tasks) for k in masks)
                     + ".")
    return lines + notes + ([""] if notes else [])


def plot(runs: list[Run], rows: list[Row], tasks: list[str], context: dict[str, Any], baseline: str,
         path: str) -> None:
    fig, axes = plt.subplots(1, len(tasks), figsize=(7.5 * len(tasks), 5.6), dpi=110, squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for row in rows:
            # A diverged run keeps its curve up to the NaN; a crashed or unavailable one has none.
            rs = [r for r in runs if r.task == task and r.row == row.key and r.heldout
                  and r.status in ("ok", "diverged")]
            if not rs:
                continue
            n = min(len(r.heldout) for r in rs)  # a diverged seed ends its curve early
            mean = [statistics.fmean(r.heldout[i] for r in rs) for i in range(n)]
            style: dict[str, Any] = {"color": COLORS.get(row.precision, "k"), "lw": 1.3}
            if row.optimizer != "AdamW":  # the other optimizers: thick, a colour per optimizer
                variant = row.key.endswith(("-int8_sr", "-fp32", "-adamw"))
                style = {"color": OTHER_COLORS.get(row.optimizer, "k"), "lw": 2.4, "ls": "--" if variant else "-",
                         "alpha": 0.85}
            elif row.family == "torch":
                style = {"color": "0.6", "lw": 4.0, "alpha": 0.6}
            elif row.family == "adv":
                style["ls"] = ":"
            if row.factored_2nd:
                style["ls"] = "--" if row.family == "fast" else "-."
            if row.dtype != torch.float32:
                style["lw"] = 2.2
            ax.plot(rs[0].eval_steps[:n], mean, label=row.key, **style)
        base = [r for r in runs if r.task == task and r.row == baseline and r.heldout]
        if base:  # zoom on the part where formats differ: from 15 % of the budget down to the best value
            curve, steps = base[0].heldout, base[0].eval_steps
            top = curve[min(range(len(steps)), key=lambda i: abs(steps[i] - 0.15 * steps[-1]))]
            lows = [v for r in runs if r.task == task for v in r.heldout if math.isfinite(v)]
            # ... and up to every finished row's end (an optimizer slower than AdamW's early pace)
            ends = [r.heldout[-1] for r in runs if r.task == task and r.status == "ok"]
            ax.set_ylim(0.97 * min(lows), max(top, 1.05 * min(lows), 1.01 * max(ends, default=0.0)))
        c = context["tasks"][task]
        ax.set_yscale("log")
        for axis in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
            axis(matplotlib.ticker.FormatStrFormatter("%g"))  # plain numbers, not 2.5 x 10^-1
        ax.set_title(f"{task}: AdamW lr {c['lr']:g}, mean over {len(context['seeds'])} seed(s)")
        ax.set_xlabel("step")
        ax.set_ylabel(f"{c['metric']} (log, zoomed)")
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=7, fontsize=8)
    other = any(r.optimizer != "AdamW" for r in rows)
    fig.suptitle("Held-out loss by optimizer-state format (fast: solid, fast factored_2nd: dashed, "
                 "adv_optm: dotted, torch fused: grey)"
                 + ("\nother fast optimizers, each at its own lr: thick (a variant dashed)" if other else ""))
    fig.tight_layout(rect=(0, 0.16, 1, 1))  # room for the legend below the panels
    fig.savefig(path)
    plt.close(fig)

