"""Smoke checks of the quality benchmark's machinery (its numbers come from ``make bench-quality``)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import code_choice
import quality
from benchutil import machine_info
from quality_report import summarize, write_markdown
from tasks import make_tasks

from spec.storage_layout import CODES


def test_every_chosen_code_is_among_the_candidates():
    labels = {c.label for c in code_choice.candidates() if c.chosen}
    assert len(labels) == len(CODES), labels


@pytest.mark.parametrize("key", ["torch-fused", "fast-int4", "fast-f2-int8_sr"])
def test_a_short_digits_run_trains_and_reports(key, tmp_path):
    task = make_tasks()["digits"]
    task.prepare()
    rows = [r for r in quality.all_rows() if r.key in (key, quality.BASELINE)]
    runs = [quality.train(task, row, 0, 12, eager=True) for row in rows]
    for run in runs:
        assert run.status == "ok", run.note
        assert math.isfinite(run.final) and run.final < run.heldout[0], run.heldout
        assert run.state_bytes > 0 and math.isfinite(run.time_ratio)
    summary = summarize(runs, rows, ["digits"], quality.BASELINE)
    assert summary["digits"][quality.BASELINE]["ratio"] == 1.0
    context = quality.report_context({"digits": task}, {"digits": 12}, [0], rows, "-",
                                     eager=True, quick=True, long=False)
    path = tmp_path / "quality.md"
    write_markdown(summary, context, machine_info(torch.device("cpu")), quality.BASELINE, str(path))
    text = path.read_text()
    assert key in text and "Which state format" in text
