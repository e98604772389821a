"""Shared helpers for the benchmark scripts: machine description, robust statistics, optimizer
state size, peak extra memory of one call, and Markdown output."""

from __future__ import annotations

import ctypes
import datetime
import gc
import os
import platform
import shlex
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

# The scripts run as `python benchmarks/x.py`, so sys.path[0] is benchmarks/; the project's
# packages must import whether or not the repository is pip-installed into the venv.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402  (after the path fix above, so `fast` resolves next to it)


# -- statistics ------------------------------------------------------------------------------
def quartiles(xs: Sequence[float]) -> tuple[float, float, float]:
    """(q1, median, q3); a single value gives it three times."""
    if len(xs) < 2:
        return (xs[0], xs[0], xs[0])
    q1, q2, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return (q1, q2, q3)


# -- machine ---------------------------------------------------------------------------------
def _cpuinfo_field(name: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    except OSError:
        pass
    return None


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def command_line() -> str:
    """The command as typed from the repository root (interpreter path made relative)."""
    exe = Path(sys.executable)
    try:
        exe_text = os.path.relpath(exe, Path.cwd()) if exe.is_relative_to(Path.cwd()) else str(exe)
    except ValueError:
        exe_text = str(exe)
    return shlex.join([exe_text, *sys.argv])


def machine_info(device: torch.device) -> dict[str, Any]:
    model = _cpuinfo_field("model name") or platform.processor() or "unknown"
    family, cpu_model = _cpuinfo_field("cpu family"), _cpuinfo_field("model")
    # Virtual machines often report only a vendor name; family/model pins the generation.
    if family and cpu_model:
        model = f"{model} (family {family}, model {cpu_model})"
    mem = _mem_total_gib()
    info: dict[str, Any] = {
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": None if mem is None else round(mem, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command_line(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine_markdown(info: dict[str, Any]) -> list[str]:
    rows = [
        ("CPU", info["cpu"]),
        ("logical CPUs / torch threads", f"{info['logical_cpus']} / {info['torch_threads']}"),
        ("memory", f"{info['memory_gib']} GiB"),
    ]
    if "gpu" in info:
        rows.append(("GPU", info["gpu"]))
    rows += [
        ("OS / Python / torch", f"{info['os']} / {info['python']} / {info['torch']}"),
        ("device", info["device"]),
        ("date", info["date"]),
        ("command", f"`{info['command']}`"),
    ]
    if "runtime" in info:
        rows.append(("runtime", info["runtime"]))
    for key in ("load_average_start", "load_average_end"):
        if key in info:
            rows.append((key.replace("_", " ") + " (1/5/15 min)", info[key]))
    return markdown_table(["machine", ""], [list(r) for r in rows], right_align=False)


# -- optimizer state and memory --------------------------------------------------------------
def _state_tensor_bytes(states: Any) -> int:
    """Bytes of the state tensors in ``states`` (per-parameter dicts), skipping 0-d tensors:
    those are step counters (torch keeps ``step`` as one), not per-element storage."""
    return sum(
        v.nbytes for st in states for v in st.values() if isinstance(v, torch.Tensor) and v.dim() > 0
    )


def state_bytes(opt: torch.optim.Optimizer) -> int:
    """Bytes of every optimizer-state tensor in ``opt.state`` (scalar step counters excluded)."""
    return _state_tensor_bytes(opt.state.values())


def state_dict_bytes(opt: torch.optim.Optimizer) -> int:
    """The same count over ``opt.state_dict()["state"]``: what a checkpoint stores per parameter."""
    return _state_tensor_bytes(opt.state_dict()["state"].values())


def held_tensor_bytes(opt: torch.optim.Optimizer) -> int:
    """Bytes of tensors the optimizer keeps outside its state and parameters (e.g. a persistent
    workspace a step reuses): found by walking its attributes' dicts, lists and tuples, and
    counting each storage once. Memory the step needs that stays resident between steps, so the
    peak-RSS measurement around one step cannot see it."""
    seen: set[int] = set()
    for p in (p for g in opt.param_groups for p in g["params"]):
        seen.add(p.untyped_storage().data_ptr())
    for st in opt.state.values():
        for v in st.values():
            if isinstance(v, torch.Tensor):
                seen.add(v.untyped_storage().data_ptr())
    total = 0

    def walk(x: object, depth: int) -> None:
        nonlocal total
        if isinstance(x, torch.Tensor):
            ptr = x.untyped_storage().data_ptr()
            if ptr not in seen:
                seen.add(ptr)
                total += x.untyped_storage().nbytes()
        elif depth < 4 and isinstance(x, dict):
            for v in x.values():
                walk(v, depth + 1)
        elif depth < 4 and isinstance(x, (list, tuple)):
            for v in x:
                walk(v, depth + 1)

    for name, value in vars(opt).items():
        if name not in ("state", "param_groups", "defaults"):
            walk(value, 0)
    return total


def _read_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class PeakExtraMemory:
    """Peak memory a call needs on top of what is resident before it.

    CUDA: the caching allocator's own peak counter. CPU: torch allocates through glibc
    malloc, invisible to tracemalloc, so we use the kernel's counters: writing "5" to
    /proc/self/clear_refs resets VmHWM (peak RSS) to the current RSS; the peak after the
    call minus RSS before it is the extra. To make freed temporaries show up as new pages
    rather than silently reused resident ones, the allocator is switched (mallopt) to mmap
    every block >= 128 KiB and trimmed (malloc_trim) before each call. This changes the
    allocator, so call ``enable`` only after the timing runs are done.
    """

    MMAP_THRESHOLD = 128 * 1024

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.libc: Any = None
        self.method = "unavailable"

    def enable(self) -> str:
        if self.device.type == "cuda":
            self.method = "torch.cuda.max_memory_allocated() - memory_allocated() before the step"
            return self.method
        try:
            Path("/proc/self/clear_refs").write_text("5")
            _read_status_kib("VmHWM")
        except (OSError, KeyError) as err:
            self.method = f"unavailable ({err})"
            return self.method
        try:
            self.libc = ctypes.CDLL("libc.so.6")
            m_mmap_threshold = -3  # from glibc's malloc.h; also disables the dynamic threshold
            self.libc.mallopt(m_mmap_threshold, self.MMAP_THRESHOLD)
            glibc = "glibc mallopt(M_MMAP_THRESHOLD=128 KiB) and malloc_trim(0) before each step"
        except (OSError, AttributeError):
            glibc = "allocator not adjusted (not glibc), so reused resident blocks may hide temporaries"
        self.method = f"Linux VmHWM - VmRSS around the step, VmHWM reset via /proc/self/clear_refs; {glibc}"
        return self.method

    def measure(self, fn: Callable[[], object]) -> int | None:
        """Extra bytes at the peak of ``fn()``; None when no method is available."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
            fn()
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) - base
        if self.method.startswith("unavailable"):
            return None
        gc.collect()
        if self.libc is not None:
            self.libc.malloc_trim(0)
        base = _read_status_kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")
        fn()
        return max(0, _read_status_kib("VmHWM") - base) * 1024

    def self_check(self, nbytes: int = 64 * 2**20) -> int | None:
        """Measure a known temporary (a filled ``nbytes`` tensor) so readers can trust the method."""

        def alloc() -> None:
            torch.ones(nbytes // 4, dtype=torch.float32, device=self.device).sum()

        return self.measure(alloc)


# -- output ----------------------------------------------------------------------------------
def write_report(path: str, lines: list[str], machine: dict[str, Any]) -> None:
    """Write a results page: ``lines`` followed by the machine section every page carries."""
    body = [*lines, "## Machine", "", *machine_markdown(machine), ""]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(body))


def markdown_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], right_align: bool = True
) -> list[str]:
    """First column left-aligned, the others right-aligned (numbers) unless ``right_align=False``."""

    def cell(x: object) -> str:
        return str(x).replace("|", "\\|")

    align = ["---:" if i and right_align else ":---" for i in range(len(headers))]
    out = ["| " + " | ".join(cell(h) for h in headers) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows]
    return out


def text_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cols = [[str(h)] + [str(r[i]) for r in rows] for i, h in enumerate(headers)]
    widths = [max(len(x) for x in c) for c in cols]
    lines = []
    for j in range(len(rows) + 1):
        parts = [c[j].ljust(w) if i == 0 else c[j].rjust(w) for i, (c, w) in enumerate(zip(cols, widths))]
        lines.append("  ".join(parts))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
