"""How the 8-bit and 4-bit codes were chosen: held-out loss of alternative codes on the quality tasks.

Each candidate replaces one entry of ``spec.storage_layout.CODES`` (the exponent / mantissa split
or the block size of one state's code) and keeps the others at their chosen values; fast.AdamW
runs eager, so every step reads the code in force. Same tasks, hyperparameters, seeds and
minibatches as benchmarks/quality.py; the metric is the held-out loss after the step budget, as a
ratio to dense fp32 states at the same seed (mean and range over seeds). The chosen codes are
marked; the numbers are quoted in spec/state_storage.md ("Rationale").

    .venv/bin/python benchmarks/code_choice.py [--quick] [--seeds N] [--steps N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass

import benchutil as bu
import torch
from quality import Row, train
from tasks import make_tasks
from tqdm import tqdm

from spec import storage_layout
from spec.storage_layout import CODES, Code


@dataclass(frozen=True)
class Candidate:
    precision: str  # the state_precision whose code is replaced
    signed: bool  # which state: the first moment (signed) or the second (non-negative)
    code: Code

    @property
    def chosen(self) -> bool:
        return CODES[(self.precision, self.signed)] == self.code

    @property
    def label(self) -> str:
        c = self.code
        return f"{self.precision} {'m' if self.signed else 'v'} e{c.exp_bits}m{c.man_bits} B{c.block}"


def candidates() -> list[Candidate]:
    out = [Candidate("int8", False, Code(e, 8 - e, False, 2048)) for e in (3, 4, 5, 6)]
    out += [Candidate("int8", True, Code(e, 7 - e, True, 2048)) for e in (2, 3, 4, 5)]
    out += [Candidate("int4", False, Code(e, 4 - e, False, 256)) for e in (2, 3, 4)]
    out += [Candidate("int4", True, Code(e, 3 - e, True, 128)) for e in (1, 2, 3)]
    out += [Candidate("int4", True, Code(2, 1, True, b)) for b in (32, 2048)]
    out += [Candidate("int4", False, Code(4, 0, False, b)) for b in (64, 2048)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one seed, the quick step budget")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (2; 1 with --quick)")
    parser.add_argument("--steps", type=int, default=None, help="step budget of every task (its default)")
    parser.add_argument("--out", default=None, help="directory for code_choice.md / .json (benchmarks/results)")
    args = parser.parse_args()
    seeds = list(range(args.seeds if args.seeds is not None else (1 if args.quick else 2)))
    out = args.out or (tempfile.mkdtemp(prefix="advopt-codes-") if args.quick else str(bu.RESULTS))
    torch.set_num_threads(1)  # small models: more threads only add contention (see quality.py)
    tasks = make_tasks()
    cands = candidates()
    t0 = time.perf_counter()
    info = bu.machine_info(torch.device("cpu"))
    results: dict[str, dict[str, list[float]]] = {c.label: {} for c in cands}
    budgets: dict[str, int] = {}
    bar = tqdm(total=len(tasks) * len(seeds) * (len(cands) + 1), unit="run", dynamic_ncols=True)
    for name, task in tasks.items():
        task.prepare()
        steps = budgets[name] = args.steps or (task.quick_steps if args.quick else task.steps)
        for seed in seeds:
            dense = train(task, Row("fast-fp32", "fast"), seed, steps, eager=True).final
            bar.update()
            for c in cands:
                bar.set_description(f"{name} seed {seed} {c.label}")
                saved = dict(storage_layout.CODES)
                storage_layout.CODES[(c.precision, c.signed)] = c.code
                try:
                    run = train(task, Row(c.label, "fast", c.precision + ("_sr" if c.precision == "int8" else "")),
                                seed, steps, eager=True)
                finally:
                    storage_layout.CODES.clear()
                    storage_layout.CODES.update(saved)
                results[c.label].setdefault(name, []).append(run.final / dense if run.status == "ok" else float("nan"))
                bar.update()
    bar.close()
    info["runtime"] = f"{time.perf_counter() - t0:.0f} s"

    headers = ["code", "chosen", *[f"{n}: held-out / dense fp32 (range)" for n in tasks]]
    rows = []
    for c in cands:
        cells: list[object] = [f"`{c.label}`", "yes" if c.chosen else ""]
        for n in tasks:
            xs = results[c.label][n]
            cells.append("NaN" if any(x != x for x in xs) else
                         f"{statistics.fmean(xs):.4f} ({min(xs):.4f}-{max(xs):.4f})")
        rows.append(cells)
    lines = ["# Choice of the 8-bit and 4-bit codes", "",
             "Held-out loss of fast.AdamW (eager) with one code replaced, as a ratio to dense fp32 states at the "
             f"same seed; mean and range over seeds {', '.join(map(str, seeds))}; step budgets "
             + ", ".join(f"{n} {s}" for n, s in budgets.items())
             + ". `eXmY BZ`: X exponent bits, Y mantissa bits, one scale per Z elements; m codes add a sign bit. "
             "The other codes stay at the chosen ones. Tasks as on the quality page.", "",
             *bu.markdown_table(headers, rows), ""]
    os.makedirs(out, exist_ok=True)
    bu.write_report(os.path.join(out, "code_choice.md"), lines, info)
    with open(os.path.join(out, "code_choice.json"), "w", encoding="utf-8") as f:
        json.dump({"machine": info, "seeds": seeds, "budgets": budgets, "results": results}, f, indent=1)
    print(bu.text_table(headers, rows))
    print(f"\nreport: {os.path.join(out, 'code_choice.md')}\nruntime {info['runtime']}")


if __name__ == "__main__":
    main()
