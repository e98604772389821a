"""Step-time cost of each direction feature (spec/directions.md): every feature on vs the same
optimizer without it, side by side in one run.

The step_time.py model (7 Linear-like layers, weight + bias; 2048 wide by default, ``--size`` for
a smaller one), fp32 parameters and states, constant gradients shared by every row. One process
holds every row (an optimizer with its own copy of the model); after untimed warm-up steps (which
compile) rows are timed in interleaved rounds (order reversed every other round), as in
step_time.py. The headline is, per round, a row's median step time over its own optimizer's
baseline row in the same round (median and IQR over rounds), so machine drift cancels; each row is
also quoted against fused torch AdamW. Rows over their target (Cautious, Grams, atan2 <= 1.10;
OrthoGrad <= 1.35) are profiled with torch.profiler and their top kernels listed.

adv_optm 2.5.16 (installed) has OrthoGrad, atan2, Kourkoutas-beta and the stochastic sign; its
Cautious and Grams are in 2.2.3 only (``cautious_mask``, ``grams_moment``), loaded as in
family.py when the wheel can be had, else skipped.

    .venv/bin/python benchmarks/features.py [--size W] [--device cpu|cuda] [--steps N] [--budget S]

writes benchmarks/results/features.md (features_cuda.md with --device cuda) and the raw .json.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import benchutil as bu
import torch
from family import THREADS_NOTE, load_v223
from step_time import Candidate, crash_text, interleaved_rounds, median_ratios, plan, timed_step
from torch._dynamo.utils import counters

import fast

WARMUP = 3  # untimed: the first step allocates and compiles, the others size the schedule
WD = 0.01  # every row decays, so projected adaptivity's scaled decay is timed too
MASK_TARGET, ORTHO_TARGET = 1.10, 1.35  # the targets (feature / same optimizer without it)
PROFILE_STEPS = 3


@dataclass(frozen=True)
class Feature:
    label: str
    kwargs: dict[str, Any]
    target: float | None = None


@dataclass(frozen=True)
class Group:
    """One optimizer (one implementation) and the features timed against it."""

    key: str
    impl: str  # fast / adv (2.5.16) / adv223
    cls_name: str
    base: dict[str, Any]
    features: tuple[Feature, ...]

    @property
    def label(self) -> str:
        return {"fast": "fast.", "adv": "adv_optm 2.5.16 ", "adv223": "adv_optm 2.2.3 "}[self.impl] + self.cls_name


F = Feature
ADAM = {"lr": 1e-3, "weight_decay": WD}
SIGN = {"lr": 1e-4, "weight_decay": WD}
ORTHO = (F("+orthograd flattened", {"orthograd": "flattened"}, ORTHO_TARGET),)
SIGN_FEATURES = (F("+stochastic_sign", {"stochastic_sign": True}), F("+freeze_on_flip", {"freeze_on_flip": True}),
                 F("+projected_adaptivity", {"projected_adaptivity": True}))
ADV_ORTHO = (F("+orthograd flattened", {"orthogonal_gradient": "flattened"}, ORTHO_TARGET),)
GROUPS = (
    Group("fast_AdamW", "fast", "AdamW", {**ADAM, "state_precision": "fp32"}, (
        F("+cautious", {"cautious": True}, MASK_TARGET), F("+grams", {"grams": True}, MASK_TARGET),
        F("+use_atan2", {"use_atan2": True}, MASK_TARGET), *ORTHO,
        F("+orthograd iterative", {"orthograd": "iterative"}, ORTHO_TARGET),
        F("+kourkoutas_beta", {"kourkoutas_beta": True}))),
    Group("fast_Lion", "fast", "Lion", {**SIGN, "state_precision": "fp32"},
          (F("+cautious", {"cautious": True}, MASK_TARGET), *SIGN_FEATURES, *ORTHO)),
    Group("fast_SignSGD", "fast", "SignSGD", {**SIGN, "state_precision": "fp32"}, (*SIGN_FEATURES, *ORTHO)),
    Group("adv_AdamW", "adv", "AdamW_adv", {**ADAM, "state_precision": "fp32"}, (
        F("+use_atan2", {"use_atan2": True}, MASK_TARGET), *ADV_ORTHO,
        F("+orthograd iterative", {"orthogonal_gradient": "iterative"}, ORTHO_TARGET),
        F("+kourkoutas_beta", {"kourkoutas_beta": True}))),
    Group("adv_Lion", "adv", "Lion_adv", SIGN, (F("+stochastic_sign", {"stochastic_sign": True}), *ADV_ORTHO)),
    Group("adv_SignSGD", "adv", "SignSGD_adv", {**SIGN, "state_precision": "fp32"},
          (F("+stochastic_sign", {"stochastic_sign": True}), *ADV_ORTHO)),
    Group("adv223_AdamW", "adv223", "AdamW_adv", ADAM, (
        F("+cautious", {"cautious_mask": True}, MASK_TARGET), F("+grams", {"grams_moment": True}, MASK_TARGET))),
    Group("adv223_Lion", "adv223", "Lion_adv", SIGN, (F("+cautious", {"cautious_mask": True}, MASK_TARGET),)),
)


def model_tensors(width: int, seed: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """step_time.model_tensors at any width: seven (width, width) weights and (width,) biases."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [s for _ in range(7) for s in ((width, width), (width,))]
    params = [torch.randn(s, generator=gen).mul_(0.02) for s in shapes]
    grads = [torch.randn(s, generator=gen).mul_(1e-3) for s in shapes]
    return params, grads


def candidates(modules: dict[str, ModuleType | None]) -> tuple[list[Candidate], dict[str, tuple[Group, Feature]]]:
    f32 = torch.float32
    cands = [Candidate("torch_fused", "torch", "torch AdamW fused", "fp32", f32,
                       lambda ps: torch.optim.AdamW(ps, fused=True, lr=1e-3, weight_decay=WD), baseline=True)]
    rows: dict[str, tuple[Group, Feature]] = {}
    for g in GROUPS:
        module = modules[g.impl]
        if module is None:
            continue
        cls = getattr(module, g.cls_name)
        for feat in (F("baseline", {}), *g.features):
            key = f"{g.key}{feat.label.replace(' ', '_')}"
            kw = {**g.base, **feat.kwargs}
            cands.append(Candidate(key, g.impl, g.label, feat.label, f32, lambda ps, cls=cls, kw=kw: cls(ps, **kw),
                                   compiled=g.impl == "fast", baseline=feat.label == "baseline"))
            rows[key] = (g, feat)
    return cands, rows


def profile(c: Candidate, device: torch.device, top: int = 6) -> dict[str, Any]:
    """``PROFILE_STEPS`` steps of ``c`` under torch.profiler: wall ms/step and the top ``top`` ops by self
    time per step; on CUDA the device kernels only (with their total busy time and launches per step)."""
    acts = [torch.profiler.ProfilerActivity.CPU]
    cuda = device.type == "cuda"
    if cuda:
        acts.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=acts) as prof:
        wall = sum(timed_step(c.opt, device)[0] for _ in range(PROFILE_STEPS))
    attr = "self_device_time_total" if cuda else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if getattr(e, attr) > 0 and not e.key.startswith("Optimizer.step")
              and (e.device_type == torch.autograd.DeviceType.CUDA or not cuda)]  # the step's own range aside
    events.sort(key=lambda e: getattr(e, attr), reverse=True)
    busy = sum(getattr(e, attr) for e in events) or 1.0
    rows = [[e.key[:100], f"{getattr(e, attr) / PROFILE_STEPS / 1e3:.3f}", f"{100 * getattr(e, attr) / busy:.0f}%",
             f"{e.count / PROFILE_STEPS:g}"] for e in events[:top]]
    return {"wall_ms": wall / PROFILE_STEPS * 1e3, "busy_ms": busy / PROFILE_STEPS / 1e3,
            "calls": sum(e.count for e in events) / PROFILE_STEPS, "top": rows}


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    device = torch.device(args.device)
    info = bu.machine_info(device)
    info["load_average_start"] = bu.load_average()
    notes: list[str] = []
    modules: dict[str, ModuleType | None] = {"fast": fast, "adv": None, "adv223": None}
    try:
        import adv_optm

        modules["adv"] = adv_optm
        notes.append(f"adv_optm {adv_optm.__version__} (installed): OrthoGrad, atan2, Kourkoutas-beta, stochastic "
                     "sign; eager (its default compiled_optimizer=False).")
    except ImportError:
        notes.append("adv_optm not importable: its rows are skipped.")
    if args.adv223:
        modules["adv223"], text = load_v223(args.adv223_wheel, workdir)
        notes.append(f"{text}: Cautious (`cautious_mask`) and Grams (`grams_moment`), eager."
                     if modules["adv223"] is not None else f"{text}: adv_optm 2.2.3's Cautious/Grams rows are skipped.")
    if torch.get_num_threads() == 1 and device.type == "cpu":
        notes.append(THREADS_NOTE)
    if args.profile and device.type == "cpu":  # before any compile: names each C++ kernel in the profiles
        import torch._inductor.config as inductor_config

        inductor_config.cpp.enable_kernel_profile = True
        notes.append("Compiled with `torch._inductor.config.cpp.enable_kernel_profile = True` (one profiler "
                     "record per C++ kernel call, a few per parameter and step) so the profiles name the kernels.")
    for note in notes:
        print("note:", note)

    base_params, base_grads = model_tensors(args.size)
    numel = sum(p.numel() for p in base_params)
    print(f"model: {len(base_params)} tensors, {numel:,} parameters; device {device}")
    # torch and fast rows share one gradient set (none may write p.grad: checked at the end); adv_optm's
    # iterative OrthoGrad writes it in place, so adv rows get copies of their own.
    grads = [g.to(device=device, dtype=torch.float32, copy=True) for g in base_grads]
    cands, rows = candidates(modules)
    own_grads: dict[str, list[torch.Tensor]] = {}
    stats = counters["stats"]
    for c in cands:
        c.params = [p.to(device=device, copy=True) for p in base_params]
        gs = grads if c.family in ("torch", "fast") else own_grads.setdefault(c.key, [g.clone() for g in grads])
        for p, g in zip(c.params, gs):
            p.grad = g
        try:
            c.opt = c.make(c.params)
            c.first_step_s = timed_step(c.opt, device)[0]
            c.warm_s = min(timed_step(c.opt, device)[0] for _ in range(WARMUP - 1))
        except Exception as err:  # a configuration this implementation does not support
            c.crash, c.opt, c.params = crash_text(err), None, []
            gc.collect()
            print(f"warm-up {c.label} {c.states}: crashes, {c.crash}")
            continue
        print(f"warm-up {c.label} {c.states}: first step {c.first_step_s:.2f} s, then {c.warm_s * 1e3:.1f} ms")
    live = [c for c in cands if c.crash is None]
    for c in live:  # every row runs every round: the ratios are per round
        c.baseline = True
    n_rounds = math.ceil(args.steps / args.per_round)
    estimate = plan(live, n_rounds, args.per_round, math.inf)
    print(f"timing: {n_rounds} rounds of {len(live)} rows, about {estimate:.0f} s")
    graphs_before = stats["unique_graphs"]
    timing_s = interleaved_rounds(live, n_rounds, device, budget_s=args.budget, catch=True)
    fused = next(c for c in live if c.key == "torch_fused")
    by_key = {c.key: c for c in cands}
    results: list[dict[str, Any]] = []
    base_profiles: dict[str, list[list[object]]] = {}
    for c in cands:
        group, feat = rows.get(c.key, (None, F("baseline", {})))
        row: dict[str, Any] = {"key": c.key, "impl": c.family, "optimizer": c.label, "feature": feat.label,
                               "kwargs": feat.kwargs, "target": feat.target, "crash": c.crash}
        results.append(row)
        if c.crash is not None:
            continue
        flat = [t for ts in c.rounds.values() for t in ts]
        row.update({"median_ms": bu.quartiles(flat)[1] * 1e3, "timed_steps": len(flat),
                    "ratio_to_fused": median_ratios(c, fused), "first_step_s": c.first_step_s})
        base = by_key.get(f"{group.key}baseline") if group is not None else None
        if base is not None and base is not c and base.crash is None:
            row["ratio_to_baseline"] = median_ratios(c, base)
            if c.family == "fast" and _missed(row) and args.profile:
                row["profile"] = profile(c, device)
                if base.key not in base_profiles:
                    base_profiles[base.key] = profile(base, device)
                row["baseline_profile"] = base_profiles[base.key]
    info["load_average_end"] = bu.load_average()
    return {"machine": info, "notes": notes, "results": results, "config": {
        "size": args.size, "tensors": len(base_params), "numel": numel, "warmup_steps": WARMUP,
        "rounds": len(fused.rounds), "steps_per_round": args.per_round, "timing_s": timing_s,
        "recompiles_while_timing": stats["unique_graphs"] - graphs_before,
        "gradients_unchanged": all(torch.equal(g.cpu(), b) for g, b in zip(grads, base_grads)),
        "rows_writing_grad": [by_key[k].label + " " + by_key[k].states for k, gs in own_grads.items()
                              if not all(torch.equal(g.cpu(), b) for g, b in zip(gs, base_grads))],
    }}


# -- report ---------------------------------------------------------------------------------------
def _q(q: Any) -> str:
    return "-" if q is None else f"{q[1]:.2f} ({q[0]:.2f}-{q[2]:.2f})"


def _missed(r: dict[str, Any]) -> bool:
    return r["target"] is not None and r["ratio_to_baseline"][1] > r["target"]


def _verdict(r: dict[str, Any]) -> str:
    """The target applies to fast; adv_optm's rows show the same bound in parentheses."""
    if r["target"] is None or "ratio_to_baseline" not in r:
        return "-"
    text = f"<= {r['target']:.2f}: {'MISSED' if _missed(r) else 'met'}"
    return text if r["impl"] == "fast" else f"({text})"


def table(result: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    headers = ["optimizer", "feature", "x same optimizer without it (IQR)", "x fused torch AdamW (IQR)", "ms",
               "target"]
    out: list[list[object]] = []
    for r in result["results"]:
        if r["crash"] is not None:
            out.append([r["optimizer"], r["feature"], f"crashes ({r['crash'].split(':')[0]})", "-", "-", "-"])
            continue
        out.append([r["optimizer"], r["feature"], _q(r.get("ratio_to_baseline")) if r["feature"] != "baseline"
                    else "1", _q(r["ratio_to_fused"]), f"{r['median_ms']:.1f}", _verdict(r)])
    return headers, out


def side_by_side(result: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    """Per optimizer and feature: fast's cost beside adv_optm's (feature / baseline medians)."""
    cost: dict[tuple[str, str], dict[str, str]] = {}
    for r in result["results"]:
        if r["crash"] is None and "ratio_to_baseline" in r:
            name = r["optimizer"].split()[-1].removeprefix("fast.").removesuffix("_adv")
            cost.setdefault((name, r["feature"]), {})[r["impl"]] = f"{r['ratio_to_baseline'][1]:.2f}"
    rows = [[f"{name} {feat}", c.get("fast", "-"), c.get("adv", c.get("adv223", "-"))]
            for (name, feat), c in cost.items()]
    return ["feature", "fast: x without it", "adv_optm: x without it"], rows


def write_markdown(result: dict[str, Any], path: str) -> None:
    cfg = result["config"]
    fused = next(r for r in result["results"] if r["key"] == "torch_fused")
    lines = [
        "# Step-time cost of the direction features",
        "",
        f"The step_time model at width {cfg['size']} ({cfg['tensors']} tensors, {cfg['numel']:,} parameters, fp32 "
        f"parameters and states, constant random gradients shared by all rows, weight_decay={WD} everywhere; AdamW "
        "lr 1e-3, Lion and SignSGD lr 1e-4, other hyperparameters default). Each feature is switched on alone "
        "against the same optimizer without it (its **baseline** row); fast runs compiled (its default), adv_optm "
        f"eager (its default). {cfg['warmup_steps']} untimed warm-up steps per row (compiles included), then "
        f"{cfg['rounds']} interleaved rounds of {cfg['steps_per_round']} steps per row (order reversed every other "
        f"round). Fused torch AdamW took {fused['median_ms']:.2f} ms/step (median); timed rounds took "
        f"{cfg['timing_s']:.0f} s, the whole run {result.get('runtime_s', math.nan):.0f} s; dynamo graphs compiled "
        f"while timing: {cfg['recompiles_while_timing']}.",
        "",
        *bu.markdown_table(*table(result)),
        "",
        "## fast beside adv_optm",
        "",
        *bu.markdown_table(*side_by_side(result)),
        "",
        "## Columns",
        "",
        "- **x same optimizer without it (IQR)**: per round, the row's median step time over its baseline row's in "
        "the same round; median and interquartile range over the rounds. **x fused torch AdamW**: the same against "
        "fused fp32 torch AdamW. Absolute **ms** move with the machine's load; the ratios are the headline.",
        f"- **target**: the bound on the first ratio (Cautious, Grams, atan2 <= {MASK_TARGET:.2f}; OrthoGrad "
        f"<= {ORTHO_TARGET:.2f}); on adv_optm's rows, in parentheses, for comparison only.",
        f"- Gradients shared by the torch and fast rows unchanged (OrthoGrad must not write p.grad): "
        f"{'yes' if cfg['gradients_unchanged'] else 'NO'}. adv_optm rows step on their own copies; those that "
        f"wrote into p.grad: {', '.join(cfg.get('rows_writing_grad', [])) or 'none'}.",
        *[f"- {n}" for n in result["notes"]],
        "",
    ]
    profiled = [r for r in result["results"] if "profile" in r]
    cuda = "gpu" in result["machine"]
    if profiled:
        lines += ["## Profiles of the rows over their target", "",
                  f"torch.profiler over {PROFILE_STEPS} steps after timing; per step, the top "
                  f"{'device kernels by device' if cuda else 'ops by self CPU'} time, beside the baseline's.", ""]
        for r in profiled:
            lines += [f"### {r['optimizer']} {r['feature']}", ""]
            for name, prof in (("With the feature", r["profile"]), ("Baseline", r["baseline_profile"])):
                what = "device kernels" if cuda else "ops (self CPU time)"
                lines += [f"{name}: {what} {prof['busy_ms']:.2f} ms/step in {prof['calls']:g} calls.", "",
                          *bu.markdown_table(["op", "ms/step", "share", "calls/step"], prof["top"]), ""]
    bu.write_report(path, lines, result["machine"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048, help="width of the 7 layers (2048: step_time's model)")
    parser.add_argument("--steps", type=int, default=45, help="timed steps per row")
    parser.add_argument("--per-round", type=int, default=3, help="consecutive steps per row per round")
    parser.add_argument("--budget", type=float, default=600.0, help="stop timing after the round that passes S s")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: robust to other busy processes; 0: torch's default)")
    parser.add_argument("--no-adv223", dest="adv223", action="store_false",
                        help="skip adv_optm 2.2.3 (its Cautious and Grams rows)")
    parser.add_argument("--adv223-wheel", default=None, help="path of the adv_optm 2.2.3 wheel (default: pip download)")
    parser.add_argument("--no-profile", dest="profile", action="store_false",
                        help="do not profile the rows that miss their target")
    parser.add_argument("--out", default=str(bu.RESULTS), help="directory for the results (benchmarks/results)")
    parser.add_argument("--name", default=None, help="file stem (default: features, or features_cuda on CUDA)")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda requested but torch.cuda.is_available() is False")
    if args.threads > 0:  # before any compile: inductor builds its CPU kernels for the current thread count
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="advopt-bench-features-"))
    try:
        result = run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["runtime_s"] = time.perf_counter() - t0
    print()
    print(bu.text_table(*table(result)))
    print(f"runtime {result['runtime_s']:.0f} s")
    os.makedirs(args.out, exist_ok=True)
    stem = args.name or ("features_cuda" if args.device.startswith("cuda") else "features")
    md, js = os.path.join(args.out, f"{stem}.md"), os.path.join(args.out, f"{stem}.json")
    write_markdown(result, md)
    with open(js, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, default=str)
    print(f"wrote {md} and {js}")


if __name__ == "__main__":
    main()
