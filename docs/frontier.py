"""The memory / quality / speed table of the state formats, joined from two benchmark outputs.

Quality comes from benchmarks/results/quality.json (held-out loss of the small tasks relative to
dense fp32 states), speed and memory from benchmarks/results/step_time.json (the ~29M-parameter
model of 2048x2048 matrices), so every cell is a measured number with its source named; a format
missing from either file shows "-".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# (label, quality row of quality.py, (states, dtype) row of step_time.py)
FORMATS = (
    ("fp32", "fast-fp32", ("fp32", "float32")),
    ("bf16_sr", "fast-bf16_sr", ("bf16_sr", "float32")),
    ("fp16", "fast-fp16", ("fp16", "float32")),
    ("int8_sr", "fast-int8_sr", ("int8_sr", "float32")),
    ("int4", "fast-int4", ("int4", "float32")),
    ("factored_2nd, m fp32", "fast-f2-fp32", ("factored_2nd", "float32")),
    ("factored_2nd, m int8_sr", "fast-f2-int8_sr", ("factored_2nd + int8_sr m", "float32")),
    ("factored_2nd, m int4", "fast-f2-int4", ("factored_2nd + int4 m", "float32")),
    ("factored", "fast-factored", ("factored", "float32")),
    ("bf16 parameters + SR, states bf16", "fast-bf16-params", ("bf16_sr", "bfloat16")),
)


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def frontier_markdown(results: Path) -> str:
    quality, speed = _load(results / "quality.json"), _load(results / "step_time.json")
    if quality is None and speed is None:
        return ""
    tasks = list(quality["summary"]) if quality else []
    fast_rows = {(r["states"], r["dtype"]): r for r in (speed or {}).get("results", []) if r["family"] == "fast"}
    headers = ["states", "B/param", *[f"held-out vs dense: {t}" for t in tasks], "step / fused AdamW",
               "physical limit"]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join([":---"] + ["---:"] * (len(headers) - 1)) + " |"]
    for label, qkey, skey in FORMATS:
        cells = [f"`{label}`"]
        s = fast_rows.get(skey)
        cells.append(f"{s['state_bytes_per_param']:.3f}" if s and s.get("state_bytes_per_param") else "-")
        for t in tasks:
            q = quality["summary"][t].get(qkey, {})
            if "ratio" in q:
                spread = (f" ({q['seed_ratio_min']:.3f}-{q['seed_ratio_max']:.3f})"
                          if q.get("ok_seeds", 0) > 1 and "seed_ratio_min" in q else "")
                cells.append(f"{q['ratio']:.4f}{spread}")
            else:
                cells.append(q.get("flag", "-"))
        if s and not s.get("crash"):
            key = "ratio_to_fused_bf16" if skey[1] == "bfloat16" else "ratio_to_fused_fp32"
            cells.append(f"{s[key][1]:.2f}x" if s.get(key) else "-")
            cells.append(f"{s['physical_limit']:.2f}x" if s.get("physical_limit") else "-")
        else:
            cells += ["-", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    q_machine = quality["machine"].get("date", "?") if quality else "-"
    s_machine = speed["machine"].get("date", "?") if speed else "-"
    notes = [
        "",
        "- **B/param**: optimizer-state bytes per parameter on the step-time model (biases keep dense "
        "states in factored modes). **held-out vs dense**: mean held-out loss over seeds relative to dense "
        "fp32 states, per-seed range in brackets (1.0 = the same; below 1 is lower loss) "
        f"(quality benchmark, {q_machine}). **step / fused AdamW**: median per-round ratio to "
        "`torch.optim.AdamW(fused=True)` with the same parameter dtype; **physical limit**: the bytes a "
        "step must move per parameter (parameter, gradient and states, read and written) over fused "
        f"AdamW's (step-time benchmark, {s_machine}).",
    ]
    return "\n".join(lines + notes)
