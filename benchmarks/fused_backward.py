"""Peak memory of a training step with and without fast.fuse_backward.

A stack of Linear layers (fp32) trains with each optimizer twice: forward, backward and
``optimizer.step()`` (the gradients of every layer exist at the end of the backward pass), and
forward and backward with the optimizer fused into it (each gradient is stepped and freed as
soon as autograd completes it). The peak memory a step needs on top of what is resident before
it is measured with benchutil.PeakExtraMemory, after untimed warm-up steps (which compile and
allocate the optimizer states); step times are medians of the timed steps.

    .venv/bin/python benchmarks/fused_backward.py [--quick] [--width N] [--layers N] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import benchutil as bu
import torch

import fast

OPTIMIZERS = {
    "fast.AdamW": lambda ps: fast.AdamW(ps, lr=1e-4),
    "fast.Adafactor": lambda ps: fast.Adafactor(ps),
    "fast.Automagic": lambda ps: fast.Automagic(ps, lr=1e-4),
}


def model(width: int, layers: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(*(torch.nn.Linear(width, width) for _ in range(layers)))


def run(name: str, fused: bool, args: argparse.Namespace, peak: bu.PeakExtraMemory) -> dict:
    net = model(args.width, args.layers)
    opt = OPTIMIZERS[name](net.parameters())
    x = torch.randn(args.batch, args.width)
    handle = fast.fuse_backward(net, opt) if fused else None

    def step() -> None:
        net(x).square().mean().backward()
        if handle is not None:
            handle.end_step()
        else:
            opt.step()
            opt.zero_grad(set_to_none=True)

    for _ in range(2):  # compiles, allocates the states
        step()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    extra = [peak.measure(step) for _ in range(2)]
    if handle is not None:
        handle.remove()
    return {"optimizer": name, "fused": fused, "ms": 1e3 * statistics.median(times),
            "peak_extra_bytes": min(e for e in extra if e is not None) if None not in extra else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small model (a smoke test)")
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    if args.quick:
        args.width, args.layers, args.steps = 256, 4, 2
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    peak = bu.PeakExtraMemory(device)
    method = peak.enable()
    check = peak.self_check()
    n_params = args.layers * (args.width * args.width + args.width)
    grad_mb = n_params * 4 / 2**20
    results = [run(name, fused, args, peak) for name in OPTIMIZERS for fused in (False, True)]
    rows = []
    for name in OPTIMIZERS:
        normal, fused = (next(r for r in results if r["optimizer"] == name and r["fused"] == f) for f in (False, True))
        a, b = normal["peak_extra_bytes"], fused["peak_extra_bytes"]
        rows.append([name, f"{a / 2**20:.0f}" if a is not None else "-", f"{b / 2**20:.0f}" if b is not None else "-",
                     f"{(a - b) / 2**20:.0f}" if a is not None and b is not None else "-",
                     f"{normal['ms']:.0f}", f"{fused['ms']:.0f}"])
    lines = ["# Peak memory of a training step with fast.fuse_backward", "",
             f"{args.layers} Linear({args.width}, {args.width}) layers, fp32 ({n_params:,} parameters: "
             f"{grad_mb:.0f} MB of gradients), batch {args.batch}, loss = mean(output^2). **peak extra MB**: "
             f"memory a whole training step (forward, backward, optimizer step) needs on top of what is "
             f"resident before it; normal = backward then `optimizer.step()` and `zero_grad()`, fused = "
             f"`fast.fuse_backward(model, optimizer)` (each gradient stepped and freed during the backward "
             f"pass) and `end_step()`. Method: {method} (self-check: a 64 MB temporary measured as "
             f"{(check or 0) / 2**20:.0f} MB). Step times: median of {args.steps} steps after 2 warm-up "
             f"steps, torch on {args.threads} thread(s).", "",
             *bu.markdown_table(["optimizer", "peak extra MB, normal", "peak extra MB, fused", "saved MB",
                                 "ms/step, normal", "ms/step, fused"], rows), ""]
    info = bu.machine_info(device)
    args.out.mkdir(parents=True, exist_ok=True)
    bu.write_report(str(args.out / "fused_backward.md"), lines, info)
    (args.out / "fused_backward.json").write_text(json.dumps({"results": results, "machine": info,
                                                              "gradient_mb": grad_mb}, indent=1))
    print("\n".join(lines))
    print(f"wrote {args.out / 'fused_backward.md'}")


if __name__ == "__main__":
    main()
