"""Result pages: measured output of ``make bench*`` / ``make demo``, included when present.

The results are produced by other scripts into benchmarks/results/ and may not exist (a
fresh checkout, or CI without a benchmark run), so every page has a placeholder form and
the strict build passes either way.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from frontier import frontier_markdown


@dataclass(frozen=True)
class ResultPage:
    page: str  # results/<page>.md in the site
    title: str
    source: str  # Markdown file in benchmarks/results/
    make_target: str  # the make target that produces it
    missing: str  # "Not yet <missing>" when absent
    image: str | None = None  # a figure in benchmarks/results/, shown below the text
    sections: tuple[ResultPage, ...] = ()  # further results on the same page, each under its own heading
    build: Callable[[Path], str] | None = None  # makes the body from results/ instead of reading ``source``


PAGES: list[ResultPage] = [
    ResultPage("benchmarks", "Benchmarks", "step_time.md", "bench", "measured", sections=(
        ResultPage("frontier", "State formats: memory, quality and speed", "quality.json and step_time.json",
                   "bench-quality` and `make bench", "measured", build=frontier_markdown),
        ResultPage("family", "Optimizer family vs adv_optm", "family.md", "bench-family", "measured"),
        ResultPage("factored_family", "Factored optimizers vs transformers, came-pytorch and ai-toolkit",
                   "factored_family.md", "bench-factored", "measured"),
        ResultPage("features_cuda", "Direction features: step-time cost (CUDA)", "features_cuda.md",
                   'bench-features BENCH_ARGS="--device cuda"', "measured"),
        ResultPage("features", "Direction features: step-time cost (CPU)", "features.md", "bench-features",
                   "measured"),
        ResultPage("quality", "Training quality of the state formats", "quality.md", "bench-quality", "measured",
                   "quality.png"),
        ResultPage("quality_long", "Stability of the compressed states over a long run", "quality_long.md",
                   'bench-quality BENCH_ARGS="--long"', "measured", "quality_long.png"),
        ResultPage("code_choice", "Choice of the 8-bit and 4-bit codes", "code_choice.md", "bench-codes", "measured"),
        ResultPage("automagic_mask", "Automagic's 8-bit mask over a long run", "automagic_mask.md",
                   "bench-automagic-mask", "measured"),
        ResultPage("fused_backward", "Peak memory with the optimizer fused into the backward pass",
                   "fused_backward.md", "bench-fused-backward", "measured"),
    )),
    ResultPage("demo", "Demo", "demo.md", "demo-docs", "run", "demo_loss.png"),
]


def shift_headings(text: str) -> str:
    """Demote Markdown headings one level (outside code fences) to sit under our page title."""
    out: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("```", "~~~")):
            mark = stripped[:3]
            fence = None if fence == mark else (fence or mark)
        elif fence is None and re.match(r"#{1,5} ", line):
            line = "#" + line
        out.append(line)
    return "\n".join(out)


def render(spec: ResultPage, results: Path) -> str:
    md = results / spec.source
    png = results / spec.image if spec.image else None
    parts = [f"# {spec.title}", ""]
    if spec.build is not None:
        body = spec.build(results)
    else:
        body = md.read_text(encoding="utf-8") if md.is_file() else ""
    if not body and not (png and png.is_file()):
        parts.append(f"Not yet {spec.missing}; run `make {spec.make_target}` to produce "
                     f"`benchmarks/results/{spec.source}`, then `make docs`.")
    else:
        parts.append(f"Included from `benchmarks/results/{spec.source}`.\n")
        # The file's own title would repeat ours; its other headings move one level down.
        body = re.sub(r"\A\s*# [^\n]*\n", "", body)
        parts.append(shift_headings(body))
        if png and png.is_file() and png.name not in body:
            parts.append(f"\n![{spec.title}]({png.name})")
    # A section is rendered as a page of its own, then demoted one level below this page's title.
    parts += ["\n" + shift_headings(render(section, results)) for section in spec.sections]
    return "\n".join(parts)


def write_pages(results: Path, out: Path) -> list[str]:
    """Write out/results/*.md; return their nav paths (relative to ``out``).

    Every non-Markdown file of ``results`` (figures, CSV) is copied next to the pages, so
    the relative links inside the included Markdown resolve in the built site.
    """
    folder = out / "results"
    folder.mkdir(parents=True, exist_ok=True)
    if results.is_dir():
        for f in results.iterdir():
            if f.is_file() and f.suffix != ".md":
                shutil.copy2(f, folder / f.name)
    for spec in PAGES:
        (folder / f"{spec.page}.md").write_text(render(spec, results).rstrip() + "\n", encoding="utf-8")
    return [f"results/{spec.page}.md" for spec in PAGES]
