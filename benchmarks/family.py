"""Step time and optimizer-state size of every fast optimizer, dense and factored, against the
corresponding adv_optm class, on the step_time.py model (fp32 parameters, CPU by default).

One process holds every candidate (an optimizer with its own copy of the model); they share one
set of constant gradients. After untimed warm-up steps (which compile), candidates are timed in
interleaved rounds exactly as in step_time.py, and each step time is reported as a ratio to fused
torch AdamW measured in the same rounds; fast / adv divides two such ratios, so machine drift
cancels. fast runs compiled (its default), adv_optm eager (its default) and, for the classes whose
compiled path compiles once and stays compiled, compiled too.

adv_optm 2.5.16 (installed) has no Lion_Prodigy_adv or Simplified_AdEMAMix; those rows use
adv_optm 2.2.3, unpacked from its wheel under the top-level name ``adv_optm_v223`` (its imports
are relative), downloaded with pip unless ``--adv223-wheel`` names one; without it they are skipped.

    .venv/bin/python benchmarks/family.py [--quick] [--budget S] [--steps N] [--threads N] [--no-adv-compiled]
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import benchutil as bu
import torch
import torch._dynamo
from step_time import Candidate, crash_text, interleaved_rounds, median_ratios, model_tensors, plan, timed_step
from torch._dynamo.utils import counters

import fast

WARMUP = 3  # untimed: step 1 allocates and compiles, adv's compiled Prodigy recompiles once at step 2
MODES = ("fp32", "factored")  # fast's state_precision; adv's equivalent is in Family.adv_modes
V223 = "adv_optm_v223"
V223_WHEEL = "adv_optm-2.2.3-py3-none-any.whl"
WD = 0.01  # every optimizer decays, so the decay path is timed everywhere
# adv 2.5.16 selects the storage by state_precision; Lion_adv and the 2.2.3 classes by nnmf_factor
# (their dense states take the parameter dtype: fp32 here, as for fast's state_precision='fp32').
BY_PRECISION = {"fp32": {"state_precision": "fp32"}, "factored": {"state_precision": "factored"}}
BY_NNMF: dict[str, dict[str, Any]] = {"fp32": {}, "factored": {"nnmf_factor": True}}


@dataclass(frozen=True)
class Family:
    name: str  # fast.<name>
    hyper: dict[str, Any]  # given to fast and adv alike: each optimizer's usual lr, the rest default
    adv_package: str  # "adv_optm" (2.5.16) or V223
    adv_class: str
    adv_modes: dict[str, dict[str, Any]]
    # How adv's compiled_optimizer=True behaves on torch 2.13 (checked on this model): None when
    # it compiles once and is timed; otherwise why it is not.
    adv_compiled_skip: str | None = None


RECOMPILES = ("recompile every step (the compiled step guards on Python-float step scalars such as the bias "
              "correction) until dynamo's recompile limit fails the step: not timed")
THREADS_NOTE = (
    "torch runs on 1 thread (`--threads 1`, the default): with all threads every parallel loop waits for its "
    "slowest thread, so one core busy with another process stretches each step to a scheduler quantum (fused "
    "torch AdamW on this model and 2-core machine: 19 ms/step idle, 112 ms with 2 threads beside one busy "
    "process, 24 ms on 1 thread either way), which equalises every fast row at that floor. `--threads 0` uses "
    "torch's default on an otherwise idle machine."
)
IGNORED = "ignore the flag (always eager): not repeated"
FAMILIES = [
    Family("AdamW", {"lr": 1e-3, "weight_decay": WD}, "adv_optm", "AdamW_adv", BY_PRECISION, RECOMPILES),
    Family("Adopt", {"lr": 1e-4, "weight_decay": WD}, "adv_optm", "Adopt_adv", BY_PRECISION, RECOMPILES),
    # d_limiter (ProdigyLion's default; a Python min, so free): under these constant gradients an unlimited d
    # grows ~10x per step and overflows fp32 by step ~36 (adv's parameters turn NaN, fast raises).
    Family("Prodigy", {"lr": 1.0, "weight_decay": WD, "d_limiter": True}, "adv_optm", "Prodigy_adv", BY_PRECISION),
    Family("Lion", {"lr": 1e-4, "weight_decay": WD}, "adv_optm", "Lion_adv", BY_NNMF, IGNORED),
    Family("ProdigyLion", {"lr": 1.0, "weight_decay": WD}, V223, "Lion_Prodigy_adv", BY_NNMF, IGNORED),
    Family("SignSGD", {"lr": 1e-4, "weight_decay": WD}, "adv_optm", "SignSGD_adv", BY_PRECISION),
    Family("SimplifiedAdEMAMix", {"lr": 1e-5, "weight_decay": WD}, V223, "Simplified_AdEMAMix", BY_NNMF, IGNORED),
]


# -- adv_optm 2.2.3 under another name ------------------------------------------------------------
def load_v223(wheel: str | None, workdir: Path) -> tuple[ModuleType | None, str]:
    """Import adv_optm 2.2.3 as ``adv_optm_v223`` beside the installed 2.5.16, or say why not."""
    if wheel is None:
        cache = Path(tempfile.gettempdir()) / "advopt-bench-wheels"
        wheel_path = cache / V223_WHEEL
        if not wheel_path.is_file():
            cmd = [sys.executable, "-m", "pip", "download", "adv-optm==2.2.3", "--no-deps", "--only-binary=:all:",
                   "-q", "-d", str(cache)]
            try:
                subprocess.run(cmd, check=True, capture_output=True, timeout=180)
            except (OSError, subprocess.SubprocessError) as err:
                return None, f"`pip download adv-optm==2.2.3` failed ({type(err).__name__})"
    else:
        wheel_path = Path(wheel)
    if not wheel_path.is_file():
        return None, f"no wheel at {wheel_path}"
    target = workdir / V223
    with zipfile.ZipFile(wheel_path) as z:
        for name in z.namelist():
            if name.startswith("adv_optm/") and not name.endswith("/"):
                dst = target / name.removeprefix("adv_optm/")
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(z.read(name))
    # A renamed copy is only itself if it never imports its package by absolute name: such an
    # import would silently load the installed 2.5.16 modules instead.
    absolute = re.compile(r"^\s*(from|import)\s+adv_optm\b", re.M)
    if any(absolute.search(f.read_text(encoding="utf-8")) for f in target.rglob("*.py")):
        return None, "the 2.2.3 wheel imports adv_optm by absolute name, so it cannot be renamed"
    sys.path.insert(0, str(workdir))
    module = importlib.import_module(V223)
    return module, f"adv_optm {module.__version__} from {wheel_path.name}, imported as `{V223}`"


# -- candidates -----------------------------------------------------------------------------------
@dataclass
class Extra:
    """What this benchmark records beside step_time.Candidate's fields."""

    optimizer: str
    mode: str
    graphs_after_first: int = 0  # dynamo graphs compiled in warm-up steps 2.. (recompiles)
    params_after_warmup: list[torch.Tensor] = field(default_factory=list)


def candidates(adv: dict[str, ModuleType | None], adv_compiled: bool) -> tuple[list[Candidate], dict[str, Extra]]:
    f32 = torch.float32
    cands = [Candidate("torch_fused", "torch", "torch AdamW fused", "fp32", f32,
                       lambda ps: torch.optim.AdamW(ps, fused=True, lr=1e-3, weight_decay=WD), baseline=True)]
    extra = {"torch_fused": Extra("torch AdamW fused", "fp32")}
    for fam in FAMILIES:
        module = adv.get(fam.adv_package)
        adv_cls = None if module is None else getattr(module, fam.adv_class)
        for mode in MODES:
            specs: list[tuple[str, str, Any, dict[str, Any], bool]] = [
                ("fast", f"fast.{fam.name}", getattr(fast, fam.name), {"state_precision": mode}, True)]
            if adv_cls is not None:
                specs.append(("adv", fam.adv_class, adv_cls, fam.adv_modes[mode], False))
                if adv_compiled and fam.adv_compiled_skip is None:
                    specs.append(("adv_compiled", fam.adv_class, adv_cls,
                                  {**fam.adv_modes[mode], "compiled_optimizer": True}, True))
            for impl, label, cls, kwargs, compiled in specs:
                key = f"{impl}_{fam.name}_{mode}"
                cands.append(Candidate(key, impl, label, mode, f32,
                                       lambda ps, cls=cls, kw={**fam.hyper, **kwargs}: cls(ps, **kw),
                                       compiled=compiled))
                extra[key] = Extra(fam.name, mode)
    return cands, extra


def warm_up(cands: list[Candidate], extra: dict[str, Extra], device: torch.device, grads: list[torch.Tensor],
            base_params: list[torch.Tensor]) -> None:
    """WARMUP untimed steps of each candidate, one at a time so each compile is its own row's: gives
    each its model copy (gradients ``grads``, shared), records the first step's seconds, the graphs
    compiled after it and the parameters after warm-up; a candidate that raises is marked crashed."""
    stats = counters["stats"]
    for c in cands:
        c.params = [p.to(device=device, copy=True) for p in base_params]
        for p, g in zip(c.params, grads):
            p.grad = g
        try:
            c.opt = c.make(c.params)
            c.first_step_s = timed_step(c.opt, device)[0]
            graphs = stats["unique_graphs"]
            later = [timed_step(c.opt, device)[0] for _ in range(WARMUP - 1)]
            extra[c.key].graphs_after_first = stats["unique_graphs"] - graphs
            # The schedule's estimate: the fastest later step (a busy machine stalls single steps).
            c.warm_s = min(later + ([] if c.compiled else [c.first_step_s]))
        except Exception as err:  # a configuration the optimizer does not support
            c.crash = crash_text(err)
            c.opt, c.params = None, []
            gc.collect()
            print(f"warm-up {c.label} [{c.states}] ({c.family}): crashes, {c.crash}")
            continue
        extra[c.key].params_after_warmup = [p.detach().clone() for p in c.params]
        print(f"warm-up {c.label} [{c.states}] ({c.family}): first step {c.first_step_s:.2f} s, "
              f"then {c.warm_s * 1e3:.0f} ms")


def timing_fields(c: Candidate, e: Extra, fused: Candidate, numel: int) -> dict[str, Any]:
    """The measured fields of a timed candidate's result row."""
    flat = [t for ts in c.rounds.values() for t in ts]
    med = bu.quartiles(flat)[1]
    return {
        "timed_steps": len(flat), "timed_rounds": len(c.rounds), "median_ms": med * 1e3,
        "ratio_to_fused": median_ratios(c, fused), "first_step_s": c.first_step_s,
        "compile_s": c.first_step_s - med if c.compiled else None,
        "graphs_in_warmup_after_first_step": e.graphs_after_first,
        "state_bytes": bu.state_bytes(c.opt), "state_bytes_per_param": bu.state_bytes(c.opt) / numel,
        "state_tensors": sorted({k for st in c.opt.state.values() for k, v in st.items()
                                 if isinstance(v, torch.Tensor) and v.dim() > 0}),
        "step_times_s": {str(r): ts for r, ts in c.rounds.items()},
    }


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    device = torch.device(args.device)
    info = bu.machine_info(device)
    info["load_average_start"] = bu.load_average()
    notes: list[str] = []
    adv: dict[str, ModuleType | None] = {"adv_optm": None, V223: None}
    try:
        import adv_optm

        adv["adv_optm"] = adv_optm
        notes.append(f"adv_optm {adv_optm.__version__} (installed) for AdamW, Adopt, Prodigy, Lion and SignSGD.")
    except ImportError:
        notes.append("adv_optm not importable: its rows are skipped.")
    adv[V223], text = load_v223(args.adv223_wheel, workdir)
    notes.append(f"{text} for ProdigyLion and SimplifiedAdEMAMix." if adv[V223] is not None
                 else f"{text}: the adv rows of ProdigyLion and SimplifiedAdEMAMix are skipped.")
    if args.adv_compiled:
        # Dynamo's recompile budget is per code object and adv's instances share theirs, so two
        # storage modes and two parameter ranks exceed the default 8; fast's kernels have their own.
        torch._dynamo.config.recompile_limit = 64
        notes.append("adv compiled rows run with torch._dynamo.config.recompile_limit = 64 (default 8): adv "
                     "instances share one code object, so its two storage modes and two parameter ranks exceed "
                     "8 graphs and fail (fullgraph=True) at the default.")
    if torch.get_num_threads() == 1 and device.type == "cpu":
        notes.append(THREADS_NOTE)
    for note in notes:
        print("note:", note)

    base_params, base_grads = model_tensors(args.quick)
    numel = sum(p.numel() for p in base_params)
    print(f"model: {len(base_params)} tensors, {numel:,} parameters; device {device}")
    # One gradient set shared by all candidates (none may write into p.grad; checked at the end).
    grads = [g.to(device=device, dtype=torch.float32, copy=True) for g in base_grads]
    cands, extra = candidates(adv, args.adv_compiled)
    stats = counters["stats"]
    warm_up(cands, extra, device, grads, base_params)
    live = [c for c in cands if c.crash is None]
    fused = next(c for c in live if c.key == "torch_fused")

    n_rounds = math.ceil(args.steps / args.per_round)
    estimate = plan(live, n_rounds, args.per_round, args.budget)
    print(f"timing: {n_rounds} rounds, about {estimate:.0f} s (budget {args.budget:.0f} s)")
    graphs_before = stats["unique_graphs"]
    timing_s = interleaved_rounds(live, n_rounds, device, catch=True)

    rows: list[dict[str, Any]] = []
    for c in cands:
        e = extra[c.key]
        row: dict[str, Any] = {"key": c.key, "impl": c.family, "optimizer": e.optimizer, "class": c.label,
                               "mode": c.states, "crash": c.crash}
        rows.append(row)
        if c.crash is not None:
            continue
        row.update(timing_fields(c, e, fused, numel))
    # Sanity: after the same warm-up steps on the same gradients, fast and adv should agree up to the
    # documented deviations (a large difference would mean the rows do not run the same algorithm).
    by_key = {c.key: extra[c.key].params_after_warmup for c in cands if c.crash is None}
    for row in rows:
        ref = by_key.get(f"adv_{row['optimizer']}_{row['mode']}")
        if row["crash"] is None and row["impl"] != "adv" and ref and row["impl"] != "torch":
            diff = max((p - q).abs().max().item() for p, q in zip(by_key[row["key"]], ref))
            row["max_abs_dp_vs_adv_eager_after_warmup"] = diff
    info["load_average_end"] = bu.load_average()
    return {
        "machine": info,
        "config": {
            "quick": args.quick, "tensors": len(base_params), "numel": numel, "param_dtype": "float32",
            "warmup_steps": WARMUP, "rounds": n_rounds, "max_steps_per_round": args.per_round,
            "budget_s": args.budget, "timing_estimate_s": estimate, "timing_s": timing_s,
            "recompiles_while_timing": stats["unique_graphs"] - graphs_before,
            "gradients_unchanged": all(torch.equal(g, b) for g, b in zip(grads, base_grads)),
            "inductor_cache": "warm (default dir)" if args.warm_cache else "cold (fresh temporary dir)",
            "families": [{"fast": f"fast.{f.name}", "adv": f"{f.adv_package}.{f.adv_class}", "hyper": f.hyper,
                          "adv_modes": f.adv_modes, "adv_compiled": f.adv_compiled_skip or "timed"}
                         for f in FAMILIES],
        },
        "notes": notes, "results": rows,
    }


# -- report ---------------------------------------------------------------------------------------
def _q(q: list[float] | tuple[float, ...] | None) -> str:
    return "-" if q is None else f"{q[1]:.2f} ({q[0]:.2f}-{q[2]:.2f})"


def _find(result: dict[str, Any], impl: str, optimizer: str, mode: str) -> dict[str, Any] | None:
    return next((r for r in result["results"] if (r["impl"], r["optimizer"], r["mode"]) == (impl, optimizer, mode)),
                None)


def _ok(r: dict[str, Any] | None) -> bool:
    return r is not None and r["crash"] is None


def table(result: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    headers = ["optimizer", "states", "adv class", "fast x fused (IQR)", "adv x fused (IQR)", "fast / adv",
               "adv compiled x fused", "fast / adv compiled", "fast B/param", "adv B/param", "fast ms", "adv ms",
               "fast compile s", "max abs dp fast vs adv"]
    rows: list[list[object]] = []
    for fam in FAMILIES:
        for mode in MODES:
            f, a, ac = (_find(result, impl, fam.name, mode) for impl in ("fast", "adv", "adv_compiled"))

            def crash(r: dict[str, Any] | None) -> str:
                return "-" if r is None else f"crashes ({r['crash'].split(':')[0]})"

            def per(r: dict[str, Any] | None, fmt: str, key: str) -> str:
                return fmt.format(r[key]) if _ok(r) else crash(r)

            def over(num: dict[str, Any] | None, den: dict[str, Any] | None) -> str:
                if not (_ok(num) and _ok(den)):
                    return "-"
                return f"{num['ratio_to_fused'][1] / den['ratio_to_fused'][1]:.2f}"

            dp = f.get("max_abs_dp_vs_adv_eager_after_warmup") if _ok(f) else None
            rows.append([
                f"fast.{fam.name}", mode, fam.adv_class,
                _q(f["ratio_to_fused"]) if _ok(f) else crash(f), _q(a["ratio_to_fused"]) if _ok(a) else crash(a),
                over(f, a), _q(ac["ratio_to_fused"]) if _ok(ac) else crash(ac), over(f, ac),
                per(f, "{:.3f}", "state_bytes_per_param"), per(a, "{:.3f}", "state_bytes_per_param"),
                per(f, "{:.1f}", "median_ms"), per(a, "{:.1f}", "median_ms"),
                "-" if not _ok(f) else f"{f['compile_s']:.1f}", "-" if dp is None else f"{dp:.1e}",
            ])
    return headers, rows


def write_markdown(result: dict[str, Any], path: str) -> None:
    cfg = result["config"]
    fused = _find(result, "torch", "torch AdamW fused", "fp32")
    by_status: dict[str, list[str]] = {}
    for fam in FAMILIES:
        by_status.setdefault(fam.adv_compiled_skip or "timed", []).append(f"`{fam.adv_package}.{fam.adv_class}`")
    classes = "; ".join(f"{', '.join(names)}: {status}" for status, names in by_status.items())
    later = ", ".join(f"{r['class']} {r['mode']} ({r['impl']}): {r['graphs_in_warmup_after_first_step']}"
                      for r in result["results"] if _ok(r) and r["graphs_in_warmup_after_first_step"])
    lines = [
        "# Step time and state size across the optimizer family",
        "",
        f"The step_time model ({cfg['tensors']} tensors, {cfg['numel']:,} parameters, fp32 parameters, constant "
        f"random gradients shared by all rows). Every fast optimizer with `state_precision='fp32'` (dense) and "
        f"`'factored'`, compiled (`compiled_optimizer=True`, its default), against the corresponding adv_optm class "
        f"in the same storage mode, eager (its default) and, where that works, compiled. Learning rates are each "
        f"optimizer's usual ones (AdamW 1e-3, Adopt/Lion/SignSGD 1e-4, SimplifiedAdEMAMix 1e-5, Prodigy and "
        f"ProdigyLion 1.0), weight_decay={WD} everywhere, Prodigy with d_limiter=True (ProdigyLion's default; "
        "without it d grows about 10x per step under constant gradients and overflows fp32 within ~36 steps), the "
        "other hyperparameters default; fast and adv get "
        f"the same ones. {cfg['warmup_steps']} untimed warm-up steps per row (compiles included), then "
        f"{cfg['rounds']} interleaved rounds (order reversed every other round), as in the step_time benchmark; "
        f"slow rows take fewer steps within the {cfg['budget_s']:.0f} s budget. Fused torch AdamW took "
        f"{fused['median_ms']:.1f} ms/step (median). Timed rounds took {cfg['timing_s']:.0f} s, the whole run "
        f"{result.get('runtime_s', math.nan):.0f} s; dynamo graphs compiled while timing: "
        f"{cfg['recompiles_while_timing']}.",
        "",
        *bu.markdown_table(*table(result)),
        "",
        "## Columns",
        "",
        "- **x fused (IQR)**: per round, the row's median step time over fused fp32 torch AdamW's in the same "
        "round; median and interquartile range over the rounds. **fast / adv**: fast's median ratio over adv's "
        "(below 1: fast is faster). Absolute **ms** move with the machine's load; the ratios are the headline.",
        "- **B/param**: bytes of every tensor in `opt.state` (Prodigy's `s` and `p0` slices included; 0-d "
        "step counters excluded) / number of parameters. Biases keep dense states in factored mode.",
        "- **fast compile s**: first step - median step (inductor cache "
        f"{cfg['inductor_cache']}). fast compiles one kernel per math and storage format, shared by its "
        "classes: a row whose kernel an earlier row compiled (e.g. Prodigy reuses AdamW's Adam kernel) "
        "shows less. Graphs compiled in later warm-up steps, not counted: "
        f"{later or 'none'} (fast.Adopt's first step, which only sets v, is a kernel of its own; adv's are "
        "recompiles).",
        f"- **max abs dp fast vs adv**: largest parameter difference between fast and adv eager after the "
        f"{cfg['warmup_steps']} warm-up steps: a sanity check that both rows run the same algorithm, up to the "
        "deviations documented in each fast class (e.g. Adopt's max(sqrt(v), eps)).",
        f"- adv_optm with `compiled_optimizer=True`: {classes}.",
        f"- Shared gradients unchanged by all optimizers: {'yes' if cfg['gradients_unchanged'] else 'NO'}.",
        *[f"- {n}" for n in result["notes"]],
        "",
    ]
    bu.write_report(path, lines, result["machine"])


def add_timing_arguments(parser: argparse.ArgumentParser, results: str) -> None:
    """The command line family.py and factored_family.py share; ``results``: the output files' stem."""
    parser.add_argument("--steps", type=int, default=None, help="most timed steps per row (45; 6 with --quick)")
    parser.add_argument("--per-round", type=int, default=3, help="most consecutive steps per row per round")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for the timed rounds (200; 10 with --quick): slow rows take fewer steps")
    parser.add_argument("--quick", action="store_true", help="small model (7 x 256 wide), for a smoke test")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: robust to other busy processes; 0: torch's default, all cores)")
    parser.add_argument("--warm-cache", action="store_true",
                        help="reuse the inductor cache (default: a fresh one, so compile time is cold; "
                             "--quick always reuses it, so that a repeated smoke test takes well under a minute)")
    parser.add_argument("--out", default=None,
                        help=f"directory for {results}.md / .json (benchmarks/results; a temp dir with --quick)")


def resolve_timing_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fill the --quick-dependent defaults, check the device, set torch's threads."""
    if args.steps is None:
        args.steps = 6 if args.quick else 45
    if args.budget is None:
        args.budget = 10.0 if args.quick else 200.0
    args.warm_cache = args.warm_cache or args.quick
    if args.out is None:  # smoke-test numbers must not overwrite or sit beside the published ones
        args.out = os.path.join(tempfile.gettempdir(), "advopt-bench-quick") if args.quick else str(bu.RESULTS)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda requested but torch.cuda.is_available() is False")
    if args.threads > 0:  # before any compile: inductor builds its CPU kernels for the current thread count
        torch.set_num_threads(args.threads)


def save_results(result: dict[str, Any], out: str, stem: str, write: Any) -> None:
    """``write(result, path)`` the Markdown page and dump the json beside it."""
    os.makedirs(out, exist_ok=True)
    md, js = os.path.join(out, f"{stem}.md"), os.path.join(out, f"{stem}.json")
    write(result, md)
    with open(js, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, default=str)
    print(f"wrote {md} and {js}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_timing_arguments(parser, "family")
    parser.add_argument("--no-adv-compiled", dest="adv_compiled", action="store_false",
                        help="skip the adv compiled_optimizer=True rows")
    parser.add_argument("--adv223-wheel", default=None,
                        help=f"path of {V223_WHEEL} (default: pip download into a temporary cache)")
    args = parser.parse_args()
    resolve_timing_arguments(parser, args)
    t0 = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="advopt-bench-family-"))
    if not args.warm_cache:
        # Read by inductor at its first compile, so setting it here (before any) is enough.
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(workdir / "inductor")
    try:
        result = run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["runtime_s"] = time.perf_counter() - t0

    print()
    print(bu.text_table(*table(result)))
    print(f"runtime {result['runtime_s']:.0f} s")
    save_results(result, args.out, "family", write_markdown)


if __name__ == "__main__":
    main()
