"""Step time and optimizer-state size of the factored fast optimizers (Adafactor, CAME, Automagic,
AutomagicCAME) against the implementations users run today: transformers' Adafactor, came-pytorch's
CAME and ai-toolkit's Automagic, each eager, on the step_time.py model (fp32 parameters, CPU).

The machinery is family.py's (one process, a model copy per candidate, shared constant gradients,
untimed warm-up steps that compile, interleaved timed rounds, every step time a ratio to fused
torch AdamW in the same rounds); only the rows differ.

ai-toolkit is not a package: its ``toolkit/optimizers/automagic.py`` and ``optimizer_utils.py``
are read from a checkout named by ``AI_TOOLKIT_DIR`` or, without it, from the git snapshot
``AI_TOOLKIT_GIT`` (default /work/.mirror/ostris+ai-toolkit/repo, read with ``git show``), copied
into a temporary package ``toolkit.optimizers`` (ai-toolkit's own ``toolkit/__init__.py`` is not
used: it pulls in huggingface_hub and more). Without either source the ai-toolkit rows are
skipped. ``optimum.quanto`` (imported only for an ``isinstance(p, QBytesTensor)`` check) is
replaced, when not installed, by a module whose ``QBytesTensor`` nothing is an instance of: plain
fp32 tensors take the same path as with quanto installed. Everything else, ai-toolkit's absmax
int8 ``Auto8bitTensor`` mask holder included, is its own code. A second copy of the module, whose
``Auto8bitTensor`` is replaced by an exact fp32 holder, is the reference of fast.Automagic's
``mask_precision='fp32'`` row.

    .venv/bin/python benchmarks/factored_family.py [--quick] [--budget S] [--steps N] [--threads N]
    .venv/bin/python benchmarks/factored_family.py --profile [--quick]   # where a fast step's time goes
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import importlib
import importlib.util
import io
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import benchutil as bu
import torch
from family import (
    THREADS_NOTE,
    WARMUP,
    WD,
    Extra,
    _ok,
    _q,
    add_timing_arguments,
    resolve_timing_arguments,
    save_results,
    timing_fields,
    warm_up,
)
from step_time import Candidate, interleaved_rounds, model_tensors, plan
from torch._dynamo.utils import counters

import fast

AITK_GIT = "/work/.mirror/ostris+ai-toolkit/repo"
AITK_FILES = ("toolkit/optimizers/automagic.py", "toolkit/optimizers/optimizer_utils.py")
FUSED_ADAMW_BYTES = 28.0  # p read + write, g read, m and v read + written, fp32 (see step_time.py)
WELL_BELOW = 0.5  # "well below the upstream eager step": fast / upstream at most this


# -- ai-toolkit's Automagic ------------------------------------------------------------------------
class ExactMask:
    """Stands in for ai-toolkit's ``Auto8bitTensor`` in the fp32-mask reference: the constructor
    keeps the fp32 mask it is given and ``.to(dtype)`` returns it (Auto8bitTensor's interface as
    automagic.py uses it), so ai-toolkit's step runs unchanged on an exact mask."""

    def __init__(self, data: torch.Tensor) -> None:
        self.data = data

    def to(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.data.to(*args, **kwargs)


def _stub_quanto() -> str | None:
    """Install ``optimum.quanto`` with an empty ``QBytesTensor`` if quanto is not importable."""
    try:
        importlib.import_module("optimum.quanto")
        return None
    except ImportError:
        pass
    optimum = sys.modules.get("optimum") or ModuleType("optimum")
    optimum.__path__ = getattr(optimum, "__path__", [])
    quanto = ModuleType("optimum.quanto")

    class QBytesTensor(torch.Tensor):  # never instantiated: isinstance(p, QBytesTensor) is False
        pass

    quanto.QBytesTensor = QBytesTensor
    optimum.quanto = quanto
    sys.modules["optimum"], sys.modules["optimum.quanto"] = optimum, quanto
    return ("`optimum.quanto` is not installed; a stub module stands in whose `QBytesTensor` no tensor is an "
            "instance of (automagic.py only checks `isinstance(p, QBytesTensor)` to dequantise quanto "
            "parameters; these plain fp32 parameters take the same path either way)")


def load_ai_toolkit(workdir: Path) -> tuple[dict[str, type] | None, list[str]]:
    """ai-toolkit's Automagic as shipped ('int8', its Auto8bitTensor mask) and with the exact fp32
    mask holder ('fp32'), or None and why not."""
    checkout, git_dir = os.environ.get("AI_TOOLKIT_DIR"), os.environ.get("AI_TOOLKIT_GIT", AITK_GIT)
    root = workdir / "ai_toolkit"
    texts: dict[str, str] = {}
    if checkout:
        for name in AITK_FILES:
            path = Path(checkout) / name
            if not path.is_file():
                return None, [f"AI_TOOLKIT_DIR={checkout} has no {name}: the ai-toolkit rows are skipped."]
            texts[name] = path.read_text(encoding="utf-8")
        origin = f"the checkout AI_TOOLKIT_DIR={checkout}"
    elif Path(git_dir).is_dir():
        git = ["git", f"--git-dir={git_dir}"]
        try:
            commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout
            date = subprocess.run([*git, "log", "-1", "--format=%cs"], check=True, capture_output=True,
                                  text=True).stdout.strip()
            for name in AITK_FILES:
                texts[name] = subprocess.run([*git, "show", f"HEAD:{name}"], check=True, capture_output=True,
                                             text=True).stdout
        except (OSError, subprocess.SubprocessError) as err:
            return None, [f"reading ai-toolkit from {git_dir} failed ({type(err).__name__}): its rows are skipped."]
        origin = f"ostris/ai-toolkit commit {commit.strip()[:12]} ({date}, read from the git snapshot)"
    else:
        return None, ["ai-toolkit not found (set AI_TOOLKIT_DIR to a checkout, or AI_TOOLKIT_GIT to a git "
                      f"directory; {AITK_GIT} does not exist): the ai-toolkit rows are skipped."]
    for name, text in texts.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    for package in ("toolkit", "toolkit/optimizers"):
        (root / package / "__init__.py").write_text("", encoding="utf-8")
    notes = [f"ai-toolkit's `Automagic` from {origin}: `toolkit/optimizers/automagic.py` and `optimizer_utils.py` "
             "copied unchanged into a temporary `toolkit.optimizers` package (with empty `__init__.py`s; "
             "ai-toolkit's own `toolkit/__init__.py`, which imports huggingface_hub, is not used)."]
    stub = _stub_quanto()
    if stub:
        notes.append(stub + ".")
    sys.path.insert(0, str(root))
    shipped = importlib.import_module("toolkit.optimizers.automagic")
    spec = importlib.util.spec_from_file_location("ai_toolkit_automagic_fp32_mask", root / AITK_FILES[0])
    exact = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(exact)
    exact.Auto8bitTensor = ExactMask
    notes.append("ai-toolkit rows: `Automagic` as shipped stores its mask in `Auto8bitTensor` (int8 with one "
                 "absmax scale per tensor, rounded to nearest: 1 B/param) and `last_polarity` as a bool tensor "
                 "(1 B/param). The `fp32 mask` reference is a second copy of the same module whose "
                 "`Auto8bitTensor` is an exact holder (keeps the fp32 tensor, 4 B/param): otherwise the same "
                 "step. Its parameters are made `requires_grad=True` (its step skips parameters without).")
    return {"int8": shipped.Automagic, "fp32": exact.Automagic}, notes


# -- rows ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Upstream:
    key: str
    label: str  # the class as users import it
    make: Callable[[list[torch.Tensor]], torch.optim.Optimizer] | None  # None: not available


@dataclass(frozen=True)
class Row:
    key: str
    label: str  # the fast class and setting shown
    fast_cls: str
    kwargs: dict[str, Any]  # fast's (and, without fast-only keys, the upstream's)
    upstream: str  # Upstream.key
    same_algorithm: bool  # the upstream runs the same rule (up to the documented storage difference)
    target: float  # the step time the project owes, as a multiple of fused AdamW's
    # Bytes per parameter per step, besides p read + write and g read (12): state bytes read and written
    # once (the single-pass floor) and the extra full-size reads the rule's data dependencies force.
    dense_state_bytes: float = 0.0
    extra_reads: float = 0.0
    dependency: str = ""


ADAFACTOR_ADAPTIVE = {"lr": None, "relative_step": True, "scale_parameter": True, "warmup_init": False,
                      "weight_decay": WD}
ADAFACTOR_ADAMW = {"lr": 1e-4, "relative_step": False, "scale_parameter": False, "warmup_init": False,
                   "beta1": 0.9, "weight_decay": WD}
CAME_HYPER = {"lr": 2e-4, "betas": (0.9, 0.999, 0.9999), "eps": (1e-30, 1e-16), "weight_decay": WD}
AUTOMAGIC_HYPER = {"lr": 1e-6, "min_lr": 1e-7, "max_lr": 1e-3, "lr_bump": 1e-6, "weight_decay": WD}  # its defaults
FAST_ONLY = ("state_precision", "mask_precision")
INT8 = 1 + 8 / 2048  # fast's int8_sr: one byte per element, an 8-byte block header per 2,048
# Every factored rule: the factors need all of g before u exists, the RMS clip needs all of u before any
# element is written, so g is read in three passes (+8 B over one).
G3 = "g read 3x (factor reduction, RMS(u) reduction, update)"
ROWS = [
    Row("adafactor_adaptive", "Adafactor adaptive", "Adafactor", ADAFACTOR_ADAPTIVE, "hf_adaptive", True, 1.5,
        0.0, 12.0, G3 + "; p read 2x (RMS(p) sets the step size before the update pass)"),
    Row("adafactor_adamw", "Adafactor low-memory AdamW", "Adafactor", ADAFACTOR_ADAMW, "hf_adamw", True, 1.5,
        4.0, 8.0, G3 + "; m r/w once"),
    Row("came", "CAME", "CAME", CAME_HYPER, "came", True, 1.5, 4.0, 12.0,
        G3 + "; m_new read again (the residual factors need all of m_new before the step)"),
    Row("came_int8", "CAME int8_sr", "CAME", {**CAME_HYPER, "state_precision": "int8_sr"}, "came", False, 1.5,
        INT8, 8.0 + INT8, G3 + "; 8-bit m_new read again"),
    Row("automagic_int8", "Automagic (mask int8_sr)", "Automagic", AUTOMAGIC_HYPER, "aitk_int8", False, 2.0,
        1 + 1 / 8, 8.0, G3 + "; 8-bit mask + 1-bit polarity r/w once"),
    Row("automagic_fp32", "Automagic (mask fp32)", "Automagic", {**AUTOMAGIC_HYPER, "mask_precision": "fp32"},
        "aitk_fp32", True, 2.0, 4 + 1 / 8, 8.0, G3 + "; fp32 mask + 1-bit polarity r/w once"),
    Row("automagic_came", "AutomagicCAME (mask int8_sr)", "AutomagicCAME", {"lr": 1e-6, "weight_decay": WD},
        "aitk_int8", False, 2.0, 1 + 1 / 8 + 4, 12.0, G3 + "; m_new read again; mask, polarity, m r/w once"),
]


def code_state() -> str:
    """The commit of the measured fast/ code and its uncommitted changes (read-only git queries)."""
    try:
        head = subprocess.run(["git", "-C", str(bu.REPO), "rev-parse", "--short=12", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
        changed = subprocess.run(["git", "-C", str(bu.REPO), "status", "--porcelain", "--", "fast", "spec"],
                                 check=True, capture_output=True, text=True).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return "The measured code's commit is unknown (no git)."
    files = [line[3:] for line in changed if line.strip()]
    return (f"Measured code: commit {head}" + (f", with uncommitted changes to {', '.join(files)}" if files else "")
            + ".")


def upstreams(workdir: Path, notes: list[str]) -> dict[str, Upstream]:
    import came_pytorch
    import transformers
    from transformers.optimization import Adafactor as HFAdafactor

    def hf(kw: dict[str, Any]) -> Callable[[list[torch.Tensor]], torch.optim.Optimizer]:
        return lambda ps: HFAdafactor(ps, **kw)

    notes.append(f"transformers {transformers.__version__} `transformers.optimization.Adafactor` and came-pytorch "
                 f"{_version('came-pytorch')} `came_pytorch.CAME`, eager (they have no compiled mode).")
    out = {
        "hf_adaptive": Upstream("hf_adaptive", "transformers Adafactor", hf(ADAFACTOR_ADAPTIVE)),
        "hf_adamw": Upstream("hf_adamw", "transformers Adafactor", hf(ADAFACTOR_ADAMW)),
        "came": Upstream("came", "came_pytorch.CAME", lambda ps: came_pytorch.CAME(ps, **CAME_HYPER)),
    }
    aitk, aitk_notes = load_ai_toolkit(workdir)
    notes.extend(aitk_notes)
    for mode, label in (("int8", "ai-toolkit Automagic"), ("fp32", "ai-toolkit Automagic, fp32 mask")):
        make = None
        if aitk is not None:
            def make(ps: list[torch.Tensor], cls: type = aitk[mode]) -> torch.optim.Optimizer:
                for p in ps:
                    p.requires_grad_(True)
                with contextlib.redirect_stdout(io.StringIO()):  # its "Total training paramiters" line
                    return cls(ps, **AUTOMAGIC_HYPER)
        out[f"aitk_{mode}"] = Upstream(f"aitk_{mode}", label, make)
    return out


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "(version unknown)"


def upstream_state_bytes(opt: torch.optim.Optimizer) -> int:
    """bu.state_bytes, plus the tensors held by non-tensor state objects (ai-toolkit's
    Auto8bitTensor keeps its int8 codes in ``.quantized``; ExactMask its fp32 ``.data``)."""
    total = 0
    for st in opt.state.values():
        for v in st.values():
            held = [v] if isinstance(v, torch.Tensor) else list(vars(v).values()) if hasattr(v, "__dict__") else []
            total += sum(t.nbytes for t in held if isinstance(t, torch.Tensor) and t.dim() > 0)
    return total


def candidates(ups: dict[str, Upstream]) -> tuple[list[Candidate], dict[str, Extra]]:
    f32 = torch.float32
    cands = [Candidate("torch_fused", "torch", "torch AdamW fused", "fp32", f32,
                       lambda ps: torch.optim.AdamW(ps, fused=True, lr=1e-3, weight_decay=WD), baseline=True)]
    extra = {"torch_fused": Extra("torch AdamW fused", "fp32")}
    for row in ROWS:
        cls = getattr(fast, row.fast_cls)
        cands.append(Candidate(f"fast_{row.key}", "fast", f"fast.{row.fast_cls}", row.label, f32,
                               lambda ps, cls=cls, kw=row.kwargs: cls(ps, **kw), compiled=True))
        extra[f"fast_{row.key}"] = Extra(row.label, row.key)
    for up in ups.values():
        if up.make is not None:
            cands.append(Candidate(f"up_{up.key}", "upstream", up.label, up.key, f32, up.make))
            extra[f"up_{up.key}"] = Extra(up.label, up.key)
    return cands, extra


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    device = torch.device(args.device)
    info = bu.machine_info(device)
    info["load_average_start"] = bu.load_average()
    notes: list[str] = [code_state()]
    ups = upstreams(workdir, notes)
    if torch.get_num_threads() == 1 and device.type == "cpu":
        notes.append(THREADS_NOTE)
    for note in notes:
        print("note:", note)

    base_params, base_grads = model_tensors(args.quick)
    numel = sum(p.numel() for p in base_params)
    print(f"model: {len(base_params)} tensors, {numel:,} parameters; device {device}")
    grads = [g.to(device=device, dtype=torch.float32, copy=True) for g in base_grads]
    cands, extra = candidates(ups)
    stats = counters["stats"]
    warm_up(cands, extra, device, grads, base_params)
    live = [c for c in cands if c.crash is None]
    fused = next(c for c in live if c.key == "torch_fused")

    n_rounds = math.ceil(args.steps / args.per_round)
    estimate = plan(live, n_rounds, args.per_round, args.budget)
    print(f"timing: {n_rounds} rounds, about {estimate:.0f} s (budget {args.budget:.0f} s)")
    graphs_before = stats["unique_graphs"]
    timing_s = interleaved_rounds(live, n_rounds, device, catch=True)
    recompiles = stats["unique_graphs"] - graphs_before

    results: list[dict[str, Any]] = []
    by_key = {c.key: c for c in cands}
    for c in cands:
        e = extra[c.key]
        res: dict[str, Any] = {"key": c.key, "impl": c.family, "class": c.label, "setting": c.states,
                               "crash": c.crash}
        results.append(res)
        if c.crash is None:
            res.update(timing_fields(c, e, fused, numel))
            if c.family == "upstream":  # ai-toolkit's mask is an object, not a tensor
                res["state_bytes"] = upstream_state_bytes(c.opt)
                res["state_bytes_per_param"] = res["state_bytes"] / numel
    # Sanity: after the same warm-up steps on the same gradients, a fast row and its upstream should
    # agree to rounding where they run the same rule; dp relative to the largest parameter change.
    base = [p.to(device) for p in base_params]
    for row in ROWS:
        f, u = by_key[f"fast_{row.key}"], by_key.get(f"up_{row.upstream}")
        res = next(r for r in results if r["key"] == f.key)
        if f.crash is None and u is not None and u.crash is None and row.fast_cls != "AutomagicCAME":
            fp, up = extra[f.key].params_after_warmup, extra[u.key].params_after_warmup
            dp = max((p - q).abs().max().item() for p, q in zip(fp, up))
            moved = max((q - b).abs().max().item() for q, b in zip(up, base))
            res["max_abs_dp_vs_upstream_after_warmup"] = dp
            res["max_abs_dp_over_max_abs_p"] = dp / max(q.abs().max().item() for q in up)
            res["max_abs_dp_over_max_abs_change"] = dp / moved if moved else math.nan
            if row.fast_cls in FLOAT64_CHECKED and row.same_algorithm:
                res["vs_float64_reference"] = float64_check(row, base_params, grads, fp, up)
    for c in cands:  # the timed copies are done with: free them before the check below
        c.opt, c.params = None, []
    extra.clear()
    notes.append(mask_free_check(base_params, grads, device))
    print("note:", notes[-1])
    info["load_average_end"] = bu.load_average()
    return {
        "machine": info,
        "config": {
            "quick": args.quick, "tensors": len(base_params), "numel": numel, "param_dtype": "float32",
            "warmup_steps": WARMUP, "rounds": n_rounds, "max_steps_per_round": args.per_round,
            "budget_s": args.budget, "timing_estimate_s": estimate, "timing_s": timing_s,
            "recompiles_while_timing": recompiles,
            "gradients_unchanged": all(torch.equal(g, b) for g, b in zip(grads, base_grads)),
            "inductor_cache": "warm (default dir)" if args.warm_cache else "cold (fresh temporary dir)",
            "rows": [{"key": r.key, "fast": f"fast.{r.fast_cls}", "kwargs": r.kwargs,
                      "upstream": ups[r.upstream].label, "same_algorithm": r.same_algorithm,
                      "target_x_fused": r.target, "min_bytes_single_pass": limits(r)[0],
                      "min_bytes_dependencies": limits(r)[1], "dependencies": r.dependency} for r in ROWS],
        },
        "notes": notes, "results": results,
    }


FLOAT64_CHECKED = ("Adafactor", "CAME")  # reference.Automagic's float64 loop takes minutes on this model


def float64_check(row: Row, base_params: list[torch.Tensor], grads: list[torch.Tensor], fast_params: list[torch.Tensor],
                  upstream_params: list[torch.Tensor]) -> dict[str, float]:
    """Which side of a fast-upstream difference is rounding: the project's float64 NumPy reference
    (``reference``, exact arithmetic up to float64) after the same warm-up steps; max |x - ref| over
    max |ref| for fast and for the upstream."""
    import numpy as np

    import reference

    ref = getattr(reference, row.fast_cls)([p.cpu().numpy() for p in base_params], param_dtype="float64",
                                           **row.kwargs)
    gs = [g.cpu().numpy().astype(np.float64) for g in grads]
    for _ in range(WARMUP):
        ref.step(gs)
    top = max(float(np.abs(r).max()) for r in ref.params)

    def off(ps: list[torch.Tensor]) -> float:
        return max(float(np.abs(p.cpu().double().numpy() - r).max()) for p, r in zip(ps, ref.params)) / top

    return {"fast": off(fast_params), "upstream": off(upstream_params)}


def mask_free_check(base_params: list[torch.Tensor], grads: list[torch.Tensor], device: torch.device) -> str:
    """AutomagicCAME has no upstream; with its mask held constant (lr_bump=0, exact fp32 mask) it is
    CAME at lr = the mask, so compare that with came_pytorch.CAME after the same warm-up steps."""
    import came_pytorch

    lr = CAME_HYPER["lr"]
    runs = []
    for make in (lambda ps: fast.AutomagicCAME(ps, lr=lr, lr_bump=0.0, mask_precision="fp32", weight_decay=WD),
                 lambda ps: came_pytorch.CAME(ps, **CAME_HYPER)):
        ps = [p.to(device=device, copy=True) for p in base_params]
        for p, g in zip(ps, grads):
            p.grad = g
        opt = make(ps)
        for _ in range(WARMUP):
            opt.step()
        runs.append(ps)
    dp = max((p - q).abs().max().item() for p, q in zip(*runs))
    rel = dp / max(q.abs().max().item() for q in runs[1])
    return (f"AutomagicCAME's CAME part: `fast.AutomagicCAME(lr={lr}, lr_bump=0, mask_precision='fp32', "
            f"weight_decay={WD})` (a constant exact mask, so CAME at lr={lr}) against `came_pytorch.CAME` with the "
            f"timed CAME row's arguments, after {WARMUP} steps on the same gradients: max abs dp {dp:.1e} "
            f"({rel:.1e} of max |p|), not timed.")


def limits(row: Row) -> tuple[float, float]:
    """Bytes per parameter a step must move: each tensor read and written once, and with the
    extra full-size reads the rule's data dependencies force (factors of a few KB ignored)."""
    single = 12.0 + 2 * row.dense_state_bytes
    return single, single + row.extra_reads


# -- report ----------------------------------------------------------------------------------------
def _get(result: dict[str, Any], key: str) -> dict[str, Any] | None:
    return next((r for r in result["results"] if r["key"] == key), None)


def _ratio(r: dict[str, Any] | None) -> float | None:
    return r["ratio_to_fused"][1] if _ok(r) else None


def table(result: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    headers = ["fast optimizer", "upstream", "fast x fused (IQR)", "upstream x fused (IQR)", "fast / upstream",
               "fast B/param", "upstream B/param", "fast ms", "upstream ms", "fast compile s",
               "max abs dp", "dp / max abs p", "fast, upstream vs float64"]
    labels = {r["key"]: r["upstream"] for r in result["config"]["rows"]}
    rows: list[list[object]] = []
    for row in ROWS:
        f, u = _get(result, f"fast_{row.key}"), _get(result, f"up_{row.upstream}")

        def cell(r: dict[str, Any] | None, fmt: str, key: str) -> str:
            if r is None:
                return "skipped"
            return fmt.format(r[key]) if _ok(r) else f"crashes ({r['crash'].split(':')[0]})"

        ratio = "-" if _ratio(f) is None or _ratio(u) is None else f"{_ratio(f) / _ratio(u):.2f}"
        dp = f.get("max_abs_dp_vs_upstream_after_warmup") if _ok(f) else None
        rel = f.get("max_abs_dp_over_max_abs_p") if _ok(f) else None
        rows.append([
            row.label, labels[row.key] + ("" if row.same_algorithm else " *"),
            _q(f["ratio_to_fused"]) if _ok(f) else cell(f, "", ""),
            _q(u["ratio_to_fused"]) if _ok(u) else cell(u, "", ""),
            ratio, cell(f, "{:.3f}", "state_bytes_per_param"), cell(u, "{:.3f}", "state_bytes_per_param"),
            cell(f, "{:.1f}", "median_ms"), cell(u, "{:.1f}", "median_ms"),
            "-" if not _ok(f) else f"{f['compile_s']:.1f}",
            "-" if dp is None else f"{dp:.1e}", "-" if rel is None else f"{rel:.1e}",
            "-" if not (_ok(f) and "vs_float64_reference" in f) else
            "{fast:.1e}, {upstream:.1e}".format(**f["vs_float64_reference"]),
        ])
    return headers, rows


def targets(result: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    headers = ["fast optimizer", "target", "measured", "met"]
    rows: list[list[object]] = []
    for row in ROWS:
        f = _get(result, f"fast_{row.key}")
        u = _get(result, f"up_{row.upstream}")
        fx = _ratio(f)
        name = "Automagic" if row.fast_cls.startswith("Automagic") else row.fast_cls
        rows.append([row.label, f"<= {row.target:g}x fused AdamW" + (
            " (the bound owed by Automagic, applied to it)" if row.fast_cls == "AutomagicCAME" else ""),
            "-" if fx is None else f"{fx:.2f}x", "-" if fx is None else ("met" if fx <= row.target else "not met")])
        if (name in ("Adafactor", "CAME") and row.same_algorithm) or row.key == "came_int8":
            ux = _ratio(u)
            ok = fx is not None and ux is not None
            rows.append([row.label, f"well below {u['class'] if _ok(u) else 'upstream'} eager "
                         f"(fast / upstream <= {WELL_BELOW})", "-" if not ok else f"{fx / ux:.2f}",
                         "-" if not ok else ("met" if fx / ux <= WELL_BELOW else "not met")])
    return headers, rows


def byte_table(result: dict[str, Any]) -> tuple[list[str], list[list[object]]]:
    headers = ["fast optimizer", "single pass B/param", "single-pass floor x fused", "with data dependencies B/param",
               "dependency floor x fused", "measured x fused", "what the dependencies add"]
    rows: list[list[object]] = [["fused torch AdamW", f"{FUSED_ADAMW_BYTES:.2f}", "1.00", f"{FUSED_ADAMW_BYTES:.2f}",
                                 "1.00", "1.00", "none: one pass (p, g, m, v)"]]
    for cfg, row in zip(result["config"]["rows"], ROWS):
        single, dep = cfg["min_bytes_single_pass"], cfg["min_bytes_dependencies"]
        fx = _ratio(_get(result, f"fast_{row.key}"))
        rows.append([row.label, f"{single:.2f}", f"{single / FUSED_ADAMW_BYTES:.2f}", f"{dep:.2f}",
                     f"{dep / FUSED_ADAMW_BYTES:.2f}", "-" if fx is None else f"{fx:.2f}", cfg["dependencies"]])
    return headers, rows


def write_markdown(result: dict[str, Any], path: str, profile_md: list[str]) -> None:
    cfg = result["config"]
    fused = _get(result, "torch_fused")
    later = ", ".join(f"{r['class']} {r['setting']}: {r['graphs_in_warmup_after_first_step']}"
                      for r in result["results"] if _ok(r) and r["graphs_in_warmup_after_first_step"])
    lines = [
        "# Step time and state size of the factored optimizers",
        "",
        f"The step_time model ({cfg['tensors']} tensors, {cfg['numel']:,} parameters, fp32 parameters, constant "
        "random gradients shared by all rows), as in the family benchmark. Each fast optimizer, compiled (its "
        "default), against the implementation users run today, eager: `transformers.optimization.Adafactor` in "
        "OneTrainer's two Adafactor modes (adaptive: `lr=None, relative_step=True, scale_parameter=True, "
        "warmup_init=False`; low-memory AdamW: `lr=1e-4, relative_step=False, scale_parameter=False, beta1=0.9`), "
        "`came_pytorch.CAME` with its defaults and `lr=2e-4` (fast.CAME also with `state_precision='int8_sr'`, "
        "OneTrainer's CAME 8-bit), and ai-toolkit's `Automagic` with its defaults (fast.Automagic with its "
        "default 8-bit mask and with `mask_precision='fp32'`; fast.AutomagicCAME, which has no upstream, timed "
        f"beside ai-toolkit's Automagic). weight_decay={WD} everywhere (so the decay path is timed), the same "
        f"arguments to fast and upstream. {cfg['warmup_steps']} untimed warm-up steps per row (compiles "
        f"included), then {cfg['rounds']} interleaved rounds (order reversed every other round); slow rows take "
        f"fewer steps within the {cfg['budget_s']:.0f} s budget. Fused torch AdamW took {fused['median_ms']:.1f} "
        f"ms/step (median). Timed rounds took {cfg['timing_s']:.0f} s, the whole run "
        f"{result.get('runtime_s', math.nan):.0f} s; dynamo graphs compiled while timing: "
        f"{cfg['recompiles_while_timing']}.",
        "",
        *bu.markdown_table(*table(result)),
        "",
        "\\* not the same rule, so the parameter difference measures the deviation, not rounding: fast's 8-bit "
        "states (CAME int8_sr: the first moment in 8 bits with stochastic rounding, against came-pytorch's fp32; "
        "Automagic: fast's 8-bit binade-level mask with stochastic rounding, against ai-toolkit's absmax int8 "
        "rounded to nearest) and AutomagicCAME, a different optimizer (timing reference only).",
        "",
        "## Targets",
        "",
        *bu.markdown_table(*targets(result), right_align=False),
        "",
        "## Bytes a step must move",
        "",
        "Per parameter and step, fp32 parameters: p read and written, g read (12 B), each dense state read and "
        "written once; the factors (a few KB per tensor) are left out. The single-pass floor moves every tensor "
        "once. The factored rules cannot: the new row and column factors need a reduction over all of g before "
        "any normalised update exists, and the RMS clip needs a reduction over all of that update before any "
        "element is written, so g is read in three passes; CAME's residual factors need all of the new first "
        "moment before its step, and Adafactor's scale_parameter needs RMS(p) before the update pass. Fused "
        "AdamW moves its 28 B in one pass. A `floor x fused` is the step time a memory-bound machine could reach "
        "relative to fused AdamW if every row ran at the same bandwidth. A tensor of this model is 16 MiB (fp32 "
        "2048 x 2048), so a repeated read may partly hit a large last-level cache and cost less than DRAM.",
        "",
        *bu.markdown_table(*byte_table(result)),
        "",
        *profile_md,
        "## Columns",
        "",
        "- **x fused (IQR)**: per round, the row's median step time over fused fp32 torch AdamW's in the same "
        "round; median and interquartile range over the rounds. **fast / upstream**: fast's median ratio over "
        "the upstream's (below 1: fast is faster). Absolute **ms** move with the machine's load; the ratios are "
        "the headline.",
        "- **B/param**: bytes of every tensor in `opt.state` (0-d tensors such as step counters, RMS, ai-toolkit's "
        "`avg_lr` excluded; ai-toolkit's mask counted through its holder: `Auto8bitTensor.quantized`, int8) / "
        "number of parameters. Biases keep dense second moments.",
        "- **fast compile s**: first step - median step (inductor cache "
        f"{cfg['inductor_cache']}). The family shares kernels (the second-moment kernel of a tensor shape, "
        "CAME's residual kernel), so a row whose kernels an earlier row compiled shows less. Graphs compiled in "
        f"later warm-up steps, not counted: {later or 'none'}.",
        f"- **max abs dp**: largest parameter difference between the fast row and its upstream after the "
        f"{cfg['warmup_steps']} warm-up steps on the same gradients; **dp / max abs p**: that over the "
        "largest |p| (the same rule: rounding, ~1e-7; one fp32 ulp of |p| = 0.1 is 7e-9). The json also has "
        "dp over the largest parameter change the upstream made (`max_abs_dp_over_max_abs_change`). **fast, "
        "upstream vs float64**: each one's max |p - p_ref| / max |p_ref| against the project's float64 NumPy "
        "reference (`reference.Adafactor` / `reference.CAME`, the same arguments and steps): which side of a "
        "difference is fp32 rounding. transformers' and came-pytorch's `_rms` is `x.norm(2) / sqrt(n)`; torch's "
        "CPU fp32 `norm` of a 2048 x 2048 tensor is off by ~1e-4 relative (against `(x * x).sum().sqrt()`, "
        "~1e-8), and it sets Adafactor's step size (RMS(p), with scale_parameter) and the RMS clip.",
        f"- Shared gradients unchanged by all optimizers: {'yes' if cfg['gradients_unchanged'] else 'NO'}.",
        *[f"- {n}" for n in result["notes"]],
        "",
    ]
    bu.write_report(path, lines, result["machine"])


# -- profile ---------------------------------------------------------------------------------------
PIECES = ("second_moment", "residual", "_run_step")  # the kernel calls of a fast step (FactoredFamily, CAME)
PIECE_NAMES = {"second_moment": "second moment", "residual": "residual", "_run_step": "fused step"}


def profile(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Where one fast step of the largest tensor goes: the wall time of each kernel call the step
    makes (fast's second-moment reduction, CAME's residual reduction, the fused step, each with the
    eager work around it) per step; torch.profiler's self time per piece and op (compiled graph,
    ATen ops it calls out to, eager ops around it); and what inductor generated for each graph."""
    width = 256 if args.quick else 2048
    gen = torch.Generator().manual_seed(0)
    p0, g = torch.randn(width, width, generator=gen) * 0.02, torch.randn(width, width, generator=gen) * 1e-3
    reps = 5 if args.quick else 20
    out: dict[str, Any] = {"shape": [width, width], "reps": reps, "rows": {}}

    def median_s(fn: Callable[[], object]) -> float:
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return bu.quartiles(ts)[1]

    src, dst = torch.randn(width, width, generator=gen), torch.empty(width, width)
    out["copy_gbs"] = 2 * src.nbytes / median_s(lambda: dst.copy_(src)) / 1e9  # one read + one write
    q = p0.clone()
    q.grad = g
    adamw = torch.optim.AdamW([q], fused=True, lr=1e-3, weight_decay=WD)
    for _ in range(3):
        adamw.step()
    out["fused_adamw_ms"] = median_s(adamw.step) * 1e3
    out["fused_adamw_gbs"] = FUSED_ADAMW_BYTES * g.numel() / (out["fused_adamw_ms"] / 1e3) / 1e9
    stats = counters["stats"]
    for row in ROWS:
        cache = workdir / f"inductor-{row.key}"
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache)  # each row's generated code on its own
        torch._dynamo.reset()
        fast.compile._CACHE.clear()  # so that this row compiles (and writes) every graph it runs
        p = p0.clone()
        p.grad = g
        opt = getattr(fast, row.fast_cls)([p], **row.kwargs)
        step = [0]
        laps: dict[str, float] = {}
        compiled: list[tuple[str, int]] = []  # (piece, step) of each new graph, in compile order

        def timed(name: str, fn: Callable[..., Any], laps: dict[str, float] = laps,
                  compiled: list[tuple[str, int]] = compiled, step: list[int] = step) -> Callable[..., Any]:
            def wrapper(*a: Any, **kw: Any) -> Any:
                graphs, t0 = stats["unique_graphs"], time.perf_counter()
                try:
                    with torch.profiler.record_function(f"piece:{name}"):
                        return fn(*a, **kw)
                finally:
                    laps[name] = laps.get(name, 0.0) + time.perf_counter() - t0
                    compiled.extend([(name, step[0])] * (stats["unique_graphs"] - graphs))
            return wrapper

        for name in PIECES:
            if hasattr(opt, name):
                setattr(opt, name, timed(name, getattr(opt, name)))
        for step[0] in range(1, 4):
            opt.step()
        per_step: dict[str, list[float]] = {"step": []}
        for _ in range(reps):
            laps.clear()
            t0 = time.perf_counter()
            opt.step()
            total = time.perf_counter() - t0
            per_step["step"].append(total)
            for k, v in laps.items():
                per_step.setdefault(k, []).append(v)
            per_step.setdefault("rest", []).append(total - sum(laps.values()))
        ms = {k: bu.quartiles(v)[1] * 1e3 for k, v in per_step.items()}
        n_prof = 3
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(n_prof):
                opt.step()
        out["rows"][row.key] = {
            "label": row.label, "ms": ms, "ops_ms": profiled_ops(prof, n_prof),
            "graphs": generated_graphs(cache, compiled, g.numel()),
            "bytes_dependency_floor": limits(row)[1],
            "gbs_at_dependency_floor": limits(row)[1] * g.numel() / (ms["step"] / 1e3) / 1e9,
        }
        print(f"profile {row.label}: {ms['step']:.1f} ms/step ("
              + ", ".join(f"{PIECE_NAMES.get(k, k)} {v:.1f}" for k, v in ms.items() if k != "step") + ")")
    os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
    out["micro"] = micro_benchmarks(g, median_s)
    return out


def micro_benchmarks(g: torch.Tensor, median_s: Callable[[Callable[[], object]], float]
                     ) -> list[tuple[str, str, float]]:
    """Milliseconds of small compiled functions over one tensor that isolate the costs the fast
    steps' kernels contain: the reductions' loop layouts and the dtype of a byte state."""
    d1, d2 = g.shape
    block = next(r for r in (32, 16, 8, 4, 2, 1) if d1 % r == 0)
    gen = torch.Generator().manual_seed(1)
    m, L = torch.randn(d1, d2, generator=gen), torch.full((d1, d2), 1e-6)
    r, c = torch.rand(d1, generator=gen) + 0.5, torch.rand(d2, generator=gen) + 0.5
    s = torch.tensor([1.0, 1e-6, 1e-7, 1e-3, 0.01])

    def u(g: torch.Tensor) -> torch.Tensor:
        return g * r[:, None] * c[None, :]

    def res(g: torch.Tensor) -> torch.Tensor:
        return (u(g) - 0.9 * m) ** 2

    def masked_step(p: torch.Tensor, last: torch.Tensor) -> None:  # Automagic's step without the 8-bit code
        v = s[0] * u(g)
        positive = v > 0
        agree = positive == (last.to(torch.float32) > 0.5)
        L_new = torch.clamp(torch.where(agree, L + s[1], L - s[1]), s[2], s[3])
        p.copy_(p - s[4] * L_new * p - L_new * v)
        L.copy_(L_new)
        last.copy_(positive.to(last.dtype))

    cases: list[tuple[str, str, Callable[..., Any], tuple[Any, ...]]] = [
        ("rows", "row sums of g^2 (one row-major pass)", lambda g: (g * g).sum(-1), (g,)),
        ("cols", "column sums of g^2 (`sum(-2)`: a column-strided pass)", lambda g: (g * g).sum(-2), (g,)),
        ("cols_blocks", f"column sums of g^2 over {block}-row blocks, then over the blocks",
         lambda g: (g * g).view(d1 // block, block, d2).sum(1).sum(0), (g,)),
        ("rows_cols", "row and column sums of g^2 (`sum(-1)`, `sum(-2)`)",
         lambda g: ((g * g).sum(-1), (g * g).sum(-2)), (g,)),
        ("rms_u", "sum of u^2, u = g r_i c_j (the RMS clip's pass)", lambda g: (u(g) ** 2).sum(), (g,)),
        ("residual", "row and column sums of (u - 0.9 m)^2 (CAME's residual: reads g and m)",
         lambda g: (res(g).sum(-1), res(g).sum(-2)), (g,)),
        ("residual_blocks", f"the same, column sums over {block}-row blocks",
         lambda g: (res(g).sum(-1), res(g).view(d1 // block, block, d2).sum(1).sum(0)), (g,)),
    ]
    for dtype in (torch.float32, torch.uint8, torch.int32):
        name = str(dtype).removeprefix("torch.")
        cases.append((f"polarity_{name}", f"Automagic-like fused step (fp32 p, L; polarity as {name})", masked_step,
                      (g.clone(), torch.zeros(d1, d2, dtype=dtype))))
    out = []
    for key, name, fn, args in cases:
        cf = torch.compile(fn, fullgraph=True, dynamic=False)
        for _ in range(3):
            cf(*args)
        out.append((key, name, median_s(lambda cf=cf, args=args: cf(*args)) * 1e3))
    return out


def profiled_ops(prof: Any, steps: int) -> list[tuple[str, str, float]]:
    """(piece, op, self ms per step) of the (at most 6) largest ops above 2% of the profiled time: a
    compiled graph shows as 'compiled kernels' (its C++ loops), an ATen op inside it or around it
    under its own name."""
    agg: dict[tuple[str, str], float] = {}
    for e in prof.events():
        if e.name.startswith(("piece:", "Optimizer.step", "Torch-Compiled Region")):
            continue
        parent, piece = e.cpu_parent, "outside the kernel calls"
        while parent is not None:
            if parent.name.startswith("piece:"):
                piece = PIECE_NAMES[parent.name.removeprefix("piece:")]
                break
            parent = parent.cpu_parent
        op = "compiled kernels" if e.name.startswith("## Call CompiledFxGraph") else e.name
        agg[(piece, op)] = agg.get((piece, op), 0.0) + e.self_cpu_time_total / 1e3 / steps
    total = sum(agg.values())
    return sorted(((k[0], k[1], v) for k, v in agg.items() if v >= 0.02 * total), key=lambda x: -x[2])[:6]


def full_passes(body: str, numel: int) -> int:
    """Loop nests of a generated C++ kernel that cover all ``numel`` elements: each one a full pass
    over the tensors it reads (nested loops counted once, at the depth where they reach numel)."""
    loop = re.compile(r"for\(int64_t (x\w+)=static_cast<int64_t>\(0L\); \1<static_cast<int64_t>\((\d+)L\)")
    stack: list[tuple[int, int]] = []  # (brace depth at the loop, trip count) of the enclosing loops
    depth = passes = 0
    for line in body.splitlines():
        m = loop.search(line)
        if m:
            outer = math.prod(b for _, b in stack)
            bound = int(m.group(2))
            if outer < numel <= outer * bound:
                passes += 1
            stack.append((depth, bound))
        depth += line.count("{") - line.count("}")
        if "}" in line:
            while stack and stack[-1][0] >= depth:
                stack.pop()
    return passes


def generated_graphs(cache: Path, compiled: list[tuple[str, int]], numel: int) -> list[dict[str, Any]]:
    """Per compiled graph of the row (its output code, in compile order, named by the kernel call
    that compiled it): C++ kernels, full passes over the tensor, 16x16 tile transposes (a fused
    row-and-column reduction), and the ATen ops the graph calls out to."""
    files = sorted((f for f in glob.glob(str(cache / "**" / "*.py"), recursive=True)
                    if "def call" in Path(f).read_text(encoding="utf-8", errors="replace")), key=os.path.getmtime)
    last_step = {piece: s for piece, s in compiled}
    out = []
    for i, path in enumerate(files):
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        call = text[text.index("def call"):]
        bodies = re.findall(r"cpp_pybinding\(\[.*?\], r'''(.*?)'''", text, re.S)
        name = f"graph {i + 1}"
        if len(files) == len(compiled):
            piece, s = compiled[i]
            name = PIECE_NAMES[piece] + (" (first step)" if s < last_step[piece] else "")
        out.append({
            "graph": name, "cpp_kernels": len(bodies), "full_passes": sum(full_passes(b, numel) for b in bodies),
            "tile_transposes": sum(b.count("transpose_mxn<") for b in bodies),
            "aten_calls": sorted(set(re.findall(r"torch\.ops\.aten\.(\w+)", call))),
        })
    return out


def profile_markdown(prof: dict[str, Any]) -> list[str]:
    shape = " x ".join(map(str, prof["shape"]))
    headers = ["fast optimizer", "step ms", "x fused AdamW", "second moment ms", "residual ms", "fused step ms",
               "rest ms", "GB/s at the dependency floor"]
    rows: list[list[object]] = []
    ops: list[list[object]] = []
    graphs: list[list[object]] = []
    for r in prof["rows"].values():
        ms = r["ms"]
        rows.append([r["label"], f"{ms['step']:.2f}", f"{ms['step'] / prof['fused_adamw_ms']:.2f}",
                     *(f"{ms[k]:.2f}" if k in ms else "-" for k in PIECES), f"{ms['rest']:.2f}",
                     f"{r['gbs_at_dependency_floor']:.1f}"])
        ops.append([r["label"], "; ".join(f"{piece}: {op} {v:.2f}" for piece, op, v in r["ops_ms"])])
        for gr in r["graphs"]:
            graphs.append([r["label"], gr["graph"], gr["cpp_kernels"], gr["full_passes"], gr["tile_transposes"],
                           ", ".join(gr["aten_calls"]) or "-"])
    return [
        "## Where a fast step's time goes",
        "",
        f"One {shape} fp32 tensor (the model's weights' shape), stepped alone. **step ms**: the median of "
        f"{prof['reps']} steps; the kernel calls of each step timed by wrapping the optimizer's methods "
        "(`second_moment`, `residual`, `_run_step`: each with the eager work around its compiled graph), "
        "medians per call; **rest**: the step minus its calls (Python). Fused torch AdamW steps the same tensor "
        f"in {prof['fused_adamw_ms']:.2f} ms ({prof['fused_adamw_gbs']:.1f} GB/s for its 28 B/param); torch's "
        f"copy of it runs at {prof['copy_gbs']:.1f} GB/s (read + write). **GB/s at the dependency floor**: the "
        "floor's bytes (above) over the measured step.",
        "",
        *bu.markdown_table(headers, rows),
        "",
        "torch.profiler self time per step (ms; the 6 largest ops above 2% of the step; profiler overhead "
        "included), by the "
        "kernel call they run in; `compiled kernels` is a graph's own C++ code, other names are ATen ops the "
        "graph calls out to or eager ops around it:",
        "",
        *bu.markdown_table(["fast optimizer", "piece: op ms/step"], ops, right_align=False),
        "",
        "What inductor generated for each graph the row compiles (**full passes**: loop nests over all "
        "elements, each reading its inputs once; **tile transposes**: 16 x 16 transposes of a loop that "
        "reduces rows and columns together; **ATen calls**: ops the graph does not fuse):",
        "",
        *bu.markdown_table(["fast optimizer", "graph", "C++ kernels", "full passes", "tile transposes",
                            "ATen calls"], graphs),
        "",
        f"Small compiled functions over the same {shape} tensor, torch.compile'd alone (median ms), isolating "
        "the costs found above:",
        "",
        *bu.markdown_table(["compiled function", "ms"], [[name, f"{v:.2f}"] for _, name, v in prof["micro"]]),
        "",
        "### Findings",
        "",
        *findings(prof),
        "",
    ]


def findings(prof: dict[str, Any]) -> list[str]:
    """The profile's conclusions, each computed from the numbers above."""
    rows, f = prof["rows"], prof["fused_adamw_ms"]
    micro = {key: v for key, _, v in prof["micro"]}
    numel = math.prod(prof["shape"])

    def op(row: str, piece: str, name: str) -> float:
        return sum(v for pc, o, v in rows[row]["ops_ms"] if pc == piece and o == name)

    def graph(row: str, piece: str) -> dict[str, Any]:
        return next((gr for gr in rows[row]["graphs"] if gr["graph"] == piece), {})

    out = []
    if "adafactor_adaptive" in rows:
        r = rows["adafactor_adaptive"]["ms"]
        n = graph("adafactor_adaptive", "second moment").get("full_passes", "?")
        out.append(
            f"- **The second-moment kernel** (every row): {r['second_moment']:.2f} ms of Adafactor adaptive's "
            f"{r['step']:.2f} ms step, against {f:.2f} ms for fused AdamW's whole step of the tensor. It makes "
            f"{n} full passes" + (" (RMS(p), row sums, column sums, RMS(u); 3 without scale_parameter)" if n == 4
                                  else "") +
            ", where the floor needs 2 (row and column sums in one row-major pass, then RMS(u)). Column sums "
            f"written as `sum(-2)` are a column-strided loop: alone {micro['cols']:.2f} ms against "
            f"{micro['rows']:.2f} ms for the row sums and {micro['cols_blocks']:.2f} ms summed over row blocks "
            "first (as fast.storage's factor_sums does).")
        out.append(
            f"- **The fused step kernel** is one pass: Adafactor adaptive's {r['_run_step']:.2f} ms is "
            f"{12 * numel / (r['_run_step'] / 1e3) / 1e9:.0f} GB/s for its 12 B/param (torch's copy: "
            f"{prof['copy_gbs']:.0f} GB/s). Python around the kernel calls: {r['rest']:.2f} ms per tensor.")
    if "came" in rows:
        r = rows["came"]["ms"]
        gr = graph("came", "residual")
        how = (f"Inductor reduces rows and columns in one loop nest over 16 x 16 tiles with "
               f"{gr['tile_transposes']} tile transposes per tile (the inputs transposed again for each use), "
               "evaluating the residual once per orientation. " if gr.get("tile_transposes") else
               f"Its graph makes {gr.get('full_passes', '?')} full passes. ")
        out.append(
            f"- **CAME's residual kernel**: {r['residual']:.2f} ms of CAME's {r['step']:.2f} ms step. " + how +
            f"The same reduction alone: {micro['residual']:.2f} ms; with the column sums over row blocks "
            f"{micro['residual_blocks']:.2f} ms.")
    if "came_int8" in rows:
        r = rows["came_int8"]["ms"]
        out.append(
            f"- **CAME int8_sr**: the residual kernel takes {r['residual']:.2f} ms (the 8-bit m decoded inside "
            f"its loop: {graph('came_int8', 'residual').get('tile_transposes', '?')} tile transposes) and the "
            f"fused step {r['_run_step']:.2f} ms ({graph('came_int8', 'fused step').get('full_passes', '?')} full "
            f"passes against {graph('came', 'fused step').get('full_passes', '?')} with fp32 m: each block's "
            "absmax is reduced before its codes are written).")
    if "automagic_int8" in rows and "automagic_fp32" in rows:
        r, r32 = rows["automagic_int8"]["ms"], rows["automagic_fp32"]["ms"]
        gr = graph("automagic_int8", "fused step")
        search = op("automagic_int8", "fused step", "aten::bucketize")
        out.append(
            f"- **Automagic's 8-bit mask**: the fused step takes {r['_run_step']:.2f} ms against "
            f"{r32['_run_step']:.2f} ms with the fp32 mask (otherwise the same step): the 8-bit code costs "
            f"{r['_run_step'] - r32['_run_step']:.1f} ms per step of this tensor. Its graph: "
            f"{gr.get('cpp_kernels', '?')} C++ kernel(s), {gr.get('full_passes', '?')} full pass(es), ATen calls: "
            f"{', '.join(gr.get('aten_calls', [])) or 'none'}; profiled, its compiled kernels take "
            f"{op('automagic_int8', 'fused step', 'compiled kernels'):.1f} ms"
            + (f" and `aten::bucketize` (the code's search in the level table, not fused) {search:.1f} ms"
               if search else "") + ".")
        eager = sum(op("automagic_fp32", "fused step", name) for name in ("aten::index", "aten::mul", "aten::sum"))
        gbs = (12 + 8 + 2 / 8) * numel / (r32["_run_step"] / 1e3) / 1e9
        out.append(
            f"- **Automagic with the fp32 mask**: fused step {r32['_run_step']:.2f} ms, {gbs:.0f} GB/s for its "
            "20.25 B/param (p, L read and written, g read, the packed polarity bit read and written)"
            + (f"; eager unpacking and packing of the polarity bits around the kernel (`aten::index`, `aten::mul`, "
               f"`aten::sum`): {eager:.1f} ms" if eager >= 0.05 * r32["step"] else "") + ".")
    if "polarity_uint8" in micro:
        out.append(
            "- **Byte-wide states in a float kernel**: an Automagic-like one-pass step takes "
            f"{micro['polarity_uint8']:.2f} ms when its polarity is one uint8 per element against "
            f"{micro['polarity_float32']:.2f} ms with fp32 and {micro['polarity_int32']:.2f} ms with int32: "
            "inductor's CPU code for uint8 loads and stores beside fp32 math is slow, and the 8-bit codes (mask, "
            "int8_sr moments) are such data.")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_timing_arguments(parser, "factored_family")
    parser.add_argument("--profile", action="store_true",
                        help="only profile one step of the fast rows (printed; with --out also written)")
    parser.add_argument("--no-profile", dest="with_profile", action="store_false",
                        help="skip the profile section of the full run")
    args = parser.parse_args()
    resolve_timing_arguments(parser, args)
    t0 = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="advopt-bench-factored-"))
    try:
        if args.profile:
            prof = profile(args, workdir)
            print("\n".join(profile_markdown(prof)))
            return
        if not args.warm_cache:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(workdir / "inductor")
        result = run(args, workdir)
        result["runtime_s"] = time.perf_counter() - t0
        if args.with_profile and args.device == "cpu":
            result["profile"] = profile(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(bu.text_table(*table(result)))
    print(bu.text_table(*targets(result)))
    print(f"runtime {result['runtime_s']:.0f} s")
    profiled = profile_markdown(result["profile"]) if "profile" in result else []
    save_results(result, args.out, "factored_family", lambda r, md: write_markdown(r, md, profiled))


if __name__ == "__main__":
    main()
